//! Webhooks from the Cloud API: the subscription handshake, the signature
//! check, and the envelope → [`WebhookEvent`]s.
//!
//! Guarantees:
//! - secrets are compared in constant time (`subtle` for the verify token,
//!   `hmac`'s `verify_slice` for the signature), and the signature is checked
//!   over the exact bytes received, before anything is parsed;
//! - every level of the envelope is an array and every element is visited;
//!   one odd element (an unknown type, a malformed message) becomes
//!   [`WebhookEvent::Ignored`] with a reason instead of rejecting the whole
//!   delivery (which Meta would retry for a week);
//! - only a body that is not JSON, not a `whatsapp_business_account` object
//!   or not shaped like the envelope is an error (HTTP 400);
//! - parsing is a pure function of the body and the configuration: the same
//!   delivery parsed twice yields the same events (duplicates are the
//!   server's to drop, by wamid). The one exception: an item without a
//!   readable `timestamp` gets the time of parsing.

use std::time::SystemTime;

use omniroute_channel::{
    AdapterError, Address, Channel, Content, DeliveryStatus, ErrorClass, InboundMessage,
    PhoneRegion, StatusUpdate, WebhookEvent, WebhookRequest, mask,
};
use serde::Deserialize;
use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::config::WhatsAppConfig;
use crate::error;
use crate::transformers::InboundMessageDto;

/// The signature header (lower case, as [`WebhookRequest::header`] expects).
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

fn refused(code: &str, message: &str) -> AdapterError {
    AdapterError::new(ErrorClass::Configuration, code, message)
}

fn malformed(message: impl Into<String>) -> AdapterError {
    AdapterError::new(ErrorClass::Permanent, "malformed_webhook", message)
}

/// Answers `GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`
/// with the challenge when the mode and our token match.
pub fn verify_subscription(
    config: &WhatsAppConfig,
    request: &WebhookRequest<'_>,
) -> Result<String, AdapterError> {
    if request.query("hub.mode") != Some("subscribe") {
        return Err(refused("verify_mode", "hub.mode is not \"subscribe\""));
    }
    let given = request.query("hub.verify_token").unwrap_or("");
    // An unset token must not match an empty one.
    let matches = !config.verify_token.is_empty()
        && bool::from(given.as_bytes().ct_eq(config.verify_token.as_bytes()));
    if !matches {
        return Err(refused("verify_token", "hub.verify_token does not match"));
    }
    request
        .query("hub.challenge")
        .map(str::to_owned)
        .ok_or_else(|| refused("verify_challenge", "hub.challenge is missing"))
}

/// HMAC-SHA256 of `body` under `app_secret`, as lower-case hex: what a
/// signed delivery carries after `sha256=`.
pub fn signature_hex(app_secret: &str, body: &[u8]) -> String {
    omniroute_channel::signature::hmac_sha256_hex(app_secret, body)
}

/// Checks `X-Hub-Signature-256: sha256=<hex>` over the raw body.
pub fn verify_signature(
    app_secret: &str,
    request: &WebhookRequest<'_>,
) -> Result<(), AdapterError> {
    omniroute_channel::signature::verify_sha256(app_secret, SIGNATURE_HEADER, request)
}

// ------------------------------------------------------------ envelope

#[derive(Debug, Deserialize)]
struct Envelope {
    object: String,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Debug, Deserialize)]
struct Change {
    #[serde(default)]
    field: String,
    #[serde(default)]
    value: Value,
}

#[derive(Debug, Deserialize)]
struct ChangeValue {
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    contacts: Vec<ContactDto>,
    #[serde(default)]
    messages: Vec<Value>,
    #[serde(default)]
    statuses: Vec<Value>,
    #[serde(default)]
    errors: Vec<Value>,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    #[serde(default)]
    phone_number_id: String,
}

#[derive(Debug, Deserialize)]
struct ContactDto {
    #[serde(default)]
    profile: Option<ProfileDto>,
    #[serde(default)]
    wa_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ProfileDto {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StatusDto {
    id: String,
    status: String,
    #[serde(default)]
    timestamp: Option<Value>,
    #[serde(default)]
    biz_opaque_callback_data: Option<String>,
    #[serde(default)]
    errors: Vec<StatusErrorDto>,
}

#[derive(Debug, Deserialize)]
struct StatusErrorDto {
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error_data: Option<ErrorDataDto>,
}

#[derive(Debug, Deserialize)]
struct ErrorDataDto {
    #[serde(default)]
    details: Option<String>,
}

/// Unix seconds (a string of digits, or a number) → time.
fn parse_time(value: Option<&Value>) -> Option<SystemTime> {
    let seconds = match value? {
        Value::String(s) => s.trim().parse::<u64>().ok()?,
        Value::Number(n) => n.as_u64()?,
        _ => return None,
    };
    omniroute_channel::provider_time(seconds)
}

fn time_or_now(value: Option<&Value>, what: &str) -> SystemTime {
    parse_time(value).unwrap_or_else(|| {
        tracing::warn!(
            item = what,
            "whatsapp webhook item without a readable timestamp"
        );
        SystemTime::now()
    })
}

/// Parses a verified delivery into events.
pub fn parse(config: &WhatsAppConfig, body: &[u8]) -> Result<Vec<WebhookEvent>, AdapterError> {
    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|e| malformed(format!("not a webhook envelope: {e}")))?;
    if envelope.object != "whatsapp_business_account" {
        return Err(malformed(format!(
            "object {:?} is not \"whatsapp_business_account\"",
            envelope.object
        )));
    }
    let mut events = Vec::new();
    for change in envelope.entry.iter().flat_map(|e| &e.changes) {
        if change.field != "messages" {
            events.push(WebhookEvent::Ignored(format!(
                "change field {:?} not handled",
                change.field
            )));
            continue;
        }
        let value = match ChangeValue::deserialize(&change.value) {
            Ok(value) => value,
            Err(e) => {
                events.push(WebhookEvent::Ignored(format!(
                    "malformed change value: {e}"
                )));
                continue;
            }
        };
        parse_value(config, &value, &mut events);
    }
    Ok(events)
}

fn parse_value(config: &WhatsAppConfig, value: &ChangeValue, events: &mut Vec<WebhookEvent>) {
    let phone_number_id = value
        .metadata
        .as_ref()
        .map(|m| m.phone_number_id.as_str())
        .unwrap_or("");
    if config.number_by_id(phone_number_id).is_none() {
        let masked = mask(phone_number_id);
        tracing::warn!(phone_number_id = %masked, "whatsapp webhook for an unknown phone number id");
        events.push(WebhookEvent::Ignored(format!(
            "unknown phone_number_id {masked}"
        )));
        return;
    }
    for raw in &value.messages {
        events.push(inbound(phone_number_id, &value.contacts, raw));
    }
    for raw in &value.statuses {
        events.push(status(raw));
    }
    for raw in &value.errors {
        let code = raw
            .get("code")
            .and_then(error::code_text)
            .unwrap_or_default();
        tracing::warn!(code = %code, "whatsapp webhook reports an error");
        events.push(WebhookEvent::Ignored(format!("webhook error {code}")));
    }
}

fn inbound(account: &str, contacts: &[ContactDto], raw: &Value) -> WebhookEvent {
    let m = match InboundMessageDto::deserialize(raw) {
        Ok(m) => m,
        Err(e) => return WebhookEvent::Ignored(format!("malformed message: {e}")),
    };
    let Some(from) = m.from.as_deref().filter(|f| !f.is_empty()) else {
        return WebhookEvent::Ignored(format!(
            "message {} has no wa_id (only a business-scoped user id): cannot be addressed",
            m.id
        ));
    };
    let from_address = match Address::parse(Channel::Whatsapp, from, PhoneRegion::default()) {
        Ok(address) => address,
        Err(e) => {
            tracing::warn!(from = %mask(from), error = %e, "whatsapp sender is not a valid wa_id");
            return WebhookEvent::Ignored(format!("message {}: sender is not a valid wa_id", m.id));
        }
    };
    let content = match Content::try_from(&m) {
        Ok(content) => content,
        Err(unhandled) => {
            return WebhookEvent::Ignored(format!("message {}: {}", m.id, unhandled.0));
        }
    };
    let contact = contacts
        .iter()
        .find(|c| c.wa_id.as_deref() == Some(from))
        .or_else(|| {
            let user = m.from_user_id.as_deref()?;
            contacts.iter().find(|c| c.user_id.as_deref() == Some(user))
        });
    let reply_to = match &m.reaction {
        Some(reaction) if !reaction.message_id.is_empty() => Some(reaction.message_id.clone()),
        _ => m.context.as_ref().and_then(|c| c.id.clone()),
    };
    WebhookEvent::Inbound(InboundMessage {
        channel: Channel::Whatsapp,
        account: account.to_owned(),
        provider_message_id: m.id.clone(),
        from: from_address,
        profile_name: contact
            .and_then(|c| c.profile.as_ref())
            .and_then(|p| p.name.clone())
            .filter(|n| !n.is_empty()),
        provider_user_id: m
            .from_user_id
            .clone()
            .or_else(|| contact.and_then(|c| c.user_id.clone()))
            .filter(|u| !u.is_empty()),
        time: time_or_now(m.timestamp.as_ref(), "message"),
        content,
        reply_to,
        automatic: false,
        media_bytes: None,
    })
}

fn status(raw: &Value) -> WebhookEvent {
    let s = match StatusDto::deserialize(raw) {
        Ok(s) => s,
        Err(e) => return WebhookEvent::Ignored(format!("malformed status: {e}")),
    };
    let delivery = match s.status.as_str() {
        "sent" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        "read" | "played" => DeliveryStatus::Read,
        "failed" => DeliveryStatus::Failed,
        other => return WebhookEvent::Ignored(format!("status {other:?} of {} not handled", s.id)),
    };
    let error = (delivery == DeliveryStatus::Failed).then(|| match s.errors.first() {
        Some(e) => {
            let code = e
                .code
                .as_ref()
                .and_then(error::code_text)
                .unwrap_or_default();
            let mut text = e
                .message
                .clone()
                .or_else(|| e.title.clone())
                .unwrap_or_default();
            if let Some(details) = e.error_data.as_ref().and_then(|d| d.details.as_deref()) {
                text = format!("{text} ({details})");
            }
            error::from_code(&code, &text, None)
        }
        None => AdapterError::new(ErrorClass::Transient, "unknown", "failed without an error"),
    });
    WebhookEvent::Status(StatusUpdate {
        channel: Channel::Whatsapp,
        message_id: s.biz_opaque_callback_data.filter(|d| !d.is_empty()),
        provider_message_id: s.id,
        status: delivery,
        time: time_or_now(s.timestamp.as_ref(), "status"),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(
        headers: &'a [(String, String)],
        query: &'a [(String, String)],
        body: &'a [u8],
    ) -> WebhookRequest<'a> {
        WebhookRequest {
            uri: "/webhooks/test",
            query,
            headers,
            body,
        }
    }

    #[test]
    fn the_documented_test_vector() {
        assert_eq!(
            signature_hex("secret", b"test"),
            "0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914"
        );
        let headers = [(
            SIGNATURE_HEADER.to_owned(),
            "sha256=0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914".to_owned(),
        )];
        verify_signature("secret", &request(&headers, &[], b"test")).unwrap();
        let e = verify_signature("secret", &request(&headers, &[], b"test ")).unwrap_err();
        assert_eq!(e.code(), "invalid_signature");
        let e = verify_signature("other", &request(&headers, &[], b"test")).unwrap_err();
        assert_eq!(e.code(), "invalid_signature");
    }

    #[test]
    fn malformed_signatures_are_refused() {
        for value in ["", "sha256=", "sha1=0329", "sha256=zz", "sha256=0329a06b"] {
            let headers = [(SIGNATURE_HEADER.to_owned(), value.to_owned())];
            let e = verify_signature("secret", &request(&headers, &[], b"test")).unwrap_err();
            assert_eq!(e.code(), "malformed_signature", "{value:?}");
        }
        let e = verify_signature("secret", &request(&[], &[], b"test")).unwrap_err();
        assert_eq!(e.code(), "missing_signature");
    }

    #[test]
    fn timestamps_are_unix_seconds() {
        use std::time::Duration;
        let t = parse_time(Some(&Value::from("1749416383"))).unwrap();
        assert_eq!(
            t,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_749_416_383)
        );
        assert_eq!(
            parse_time(Some(&Value::from(1_749_416_384_u64))),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_749_416_384))
        );
        // Found by the webhook fuzz target: past i64::MAX seconds it
        // panicked; now it is unreadable, like any implausible time.
        assert_eq!(parse_time(Some(&Value::from(u64::MAX))), None);
        assert_eq!(parse_time(Some(&Value::from("17494163839876543210"))), None);
        assert_eq!(parse_time(Some(&Value::from("soon"))), None);
        assert_eq!(parse_time(None), None);
    }
}
