//! Outbound webhook endpoints: the URLs a tenant registers to receive its
//! events (Standard Webhooks), as both stores keep them.
//!
//! A store never sees a secret in clear: it keeps [`SealedSecret`]s, which
//! the application sealed (encrypted and authenticated, bound to the
//! tenant and the endpoint) before they reach it, and opens after. Every
//! record and lookup carries its tenant.

use std::time::SystemTime;

use uuid::Uuid;

use crate::events::{Cursor, EventType};

/// A signing secret as stored: a nonce and the ciphertext with its tag,
/// opaque to the store. Its `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret(pub Vec<u8>);

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedSecret({} bytes)", self.0.len())
    }
}

/// A registered endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub id: Uuid,
    pub tenant: String,
    /// Where events go (checked by the application before it is stored).
    pub url: String,
    pub description: String,
    /// The event types it receives; empty: every type.
    pub event_types: Vec<EventType>,
    /// Only this contact's events, when set.
    pub contact: Option<Uuid>,
    /// Deliveries paused.
    pub disabled: bool,
    /// Why the router disabled it (empty when a caller did).
    pub disabled_reason: String,
    /// The current signing secret.
    pub secret: SealedSecret,
    /// The secret before the last rotation, valid until
    /// `previous_secret_expire_time`.
    pub previous_secret: Option<SealedSecret>,
    pub previous_secret_expire_time: Option<SystemTime>,
    pub create_time: SystemTime,
    pub update_time: SystemTime,
    /// Counts changes (1 when created): the etag callers see.
    pub version: i64,
}

/// An endpoint to register. Its id is chosen before it is stored, because
/// its secret is sealed for it.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    pub event_types: Vec<EventType>,
    pub contact: Option<Uuid>,
    pub disabled: bool,
    pub secret: SealedSecret,
    /// Where its deliveries start: the log's head when it is registered
    /// (it receives the events that follow).
    pub start: Cursor,
}

impl NewEndpoint {
    /// The endpoint as stored, created at `now`.
    pub fn into_endpoint(self, tenant: &str, now: SystemTime) -> Endpoint {
        Endpoint {
            id: self.id,
            tenant: tenant.to_owned(),
            url: self.url,
            description: self.description,
            event_types: self.event_types,
            contact: self.contact,
            disabled: self.disabled,
            disabled_reason: String::new(),
            secret: self.secret,
            previous_secret: None,
            previous_secret_expire_time: None,
            create_time: now,
            update_time: now,
            version: 1,
        }
    }
}

/// Changes to an endpoint: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<EventType>>,
    pub contact: Option<Option<Uuid>>,
    /// Setting it (either way) clears `disabled_reason`.
    pub disabled: Option<bool>,
    /// Change only this version (the caller's etag); `None`: any.
    pub version: Option<i64>,
}

impl EndpointPatch {
    /// The endpoint with the patch applied at `now`, or `None` when the
    /// patch asks for another version than `endpoint`'s.
    pub fn apply(self, mut endpoint: Endpoint, now: SystemTime) -> Option<Endpoint> {
        if self.version.is_some_and(|v| v != endpoint.version) {
            return None;
        }
        if let Some(url) = self.url {
            endpoint.url = url;
        }
        if let Some(description) = self.description {
            endpoint.description = description;
        }
        if let Some(types) = self.event_types {
            endpoint.event_types = types;
        }
        if let Some(contact) = self.contact {
            endpoint.contact = contact;
        }
        if let Some(disabled) = self.disabled {
            endpoint.disabled = disabled;
            endpoint.disabled_reason.clear();
        }
        endpoint.update_time = now;
        endpoint.version += 1;
        Some(endpoint)
    }
}

impl Endpoint {
    /// The endpoint after the router disabled it at `now`, for `reason`.
    pub fn disabled_by_router(mut self, reason: &str, now: SystemTime) -> Endpoint {
        self.disabled = true;
        self.disabled_reason = reason.to_owned();
        self.update_time = now;
        self.version += 1;
        self
    }
}

/// A new secret for an endpoint: the current one becomes the previous,
/// valid until `previous_expire_time` (a previous one before it ends).
#[derive(Debug, Clone)]
pub struct SecretRotation {
    pub secret: SealedSecret,
    pub previous_expire_time: SystemTime,
}

impl SecretRotation {
    /// The endpoint after the rotation at `now`.
    pub fn apply(self, mut endpoint: Endpoint, now: SystemTime) -> Endpoint {
        let previous = std::mem::replace(&mut endpoint.secret, self.secret);
        endpoint.previous_secret = Some(previous);
        endpoint.previous_secret_expire_time = Some(self.previous_expire_time);
        endpoint.update_time = now;
        endpoint.version += 1;
        endpoint
    }
}

/// Event types as stored: their codes.
pub fn event_type_codes(types: &[EventType]) -> Vec<i16> {
    types.iter().map(|t| t.code()).collect()
}

/// Event types from their stored codes (unknown codes skipped).
pub fn event_types_from_codes(codes: &[i16]) -> Vec<EventType> {
    codes
        .iter()
        .filter_map(|c| EventType::from_code(*c))
        .collect()
}
