//! The template catalogue: loading with paging, checks against it, and the
//! size checks that need no catalogue.

use std::time::Duration;

use omniroute_channel::content::{
    Choice, ChoiceSection, Choices, ComponentType, Interactive, Media, MediaKind, ParameterValue,
    Template, TemplateComponent, TemplateParameter,
};
use omniroute_channel::{Adapter, Category, Content, ContentViolation, ErrorClass};
use omniroute_whatsapp::WhatsAppAdapter;
use omniroute_whatsapp::fake::FakeGraph;
use serde_json::Value;

use crate::*;

fn catalogue() -> Vec<Value> {
    serde_json::from_slice(&fixture("templates.json")).unwrap()
}

async fn loaded() -> (FakeGraph, WhatsAppAdapter) {
    let (fake, adapter) = setup().await;
    fake.set_templates(WABA_ID, catalogue());
    adapter.refresh_templates().await.unwrap();
    (fake, adapter)
}

fn text_params(n: usize) -> Vec<TemplateParameter> {
    (0..n)
        .map(|i| TemplateParameter {
            name: String::new(),
            value: ParameterValue::Text {
                text: format!("p{i}"),
            },
        })
        .collect()
}

fn component(kind: ComponentType, parameters: Vec<TemplateParameter>) -> TemplateComponent {
    TemplateComponent {
        kind,
        button_sub_type: String::new(),
        index: 0,
        parameters,
    }
}

fn image_header() -> TemplateComponent {
    component(
        ComponentType::Header,
        vec![TemplateParameter {
            name: String::new(),
            value: ParameterValue::Media(Media {
                kind: MediaKind::Image,
                url: "https://cdn.example.com/p.jpg".into(),
                media_id: String::new(),
                caption: String::new(),
                filename: String::new(),
                mime_type: String::new(),
                sha256: String::new(),
            }),
        }],
    )
}

fn url_button(parameters: usize) -> TemplateComponent {
    TemplateComponent {
        kind: ComponentType::Button,
        button_sub_type: "url".into(),
        index: 0,
        parameters: text_params(parameters),
    }
}

fn template(name: &str, language: &str, components: Vec<TemplateComponent>) -> Content {
    Content::Template(Template {
        name: name.into(),
        language: language.into(),
        components,
    })
}

fn order_shipped(language: &str, components: Vec<TemplateComponent>) -> Content {
    template("order_shipped", language, components)
}

fn fields(violations: &[ContentViolation]) -> Vec<&str> {
    violations.iter().map(|v| v.field.as_str()).collect()
}

#[tokio::test]
async fn the_catalogue_is_loaded_page_by_page() {
    let (fake, adapter) = setup().await;
    fake.set_templates(WABA_ID, catalogue());
    fake.set_page_size(2);
    adapter.refresh_templates().await.unwrap();

    let requests = fake.requests();
    assert_eq!(requests.len(), 3, "6 templates in pages of 2");
    for request in &requests {
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, format!("/v24.0/{WABA_ID}/message_templates"));
        assert_eq!(
            request.authorization.as_deref(),
            Some("Bearer EAAG-test-token")
        );
    }
    let first = requests[0].query.as_deref().unwrap();
    assert!(
        first.contains("fields=name,language,status,category,components"),
        "{first}"
    );
    assert!(first.contains("limit=100"), "{first}");
    assert!(
        requests[1]
            .query
            .as_deref()
            .unwrap()
            .contains("after=QVFI2")
    );
    assert!(
        requests[2]
            .query
            .as_deref()
            .unwrap()
            .contains("after=QVFI4")
    );

    // Approved ones only: the French translation is rejected, old_notice paused.
    let names: Vec<(String, String)> = adapter
        .templates(TENANT)
        .into_iter()
        .map(|t| (t.name, t.language))
        .collect();
    let expected = [
        ("login_code", "de"),
        ("order_shipped", "de"),
        ("order_shipped", "en_US"),
        ("spring_sale", "de"),
    ];
    assert_eq!(names, expected.map(|(n, l)| (n.to_owned(), l.to_owned())));
    let shipped = adapter
        .templates(TENANT)
        .into_iter()
        .find(|t| t.name == "order_shipped")
        .unwrap();
    assert_eq!(shipped.header, ["image"]);
    assert_eq!(shipped.body.len(), 2);
    assert_eq!(shipped.buttons.len(), 2);
    assert_eq!(shipped.buttons[0].sub_type, Some("url"));
    assert_eq!(shipped.buttons[1].kind, "quick_reply");
}

#[tokio::test]
async fn paging_links_to_another_host_are_not_followed() {
    let (fake, adapter) = setup().await;
    fake.set_templates(WABA_ID, catalogue());
    fake.set_page_size(4);
    fake.set_foreign_next(true);
    adapter.refresh_templates().await.unwrap();
    // The cursor was used on our host instead (the token stays with us).
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests[1]
            .query
            .as_deref()
            .unwrap()
            .contains("after=QVFI4")
    );
    assert_eq!(adapter.templates(TENANT).len(), 4);
}

#[tokio::test]
async fn categories_map_to_ours() {
    let (_fake, adapter) = loaded().await;
    let category = |name, language| adapter.approved_category(TENANT, name, language);
    assert_eq!(
        category("order_shipped", "de"),
        Some(Category::Transactional)
    );
    assert_eq!(category("spring_sale", "de"), Some(Category::Marketing));
    assert_eq!(category("login_code", "de"), Some(Category::Authentication));
    assert_eq!(category("order_shipped", "fr"), None, "not approved");
    assert_eq!(category("nope", "de"), None);
    assert_eq!(
        adapter.approved_category("other-tenant", "order_shipped", "de"),
        None
    );
}

#[tokio::test]
async fn a_matching_template_passes() {
    let (_fake, adapter) = loaded().await;
    let content = order_shipped(
        "de",
        vec![
            image_header(),
            component(ComponentType::Body, text_params(2)),
            url_button(1),
        ],
    );
    assert_eq!(adapter.check_content(TENANT, &content), []);
    // The quick reply button may be given with its payload.
    let mut components = vec![
        image_header(),
        component(ComponentType::Body, text_params(2)),
        url_button(1),
    ];
    components.push(TemplateComponent {
        kind: ComponentType::Button,
        button_sub_type: "quick_reply".into(),
        index: 1,
        parameters: vec![TemplateParameter {
            name: String::new(),
            value: ParameterValue::Payload {
                payload: "stop".into(),
            },
        }],
    });
    assert_eq!(
        adapter.check_content(TENANT, &order_shipped("en_US", components)),
        []
    );
}

#[tokio::test]
async fn unknown_names_and_languages_are_refused() {
    let (_fake, adapter) = loaded().await;
    let unknown = template("order_shiped", "de", Vec::new());
    assert_eq!(
        fields(&adapter.check_content(TENANT, &unknown)),
        ["template.name"]
    );

    let v = adapter.check_content(TENANT, &order_shipped("fr", Vec::new()));
    assert_eq!(fields(&v), ["template.language"]);
    assert!(
        v[0].description.contains("de, en_US"),
        "{}",
        v[0].description
    );
}

#[tokio::test]
async fn parameter_counts_are_checked_per_component() {
    let (_fake, adapter) = loaded().await;
    let v = adapter.check_content(
        TENANT,
        &order_shipped(
            "de",
            vec![
                image_header(),
                component(ComponentType::Body, text_params(1)),
                url_button(2),
            ],
        ),
    );
    assert_eq!(
        fields(&v),
        [
            "template.components[1].parameters",
            "template.components[2].parameters"
        ]
    );
    assert!(
        v[0].description.contains("expects 2 parameters, 1 given"),
        "{}",
        v[0].description
    );
    assert!(
        v[1].description.contains("expects 1 parameter, 2 given"),
        "{}",
        v[1].description
    );

    // Missing components and a button that does not exist.
    let mut missing = url_button(1);
    missing.index = 5;
    let v = adapter.check_content(TENANT, &order_shipped("de", vec![missing]));
    assert_eq!(
        fields(&v),
        [
            "template.components[0].index",
            "template.components",
            "template.components",
            "template.components"
        ]
    );

    // A wrong button sub type.
    let mut wrong = url_button(1);
    wrong.button_sub_type = "copy_code".into();
    let v = adapter.check_content(
        TENANT,
        &order_shipped(
            "de",
            vec![
                image_header(),
                component(ComponentType::Body, text_params(2)),
                wrong,
            ],
        ),
    );
    assert_eq!(fields(&v), ["template.components[2].button_sub_type"]);
}

#[tokio::test]
async fn named_parameters_are_checked_by_name() {
    let (_fake, adapter) = loaded().await;
    let named = |names: &[&str]| {
        template(
            "spring_sale",
            "de",
            vec![component(
                ComponentType::Body,
                names
                    .iter()
                    .map(|n| TemplateParameter {
                        name: (*n).into(),
                        value: ParameterValue::Text { text: "x".into() },
                    })
                    .collect(),
            )],
        )
    };
    assert_eq!(
        adapter.check_content(TENANT, &named(&["first_name", "discount"])),
        []
    );
    let v = adapter.check_content(TENANT, &named(&["first_name", "rabatt"]));
    assert_eq!(fields(&v), ["template.components[0].parameters[1].name"]);
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_catalogue() {
    let (fake, adapter) = loaded().await;
    fake.fail_next(1, 500, 131000, None);
    let e = adapter.refresh_templates().await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient);
    assert_eq!(adapter.templates(TENANT).len(), 4);
    let unknown = template("nope", "de", Vec::new());
    assert_eq!(adapter.check_content(TENANT, &unknown).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_background_refresh_follows_the_catalogue() {
    let fake = FakeGraph::start(TOKEN).await;
    fake.set_templates(WABA_ID, catalogue()[..1].to_vec());
    let mut config = config(&fake.base_url());
    config.template_refresh = Duration::from_secs(600);
    let adapter = WhatsAppAdapter::new(config).unwrap();
    let task = adapter.spawn_refresh();
    while adapter.templates(TENANT).is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(adapter.templates(TENANT).len(), 1);

    fake.set_templates(WABA_ID, catalogue());
    tokio::time::sleep(Duration::from_secs(599)).await;
    assert_eq!(adapter.templates(TENANT).len(), 1, "not yet refreshed");
    tokio::time::sleep(Duration::from_secs(2)).await;
    while adapter.templates(TENANT).len() == 1 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(adapter.templates(TENANT).len(), 4);

    // The task ends with the adapter.
    drop(adapter);
    tokio::time::sleep(Duration::from_secs(601)).await;
    assert!(task.is_finished());
}

#[tokio::test]
async fn without_a_catalogue_only_sizes_are_checked() {
    let (_fake, adapter) = setup().await;
    let anything = template("never_loaded", "xx", Vec::new());
    assert_eq!(adapter.check_content(TENANT, &anything), []);

    let long = text(&"a".repeat(4097));
    assert_eq!(fields(&adapter.check_content(TENANT, &long)), ["text.body"]);
    assert_eq!(adapter.check_content(TENANT, &text(&"ä".repeat(4096))), []);

    let mut image = Media {
        kind: MediaKind::Image,
        url: "https://cdn.example.com/a.jpg".into(),
        media_id: String::new(),
        caption: "c".repeat(1025),
        filename: String::new(),
        mime_type: String::new(),
        sha256: String::new(),
    };
    assert_eq!(
        fields(&adapter.check_content(TENANT, &Content::Media(image.clone()))),
        ["media.caption"]
    );
    image.caption = "c".repeat(1024);
    assert_eq!(adapter.check_content(TENANT, &Content::Media(image)), []);

    let button = |id: &str, title: &str| Choice {
        id: id.into(),
        title: title.into(),
        description: String::new(),
    };
    let buttons = |buttons: Vec<Choice>| {
        Content::Interactive(Interactive {
            header: String::new(),
            body: "Frage".into(),
            footer: String::new(),
            choices: Choices::Buttons { buttons },
        })
    };
    let four = buttons(vec![
        button("1", "a"),
        button("2", "b"),
        button("3", "c"),
        button("4", "d"),
    ]);
    assert_eq!(
        fields(&adapter.check_content(TENANT, &four)),
        ["interactive.choices.buttons"]
    );
    let bad = buttons(vec![
        button("1", "Ja"),
        button("2", "Ja"),
        button(&"i".repeat(257), &"t".repeat(21)),
    ]);
    assert_eq!(
        fields(&adapter.check_content(TENANT, &bad)),
        [
            "interactive.choices.buttons[1].title",
            "interactive.choices.buttons[2].title",
            "interactive.choices.buttons[2].id"
        ]
    );

    let row = |title: &str, description: &str| Choice {
        id: "r".into(),
        title: title.into(),
        description: description.into(),
    };
    let list = Content::Interactive(Interactive {
        header: String::new(),
        body: "b".repeat(1025),
        footer: String::new(),
        choices: Choices::List {
            button: "b".repeat(21),
            sections: (0..11)
                .map(|_| ChoiceSection {
                    title: "s".into(),
                    rows: vec![row("ok", "")],
                })
                .chain([ChoiceSection {
                    title: "long".into(),
                    rows: vec![row(&"t".repeat(25), &"d".repeat(73))],
                }])
                .collect(),
        },
    });
    assert_eq!(
        fields(&adapter.check_content(TENANT, &list)),
        [
            "interactive.body",
            "interactive.choices.button",
            "interactive.choices.sections",
            "interactive.choices.sections",
            "interactive.choices.sections[11].rows[0].title",
            "interactive.choices.sections[11].rows[0].description"
        ]
    );
    let titled = |title: &str| {
        Content::Interactive(Interactive {
            header: String::new(),
            body: "Wann?".into(),
            footer: String::new(),
            choices: Choices::List {
                button: "Termine".into(),
                sections: vec![ChoiceSection {
                    title: title.into(),
                    rows: vec![row("ok", "")],
                }],
            },
        })
    };
    assert_eq!(adapter.check_content(TENANT, &titled(&"s".repeat(24))), []);
    assert_eq!(
        fields(&adapter.check_content(TENANT, &titled(&"s".repeat(25)))),
        ["interactive.choices.sections[0].title"]
    );

    let callback = Content::CallbackRequest(Default::default());
    assert_eq!(fields(&adapter.check_content(TENANT, &callback)), ["kind"]);
}
