//! The Cloud API's size and shape rules for outbound content (PROTOCOLS §1,
//! "Sending"): the half of `check_content` that needs no template catalogue.
//!
//! Guarantees: every rule here is one PROTOCOLS states, lengths are counted
//! in characters (not bytes), and every violation names the field at fault
//! with the path of the neutral content (`interactive.choices.buttons[1].title`),
//! so that a caller sees all problems at once.

use omniroute_channel::content::{Choices, MediaKind, ParameterValue};
use omniroute_channel::{ChoiceLimits, Content, ContentViolation};

/// Text body limit (PROTOCOLS §1).
pub const MAX_TEXT: usize = 4096;
/// Media caption limit.
pub const MAX_CAPTION: usize = 1024;
/// Interactive body limit.
pub const MAX_INTERACTIVE_BODY: usize = 1024;
/// Reply buttons per message.
pub const MAX_BUTTONS: usize = 3;
/// Reply button title limit.
pub const MAX_BUTTON_TITLE: usize = 20;
/// Reply button id limit.
pub const MAX_BUTTON_ID: usize = 256;
/// List button text limit.
pub const MAX_LIST_BUTTON: usize = 20;
/// Sections of a list.
pub const MAX_SECTIONS: usize = 10;
/// Rows of a list, all sections together.
pub const MAX_ROWS: usize = 10;
/// List row title limit.
pub const MAX_ROW_TITLE: usize = 24;
/// List row description limit.
pub const MAX_ROW_DESCRIPTION: usize = 72;
/// List section title limit.
pub const MAX_SECTION_TITLE: usize = 24;

/// What reply buttons and lists hold, as the adapter declares it in its
/// capabilities (the API reads it; [`check_limits`] enforces it).
pub const CHOICE_LIMITS: ChoiceLimits = ChoiceLimits {
    body: MAX_INTERACTIVE_BODY,
    buttons: MAX_BUTTONS,
    button_title: MAX_BUTTON_TITLE,
    button_id: MAX_BUTTON_ID,
    list_button: MAX_LIST_BUTTON,
    sections: MAX_SECTIONS,
    section_title: MAX_SECTION_TITLE,
    rows: MAX_ROWS,
    row_title: MAX_ROW_TITLE,
    row_description: MAX_ROW_DESCRIPTION,
};

/// The Cloud API's size and shape rules for `content` (PROTOCOLS §1,
/// "Sending"), lengths counted in characters. Needs no catalogue.
pub fn check_limits(content: &Content) -> Vec<ContentViolation> {
    let mut v = Vec::new();
    let mut push =
        |field: String, description: String| v.push(ContentViolation { field, description });
    let len = |s: &str| s.chars().count();
    match content {
        Content::Text(text) => {
            if text.body.trim().is_empty() {
                push("text.body".into(), "must not be empty".into());
            } else if len(&text.body) > MAX_TEXT {
                push(
                    "text.body".into(),
                    format!("{} characters, at most {MAX_TEXT}", len(&text.body)),
                );
            }
        }
        Content::Media(media) => {
            if media.url.is_empty() && media.media_id.is_empty() {
                push("media.url".into(), "a url or a media id is needed".into());
            }
            if !media.caption.is_empty() {
                if matches!(media.kind, MediaKind::Audio | MediaKind::Sticker) {
                    push(
                        "media.caption".into(),
                        "audio and stickers have no caption".into(),
                    );
                } else if len(&media.caption) > MAX_CAPTION {
                    push(
                        "media.caption".into(),
                        format!("{} characters, at most {MAX_CAPTION}", len(&media.caption)),
                    );
                }
            }
        }
        Content::Template(template) => {
            if template.name.trim().is_empty() {
                push("template.name".into(), "must not be empty".into());
            }
            if template.language.trim().is_empty() {
                push("template.language".into(), "must not be empty".into());
            }
            for (i, component) in template.components.iter().enumerate() {
                for (j, p) in component.parameters.iter().enumerate() {
                    let ParameterValue::Media(media) = &p.value else {
                        continue;
                    };
                    let field = format!("template.components[{i}].parameters[{j}]");
                    if matches!(media.kind, MediaKind::Audio | MediaKind::Sticker) {
                        push(
                            field,
                            "template media is an image, document or video".into(),
                        );
                    } else if media.url.is_empty() && media.media_id.is_empty() {
                        push(field, "a url or a media id is needed".into());
                    }
                }
            }
        }
        Content::Interactive(interactive) => {
            if interactive.body.trim().is_empty() {
                push("interactive.body".into(), "must not be empty".into());
            } else if len(&interactive.body) > MAX_INTERACTIVE_BODY {
                push(
                    "interactive.body".into(),
                    format!(
                        "{} characters, at most {MAX_INTERACTIVE_BODY}",
                        len(&interactive.body)
                    ),
                );
            }
            match &interactive.choices {
                Choices::Buttons { buttons } => {
                    if buttons.is_empty() || buttons.len() > MAX_BUTTONS {
                        push(
                            "interactive.choices.buttons".into(),
                            format!("{} buttons, 1 to {MAX_BUTTONS} allowed", buttons.len()),
                        );
                    }
                    for (i, b) in buttons.iter().enumerate() {
                        let field = format!("interactive.choices.buttons[{i}]");
                        if b.title.trim().is_empty() || len(&b.title) > MAX_BUTTON_TITLE {
                            push(
                                format!("{field}.title"),
                                format!("1 to {MAX_BUTTON_TITLE} characters"),
                            );
                        } else if buttons[..i].iter().any(|o| o.title == b.title) {
                            push(
                                format!("{field}.title"),
                                "button titles must be unique".into(),
                            );
                        }
                        if b.id.is_empty() || len(&b.id) > MAX_BUTTON_ID {
                            push(
                                format!("{field}.id"),
                                format!("1 to {MAX_BUTTON_ID} characters"),
                            );
                        }
                    }
                }
                Choices::List { button, sections } => {
                    if button.trim().is_empty() || len(button) > MAX_LIST_BUTTON {
                        push(
                            "interactive.choices.button".into(),
                            format!("1 to {MAX_LIST_BUTTON} characters"),
                        );
                    }
                    if sections.is_empty() || sections.len() > MAX_SECTIONS {
                        push(
                            "interactive.choices.sections".into(),
                            format!("{} sections, 1 to {MAX_SECTIONS} allowed", sections.len()),
                        );
                    }
                    let rows: usize = sections.iter().map(|s| s.rows.len()).sum();
                    if rows == 0 || rows > MAX_ROWS {
                        push(
                            "interactive.choices.sections".into(),
                            format!("{rows} rows in all, 1 to {MAX_ROWS} allowed"),
                        );
                    }
                    for (s, section) in sections.iter().enumerate() {
                        if len(&section.title) > MAX_SECTION_TITLE {
                            push(
                                format!("interactive.choices.sections[{s}].title"),
                                format!("at most {MAX_SECTION_TITLE} characters"),
                            );
                        }
                        for (r, row) in section.rows.iter().enumerate() {
                            let field = format!("interactive.choices.sections[{s}].rows[{r}]");
                            if row.title.trim().is_empty() || len(&row.title) > MAX_ROW_TITLE {
                                push(
                                    format!("{field}.title"),
                                    format!("1 to {MAX_ROW_TITLE} characters"),
                                );
                            }
                            if len(&row.description) > MAX_ROW_DESCRIPTION {
                                push(
                                    format!("{field}.description"),
                                    format!("at most {MAX_ROW_DESCRIPTION} characters"),
                                );
                            }
                            if row.id.is_empty() {
                                push(format!("{field}.id"), "must not be empty".into());
                            }
                        }
                    }
                }
            }
        }
        other @ (Content::CallbackRequest(_)
        | Content::ChoiceReply(_)
        | Content::Reaction(_)
        | Content::Location(_)
        | Content::Unsupported(_)
        | Content::InboundCall(_)) => {
            push(
                "kind".into(),
                format!("whatsapp cannot send {}", other.kind()),
            );
        }
    }
    v
}
