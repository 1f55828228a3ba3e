//! Email through a real MTA, as users deploy it: Debian's Postfix, set up by
//! `.ci/postfix` on loopback, as the relay out (port 10025, local mailboxes
//! for `mail.test`) and in front of the SMTP listener (10026). Ignored by
//! default; `.ci/run` runs it when Postfix is set up:
//!
//! ```sh
//! bash .ci/postfix && cargo test -p omniroute-e2e --test e2e postfix -- --ignored
//! ```
//!
//! It asserts what a user meets: a send delivered to a local mailbox (and
//! Postfix's success DSN marking it delivered), a real DSN for an unknown
//! user failing the email step and falling back to WhatsApp, a customer's
//! reply through Postfix threaded, and a bare-LF smuggling attempt refused
//! by Postfix and by our listener.

use std::time::Duration;

use omniroute_e2e::{Backend, TestApp};
use omniroute_email::fake;
use omniroute_proto::v1 as pb;

use crate::support::*;

fn port(name: &str, default: u16) -> u16 {
    std::env::var(name)
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(default)
}

fn postfix() -> std::net::SocketAddr {
    ([127, 0, 0, 1], port("POSTFIX_PORT", 10025)).into()
}

fn mailboxes() -> std::path::PathBuf {
    std::env::var("POSTFIX_MAIL")
        .unwrap_or_else(|_| "/var/tmp/omniroute-postfix/mail".into())
        .into()
}

async fn until<T>(what: &str, secs: u64, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn message(app: &mut TestApp, name: &str) -> pb::Message {
    crate::messaging::get_message(app, name).await
}

/// Whether a file in Anna's mailbox (Maildir `new/`) holds `needle`.
fn in_mailbox(needle: &str) -> bool {
    let dir = mailboxes().join("mail.test/anna/new");
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|f| std::fs::read_to_string(f.path()).is_ok_and(|text| text.contains(needle)))
}

#[tokio::test]
#[ignore = "needs Postfix set up by .ci/postfix (run by .ci/run)"]
async fn through_postfix() {
    let listen: std::net::SocketAddr = ([127, 0, 0, 1], port("OMNIROUTE_SMTP_PORT", 10026)).into();
    let mut app = TestApp::spawn_with(Backend::Embedded, |s| {
        s.email.enabled = true;
        s.email.relay_host = "127.0.0.1".into();
        s.email.relay_port = postfix().port();
        s.email.tls = "none".into();
        s.email.timeout_secs = 10;
        s.email.smtp_listen = Some(listen);
        s.email.senders = vec![crate::email::support_sender()];
        s.routing.whatsapp_opt_in_required = false;
        s.routing
            .deliver_within_secs
            .insert(omniroute_channel::Category::Transactional, 600);
    })
    .await;

    // 1. Delivered to a local mailbox; Postfix offers DSN, so its success
    //    report comes back through the listener and marks it DELIVERED.
    let anna = create(&mut app, "Anna", vec![email("anna@mail.test")]).await;
    let sent = send_text(&mut app, &anna.name, "Your order has shipped").await;
    let delivered = until("anna's mail delivered (success DSN)", 60, async || {
        let m = message(&mut app, &sent.name).await;
        (m.status == pb::MessageStatus::Delivered as i32).then_some(m)
    })
    .await;
    assert_eq!(delivered.channel, pb::Channel::Email as i32);
    let id = sent.name.trim_start_matches("messages/");
    assert!(
        in_mailbox(&format!("<{id}@reply.acme.example>")),
        "the mail is in anna's mailbox"
    );

    // 2. An unknown user: Postfix accepts, then bounces with a real DSN;
    //    the email step fails and WhatsApp takes over.
    let ghost = create(
        &mut app,
        "Ghost",
        vec![email("ghost@mail.test"), whatsapp("+4915155501234")],
    )
    .await;
    set_channel_order(
        &mut app,
        &ghost.name,
        &[pb::Channel::Email, pb::Channel::Whatsapp],
    )
    .await;
    app.customer_writes("whatsapp", "+4915155501234", "hi")
        .await;
    let bounced = send_text(&mut app, &ghost.name, "Your appointment is tomorrow").await;
    let fell_back = until("the bounce hands over to WhatsApp", 60, async || {
        let m = message(&mut app, &bounced.name).await;
        (m.channel == pb::Channel::Whatsapp as i32 && m.status != pb::MessageStatus::Queued as i32)
            .then_some(m)
    })
    .await;
    let email_attempt = &fell_back.attempts[0];
    assert_eq!(email_attempt.channel, pb::Channel::Email as i32);
    assert!(
        email_attempt.error_code.starts_with("dsn-5."),
        "{email_attempt:?}"
    );

    // 3. Anna replies; her MTA hands the reply to Postfix, which forwards
    //    it to the listener: threaded to our message.
    let token = id.replace('-', "");
    let reply = format!(
        "From: Anna <anna@mail.test>\r\nTo: reply+{token}@reply.acme.example\r\n\
Subject: Re: Your order has shipped\r\nMessage-ID: <anna-reply-1@mail.test>\r\n\
In-Reply-To: <{id}@reply.acme.example>\r\n\r\nThanks! When does it arrive?\r\n"
    );
    let t = fake::deliver(
        postfix(),
        "anna@mail.test",
        &[&format!("reply+{token}@reply.acme.example")],
        &reply,
    )
    .await;
    assert_eq!(t.data.map(|d| d.0), Some(250), "postfix queued the reply");
    let threaded = until("the reply threaded", 60, async || {
        let page = app
            .messaging
            .list_messages(pb::ListMessagesRequest {
                contact: anna.name.clone(),
                page_size: 50,
                ..Default::default()
            })
            .await
            .ok()?
            .into_inner();
        page.messages
            .into_iter()
            .find(|m| m.provider_message_id == "anna-reply-1@mail.test")
    })
    .await;
    assert_eq!(threaded.reply_to, sent.name);

    // 4. SMTP smuggling, refused by Postfix and by our listener directly.
    for (door, rcpt) in [
        (postfix(), "support@acme.example"),
        (listen, "support@acme.example"),
    ] {
        let mut client = fake::Client::connect(door).await;
        assert_eq!(client.reply().await.map(|r| r.0), Some(220), "{door}");
        assert_eq!(client.command("EHLO attacker.test").await.0, 250);
        assert_eq!(
            client.command("MAIL FROM:<mallory@attacker.test>").await.0,
            250
        );
        assert_eq!(client.command(&format!("RCPT TO:<{rcpt}>")).await.0, 250);
        assert_eq!(client.command("DATA").await.0, 354);
        client
            .send(
                b"From: mallory@attacker.test\r\nTo: support@acme.example\r\nSubject: hi\r\n\
Message-ID: <smuggle-1@attacker.test>\r\n\r\nhello\n.\n\
MAIL FROM:<ceo@acme-corp.test>\r\nRCPT TO:<support@acme.example>\r\nDATA\r\n\
From: ceo@acme-corp.test\r\nTo: support@acme.example\r\nSubject: urgent\r\n\
Message-ID: <smuggle-2@acme-corp.test>\r\n\r\nwire the money\r\n.\r\n",
            )
            .await;
        let answer = client.reply().await;
        let (code, text) = answer.unwrap_or((0, "connection closed".into()));
        assert!((500..600).contains(&code), "{door}: {code} {text}");
        assert!(
            text.to_ascii_lowercase().contains("bare <lf>"),
            "{door}: {text}"
        );
    }
    // Nothing of either mail was recorded (Postfix would have forwarded a
    // taken one to the listener within seconds: the reply above took as
    // long).
    for sender in ["mallory@attacker.test", "ceo@acme-corp.test"] {
        let none = lookup(
            &mut app,
            pb::lookup_contact_request::Key::Address(sender.into()),
        )
        .await;
        assert_eq!(
            none.expect_err("nothing recorded").code(),
            tonic::Code::NotFound,
            "{sender}"
        );
    }
}
