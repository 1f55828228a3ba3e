//! Customers' mail posted to the adapter as raw MIME: the sender, the
//! business account it came to, threading, the text without its quoted
//! history, HTML-only mail, other charsets, and what is not an email.
//! (The adapter's connection pool lives on a Tokio runtime, hence the
//! async tests.)

use omniroute_channel::content::Text;
use omniroute_channel::{Adapter, Channel, Content, InboundMessage, WebhookEvent, WebhookRequest};
use omniroute_email::{EmailAdapter, SIGNATURE_HEADER};

fn adapter() -> EmailAdapter {
    EmailAdapter::new(omniroute_email::fake::config(25)).unwrap()
}

fn inbound(raw: &str) -> InboundMessage {
    let events = adapter().parse_webhook(raw.as_bytes()).expect("parses");
    match events.as_slice() {
        [WebhookEvent::Inbound(m)] => m.clone(),
        other => panic!("{other:?}"),
    }
}

fn text(m: &InboundMessage) -> &Text {
    match &m.content {
        Content::Text(t) => t,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_reply_to_our_mail_is_threaded_by_its_reply_address() {
    let raw = "From: Anna Schmidt <Anna.Schmidt@example.com>\r\n\
To: ACME Support <reply+01a232b11186710f972d02f288bc6632@reply.acme.example>\r\n\
Subject: Re: Your order has shipped\r\n\
Message-ID: <CAF=abc123@mail.example.com>\r\n\
Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Thanks! When will it arrive?\r\n\
\r\n\
On Tue, 1 Dec 2026 at 09:00, ACME Support <support@acme.example> wrote:\r\n\
> Your order has shipped.\r\n";
    let m = inbound(raw);
    assert_eq!(m.channel, Channel::Email);
    assert_eq!(m.account, "support@acme.example", "the sender's line");
    assert_eq!(m.from.key(), "anna.schmidt@example.com");
    assert_eq!(m.profile_name.as_deref(), Some("Anna Schmidt"));
    assert_eq!(m.provider_message_id, "CAF=abc123@mail.example.com");
    assert_eq!(
        m.reply_to.as_deref(),
        Some("01a232b1-1186-710f-972d-02f288bc6632@reply.acme.example"),
        "our Message-ID, from the reply token"
    );
    let t = text(&m);
    assert_eq!(t.subject, "Re: Your order has shipped");
    assert_eq!(
        t.body, "Thanks! When will it arrive?",
        "quoted history left out"
    );
}

#[tokio::test]
async fn without_the_token_in_reply_to_threads() {
    let raw = "From: ben@example.com\r\nTo: support@acme.example\r\nSubject: Re: hi\r\n\
Message-ID: <m2@example.com>\r\nIn-Reply-To: <01a232b1-1186-710f-972d-02f288bc6632@reply.acme.example>\r\n\
\r\nYes please.\r\n";
    let m = inbound(raw);
    assert_eq!(m.account, "support@acme.example");
    assert_eq!(
        m.reply_to.as_deref(),
        Some("01a232b1-1186-710f-972d-02f288bc6632@reply.acme.example")
    );
    assert_eq!(text(&m).body, "Yes please.");
}

#[tokio::test]
async fn html_only_mail_and_other_charsets_are_read() {
    let raw = "From: carla@example.com\r\nTo: support@acme.example\r\nSubject: =?ISO-8859-1?Q?R=FCckruf?=\r\n\
Message-ID: <m3@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=ISO-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\n<p>Bitte r=FCckrufen: <b>heute</b></p>\r\n";
    let m = inbound(raw);
    let t = text(&m);
    assert_eq!(t.subject, "Rückruf");
    assert!(t.body.contains("Bitte rückrufen"), "{t:?}");
    assert!(
        t.html_body.contains("<b>heute</b>"),
        "the HTML is kept: {t:?}"
    );
}

#[tokio::test]
async fn what_is_not_an_email_is_refused_or_ignored_never_a_panic() {
    let a = adapter();
    assert!(
        a.parse_webhook(b"").is_err(),
        "an empty body is not an email"
    );
    for raw in [
        &b"\xff\xfe\x00garbage"[..],
        b"Subject: no sender\r\n\r\nhi",
        b"From: not an address\r\nMessage-ID: <x@y>\r\n\r\nhi",
        b"From: a@example.com\r\n\r\nno message id",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n--x",
    ] {
        match a.parse_webhook(raw) {
            Ok(events) => assert!(
                events.iter().all(|e| matches!(e, WebhookEvent::Ignored(_))),
                "{raw:?}: {events:?}"
            ),
            Err(e) => assert_eq!(e.code(), "malformed_email", "{raw:?}"),
        }
    }
}

#[tokio::test]
async fn posts_are_verified_over_the_raw_body() {
    let a = adapter();
    let body = b"From: a@example.com\r\n\r\nhi";
    let good = format!(
        "sha256={}",
        omniroute_channel::signature::hmac_sha256_hex("inbound-secret", body)
    );
    let request = |value: &str| -> Result<(), _> {
        let headers = vec![(SIGNATURE_HEADER.to_owned(), value.to_owned())];
        a.verify_signature(&WebhookRequest {
            uri: "/webhooks/test",
            query: &[],
            headers: &headers,
            body,
        })
    };
    assert!(request(&good).is_ok());
    assert!(request("sha256=00").is_err());
    let other = format!(
        "sha256={}",
        omniroute_channel::signature::hmac_sha256_hex("other", body)
    );
    assert!(request(&other).is_err());
    let none = a.verify_signature(&WebhookRequest {
        uri: "/webhooks/test",
        query: &[],
        headers: &[],
        body,
    });
    assert_eq!(none.unwrap_err().code(), "missing_signature");
}

#[tokio::test]
async fn a_bounce_fails_our_message_and_a_delay_keeps_it_pending() {
    let a = adapter();
    let id = "01a232b1-1186-710f-972d-02f288bc6632";
    for as_headers in [false, true] {
        let events = a
            .parse_webhook(omniroute_email::fake::dsn(id, "failed", "5.1.1", as_headers).as_bytes())
            .unwrap();
        let [WebhookEvent::Status(update)] = events.as_slice() else {
            panic!("{events:?}");
        };
        assert_eq!(update.channel, Channel::Email);
        assert_eq!(
            update.message_id.as_deref(),
            Some(id),
            "our id, from the Message-ID"
        );
        assert_eq!(
            update.provider_message_id,
            format!("{id}@reply.acme.example")
        );
        assert_eq!(update.status, omniroute_channel::DeliveryStatus::Failed);
        let error = update.error.as_ref().unwrap();
        assert_eq!(error.class(), omniroute_channel::ErrorClass::Permanent);
        assert_eq!(error.code(), "dsn-5.1.1");
        assert!(
            error.message().contains("Recipient address rejected"),
            "{error:?}"
        );
    }
    let events = a
        .parse_webhook(omniroute_email::fake::dsn(id, "delayed", "4.4.7", true).as_bytes())
        .unwrap();
    assert!(
        matches!(events.as_slice(), [WebhookEvent::Ignored(why)] if why.contains("pending")),
        "{events:?}"
    );
}

#[tokio::test]
async fn an_out_of_office_is_marked_automatic() {
    let ooo = "From: anna@example.com\r\nTo: support@acme.example\r\nSubject: Out of office\r\n\
Message-ID: <ooo@example.com>\r\nAuto-Submitted: auto-replied\r\n\r\nI am away until Monday.\r\n";
    assert!(inbound(ooo).automatic);
    let vacation = "From: anna@example.com\r\nTo: support@acme.example\r\nSubject: Away\r\n\
Message-ID: <ooo2@example.com>\r\nX-Autoreply: yes\r\n\r\nAway.\r\n";
    assert!(inbound(vacation).automatic);
    let person = "From: anna@example.com\r\nTo: support@acme.example\r\nSubject: Re: hi\r\n\
Message-ID: <p1@example.com>\r\nAuto-Submitted: no\r\n\r\nThanks.\r\n";
    assert!(!inbound(person).automatic, "Auto-Submitted: no is a person");
}

#[tokio::test]
async fn attachments_become_media_messages_in_the_same_thread() {
    let raw = "From: anna@example.com\r\n\
To: reply+01a232b11186710f972d02f288bc6632@reply.acme.example\r\n\
Subject: Photos\r\nMessage-ID: <photos-1@example.com>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: image/png; name=\"dent.png\"\r\nContent-Disposition: attachment; filename=\"dent.png\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n\
--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"receipt.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjc=\r\n--b--\r\n";
    let events = adapter().parse_webhook(raw.as_bytes()).expect("parses");
    let messages: Vec<&InboundMessage> = events
        .iter()
        .map(|e| match e {
            WebhookEvent::Inbound(m) => m,
            other => panic!("{other:?}"),
        })
        .collect();
    // No text: only the two attachments, each its own message.
    assert_eq!(messages.len(), 2, "{messages:#?}");
    let expected = [
        (
            "photos-1@example.com#1",
            "dent.png",
            "image/png",
            &b"\x89PNG\r\n\x1a\n"[..],
        ),
        (
            "photos-1@example.com#2",
            "receipt.pdf",
            "application/pdf",
            &b"%PDF-1.7"[..],
        ),
    ];
    for (m, (id, filename, mime, bytes)) in messages.iter().zip(expected) {
        assert_eq!(m.provider_message_id, id);
        assert_eq!(
            m.reply_to.as_deref(),
            Some("01a232b1-1186-710f-972d-02f288bc6632@reply.acme.example"),
            "threaded like the mail"
        );
        assert_eq!(m.media_bytes.as_deref(), Some(bytes));
        match &m.content {
            Content::Media(media) => {
                assert_eq!(media.media_id, id);
                assert_eq!(media.filename, filename);
                assert_eq!(media.mime_type, mime);
            }
            other => panic!("{other:?}"),
        }
    }
    match &messages[0].content {
        Content::Media(media) => {
            assert_eq!(media.kind, omniroute_channel::content::MediaKind::Image)
        }
        other => panic!("{other:?}"),
    }
}
