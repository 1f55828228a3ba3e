//! TwiML (`text/xml`): what a call does when it is answered.

use crate::provider::{Bridge, Script};

/// XML-escaped text for an attribute value in double quotes.
pub fn escape(text: &str) -> String {
    escaped(text, true)
}

/// XML-escaped text for element content: only `&`, `<` and `>` (quotes
/// and apostrophes stand as they are, so text keeps its length).
pub fn escape_text(text: &str) -> String {
    escaped(text, false)
}

fn escaped(text: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\'' if attribute => out.push_str("&apos;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The `<Say>` of `text` in `language`, said `times` times.
fn say(text: &str, language: &str, times: u32) -> String {
    let repeat = if times > 1 {
        format!(" loop=\"{times}\"")
    } else {
        String::new()
    };
    format!(
        "<Say language=\"{}\"{repeat}>{}</Say>",
        escape(language),
        escape_text(text)
    )
}

/// The TwiML of `script`: the text said in its language, then hang up;
/// with a gather, said twice inside `<Gather numDigits="1">` (the text
/// appears once: `loop="2"`), so that a key press interrupts it and is
/// posted to the gather URL.
pub fn render(script: &Script) -> String {
    match &script.gather_url {
        None => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{}<Hangup/></Response>",
            say(&script.say, &script.language, 1)
        ),
        Some(url) => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>\
             <Gather input=\"dtmf\" numDigits=\"1\" timeout=\"5\" action=\"{}\" method=\"POST\">{}</Gather>\
             <Hangup/></Response>",
            escape(url),
            say(&script.say, &script.language, 2)
        ),
    }
}

/// The TwiML of an answered callback: the greeting, then `<Dial>` to the
/// agent line with our number as caller id; its outcome goes to the action
/// URL, whose answer says what follows (a hang-up).
pub fn bridge(bridge: &Bridge) -> String {
    let say = if bridge.say.trim().is_empty() {
        String::new()
    } else {
        say(&bridge.say, &bridge.language, 1)
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{say}\
         <Dial callerId=\"{}\" timeout=\"{}\" action=\"{}\" method=\"POST\"><Number>{}</Number></Dial>\
         <Hangup/></Response>",
        escape(&bridge.caller_id),
        bridge.ring_seconds.clamp(5, 600),
        escape(&bridge.action_url),
        escape(&bridge.agent),
    )
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
            say: "Your table for 2 <today> & \"tomorrow\" isn't late".into(),
            language: "de-DE".into(),
            gather_url: Some("https://r.example/webhooks/voice?a=1&b=2".into()),
            url: String::new(),
        };
        let xml = render(&script);
        assert!(xml.contains("<Gather input=\"dtmf\" numDigits=\"1\" timeout=\"5\" action=\"https://r.example/webhooks/voice?a=1&amp;b=2\" method=\"POST\"><Say language=\"de-DE\" loop=\"2\">Your table for 2 &lt;today&gt; &amp; \"tomorrow\" isn't late</Say></Gather><Hangup/>"), "{xml}");
        assert_eq!(xml.matches("tomorrow").count(), 1, "the text once: {xml}");
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

    #[test]
    fn a_bridge_greets_then_dials_the_agent() {
        let xml = bridge(&Bridge {
            say: "Connecting you to Anna & team".into(),
            language: "en-GB".into(),
            agent: "+4930555000111".into(),
            caller_id: "+4930123456".into(),
            ring_seconds: 1,
            action_url: "https://r.example/webhooks/voice?leg=dial&lang=en-GB".into(),
        });
        assert!(
            xml.contains("<Say language=\"en-GB\">Connecting you to Anna &amp; team</Say><Dial callerId=\"+4930123456\" timeout=\"5\" action=\"https://r.example/webhooks/voice?leg=dial&amp;lang=en-GB\" method=\"POST\"><Number>+4930555000111</Number></Dial><Hangup/>"),
            "{xml}"
        );
        let silent = bridge(&Bridge {
            say: " ".into(),
            language: "en-GB".into(),
            agent: "+4930555000111".into(),
            caller_id: "+4930123456".into(),
            ring_seconds: 30,
            action_url: "https://r.example/a".into(),
        });
        assert!(!silent.contains("<Say"), "{silent}");
    }
}
