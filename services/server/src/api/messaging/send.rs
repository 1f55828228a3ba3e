//! The send path of SendMessage and BatchSendMessages: a send is validated
//! whole, its recipient resolved, its channel chosen by routing, its quota
//! taken, and then the message, its dispatch job and its event are
//! committed together before the call answers. From then on the dispatcher
//! owns it. A send to an unknown address is routed on the contact it would
//! create, and creates it only once routed and admitted by the quotas: a
//! refused send leaves no personal data behind.
//!
//! Both calls take the same path: the recipients of a call are read
//! together (from the cache of `pipeline/recipients.rs`, the rest in one
//! store call), and its messages are handed to the store in one call, which
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
use omniroute_proto::v1 as pb;
use omniroute_store::StoreError;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::super::convert::{self, parse_contact_name};
use super::super::message_convert::parse_message_name;
use super::super::message_validate;
use super::MessagingApi;
use crate::app::{AppError, Violations};
use crate::routing;

/// How often a send is routed again because its contact changed meanwhile.
const ROUTING_ROUNDS: usize = 3;
const MAX_REF_LEN: usize = 256;
const MAX_METADATA: usize = 32;

/// Who a send is for, as validated.
#[derive(Debug, Clone)]
pub(super) enum Recipient {
    Contact(Uuid),
    ExternalRef(String),
    Address(Address),
}

/// A validated send, before its recipient is resolved.
#[derive(Debug, Clone)]
pub(super) struct Send {
    pub(super) recipient: Recipient,
    category: Category,
    content: Content,
    overrides: Vec<ChannelOverride>,
    channel: Option<Channel>,
    priority: Option<Priority>,
    correlation_ref: String,
    metadata: BTreeMap<String, String>,
    send_time: Option<SystemTime>,
    expire_time: Option<SystemTime>,
    reply_to: Option<Uuid>,
    idempotency_key: Option<String>,
    urgent: bool,
    excluded: Vec<Channel>,
    deliver_within: Option<Duration>,
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
    pub(super) fn lookup(&self) -> ContactLookup {
        match self {
            Recipient::Contact(id) => ContactLookup::Id(*id),
            Recipient::ExternalRef(r) => ContactLookup::ExternalRef(r.clone()),
            Recipient::Address(a) => ContactLookup::Identity(a.channel(), a.key().to_owned()),
        }
    }
}

impl Send {
    /// What routing decides on.
    pub(super) fn route_request(&self) -> routing::RouteRequest<'_> {
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

impl MessagingApi {
    /// Validates a whole send request; reports every bad field at once.
    pub(super) fn validate(&self, req: &pb::SendMessageRequest) -> Result<Send, AppError> {
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
                convert::address(&mut v, "address", Some(identity), self.ctx.region)
                    .map(Recipient::Address)
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
                    Address::parse(Channel::Voice, &callback.agent_address, self.ctx.region),
                );
                if let Some(agent) = agent {
                    callback.agent_address = agent.value().to_owned();
                }
                Some(Content::CallbackRequest(callback))
            }
            other => other,
        };
        v.finish()?;
        let (Some(recipient), Some(category), Some(content)) = (recipient, category, content)
        else {
            return Err(AppError::invalid("message", "incomplete"));
        };
        Ok(Send {
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

    /// Creates the contacts of admitted sends to unknown addresses (routed
    /// on the contact the send would create, [`new_contact`]): only a send
    /// that will be accepted leaves a contact behind. A created contact is
    /// exactly what the send was routed on, so the route stands at its
    /// version; an address another call took meanwhile is routed again on
    /// what that contact is (`again`). Returns the sends that go on.
    async fn create_recipients(
        &self,
        tenant: &Arc<str>,
        routed: Vec<(usize, Send, Uuid)>,
        messages: Vec<NewMessage>,
        again: &mut Vec<(usize, Send)>,
        answers: &mut [Option<Result<omniroute_domain::Message, AppError>>],
    ) -> (Vec<(usize, Send, Uuid)>, Vec<NewMessage>) {
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
                .ctx
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
        send: &Send,
        recipient: &RoutingContact,
    ) -> Result<NewMessage, AppError> {
        let routed = self.ctx.router.route(
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
        admitted: &super::super::quotas::Admitted,
        held: Vec<(usize, Send, Uuid)>,
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
            self.ctx
                .store
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
                answers[index] = Some(Err(self.ctx.quotas.refusal(tenant, admitted)));
            }
        }
    }

    /// Accepts sends, each on its own: validation, recipients read
    /// together, routing, one store call for all (see the module
    /// documentation). Answers in request order.
    pub(in crate::api) async fn send_all(
        &self,
        tenant: &Arc<str>,
        requests: &[pb::SendMessageRequest],
    ) -> Vec<Result<omniroute_domain::Message, AppError>> {
        let store = self.ctx.store.as_ref();
        let mut answers: Vec<Option<Result<omniroute_domain::Message, AppError>>> =
            (0..requests.len()).map(|_| None).collect();
        let mut pending: Vec<(usize, Send)> = Vec::with_capacity(requests.len());
        for (index, request) in requests.iter().enumerate() {
            match self.validate(request) {
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
            let found = match self
                .ctx
                .recipients
                .find(store, tenant, &lookups, fresh)
                .await
            {
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
            let mut routed: Vec<(usize, Send, Uuid)> = Vec::with_capacity(pending.len());
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
            let mut admitted = match self.ctx.quotas.admit(tenant, messages.len()).await {
                Ok(admitted) => admitted,
                Err(e) => {
                    for (index, _, _) in routed {
                        answers[index] = Some(Err(failed("checking the send quota failed", &e)));
                    }
                    pending = again;
                    continue;
                }
            };
            let held: Vec<(usize, Send, Uuid)> = routed.drain(admitted.count..).collect();
            let held_messages = messages.split_off(admitted.count);
            self.answer_held_back(tenant, &admitted, held, held_messages, &mut answers)
                .await;
            let going = routed.len();
            let (routed, messages) = self
                .create_recipients(tenant, routed, messages, &mut again, &mut answers)
                .await;
            self.ctx
                .quotas
                .give_back(tenant, &admitted, going - routed.len())
                .await;
            admitted.count = routed.len();
            let accepted = match store.accept_messages(tenant, messages).await {
                Ok(accepted) => accepted,
                Err(e) => {
                    if !e.is_transient() {
                        tracing::error!(error = %omniroute_store::error_chain(&e), "accepting messages failed");
                    }
                    self.ctx
                        .quotas
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
            self.ctx.quotas.give_back(tenant, &admitted, unused).await;
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
                        self.ctx
                            .recipients
                            .forget(tenant, &send.recipient.lookup(), id);
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
pub(super) fn new_contact(address: &Address) -> RoutingContact {
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
