//! The store's refusals: what a lookup that found nothing, or a domain rule
//! that says no, becomes as a [`StoreError`], the same for both backends.

use std::time::SystemTime;

use omniroute_domain::{Accepted, ApiKey, Callback, Message, is_callback};
use uuid::Uuid;

use crate::StoreError;

/// The error for a tenant that does not exist.
pub(crate) fn tenant_not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        resource: "tenants",
        id: id.to_owned(),
    }
}

/// The error for an API key that is not there (or is another tenant's).
pub(crate) fn api_key_not_found(id: Uuid) -> StoreError {
    StoreError::NotFound {
        resource: "api_keys",
        id: id.to_string(),
    }
}

/// The error for an endpoint that is not there (or is another tenant's).
pub(crate) fn endpoint_not_found(id: Uuid) -> StoreError {
    StoreError::NotFound {
        resource: "endpoints",
        id: id.to_string(),
    }
}

/// The endpoint after a patch, or [`StoreError::Stale`] when the patch
/// names another version.
pub(crate) fn patched(
    endpoint: omniroute_domain::Endpoint,
    patch: omniroute_domain::EndpointPatch,
    now: SystemTime,
) -> crate::Result<omniroute_domain::Endpoint> {
    let id = endpoint.id;
    patch.apply(endpoint, now).ok_or(StoreError::Stale {
        resource: "endpoints",
        id: id.to_string(),
    })
}

/// The answer of [`crate::TenantStore::revoke_api_key`] from what the update
/// found: the key, unless there is none (in the tenant, when given).
pub(crate) fn revoked(found: Option<ApiKey>, id: Uuid) -> crate::Result<ApiKey> {
    found.ok_or_else(|| api_key_not_found(id))
}

/// [`omniroute_domain::cancel_check`], refused as
/// [`StoreError::NotCancelable`].
pub(crate) fn cancel_check(callback: &Callback) -> crate::Result<Option<String>> {
    omniroute_domain::cancel_check(callback).map_err(|refused| StoreError::NotCancelable {
        id: refused.id,
        status: refused.status,
    })
}

/// A job's lease that a cancellation must wait for: a worker holds it until
/// `until` (placing the call, or deciding what follows one).
pub(crate) fn check_lease(
    until: Option<SystemTime>,
    now: SystemTime,
    id: Uuid,
) -> crate::Result<()> {
    match until {
        Some(until) if until > now => Err(StoreError::Sending(id)),
        _ => Ok(()),
    }
}

/// The error for a callback that is not there (no such message in the
/// tenant, or not a callback).
pub(crate) fn callback_not_found(id: Uuid) -> StoreError {
    StoreError::NotFound {
        resource: "callbacks",
        id: id.to_string(),
    }
}

/// The answer of [`crate::CallbackStore::get_callback`] from what a lookup of
/// message `id` found: the message only when it is a callback.
pub(crate) fn found_callback(found: Option<Callback>, id: Uuid) -> crate::Result<Callback> {
    found
        .filter(|c| is_callback(&c.message))
        .ok_or_else(|| callback_not_found(id))
}

/// [`omniroute_domain::replay`], a conflict refused as
/// [`StoreError::IdempotencyConflict`].
pub fn replay(found: (Message, String), request_hash: &str) -> crate::Result<Accepted> {
    omniroute_domain::replay(found, request_hash).map_err(|conflict| {
        StoreError::IdempotencyConflict {
            existing: conflict.existing,
        }
    })
}

#[cfg(test)]
mod tests {
    use omniroute_channel::content::{CallbackRequest, Text};
    use omniroute_channel::{Category, Content};
    use omniroute_domain::{Direction, MessageStatus, Priority, StatusChange};

    use super::*;

    fn message(content: Content) -> Message {
        let time = SystemTime::UNIX_EPOCH;
        Message {
            id: Uuid::now_v7(),
            contact_id: Uuid::now_v7(),
            direction: Direction::Outbound,
            category: Category::Transactional,
            content,
            overrides: Vec::new(),
            channel: Some(omniroute_channel::Channel::Voice),
            priority: Priority::Normal,
            correlation_ref: String::new(),
            metadata: Default::default(),
            send_time: None,
            expire_time: None,
            reply_to: None,
            status: MessageStatus::Accepted,
            history: vec![StatusChange {
                status: MessageStatus::Accepted,
                time,
                channel: None,
                reason: String::new(),
            }],
            attempts: Vec::new(),
            route: None,
            provider_message_id: None,
            automatic: false,
            create_time: time,
            update_time: time,
        }
    }

    fn view(message: Message) -> Callback {
        Callback {
            message,
            progress: None,
            next_call: None,
        }
    }

    #[test]
    fn a_message_that_is_no_callback_is_not_found() {
        let text = message(Content::Text(Text::default()));
        let id = text.id;
        assert!(matches!(
            found_callback(Some(view(text)), id),
            Err(StoreError::NotFound {
                resource: "callbacks",
                ..
            })
        ));
        assert!(found_callback(None, id).is_err());
        let call = message(Content::CallbackRequest(CallbackRequest::default()));
        let id = call.id;
        assert!(found_callback(Some(view(call)), id).is_ok());
    }

    #[test]
    fn a_missing_key_is_not_found() {
        let id = Uuid::now_v7();
        assert!(matches!(
            revoked(None, id),
            Err(StoreError::NotFound { resource: "api_keys", id: shown }) if shown == id.to_string()
        ));
    }
}
