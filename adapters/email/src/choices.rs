//! An interactive message on email: its choices as numbered text, each with
//! a link that picks it when links are configured (the one-click base URL
//! and key). Following a link shows a page that asks to confirm (a link
//! scanner's GET picks nothing); the confirming POST records the customer's
//! choice as an inbound reply to the message, as a tapped WhatsApp button
//! is. Without links the customer answers by number.

use omniroute_channel::content::{Choice, Interactive, Text};

use crate::transformers::escape;
use crate::unsubscribe::Unsubscribe;

/// The text and HTML of `interactive` sent as `message_id` of `tenant`.
pub fn render(
    interactive: &Interactive,
    links: Option<&Unsubscribe>,
    tenant: &str,
    message_id: &str,
) -> Text {
    let choices = interactive.choices.all();
    let url = |c: &Choice| links.map(|l| l.choice_url(tenant, message_id, &c.id));
    let body = omniroute_channel::capabilities::numbered_text_with(interactive, url).body;
    let mut html = String::from("<!doctype html><html><body>");
    if !interactive.header.is_empty() {
        html.push_str(&format!(
            "<p><strong>{}</strong></p>",
            escape(&interactive.header)
        ));
    }
    html.push_str(&format!(
        "<div style=\"white-space:pre-wrap\">{}</div><ol>",
        escape(&interactive.body).replace('\n', "<br>\n")
    ));
    for c in &choices {
        let title = escape(&c.title);
        let description = match c.description.as_str() {
            "" => String::new(),
            d => format!(" <small>{}</small>", escape(d)),
        };
        match url(c) {
            Some(url) => html.push_str(&format!(
                "<li><a href=\"{}\">{title}</a>{description}</li>",
                escape(&url)
            )),
            None => html.push_str(&format!("<li>{title}{description}</li>")),
        }
    }
    html.push_str("</ol>");
    if !interactive.footer.is_empty() {
        html.push_str(&format!(
            "<p><small>{}</small></p>",
            escape(&interactive.footer)
        ));
    }
    html.push_str("</body></html>");
    let subject = [interactive.header.as_str(), interactive.body.as_str()]
        .into_iter()
        .find_map(|t| t.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or("")
        .trim()
        .to_owned();
    Text {
        body,
        subject,
        html_body: html,
        preview_url: false,
        overflow: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omniroute_channel::content::Choices;

    fn interactive() -> Interactive {
        Interactive {
            header: "Delivery".into(),
            body: "When shall we come?".into(),
            footer: "ACME".into(),
            choices: Choices::Buttons {
                buttons: vec![
                    Choice {
                        id: "am".into(),
                        title: "Morning".into(),
                        description: String::new(),
                    },
                    Choice {
                        id: "pm".into(),
                        title: "Afternoon <2-6>".into(),
                        description: String::new(),
                    },
                ],
            },
        }
    }

    #[test]
    fn without_links_the_choices_are_numbered() {
        let text = render(&interactive(), None, "acme", "m1");
        assert_eq!(
            text.body,
            "Delivery\n\nWhen shall we come?\n\n1. Morning\n2. Afternoon <2-6>\n\nACME"
        );
        assert!(
            text.html_body.contains("<li>Afternoon &lt;2-6&gt;</li>"),
            "{}",
            text.html_body
        );
        assert_eq!(text.subject, "Delivery");
    }

    #[test]
    fn with_links_each_choice_picks_itself() {
        let links = Unsubscribe {
            base_url: "https://r.example".into(),
            secret: "0123456789abcdef".into(),
        };
        let text = render(&interactive(), Some(&links), "acme", "m1");
        let am = links.choice_url("acme", "m1", "am");
        assert!(
            text.body.contains(&format!("1. Morning: {am}")),
            "{}",
            text.body
        );
        assert!(
            text.html_body
                .contains(&format!("<a href=\"{am}\">Morning</a>")),
            "{}",
            text.html_body
        );
    }
}
