//! TwiML (`text/xml`): what a call does when it is answered.

use crate::provider::Script;

/// XML-escaped text (element content and attribute values).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The TwiML of `script`: the text said in its language; with a gather,
/// said inside `<Gather numDigits="1">` so that a key press interrupts it
/// and is posted to the gather URL, then once more, then hang up.
pub fn render(script: &Script) -> String {
    let say = format!(
        "<Say language=\"{}\">{}</Say>",
        escape(&script.language),
        escape(&script.say)
    );
    match &script.gather_url {
        None => {
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{say}<Hangup/></Response>")
        }
        Some(url) => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>\
             <Gather input=\"dtmf\" numDigits=\"1\" timeout=\"5\" action=\"{}\" method=\"POST\">{say}</Gather>\
             {say}<Hangup/></Response>",
            escape(url)
        ),
    }
}

/// TwiML that ends the call (the answer to a `<Gather>` action).
pub const HANG_UP: &str =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Hangup/></Response>";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_gathers_post_back() {
        let script = Script {
            say: "Your table for 2 <today> & \"tomorrow\"".into(),
            language: "de-DE".into(),
            gather_url: Some("https://r.example/webhooks/voice?a=1&b=2".into()),
        };
        let xml = render(&script);
        assert!(xml.contains("<Say language=\"de-DE\">Your table for 2 &lt;today&gt; &amp; &quot;tomorrow&quot;</Say>"), "{xml}");
        assert!(
            xml.contains("action=\"https://r.example/webhooks/voice?a=1&amp;b=2\""),
            "{xml}"
        );
        assert!(xml.ends_with("<Hangup/></Response>"));
        let plain = render(&Script {
            gather_url: None,
            ..script
        });
        assert!(!plain.contains("Gather"));
    }
}
