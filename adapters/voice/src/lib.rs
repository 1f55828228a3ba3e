//! The voice channel: a message routed to voice becomes a call that speaks
//! its text and can gather one confirmation digit, placed through a
//! telephony provider ([`provider::VoiceProvider`]; Twilio Programmable
//! Voice in `twilio/`). The call's progress comes back as signed callbacks
//! to `/webhooks/voice`: answered and completed is delivered; busy and no
//! answer are transient failures (routing calls again while attempts
//! remain); failed and canceled are permanent; each end counts only while
//! the message has no outcome (a call ends once). A pressed digit, posted
//! to the call's gather (`?leg=gather&message=…`), is an inbound reply to
//! that message, when the call is that message's. TwiML too long to go
//! with the call (Twilio takes 4,000 characters) is asked of the router
//! when the call is answered (`?leg=script&message=…`).
//!
//! Files, by role (as in `omniroute-whatsapp`): `config.rs` the account,
//! the public callback URL, the numbers per tenant; `provider.rs` the
//! neutral provider contract; `twilio/` its Twilio implementation (REST
//! client and errors, TwiML, signatures, callbacks); `fake.rs` (feature
//! `fake`) a local Twilio REST API that records calls and posts signed
//! callbacks back.
//!
//! A call speaks in the customer's locale (as routing saw it, mapped to a
//! language the provider speaks: `zh-Hant-TW` is Taiwanese Mandarin), else
//! in the configured language.
//!
//! A callback (content `CallbackRequest`) is a call whose answer is asked
//! of the router (`?leg=answer`, the callback, greeting and agent line in
//! the URL the provider signs): a person who answers hears the greeting and
//! is bridged to the agent line (`<Dial>`) unless the callback was canceled
//! meanwhile (its call is then ended through [`Adapter::end`]); the dial's outcome (`?leg=dial`) decides:
//! connected is delivered (with how long they talked), an agent line busy or
//! unanswered is a transient failure (routing calls again later). With
//! machine detection, a machine is recorded and, per setting, counts as not
//! reached. The call's own end (`?leg=callback`) is a failure only if the
//! bridge did not deliver it first.
//!
//! A customer's call to one of our numbers (Twilio asks the number's voice
//! URL, `/webhooks/voice`) is their inbound message (`InboundCall`); it is
//! put through to the number's `forward_to` line (`?leg=incoming-dial` the
//! outcome), and one nobody takes is a `MissedCall` (the router may call
//! back).

pub mod config;
#[cfg(feature = "fake")]
pub mod fake;
pub mod provider;
pub mod twilio;

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use omniroute_channel::capabilities::{Capabilities, ContentKind};
use omniroute_channel::content::{Choice, InboundCall};
use omniroute_channel::{
    Adapter, AdapterError, Address, AskedMessage, CallProgress, Channel, Content, ContentViolation,
    DeliveryStatus, ErrorClass, InboundMessage, MediaDownload, MissedCall, OutboundMessage,
    PhoneRegion, SendReceipt, StatusUpdate, WebhookEvent, WebhookRequest,
};

pub use config::{MachineDetection, VoiceConfig, VoiceNumber};
use provider::{
    Answer, AnsweredBy, Bridge, CallState, Callback, DialOutcome, Next, PlaceCall, Script,
    VoiceProvider,
};

/// The longest greeting of a callback (it rides in the call-control URL).
pub const MAX_GREETING_CHARS: usize = 500;

/// The longest text a call speaks (a spoken minute is about 150 words).
pub const MAX_SPOKEN_CHARS: usize = 1000;

/// What voice carries: text, spoken (choices read out as numbered text),
/// and callback requests bridged to an agent; it rings, so never in quiet
/// hours. The voice sandbox declares the same.
pub fn capabilities() -> Capabilities {
    Capabilities {
        kinds: &[ContentKind::Text, ContentKind::CallbackRequest],
        max_text_chars: Some(MAX_SPOKEN_CHARS),
        interactive: false,
        service_window: None,
        rings: true,
        choice_limits: None,
    }
}

/// A call's rules for `content`, whichever provider places it: something
/// to say, and a greeting that fits in the call-control URL. The voice
/// sandbox checks the same.
pub fn check_limits(content: &Content) -> Vec<ContentViolation> {
    match content {
        Content::Text(text) if text.body.trim().is_empty() => vec![ContentViolation {
            field: "text.body".into(),
            description: "a call needs something to say".into(),
        }],
        Content::CallbackRequest(c) if c.greeting.chars().count() > MAX_GREETING_CHARS => {
            vec![ContentViolation {
                field: "callback_request.greeting".into(),
                description: format!("at most {MAX_GREETING_CHARS} characters"),
            }]
        }
        _ => Vec::new(),
    }
}

/// The voice adapter.
#[derive(Debug)]
pub struct VoiceAdapter {
    config: VoiceConfig,
    provider: Arc<dyn VoiceProvider>,
}

impl VoiceAdapter {
    /// An adapter calling through Twilio.
    pub fn new(config: VoiceConfig) -> Result<VoiceAdapter, AdapterError> {
        let provider = Arc::new(twilio::Twilio::new(&config)?);
        Ok(VoiceAdapter { config, provider })
    }

    /// Ends call `call_id` through the provider: cancels it while it
    /// rings, or hangs it up once answered.
    pub async fn end_call(&self, call_id: &str, how: provider::End) -> Result<(), AdapterError> {
        self.provider.end_call(call_id, how).await
    }
}

/// Which request of a call a webhook is, by the `leg` our URLs carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leg {
    /// A notification call's progress or gathered digits.
    Notification,
    /// A callback's progress.
    Callback,
    /// A callback answered: what does it do?
    Answer,
    /// A callback's dial to the agent ended.
    Dial,
    /// An inbound call's dial to the agent line ended.
    IncomingDial,
    /// A notification call answered whose script did not go with it.
    Script,
    /// A digit pressed in a notification call (its `<Gather>` action).
    Gather,
}

impl Leg {
    fn of(request: &WebhookRequest<'_>) -> Leg {
        match request.query("leg") {
            Some("callback") => Leg::Callback,
            Some("answer") => Leg::Answer,
            Some("dial") => Leg::Dial,
            Some("incoming-dial") => Leg::IncomingDial,
            Some("script") => Leg::Script,
            Some("gather") => Leg::Gather,
            _ => Leg::Notification,
        }
    }
}

/// Whether the callback a call was placed for still wants it bridged: not
/// when the router has it canceled (or has it not at all). A call placed
/// before its answer URL named the callback is bridged as before.
fn still_wanted(request: &WebhookRequest<'_>, asked: Option<&AskedMessage>) -> bool {
    match request.query("message") {
        Some(_) => asked.is_some_and(|m| m.pending),
        None => true,
    }
}

/// A report on the call `call_id` (the message's provider id).
fn update(
    call_id: &str,
    status: DeliveryStatus,
    error: Option<AdapterError>,
    time: SystemTime,
) -> StatusUpdate {
    StatusUpdate {
        channel: Channel::Voice,
        message_id: None,
        provider_message_id: call_id.to_owned(),
        status,
        time,
        error,
    }
}

/// A failure of the call `call_id`, now.
fn failure(call_id: &str, class: ErrorClass, code: &str, why: &str) -> StatusUpdate {
    update(
        call_id,
        DeliveryStatus::Failed,
        Some(AdapterError::new(class, code, why)),
        SystemTime::now(),
    )
}

fn progress(call_id: &str, answered_by: Option<String>, seconds: Option<u32>) -> WebhookEvent {
    WebhookEvent::CallProgress(CallProgress {
        channel: Channel::Voice,
        call_id: call_id.to_owned(),
        answered_by,
        bridged_seconds: seconds,
    })
}

/// What a call's state says of the message it carried; `None` for the
/// states on the way (queued, ringing, answered). A call ends once: its
/// end without an answer is [`DeliveryStatus::Ended`], a failure only while
/// the message was not delivered (a `busy` after `completed` changes
/// nothing).
fn status_of(
    call_id: &str,
    state: CallState,
    raw: &str,
    error_code: &str,
    time: SystemTime,
) -> Option<StatusUpdate> {
    let failed = |class: ErrorClass, why: &str| {
        let code = if error_code.is_empty() {
            format!("call-{raw}")
        } else {
            format!("call-{raw}-{error_code}")
        };
        (
            DeliveryStatus::Ended,
            Some(AdapterError::new(class, code, why)),
        )
    };
    let (status, error) = match state {
        CallState::Queued | CallState::Ringing | CallState::InProgress => return None,
        CallState::Completed => (DeliveryStatus::Delivered, None),
        CallState::Busy => failed(ErrorClass::Transient, "the line was busy"),
        CallState::NoAnswer => failed(ErrorClass::Transient, "nobody answered"),
        CallState::Failed => failed(ErrorClass::Permanent, "the call could not be placed"),
        CallState::Canceled => failed(ErrorClass::Permanent, "the call was canceled"),
    };
    Some(update(call_id, status, error, time))
}

#[async_trait]
impl Adapter for VoiceAdapter {
    fn channel(&self) -> Channel {
        Channel::Voice
    }

    fn capabilities(&self) -> Capabilities {
        capabilities()
    }

    fn sending_line(&self, tenant: &str) -> &str {
        self.config
            .number_for(tenant)
            .map_or("", |n| n.number.as_str())
    }

    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt, AdapterError> {
        let from = self.config.number_for(&message.tenant).ok_or_else(|| {
            AdapterError::new(
                ErrorClass::Configuration,
                "no_number",
                format!(
                    "no voice number is configured for tenant {}",
                    message.tenant
                ),
            )
        })?;
        let webhook = self.config.webhook_url();
        let language = |own: &str| {
            self.provider
                .language(own)
                .or_else(|| {
                    message
                        .locale
                        .as_deref()
                        .and_then(|l| self.provider.language(l))
                })
                .unwrap_or_else(|| self.config.default_language.clone())
        };
        let (answer, status_url) = match &message.content {
            Content::Text(text) => {
                let language = language("");
                // Where the router answers with the script when the
                // provider cannot take it with the call: the message is
                // read again then (the URL is signed with the rest).
                let query = twilio::form_body(&[
                    ("leg", "script".to_owned()),
                    ("message", message.message_id.clone()),
                    ("line", from.number.clone()),
                    ("lang", language.clone()),
                    ("gather", u8::from(self.config.gather_digit).to_string()),
                ]);
                (
                    Answer::Script(Script {
                        say: text.body.clone(),
                        language,
                        gather_url: self
                            .config
                            .gather_digit
                            .then(|| self.gather_url(&message.message_id, &from.number)),
                        url: format!("{webhook}?{query}"),
                    }),
                    webhook,
                )
            }
            Content::CallbackRequest(callback) => {
                let query = twilio::form_body(&[
                    ("leg", "answer".to_owned()),
                    // The callback: a canceled one is not bridged.
                    ("message", message.message_id.clone()),
                    ("agent", callback.agent_address.clone()),
                    // The caller id the agent sees: our number.
                    ("caller", from.number.clone()),
                    ("lang", language(&callback.language)),
                    ("say", callback.greeting.clone()),
                ]);
                (
                    Answer::Fetch {
                        url: format!("{webhook}?{query}"),
                        detect_machine: self.config.machine_detection != MachineDetection::Off,
                    },
                    format!("{webhook}?leg=callback"),
                )
            }
            other => {
                return Err(AdapterError::unsupported(Channel::Voice, other.kind()));
            }
        };
        let call = PlaceCall {
            from: from.number.clone(),
            to: message.to.value().to_owned(),
            answer,
            status_url,
            ring_seconds: self.config.ring_timeout.as_secs(),
            trace_parent: message.trace_parent.clone(),
        };
        let call_id = self.provider.place_call(&call).await?;
        tracing::debug!(to = %message.to, "call placed");
        Ok(SendReceipt {
            provider_message_id: call_id,
        })
    }

    async fn fetch_status(&self, call_id: &str) -> Result<Option<StatusUpdate>, AdapterError> {
        let (state, raw) = self.provider.call_state(call_id).await?;
        Ok(status_of(call_id, state, &raw, "", SystemTime::now()))
    }

    fn check_content(&self, _tenant: &str, content: &Content) -> Vec<ContentViolation> {
        check_limits(content)
    }

    fn verify_signature(&self, request: &WebhookRequest<'_>) -> Result<(), AdapterError> {
        let url = format!(
            "{}{}",
            self.config.public_base_url.trim_end_matches('/'),
            request.uri
        );
        self.provider.verify(&url, request)
    }

    fn parse_request(
        &self,
        request: &WebhookRequest<'_>,
        asked: Option<&AskedMessage>,
    ) -> Result<Vec<WebhookEvent>, AdapterError> {
        match Leg::of(request) {
            Leg::Notification => self.parse_webhook(request.body),
            Leg::Gather => self.gathered(request.body, asked),
            leg => self.parse_callback(leg, request.body),
        }
    }

    fn parse_webhook(&self, body: &[u8]) -> Result<Vec<WebhookEvent>, AdapterError> {
        Ok(vec![match self.provider.parse(body)? {
            Callback::Status {
                call_id,
                state,
                raw,
                time,
                error_code,
                ..
            } => match status_of(&call_id, state, &raw, &error_code, time) {
                Some(update) => WebhookEvent::Status(update),
                None => WebhookEvent::Ignored(format!("call {raw}")),
            },
            // Digits count only as an answer to the message whose call
            // gathered them (`?leg=gather`, see `parse_request`).
            Callback::Digits { .. } => {
                WebhookEvent::Ignored("digits outside a gather of ours".into())
            }
            Callback::Incoming {
                call_id,
                business,
                customer,
            } => return Ok(self.incoming(&call_id, &business, &customer)),
            Callback::Dialed { .. } => WebhookEvent::Ignored("a dial outside a callback".into()),
            Callback::Other(why) => WebhookEvent::Ignored(why),
        }])
    }

    fn answer_reads(&self, request: &WebhookRequest<'_>) -> Option<(String, String)> {
        match Leg::of(request) {
            Leg::Script | Leg::Gather => Some((
                request.query("line")?.to_owned(),
                request.query("message")?.to_owned(),
            )),
            Leg::Answer => Some((
                request.query("caller")?.to_owned(),
                request.query("message")?.to_owned(),
            )),
            _ => None,
        }
    }

    fn webhook_answer(
        &self,
        request: &WebhookRequest<'_>,
        asked: Option<&AskedMessage>,
    ) -> (&'static str, String) {
        // A call-control request is answered with what the call does next:
        // an answered callback is bridged (unless a machine took it and
        // that counts as not reached); a notification call whose script
        // did not go with it plays it; everything else hangs up.
        let next = match (Leg::of(request), self.provider.parse(request.body)) {
            (Leg::Script, Ok(Callback::Status { .. })) => match asked.map(|m| &m.content) {
                Some(Content::Text(text)) => Next::Script(Script {
                    say: text.body.clone(),
                    language: request.query("lang").unwrap_or_default().to_owned(),
                    gather_url: (request.query("gather") == Some("1")).then(|| {
                        self.gather_url(
                            request.query("message").unwrap_or_default(),
                            request.query("line").unwrap_or_default(),
                        )
                    }),
                    url: String::new(),
                }),
                _ => Next::HangUp,
            },
            (
                Leg::Answer,
                Ok(Callback::Status {
                    answered_by,
                    call_id,
                    ..
                }),
            ) if !self.not_reached(answered_by.as_ref()) && still_wanted(request, asked) => {
                let language = request.query("lang").unwrap_or_default().to_owned();
                tracing::debug!(call = %call_id, "callback answered; bridging to the agent");
                Next::Bridge(Bridge {
                    say: request.query("say").unwrap_or_default().to_owned(),
                    language,
                    agent: request.query("agent").unwrap_or_default().to_owned(),
                    caller_id: request.query("caller").unwrap_or_default().to_owned(),
                    ring_seconds: self.config.ring_timeout.as_secs(),
                    action_url: format!("{}?leg=dial", self.config.webhook_url()),
                })
            }
            (
                _,
                Ok(Callback::Incoming {
                    business, customer, ..
                }),
            ) => match self.config.number(&business) {
                Some(VoiceNumber {
                    forward_to: Some(agent),
                    greeting,
                    ..
                }) => Next::Bridge(Bridge {
                    say: greeting.clone(),
                    language: self.config.default_language.clone(),
                    agent: agent.clone(),
                    // The agent sees who calls; our number for a caller
                    // whose number is withheld.
                    caller_id: match Address::parse(
                        Channel::Voice,
                        &customer,
                        PhoneRegion::default(),
                    ) {
                        Ok(_) => customer,
                        Err(_) => business.clone(),
                    },
                    ring_seconds: self.config.ring_timeout.as_secs(),
                    action_url: format!("{}?leg=incoming-dial", self.config.webhook_url()),
                }),
                Some(number) if !number.greeting.trim().is_empty() => Next::SayAndHangUp {
                    say: number.greeting.clone(),
                    language: self.config.default_language.clone(),
                },
                _ => Next::HangUp,
            },
            _ => Next::HangUp,
        };
        self.provider.render(&next)
    }

    async fn end(&self, call_id: &str) -> Result<(), AdapterError> {
        // Cancel while it rings; once answered (the customer picked up
        // meanwhile) only a hang-up ends it.
        match self.provider.end_call(call_id, provider::End::Cancel).await {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::debug!(error = %e, "the call could not be canceled; hanging it up");
                self.provider.end_call(call_id, provider::End::HangUp).await
            }
        }
    }

    async fn mark_read(&self, _: &str, _: &str) -> Result<(), AdapterError> {
        Err(AdapterError::unsupported(Channel::Voice, "read receipts"))
    }

    async fn fetch_media(&self, _: &str, _: &str) -> Result<MediaDownload, AdapterError> {
        Err(AdapterError::unsupported(Channel::Voice, "media"))
    }

    async fn health(&self) -> Result<(), AdapterError> {
        self.provider.health().await
    }
}

impl VoiceAdapter {
    /// The `<Gather>` action of a call for our message `message_id` placed
    /// from `line`: the digit pressed counts for that message only.
    fn gather_url(&self, message_id: &str, line: &str) -> String {
        let query = twilio::form_body(&[
            ("leg", "gather".to_owned()),
            ("message", message_id.to_owned()),
            ("line", line.to_owned()),
        ]);
        format!("{}?{query}", self.config.webhook_url())
    }

    /// A digit pressed in our call: the customer's reply to the message the
    /// gather was for (`asked`), when the call is that message's (or its
    /// call is not recorded yet); anything else is none of ours and stores
    /// nothing.
    fn gathered(
        &self,
        body: &[u8],
        asked: Option<&AskedMessage>,
    ) -> Result<Vec<WebhookEvent>, AdapterError> {
        let Callback::Digits {
            call_id,
            business,
            customer,
            digits,
        } = self.provider.parse(body)?
        else {
            return Ok(vec![WebhookEvent::Ignored(
                "a gather action without digits".into(),
            )]);
        };
        let ours = asked.is_some_and(|m| m.provider_id.as_ref().is_none_or(|id| *id == call_id));
        if !ours {
            return Ok(vec![WebhookEvent::Ignored(
                "digits for a call of no message of ours".into(),
            )]);
        }
        let Ok(from) = Address::parse(Channel::Voice, &customer, PhoneRegion::default()) else {
            return Ok(vec![WebhookEvent::Ignored(
                "digits from a caller without a number".into(),
            )]);
        };
        Ok(vec![WebhookEvent::Inbound(InboundMessage {
            channel: Channel::Voice,
            account: business,
            provider_message_id: format!("{call_id}#digits"),
            from,
            profile_name: None,
            provider_user_id: None,
            time: SystemTime::now(),
            content: Content::ChoiceReply(Choice {
                id: digits.clone(),
                title: digits,
                description: String::new(),
            }),
            reply_to: Some(call_id),
            automatic: false,
            media_bytes: None,
        })])
    }

    /// Whether who answered counts as not reached (a machine, when the
    /// setting says so).
    fn not_reached(&self, answered_by: Option<&(AnsweredBy, String)>) -> bool {
        self.config.machine_detection == MachineDetection::NotReached
            && answered_by.is_some_and(|(who, _)| *who == AnsweredBy::Machine)
    }

    /// A customer's call coming in to `business`: recorded as their
    /// message (an inbound call); missed at once when nobody takes the
    /// number's calls.
    fn incoming(&self, call_id: &str, business: &str, customer: &str) -> Vec<WebhookEvent> {
        let Ok(from) = Address::parse(Channel::Voice, customer, PhoneRegion::default()) else {
            return vec![WebhookEvent::Ignored(
                "a call from a number that is withheld or not a phone number".into(),
            )];
        };
        let mut events = vec![WebhookEvent::Inbound(InboundMessage {
            channel: Channel::Voice,
            account: business.to_owned(),
            provider_message_id: call_id.to_owned(),
            from: from.clone(),
            profile_name: None,
            provider_user_id: None,
            time: SystemTime::now(),
            content: Content::InboundCall(InboundCall {
                line: business.to_owned(),
            }),
            reply_to: None,
            automatic: false,
            media_bytes: None,
        })];
        let taken = self
            .config
            .number(business)
            .is_some_and(|n| n.forward_to.is_some());
        if !taken {
            events.push(WebhookEvent::MissedCall(MissedCall {
                channel: Channel::Voice,
                account: business.to_owned(),
                call_id: call_id.to_owned(),
                from,
            }));
        }
        events
    }

    /// The events of a callback's request on `leg`.
    fn parse_callback(&self, leg: Leg, body: &[u8]) -> Result<Vec<WebhookEvent>, AdapterError> {
        let callback = self.provider.parse(body)?;
        Ok(match (leg, callback) {
            (
                _,
                Callback::Incoming {
                    call_id,
                    business,
                    customer,
                },
            ) => self.incoming(&call_id, &business, &customer),
            (
                Leg::IncomingDial,
                Callback::Dialed {
                    call_id,
                    business,
                    customer,
                    outcome,
                    ..
                },
            ) => match (
                outcome,
                Address::parse(Channel::Voice, &customer, PhoneRegion::default()),
            ) {
                (DialOutcome::Connected, _) => {
                    vec![WebhookEvent::Ignored("an inbound call put through".into())]
                }
                (_, Ok(from)) => vec![WebhookEvent::MissedCall(MissedCall {
                    channel: Channel::Voice,
                    account: business,
                    call_id,
                    from,
                })],
                (_, Err(_)) => vec![WebhookEvent::Ignored(
                    "a missed call from a number that is not a phone number".into(),
                )],
            },
            (
                Leg::Answer,
                Callback::Status {
                    call_id,
                    answered_by,
                    ..
                },
            ) => {
                let said = answered_by.as_ref().map(|(_, raw)| raw.clone());
                let mut events = vec![progress(
                    &call_id,
                    Some(said.unwrap_or_else(|| "unknown".to_owned())),
                    None,
                )];
                if self.not_reached(answered_by.as_ref()) {
                    events.push(WebhookEvent::Status(failure(
                        &call_id,
                        ErrorClass::Transient,
                        "call-machine",
                        "an answering machine answered",
                    )));
                }
                events
            }
            (
                Leg::Dial,
                Callback::Dialed {
                    call_id,
                    outcome,
                    raw,
                    seconds,
                    ..
                },
            ) => {
                let why = match outcome {
                    DialOutcome::Connected => {
                        return Ok(vec![
                            progress(&call_id, None, seconds.or(Some(0))),
                            WebhookEvent::Status(update(
                                &call_id,
                                DeliveryStatus::Delivered,
                                None,
                                SystemTime::now(),
                            )),
                        ]);
                    }
                    DialOutcome::Busy => "the agent line was busy",
                    DialOutcome::NoAnswer => "nobody took the agent line",
                    DialOutcome::Failed => "the agent could not be connected",
                };
                vec![WebhookEvent::Status(failure(
                    &call_id,
                    ErrorClass::Transient,
                    &format!("agent-{raw}"),
                    why,
                ))]
            }
            (
                Leg::Callback,
                Callback::Status {
                    call_id,
                    state,
                    raw,
                    time,
                    error_code,
                    answered_by,
                    ..
                },
            ) => {
                let update = match state {
                    // The bridge's outcome decided it, unless the call ended
                    // before (the customer hung up during the greeting).
                    CallState::Completed => Some(StatusUpdate {
                        status: DeliveryStatus::Ended,
                        ..failure(
                            &call_id,
                            ErrorClass::Transient,
                            "call-ended",
                            "the call ended before the agent was connected",
                        )
                    }),
                    // A callback is tried again on any failure to reach.
                    CallState::Failed => Some(StatusUpdate {
                        status: DeliveryStatus::Ended,
                        ..failure(
                            &call_id,
                            ErrorClass::Transient,
                            &format!("call-{raw}"),
                            "the call could not be placed",
                        )
                    }),
                    _ => status_of(&call_id, state, &raw, &error_code, time),
                };
                let mut events: Vec<WebhookEvent> = answered_by
                    .map(|(_, raw)| progress(&call_id, Some(raw), None))
                    .into_iter()
                    .collect();
                match update {
                    Some(update) => events.push(WebhookEvent::Status(update)),
                    None if events.is_empty() => {
                        events.push(WebhookEvent::Ignored(format!("call {raw}")));
                    }
                    None => {}
                }
                events
            }
            (_, Callback::Other(why)) => vec![WebhookEvent::Ignored(why)],
            (leg, other) => vec![WebhookEvent::Ignored(format!(
                "{other:?} on the {leg:?} leg"
            ))],
        })
    }
}
