//! SendMessageRequest → the send use case's [`SendRequest`]: every field
//! checked at once, so a refused request names all that is wrong with it.

use std::time::SystemTime;

use omniroute_channel::{Address, Channel, Content, PhoneRegion};
use omniroute_proto::v1 as pb;

use super::super::convert::{self, parse_contact_name};
use super::super::message_convert::parse_message_name;
use super::super::message_validate;
use crate::app::send::{Recipient, SendRequest};
use crate::app::{AppError, Violations};

const MAX_REF_LEN: usize = 256;
const MAX_METADATA: usize = 32;

fn timestamp(
    v: &mut Violations,
    field: &str,
    value: Option<&prost_types::Timestamp>,
) -> Option<SystemTime> {
    let t = value?;
    v.check(
        field,
        SystemTime::try_from(*t).map_err(|_| "not a valid timestamp"),
    )
}

/// Validates a whole send request; reports every bad field at once.
pub(in crate::api) fn send_request(
    region: PhoneRegion,
    req: &pb::SendMessageRequest,
) -> Result<SendRequest, AppError> {
    use pb::send_message_request::Recipient as R;
    let mut v = Violations::default();
    let recipient = match &req.recipient {
        None => {
            v.add(
                "recipient",
                "one of contact, external_ref or address is required",
            );
            None
        }
        Some(R::Contact(name)) => v
            .check("contact", parse_contact_name(name))
            .map(Recipient::Contact),
        Some(R::ExternalRef(r)) if r.trim().is_empty() => {
            v.add("external_ref", "must not be empty");
            None
        }
        Some(R::ExternalRef(r)) => Some(Recipient::ExternalRef(r.trim().to_owned())),
        Some(R::Address(identity)) => {
            convert::address(&mut v, "address", Some(identity), region).map(Recipient::Address)
        }
    };
    let Some(m) = req.message.as_ref() else {
        v.add("message", "a message is required");
        return Err(v.finish().unwrap_err());
    };
    let category = v.check("message.category", convert::category(m.category));
    let content = message_validate::content(&mut v, "message.content", m.content.as_ref());
    let overrides = message_validate::overrides(&mut v, "message.overrides", &m.overrides);
    let channel = match m.channel {
        0 => None,
        value => v.check("message.channel", convert::channel(value)),
    };
    let excluded = message_validate::excluded_channels(
        &mut v,
        "message.excluded_channels",
        &m.excluded_channels,
    );
    if let Some(c) = channel
        && excluded.contains(&c)
    {
        v.add(
            "message.excluded_channels",
            format!("excludes {c}, the channel asked for"),
        );
    }
    let priority = v
        .check("message.priority", message_validate::priority(m.priority))
        .flatten();
    if m.correlation_ref.chars().count() > MAX_REF_LEN {
        v.add(
            "message.correlation_ref",
            format!("longer than {MAX_REF_LEN} characters"),
        );
    }
    let metadata = convert::string_map(&mut v, "message.metadata", &m.metadata, MAX_METADATA);
    let now = SystemTime::now();
    let send_time = timestamp(&mut v, "message.send_time", m.send_time.as_ref());
    let expire_time = timestamp(&mut v, "message.expire_time", m.expire_time.as_ref());
    if let Some(expire) = expire_time {
        if expire <= now {
            v.add("message.expire_time", "lies in the past");
        } else if send_time.is_some_and(|s| s >= expire) {
            v.add("message.expire_time", "must be later than send_time");
        }
    }
    let deliver_within = message_validate::deliver_within(
        &mut v,
        "message.deliver_within",
        m.deliver_within.as_ref(),
    );
    let reply_to = match m.reply_to.as_str() {
        "" => None,
        name => v.check("message.reply_to", parse_message_name(name)),
    };
    let key = req.idempotency_key.trim();
    if key.chars().count() > MAX_REF_LEN || key.chars().any(char::is_control) {
        v.add(
            "idempotency_key",
            format!("at most {MAX_REF_LEN} printable characters"),
        );
    }
    // The agent line is dialled: it must be a real phone number.
    let content = match content {
        Some(Content::CallbackRequest(mut callback)) => {
            let agent = v.check(
                "message.content.callback_request.agent_address",
                Address::parse(Channel::Voice, &callback.agent_address, region),
            );
            if let Some(agent) = agent {
                callback.agent_address = agent.value().to_owned();
            }
            Some(Content::CallbackRequest(callback))
        }
        other => other,
    };
    v.finish()?;
    let (Some(recipient), Some(category), Some(content)) = (recipient, category, content) else {
        return Err(AppError::invalid("message", "incomplete"));
    };
    Ok(SendRequest {
        recipient,
        category,
        content,
        overrides,
        channel,
        priority,
        correlation_ref: m.correlation_ref.clone(),
        metadata,
        send_time,
        expire_time,
        reply_to,
        idempotency_key: Some(key.to_owned()).filter(|k| !k.is_empty()),
        urgent: m.urgent,
        excluded,
        deliver_within,
    })
}
