//! The adapter conformance suite: the behaviour every channel adapter must
//! show, run by each adapter crate's tests against its own provider stand-in
//! (feature `conformance`).
//!
//! An adapter crate implements [`Harness`] — how to make its provider accept,
//! refuse permanently, fail transiently or rate-limit the next send, and how
//! to sign a webhook body — and calls [`run`]. The suite checks:
//! - success: a send is accepted with a provider message id;
//! - permanent, transient and rate-limited failures come back with the right
//!   class, `is_retryable` and (for rate limits) a retry delay when given;
//! - webhooks, where the channel has them: a bad or missing signature is
//!   refused, the same delivery parsed twice gives the same events (the
//!   router deduplicates), an unknown event kind is ignored, not an error;
//! - where the channel has no webhooks, every webhook method answers a typed
//!   `Unsupported` error, never an empty success;
//! - what it declares, its checks hold to: native choices are a kind it
//!   carries, and where it declares [`ChoiceLimits`], choices at every limit
//!   pass [`Adapter::check_content`] and choices one past any limit do not
//!   (the API reads the declaration; routing relies on the check).

use std::time::Duration;

use crate::content::{Choice, ChoiceSection, Choices, Interactive};
use crate::{
    Adapter, Address, Category, ChoiceLimits, Content, ContentKind, ErrorClass, OutboundMessage,
    WebhookEvent, WebhookRequest,
};

/// What the next send should meet at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted.
    Accept,
    /// Refused for good (for example an undeliverable recipient).
    Permanent,
    /// Failed for now (the provider is unavailable).
    Transient,
    /// Too fast; `retry after` when the provider says so.
    RateLimited,
}

/// How a test drives one adapter and its provider stand-in.
#[allow(async_fn_in_trait)]
pub trait Harness {
    /// The adapter under test.
    fn adapter(&self) -> &dyn Adapter;

    /// The tenant the adapter sends for.
    fn tenant(&self) -> &str {
        "default"
    }

    /// Arranges the provider so that the next send meets `outcome`; returns
    /// the recipient to send to (a magic address, or any address when the
    /// provider stand-in is scripted).
    async fn arrange(&mut self, outcome: Outcome) -> Address;

    /// Whether the channel receives webhooks.
    fn has_webhooks(&self) -> bool;

    /// Headers that sign `body` correctly.
    fn signed_headers(&self, body: &[u8]) -> Vec<(String, String)>;

    /// A valid webhook body carrying at least one event the adapter
    /// understands (an inbound message or a status).
    fn known_event_body(&self) -> Vec<u8>;

    /// A valid webhook body carrying only an event kind the adapter does not
    /// know.
    fn unknown_event_body(&self) -> Vec<u8>;
}

fn message(tenant: &str, to: Address, attempt: u32) -> OutboundMessage {
    OutboundMessage {
        tenant: tenant.to_owned(),
        message_id: "0190f5c2-8a4e-7cc1-9c1e-2f8f4d1a2b3c".to_owned(),
        to,
        category: Category::Transactional,
        content: Content::Text(crate::content::Text {
            body: "Your order A-17 has shipped".to_owned(),
            ..Default::default()
        }),
        reply_to: None,
        attempt,
        window_open_until: Some(
            std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
        ),
        locale: None,
        trace_parent: String::new(),
    }
}

/// Runs the whole suite; panics with a description of the first violation.
pub async fn run(harness: &mut impl Harness) {
    declarations(harness);
    sends(harness).await;
    if harness.has_webhooks() {
        webhooks(harness);
    } else {
        no_webhooks(harness);
    }
}

async fn sends(harness: &mut impl Harness) {
    let to = harness.arrange(Outcome::Accept).await;
    let receipt = harness
        .adapter()
        .send(&message(harness.tenant(), to, 1))
        .await
        .expect("an accepted send");
    assert!(
        !receipt.provider_message_id.is_empty(),
        "an accepted send has a provider message id"
    );

    let to = harness.arrange(Outcome::Permanent).await;
    let error = harness
        .adapter()
        .send(&message(harness.tenant(), to, 1))
        .await
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::Permanent, "{error}");
    assert!(!error.is_retryable());
    assert!(!error.code().is_empty(), "the provider's code is kept");

    let to = harness.arrange(Outcome::Transient).await;
    let error = harness
        .adapter()
        .send(&message(harness.tenant(), to, 1))
        .await
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::Transient, "{error}");
    assert!(error.is_retryable());

    let to = harness.arrange(Outcome::RateLimited).await;
    let error = harness
        .adapter()
        .send(&message(harness.tenant(), to, 1))
        .await
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::RateLimited, "{error}");
    assert!(error.is_retryable());
    assert!(
        error
            .retry_after()
            .is_none_or(|d| d <= Duration::from_secs(24 * 3600)),
        "a retry delay is a delay, not a date"
    );
}

/// The path and query of the webhook requests the suite makes.
pub const WEBHOOK_URI: &str = "/webhooks/conformance";

fn request<'a>(headers: &'a [(String, String)], body: &'a [u8]) -> WebhookRequest<'a> {
    WebhookRequest {
        uri: WEBHOOK_URI,
        query: &[],
        headers,
        body,
    }
}

fn webhooks(harness: &mut impl Harness) {
    let adapter = harness.adapter();
    let body = harness.known_event_body();
    let good = harness.signed_headers(&body);
    adapter
        .verify_signature(&request(&good, &body))
        .expect("a correctly signed delivery is accepted");

    let unsigned: Vec<(String, String)> = good
        .iter()
        .filter(|(name, _)| !name.contains("signature"))
        .cloned()
        .collect();
    assert!(
        adapter
            .verify_signature(&request(&unsigned, &body))
            .is_err(),
        "a delivery without a signature is refused"
    );
    let mut tampered = body.clone();
    tampered.push(b' ');
    assert!(
        adapter
            .verify_signature(&request(&good, &tampered))
            .is_err(),
        "a signature over other bytes is refused"
    );

    let first = adapter.parse_webhook(&body).expect("a known event parses");
    assert!(
        first.iter().any(|e| !matches!(e, WebhookEvent::Ignored(_))),
        "the known event is understood: {first:?}"
    );
    let again = adapter.parse_webhook(&body).expect("a redelivery parses");
    assert_eq!(
        first, again,
        "a redelivery yields the same events to deduplicate"
    );

    let unknown = harness.unknown_event_body();
    let events = adapter
        .parse_webhook(&unknown)
        .expect("an unknown event kind is not an error");
    // Ignored, or, when it is a customer's message of a kind the adapter
    // cannot show, recorded as unsupported content (never dropped).
    assert!(
        events.iter().all(|e| match e {
            WebhookEvent::Ignored(_) => true,
            WebhookEvent::Inbound(m) => matches!(m.content, crate::Content::Unsupported(_)),
            _ => false,
        }),
        "an unknown event kind is ignored or recorded as unsupported: {events:?}"
    );
    assert!(
        adapter.parse_webhook(b"{not json").is_err(),
        "a malformed body is an error"
    );
}

fn no_webhooks(harness: &mut impl Harness) {
    let adapter = harness.adapter();
    let empty = request(&[], b"{}");
    let unsupported = |result: Result<(), crate::AdapterError>| match result {
        Err(e) => assert_eq!(e.class(), ErrorClass::Unsupported, "{e}"),
        Ok(()) => panic!("a channel without webhooks must not accept one"),
    };
    unsupported(adapter.verify_subscription(&empty).map(|_| ()));
    unsupported(adapter.verify_signature(&empty));
    unsupported(adapter.parse_webhook(b"{}").map(|_| ()));
}

fn declarations(harness: &impl Harness) {
    let adapter = harness.adapter();
    let declared = adapter.capabilities();
    assert_eq!(
        declared.interactive,
        declared.carries(ContentKind::Interactive),
        "native choices are a kind the channel carries, and only they are"
    );
    let Some(limits) = declared.choice_limits else {
        return;
    };
    assert!(
        declared.interactive,
        "choice limits on a channel without native choices"
    );
    let check = |what: &str, content: Interactive, fits: bool| {
        let violations = adapter.check_content(harness.tenant(), &Content::Interactive(content));
        assert_eq!(
            violations.is_empty(),
            fits,
            "{what}: {violations:?} against the declared {limits:?}"
        );
    };
    let (buttons, list) = at_limits(&limits);
    check("reply buttons at every limit", buttons.clone(), true);
    check("a list at every limit", list.clone(), true);
    let past = |what: &str, mut content: Interactive, change: &dyn Fn(&mut Interactive)| {
        change(&mut content);
        check(what, content, false);
    };
    past("a longer body", buttons.clone(), &|i| i.body.push('x'));
    let in_buttons = |change: fn(&mut Vec<Choice>)| {
        move |i: &mut Interactive| {
            if let Choices::Buttons { buttons } = &mut i.choices {
                change(buttons);
            }
        }
    };
    past(
        "one button more",
        buttons.clone(),
        &in_buttons(|buttons| {
            buttons.push(Choice {
                id: "more".into(),
                title: "More".into(),
                description: String::new(),
            })
        }),
    );
    past(
        "a longer button title",
        buttons.clone(),
        &in_buttons(|buttons| buttons[0].title.push('x')),
    );
    past(
        "a longer button id",
        buttons,
        &in_buttons(|buttons| buttons[0].id.push('x')),
    );
    let in_list = |change: fn(&mut String, &mut Vec<ChoiceSection>)| {
        move |i: &mut Interactive| {
            if let Choices::List { button, sections } = &mut i.choices {
                change(button, sections);
            }
        }
    };
    past(
        "a longer list button",
        list.clone(),
        &in_list(|button, _| button.push('x')),
    );
    past(
        "one section more",
        list.clone(),
        &in_list(|_, sections| sections.push(sections[0].clone())),
    );
    past(
        "a longer section title",
        list.clone(),
        &in_list(|_, sections| sections[0].title.push('x')),
    );
    past(
        "one row more",
        list.clone(),
        &in_list(|_, sections| {
            let mut row = sections[0].rows[0].clone();
            row.id.push_str("-more");
            sections[0].rows.push(row);
        }),
    );
    past(
        "a longer row title",
        list.clone(),
        &in_list(|_, sections| sections[0].rows[0].title.push('x')),
    );
    past(
        "a longer row description",
        list,
        &in_list(|_, sections| sections[0].rows[0].description.push('x')),
    );
}

/// Reply buttons and a list each at every limit of `limits`: as many
/// buttons, sections and rows as allowed, every text as long as allowed,
/// titles and ids distinct.
fn at_limits(limits: &ChoiceLimits) -> (Interactive, Interactive) {
    // `i` padded to exactly `width` characters.
    let padded = |i: usize, width: usize| format!("{i:x>width$}");
    let buttons = (0..limits.buttons)
        .map(|i| Choice {
            id: padded(i, limits.button_id),
            title: padded(i, limits.button_title),
            description: String::new(),
        })
        .collect();
    let sections = limits.sections.min(limits.rows);
    let mut rows = (0..limits.rows).map(|i| Choice {
        id: padded(i, 8),
        title: padded(i, limits.row_title),
        description: padded(i, limits.row_description),
    });
    // The first section takes the rows the others leave.
    let sections = (0..sections)
        .map(|s| ChoiceSection {
            title: padded(s, limits.section_title),
            rows: rows
                .by_ref()
                .take(if s == 0 {
                    limits.rows - (sections - 1)
                } else {
                    1
                })
                .collect(),
        })
        .collect();
    let interactive = |choices| Interactive {
        header: String::new(),
        body: "x".repeat(limits.body),
        footer: String::new(),
        choices,
    };
    (
        interactive(Choices::Buttons { buttons }),
        interactive(Choices::List {
            button: "x".repeat(limits.list_button),
            sections,
        }),
    )
}
