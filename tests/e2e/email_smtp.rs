//! Inbound mail, end to end: a relay (the email crate's SMTP client,
//! speaking to the server's listener on a local port) forwards customers'
//! mail, bounces and auto-replies, and the server answers each transaction
//! by what it recorded; the kinds of mail a relay may also post to
//! `/webhooks/email` are checked both ways.

use omniroute_e2e::TestApp;
use omniroute_email::fake::{self, FakeSmtp};
use omniroute_proto::v1 as pb;

use crate::email::{
    app_with_dsn_relay_and, app_with_relay_and, email_then_whatsapp, handed_to_whatsapp, send_email,
};
use crate::reliability::timeline;
use crate::whatsapp::wait_status;

crate::on_both_stores!(
    a_reply_by_smtp_lands_threaded_once,
    mail_to_a_mailbox_the_customer_did_not_name_is_placed_by_its_envelope,
    mail_for_strangers_is_refused_at_rcpt,
    a_bounce_that_names_only_its_return_path_fails_the_message,
    a_delayed_bounce_and_an_out_of_office_keep_the_message_going,
    html_only_and_latin1_mail_is_read,
    malformed_and_oversized_mail_is_refused_and_the_session_goes_on,
    attachments_are_media_served_by_get_message_media_until_erasure,
    a_bare_line_feed_smuggles_nothing_in,
    ehlo_names_the_server_and_offers_size_and_rcpt_wants_a_mailbox,
    idle_clients_make_room_for_new_ones,
    a_success_report_ends_the_deadline_where_the_relay_offers_dsn,
    a_relayed_report_ends_the_deadline_without_claiming_delivery,
    without_dsn_acceptance_ends_the_deadline_unless_the_tenant_keeps_it,
);

/// A server with a relay out (offering DSN) and the SMTP listener in (mail
/// up to `max_bytes`); transactional email is handed over after 2 s
/// without a delivery report.
async fn app_with_listener(
    backend: omniroute_e2e::Backend,
    max_bytes: usize,
) -> (TestApp, FakeSmtp) {
    app_with_dsn_relay_and(backend, |s| {
        s.email.smtp_listen = Some("127.0.0.1:0".parse().unwrap());
        s.email.smtp_max_message_bytes = max_bytes;
        s.routing
            .deliver_within_secs
            .insert(omniroute_channel::Category::Transactional, 2);
    })
    .await
}

fn listener(app: &TestApp) -> std::net::SocketAddr {
    app.smtp_addr.expect("the smtp listener is on")
}

/// How a relay hands mail in.
#[derive(Debug, Clone, Copy)]
enum Way {
    Smtp,
    Http,
}

const WAYS: [Way; 2] = [Way::Smtp, Way::Http];

impl Way {
    fn tag(self) -> &'static str {
        match self {
            Way::Smtp => "smtp",
            Way::Http => "http",
        }
    }

    /// Hands `mail` in for support@acme.example; the answer (250 or 200
    /// when taken).
    async fn hand_in(self, app: &TestApp, from: &str, mail: &str) -> u16 {
        match self {
            Way::Smtp => fake::deliver(listener(app), from, &["support@acme.example"], mail)
                .await
                .data
                .map_or(0, |d| d.0),
            Way::Http => crate::email::post_mail(app, mail, None).await.status,
        }
    }

    fn taken(self) -> u16 {
        match self {
            Way::Smtp => 250,
            Way::Http => 200,
        }
    }
}

async fn by_address(app: &mut TestApp, address: &str) -> Result<pb::Contact, tonic::Status> {
    crate::support::lookup(
        app,
        pb::lookup_contact_request::Key::Address(address.into()),
    )
    .await
}

fn token(message: &pb::Message) -> String {
    message
        .name
        .trim_start_matches("messages/")
        .replace('-', "")
}

async fn a_reply_by_smtp_lands_threaded_once(app: TestApp) {
    let (mut app, _relay) = app_with_listener(app.backend(), 1 << 20).await;
    let accepted = send_email(&mut app, "fiona@example.com", "Your order has shipped").await;
    wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
    let to = format!("reply+{}@reply.acme.example", token(&accepted));
    let reply = format!(
        "From: Fiona <fiona@example.com>\r\nTo: {to}\r\nSubject: Re: Your order has shipped\r\n\
Message-ID: <fiona-1@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
.Thanks! When does it arrive?\r\n\r\nOn Tue, ACME Support wrote:\r\n> Your order has shipped\r\n"
    );
    for attempt in ["first", "redelivered"] {
        let t = fake::deliver(listener(&app), "fiona@example.com", &[&to], &reply).await;
        assert_eq!(t.rcpt, [250], "{attempt}");
        assert_eq!(t.data.as_ref().map(|d| d.0), Some(250), "{attempt}: {t:?}");
    }
    let messages = timeline(&mut app, &accepted.contact).await;
    assert_eq!(messages.len(), 2, "the reply, once: {messages:#?}");
    let inbound = messages
        .iter()
        .find(|m| m.direction == pb::Direction::Inbound as i32)
        .expect("the reply");
    assert_eq!(inbound.reply_to, accepted.name, "threaded");
    assert_eq!(inbound.provider_message_id, "fiona-1@example.com");
    match &inbound.content.as_ref().unwrap().kind {
        // The leading dot came through dot-stuffing intact; the quote is cut.
        Some(pb::content::Kind::Text(t)) => assert_eq!(t.body, ".Thanks! When does it arrive?"),
        other => panic!("{other:?}"),
    }
}

async fn mail_to_a_mailbox_the_customer_did_not_name_is_placed_by_its_envelope(app: TestApp) {
    let (mut app, _relay) = app_with_listener(app.backend(), 1 << 20).await;
    // Gustav wrote to a colleague and put the support mailbox in Bcc: only
    // the envelope names the mailbox.
    let mail = "From: gustav@example.com\r\nTo: colleague@other.example\r\n\
Subject: Broken parcel\r\nMessage-ID: <gustav-1@example.com>\r\n\r\nThe parcel arrived broken.\r\n";
    let t = fake::deliver(
        listener(&app),
        "gustav@example.com",
        &["support@acme.example"],
        mail,
    )
    .await;
    assert_eq!(t.data.map(|d| d.0), Some(250));
    let found = by_address(&mut app, "gustav@example.com")
        .await
        .expect("the sender became a contact");
    let messages = timeline(&mut app, &found.name).await;
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(messages[0].provider_message_id, "gustav-1@example.com");
}

async fn mail_for_strangers_is_refused_at_rcpt(app: TestApp) {
    let (mut app, _relay) = app_with_listener(app.backend(), 1 << 20).await;
    let mail = "From: hanna@example.com\r\nTo: someone@elsewhere.example\r\n\
Subject: Hello\r\nMessage-ID: <hanna-1@example.com>\r\n\r\nHello\r\n";
    let t = fake::deliver(
        listener(&app),
        "hanna@example.com",
        &["someone@elsewhere.example", "support@acme.example.evil"],
        mail,
    )
    .await;
    assert_eq!(t.rcpt, [550, 550], "no relaying, no strangers");
    assert_eq!(t.data, None);
    let none = by_address(&mut app, "hanna@example.com")
        .await
        .expect_err("nothing stored");
    assert_eq!(none.code(), tonic::Code::NotFound);
}

async fn a_bounce_that_names_only_its_return_path_fails_the_message(app: TestApp) {
    let (mut app, relay) = app_with_listener(app.backend(), 1 << 20).await;
    let accepted = email_then_whatsapp(&mut app, "Jonas", "4915155500044").await;
    wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
    // The relay's envelope sender is the bounce address of this message.
    let return_path = relay.received()[0].mail_from.clone();
    assert_eq!(
        return_path,
        format!("bounces+{}@reply.acme.example", token(&accepted))
    );
    let id = accepted.name.trim_start_matches("messages/");
    let bounce = fake::dsn_without_original(id, "failed", "5.1.1");
    let t = fake::deliver(listener(&app), "", &[&return_path], &bounce).await;
    assert_eq!(t.data.map(|d| d.0), Some(250));
    crate::email::bounced_then_whatsapp(&mut app, &accepted.name).await;
}

async fn a_delayed_bounce_and_an_out_of_office_keep_the_message_going(app: TestApp) {
    let (mut app, relay) = app_with_listener(app.backend(), 1 << 20).await;
    let accepted = email_then_whatsapp(&mut app, "Karla", "4915155500055").await;
    wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
    let return_path = relay.received()[0].mail_from.clone();
    let id = accepted.name.trim_start_matches("messages/");
    let delayed = fake::dsn_without_original(id, "delayed", "4.4.7");
    let t = fake::deliver(listener(&app), "", &[&return_path], &delayed).await;
    assert_eq!(t.data.map(|d| d.0), Some(250));
    // An out-of-office goes to the return path too (RFC 3834).
    let away = "From: karla@example.com\r\nTo: support@acme.example\r\nSubject: Away\r\n\
Message-ID: <away-karla@example.com>\r\nAuto-Submitted: auto-replied\r\n\r\nBack on Monday.\r\n";
    let t = fake::deliver(listener(&app), "", &[&return_path], away).await;
    assert_eq!(t.data.map(|d| d.0), Some(250));
    let message = crate::messaging::get_message(&mut app, &accepted.name).await;
    assert_eq!(
        message.status,
        pb::MessageStatus::Sent as i32,
        "still pending on email"
    );
    let messages = timeline(&mut app, &accepted.contact).await;
    let auto = messages
        .iter()
        .find(|m| m.provider_message_id == "away-karla@example.com")
        .expect("the out-of-office is recorded");
    assert_eq!(auto.reply_to, accepted.name, "threaded by its return path");
    // Neither the delay nor the auto-reply stops the deadline's hand-over.
    handed_to_whatsapp(&mut app, &accepted.name, "the fallback was canceled").await;
}

async fn html_only_and_latin1_mail_is_read(app: TestApp) {
    let (mut app, _relay) = app_with_listener(app.backend(), 1 << 20).await;
    for way in WAYS {
        let from = format!("lena-{}@example.com", way.tag());
        let html = format!(
            "From: {from}\r\nTo: support@acme.example\r\nSubject: Hi\r\n\
Message-ID: <lena-1-{}@example.com>\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<p>My <b>order</b> is late</p>\r\n",
            way.tag()
        );
        let latin1 = format!(
            "From: {from}\r\nTo: support@acme.example\r\nSubject: =?ISO-8859-1?Q?Gr=FC=DFe?=\r\n\
Message-ID: <lena-2-{}@example.com>\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\nSch=F6ne Gr=FC=DFe aus K=F6ln\r\n",
            way.tag()
        );
        for mail in [&html, &latin1] {
            assert_eq!(way.hand_in(&app, &from, mail).await, way.taken(), "{way:?}");
        }
        let contact = by_address(&mut app, &from).await.unwrap();
        let messages = timeline(&mut app, &contact.name).await;
        let text = |id: &str| match messages
            .iter()
            .find(|m| m.provider_message_id == id)
            .and_then(|m| m.content.as_ref()?.kind.clone())
        {
            Some(pb::content::Kind::Text(t)) => t,
            other => panic!("{id}: {other:?}"),
        };
        let html = text(&format!("lena-1-{}@example.com", way.tag()));
        assert!(html.html_body.contains("<b>order</b>"), "{html:?}");
        assert!(
            html.body.contains("order"),
            "a text for agents too: {html:?}"
        );
        let latin1 = text(&format!("lena-2-{}@example.com", way.tag()));
        assert_eq!(latin1.body, "Schöne Grüße aus Köln");
        assert_eq!(latin1.subject, "Grüße");
    }
}

async fn malformed_and_oversized_mail_is_refused_and_the_session_goes_on(app: TestApp) {
    let (mut app, _relay) = app_with_listener(app.backend(), 2048).await;
    let garbage = "this is not an email at all\r\n";
    let refused = crate::email::post_mail(&app, garbage, None).await;
    assert_eq!(refused.status, 400, "by HTTP: {refused:?}");
    let t = fake::deliver(
        listener(&app),
        "x@example.com",
        &["support@acme.example"],
        garbage,
    )
    .await;
    let (code, text) = t.data.expect("answered");
    assert_eq!(code, 554, "{text}");
    let big = format!(
        "From: max@example.com\r\nTo: support@acme.example\r\nSubject: Big\r\n\
Message-ID: <max-1@example.com>\r\n\r\n{}\r\n",
        vec!["x".repeat(76); 40].join("\r\n")
    );
    let t = fake::deliver(
        listener(&app),
        "max@example.com",
        &["support@acme.example"],
        &big,
    )
    .await;
    assert_eq!(t.data.map(|d| d.0), Some(552));
    // Nothing of either was stored; a normal mail still goes through.
    let none = by_address(&mut app, "max@example.com").await;
    assert_eq!(none.expect_err("not stored").code(), tonic::Code::NotFound);
    let fine = "From: max@example.com\r\nTo: support@acme.example\r\nSubject: Small\r\n\
Message-ID: <max-2@example.com>\r\n\r\nshort\r\n";
    let t = fake::deliver(
        listener(&app),
        "max@example.com",
        &["support@acme.example"],
        fine,
    )
    .await;
    assert_eq!(t.data.map(|d| d.0), Some(250));
}

async fn attachments_are_media_served_by_get_message_media_until_erasure(app: TestApp) {
    let (mut app, _relay) = app_with_listener(app.backend(), 1 << 20).await;
    let pdf: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let encoded = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&pdf)
    };
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    for way in WAYS {
        let from = format!("paula-{}@example.com", way.tag());
        let mail = format!(
            "From: Paula <{from}>\r\nTo: support@acme.example\r\nSubject: My invoice\r\n\
Message-ID: <paula-1-{tag}@example.com>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe invoice is wrong, see attached.\r\n\
--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"invoice.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b1--\r\n",
            lines.join("\r\n"),
            tag = way.tag()
        );
        for _ in 0..2 {
            assert_eq!(
                way.hand_in(&app, &from, &mail).await,
                way.taken(),
                "{way:?}"
            );
        }
        let contact = by_address(&mut app, &from).await.unwrap();
        let messages = timeline(&mut app, &contact.name).await;
        assert_eq!(
            messages.len(),
            2,
            "the text and the attachment, once: {messages:#?}"
        );
        let attachment = messages
            .iter()
            .find(|m| m.provider_message_id == format!("paula-1-{}@example.com#1", way.tag()))
            .expect("the attachment is a message of its own");
        match &attachment.content.as_ref().unwrap().kind {
            Some(pb::content::Kind::Media(m)) => {
                assert_eq!(m.kind, pb::MediaKind::Document as i32);
                assert_eq!(m.filename, "invoice.pdf");
                assert_eq!(m.mime_type, "application/pdf");
                assert_eq!(m.sha256, omniroute_channel::signature::sha256_hex(&pdf));
            }
            other => panic!("{other:?}"),
        }
        let (first, bytes) = crate::support::download_media(&mut app, &attachment.name).await;
        assert_eq!(
            first,
            (
                "application/pdf".to_owned(),
                "invoice.pdf".to_owned(),
                pdf.len() as i64
            )
        );
        assert_eq!(bytes, pdf);

        app.contacts
            .delete_contact(pb::DeleteContactRequest {
                name: contact.name.clone(),
            })
            .await
            .expect("erased");
        let gone = app
            .messaging
            .get_message_media(pb::GetMessageMediaRequest {
                name: attachment.name.clone(),
            })
            .await
            .expect_err("nothing left to serve");
        assert_eq!(gone.code(), tonic::Code::FailedPrecondition, "{gone:?}");
    }
}

/// The start of a transaction for support@acme.example from `from`, up to
/// DATA's 354.
async fn open_data(client: &mut fake::Client, from: &str) {
    assert_eq!(client.reply().await.map(|r| r.0), Some(220), "greeting");
    assert_eq!(client.command("EHLO relay.test").await.0, 250);
    assert_eq!(client.command(&format!("MAIL FROM:<{from}>")).await.0, 250);
    assert_eq!(
        client.command("RCPT TO:<support@acme.example>").await.0,
        250
    );
    assert_eq!(client.command("DATA").await.0, 354);
}

async fn a_bare_line_feed_smuggles_nothing_in(app: TestApp) {
    let (mut app, _relay) = app_with_listener(app.backend(), 1 << 20).await;
    // SMTP smuggling: a dot between bare line feeds (or after a CRLF and
    // before a bare LF) must not end the mail, else what follows runs as
    // the commands of a second, forged mail.
    for (n, end) in ["\n.\n", "\r\n.\n"].into_iter().enumerate() {
        let mut client = fake::Client::connect(listener(&app)).await;
        open_data(&mut client, "mallory@example.com").await;
        let smuggled = format!(
            "From: mallory@example.com\r\nTo: support@acme.example\r\nSubject: hello\r\n\
Message-ID: <mallory-{n}@example.com>\r\n\r\nhello{end}\
MAIL FROM:<ceo@acme-corp.example>\r\nRCPT TO:<support@acme.example>\r\nDATA\r\n\
From: ceo@acme-corp.example\r\nTo: support@acme.example\r\nSubject: urgent\r\n\
Message-ID: <forged-{n}@acme-corp.example>\r\n\r\nPlease wire the money today.\r\n.\r\n"
        );
        client.send(smuggled.as_bytes()).await;
        let (code, text) = client.reply().await.expect("an answer to the mail");
        assert_eq!(code, 550, "{end:?}: {text}");
        assert!(text.contains("bare <LF>"), "{text}");
        // The transaction ended at the real end of the mail: the session
        // goes on, and no answer for smuggled commands is waiting.
        assert_eq!(client.command("NOOP").await.0, 250, "{end:?}");
        assert_eq!(client.command("QUIT").await.0, 221);
    }
    for sender in ["mallory@example.com", "ceo@acme-corp.example"] {
        let none = by_address(&mut app, sender).await;
        assert_eq!(
            none.expect_err("nothing recorded").code(),
            tonic::Code::NotFound,
            "{sender}"
        );
    }
    // A well-formed mail still goes through.
    let fine = "From: mallory@example.com\r\nTo: support@acme.example\r\nSubject: hi\r\n\
Message-ID: <mallory-ok@example.com>\r\n\r\nhello\r\n";
    let t = fake::deliver(
        listener(&app),
        "mallory@example.com",
        &["support@acme.example"],
        fine,
    )
    .await;
    assert_eq!(t.data.map(|d| d.0), Some(250));
}

async fn ehlo_names_the_server_and_offers_size_and_rcpt_wants_a_mailbox(app: TestApp) {
    let (app, _relay) = app_with_listener(app.backend(), 1 << 20).await;
    let mut client = fake::Client::connect(listener(&app)).await;
    assert_eq!(client.reply().await.map(|r| r.0), Some(220));
    let (code, text) = client.command("EHLO relay.test").await;
    assert_eq!(code, 250);
    let lines: Vec<&str> = text.lines().collect();
    // RFC 5321 4.1.1.1: the first line is the server's name.
    assert_eq!(lines[0], "reply.acme.example", "{text}");
    assert!(lines.contains(&"SIZE 1048576"), "{text}");
    // A mail declared larger than the limit is refused before it is sent.
    let (code, text) = client
        .command("MAIL FROM:<max@example.com> SIZE=28311552")
        .await;
    assert_eq!((code, text.starts_with("5.3.4")), (552, true), "{text}");
    assert_eq!(
        client
            .command("MAIL FROM:<max@example.com> SIZE=2048 BODY=8BITMIME")
            .await
            .0,
        250
    );
    // Two `@`: not a mailbox, even when it ends in our reply domain.
    let (code, text) = client
        .command("RCPT TO:<anna@evil.example@reply.acme.example>")
        .await;
    assert_eq!(code, 553, "{text}");
    assert_eq!(
        client.command("RCPT TO:<support@acme.example>").await.0,
        250
    );
    assert_eq!(client.command("QUIT").await.0, 221);
}

async fn idle_clients_make_room_for_new_ones(app: TestApp) {
    let (app, _relay) = app_with_relay_and(app.backend(), |s| {
        s.email.smtp_listen = Some("127.0.0.1:0".parse().unwrap());
        s.email.smtp_max_connections = 3;
        // Long enough that only making room can let the fourth in.
        s.email.smtp_idle_timeout_secs = 300;
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        let mut client = fake::Client::connect(listener(&app)).await;
        assert_eq!(client.reply().await.map(|r| r.0), Some(220));
        assert_eq!(client.command("EHLO idle.test").await.0, 250);
        idle.push(client);
    }
    // Every session is taken and waits for a command: a new client is
    // greeted anyway (not after the idle timeout) ...
    let mut fourth = fake::Client::connect(listener(&app)).await;
    let greeting = tokio::time::timeout(std::time::Duration::from_secs(10), fourth.reply())
        .await
        .expect("greeted while the others idle");
    assert_eq!(greeting.map(|r| r.0), Some(220));
    // ... because the one idle longest was closed with 421.
    let (code, text) = idle[0].reply().await.expect("told why");
    assert_eq!(code, 421, "{text}");
    assert_eq!(idle[0].reply().await, None, "and disconnected");
    // The newcomer is served in full.
    assert_eq!(fourth.command("EHLO relay.test").await.0, 250);
    assert_eq!(fourth.command("MAIL FROM:<nora@example.com>").await.0, 250);
    assert_eq!(
        fourth.command("RCPT TO:<support@acme.example>").await.0,
        250
    );
    assert_eq!(fourth.command("DATA").await.0, 354);
    fourth
        .send(
            b"From: nora@example.com\r\nTo: support@acme.example\r\nSubject: hi\r\n\
Message-ID: <nora-1@example.com>\r\n\r\nhello\r\n.\r\n",
        )
        .await;
    assert_eq!(fourth.reply().await.map(|r| r.0), Some(250));
}

/// What the route says the first step's deadline can see, and the deadline.
fn first_step(message: &pb::Message) -> (i32, Option<i64>) {
    let step = &message.route.as_ref().expect("a route").steps[0];
    (
        step.deadline_evidence,
        step.deliver_within.as_ref().map(|d| d.seconds),
    )
}

async fn a_success_report_ends_the_deadline_where_the_relay_offers_dsn(app: TestApp) {
    let (mut app, relay) = app_with_listener(app.backend(), 1 << 20).await;
    let accepted = email_then_whatsapp(&mut app, "Lotte", "4915155500066").await;
    assert_eq!(
        first_step(&accepted),
        (pb::DeliveryEvidence::Report as i32, Some(2)),
        "the deadline waits for a delivery report"
    );
    wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
    // The relay was asked for reports of delivery (RFC 3461).
    let mail = relay.received()[0].clone();
    let id = accepted.name.trim_start_matches("messages/");
    assert_eq!(mail.mail_parameter("RET"), Some("HDRS"));
    assert_eq!(mail.mail_parameter("ENVID"), Some(id));
    assert_eq!(
        mail.rcpt_parameters[0],
        [
            "NOTIFY=SUCCESS,FAILURE,DELAY".to_owned(),
            "ORCPT=rfc822;lotte@example.com".to_owned()
        ]
    );
    // The receiving MTA's success report comes back to our return path.
    let report = mail.delivery_report("delivered").expect("asked for");
    let t = fake::deliver(listener(&app), "", &[&mail.mail_from], &report).await;
    assert_eq!(t.data.map(|d| d.0), Some(250));
    let delivered = wait_status(&mut app, &accepted.name, pb::MessageStatus::Delivered).await;
    // Delivered on email: the watch ended with the report, nothing falls
    // back (a delivered report deletes the watch in its transaction).
    assert_eq!(delivered.channel, pb::Channel::Email as i32);
    assert_eq!(delivered.attempts.len(), 1, "{delivered:#?}");
}

async fn a_relayed_report_ends_the_deadline_without_claiming_delivery(app: TestApp) {
    let (mut app, relay) = app_with_listener(app.backend(), 1 << 20).await;
    let accepted = email_then_whatsapp(&mut app, "Mona", "4915155500077").await;
    wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
    let mail = relay.received()[0].clone();
    // Handed on to a server without DSN: no report of delivery will come.
    let report = mail.delivery_report("relayed").expect("asked for");
    let t = fake::deliver(listener(&app), "", &[&mail.mail_from], &report).await;
    assert_eq!(t.data.map(|d| d.0), Some(250));
    // The deadline (2 s) comes and ends without a fallback.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let ended = loop {
        let m = crate::messaging::get_message(&mut app, &accepted.name).await;
        if m.status_history
            .iter()
            .any(|h| h.reason.contains("the deadline ends"))
        {
            break m;
        }
        assert!(tokio::time::Instant::now() < deadline, "{m:#?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        ended.status,
        pb::MessageStatus::Sent as i32,
        "not delivered"
    );
    assert_eq!(ended.channel, pb::Channel::Email as i32);
    assert_eq!(ended.attempts.len(), 1, "no fallback: {ended:#?}");
}

async fn without_dsn_acceptance_ends_the_deadline_unless_the_tenant_keeps_it(app: TestApp) {
    let backend = app.backend();
    drop(app);
    let deadline = |s: &mut omniroute::Settings| {
        s.email.smtp_listen = Some("127.0.0.1:0".parse().unwrap());
        s.routing
            .deliver_within_secs
            .insert(omniroute_channel::Category::Transactional, 1);
    };
    // By default a relay's 250 is the last word: no deadline to miss on a
    // relay that cannot report delivery; a bounce still hands over.
    let (mut app, relay) = app_with_relay_and(backend, deadline).await;
    let second = email_then_whatsapp(&mut app, "Nils", "4915155500088").await;
    assert_eq!(
        first_step(&second),
        (pb::DeliveryEvidence::Acceptance as i32, None),
        "the route says the relay's acceptance ends the deadline"
    );
    let id = second.name.trim_start_matches("messages/");
    wait_status(&mut app, &second.name, pb::MessageStatus::Sent).await;
    assert!(
        relay.received()[0].mail_parameters.is_empty(),
        "no DSN asked"
    );
    let bounce = fake::dsn(id, "failed", "5.1.1", false);
    assert_eq!(
        crate::email::post_mail(&app, &bounce, None).await.status,
        200
    );
    crate::email::bounced_then_whatsapp(&mut app, &second.name).await;
    drop(app);

    // A tenant that keeps the deadline: it hands over, saying why.
    let (mut app, _relay) = app_with_relay_and(backend, |s| {
        deadline(s);
        s.routing.deadline_without_delivery_reports = "keep".into();
    })
    .await;
    let warmed = send_email(&mut app, "warm@example.com", "hello").await;
    wait_status(&mut app, &warmed.name, pb::MessageStatus::Sent).await;
    let kept = email_then_whatsapp(&mut app, "Olaf", "4915155500099").await;
    assert_eq!(
        first_step(&kept),
        (pb::DeliveryEvidence::None as i32, Some(1)),
        "the route says the deadline sees no delivery"
    );
    let handed = handed_to_whatsapp(&mut app, &kept.name, "the kept deadline").await;
    assert!(
        handed
            .status_history
            .iter()
            .any(|h| h.reason.contains("(it reports no delivery)")),
        "{:#?}",
        handed.status_history
    );
}
