//! WhatsApp through the Cloud API, end to end: the server talks to a fake
//! Graph API over HTTP (documented formats, bearer token checked) and
//! receives signed webhooks on its HTTP listener.

use std::time::Duration;

use omniroute_e2e::{Backend, HttpResponse, TestApp, http};
use omniroute_proto::v1 as pb;
use omniroute_whatsapp::fake::{FakeGraph, sign};
use serde_json::{Value, json};
use tonic::Code;

use crate::messaging::text_message;
use crate::support::*;

crate::on_both_stores!(
    sends_through_the_cloud_api_and_follows_webhook_statuses,
    inbound_messages_create_contacts_and_open_the_window,
    webhooks_refuse_bad_signatures_and_bodies,
    provider_errors_are_classified,
    templates_are_checked_against_the_catalogue,
    inbound_media_is_fetched_on_demand,
);

const TOKEN: &str = "EAAG-test-token";
const SECRET: &str = "app-secret";
const VERIFY: &str = "verify-me";
pub(crate) const NUMBER_ID: &str = "106540352242922";
const WABA_ID: &str = "102290129340398";
const WAIT: Duration = Duration::from_secs(20);

/// A server with WhatsApp on the fake Graph API (other channels sandboxed).
pub(crate) async fn app_with_whatsapp(backend: Backend) -> (TestApp, FakeGraph) {
    app_with_whatsapp_and(backend, |_| {}).await
}

/// [`app_with_whatsapp`] with more settings adjusted.
pub(crate) async fn app_with_whatsapp_and(
    backend: Backend,
    more: impl FnOnce(&mut omniroute::Settings),
) -> (TestApp, FakeGraph) {
    let graph = FakeGraph::start(TOKEN).await;
    let templates: Vec<Value> = serde_json::from_str(include_str!(
        "../../adapters/whatsapp/tests/fixtures/templates.json"
    ))
    .expect("template fixture");
    graph.set_templates(WABA_ID, templates);
    let base_url = graph.base_url();
    let app = TestApp::spawn_with(backend, |s| {
        use_graph(s, base_url);
        more(s);
    })
    .await;
    (app, graph)
}

/// Settings for WhatsApp on the fake Graph API at `base_url`.
pub(crate) fn use_graph(s: &mut omniroute::Settings, base_url: String) {
    s.whatsapp.enabled = true;
    s.whatsapp.base_url = base_url;
    s.whatsapp.access_token = omniroute::settings::Secret::new(TOKEN);
    s.whatsapp.app_secret = omniroute::settings::Secret::new(SECRET);
    s.whatsapp.verify_token = omniroute::settings::Secret::new(VERIFY);
    s.whatsapp.numbers = vec![omniroute::settings::WhatsAppNumber {
        phone_number_id: NUMBER_ID.into(),
        waba_id: WABA_ID.into(),
        tenant: "default".into(),
        line: "service-de".into(),
        throughput_per_second: 80,
    }];
    // These tests are about the Cloud API, not consent: templates go to
    // customers without a WhatsApp opt-in record (routing's own tests
    // cover the strict default).
    s.routing.whatsapp_opt_in_required = false;
}

/// A customer's tap on reply button `id`.
pub(crate) fn inbound_button(wamid: &str, from: &str, id: &str, title: &str) -> Value {
    envelope(json!({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "4930123456", "phone_number_id": NUMBER_ID},
        "contacts": [{"profile": {"name": "Customer"}, "wa_id": from}],
        "messages": [{
            "from": from, "id": wamid, "timestamp": now_secs(), "type": "interactive",
            "interactive": {"type": "button_reply", "button_reply": {"id": id, "title": title}}
        }]
    }))
}

/// Posts a signed webhook delivery.
pub(crate) async fn webhook(app: &TestApp, body: &Value) -> HttpResponse {
    webhook_at(app.http_addr, body).await
}

/// Posts a signed webhook delivery to a listener (for concurrent posts).
pub(crate) async fn webhook_at(addr: std::net::SocketAddr, body: &Value) -> HttpResponse {
    let bytes = serde_json::to_vec(body).unwrap();
    let signature = sign(SECRET, &bytes);
    http(
        addr,
        "POST",
        "/webhooks/whatsapp",
        &[
            ("Content-Type", "application/json"),
            ("X-Hub-Signature-256", &signature),
        ],
        &bytes,
    )
    .await
}

pub(crate) fn envelope(value: Value) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA_ID, "changes": [{"field": "messages", "value": value}]}]
    })
}

pub(crate) fn status(wamid: &str, status: &str, ours: &str) -> Value {
    envelope(json!({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "4930123456", "phone_number_id": NUMBER_ID},
        "statuses": [{
            "id": wamid, "status": status, "timestamp": "1749416383",
            "recipient_id": "4915123456789", "biz_opaque_callback_data": ours
        }]
    }))
}

pub(crate) fn inbound_text(wamid: &str, from: &str, name: &str, body: &str) -> Value {
    envelope(json!({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "4930123456", "phone_number_id": NUMBER_ID},
        "contacts": [{"profile": {"name": name}, "wa_id": from}],
        "messages": [{"from": from, "id": wamid, "timestamp": now_secs(), "type": "text", "text": {"body": body}}]
    }))
}

/// Now in Unix seconds, as Meta writes webhook timestamps.
pub(crate) fn now_secs() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string()
}

/// Waits until the server fetched the template catalogue (it does so in the
/// background at start), so that the fake's scripted failures hit sends.
async fn catalogue_loaded(graph: &FakeGraph) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !graph
        .requests()
        .iter()
        .any(|r| r.path.ends_with("/message_templates"))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the catalogue was never fetched"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Waits until the message has reached `status`: it is there, or, for the
/// progress statuses (sent, delivered), was on the way to where it is
/// (statuses only move forward; a sandbox that delivers and reads within
/// milliseconds may pass `sent` between polls). A failure counts only as
/// the message's status: a failure the provider reported may be in the
/// history of a message routing goes on with.
pub(crate) async fn wait_status(
    app: &mut TestApp,
    name: &str,
    status: pb::MessageStatus,
) -> pb::Message {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let message = app
            .messaging
            .get_message(pb::GetMessageRequest {
                name: name.to_owned(),
            })
            .await
            .unwrap()
            .into_inner()
            .message
            .unwrap();
        let progress = matches!(
            status,
            pb::MessageStatus::Sent | pb::MessageStatus::Delivered
        );
        if message.status == status as i32
            || (progress
                && message
                    .status_history
                    .iter()
                    .any(|h| h.status == status as i32))
        {
            return message;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never reached {status:?}: {message:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends free-form text to `to` inside the service window: the customer
/// wrote first (free form outside the window is routing's to refuse).
pub(crate) async fn send_text(app: &mut TestApp, to: &str) -> pb::Message {
    let digits: String = to.chars().filter(char::is_ascii_digit).collect();
    let hello = inbound_text(&format!("wamid.hello.{digits}"), &digits, "Anna", "Hello");
    assert_eq!(webhook(app, &hello).await.status, 200);
    crate::support::send_ok(
        app,
        text_to_address(whatsapp(to), "Your order A-17 has shipped"),
    )
    .await
}

async fn sends_through_the_cloud_api_and_follows_webhook_statuses(app: TestApp) {
    let (mut app, graph) = app_with_whatsapp(app.backend()).await;
    let accepted = send_text(&mut app, "+49 151 23456789").await;
    let sent = wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
    let wamid = sent.provider_message_id.clone();
    assert!(wamid.starts_with("wamid."), "{wamid}");

    let requests = graph.sent();
    assert_eq!(requests.len(), 1);
    let body = &requests[0];
    assert_eq!(body["messaging_product"], "whatsapp");
    assert_eq!(body["to"], "4915123456789");
    assert_eq!(body["type"], "text");
    assert_eq!(body["text"]["body"], "Your order A-17 has shipped");
    let ours = accepted.name.trim_start_matches("messages/");
    assert_eq!(body["biz_opaque_callback_data"], ours);

    // Statuses arrive by webhook, duplicated and out of order.
    assert_eq!(
        webhook(&app, &status(&wamid, "delivered", ours))
            .await
            .status,
        200
    );
    wait_status(&mut app, &accepted.name, pb::MessageStatus::Delivered).await;
    assert_eq!(
        webhook(&app, &status(&wamid, "read", ours)).await.status,
        200
    );
    assert_eq!(
        webhook(&app, &status(&wamid, "delivered", ours))
            .await
            .status,
        200
    );
    assert_eq!(
        webhook(&app, &status(&wamid, "read", ours)).await.status,
        200
    );
    let read = wait_status(&mut app, &accepted.name, pb::MessageStatus::Read).await;
    let statuses: Vec<i32> = read.status_history.iter().map(|h| h.status).collect();
    use pb::MessageStatus::*;
    assert_eq!(
        statuses,
        vec![Accepted as i32, Sent as i32, Delivered as i32, Read as i32],
        "a late delivered never overwrites read; duplicates change nothing"
    );
}

async fn inbound_messages_create_contacts_and_open_the_window(app: TestApp) {
    let (mut app, graph) = app_with_whatsapp(app.backend()).await;
    let mut body = inbound_text(
        "wamid.in.1",
        "5511987654321",
        "João Silva",
        "Where is my order?",
    );
    body["entry"][0]["changes"][0]["value"]["contacts"][0]["user_id"] =
        json!("BR.13491208655302741918");
    assert_eq!(webhook(&app, &body).await.status, 200);
    assert_eq!(
        webhook(&app, &body).await.status,
        200,
        "a redelivery is acknowledged"
    );

    let contact = lookup(
        &mut app,
        pb::lookup_contact_request::Key::Address("+55 11 98765-4321".into()),
    )
    .await
    .expect("the sender became a contact");
    assert_eq!(contact.display_name, "João Silva");
    assert_eq!(
        contact.identities[0].provider_user_id, "BR.13491208655302741918",
        "the business-scoped user id is kept"
    );
    assert!(
        contact.whatsapp_window_end_time.is_some(),
        "the service window is open"
    );
    let timeline = crate::reliability::timeline(&mut app, &contact.name).await;
    assert_eq!(timeline.len(), 1, "recorded once");
    let message = &timeline[0];
    assert_eq!(message.direction, pb::Direction::Inbound as i32);
    assert_eq!(message.status, pb::MessageStatus::Received as i32);
    match &message.content.as_ref().unwrap().kind {
        Some(pb::content::Kind::Text(text)) => assert_eq!(text.body, "Where is my order?"),
        other => panic!("{other:?}"),
    }

    // The customer sees blue ticks when we mark their message read.
    app.messaging
        .mark_message_read(pb::MarkMessageReadRequest {
            name: message.name.clone(),
        })
        .await
        .unwrap();
    let receipt = graph.sent();
    let receipt = receipt.last().unwrap();
    assert_eq!(receipt["status"], "read");
    assert_eq!(receipt["message_id"], "wamid.in.1");

    // A reply quotes the customer's message on WhatsApp.
    let mut reply = text_message("It left our warehouse today.");
    reply.reply_to = message.name.clone();
    let reply = send_ok(&mut app, send_to(&contact.name, reply)).await;
    wait_status(&mut app, &reply.name, pb::MessageStatus::Sent).await;
    let sent = graph.sent();
    assert_eq!(sent.last().unwrap()["context"]["message_id"], "wamid.in.1");
    assert_eq!(sent.last().unwrap()["to"], "5511987654321");

    // A message to an unknown business number is acknowledged, not stored.
    let mut foreign = inbound_text("wamid.in.2", "4915123456789", "Bert", "hi");
    foreign["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = json!("999");
    assert_eq!(webhook(&app, &foreign).await.status, 200);
    let err = lookup(
        &mut app,
        pb::lookup_contact_request::Key::Address("+4915123456789".into()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

async fn webhooks_refuse_bad_signatures_and_bodies(app: TestApp) {
    let (mut app, _graph) = app_with_whatsapp(app.backend()).await;
    let body = serde_json::to_vec(&inbound_text("wamid.x", "4915123456789", "Eve", "hi")).unwrap();
    for signature in [
        None,
        Some("sha256=00"),
        Some(sign("wrong-secret", &body).as_str()),
    ] {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(s) = signature {
            headers.push(("X-Hub-Signature-256", s));
        }
        let response = http(app.http_addr, "POST", "/webhooks/whatsapp", &headers, &body).await;
        assert_eq!(response.status, 401, "{signature:?}");
    }
    assert!(list_all(&mut app).await.is_empty(), "nothing was stored");

    // Malformed JSON with a valid signature: 400, nothing stored.
    let malformed = b"{\"object\": \"whatsapp_business_account\", \"entry\": [";
    let signature = sign(SECRET, malformed);
    let response = http(
        app.http_addr,
        "POST",
        "/webhooks/whatsapp",
        &[("X-Hub-Signature-256", &signature)],
        malformed,
    )
    .await;
    assert_eq!(response.status, 400);

    // Oversized bodies are refused before anything else.
    let huge = vec![b' '; 2 * 1024 * 1024];
    let signature = sign(SECRET, &huge);
    let response = http(
        app.http_addr,
        "POST",
        "/webhooks/whatsapp",
        &[("X-Hub-Signature-256", &signature)],
        &huge,
    )
    .await;
    assert_eq!(response.status, 413);
    assert!(list_all(&mut app).await.is_empty());

    // The subscription handshake.
    let ok = http(
        app.http_addr,
        "GET",
        &format!("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token={VERIFY}&hub.challenge=1158201444"),
        &[],
        b"",
    )
    .await;
    assert_eq!(ok.status, 200);
    assert!(ok.body.contains("1158201444"), "{}", ok.body);
    let refused = http(
        app.http_addr,
        "GET",
        "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1",
        &[],
        b"",
    )
    .await;
    assert_eq!(refused.status, 403);
}

async fn provider_errors_are_classified(app: TestApp) {
    let (mut app, graph) = app_with_whatsapp(app.backend()).await;
    catalogue_loaded(&graph).await;
    // 131026: undeliverable, permanent: the message fails with the reason.
    graph.fail_next(1, 400, 131026, None);
    let accepted = send_text(&mut app, "+49 151 23456789").await;
    let failed = wait_status(&mut app, &accepted.name, pb::MessageStatus::Failed).await;
    assert_eq!(
        failed.attempts[0].outcome,
        pb::AttemptOutcome::Permanent as i32
    );
    assert_eq!(failed.attempts[0].error_code, "131026");
    // 130429: throughput, retried after the back-off, then sent.
    graph.fail_next(1, 400, 130429, Some("0"));
    let accepted = send_text(&mut app, "+49 151 23456780").await;
    let sent = wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
    assert_eq!(
        sent.attempts[0].outcome,
        pb::AttemptOutcome::RateLimited as i32
    );
    assert_eq!(sent.attempts.len(), 2);
}

async fn templates_are_checked_against_the_catalogue(app: TestApp) {
    let (mut app, graph) = app_with_whatsapp(app.backend()).await;
    catalogue_loaded(&graph).await;
    let template = |name: &str, language: &str| pb::Message {
        category: pb::Category::Transactional as i32,
        channel: pb::Channel::Whatsapp as i32,
        content: Some(pb::Content {
            kind: Some(pb::content::Kind::Template(pb::TemplateContent {
                name: name.into(),
                language: language.into(),
                components: vec![],
            })),
        }),
        ..Default::default()
    };
    for (name, language, field) in [
        ("no_such_template", "de", "message.content.template.name"),
        ("order_shipped", "it", "message.content.template.language"),
    ] {
        let err = app
            .messaging
            .send_message(send_to_address(
                whatsapp("+49 151 23456789"),
                template(name, language),
            ))
            .await
            .unwrap_err();
        assert_invalid(&err, field);
    }
    assert!(graph.sent().is_empty(), "nothing went out");

    // The approved category wins: a marketing template sent as
    // "transactional" is marketing, with marketing's priority and opt-outs.
    let param = |name: &str, text: &str| pb::TemplateParameter {
        parameter_name: name.into(),
        value: Some(pb::template_parameter::Value::Text(text.into())),
    };
    let mut sale = template("spring_sale", "de");
    if let Some(pb::content::Kind::Template(t)) =
        sale.content.as_mut().and_then(|c| c.kind.as_mut())
    {
        t.components = vec![pb::TemplateComponent {
            r#type: pb::TemplateComponentType::Body as i32,
            parameters: vec![param("first_name", "Anna"), param("discount", "20 %")],
            ..Default::default()
        }];
    }
    // Marketing needs the customer's marketing opt-in for WhatsApp.
    let anna = match lookup(
        &mut app,
        pb::lookup_contact_request::Key::Address("+49 151 23456789".into()),
    )
    .await
    {
        Ok(contact) => contact,
        Err(_) => create(&mut app, "Anna", vec![whatsapp("+49 151 23456789")]).await,
    };
    Consent(pb::Channel::Whatsapp, pb::Category::Marketing)
        .grant(&mut app, &anna.name)
        .await;
    let accepted = send_ok(
        &mut app,
        send_to_address(whatsapp("+49 151 23456789"), sale.clone()),
    )
    .await;
    assert_eq!(accepted.category, pb::Category::Marketing as i32);
    assert_eq!(accepted.priority, pb::Priority::Low as i32);
    let contact = accepted.contact.clone();
    app.preferences
        .update_preferences(pb::UpdatePreferencesRequest {
            preferences: Some(pb::Preferences {
                name: format!("{contact}/preferences"),
                categories: vec![pb::CategoryPreference {
                    category: pb::Category::Marketing as i32,
                    status: pb::OptStatus::OptedOut as i32,
                    channels: vec![],
                }],
                ..Default::default()
            }),
            update_mask: mask(&["categories"]),
        })
        .await
        .unwrap();
    let err = app
        .messaging
        .send_message(send_to(&contact, sale))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("marketing"), "{}", err.message());
}

async fn inbound_media_is_fetched_on_demand(app: TestApp) {
    let (mut app, graph) = app_with_whatsapp(app.backend()).await;
    let invoice: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
    graph.add_media(
        "1200345678",
        "application/pdf",
        "abc123",
        invoice.len() as u64,
    );
    graph.set_media_content("1200345678", &invoice);
    let body = envelope(json!({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "4930123456", "phone_number_id": NUMBER_ID},
        "contacts": [{"profile": {"name": "Anna"}, "wa_id": "4915123456789"}],
        "messages": [{
            "from": "4915123456789", "id": "wamid.media.1", "timestamp": "1749416383",
            "type": "document",
            "document": {"id": "1200345678", "mime_type": "application/pdf", "sha256": "abc123",
                         "filename": "invoice.pdf", "caption": "my invoice"}
        }]
    }));
    assert_eq!(webhook(&app, &body).await.status, 200);
    let downloads_before = graph
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/download/"))
        .count();
    assert_eq!(downloads_before, 0, "media is not fetched eagerly");

    let contact = lookup(
        &mut app,
        pb::lookup_contact_request::Key::Address("+4915123456789".into()),
    )
    .await
    .unwrap();
    let message = crate::reliability::timeline(&mut app, &contact.name)
        .await
        .remove(0);
    match &message.content.as_ref().unwrap().kind {
        Some(pb::content::Kind::Media(media)) => {
            assert_eq!(media.media_id, "1200345678");
            assert_eq!(media.filename, "invoice.pdf");
            assert_eq!(media.mime_type, "application/pdf");
        }
        other => panic!("{other:?}"),
    }
    let (first, bytes) = download_media(&mut app, &message.name).await;
    assert_eq!(
        first,
        (
            "application/pdf".to_owned(),
            "invoice.pdf".to_owned(),
            invoice.len() as i64
        )
    );
    assert_eq!(bytes, invoice);

    // A text message has no media.
    let text = send_text(&mut app, "+49 151 23456789").await;
    let err = app
        .messaging
        .get_message_media(pb::GetMessageMediaRequest { name: text.name })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
}
