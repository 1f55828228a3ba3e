//! A fake Twilio REST API on 127.0.0.1 speaking PROTOCOLS §2's formats:
//!
//! - `POST /2010-04-01/Accounts/{AccountSid}/Calls.json`: HTTP Basic auth
//!   checked (401 with error 20003 otherwise), form-encoded; `To`, `From`
//!   and one of `Url`/`Twiml` required (400 with 21201 or 21205); `Twiml`
//!   at most 4,000 characters (400 with 32018); `To` must be E.164 (400
//!   with 21211); answers 201 with the call JSON (`sid` "CA" +
//!   32 hex, `status: "queued"`, `direction: "outbound-api"`, …).
//! - `GET …/Calls/{CallSid}.json`: the call's current state.
//! - `GET /2010-04-01/Accounts/{AccountSid}.json`: the account.
//!
//! A test then plays the call: [`FakeTwilio::finish`] posts its progress
//! (ringing, in-progress, then the end it is given) to the call's
//! `StatusCallback`, signed with `X-Twilio-Signature` and numbered by
//! `SequenceNumber`; [`FakeTwilio::press`] posts a pressed digit to the
//! `<Gather>` action of its TwiML. A call created with a `Url` asks it
//! for TwiML when answered ([`FakeTwilio::answer`], with `AnsweredBy` when
//! created with `MachineDetection`); [`FakeTwilio::dial`] plays that
//! TwiML's `<Dial>` and posts its outcome to the dial's action;
//! [`FakeTwilio::hang_up`] ends an answered call. [`FakeTwilio::fail_next`]
//! scripts the next answers to call creation; [`FakeTwilio::hold_answers`]
//! delays them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::twilio::{callbacks, form_body, signature};

/// A call the fake was asked to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedCall {
    /// Its sid.
    pub sid: String,
    /// The number called.
    pub to: String,
    /// The caller id.
    pub from: String,
    /// Its TwiML: given inline, or what its `Url` answered.
    pub twiml: String,
    /// Where it asks for TwiML when answered (empty for inline TwiML).
    pub url: String,
    /// `MachineDetection`, when asked for.
    pub machine_detection: Option<String>,
    /// The numbers its `<Dial>`s called.
    pub dialed: Vec<String>,
    /// The last `SequenceNumber` of its progress callbacks.
    pub sequence: u64,
    /// `outbound-api` for the calls placed through the API, `inbound` for
    /// a customer's call to one of the account's numbers.
    pub direction: String,
    /// Where its progress goes.
    pub status_callback: String,
    /// The events asked for (`StatusCallbackEvent`, repeated).
    pub events: Vec<String>,
    /// Its current status.
    pub status: String,
    /// The W3C `traceparent` header of the request that placed it, if any.
    pub traceparent: Option<String>,
}

#[derive(Debug, Default)]
struct Shared {
    calls: Vec<PlacedCall>,
    failures: VecDeque<(u16, u64, String)>,
    next: u64,
    /// Whether call creations hold their answers.
    holding: bool,
}

/// The fake API.
#[derive(Debug)]
pub struct FakeTwilio {
    base: String,
    account_sid: String,
    auth_token: String,
    state: Arc<Mutex<Shared>>,
    released: Arc<tokio::sync::watch::Sender<u64>>,
    server: JoinHandle<()>,
    http: reqwest::Client,
    proxy: Mutex<Option<(String, String)>>,
}

impl Drop for FakeTwilio {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Clone)]
struct App {
    account_sid: String,
    auth_token: String,
    state: Arc<Mutex<Shared>>,
    released: Arc<tokio::sync::watch::Sender<u64>>,
}

fn error(status: u16, code: u64, message: &str) -> Response {
    let status_code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (
        status_code,
        [(header::CONTENT_TYPE, "application/json")],
        json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        })
        .to_string(),
    )
        .into_response();
    if status == 429 {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, "2".parse().expect("a header value"));
    }
    response
}

impl App {
    fn authorized(&self, headers: &HeaderMap, account: &str) -> bool {
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", self.account_sid, self.auth_token))
        );
        account == self.account_sid
            && headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                == Some(expected.as_str())
    }
}

fn call_json(call: &PlacedCall, account: &str) -> String {
    json!({
        "sid": call.sid,
        "account_sid": account,
        "to": call.to,
        "from": call.from,
        "status": call.status,
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "date_created": "Tue, 01 Dec 2026 10:00:00 +0000",
        "queue_time": "0",
    })
    .to_string()
}

async fn create(
    State(app): State<App>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (number, holding, answer) = match place(&app, &account, &headers, &body) {
        Ok(placed) => placed,
        Err((status, code, message)) => return error(status, code, &message),
    };
    if holding {
        // The call is placed (its callbacks can be played) and the answer
        // waits, as one that reaches the caller late.
        let mut released = app.released.subscribe();
        let _ = released.wait_for(|upto| *upto >= number).await;
    }
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        answer,
    )
        .into_response()
}

/// Places the call a creation asks for: its number, whether its answer is
/// held, and the answer; or the refusal's status, error code and message.
fn place(
    app: &App,
    account: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(u64, bool, String), (u16, u64, String)> {
    let account = account.trim_end_matches(".json").to_owned();
    if !app.authorized(headers, &account) {
        return Err((401, 20003, "Authenticate".into()));
    }
    let form = callbacks::form(body);
    let get = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut state = app.state.lock().expect("not poisoned");
    if let Some((status, code, message)) = state.failures.pop_front() {
        return Err((status, code, message));
    }
    let (Some(to), Some(from)) = (get("To"), get("From")) else {
        return Err((400, 21201, "No 'To' or 'From' number is specified".into()));
    };
    let (twiml, url) = (get("Twiml"), get("Url"));
    if twiml.is_none() && url.is_none() {
        return Err((400, 21205, "Url or Twiml is required".into()));
    }
    if twiml.as_ref().is_some_and(|t| t.chars().count() > 4000) {
        return Err((
            400,
            32018,
            "Twiml size exceeded maximum allowed value of 4000 characters".into(),
        ));
    }
    let e164 = to.len() > 8 && to.starts_with('+') && to[1..].bytes().all(|b| b.is_ascii_digit());
    if !e164 {
        return Err((
            400,
            21211,
            format!("The 'To' number {to} is not a valid phone number."),
        ));
    }
    state.next += 1;
    let call = PlacedCall {
        sid: format!("CA{:032x}", state.next),
        to,
        from,
        twiml: twiml.unwrap_or_default(),
        url: url.unwrap_or_default(),
        machine_detection: get("MachineDetection"),
        dialed: Vec::new(),
        sequence: 0,
        direction: "outbound-api".into(),
        status_callback: get("StatusCallback").unwrap_or_default(),
        events: form
            .iter()
            .filter(|(k, _)| k == "StatusCallbackEvent")
            .map(|(_, v)| v.clone())
            .collect(),
        status: "queued".into(),
        traceparent: headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let answer = call_json(&call, &account);
    state.calls.push(call);
    let holding = state.holding;
    Ok((state.next, holding, answer))
}

async fn fetch(
    State(app): State<App>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !app.authorized(&headers, &account) {
        return error(401, 20003, "Authenticate");
    }
    let sid = call.trim_end_matches(".json");
    let state = app.state.lock().expect("not poisoned");
    match state.calls.iter().find(|c| c.sid == sid) {
        Some(c) => (
            [(header::CONTENT_TYPE, "application/json")],
            call_json(c, &account),
        )
            .into_response(),
        None => error(404, 20404, "The requested resource was not found"),
    }
}

/// `POST …/Calls/{CallSid}.json` with `Status=canceled` (a call not yet
/// answered) or `Status=completed` (one in progress); Twilio answers the
/// call as it is now, and 400 with error 21220 for a call that cannot move
/// so (already ended, or canceling an answered one).
async fn update(
    State(app): State<App>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !app.authorized(&headers, &account) {
        return error(401, 20003, "Authenticate");
    }
    let sid = call.trim_end_matches(".json");
    let form = callbacks::form(&body);
    let wanted = form
        .iter()
        .find(|(k, _)| k == "Status")
        .map(|(_, v)| v.as_str());
    let mut state = app.state.lock().expect("not poisoned");
    let Some(c) = state.calls.iter_mut().find(|c| c.sid == sid) else {
        return error(404, 20404, "The requested resource was not found");
    };
    let allowed = match wanted {
        Some("canceled") => matches!(c.status.as_str(), "queued" | "ringing"),
        Some("completed") => matches!(c.status.as_str(), "queued" | "ringing" | "in-progress"),
        _ => return error(400, 21218, "Invalid call status"),
    };
    if !allowed {
        return error(400, 21220, "Call is not in-progress. Cannot redirect.");
    }
    c.status = wanted.unwrap_or_default().to_owned();
    (
        [(header::CONTENT_TYPE, "application/json")],
        call_json(c, &account),
    )
        .into_response()
}

async fn account(
    State(app): State<App>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Response {
    let account = account.trim_end_matches(".json").to_owned();
    if !app.authorized(&headers, &account) {
        return error(401, 20003, "Authenticate");
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        json!({"sid": account, "status": "active"}).to_string(),
    )
        .into_response()
}

impl FakeTwilio {
    /// Starts the fake for one account.
    ///
    /// # Panics
    /// When no local port can be bound.
    pub async fn start(account_sid: &str, auth_token: &str) -> FakeTwilio {
        let state = Arc::new(Mutex::new(Shared::default()));
        let released = Arc::new(tokio::sync::watch::Sender::new(0));
        let app = App {
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            state: Arc::clone(&state),
            released: Arc::clone(&released),
        };
        let router = Router::new()
            .route("/2010-04-01/Accounts/{account}/Calls.json", post(create))
            .route(
                "/2010-04-01/Accounts/{account}/Calls/{call}",
                get(fetch).post(update),
            )
            .route("/2010-04-01/Accounts/{account}", get(account))
            .with_state(app);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let base = format!("http://{}", listener.local_addr().expect("bound"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeTwilio {
            base,
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            state,
            released,
            server,
            http: crate::twilio::http_client(std::time::Duration::from_secs(10))
                .expect("an http client"),
            proxy: Mutex::new(None),
        }
    }

    /// Callbacks to URLs under `public` (what the router's settings call its
    /// public base URL) reach `actual` instead, as through a TLS-terminating
    /// proxy: signed for the public URL, sent to the local listener.
    pub fn behind_proxy(&self, public: &str, actual: &str) {
        *self.proxy.lock().expect("not poisoned") = Some((
            public.trim_end_matches('/').to_owned(),
            actual.trim_end_matches('/').to_owned(),
        ));
    }

    /// The API's base URL.
    pub fn base_url(&self) -> String {
        self.base.clone()
    }

    /// The calls placed so far.
    pub fn calls(&self) -> Vec<PlacedCall> {
        self.state.lock().expect("not poisoned").calls.clone()
    }

    /// From now on, a call creation places the call and holds its answer
    /// until [`FakeTwilio::release_held`]: the call's callbacks can be
    /// played before the router hears that it was placed.
    pub fn hold_answers(&self) {
        self.state.lock().expect("not poisoned").holding = true;
    }

    /// Sends the answers held so far; later creations are held still.
    pub fn release_held(&self) {
        let placed = self.state.lock().expect("not poisoned").next;
        self.released.send_replace(placed);
    }

    /// The next `n` call creations answer HTTP `status` with Twilio error
    /// `code`.
    pub fn fail_next(&self, n: usize, status: u16, code: u64, message: &str) {
        let mut state = self.state.lock().expect("not poisoned");
        for _ in 0..n {
            state.failures.push_back((status, code, message.to_owned()));
        }
    }

    /// A signed form POST as Twilio makes it; the status of the answer and
    /// its body.
    pub async fn post_signed(&self, url: &str, params: &[(&str, String)]) -> (u16, String) {
        let owned: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let signature = signature::sign(&self.auth_token, url, &owned);
        let target = match &*self.proxy.lock().expect("not poisoned") {
            Some((public, actual)) if url.starts_with(public.as_str()) => {
                format!("{actual}{}", &url[public.len()..])
            }
            _ => url.to_owned(),
        };
        let response = self
            .http
            .post(target)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("X-Twilio-Signature", signature)
            .body(form_body(params))
            .send()
            .await
            .expect("the router answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    fn call(&self, sid: &str) -> PlacedCall {
        self.calls()
            .into_iter()
            .find(|c| c.sid == sid)
            .expect("a call the fake placed")
    }

    /// The form of a progress callback of `call`.
    pub fn status_params(
        &self,
        call: &PlacedCall,
        status: &str,
        sequence: u64,
    ) -> Vec<(&'static str, String)> {
        let mut params = vec![
            ("AccountSid", self.account_sid.clone()),
            ("ApiVersion", "2010-04-01".to_owned()),
            ("CallSid", call.sid.clone()),
            ("CallStatus", status.to_owned()),
            ("CallbackSource", "call-progress-events".to_owned()),
            ("Direction", "outbound-api".to_owned()),
            ("From", call.from.clone()),
            ("SequenceNumber", sequence.to_string()),
            (
                "Timestamp",
                httpdate::fmt_http_date(std::time::SystemTime::now()).replace("GMT", "+0000"),
            ),
            ("To", call.to.clone()),
        ];
        if status == "completed" {
            params.push(("CallDuration", "12".to_owned()));
        }
        params
    }

    /// Moves call `sid` to `status` and posts it to its status callback
    /// with the call's next `SequenceNumber` (and `extra` parameters); the
    /// answer's status.
    async fn progress(&self, sid: &str, status: &str, extra: &[(&'static str, String)]) -> u16 {
        let call = {
            let mut state = self.state.lock().expect("not poisoned");
            let call = state
                .calls
                .iter_mut()
                .find(|c| c.sid == sid)
                .expect("a call the fake placed");
            call.status = status.to_owned();
            call.sequence += 1;
            call.clone()
        };
        let mut params = self.status_params(&call, status, call.sequence);
        params.extend(extra.iter().cloned());
        self.post_signed(&call.status_callback, &params).await.0
    }

    /// Plays call `sid` to its `end` (`completed`, `busy`, `no-answer`,
    /// `failed`, `canceled`): posts ringing, in-progress (when answered)
    /// and the end to its status callback, in order; the answers' statuses.
    pub async fn finish(&self, sid: &str, end: &str) -> Vec<u16> {
        let mut steps = vec!["ringing"];
        if end == "completed" {
            steps.push("in-progress");
        }
        steps.push(end);
        let mut answers = Vec::new();
        for status in steps {
            answers.push(self.progress(sid, status, &[]).await);
        }
        answers
    }

    /// Call `sid` (created with a `Url`) is answered by `answered_by`
    /// (`human`, `machine_start`, …; sent only when the call asked for
    /// machine detection): posts ringing and in-progress to its status
    /// callback, then asks its `Url` for TwiML, which it keeps; the answer
    /// (status and TwiML).
    pub async fn answer(&self, sid: &str, answered_by: &str) -> (u16, String) {
        let call = self.call(sid);
        let detected: Vec<(&'static str, String)> = match call.machine_detection {
            Some(_) => vec![("AnsweredBy", answered_by.to_owned())],
            None => Vec::new(),
        };
        self.progress(sid, "ringing", &[]).await;
        self.progress(sid, "in-progress", &detected).await;
        let mut params = vec![
            ("AccountSid", self.account_sid.clone()),
            ("ApiVersion", "2010-04-01".to_owned()),
            ("CallSid", call.sid.clone()),
            ("CallStatus", "in-progress".to_owned()),
            ("Direction", "outbound-api".to_owned()),
            ("From", call.from.clone()),
            ("To", call.to.clone()),
        ];
        params.extend(detected);
        let (status, twiml) = self.post_signed(&call.url, &params).await;
        let mut state = self.state.lock().expect("not poisoned");
        if let Some(c) = state.calls.iter_mut().find(|c| c.sid == sid) {
            c.twiml = twiml.clone();
        }
        (status, twiml)
    }

    /// Plays the `<Dial>` of call `sid`'s TwiML: the `<Number>` it dials is
    /// recorded and `outcome` (`completed`, `busy`, `no-answer`, `failed`,
    /// `canceled`) posted to the dial's action, with `seconds` connected
    /// when completed; the answer (status and TwiML).
    ///
    /// # Panics
    /// When the call's TwiML has no `<Dial>` with an action.
    pub async fn dial(&self, sid: &str, outcome: &str, seconds: u32) -> (u16, String) {
        let call = self.call(sid);
        let dial = call
            .twiml
            .split("<Dial")
            .nth(1)
            .expect("the call's TwiML dials");
        let action = dial
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map(|a| a.replace("&amp;", "&"))
            .expect("the dial has an action");
        let number = dial
            .split("<Number>")
            .nth(1)
            .and_then(|rest| rest.split("</Number>").next())
            .expect("the dial names a number")
            .to_owned();
        {
            let mut state = self.state.lock().expect("not poisoned");
            if let Some(c) = state.calls.iter_mut().find(|c| c.sid == sid) {
                c.dialed.push(number);
            }
        }
        let mut params = vec![
            ("AccountSid", self.account_sid.clone()),
            ("CallSid", call.sid.clone()),
            ("CallStatus", "in-progress".to_owned()),
            (
                "DialCallSid",
                format!("CA{:032x}", u64::MAX - call.sequence),
            ),
            ("DialCallStatus", outcome.to_owned()),
            ("Direction", call.direction.clone()),
            ("From", call.from.clone()),
            ("To", call.to.clone()),
        ];
        if outcome == "completed" {
            params.push(("DialCallDuration", seconds.to_string()));
        }
        self.post_signed(&action, &params).await
    }

    /// A customer at `from` calls our number `to`, whose voice URL is
    /// `url`: Twilio asks it what to do (a ringing inbound call); the call's
    /// sid, and the answer (status and TwiML), which the call keeps (a
    /// `<Dial>` in it is played by [`FakeTwilio::dial`]).
    pub async fn ring_in(&self, url: &str, from: &str, to: &str) -> (String, u16, String) {
        let sid = {
            let mut state = self.state.lock().expect("not poisoned");
            state.next += 1;
            let sid = format!("CA{:032x}", state.next);
            state.calls.push(PlacedCall {
                sid: sid.clone(),
                to: to.to_owned(),
                from: from.to_owned(),
                twiml: String::new(),
                url: url.to_owned(),
                machine_detection: None,
                dialed: Vec::new(),
                sequence: 0,
                direction: "inbound".into(),
                status_callback: String::new(),
                events: Vec::new(),
                status: "ringing".into(),
                traceparent: None,
            });
            sid
        };
        let params = [
            ("AccountSid", self.account_sid.clone()),
            ("ApiVersion", "2010-04-01".to_owned()),
            ("CallSid", sid.clone()),
            ("CallStatus", "ringing".to_owned()),
            ("Called", to.to_owned()),
            ("Caller", from.to_owned()),
            ("Direction", "inbound".to_owned()),
            ("From", from.to_owned()),
            ("To", to.to_owned()),
        ];
        let (status, twiml) = self.post_signed(url, &params).await;
        let mut state = self.state.lock().expect("not poisoned");
        if let Some(c) = state.calls.iter_mut().find(|c| c.sid == sid) {
            c.twiml = twiml.clone();
        }
        (sid, status, twiml)
    }

    /// The calls the fake placed through the API (not the customers'
    /// calls in).
    pub fn placed(&self) -> Vec<PlacedCall> {
        self.calls()
            .into_iter()
            .filter(|c| c.direction != "inbound")
            .collect()
    }

    /// Answered call `sid` ends (`completed`); the answer's status.
    pub async fn hang_up(&self, sid: &str) -> u16 {
        self.progress(sid, "completed", &[]).await
    }

    /// The customer presses `digits` in call `sid`: posted to the
    /// `<Gather>` action of its TwiML; the answer (status and TwiML).
    pub async fn press(&self, sid: &str, digits: &str) -> (u16, String) {
        let call = self.call(sid);
        let action = call
            .twiml
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map(|a| a.replace("&amp;", "&"))
            .expect("the call gathers digits");
        let params = [
            ("AccountSid", self.account_sid.clone()),
            ("CallSid", call.sid.clone()),
            ("Digits", digits.to_owned()),
            ("Direction", "outbound-api".to_owned()),
            ("From", call.from.clone()),
            ("To", call.to.clone()),
        ];
        self.post_signed(&action, &params).await
    }
}
