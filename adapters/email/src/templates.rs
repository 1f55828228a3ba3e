//! Email templates: a message whose content is a template (the same
//! channel-neutral template a WhatsApp send names: name, language,
//! parameters) renders, on email, the tenant's email template of that name
//! and language: a subject, a text and, optionally, an HTML body, in files
//! under the template folder:
//!
//! ```text
//! <folder>/<tenant>/<name>.<language>.subject
//! <folder>/<tenant>/<name>.<language>.txt
//! <folder>/<tenant>/<name>.<language>.html      (optional)
//! ```
//!
//! They are Jinja templates (minijinja): named parameters by their name,
//! every body parameter in order as `params` (`{{ params[0] }}`). The HTML
//! body auto-escapes what it inserts; an undefined variable is an error, so a
//! missing template or parameter is refused when the message is sent
//! (INVALID_ARGUMENT), not found out later.

use std::collections::HashMap;
use std::path::Path;

use minijinja::{Environment, UndefinedBehavior, Value};
use omniroute_channel::ContentViolation;
use omniroute_channel::content::{ComponentType, ParameterValue, Template, Text};

/// One template's sources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Sources {
    subject: String,
    text: String,
    html: Option<String>,
}

/// Every tenant's email templates, read at start.
#[derive(Debug, Default)]
pub struct Templates {
    /// (tenant, name, language) → sources.
    all: HashMap<(String, String, String), Sources>,
}

impl Templates {
    /// Reads the template folder (`None`: no templates). A template needs
    /// its subject and text; an unreadable folder is an error.
    pub fn load(folder: Option<&Path>) -> Result<Templates, String> {
        let mut all: HashMap<(String, String, String), Sources> = HashMap::new();
        let Some(folder) = folder else {
            return Ok(Templates::default());
        };
        let tenants = std::fs::read_dir(folder)
            .map_err(|e| format!("cannot read the template folder {}: {e}", folder.display()))?;
        for tenant in tenants.filter_map(Result::ok) {
            if !tenant.path().is_dir() {
                continue;
            }
            let tenant_name = tenant.file_name().to_string_lossy().into_owned();
            let files = std::fs::read_dir(tenant.path()).map_err(|e| e.to_string())?;
            for file in files.filter_map(Result::ok) {
                let file_name = file.file_name().to_string_lossy().into_owned();
                let mut parts = file_name.rsplitn(3, '.');
                let (Some(kind), Some(language), Some(name)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                let source = std::fs::read_to_string(file.path())
                    .map_err(|e| format!("cannot read {}: {e}", file.path().display()))?;
                let entry = all
                    .entry((tenant_name.clone(), name.to_owned(), language.to_owned()))
                    .or_default();
                match kind {
                    "subject" => entry.subject = source.trim().to_owned(),
                    "txt" => entry.text = source,
                    "html" => entry.html = Some(source),
                    _ => {}
                }
            }
        }
        for ((tenant, name, language), sources) in &all {
            if sources.subject.is_empty() || sources.text.is_empty() {
                return Err(format!(
                    "template {name} ({language}) of tenant {tenant} needs a .subject and a .txt file"
                ));
            }
        }
        Ok(Templates { all })
    }

    /// How many templates there are.
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// Renders `template` for `tenant` into a text with its HTML.
    pub fn render(&self, tenant: &str, template: &Template) -> Result<Text, ContentViolation> {
        let key = (
            tenant.to_owned(),
            template.name.clone(),
            template.language.clone(),
        );
        let Some(sources) = self.all.get(&key) else {
            let known = self
                .all
                .keys()
                .any(|(t, n, _)| t == tenant && *n == template.name);
            return Err(if known {
                ContentViolation {
                    field: "template.language".into(),
                    description: format!(
                        "the email template {} has no {} version",
                        template.name, template.language
                    ),
                }
            } else {
                ContentViolation {
                    field: "template.name".into(),
                    description: format!("no email template named {}", template.name),
                }
            });
        };
        let variables = variables(template);
        let render = |name: &str, source: &str| -> Result<String, ContentViolation> {
            let mut env = Environment::new();
            env.set_undefined_behavior(UndefinedBehavior::Strict);
            env.add_template(name, source)
                .and_then(|()| env.get_template(name)?.render(&variables))
                .map_err(|e| ContentViolation {
                    field: "template.components".into(),
                    description: format!("the email template cannot be rendered: {e}"),
                })
        };
        // The file name decides the escaping: .html escapes, the rest not.
        Ok(Text {
            subject: render("subject.txt", &sources.subject)?.trim().to_owned(),
            body: render("body.txt", &sources.text)?,
            html_body: match &sources.html {
                Some(html) => render("body.html", html)?,
                None => String::new(),
            },
            preview_url: false,
            overflow: None,
        })
    }
}

/// The template's parameters as variables: named ones by name, the body's
/// in order as `params`.
fn variables(template: &Template) -> Value {
    let mut named: std::collections::BTreeMap<String, Value> = std::collections::BTreeMap::new();
    let mut params: Vec<Value> = Vec::new();
    for component in &template.components {
        for parameter in &component.parameters {
            let value = Value::from(text_of(&parameter.value));
            if !parameter.name.is_empty() {
                named.insert(parameter.name.clone(), value.clone());
            }
            if component.kind == ComponentType::Body {
                params.push(value);
            }
        }
    }
    named.insert("params".into(), Value::from(params));
    Value::from(named)
}

fn text_of(value: &ParameterValue) -> String {
    match value {
        ParameterValue::Text { text } => text.clone(),
        ParameterValue::Currency { fallback_value, .. }
        | ParameterValue::DateTime { fallback_value } => fallback_value.clone(),
        ParameterValue::Payload { payload } => payload.clone(),
        ParameterValue::Media(media) => {
            if media.url.is_empty() {
                media.media_id.clone()
            } else {
                media.url.clone()
            }
        }
    }
}
