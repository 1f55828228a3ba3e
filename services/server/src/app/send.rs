//! Sending: the use case behind SendMessage, BatchSendMessages and every
//! callback (scheduled by an agent, asked for by a customer). A send is
//! resolved to its recipient, its channel chosen by routing, its quota
//! taken, and then the message, its dispatch job and its event are
//! committed together before the caller is answered. From then on the
//! dispatcher owns it. A send to an unknown address is routed on the
//! contact it would create, and creates it only once routed and admitted
//! by the quotas: a refused send leaves no personal data behind.
//!
//! The sends of one call take one path: their recipients are read together
//! (from the cache of `pipeline/recipients.rs`, the rest in one store
//! call), and their messages are handed to the store in one call, which
//! commits them with whatever else is being sent (group commit). A message
//! routed on a contact that changed since it was read is routed again on
//! fresh data; so is every refusal decided on cached data.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use omniroute_channel::{Address, Category, Channel, Content};
use omniroute_domain::{
    ChannelOverride, ContactLookup, NewContact, NewMessage, Priority, RoutingContact,
};
use omniroute_store::StoreError;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{App, AppError};
use crate::routing;

/// How often a send is routed again because its contact changed meanwhile.
const ROUTING_ROUNDS: usize = 3;

/// Who a send is for, as validated.
#[derive(Debug, Clone)]
pub enum Recipient {
    /// A contact by id.
    Contact(Uuid),
    /// A contact by the company's reference.
    ExternalRef(String),
    /// An address; an unknown one is a new contact, created once the send
    /// is accepted.
    Address(Address),
}

/// A send as a face validated it, before its recipient is resolved.
#[derive(Debug, Clone)]
pub struct SendRequest {
    pub recipient: Recipient,
    pub category: Category,
    pub content: Content,
    pub overrides: Vec<ChannelOverride>,
    pub channel: Option<Channel>,
    pub priority: Option<Priority>,
    pub correlation_ref: String,
    pub metadata: BTreeMap<String, String>,
    pub send_time: Option<SystemTime>,
    pub expire_time: Option<SystemTime>,
    pub reply_to: Option<Uuid>,
    pub idempotency_key: Option<String>,
    pub urgent: bool,
    pub excluded: Vec<Channel>,
    pub deliver_within: Option<Duration>,
}

/// What makes two sends the same request, for idempotency.
#[derive(Serialize)]
struct Fingerprint<'a> {
    recipient: String,
    category: Category,
    content: &'a Content,
    overrides: &'a [ChannelOverride],
    channel: Option<Channel>,
    priority: Option<Priority>,
    correlation_ref: &'a str,
    metadata: &'a BTreeMap<String, String>,
    send_time: Option<i64>,
    expire_time: Option<i64>,
    reply_to: Option<Uuid>,
    urgent: bool,
    excluded: &'a [Channel],
    #[serde(skip_serializing_if = "Option::is_none")]
    deliver_within_ms: Option<u128>,
}

impl Recipient {
    /// How the store finds the contact.
    pub fn lookup(&self) -> ContactLookup {
        match self {
            Recipient::Contact(id) => ContactLookup::Id(*id),
            Recipient::ExternalRef(r) => ContactLookup::ExternalRef(r.clone()),
            Recipient::Address(a) => ContactLookup::Identity(a.channel(), a.key().to_owned()),
        }
    }
}

impl SendRequest {
    /// What routing decides on.
    pub fn route_request(&self) -> routing::RouteRequest<'_> {
        routing::RouteRequest {
            category: self.category,
            urgent: self.urgent,
            content: &self.content,
            overrides: &self.overrides,
            explicit: self.channel,
            excluded: &self.excluded,
            deliver_within: self.deliver_within,
            send_time: self.send_time,
            expire_time: self.expire_time,
        }
    }

    /// A digest of the request as routed (with the category routing used),
    /// to tell a retry from another request under the same idempotency key.
    fn request_hash(&self, category: Category) -> String {
        let recipient = match &self.recipient {
            Recipient::Contact(id) => format!("contact:{id}"),
            Recipient::ExternalRef(r) => format!("ref:{r}"),
            Recipient::Address(a) => format!("address:{}:{}", a.channel(), a.key()),
        };
        let fingerprint = Fingerprint {
            recipient,
            category,
            content: &self.content,
            overrides: &self.overrides,
            channel: self.channel,
            priority: self.priority,
            correlation_ref: &self.correlation_ref,
            metadata: &self.metadata,
            send_time: self.send_time.map(omniroute_domain::to_micros),
            expire_time: self.expire_time.map(omniroute_domain::to_micros),
            reply_to: self.reply_to,
            urgent: self.urgent,
            excluded: &self.excluded,
            deliver_within_ms: self.deliver_within.map(|d| d.as_millis()),
        };
        let bytes = serde_json::to_vec(&fingerprint).unwrap_or_default();
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl App {
    /// Creates the contacts of admitted sends to unknown addresses (routed
    /// on the contact the send would create, [`new_contact`]): only a send
    /// that will be accepted leaves a contact behind. A created contact is
    /// exactly what the send was routed on, so the route stands at its
    /// version; an address another call took meanwhile is routed again on
    /// what that contact is (`again`). Returns the sends that go on.
    async fn create_recipients(
        &self,
        tenant: &Arc<str>,
        routed: Vec<(usize, SendRequest, Uuid)>,
        messages: Vec<NewMessage>,
        again: &mut Vec<(usize, SendRequest)>,
        answers: &mut [Option<Result<omniroute_domain::Message, AppError>>],
    ) -> (Vec<(usize, SendRequest, Uuid)>, Vec<NewMessage>) {
        let mut kept = (
            Vec::with_capacity(routed.len()),
            Vec::with_capacity(routed.len()),
        );
        for ((index, send, contact), mut message) in routed.into_iter().zip(messages) {
            let address = match &send.recipient {
                Recipient::Address(address) if contact.is_nil() => address.clone(),
                _ => {
                    kept.0.push((index, send, contact));
                    kept.1.push(message);
                    continue;
                }
            };
            let created = self
                .store
                .create_contact(
                    tenant,
                    NewContact {
                        identities: vec![address.clone()],
                        ..NewContact::default()
                    },
                )
                .await;
            match created {
                Ok(created) => {
                    tracing::info!(contact = %created.id, identity = %address, "contact created by a send");
                    message.contact_id = created.id;
                    message.contact_version = created.version;
                    kept.0.push((index, send, created.id));
                    kept.1.push(message);
                }
                Err(StoreError::IdentityTaken { .. }) => again.push((index, send)),
                Err(e) => {
                    if !e.is_transient() {
                        tracing::error!(error = %omniroute_store::error_chain(&e), "creating a recipient failed");
                    }
                    answers[index] = Some(Err(e.into()));
                }
            }
        }
        kept
    }

    /// Routes a validated send to its contact and builds the message to
    /// accept.
    fn route(
        &self,
        tenant: &str,
        send: &SendRequest,
        recipient: &RoutingContact,
    ) -> Result<NewMessage, AppError> {
        let routed = self.router.route(
            tenant,
            &send.route_request(),
            recipient,
            omniroute_domain::now(),
        )?;
        let category = routed.category;
        let mut route = routed.route;
        route.inputs.trace_parent =
            crate::telemetry::context::traceparent(&tracing::Span::current());
        let request_hash = match send.idempotency_key {
            Some(_) => send.request_hash(category),
            None => String::new(),
        };
        Ok(NewMessage {
            contact_id: recipient.contact.id,
            contact_version: recipient.contact.version,
            category,
            content: send.content.clone(),
            overrides: send.overrides.clone(),
            route,
            priority: send.priority.unwrap_or(Priority::for_category(category)),
            correlation_ref: send.correlation_ref.clone(),
            metadata: send.metadata.clone(),
            send_time: send.send_time,
            expire_time: send.expire_time,
            reply_to: send.reply_to,
            idempotency_key: send.idempotency_key.clone(),
            request_hash,
        })
    }

    /// Answers the sends the quotas held back: refused, except a retry of
    /// a send accepted before (its idempotency key names a message), which
    /// is answered as a replay is, quota or not.
    async fn answer_held_back(
        &self,
        tenant: &str,
        admitted: &super::quotas::Admitted,
        held: Vec<(usize, SendRequest, Uuid)>,
        messages: Vec<NewMessage>,
        answers: &mut [Option<Result<omniroute_domain::Message, AppError>>],
    ) {
        let keyed: Vec<(usize, &NewMessage)> = held
            .iter()
            .zip(&messages)
            .filter(|(_, m)| m.idempotency_key.is_some())
            .map(|((index, _, _), m)| (*index, m))
            .collect();
        let keys: Vec<String> = keyed
            .iter()
            .filter_map(|(_, m)| m.idempotency_key.clone())
            .collect();
        let found = if keys.is_empty() {
            Vec::new()
        } else {
            self.store
                .messages_by_idempotency_keys(tenant, &keys)
                .await
                .unwrap_or_else(|e| {
                    // Refused as the others are; a later retry finds its
                    // message.
                    tracing::warn!(error = %e, "looking up the held-back sends' keys failed");
                    Vec::new()
                })
        };
        for ((index, message), found) in keyed.into_iter().zip(found) {
            if let Some(found) = found {
                answers[index] = Some(
                    omniroute_store::replay(found, &message.request_hash)
                        .map(|a| a.message().clone())
                        .map_err(AppError::from),
                );
            }
        }
        for (index, _, _) in held {
            if answers[index].is_none() {
                answers[index] = Some(Err(self.quotas.refusal(tenant, admitted)));
            }
        }
    }

    /// Sends messages: each send on its own (a face's refusal of one,
    /// `Err`, is answered as it is), the recipients read together, routed,
    /// admitted by the tenant's quotas and accepted in one store call (see
    /// the module documentation). Answers in order.
    pub async fn send(
        &self,
        tenant: &Arc<str>,
        sends: Vec<Result<SendRequest, AppError>>,
    ) -> Vec<Result<omniroute_domain::Message, AppError>> {
        let store = self.store.as_ref();
        let mut answers: Vec<Option<Result<omniroute_domain::Message, AppError>>> =
            (0..sends.len()).map(|_| None).collect();
        let mut pending: Vec<(usize, SendRequest)> = Vec::with_capacity(sends.len());
        for (index, send) in sends.into_iter().enumerate() {
            match send {
                Ok(send) => pending.push((index, send)),
                Err(e) => answers[index] = Some(Err(e)),
            }
        }
        // Round 0 may route on cached contacts; later rounds read afresh
        // what changed or was refused.
        for round in 0..ROUTING_ROUNDS {
            if pending.is_empty() {
                break;
            }
            let fresh = round > 0;
            let last = round + 1 == ROUTING_ROUNDS;
            let lookups: Vec<ContactLookup> =
                pending.iter().map(|(_, s)| s.recipient.lookup()).collect();
            let found = match self.recipients.find(store, tenant, &lookups, fresh).await {
                Ok(found) => found,
                Err(e) => {
                    if !e.is_transient() {
                        tracing::error!(error = %omniroute_store::error_chain(&e), "reading the recipients failed");
                    }
                    for (index, _) in pending.drain(..) {
                        answers[index] = Some(Err(failed("reading the recipients failed", &e)));
                    }
                    break;
                }
            };
            let mut again = Vec::new();
            // The sends routed, with their contacts, and their messages.
            let mut routed: Vec<(usize, SendRequest, Uuid)> = Vec::with_capacity(pending.len());
            let mut messages: Vec<NewMessage> = Vec::with_capacity(pending.len());
            for ((index, send), found) in pending.into_iter().zip(found) {
                let recipient = match (found, &send.recipient) {
                    (Some(recipient), _) => Ok(recipient),
                    // Routed on the contact it would create, created only
                    // once admitted: a refused send leaves nothing behind.
                    (None, Recipient::Address(address)) => Ok(Arc::new(new_contact(address))),
                    (None, Recipient::Contact(id)) => Err(StoreError::NotFound {
                        resource: "contacts",
                        id: id.to_string(),
                    }
                    .into()),
                    (None, Recipient::ExternalRef(_)) => Err(AppError::NotFound(
                        "no contact has this external reference".into(),
                    )),
                };
                match recipient.and_then(|r| self.route(tenant, &send, &r)) {
                    Ok(message) => {
                        routed.push((index, send, message.contact_id));
                        messages.push(message);
                    }
                    // Not refused on what may be stale: decided again afresh.
                    Err(_) if !fresh => again.push((index, send)),
                    Err(e) => answers[index] = Some(Err(e)),
                }
            }
            // The tenant's quotas: the first sends that fit go, the rest are
            // refused with when they would fit.
            let mut admitted = match self.quotas.admit(tenant, messages.len()).await {
                Ok(admitted) => admitted,
                Err(e) => {
                    for (index, _, _) in routed {
                        answers[index] = Some(Err(failed("checking the send quota failed", &e)));
                    }
                    pending = again;
                    continue;
                }
            };
            let held: Vec<(usize, SendRequest, Uuid)> = routed.drain(admitted.count..).collect();
            let held_messages = messages.split_off(admitted.count);
            self.answer_held_back(tenant, &admitted, held, held_messages, &mut answers)
                .await;
            let going = routed.len();
            let (routed, messages) = self
                .create_recipients(tenant, routed, messages, &mut again, &mut answers)
                .await;
            self.quotas
                .give_back(tenant, &admitted, going - routed.len())
                .await;
            admitted.count = routed.len();
            let accepted = match store.accept_messages(tenant, messages).await {
                Ok(accepted) => accepted,
                Err(e) => {
                    if !e.is_transient() {
                        tracing::error!(error = %omniroute_store::error_chain(&e), "accepting messages failed");
                    }
                    self.quotas
                        .give_back(tenant, &admitted, admitted.count)
                        .await;
                    for (index, _, _) in routed {
                        answers[index] = Some(Err(failed("accepting messages failed", &e)));
                    }
                    pending = again;
                    continue;
                }
            };
            // Only new messages count against the quotas.
            let unused = accepted
                .iter()
                .filter(|a| !matches!(a, Ok(omniroute_domain::Accepted::New(_))))
                .count();
            self.quotas.give_back(tenant, &admitted, unused).await;
            for ((index, send, contact), result) in routed.into_iter().zip(accepted) {
                match result {
                    Ok(accepted) => {
                        match &accepted {
                            omniroute_domain::Accepted::Replayed(m) => {
                                tracing::debug!(message_id = %m.id, "idempotent replay");
                            }
                            omniroute_domain::Accepted::New(m) => {
                                crate::metrics::METRICS.accepted(
                                    tenant,
                                    m.channel.map_or("none", |c| c.as_str()),
                                    m.category.as_str(),
                                );
                            }
                        }
                        let message = match accepted {
                            omniroute_domain::Accepted::New(m)
                            | omniroute_domain::Accepted::Replayed(m) => m,
                        };
                        answers[index] = Some(Ok(message));
                    }
                    Err(StoreError::ContactChanged(id)) if !last => {
                        self.recipients.forget(tenant, &send.recipient.lookup(), id);
                        again.push((index, send));
                    }
                    Err(e) => {
                        tracing::debug!(%contact, error = %e, "send refused by the store");
                        answers[index] = Some(Err(e.into()));
                    }
                }
            }
            pending = again;
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(AppError::Precondition("not routed".into()))))
            .collect()
    }
}

/// The contact a send to an unknown address would create, for previews.
fn new_contact(address: &Address) -> RoutingContact {
    let now = omniroute_domain::now();
    RoutingContact {
        contact: omniroute_domain::Contact {
            id: Uuid::nil(),
            state: omniroute_domain::ContactState::Active,
            profile: Default::default(),
            identities: vec![omniroute_domain::Identity {
                address: address.clone(),
                create_time: now,
                provider_user_id: None,
            }],
            merged_from: Vec::new(),
            create_time: now,
            update_time: now,
            erasure: None,
            windows: Vec::new(),
            version: 0,
        },
        preferences: omniroute_domain::Preferences {
            contact_id: Uuid::nil(),
            channels: Default::default(),
            time_zone: String::new(),
            locale: String::new(),
            consents: Vec::new(),
            update_time: None,
        },
    }
}

/// A store failure shared by several sends, each answered with its own
/// error of the same kind (UNAVAILABLE stays UNAVAILABLE); the cause was
/// logged once.
fn failed(what: &str, e: &StoreError) -> AppError {
    AppError::Store(e.like(what))
}

/// What routing would decide now for a send (PreviewRoute): the decision,
/// and the contact it was made for (`None`: the send would create it).
#[derive(Debug, Clone)]
pub struct Preview {
    /// The decision and its category.
    pub routed: routing::Routed,
    /// The contact, when it exists.
    pub contact: Option<Uuid>,
}

impl App {
    /// What routing decides now for `send`, through the same path as a
    /// send, writing nothing (not even a new contact).
    pub async fn preview(
        &self,
        tenant: &Arc<str>,
        send: &SendRequest,
    ) -> Result<Preview, AppError> {
        let found = self
            .recipients
            .find(
                self.store.as_ref(),
                tenant,
                &[send.recipient.lookup()],
                true,
            )
            .await?
            .pop()
            .flatten();
        let (recipient, contact) = match (found, &send.recipient) {
            (Some(r), _) => {
                let id = r.contact.id;
                (r, Some(id))
            }
            // A send would create the contact: decide on a new one.
            (None, Recipient::Address(address)) => (Arc::new(new_contact(address)), None),
            (None, Recipient::Contact(id)) => {
                return Err(AppError::from(StoreError::NotFound {
                    resource: "contacts",
                    id: id.to_string(),
                }));
            }
            (None, Recipient::ExternalRef(_)) => {
                return Err(AppError::NotFound(
                    "no contact has this external reference".into(),
                ));
            }
        };
        let routed = self.router.route(
            tenant,
            &send.route_request(),
            &recipient,
            omniroute_domain::now(),
        )?;
        Ok(Preview { routed, contact })
    }
}
