//! The voice-provider contract: what the voice adapter needs of a telephony
//! API, in neutral words, so that a second provider (Vonage: JSON, JWT,
//! NCCO) sits behind the same adapter without touching routing or the
//! store.

use std::time::SystemTime;

use async_trait::async_trait;
use omniroute_channel::{AdapterError, WebhookRequest};

/// What a call says and asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Spoken when the call is answered.
    pub say: String,
    /// Its language (BCP 47, `de-DE`).
    pub language: String,
    /// Asks for one digit, posted to this URL.
    pub gather_url: Option<String>,
    /// Where the router answers with this script, for a call that cannot
    /// carry it (Twilio takes at most 4,000 characters of TwiML with a
    /// call): asked when the call is answered. Empty: nowhere.
    pub url: String,
}

/// What an answered callback does: greets the customer, then connects
/// them with the agent line; the dial's outcome is posted to `action_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    /// Spoken first (nothing when empty).
    pub say: String,
    /// Its language (BCP 47).
    pub language: String,
    /// The agent line, E.164.
    pub agent: String,
    /// The caller id the agent sees: our number.
    pub caller_id: String,
    /// Seconds the agent line rings.
    pub ring_seconds: u64,
    /// Where the dial's outcome goes.
    pub action_url: String,
}

/// What an answered call does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Plays a script, given with the call.
    Script(Script),
    /// Asks `url` once answered (who answered, detected when
    /// `detect_machine`); the router answers with a [`Bridge`] or a hang-up.
    Fetch {
        /// The call-control URL.
        url: String,
        /// Whether the provider detects answering machines first.
        detect_machine: bool,
    },
}

/// What a call does next, answered to a call-control request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Connect the customer with an agent.
    Bridge(Bridge),
    /// Play a script (a call's, fetched when it is answered).
    Script(Script),
    /// End the call.
    HangUp,
    /// Say something, then end the call.
    SayAndHangUp {
        /// What is said.
        say: String,
        /// Its language (BCP 47).
        language: String,
    },
}

/// A call to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceCall {
    /// Our number, E.164.
    pub from: String,
    /// The customer's number, E.164.
    pub to: String,
    /// What the call does when answered.
    pub answer: Answer,
    /// Where the provider reports the call's progress.
    pub status_url: String,
    /// Seconds it rings.
    pub ring_seconds: u64,
    /// The W3C trace context to send with the request (empty: none).
    pub trace_parent: String,
}

/// Where a call is, in neutral words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// Waiting to be dialled.
    Queued,
    /// Ringing.
    Ringing,
    /// Answered, going on.
    InProgress,
    /// Answered and ended.
    Completed,
    /// The line was busy.
    Busy,
    /// Nobody answered.
    NoAnswer,
    /// It could not be placed.
    Failed,
    /// Canceled before it was answered.
    Canceled,
}

/// Who answered a call, when the provider detects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnsweredBy {
    /// A person.
    Human,
    /// An answering machine or voicemail.
    Machine,
    /// Unknown (or a fax).
    Unknown,
}

/// A callback the provider posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callback {
    /// A call's progress.
    Status {
        /// The provider's call id.
        call_id: String,
        /// Where it is.
        state: CallState,
        /// The provider's own word for it, kept for the record.
        raw: String,
        /// Who answered, when known, with the provider's word for it.
        answered_by: Option<(AnsweredBy, String)>,
        /// The provider's order of this callback among the call's.
        sequence: u64,
        /// When it happened.
        time: SystemTime,
        /// The provider's error code, on failures.
        error_code: String,
    },
    /// Digits the customer pressed in a call.
    Digits {
        /// The provider's call id.
        call_id: String,
        /// Our number.
        business: String,
        /// The customer's number.
        customer: String,
        /// The digits.
        digits: String,
    },
    /// A customer calls one of our numbers: what does the call do?
    Incoming {
        /// The provider's call id.
        call_id: String,
        /// Our number.
        business: String,
        /// The customer's number.
        customer: String,
    },
    /// How a `<Dial>` to the agent line ended (posted to its action).
    Dialed {
        /// The provider's id of the customer's call.
        call_id: String,
        /// Our number.
        business: String,
        /// The customer's number.
        customer: String,
        /// Whether the agent was connected, and if not why.
        outcome: DialOutcome,
        /// The provider's own word for it.
        raw: String,
        /// Seconds the two were connected.
        seconds: Option<u32>,
    },
    /// Something not acted on, with why.
    Other(String),
}

/// How a dial to the agent line ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialOutcome {
    /// The agent answered: customer and agent were connected.
    Connected,
    /// The agent line was busy.
    Busy,
    /// Nobody took the agent line.
    NoAnswer,
    /// The dial failed, or the customer hung up while it rang.
    Failed,
}

/// How to end a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Before it is answered: it stops ringing.
    Cancel,
    /// Once answered: hang up.
    HangUp,
}

/// A telephony API.
#[async_trait]
pub trait VoiceProvider: Send + Sync + std::fmt::Debug + 'static {
    /// Places a call; the provider's call id.
    async fn place_call(&self, call: &PlaceCall) -> Result<String, AdapterError>;

    /// Ends a call: cancels it while it rings, or hangs it up.
    async fn end_call(&self, call_id: &str, how: End) -> Result<(), AdapterError>;

    /// The call's current state, for reconciliation.
    async fn call_state(&self, call_id: &str) -> Result<(CallState, String), AdapterError>;

    /// Verifies a callback's signature; `url` is the exact public URL it
    /// was sent to.
    fn verify(&self, url: &str, request: &WebhookRequest<'_>) -> Result<(), AdapterError>;

    /// Parses a verified callback body.
    fn parse(&self, body: &[u8]) -> Result<Callback, AdapterError>;

    /// The answer to a call-control request (content type and body): what
    /// the call does next.
    fn render(&self, next: &Next) -> (&'static str, String);

    /// The language the provider's speech takes for a customer's locale
    /// (BCP 47, `zh-Hant-TW`), in the provider's own words; `None` for one
    /// it does not speak.
    fn language(&self, locale: &str) -> Option<String>;

    /// Whether the provider can reach its API.
    async fn health(&self) -> Result<(), AdapterError>;
}
