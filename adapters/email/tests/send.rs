//! The email adapter against a local SMTP relay (a real SMTP conversation
//! over TCP): the bytes it receives, and the classification of its replies.

use omniroute_channel::content::Text;
use omniroute_channel::{
    Adapter, Address, Category, Channel, Content, ErrorClass, OutboundMessage, PhoneRegion,
};
use omniroute_email::fake::{FakeSmtp, Stage};
use omniroute_email::{EmailAdapter, EmailConfig};

fn adapter(port: u16) -> EmailAdapter {
    adapter_with_templates(port, None)
}

fn adapter_with_templates(port: u16, template_dir: Option<std::path::PathBuf>) -> EmailAdapter {
    EmailAdapter::new(EmailConfig {
        template_dir,
        ..omniroute_email::fake::config(port)
    })
    .expect("adapter")
}

fn message(body: &str, html: &str) -> OutboundMessage {
    OutboundMessage {
        tenant: "acme".into(),
        message_id: "01a232b1-1186-710f-972d-02f288bc6632".into(),
        to: Address::parse(
            Channel::Email,
            "Anna.Schmidt@Example.com",
            PhoneRegion::default(),
        )
        .unwrap(),
        category: Category::Transactional,
        content: Content::Text(Text {
            body: body.into(),
            subject: String::new(),
            html_body: html.into(),
            ..Text::default()
        }),
        reply_to: None,
        attempt: 1,
        window_open_until: None,
        locale: None,
        trace_parent: String::new(),
    }
}

#[tokio::test]
async fn a_text_goes_out_as_a_well_formed_email() {
    let relay = FakeSmtp::start().await;
    let adapter = adapter(relay.port());
    let receipt = adapter
        .send(&message(
            "Your order <A-17> has shipped.\nTrack it online.",
            "",
        ))
        .await
        .expect("accepted");
    assert_eq!(
        receipt.provider_message_id,
        "01a232b1-1186-710f-972d-02f288bc6632@reply.acme.example"
    );
    let received = relay.received();
    assert_eq!(received.len(), 1);
    let mail = &received[0];
    assert_eq!(
        mail.mail_from, "bounces+01a232b11186710f972d02f288bc6632@reply.acme.example",
        "the return path names the message (VERP)"
    );
    assert_eq!(mail.rcpt_to, ["Anna.Schmidt@example.com"], "one recipient");
    assert_eq!(
        mail.header("Message-ID").as_deref(),
        Some("<01a232b1-1186-710f-972d-02f288bc6632@reply.acme.example>")
    );
    assert_eq!(
        mail.header("From").as_deref(),
        Some("\"ACME Support\" <support@acme.example>")
    );
    assert_eq!(
        mail.header("Reply-To").as_deref(),
        Some("reply+01a232b11186710f972d02f288bc6632@reply.acme.example"),
        "replies name the message even when a client drops the threading headers"
    );
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Your order <A-17> has shipped.")
    );
    assert!(mail.header("Date").is_some());
    assert!(mail.header("In-Reply-To").is_none());
    let content_type = mail.header("Content-Type").unwrap();
    assert!(
        content_type.starts_with("multipart/alternative"),
        "{content_type}"
    );
    assert_eq!(
        mail.part("text/plain").as_deref(),
        Some("Your order <A-17> has shipped.\r\nTrack it online.")
    );
    let html = mail.part("text/html").expect("an HTML alternative");
    assert!(
        html.contains("Your order &lt;A-17&gt; has shipped.<br>"),
        "the HTML alternative is the text, escaped: {html}"
    );
}

#[tokio::test]
async fn a_reply_threads_under_the_customers_mail() {
    let relay = FakeSmtp::start().await;
    let adapter = adapter(relay.port());
    let mut reply = message(
        "It left our warehouse today.",
        "<p>It left <b>today</b>.</p>",
    );
    if let Content::Text(text) = &mut reply.content {
        text.subject = "Re: Where is my order?".into();
    }
    reply.reply_to = Some("CAF=abc123@mail.example.com".into());
    adapter.send(&reply).await.expect("accepted");
    let mail = &relay.received()[0];
    assert_eq!(
        mail.header("In-Reply-To").as_deref(),
        Some("<CAF=abc123@mail.example.com>")
    );
    assert_eq!(
        mail.header("References").as_deref(),
        Some("<CAF=abc123@mail.example.com>")
    );
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Re: Where is my order?")
    );
    assert_eq!(
        mail.part("text/html").as_deref(),
        Some("<p>It left <b>today</b>.</p>"),
        "the caller's HTML as given"
    );
}

#[tokio::test]
async fn smtp_replies_are_classified_and_kept() {
    let relay = FakeSmtp::start().await;
    let adapter = adapter(relay.port());
    relay.fail_next(1, Stage::Data, "451 4.7.1 Greylisted, try again later");
    let e = adapter.send(&message("hi", "")).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient, "{e:?}");
    assert_eq!(e.code(), "smtp-451");
    assert!(e.message().contains("Greylisted"), "{e:?}");
    // Then the relay takes it.
    adapter
        .send(&message("hi", ""))
        .await
        .expect("accepted on retry");

    relay.fail_next(1, Stage::Rcpt, "550 5.1.1 No such user here");
    let e = adapter.send(&message("hi", "")).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Permanent, "{e:?}");
    assert_eq!(e.code(), "smtp-550");
    assert!(e.message().contains("No such user"), "{e:?}");
    assert_eq!(relay.received().len(), 1, "only the accepted one arrived");
}

#[tokio::test]
async fn an_unreachable_relay_is_transient() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = adapter(port).send(&message("hi", "")).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient, "{e:?}");
}

/// The tenant's email templates: `acme/order_shipped.de.*`.
fn templates() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let acme = dir.path().join("acme");
    std::fs::create_dir(&acme).unwrap();
    std::fs::write(
        acme.join("order_shipped.de.subject"),
        "Bestellung {{ order_id }}\n",
    )
    .unwrap();
    std::fs::write(
        acme.join("order_shipped.de.txt"),
        "Hallo {{ params[0] }}, Ihre Bestellung {{ order_id }} ist unterwegs.",
    )
    .unwrap();
    std::fs::write(
        acme.join("order_shipped.de.html"),
        "<p>Hallo <b>{{ params[0] }}</b>, Bestellung {{ order_id }}.</p>",
    )
    .unwrap();
    dir
}

fn template(name: &str, language: &str, parameters: &[(&str, &str)]) -> Content {
    use omniroute_channel::content::{
        ComponentType, ParameterValue, Template, TemplateComponent, TemplateParameter,
    };
    Content::Template(Template {
        name: name.into(),
        language: language.into(),
        components: vec![TemplateComponent {
            kind: ComponentType::Body,
            button_sub_type: String::new(),
            index: 0,
            parameters: parameters
                .iter()
                .map(|(name, text)| TemplateParameter {
                    name: (*name).into(),
                    value: ParameterValue::Text {
                        text: (*text).into(),
                    },
                })
                .collect(),
        }],
    })
}

#[tokio::test]
async fn a_template_renders_the_tenants_email_template() {
    let dir = templates();
    let relay = FakeSmtp::start().await;
    let adapter = adapter_with_templates(relay.port(), Some(dir.path().to_owned()));
    let content = template(
        "order_shipped",
        "de",
        &[("", "<Anna>"), ("order_id", "A-17")],
    );
    assert!(adapter.check_content("acme", &content).is_empty());
    let mut message = message("", "");
    message.content = content;
    adapter.send(&message).await.expect("accepted");
    let mail = &relay.received()[0];
    assert_eq!(mail.header("Subject").as_deref(), Some("Bestellung A-17"));
    assert_eq!(
        mail.part("text/plain").as_deref(),
        Some("Hallo <Anna>, Ihre Bestellung A-17 ist unterwegs.")
    );
    assert_eq!(
        mail.part("text/html").as_deref(),
        Some("<p>Hallo <b>&lt;Anna&gt;</b>, Bestellung A-17.</p>"),
        "HTML escapes what it inserts"
    );
}

#[tokio::test]
async fn a_missing_template_or_parameter_is_refused_before_sending() {
    let dir = templates();
    let adapter = adapter_with_templates(25, Some(dir.path().to_owned()));
    let field = |content: Content| {
        let found = adapter.check_content("acme", &content);
        assert_eq!(found.len(), 1, "{found:?}");
        found[0].field.clone()
    };
    assert_eq!(field(template("no_such", "de", &[])), "template.name");
    assert_eq!(
        field(template("order_shipped", "fr", &[("order_id", "A-17")])),
        "template.language"
    );
    assert_eq!(
        field(template("order_shipped", "de", &[("", "Anna")])),
        "template.components",
        "order_id is missing"
    );
    assert_eq!(
        adapter.check_content("other-tenant", &template("order_shipped", "de", &[]))[0].field,
        "template.name",
        "templates are per tenant"
    );
}

fn media_message(url: &str, caption: &str) -> OutboundMessage {
    OutboundMessage {
        content: Content::Media(omniroute_channel::content::Media {
            kind: omniroute_channel::content::MediaKind::Document,
            url: url.into(),
            media_id: String::new(),
            caption: caption.into(),
            filename: String::new(),
            mime_type: String::new(),
            sha256: String::new(),
        }),
        ..message("", "")
    }
}

#[tokio::test]
async fn media_is_attached_up_to_the_limit_and_linked_beyond_it() {
    let relay = FakeSmtp::start().await;
    let small: Vec<u8> = (0..4096u32).map(|i| (i % 256) as u8).collect();
    let files = omniroute_email::fake::FakeFiles::start(vec![
        ("/docs/invoice-17.pdf", "application/pdf", small.clone()),
        (
            "/docs/catalogue.pdf",
            "application/pdf",
            vec![b'x'; 2 << 20],
        ),
    ])
    .await;
    let adapter = adapter(relay.port());

    let url = files.url("/docs/invoice-17.pdf");
    adapter
        .send(&media_message(&url, "Your invoice\nThank you!"))
        .await
        .expect("sent");
    let mail = &relay.received()[0];
    assert!(
        mail.header("Content-Type")
            .is_some_and(|ct| ct.starts_with("multipart/mixed")),
        "{:?}",
        mail.header("Content-Type")
    );
    assert_eq!(mail.header("Subject").as_deref(), Some("Your invoice"));
    assert_eq!(
        mail.part("text/plain").as_deref(),
        Some("Your invoice\r\nThank you!")
    );
    assert_eq!(
        mail.attachment("invoice-17.pdf"),
        Some(("application/pdf".to_owned(), small)),
        "named by the URL, typed by the server, bytes intact"
    );

    // Over the 1 MiB limit of the test configuration: a link instead.
    let big = files.url("/docs/catalogue.pdf");
    adapter
        .send(&media_message(&big, "Our catalogue"))
        .await
        .expect("sent");
    let mail = &relay.received()[1];
    assert_eq!(mail.attachment("catalogue.pdf"), None, "not attached");
    assert_eq!(
        mail.part("text/plain").as_deref(),
        Some(format!("Our catalogue\r\n\r\n{big}").as_str())
    );
    assert!(
        mail.part("text/html")
            .is_some_and(|h| h.contains(&format!("<a href=\"{big}\">catalogue.pdf</a>"))),
        "{:?}",
        mail.part("text/html")
    );

    // A URL that is not there fails the step for good; nothing is sent.
    let missing = files.url("/docs/gone.pdf");
    let error = adapter
        .send(&media_message(&missing, ""))
        .await
        .expect_err("refused");
    assert_eq!(error.class(), ErrorClass::Permanent);
    assert_eq!(error.code(), "media-http-404");
    assert_eq!(relay.received().len(), 2);

    // A media id names nothing on email: refused before it is accepted.
    let by_id = Content::Media(omniroute_channel::content::Media {
        kind: omniroute_channel::content::MediaKind::Image,
        url: String::new(),
        media_id: "1200345678".into(),
        caption: String::new(),
        filename: String::new(),
        mime_type: String::new(),
        sha256: String::new(),
    });
    let violations = adapter.check_content("acme", &by_id);
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].field, "media.url");
}
