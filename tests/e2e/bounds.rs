//! What a customer sends never makes an answer or an event too big for a
//! stock gRPC client (4 MiB): a message keeps at most 64 KiB of text, 256
//! KiB of HTML and a 998-byte subject, the whole of a cut text is served by
//! GetMessageMedia in chunks, and ListMessages ends a page before it would
//! pass 1 MiB. The clients here have tonic's default limits.

use omniroute_channel::bounds::{MAX_ANSWER_BYTES, SUBJECT_BYTES, TEXT_BODY_BYTES};
use omniroute_e2e::TestApp;
use omniroute_email::fake;
use omniroute_proto::v1 as pb;
use prost::Message as _;

use crate::email::app_with_relay_and;
use crate::events::{next, subscribe};
use crate::support::*;

crate::on_both_stores!(
    a_six_megabyte_mail_is_cut_and_kept_whole,
    a_page_of_messages_ends_before_a_mebibyte,
    a_long_whatsapp_text_is_cut_the_same_way,
);

/// A server with the SMTP listener taking mail up to 10 MiB.
async fn app_with_listener(backend: omniroute_e2e::Backend) -> TestApp {
    let (app, _relay) = app_with_relay_and(backend, |s| {
        s.email.smtp_listen = Some("127.0.0.1:0".parse().unwrap());
        s.email.smtp_max_message_bytes = 10 << 20;
    })
    .await;
    app
}

/// A plain-text mail from `from` to support@acme.example.
fn mail(from: &str, id: &str, subject: &str, body: &str) -> String {
    format!(
        "From: Gina <{from}>\r\nTo: support@acme.example\r\nSubject: {subject}\r\n\
Message-ID: <{id}>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
}

/// `lines` lines of 98 characters and CRLF, numbered, then `END-OF-MAIL`.
fn long_body(lines: usize) -> String {
    let mut body = String::with_capacity(lines * 100 + 16);
    for n in 0..lines {
        body.push_str(&format!("{n:08} {}\r\n", "x".repeat(89)));
    }
    body.push_str("END-OF-MAIL");
    body
}

async fn hand_in(app: &TestApp, from: &str, mail: &str) {
    let addr = app.smtp_addr.expect("the smtp listener is on");
    let t = fake::deliver(addr, from, &["support@acme.example"], mail).await;
    assert_eq!(t.data.map(|d| d.0), Some(250), "taken");
}

async fn contact_of(app: &mut TestApp, address: &str) -> String {
    lookup(
        app,
        pb::lookup_contact_request::Key::Address(address.into()),
    )
    .await
    .expect("the sender's contact")
    .name
}

async fn a_six_megabyte_mail_is_cut_and_kept_whole(app: TestApp) {
    let mut app = app_with_listener(app.backend()).await;
    let mut stream = subscribe(&mut app, pb::SubscribeRequest::default()).await;
    // 6 MB of text under a subject folded to 100,000 characters.
    let body = long_body(60_000);
    let subject = (0..2_000)
        .map(|n| format!("part-{n:05}-{}", "s".repeat(38)))
        .collect::<Vec<_>>()
        .join("\r\n ");
    hand_in(
        &app,
        "gina@example.com",
        &mail("gina@example.com", "big-1@example.com", &subject, &body),
    )
    .await;
    let gina = contact_of(&mut app, "gina@example.com").await;

    // The list and the message are answered, each well under 1 MiB.
    let list = app
        .messaging
        .list_messages(pb::ListMessagesRequest {
            contact: gina.clone(),
            ..Default::default()
        })
        .await
        .expect("the contact's timeline is answered")
        .into_inner();
    assert!(list.encoded_len() <= MAX_ANSWER_BYTES);
    let [listed] = list.messages.as_slice() else {
        panic!("one message: {}", list.messages.len());
    };
    let got = app
        .messaging
        .get_message(pb::GetMessageRequest {
            name: listed.name.clone(),
        })
        .await
        .expect("the message is answered")
        .into_inner()
        .message
        .unwrap();
    let Some(pb::content::Kind::Text(text)) = got.content.as_ref().and_then(|c| c.kind.clone())
    else {
        panic!("a text: {got:?}");
    };
    assert!(text.body.len() <= TEXT_BODY_BYTES, "{}", text.body.len());
    assert!(
        text.body.starts_with("00000000 xxx"),
        "the text's beginning"
    );
    assert!(!text.body.contains("END-OF-MAIL"));
    assert!(
        text.subject.len() <= SUBJECT_BYTES,
        "{}",
        text.subject.len()
    );
    assert!(
        text.subject.starts_with("part-00000-"),
        "{}",
        &text.subject[..40]
    );
    let overflow = text.overflow.expect("says it was cut");
    assert_eq!(overflow.mime_type, "text/plain; charset=utf-8");

    // The whole text, in chunks.
    let ((mime, _, size), whole) = download_media(&mut app, &got.name).await;
    assert_eq!(mime, overflow.mime_type);
    assert_eq!(size, overflow.size_bytes);
    assert_eq!(whole.len() as i64, size);
    let whole = String::from_utf8(whole).expect("utf-8");
    assert!(whole.len() > 5_900_000, "{}", whole.len());
    assert!(whole.starts_with("00000000 xxx") && whole.trim_end().ends_with("END-OF-MAIL"));

    // Its event reaches subscribers, and the stream goes on after it.
    let received = loop {
        let event = next(&mut stream).await;
        if event.r#type == pb::EventType::MessageReceived as i32 {
            break event;
        }
    };
    assert!(received.encoded_len() <= MAX_ANSWER_BYTES);
    hand_in(
        &app,
        "gina@example.com",
        &mail(
            "gina@example.com",
            "small-1@example.com",
            "Hi",
            "Still there?",
        ),
    )
    .await;
    let after = loop {
        let event = next(&mut stream).await;
        if event.r#type == pb::EventType::MessageReceived as i32 {
            break event;
        }
    };
    let Some(pb::event::Payload::Message(small)) = after.payload else {
        panic!("a message event: {after:?}");
    };
    assert_eq!(small.provider_message_id, "small-1@example.com");
}

async fn a_page_of_messages_ends_before_a_mebibyte(app: TestApp) {
    let mut app = app_with_listener(app.backend()).await;
    // 20 mails of about 60 KB: each kept whole, together 1.2 MB.
    let body = long_body(600);
    for n in 0..20 {
        hand_in(
            &app,
            "hal@example.com",
            &mail(
                "hal@example.com",
                &format!("hal-{n}@example.com"),
                "Log",
                &body,
            ),
        )
        .await;
    }
    let hal = contact_of(&mut app, "hal@example.com").await;
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut token = String::new();
    loop {
        let page = app
            .messaging
            .list_messages(pb::ListMessagesRequest {
                contact: hal.clone(),
                page_size: 50,
                page_token: token,
            })
            .await
            .expect("a page")
            .into_inner();
        pages += 1;
        assert!(page.encoded_len() <= MAX_ANSWER_BYTES, "page {pages}");
        assert!(!page.messages.is_empty());
        for message in &page.messages {
            let Some(pb::content::Kind::Text(text)) =
                message.content.as_ref().and_then(|c| c.kind.clone())
            else {
                panic!("a text");
            };
            assert!(text.overflow.is_none(), "60 KB is kept whole");
        }
        seen.extend(page.messages.into_iter().map(|m| m.provider_message_id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert!(pages > 1, "the first page ended before 50 messages");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 20, "every message once");
}

async fn a_long_whatsapp_text_is_cut_the_same_way(mut app: TestApp) {
    let text = format!("{}END-OF-TEXT", "y".repeat(100_000));
    app.customer_writes("whatsapp", "+4915123456789", &text)
        .await;
    let contact = lookup(
        &mut app,
        pb::lookup_contact_request::Key::Identity(whatsapp("+4915123456789")),
    )
    .await
    .expect("the sender's contact")
    .name;
    let messages = crate::reliability::timeline(&mut app, &contact).await;
    let Some(pb::content::Kind::Text(stored)) =
        messages[0].content.as_ref().and_then(|c| c.kind.clone())
    else {
        panic!("a text");
    };
    assert_eq!(stored.body.len(), TEXT_BODY_BYTES);
    let overflow = stored.overflow.expect("cut");
    let ((mime, _, size), whole) = download_media(&mut app, &messages[0].name).await;
    assert_eq!((mime, size), (overflow.mime_type, text.len() as i64));
    assert_eq!(whole, text.as_bytes());
}
