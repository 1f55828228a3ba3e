//! Every outbound content kind, as the fake Graph API received it.

use omniroute_channel::content::{
    CallbackRequest, Choice, ChoiceSection, Choices, ComponentType, Interactive, Media, MediaKind,
    ParameterValue, Template, TemplateComponent, TemplateParameter,
};
use omniroute_channel::{Adapter, Content, ErrorClass};
use omniroute_whatsapp::WhatsAppAdapter;
use omniroute_whatsapp::fake::FakeGraph;
use serde_json::{Value, json};

use crate::*;

/// Sends `content` and answers the body the fake received.
async fn sent_body(content: Content) -> Value {
    let (fake, adapter) = setup().await;
    let receipt = adapter.send(&message(content)).await.expect("accepted");
    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    assert!(receipt.provider_message_id.starts_with("wamid."));
    sent.into_iter().next().unwrap()
}

fn media(kind: MediaKind, url: &str, id: &str) -> Media {
    Media {
        kind,
        url: url.into(),
        media_id: id.into(),
        caption: String::new(),
        filename: String::new(),
        mime_type: String::new(),
        sha256: String::new(),
    }
}

fn param(value: ParameterValue) -> TemplateParameter {
    TemplateParameter {
        name: String::new(),
        value,
    }
}

fn text_param(text: &str) -> TemplateParameter {
    param(ParameterValue::Text { text: text.into() })
}

#[tokio::test]
async fn text_is_posted_with_token_context_and_our_id() {
    let (fake, adapter) = setup().await;
    let mut m = message(Content::Text(omniroute_channel::content::Text {
        body: "Ihre Bestellung ist unterwegs: https://track.example.com/A-17".into(),
        preview_url: true,
        ..Default::default()
    }));
    m.reply_to = Some("wamid.HBgNINBOUND".into());
    let receipt = adapter.send(&m).await.unwrap();

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, format!("/v24.0/{PHONE_NUMBER_ID}/messages"));
    assert_eq!(
        request.authorization.as_deref(),
        Some("Bearer EAAG-test-token")
    );
    assert_eq!(
        request.body.as_ref().unwrap(),
        &json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": CUSTOMER,
            "context": {"message_id": "wamid.HBgNINBOUND"},
            "biz_opaque_callback_data": "msg-0001",
            "type": "text",
            "text": {
                "body": "Ihre Bestellung ist unterwegs: https://track.example.com/A-17",
                "preview_url": true
            }
        })
    );
    assert_eq!(receipt.provider_message_id, "wamid.HBgLFAKE0000000001");
}

#[tokio::test]
async fn the_send_carries_the_trace_context_it_is_given() {
    let (fake, adapter) = setup().await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut traced = message(text("Your order has shipped"));
    traced.trace_parent = traceparent.into();
    adapter.send(&traced).await.unwrap();
    adapter.send(&message(text("Untraced"))).await.unwrap();
    let requests = fake.requests();
    assert_eq!(requests[0].traceparent.as_deref(), Some(traceparent));
    assert_eq!(
        requests[1].traceparent, None,
        "no trace, no traceparent header"
    );
}

#[tokio::test]
async fn replies_go_to_the_wa_id_as_last_seen() {
    // The Mexican 521 form is kept for the reply, though the key folds it.
    let (fake, adapter) = setup().await;
    adapter
        .send(&message_to("5215512345678", text("Hola")))
        .await
        .unwrap();
    assert_eq!(fake.sent()[0]["to"], "5215512345678");
}

#[tokio::test]
async fn template_with_every_parameter_type() {
    let image = media(MediaKind::Image, "https://cdn.example.com/parcel.jpg", "");
    let body = sent_body(Content::Template(Template {
        name: "order_shipped".into(),
        language: "de".into(),
        components: vec![
            TemplateComponent {
                kind: ComponentType::Header,
                button_sub_type: String::new(),
                index: 0,
                parameters: vec![param(ParameterValue::Media(image))],
            },
            TemplateComponent {
                kind: ComponentType::Body,
                button_sub_type: String::new(),
                index: 0,
                parameters: vec![
                    text_param("Anna"),
                    param(ParameterValue::Currency {
                        code: "EUR".into(),
                        amount_1000: 19990,
                        fallback_value: "19,99 €".into(),
                    }),
                    param(ParameterValue::DateTime {
                        fallback_value: "3. März 2026".into(),
                    }),
                ],
            },
            TemplateComponent {
                kind: ComponentType::Button,
                button_sub_type: "url".into(),
                index: 0,
                parameters: vec![text_param("A-17")],
            },
            TemplateComponent {
                kind: ComponentType::Button,
                button_sub_type: "quick_reply".into(),
                index: 1,
                parameters: vec![param(ParameterValue::Payload {
                    payload: "stop-updates".into(),
                })],
            },
        ],
    }))
    .await;
    assert_eq!(body["type"], "template");
    assert_eq!(
        body["template"],
        json!({
            "name": "order_shipped",
            "language": {"code": "de"},
            "components": [
                {"type": "header", "parameters": [
                    {"type": "image", "image": {"link": "https://cdn.example.com/parcel.jpg"}}
                ]},
                {"type": "body", "parameters": [
                    {"type": "text", "text": "Anna"},
                    {"type": "currency", "currency": {"fallback_value": "19,99 €", "code": "EUR", "amount_1000": 19990}},
                    {"type": "date_time", "date_time": {"fallback_value": "3. März 2026"}}
                ]},
                {"type": "button", "sub_type": "url", "index": "0", "parameters": [
                    {"type": "text", "text": "A-17"}
                ]},
                {"type": "button", "sub_type": "quick_reply", "index": "1", "parameters": [
                    {"type": "payload", "payload": "stop-updates"}
                ]}
            ]
        })
    );
    assert_eq!(body["biz_opaque_callback_data"], "msg-0001");
}

#[tokio::test]
async fn named_template_parameters_carry_their_names() {
    let mut document = media(MediaKind::Document, "", "998877");
    document.filename = "rechnung.pdf".into();
    let body = sent_body(Content::Template(Template {
        name: "invoice_ready".into(),
        language: "en_US".into(),
        components: vec![
            TemplateComponent {
                kind: ComponentType::Header,
                button_sub_type: String::new(),
                index: 0,
                parameters: vec![param(ParameterValue::Media(document))],
            },
            TemplateComponent {
                kind: ComponentType::Body,
                button_sub_type: String::new(),
                index: 0,
                parameters: vec![TemplateParameter {
                    name: "first_name".into(),
                    value: ParameterValue::Text { text: "Ann".into() },
                }],
            },
        ],
    }))
    .await;
    assert_eq!(
        body["template"]["components"],
        json!([
            {"type": "header", "parameters": [
                {"type": "document", "document": {"id": "998877", "filename": "rechnung.pdf"}}
            ]},
            {"type": "body", "parameters": [
                {"type": "text", "text": "Ann", "parameter_name": "first_name"}
            ]}
        ])
    );
}

#[tokio::test]
async fn template_without_components_has_none() {
    let body = sent_body(Content::Template(Template {
        name: "hello_world".into(),
        language: "en_US".into(),
        components: Vec::new(),
    }))
    .await;
    assert_eq!(
        body["template"],
        json!({"name": "hello_world", "language": {"code": "en_US"}})
    );
}

#[tokio::test]
async fn every_media_kind_by_link_or_id() {
    let mut image = media(MediaKind::Image, "https://cdn.example.com/a.jpg", "");
    image.caption = "Ihr Paket".into();
    let mut document = media(MediaKind::Document, "", "1479537139650973");
    document.caption = "Rechnung März".into();
    document.filename = "rechnung.pdf".into();
    let cases = [
        (
            image,
            "image",
            json!({"link": "https://cdn.example.com/a.jpg", "caption": "Ihr Paket"}),
        ),
        (
            document,
            "document",
            json!({"id": "1479537139650973", "caption": "Rechnung März", "filename": "rechnung.pdf"}),
        ),
        (
            media(MediaKind::Audio, "https://cdn.example.com/a.ogg", ""),
            "audio",
            json!({"link": "https://cdn.example.com/a.ogg"}),
        ),
        (
            media(MediaKind::Video, "", "5555"),
            "video",
            json!({"id": "5555"}),
        ),
        (
            media(MediaKind::Sticker, "", "4444"),
            "sticker",
            json!({"id": "4444"}),
        ),
    ];
    let (fake, adapter) = setup().await;
    for (media, kind, object) in cases {
        adapter.send(&message(Content::Media(media))).await.unwrap();
        let body = fake.sent().pop().unwrap();
        assert_eq!(body["type"], kind);
        assert_eq!(body[kind], object, "{kind}");
        assert_eq!(body["to"], CUSTOMER);
    }
}

#[tokio::test]
async fn interactive_reply_buttons() {
    let body = sent_body(Content::Interactive(Interactive {
        header: "Lieferung".into(),
        body: "Passt Ihnen Dienstag?".into(),
        footer: "Antworten Sie mit einem Knopf".into(),
        choices: Choices::Buttons {
            buttons: vec![
                Choice {
                    id: "yes".into(),
                    title: "Ja".into(),
                    description: String::new(),
                },
                Choice {
                    id: "no".into(),
                    title: "Nein".into(),
                    description: String::new(),
                },
            ],
        },
    }))
    .await;
    assert_eq!(body["type"], "interactive");
    assert_eq!(
        body["interactive"],
        json!({
            "type": "button",
            "header": {"type": "text", "text": "Lieferung"},
            "body": {"text": "Passt Ihnen Dienstag?"},
            "footer": {"text": "Antworten Sie mit einem Knopf"},
            "action": {"buttons": [
                {"type": "reply", "reply": {"id": "yes", "title": "Ja"}},
                {"type": "reply", "reply": {"id": "no", "title": "Nein"}}
            ]}
        })
    );
}

#[tokio::test]
async fn interactive_list() {
    let body = sent_body(Content::Interactive(Interactive {
        header: String::new(),
        body: "Wählen Sie einen Termin".into(),
        footer: String::new(),
        choices: Choices::List {
            button: "Termine".into(),
            sections: vec![ChoiceSection {
                title: "Dienstag".into(),
                rows: vec![
                    Choice {
                        id: "slot-1".into(),
                        title: "Di 08:00".into(),
                        description: "früh".into(),
                    },
                    Choice {
                        id: "slot-2".into(),
                        title: "Di 10:00".into(),
                        description: String::new(),
                    },
                ],
            }],
        },
    }))
    .await;
    assert_eq!(
        body["interactive"],
        json!({
            "type": "list",
            "body": {"text": "Wählen Sie einen Termin"},
            "action": {
                "button": "Termine",
                "sections": [{"title": "Dienstag", "rows": [
                    {"id": "slot-1", "title": "Di 08:00", "description": "früh"},
                    {"id": "slot-2", "title": "Di 10:00"}
                ]}]
            }
        })
    );
}

#[tokio::test]
async fn what_whatsapp_cannot_send_is_unsupported_and_not_sent() {
    let (fake, adapter) = setup().await;
    let contents = [
        Content::CallbackRequest(CallbackRequest {
            agent_address: "+4930123456".into(),
            ..Default::default()
        }),
        Content::ChoiceReply(Choice::default()),
        Content::Reaction(Default::default()),
        Content::Location(Default::default()),
    ];
    for content in contents {
        let e = adapter.send(&message(content)).await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Unsupported);
        assert!(!e.is_retryable());
    }
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn a_tenant_without_a_number_is_a_configuration_error() {
    let (fake, adapter) = setup().await;
    let mut m = message(text("Hallo"));
    m.tenant = "someone-else".into();
    let e = adapter.send(&m).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Configuration);
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn the_bearer_token_is_checked() {
    let fake = FakeGraph::start(TOKEN).await;
    let mut config = config(&fake.base_url());
    config.access_token = "EAAG-expired".into();
    let adapter = WhatsAppAdapter::new(config).unwrap();
    let e = adapter.send(&message(text("Hallo"))).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Configuration);
    assert_eq!(e.code(), "190");
    assert_eq!(
        fake.requests()[0].authorization.as_deref(),
        Some("Bearer EAAG-expired")
    );
    let e = adapter.health().await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Configuration);
}

#[tokio::test]
async fn mark_read_posts_the_documented_body() {
    let (fake, adapter) = setup().await;
    adapter
        .mark_read(TENANT, "wamid.HBgNINBOUND")
        .await
        .unwrap();
    assert_eq!(
        fake.sent(),
        [
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.HBgNINBOUND"})
        ]
    );
    let e = adapter.mark_read("nobody", "wamid.X").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Configuration);
}

#[tokio::test]
async fn media_metadata_and_health() {
    let (fake, adapter) = setup().await;
    fake.add_media("1479537139650973", "image/jpeg", "abc123", 52318);
    let info = adapter.media_info("1479537139650973").await.unwrap();
    assert_eq!(info.mime_type, "image/jpeg");
    assert_eq!(info.sha256, "abc123");
    assert_eq!(info.file_size, 52318);
    assert!(info.url.starts_with(&fake.base_url()));
    assert_eq!(
        adapter.media_info("../x").await.unwrap_err().class(),
        ErrorClass::Permanent
    );

    adapter.health().await.unwrap();
    let last = fake.requests().pop().unwrap();
    assert_eq!(last.path, format!("/v24.0/{PHONE_NUMBER_ID}"));
    assert_eq!(last.query.as_deref(), Some("fields=id"));
}

#[tokio::test]
async fn there_is_no_status_query() {
    let (fake, adapter) = setup().await;
    let e = adapter.fetch_status("wamid.X").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Unsupported);
    assert!(fake.requests().is_empty());
}
