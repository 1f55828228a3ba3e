//! The approved template catalogue of each WhatsApp Business Account, and the
//! checks of a template message against it.
//!
//! The catalogue is `GET /{WABA_ID}/message_templates`, followed page by page
//! (`paging.next`, or `paging.cursors.after` when `next` names another host).
//! Only APPROVED templates are kept, each with its category and parameter
//! shape: how many `{{n}}` (or which `{{name}}`) placeholders its header and
//! body have, and its buttons in order with the parameters each takes.
//!
//! Guarantees: a failed fetch keeps the catalogue already loaded (a Graph
//! outage never empties it); checks run only against a loaded catalogue (an
//! account never loaded cannot refuse anything: "unknown" is not "invalid");
//! the catalogue is replaced whole, so a reader never sees half a refresh.

use std::collections::HashMap;
use std::sync::RwLock;

use omniroute_channel::content::{ComponentType, Template};
use omniroute_channel::{AdapterError, Category, ContentViolation, ErrorClass};
use serde::Deserialize;

use crate::client::GraphClient;

/// Page size asked of the Graph API (its maximum for this edge is 100 by
/// default).
const PAGE_LIMIT: u32 = 100;
/// A bound on paging, against a server that never stops answering `next`.
const MAX_PAGES: usize = 1000;

/// An approved template in one language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateInfo {
    /// The template's name.
    pub name: String,
    /// Its language code, as Meta spells it (`de`, `en_US`).
    pub language: String,
    /// Its category: `None` for one we do not know.
    pub category: Option<Category>,
    /// Whether its placeholders are named (`{{first_name}}`) rather than
    /// positional (`{{1}}`).
    pub named_parameters: bool,
    /// The header's format, lower case (`text`, `image`, `video`,
    /// `document`, `location`); empty without a header.
    pub header_format: String,
    /// The header's parameters: placeholders of a text header, or one
    /// parameter (named after the format) for a media or location header.
    pub header: Vec<String>,
    /// The body's parameters: positions ("1", "2") or names.
    pub body: Vec<String>,
    /// The buttons, in order (a button component's `index`).
    pub buttons: Vec<TemplateButton>,
}

/// A button of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateButton {
    /// The catalogue's button type, lower case (`quick_reply`, `url`,
    /// `copy_code`, `otp`, `phone_number`, …).
    pub kind: String,
    /// The `sub_type` a send uses for it, when it takes parameters.
    pub sub_type: Option<&'static str>,
    /// The parameters a button component for it must carry, when known.
    pub parameters: Option<usize>,
    /// Whether a send must include a component for it.
    pub required: bool,
}

/// Maps a catalogue category to ours.
pub fn category_of(graph: &str) -> Option<Category> {
    match graph.to_ascii_uppercase().as_str() {
        "UTILITY" => Some(Category::Transactional),
        "MARKETING" => Some(Category::Marketing),
        "AUTHENTICATION" => Some(Category::Authentication),
        _ => None,
    }
}

// ------------------------------------------------------------ Graph DTOs

#[derive(Debug, Deserialize)]
struct TemplatePage {
    #[serde(default)]
    data: Vec<TemplateDto>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
struct Paging {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    cursors: Option<Cursors>,
}

#[derive(Debug, Deserialize)]
struct Cursors {
    #[serde(default)]
    after: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TemplateDto {
    name: String,
    language: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    parameter_format: Option<String>,
    #[serde(default)]
    components: Vec<TemplateComponentDto>,
}

#[derive(Debug, Deserialize)]
struct TemplateComponentDto {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    buttons: Vec<TemplateButtonDto>,
}

#[derive(Debug, Deserialize)]
struct TemplateButtonDto {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    url: Option<String>,
}

/// The distinct `{{…}}` placeholders of a text, in order of appearance.
fn placeholders(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim().to_owned();
        if !name.is_empty() && !found.contains(&name) {
            found.push(name);
        }
        rest = &after[end + 2..];
    }
    found
}

impl From<&TemplateDto> for TemplateInfo {
    fn from(dto: &TemplateDto) -> TemplateInfo {
        let mut header = Vec::new();
        let mut header_format = String::new();
        let mut body = Vec::new();
        let mut buttons = Vec::new();
        for component in &dto.components {
            match component.kind.to_ascii_uppercase().as_str() {
                "HEADER" => {
                    header_format = component
                        .format
                        .as_deref()
                        .unwrap_or("TEXT")
                        .to_ascii_lowercase();
                    header = match header_format.as_str() {
                        "text" => placeholders(component.text.as_deref().unwrap_or("")),
                        other => vec![other.to_owned()],
                    };
                }
                "BODY" => body = placeholders(component.text.as_deref().unwrap_or("")),
                "BUTTONS" => buttons = component.buttons.iter().map(button_shape).collect(),
                _ => {}
            }
        }
        let named = dto
            .parameter_format
            .as_deref()
            .is_some_and(|f| f.eq_ignore_ascii_case("NAMED"));
        TemplateInfo {
            name: dto.name.clone(),
            language: dto.language.clone(),
            category: category_of(&dto.category),
            named_parameters: named,
            header_format,
            header,
            body,
            buttons,
        }
    }
}

fn button_shape(dto: &TemplateButtonDto) -> TemplateButton {
    let kind = dto.kind.to_ascii_lowercase();
    let (sub_type, parameters, required) = match kind.as_str() {
        "url" => {
            let dynamic = dto.url.as_deref().is_some_and(|u| u.contains("{{"));
            (Some("url"), Some(usize::from(dynamic)), dynamic)
        }
        // A quick reply's payload is optional; a component, if sent, has one.
        "quick_reply" => (Some("quick_reply"), Some(1), false),
        "copy_code" => (Some("copy_code"), Some(1), true),
        // Authentication codes are sent as a URL button with the code.
        "otp" => (Some("url"), Some(1), true),
        _ => (None, None, false),
    };
    TemplateButton {
        kind,
        sub_type,
        parameters,
        required,
    }
}

/// Fetches the approved templates of `waba_id`, every page.
pub async fn fetch(client: &GraphClient, waba_id: &str) -> Result<Vec<TemplateInfo>, AdapterError> {
    let first = client.url(&format!(
        "{waba_id}/message_templates?fields=name,language,status,category,components,parameter_format&limit={PAGE_LIMIT}"
    ));
    let mut url = Some(first.clone());
    let mut templates = Vec::new();
    let mut pages = 0;
    while let Some(current) = url.take() {
        pages += 1;
        if pages > MAX_PAGES {
            return Err(AdapterError::new(
                ErrorClass::Transient,
                "template_paging",
                format!("template catalogue of {waba_id} has more than {MAX_PAGES} pages"),
            ));
        }
        let page: TemplatePage = client.get(&current).await?;
        templates.extend(
            page.data
                .iter()
                .filter(|t| t.status.eq_ignore_ascii_case("APPROVED"))
                .map(TemplateInfo::from),
        );
        let Some(paging) = page.paging else { break };
        let after = paging.cursors.and_then(|c| c.after);
        url = match (paging.next, after) {
            // The bearer token goes only to the configured host.
            (Some(next), _) if client.is_own_url(&next) => Some(next),
            (Some(_), Some(after)) => Some(format!("{first}&after={after}")),
            // No `next`: this was the last page.
            _ => None,
        };
    }
    Ok(templates)
}

// -------------------------------------------------------------- the cache

/// The loaded catalogues, by WABA id.
#[derive(Default)]
pub struct TemplateCache {
    by_waba: RwLock<HashMap<String, HashMap<String, Vec<TemplateInfo>>>>,
}

impl std::fmt::Debug for TemplateCache {
    /// Counts per account, not whole catalogues.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let all = self.by_waba.read().unwrap_or_else(|p| p.into_inner());
        let mut counts: Vec<(&String, usize)> = all
            .iter()
            .map(|(waba, names)| (waba, names.values().map(Vec::len).sum()))
            .collect();
        counts.sort();
        f.debug_struct("TemplateCache")
            .field("templates", &counts)
            .finish()
    }
}

impl TemplateCache {
    /// Replaces the catalogue of `waba_id` whole.
    pub fn replace(&self, waba_id: &str, templates: Vec<TemplateInfo>) {
        let mut by_name: HashMap<String, Vec<TemplateInfo>> = HashMap::new();
        for t in templates {
            by_name.entry(t.name.clone()).or_default().push(t);
        }
        let mut all = self.by_waba.write().unwrap_or_else(|p| p.into_inner());
        all.insert(waba_id.to_owned(), by_name);
    }

    /// The approved languages of a template: `None` when the account's
    /// catalogue was never loaded, empty when it has no such template.
    fn languages(&self, waba_id: &str, name: &str) -> Option<Vec<TemplateInfo>> {
        let all = self.by_waba.read().unwrap_or_else(|p| p.into_inner());
        let catalogue = all.get(waba_id)?;
        Some(catalogue.get(name).cloned().unwrap_or_default())
    }

    /// The template `name` in `language`, if approved.
    pub fn get(&self, waba_id: &str, name: &str, language: &str) -> Option<TemplateInfo> {
        self.languages(waba_id, name)?
            .into_iter()
            .find(|t| t.language == language)
    }

    /// Every approved template of an account (empty when not loaded).
    pub fn all(&self, waba_id: &str) -> Vec<TemplateInfo> {
        let all = self.by_waba.read().unwrap_or_else(|p| p.into_inner());
        let mut list: Vec<TemplateInfo> = all
            .get(waba_id)
            .map(|c| c.values().flatten().cloned().collect())
            .unwrap_or_default();
        list.sort_by(|a, b| (&a.name, &a.language).cmp(&(&b.name, &b.language)));
        list
    }

    /// Checks a template message against the catalogue of `waba_id`; nothing
    /// when that catalogue was never loaded.
    pub fn check(&self, waba_id: &str, template: &Template) -> Vec<ContentViolation> {
        let Some(languages) = self.languages(waba_id, &template.name) else {
            return Vec::new();
        };
        if languages.is_empty() {
            return vec![violation(
                "template.name",
                format!("no approved template named {:?}", template.name),
            )];
        }
        let Some(info) = languages.iter().find(|t| t.language == template.language) else {
            let mut approved: Vec<&str> = languages.iter().map(|t| t.language.as_str()).collect();
            approved.sort_unstable();
            return vec![violation(
                "template.language",
                format!(
                    "template {:?} is not approved in {:?} (approved: {})",
                    template.name,
                    template.language,
                    approved.join(", ")
                ),
            )];
        };
        check_shape(info, template)
    }
}

fn violation(field: impl Into<String>, description: impl Into<String>) -> ContentViolation {
    ContentViolation {
        field: field.into(),
        description: description.into(),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "parameter" } else { "parameters" }
}

/// The parameters given against the template's shape.
fn check_shape(info: &TemplateInfo, template: &Template) -> Vec<ContentViolation> {
    let mut violations = Vec::new();
    let mut seen_header = false;
    let mut seen_body = false;
    let mut seen_buttons = Vec::new();
    for (i, component) in template.components.iter().enumerate() {
        let given = component.parameters.len();
        let field = format!("template.components[{i}].parameters");
        let expected = match component.kind {
            ComponentType::Header => {
                seen_header = true;
                Some(("header", &info.header))
            }
            ComponentType::Body => {
                seen_body = true;
                Some(("body", &info.body))
            }
            ComponentType::Button => None,
        };
        if let Some((part, expected)) = expected {
            if given != expected.len() {
                violations.push(violation(
                    &field,
                    format!(
                        "the {part} of {:?} expects {} {}, {given} given",
                        info.name,
                        expected.len(),
                        plural(expected.len())
                    ),
                ));
            } else if info.named_parameters && (part == "body" || info.header_format == "text") {
                for (j, p) in component.parameters.iter().enumerate() {
                    if !expected.contains(&p.name) {
                        violations.push(violation(
                            format!("{field}[{j}].name"),
                            format!(
                                "{:?} is not a parameter of the {part} (expected: {})",
                                p.name,
                                expected.join(", ")
                            ),
                        ));
                    }
                }
            }
            continue;
        }
        // A button.
        let index = component.index as usize;
        seen_buttons.push(index);
        let Some(button) = info.buttons.get(index) else {
            violations.push(violation(
                format!("template.components[{i}].index"),
                format!(
                    "{:?} has {} buttons, no button at index {index}",
                    info.name,
                    info.buttons.len()
                ),
            ));
            continue;
        };
        if let Some(sub_type) = button.sub_type
            && !component.button_sub_type.is_empty()
            && component.button_sub_type != sub_type
        {
            violations.push(violation(
                format!("template.components[{i}].button_sub_type"),
                format!(
                    "button {index} of {:?} is a {} button (sub type {sub_type:?}), not {:?}",
                    info.name, button.kind, component.button_sub_type
                ),
            ));
        }
        if let Some(expected) = button.parameters
            && given != expected
        {
            violations.push(violation(
                field,
                format!(
                    "button {index} of {:?} expects {expected} {}, {given} given",
                    info.name,
                    plural(expected)
                ),
            ));
        }
    }
    let missing = |part: &str, n: usize| {
        violation(
            "template.components",
            format!(
                "the {part} of {:?} expects {n} {}, but no {part} component is given",
                info.name,
                plural(n)
            ),
        )
    };
    if !seen_header && !info.header.is_empty() {
        violations.push(missing("header", info.header.len()));
    }
    if !seen_body && !info.body.is_empty() {
        violations.push(missing("body", info.body.len()));
    }
    for (index, button) in info.buttons.iter().enumerate() {
        if button.required && !seen_buttons.contains(&index) {
            violations.push(missing(
                &format!("button {index}"),
                button.parameters.unwrap_or(1),
            ));
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use omniroute_channel::content::{ParameterValue, TemplateComponent, TemplateParameter};
    use serde_json::json;

    use super::*;

    fn info(value: serde_json::Value) -> TemplateInfo {
        TemplateInfo::from(&serde_json::from_value::<TemplateDto>(value).unwrap())
    }

    fn text(name: &str, value: &str) -> TemplateParameter {
        TemplateParameter {
            name: name.into(),
            value: ParameterValue::Text { text: value.into() },
        }
    }

    fn component(kind: ComponentType, parameters: Vec<TemplateParameter>) -> TemplateComponent {
        TemplateComponent {
            kind,
            button_sub_type: String::new(),
            index: 0,
            parameters,
        }
    }

    #[test]
    fn placeholders_are_distinct_and_ordered() {
        assert_eq!(placeholders("Hi {{1}}, order {{2}} ({{1}})"), ["1", "2"]);
        assert_eq!(placeholders("{{ first_name }} {{x"), ["first_name"]);
        assert!(placeholders("no params").is_empty());
    }

    #[test]
    fn the_shape_is_read_from_the_components() {
        let t = info(json!({
            "name": "order_shipped", "language": "de", "status": "APPROVED", "category": "UTILITY",
            "components": [
                {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["h"]}},
                {"type": "BODY", "text": "Hallo {{1}}, Bestellung {{2}} ist unterwegs."},
                {"type": "FOOTER", "text": "Danke"},
                {"type": "BUTTONS", "buttons": [
                    {"type": "URL", "text": "Verfolgen", "url": "https://t.example/{{1}}"},
                    {"type": "QUICK_REPLY", "text": "Stopp"},
                    {"type": "PHONE_NUMBER", "text": "Anrufen", "phone_number": "+4930123"}
                ]}
            ]
        }));
        assert_eq!(t.category, Some(Category::Transactional));
        assert_eq!(t.header_format, "image");
        assert_eq!(t.header, ["image"]);
        assert_eq!(t.body, ["1", "2"]);
        assert_eq!(t.buttons.len(), 3);
        assert_eq!(t.buttons[0].sub_type, Some("url"));
        assert!(t.buttons[0].required);
        assert!(!t.buttons[1].required);
        assert_eq!(t.buttons[2].parameters, None);
    }

    #[test]
    fn named_templates_check_names() {
        let cache = TemplateCache::default();
        cache.replace(
            "1",
            vec![info(json!({
                "name": "welcome", "language": "en_US", "status": "APPROVED", "category": "MARKETING",
                "parameter_format": "NAMED",
                "components": [{"type": "BODY", "text": "Hi {{first_name}}"}]
            }))],
        );
        let mut template = Template {
            name: "welcome".into(),
            language: "en_US".into(),
            components: vec![component(
                ComponentType::Body,
                vec![text("first_name", "Ann")],
            )],
        };
        assert!(cache.check("1", &template).is_empty());
        template.components[0].parameters[0].name = "name".into();
        let v = cache.check("1", &template);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].field, "template.components[0].parameters[0].name");
    }

    #[test]
    fn never_loaded_accounts_refuse_nothing() {
        let cache = TemplateCache::default();
        let template = Template {
            name: "anything".into(),
            language: "xx".into(),
            components: Vec::new(),
        };
        assert!(cache.check("1", &template).is_empty());
        cache.replace("1", Vec::new());
        assert_eq!(cache.check("1", &template)[0].field, "template.name");
    }
}
