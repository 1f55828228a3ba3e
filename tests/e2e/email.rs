//! Email through an SMTP relay, end to end: the server sends each message
//! routed to email over a real SMTP conversation with a local relay (the
//! email crate's fake), which answers 250, 451 or 550 as scripted.

use omniroute_e2e::TestApp;
use omniroute_email::fake::{FakeSmtp, Stage};
use omniroute_proto::v1 as pb;

use crate::messaging::text_message;
use crate::reliability::timeline;
use crate::support::*;
use crate::whatsapp::wait_status;

crate::on_both_stores!(
    email_goes_out_through_the_relay,
    a_greylisting_relay_is_retried,
    a_rejected_address_falls_back_to_the_next_channel,
    a_customers_reply_by_http_lands_threaded_in_the_timeline,
    a_strangers_mail_to_a_reply_token_names_no_message_of_another_contact,
    a_bounce_fails_the_email_step_and_routing_falls_back,
    templates_render_per_tenant_and_missing_parameters_are_refused,
    one_click_unsubscribe_records_the_opt_out_routing_reads,
    unsubscribing_by_mail_records_the_opt_out,
    an_out_of_office_does_not_cancel_the_fallback,
    an_out_of_office_is_marked_automatic_in_the_api_and_on_the_event,
    a_document_goes_out_attached,
    a_choice_link_records_the_answer_once_after_confirmation,
    marketing_goes_from_its_own_sender_and_its_replies_come_back,
);

pub(crate) const INBOUND_SECRET: &str = "inbound-secret";

/// Posts a raw email to `/webhooks/email`, signed (or with `signature`).
pub(crate) async fn post_mail(
    app: &TestApp,
    raw: &str,
    signature: Option<&str>,
) -> omniroute_e2e::HttpResponse {
    let good = format!(
        "sha256={}",
        omniroute_channel::signature::hmac_sha256_hex(INBOUND_SECRET, raw.as_bytes())
    );
    omniroute_e2e::http(
        app.http_addr,
        "POST",
        "/webhooks/email",
        &[
            ("Content-Type", "message/rfc822"),
            ("X-Omniroute-Signature", signature.unwrap_or(&good)),
        ],
        raw.as_bytes(),
    )
    .await
}

async fn app_with_relay(backend: omniroute_e2e::Backend) -> (TestApp, FakeSmtp) {
    app_with_relay_and(backend, |_| {}).await
}

/// The support address mail goes out from (every category).
pub(crate) fn support_sender() -> omniroute::settings::EmailSender {
    omniroute::settings::EmailSender {
        tenant: "default".into(),
        from_address: "support@acme.example".into(),
        from_name: "ACME Support".into(),
        reply_domain: "reply.acme.example".into(),
        categories: Vec::new(),
    }
}

pub(crate) async fn app_with_relay_and(
    backend: omniroute_e2e::Backend,
    more: impl FnOnce(&mut omniroute::Settings),
) -> (TestApp, FakeSmtp) {
    app_with(FakeSmtp::start().await, backend, more).await
}

/// A server whose relay offers DSN (RFC 3461), as Postfix does.
pub(crate) async fn app_with_dsn_relay_and(
    backend: omniroute_e2e::Backend,
    more: impl FnOnce(&mut omniroute::Settings),
) -> (TestApp, FakeSmtp) {
    let (app, relay) = app_with(FakeSmtp::start_with_dsn().await, backend, more).await;
    // The server learns at start that the relay offers DSN (its EHLO), and
    // checks the connection (NOOP) once it has: routing reads it.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while relay.noops() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay was never asked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    (app, relay)
}

async fn app_with(
    relay: FakeSmtp,
    backend: omniroute_e2e::Backend,
    more: impl FnOnce(&mut omniroute::Settings),
) -> (TestApp, FakeSmtp) {
    let port = relay.port();
    let app = TestApp::spawn_with(backend, |s| {
        s.email.enabled = true;
        s.email.relay_host = "127.0.0.1".into();
        s.email.relay_port = port;
        s.email.tls = "none".into();
        s.email.timeout_secs = 5;
        s.email.webhook_secret = omniroute::settings::Secret::new(INBOUND_SECRET);
        s.email.senders = vec![support_sender()];
        // The fallback test goes on to WhatsApp (the sandbox) without an
        // opt-in record; routing's own tests cover the strict default.
        s.routing.whatsapp_opt_in_required = false;
        more(s);
    })
    .await;
    (app, relay)
}

/// Waits until a bounce (`dsn-5.1.1`) failed the email step of `name` and
/// routing went on to WhatsApp.
pub(crate) async fn bounced_then_whatsapp(app: &mut TestApp, name: &str) {
    let message = handed_to_whatsapp(app, name, "no fallback").await;
    let bounced = message
        .status_history
        .iter()
        .find(|h| h.status == pb::MessageStatus::Failed as i32)
        .expect("the bounce is in the history");
    assert!(bounced.reason.contains("dsn-5.1.1"), "{bounced:?}");
    // The email attempt says what became of it: the bounce failed it.
    let email = &message.attempts[0];
    assert_eq!(email.channel, pb::Channel::Email as i32);
    assert_eq!(
        (email.outcome, email.error_code.as_str()),
        (pb::AttemptOutcome::Permanent as i32, "dsn-5.1.1"),
        "{email:?}"
    );
    assert!(!email.error_message.is_empty(), "{email:?}");
}

pub(crate) async fn send_email(app: &mut TestApp, to: &str, body: &str) -> pb::Message {
    send_ok(app, text_to_address(email(to), body)).await
}

async fn email_goes_out_through_the_relay(app: TestApp) {
    let (mut app, relay) = app_with_relay(app.backend()).await;
    let accepted = send_email(&mut app, "anna@example.com", "Your order has shipped").await;
    let sent = wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
    let id = accepted.name.trim_start_matches("messages/");
    assert_eq!(sent.provider_message_id, format!("{id}@reply.acme.example"));
    let received = relay.received();
    assert_eq!(received.len(), 1);
    let mail = &received[0];
    assert_eq!(mail.rcpt_to, ["anna@example.com"]);
    assert_eq!(
        mail.header("Message-ID"),
        Some(format!("<{id}@reply.acme.example>"))
    );
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Your order has shipped")
    );
    assert_eq!(
        mail.part("text/plain").as_deref(),
        Some("Your order has shipped")
    );
    assert_eq!(sent.attempts.len(), 1);
    assert_eq!(sent.attempts[0].channel, pb::Channel::Email as i32);
}

async fn a_greylisting_relay_is_retried(app: TestApp) {
    let (mut app, relay) = app_with_relay(app.backend()).await;
    relay.fail_next(1, Stage::Data, "451 4.7.1 Greylisted, try again later");
    let accepted = send_email(&mut app, "ben@example.com", "Your code is 4711").await;
    let sent = wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
    assert_eq!(sent.attempts.len(), 2, "{sent:#?}");
    let first = &sent.attempts[0];
    assert_eq!(first.outcome, pb::AttemptOutcome::Transient as i32);
    assert_eq!(first.error_code, "smtp-451");
    assert!(first.error_message.contains("Greylisted"), "{first:?}");
    assert_eq!(relay.received().len(), 1, "delivered once, on the retry");
}

/// A contact with email first and WhatsApp behind it (open: they wrote on
/// WhatsApp), and a transactional message to them accepted.
pub(crate) async fn email_then_whatsapp(
    app: &mut TestApp,
    name: &str,
    digits: &str,
) -> pb::Message {
    let contact = create(
        app,
        name,
        vec![
            email(&format!("{}@example.com", name.to_lowercase())),
            whatsapp(&format!("+{digits}")),
        ],
    )
    .await;
    set_channel_order(
        app,
        &contact.name,
        &[pb::Channel::Email, pb::Channel::Whatsapp],
    )
    .await;
    app.customer_writes("whatsapp", &format!("+{digits}"), "hi")
        .await;
    send_text(app, &contact.name, "Your appointment is tomorrow at 10").await
}

async fn a_rejected_address_falls_back_to_the_next_channel(app: TestApp) {
    let (mut app, relay) = app_with_relay(app.backend()).await;
    relay.fail_next(1, Stage::Rcpt, "550 5.1.1 No such user here");
    // Carla wrote on WhatsApp, so it is open to her behind email.
    let accepted = email_then_whatsapp(&mut app, "Carla", "4915155500011").await;
    assert_eq!(
        accepted.route.as_ref().unwrap().plan,
        [pb::Channel::Email as i32, pb::Channel::Whatsapp as i32]
    );
    let sent = wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
    assert_eq!(sent.channel, pb::Channel::Whatsapp as i32, "{sent:#?}");
    let first = &sent.attempts[0];
    assert_eq!(first.channel, pb::Channel::Email as i32);
    assert_eq!(first.outcome, pb::AttemptOutcome::Permanent as i32);
    assert_eq!(first.error_code, "smtp-550");
    assert!(relay.received().is_empty(), "the relay took nothing");
}

async fn a_customers_reply_by_http_lands_threaded_in_the_timeline(app: TestApp) {
    let (mut app, _relay) = app_with_relay(app.backend()).await;
    let accepted = send_email(&mut app, "dora@example.com", "Your order has shipped").await;
    wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
    let token = accepted
        .name
        .trim_start_matches("messages/")
        .replace('-', "");
    let reply = format!(
        "From: Dora Example <dora@example.com>\r\n\
To: ACME Support <reply+{token}@reply.acme.example>\r\n\
Subject: Re: Your order has shipped\r\n\
Message-ID: <dora-1@example.com>\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
When will it arrive?\r\n\
\r\n\
On Tue, ACME Support wrote:\r\n\
> Your order has shipped\r\n"
    );
    // A bad signature: refused, nothing stored.
    let refused = post_mail(&app, &reply, Some("sha256=00")).await;
    assert_eq!(refused.status, 401, "{refused:?}");
    assert_eq!(
        timeline(&mut app, &accepted.contact).await.len(),
        1,
        "nothing stored"
    );

    assert_eq!(post_mail(&app, &reply, None).await.status, 200);
    assert_eq!(
        post_mail(&app, &reply, None).await.status,
        200,
        "a redelivery"
    );
    let messages = timeline(&mut app, &accepted.contact).await;
    assert_eq!(
        messages.len(),
        2,
        "the reply, once, on the same contact: {messages:#?}"
    );
    let inbound = messages
        .iter()
        .find(|m| m.direction == pb::Direction::Inbound as i32)
        .expect("the reply");
    assert_eq!(inbound.reply_to, accepted.name, "threaded to our message");
    assert_eq!(inbound.provider_message_id, "dora-1@example.com");
    match &inbound.content.as_ref().unwrap().kind {
        Some(pb::content::Kind::Text(t)) => {
            assert_eq!(t.body, "When will it arrive?");
            assert_eq!(t.subject, "Re: Your order has shipped");
        }
        other => panic!("{other:?}"),
    }
}

async fn a_strangers_mail_to_a_reply_token_names_no_message_of_another_contact(app: TestApp) {
    let (mut app, _relay) = app_with_relay(app.backend()).await;
    let accepted = send_email(&mut app, "olga@example.com", "Your invoice").await;
    wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
    let id = accepted.name.trim_start_matches("messages/");
    let token = id.replace('-', "");
    // Someone who saw Olga's mail writes to its reply address, and quotes
    // its Message-ID too.
    let stranger = format!(
        "From: eve@example.com\r\nTo: reply+{token}@reply.acme.example\r\n\
Subject: Re: Your invoice\r\nMessage-ID: <eve-1@example.com>\r\n\
In-Reply-To: <{id}@reply.acme.example>\r\n\r\nWhat is in it?\r\n"
    );
    assert_eq!(post_mail(&app, &stranger, None).await.status, 200);
    let eve = lookup(
        &mut app,
        pb::lookup_contact_request::Key::Address("eve@example.com".into()),
    )
    .await
    .expect("the stranger is a contact of their own");
    let theirs = timeline(&mut app, &eve.name).await;
    assert_eq!(theirs.len(), 1, "{theirs:#?}");
    assert_eq!(
        theirs[0].reply_to, "",
        "no message of another contact is named"
    );
    assert_eq!(
        timeline(&mut app, &accepted.contact).await.len(),
        1,
        "nothing on Olga's timeline"
    );
    // Olga's own answer to the same address is threaded.
    let own = stranger
        .replace("eve@example.com", "olga@example.com")
        .replace("eve-1@", "olga-1@");
    assert_eq!(post_mail(&app, &own, None).await.status, 200);
    let hers = timeline(&mut app, &accepted.contact).await;
    let answer = hers
        .iter()
        .find(|m| m.provider_message_id == "olga-1@example.com")
        .expect("recorded");
    assert_eq!(answer.reply_to, accepted.name);
}

async fn a_bounce_fails_the_email_step_and_routing_falls_back(app: TestApp) {
    let (mut app, _relay) = app_with_relay(app.backend()).await;
    let accepted = email_then_whatsapp(&mut app, "Erik", "4915155500022").await;
    wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
    // The relay took it; the recipient's server bounces it afterwards.
    let id = accepted.name.trim_start_matches("messages/");
    let bounce = omniroute_email::fake::dsn(id, "failed", "5.1.1", false);
    assert_eq!(post_mail(&app, &bounce, None).await.status, 200);
    bounced_then_whatsapp(&mut app, &accepted.name).await;
}

async fn templates_render_per_tenant_and_missing_parameters_are_refused(app: TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let tenant = dir.path().join("default");
    std::fs::create_dir(&tenant).unwrap();
    std::fs::write(
        tenant.join("appointment.en.subject"),
        "Your appointment on {{ day }}",
    )
    .unwrap();
    std::fs::write(
        tenant.join("appointment.en.txt"),
        "Hello {{ params[0] }}, see you on {{ day }}.",
    )
    .unwrap();
    let folder = dir.path().to_owned();
    let (mut app, relay) =
        app_with_relay_and(app.backend(), |s| s.email.template_dir = folder).await;
    let param = |name: &str, text: &str| pb::TemplateParameter {
        parameter_name: name.into(),
        value: Some(pb::template_parameter::Value::Text(text.into())),
    };
    let send = |parameters: Vec<pb::TemplateParameter>| {
        send_to_address(
            email("fay@example.com"),
            pb::Message {
                category: pb::Category::Transactional as i32,
                channel: pb::Channel::Email as i32,
                content: Some(pb::Content {
                    kind: Some(pb::content::Kind::Template(pb::TemplateContent {
                        name: "appointment".into(),
                        language: "en".into(),
                        components: vec![pb::TemplateComponent {
                            r#type: pb::TemplateComponentType::Body as i32,
                            parameters,
                            ..Default::default()
                        }],
                    })),
                }),
                ..Default::default()
            },
        )
    };
    let err = app
        .messaging
        .send_message(send(vec![param("", "Fay")]))
        .await
        .expect_err("day is missing");
    assert_invalid(&err, "message.content.template.components");
    assert!(relay.received().is_empty());

    let accepted = app
        .messaging
        .send_message(send(vec![param("", "Fay"), param("day", "Monday")]))
        .await
        .expect("accepted")
        .into_inner()
        .message
        .unwrap();
    wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
    let mail = &relay.received()[0];
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Your appointment on Monday")
    );
    assert_eq!(
        mail.part("text/plain").as_deref(),
        Some("Hello Fay, see you on Monday.")
    );
}

/// The contact's consent ledger.
async fn consents(app: &mut TestApp, contact: &str) -> Vec<pb::ConsentRecord> {
    app.preferences
        .list_consent_records(pb::ListConsentRecordsRequest {
            parent: contact.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .consent_records
}

/// Waits until routing handed the message on to WhatsApp (sent there, or
/// further); panics with `why` otherwise.
pub(crate) async fn handed_to_whatsapp(app: &mut TestApp, name: &str, why: &str) -> pb::Message {
    let onwards = [
        pb::MessageStatus::Sent as i32,
        pb::MessageStatus::Delivered as i32,
        pb::MessageStatus::Read as i32,
    ];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let m = crate::messaging::get_message(app, name).await;
        if m.channel == pb::Channel::Whatsapp as i32 && onwards.contains(&m.status) {
            return m;
        }
        assert!(tokio::time::Instant::now() < deadline, "{why}: {m:#?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A server whose marketing email carries unsubscribe links.
async fn app_with_unsubscribe(backend: omniroute_e2e::Backend) -> (TestApp, FakeSmtp) {
    app_with_relay_and(backend, |s| {
        s.email.unsubscribe_base_url = "http://127.0.0.1".into();
        s.email.unsubscribe_secret = omniroute::settings::Secret::new("unsubscribe-secret-0123");
    })
    .await
}

/// A contact who opted in to marketing email.
async fn opted_in(app: &mut TestApp, name: &str) -> pb::Contact {
    let contact = create(
        app,
        name,
        vec![email(&format!("{}@example.com", name.to_lowercase()))],
    )
    .await;
    app.preferences
        .create_consent_record(record_consent(
            &contact.name,
            crate::preferences::grant(pb::Channel::Email, pb::Category::Marketing),
        ))
        .await
        .expect("opt-in");
    contact
}

async fn one_click_unsubscribe_records_the_opt_out_routing_reads(app: TestApp) {
    let (mut app, relay) = app_with_unsubscribe(app.backend()).await;
    let gina = opted_in(&mut app, "Gina").await;
    let send = |category: pb::Category| {
        send_to(
            &gina.name,
            pb::Message {
                category: category as i32,
                ..text_message("Our spring sale starts today")
            },
        )
    };
    let offer = app
        .messaging
        .send_message(send(pb::Category::Marketing))
        .await
        .expect("marketing with an opt-in")
        .into_inner()
        .message
        .unwrap();
    wait_status(&mut app, &offer.name, pb::MessageStatus::Sent).await;
    let receipt = app
        .messaging
        .send_message(send(pb::Category::Transactional))
        .await
        .unwrap()
        .into_inner()
        .message
        .unwrap();
    wait_status(&mut app, &receipt.name, pb::MessageStatus::Sent).await;
    let mails = relay.received();
    let marketing = mails
        .iter()
        .find(|m| m.header("List-Unsubscribe").is_some())
        .expect("marketing carries List-Unsubscribe");
    assert_eq!(
        marketing.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.header("List-Unsubscribe").is_some())
            .count(),
        1,
        "transactional mail carries none"
    );
    let link = marketing.header("List-Unsubscribe").unwrap();
    // `<https link>, <mailto link>`: the first.
    let path = link
        .split(['<', '>'])
        .find(|part| part.starts_with("http"))
        .expect("an http link")
        .trim_start_matches("http://127.0.0.1")
        .to_owned();
    assert!(path.starts_with("/unsubscribe/email/"), "{link}");
    assert!(!path.contains("gina"), "the link names no address");

    // A GET (a scanner prefetching the link) changes nothing.
    let page = omniroute_e2e::http(app.http_addr, "GET", &path, &[], b"").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Unsubscribe"), "{page:?}");
    assert_eq!(consents(&mut app, &gina.name).await.len(), 1);
    // A forged token: 404, nothing recorded.
    let forged = format!("{}x", &path[..path.len() - 1]);
    let addr = app.http_addr;
    let post = |path: String| async move {
        omniroute_e2e::http(
            addr,
            "POST",
            &path,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            b"List-Unsubscribe=One-Click",
        )
        .await
    };
    assert_eq!(post(forged).await.status, 404);
    assert_eq!(consents(&mut app, &gina.name).await.len(), 1);

    // The one-click POST a mailbox provider sends, and again (providers
    // repeat it): one revocation, both answered 200.
    assert_eq!(post(path.clone()).await.status, 200);
    assert_eq!(post(path.clone()).await.status, 200, "a repeated POST");
    let ledger = consents(&mut app, &gina.name).await;
    assert_eq!(ledger.len(), 2, "one revocation: {ledger:#?}");
    let revoked = ledger
        .iter()
        .find(|r| r.action == pb::ConsentAction::Revoke as i32)
        .expect("a revocation");
    assert_eq!(revoked.source, "list-unsubscribe");
    assert_eq!(revoked.channel, pb::Channel::Email as i32);
    assert_eq!(revoked.category, pb::Category::Marketing as i32);
    assert!(revoked.evidence.contains(&offer.name), "{revoked:?}");
    // Routing reads it on the next send.
    let err = app
        .messaging
        .send_message(send(pb::Category::Marketing))
        .await
        .expect_err("no more marketing email");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");

    // Gina opts in again, then clicks the old link once more: withdrawing
    // is as easy as giving, so she is unsubscribed again.
    Consent(pb::Channel::Email, pb::Category::Marketing)
        .grant(&mut app, &gina.name)
        .await;
    assert_eq!(post(path.clone()).await.status, 200);
    let ledger = consents(&mut app, &gina.name).await;
    assert_eq!(ledger.len(), 4, "{ledger:#?}");
    let err = app
        .messaging
        .send_message(send(pb::Category::Marketing))
        .await
        .expect_err("unsubscribed again");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
}

async fn unsubscribing_by_mail_records_the_opt_out(app: TestApp) {
    let (mut app, relay) = app_with_unsubscribe(app.backend()).await;
    let hugo = opted_in(&mut app, "Hugo").await;
    let offer = send_to(
        &hugo.name,
        pb::Message {
            category: pb::Category::Marketing as i32,
            ..text_message("Our spring sale starts today")
        },
    );
    let sent = app
        .messaging
        .send_message(offer.clone())
        .await
        .unwrap()
        .into_inner()
        .message
        .unwrap();
    wait_status(&mut app, &sent.name, pb::MessageStatus::Sent).await;
    let header = relay.received()[0].header("List-Unsubscribe").unwrap();
    let mailbox = header
        .split("<mailto:")
        .nth(1)
        .and_then(|rest| rest.split(['?', '>']).next())
        .expect("a mailto unsubscribe")
        .to_owned();
    assert!(mailbox.ends_with("@reply.acme.example"), "{mailbox}");
    assert!(!mailbox.contains("hugo"), "the address names no one");
    // What a mail client sends for the mailto link.
    let request = format!(
        "From: hugo@example.com\r\nTo: {mailbox}\r\nSubject: unsubscribe\r\nMessage-ID: <u1@example.com>\r\n\r\nunsubscribe\r\n"
    );
    assert_eq!(post_mail(&app, &request, None).await.status, 200);
    let ledger = consents(&mut app, &hugo.name).await;
    assert!(
        ledger
            .iter()
            .any(|r| r.action == pb::ConsentAction::Revoke as i32
                && r.source == "list-unsubscribe"
                && r.evidence.contains("u1@example.com")),
        "{ledger:#?}"
    );
    let err = app
        .messaging
        .send_message(offer)
        .await
        .expect_err("opted out");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
}

async fn an_out_of_office_does_not_cancel_the_fallback(app: TestApp) {
    // A relay that reports delivery: the deadline waits for the report.
    let (mut app, _relay) = app_with_dsn_relay_and(app.backend(), |s| {
        // Not delivered on email within a second: WhatsApp takes over.
        s.routing
            .deliver_within_secs
            .insert(omniroute_channel::Category::Transactional, 1);
    })
    .await;
    let accepted = email_then_whatsapp(&mut app, "Ida", "4915155500033").await;
    wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
    let token = accepted
        .name
        .trim_start_matches("messages/")
        .replace('-', "");
    let out_of_office = format!(
        "From: ida@example.com\r\nTo: reply+{token}@reply.acme.example\r\n\
Subject: Out of office\r\nMessage-ID: <ooo-ida@example.com>\r\nAuto-Submitted: auto-replied\r\n\r\n\
I am away until Monday.\r\n"
    );
    assert_eq!(post_mail(&app, &out_of_office, None).await.status, 200);
    // Recorded on her timeline, threaded...
    let timeline = timeline(&mut app, &accepted.contact).await;
    assert!(
        timeline
            .iter()
            .any(|m| m.provider_message_id == "ooo-ida@example.com" && m.reply_to == accepted.name),
        "{timeline:#?}"
    );
    // ...but the customer did not answer: the deadline still hands over.
    handed_to_whatsapp(
        &mut app,
        &accepted.name,
        "the auto-reply canceled the fallback",
    )
    .await;
}

async fn an_out_of_office_is_marked_automatic_in_the_api_and_on_the_event(app: TestApp) {
    let (mut app, _relay) = app_with_relay(app.backend()).await;
    let accepted = send_email(&mut app, "jana@example.com", "Your order has shipped").await;
    wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
    let mut received = crate::events::subscribe_to(&mut app, pb::EventType::MessageReceived).await;
    let token = accepted
        .name
        .trim_start_matches("messages/")
        .replace('-', "");
    let mail = |id: &str, extra: &str, text: &str| {
        format!(
            "From: jana@example.com\r\nTo: reply+{token}@reply.acme.example\r\n\
Subject: Re: Your order\r\nMessage-ID: <{id}@example.com>\r\n{extra}\r\n{text}\r\n"
        )
    };
    let away = mail(
        "away-jana",
        "Auto-Submitted: auto-replied\r\n",
        "I am away until Monday.",
    );
    let reply = mail("reply-jana", "", "Thanks, when does it arrive?");
    for raw in [&away, &reply] {
        assert_eq!(post_mail(&app, raw, None).await.status, 200);
    }
    // On the event stream, in order: the out-of-office, then the reply.
    for (id, automatic) in [
        ("away-jana@example.com", true),
        ("reply-jana@example.com", false),
    ] {
        let event = crate::events::next(&mut received).await;
        let Some(pb::event::Payload::Message(m)) = event.payload else {
            panic!("a message: {event:?}")
        };
        assert_eq!(m.provider_message_id, id);
        assert_eq!(m.automatic, automatic, "{id} on the event");
        assert_eq!(m.reply_to, accepted.name, "both are threaded");
    }
    // And by the API.
    let messages = timeline(&mut app, &accepted.contact).await;
    let automatic = |id: &str| {
        messages
            .iter()
            .find(|m| m.provider_message_id == id)
            .map(|m| m.automatic)
            .expect("recorded")
    };
    assert!(automatic("away-jana@example.com"));
    assert!(!automatic("reply-jana@example.com"));
    assert!(
        !messages
            .iter()
            .find(|m| m.name == accepted.name)
            .expect("ours")
            .automatic,
        "our own message is not"
    );
}

async fn a_document_goes_out_attached(app: TestApp) {
    let (mut app, relay) = app_with_relay(app.backend()).await;
    let pdf = b"%PDF-1.7 delivery note".to_vec();
    let files = omniroute_email::fake::FakeFiles::start(vec![(
        "/notes/17.pdf",
        "application/pdf",
        pdf.clone(),
    )])
    .await;
    let accepted = send_ok(
        &mut app,
        send_to_address(
            email("quentin@example.com"),
            pb::Message {
                category: pb::Category::Transactional as i32,
                content: Some(pb::Content {
                    kind: Some(pb::content::Kind::Media(pb::MediaContent {
                        kind: pb::MediaKind::Document as i32,
                        url: files.url("/notes/17.pdf"),
                        caption: "Your delivery note".into(),
                        filename: "delivery-note.pdf".into(),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            },
        ),
    )
    .await;
    wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
    let mail = &relay.received()[0];
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Your delivery note")
    );
    assert_eq!(
        mail.attachment("delivery-note.pdf"),
        Some(("application/pdf".to_owned(), pdf))
    );
}

async fn a_choice_link_records_the_answer_once_after_confirmation(app: TestApp) {
    let (mut app, relay) = app_with_unsubscribe(app.backend()).await;
    let choice = |id: &str, title: &str| pb::Choice {
        id: id.into(),
        title: title.into(),
        description: String::new(),
    };
    let accepted = send_ok(
        &mut app,
        send_to_address(
            email("rita@example.com"),
            pb::Message {
                category: pb::Category::Transactional as i32,
                content: Some(pb::Content {
                    kind: Some(pb::content::Kind::Interactive(pb::InteractiveContent {
                        header: "Delivery".into(),
                        body: "When shall we come?".into(),
                        choices: Some(pb::interactive_content::Choices::Buttons(
                            pb::ReplyButtons {
                                buttons: vec![choice("am", "Morning"), choice("pm", "Afternoon")],
                            },
                        )),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            },
        ),
    )
    .await;
    let sent = wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
    assert_eq!(sent.channel, pb::Channel::Email as i32);
    let text = relay.received()[0].part("text/plain").expect("a text part");
    let link = |n: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{n}. ")))
            .and_then(|l| l.split_once(": http://127.0.0.1"))
            .map(|(_, path)| path.to_owned())
            .unwrap_or_else(|| panic!("choice {n} has a link: {text}"))
    };
    let afternoon = link("2");
    assert!(afternoon.starts_with("/choices/email/"), "{afternoon}");
    assert!(!afternoon.contains("rita"), "no address in the link");

    // Following the link (or a scanner prefetching it) records nothing.
    let page = omniroute_e2e::http(app.http_addr, "GET", &afternoon, &[], b"").await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("Afternoon"), "{page:?}");
    assert_eq!(timeline(&mut app, &accepted.contact).await.len(), 1);

    // The confirming POST records the answer, once.
    for _ in 0..2 {
        let picked = omniroute_e2e::http(app.http_addr, "POST", &afternoon, &[], b"").await;
        assert_eq!(picked.status, 200, "{picked:?}");
    }
    let messages = timeline(&mut app, &accepted.contact).await;
    assert_eq!(messages.len(), 2, "{messages:#?}");
    let answer = messages
        .iter()
        .find(|m| m.direction == pb::Direction::Inbound as i32)
        .expect("the answer");
    assert_eq!(answer.reply_to, accepted.name, "an answer to our message");
    match &answer.content.as_ref().unwrap().kind {
        Some(pb::content::Kind::ChoiceReply(c)) => {
            assert_eq!((c.id.as_str(), c.title.as_str()), ("pm", "Afternoon"))
        }
        other => panic!("{other:?}"),
    }

    // A tampered link is refused and records nothing.
    let tampered = format!("{}x", &afternoon[..afternoon.len() - 1]);
    let refused = omniroute_e2e::http(app.http_addr, "POST", &tampered, &[], b"").await;
    assert_eq!(refused.status, 404);
    assert_eq!(timeline(&mut app, &accepted.contact).await.len(), 2);
}

async fn marketing_goes_from_its_own_sender_and_its_replies_come_back(app: TestApp) {
    let (mut app, relay) = app_with_relay_and(app.backend(), |s| {
        s.email.senders.push(omniroute::settings::EmailSender {
            tenant: "default".into(),
            from_address: "news@acme.example".into(),
            from_name: "ACME News".into(),
            reply_domain: "news.acme.example".into(),
            categories: vec![omniroute_channel::Category::Marketing],
        });
    })
    .await;
    let contact = opted_in(&mut app, "Sven").await;
    let mut newsletter = text_message("Our spring sale starts today");
    newsletter.category = pb::Category::Marketing as i32;
    let marketing = send_ok(&mut app, send_to(&contact.name, newsletter)).await;
    let sent = wait_status(&mut app, &marketing.name, pb::MessageStatus::Sent).await;
    let notice = send_email(&mut app, "sven@example.com", "Your order has shipped").await;
    wait_status(&mut app, &notice.name, pb::MessageStatus::Sent).await;
    let received = relay.received();
    let from = |subject: &str| {
        let mail = received
            .iter()
            .find(|m| m.header("Subject").as_deref() == Some(subject))
            .expect("sent");
        (mail.header("From").unwrap(), mail.mail_from.clone())
    };
    let id = marketing.name.trim_start_matches("messages/");
    assert_eq!(
        from("Our spring sale starts today"),
        (
            "\"ACME News\" <news@acme.example>".to_owned(),
            format!("bounces+{}@news.acme.example", id.replace('-', ""))
        )
    );
    assert_eq!(sent.provider_message_id, format!("{id}@news.acme.example"));
    assert_eq!(
        from("Your order has shipped").0,
        "\"ACME Support\" <support@acme.example>"
    );
    // A reply to the newsletter comes back to its sender's line, threaded.
    let reply = format!(
        "From: sven@example.com\r\nTo: reply+{}@news.acme.example\r\n\
Subject: Re: sale\r\nMessage-ID: <sven-1@example.com>\r\n\r\nDo you ship to Norway?\r\n",
        id.replace('-', "")
    );
    assert_eq!(post_mail(&app, &reply, None).await.status, 200);
    let messages = timeline(&mut app, &contact.name).await;
    let answer = messages
        .iter()
        .find(|m| m.provider_message_id == "sven-1@example.com")
        .expect("recorded");
    assert_eq!(answer.reply_to, marketing.name);
}
