//! A fake Graph API on 127.0.0.1 that speaks the Cloud API formats of
//! PROTOCOLS §1 exactly, for tests of this adapter and of anything that
//! sends through it.
//!
//! It serves:
//! - `POST /{version}/{phone-number-id}/messages`: checks the bearer token
//!   (401 with Graph error 190 otherwise), checks `messaging_product`, `to`,
//!   `type` and the object named after the type (400 with error 100
//!   otherwise), and answers the documented success body with a fresh wamid;
//!   a mark-as-read body (`status: "read"`) is answered `{"success":true}`;
//! - `GET /{version}/{waba-id}/message_templates`: the catalogue set with
//!   [`FakeGraph::set_templates`], paged with `limit`, `paging.cursors` and
//!   `paging.next` like the Graph API;
//! - `GET /{version}/{id}`: media metadata for ids added with
//!   [`FakeGraph::add_media`], `{"id": …}` for any other node.
//! - `GET /download/{id}`: the media bytes set with
//!   [`FakeGraph::set_media_content`] (bearer token checked, like Meta's
//!   media host).
//!
//! Every request is recorded ([`FakeGraph::requests`]) with the time it
//! arrived on Tokio's clock (virtual under `tokio::time::pause`).
//! [`FakeGraph::fail_next`] makes the next requests fail with any Graph
//! error. The server lives on the runtime that started it and stops when the
//! `FakeGraph` is dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The header value Meta sends with a webhook: `sha256=<hex HMAC-SHA256>`.
pub fn sign(app_secret: &str, body: &[u8]) -> String {
    format!("sha256={}", crate::webhook::signature_hex(app_secret, body))
}

/// Headers of a signed webhook delivery, ready for a `WebhookRequest`.
pub fn signed_headers(app_secret: &str, body: &[u8]) -> Vec<(String, String)> {
    vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        (
            crate::webhook::SIGNATURE_HEADER.to_owned(),
            sign(app_secret, body),
        ),
    ]
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The path, for example `/v24.0/106540352242922/messages`.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The W3C `traceparent` header, if any.
    pub traceparent: Option<String>,
    /// The JSON body, if it had one that parsed.
    pub body: Option<Value>,
    /// When it arrived, on Tokio's clock.
    pub at: Instant,
}

#[derive(Debug, Clone)]
struct Failure {
    status: u16,
    code: Value,
    retry_after: Option<String>,
}

/// A transport-level fault on the next send (see [`FakeGraph::fault_next`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 200 with a body that is not the Graph API's JSON (a proxy's
    /// HTML page, a truncated answer).
    Garbage,
    /// The answer comes after this long (past the client's timeout).
    Slow(Duration),
    /// The connection breaks after the status line: the body never comes.
    Reset,
}

#[derive(Debug, Default)]
struct Shared {
    requests: Vec<RecordedRequest>,
    failures: VecDeque<Failure>,
    faults: VecDeque<Fault>,
    templates: HashMap<String, Vec<Value>>,
    page_size: Option<usize>,
    foreign_next: bool,
    media: HashMap<String, Value>,
    media_bytes: HashMap<String, Vec<u8>>,
    wamids: u64,
}

#[derive(Debug)]
struct FakeState {
    token: String,
    base_url: String,
    shared: Mutex<Shared>,
}

impl FakeState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the request, then answers it early if it is unauthorized or a
    /// failure is queued.
    fn begin(&self, parts: &Parts, body: &Bytes) -> Option<Response> {
        let (method, uri, headers) = (&parts.method, &parts.uri, &parts.headers);
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let traceparent = headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut shared = self.lock();
        shared.requests.push(RecordedRequest {
            method: method.to_string(),
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            authorization: authorization.clone(),
            traceparent,
            body: serde_json::from_slice(body).ok(),
            at: Instant::now(),
        });
        if authorization.as_deref() != Some(&format!("Bearer {}", self.token)) {
            return Some(graph_error(
                401,
                json!(190),
                "Invalid OAuth access token - Cannot parse access token",
                None,
            ));
        }
        let failure = shared.failures.pop_front()?;
        Some(graph_error(
            failure.status,
            failure.code,
            "fake failure",
            failure.retry_after.as_deref(),
        ))
    }
}

/// A Graph API error answer with the documented body.
fn graph_error(status: u16, code: Value, text: &str, retry_after: Option<&str>) -> Response {
    let shown = crate::error::code_text(&code).unwrap_or_default();
    let body = json!({
        "error": {
            "message": format!("(#{shown}) {text}"),
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": text},
            "fbtrace_id": "AFakeTraceId0001"
        }
    });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(value) = retry_after.and_then(|v| v.parse().ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn bad_parameter(text: &str) -> Response {
    graph_error(400, json!(100), text, None)
}

/// Every route's first step: records the request and answers it early
/// ([`FakeState::begin`]), or passes it on.
async fn admit(State(state): State<Arc<FakeState>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return bad_parameter("unreadable body");
    };
    if let Some(early) = state.begin(&parts, &body) {
        return early;
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// The fake Graph API server.
#[derive(Debug)]
pub struct FakeGraph {
    state: Arc<FakeState>,
    server: JoinHandle<()>,
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeGraph {
    /// Starts a fake on 127.0.0.1 (a free port) accepting `token`.
    ///
    /// # Panics
    /// When no local port can be bound (a broken test machine).
    pub async fn start(token: &str) -> FakeGraph {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake graph api to a local port");
        let address = listener.local_addr().expect("local address");
        let state = Arc::new(FakeState {
            token: token.to_owned(),
            base_url: format!("http://{address}"),
            shared: Mutex::new(Shared::default()),
        });
        let router = Router::new()
            .route("/{version}/{id}/messages", post(send))
            .route("/{version}/{id}/message_templates", get(templates))
            .route("/download/{id}", get(download))
            .route("/{version}/{id}", get(node))
            .fallback(fallback)
            .layer(middleware::from_fn_with_state(state.clone(), admit))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeGraph { state, server }
    }

    /// `http://127.0.0.1:{port}`: the adapter's `base_url`.
    pub fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.lock().requests.clone()
    }

    /// The JSON bodies of every `POST …/messages` received, in order.
    pub fn sent(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/messages"))
            .filter_map(|r| r.body)
            .collect()
    }

    /// Answers the next `n` authorized requests (any route) with HTTP
    /// `http_status` and a Graph error of `code` (a number, or a string as
    /// some intermediaries send it), with a `Retry-After` header when given
    /// (seconds or an HTTP date).
    pub fn fail_next(
        &self,
        n: usize,
        http_status: u16,
        code: impl Into<Value>,
        retry_after: Option<&str>,
    ) {
        let failure = Failure {
            status: http_status,
            code: code.into(),
            retry_after: retry_after.map(str::to_owned),
        };
        let mut shared = self.state.lock();
        shared.failures.extend(std::iter::repeat_n(failure, n));
    }

    /// Answers the next `n` sends with a transport fault: garbage, a slow
    /// answer, or a connection that breaks mid-answer (the message is
    /// accepted when the fault is `Slow`, as a provider that answers late
    /// has still sent it).
    pub fn fault_next(&self, n: usize, fault: Fault) {
        let mut shared = self.state.lock();
        shared.faults.extend(std::iter::repeat_n(fault, n));
    }

    /// Sets the catalogue of `waba_id`: template objects as the Graph API
    /// returns them (`name`, `language`, `status`, `category`, `components`).
    pub fn set_templates(&self, waba_id: &str, templates: Vec<Value>) {
        self.state
            .lock()
            .templates
            .insert(waba_id.to_owned(), templates);
    }

    /// Caps the page size below the requested `limit` (to exercise paging).
    pub fn set_page_size(&self, size: usize) {
        self.state.lock().page_size = Some(size.max(1));
    }

    /// Makes `paging.next` point at another host (the adapter must then
    /// follow `paging.cursors.after` on its own host instead).
    pub fn set_foreign_next(&self, foreign: bool) {
        self.state.lock().foreign_next = foreign;
    }

    /// Sets the bytes served at the download URL of `media_id`.
    pub fn set_media_content(&self, media_id: &str, bytes: &[u8]) {
        self.state
            .lock()
            .media_bytes
            .insert(media_id.to_owned(), bytes.to_vec());
    }

    /// Adds an inbound media object served by `GET /{version}/{media_id}`.
    pub fn add_media(&self, media_id: &str, mime_type: &str, sha256: &str, file_size: u64) {
        let url = format!("{}/download/{media_id}", self.state.base_url);
        self.state.lock().media.insert(
            media_id.to_owned(),
            json!({
                "messaging_product": "whatsapp",
                "url": url,
                "mime_type": mime_type,
                "sha256": sha256,
                "file_size": file_size,
                "id": media_id
            }),
        );
    }
}

async fn send(
    State(state): State<Arc<FakeState>>,
    Path((_version, _id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let fault = state.lock().faults.pop_front();
    match fault {
        Some(Fault::Garbage) => {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body>502 Bad Gateway</body></html>",
            )
                .into_response();
        }
        Some(Fault::Reset) => {
            let broken = futures_util::stream::once(async {
                Err::<Bytes, _>(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "simulated connection reset",
                ))
            });
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                axum::body::Body::from_stream(broken),
            )
                .into_response();
        }
        Some(Fault::Slow(pause)) => tokio::time::sleep(pause).await,
        None => {}
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_parameter("Invalid JSON body");
    };
    if body["messaging_product"] != "whatsapp" {
        return bad_parameter("The parameter messaging_product is required.");
    }
    if body["status"] == "read" {
        if body["message_id"].as_str().is_none_or(str::is_empty) {
            return bad_parameter("The parameter message_id is required.");
        }
        return axum::Json(json!({"success": true})).into_response();
    }
    let Some(to) = body["to"].as_str().filter(|t| !t.is_empty()) else {
        return bad_parameter("The parameter to is required.");
    };
    let Some(kind) = body["type"].as_str() else {
        return bad_parameter("The parameter type is required.");
    };
    if !body[kind].is_object() {
        return bad_parameter(&format!("The parameter {kind} is required."));
    }
    let wamid = {
        let mut shared = state.lock();
        shared.wamids += 1;
        format!("wamid.HBgLFAKE{:010}", shared.wamids)
    };
    axum::Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": to}],
        "messages": [{"id": wamid, "message_status": "accepted"}]
    }))
    .into_response()
}

async fn templates(
    State(state): State<Arc<FakeState>>,
    Path((version, waba_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let shared = state.lock();
    let all = shared.templates.get(&waba_id).cloned().unwrap_or_default();
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(25)
        .clamp(1, shared.page_size.unwrap_or(usize::MAX));
    let offset = query
        .get("after")
        .and_then(|a| a.strip_prefix("QVFI"))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0)
        .min(all.len());
    let end = (offset + limit).min(all.len());
    let page: Vec<Value> = all[offset..end].to_vec();
    let mut paging =
        json!({"cursors": {"before": format!("QVFI{offset}"), "after": format!("QVFI{end}")}});
    if end < all.len() {
        let host = if shared.foreign_next {
            "https://elsewhere.invalid".to_owned()
        } else {
            state.base_url.clone()
        };
        let fields = query.get("fields").cloned().unwrap_or_default();
        paging["next"] = json!(format!(
            "{host}/{version}/{waba_id}/message_templates?fields={fields}&limit={limit}&after=QVFI{end}"
        ));
    }
    axum::Json(json!({"data": page, "paging": paging})).into_response()
}

async fn download(State(state): State<Arc<FakeState>>, Path(id): Path<String>) -> Response {
    let shared = state.lock();
    let mime = shared
        .media
        .get(&id)
        .and_then(|m| m["mime_type"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    match shared.media_bytes.get(&id) {
        Some(bytes) => ([(axum::http::header::CONTENT_TYPE, mime)], bytes.clone()).into_response(),
        None => graph_error(404, json!(100), "Unsupported get request", None),
    }
}

async fn node(
    State(state): State<Arc<FakeState>>,
    Path((_version, id)): Path<(String, String)>,
) -> Response {
    let media = state.lock().media.get(&id).cloned();
    axum::Json(media.unwrap_or_else(|| json!({"id": id}))).into_response()
}

async fn fallback() -> Response {
    graph_error(
        400,
        json!(100),
        "Unsupported request - method type or path",
        None,
    )
}
