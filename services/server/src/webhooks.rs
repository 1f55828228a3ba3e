//! Webhook ingress: the HTTP listener providers call with customers'
//! messages and delivery statuses, at `/webhooks/{channel}` (for example
//! `/webhooks/whatsapp`).
//!
//! - `GET` answers the provider's subscription handshake (403 when refused).
//! - `POST` reads at most `http.max_body_bytes`, verifies the signature over
//!   the exact bytes before anything is parsed (401, nothing stored, on a bad
//!   or missing one), reads the message of ours a call-control request
//!   names, if any (`Adapter::answer_reads`: what the request carries may
//!   count only for it, and the answer may play it), parses (400 on a
//!   malformed body), then records every event (the inbound use case,
//!   `app/inbound.rs`) before answering 200. A failure to record answers
//!   503 or 500 (`http.rs`) so that the provider delivers again: nothing
//!   acknowledged is lost, and redeliveries are harmless (inbound messages
//!   are recorded once per provider id, statuses only move forward).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::get;
use omniroute_channel::WebhookRequest;

use crate::app::inbound::{Ingress, Rejected};

/// The webhook routes over `ingress`, with the body limit.
pub fn router(ingress: Ingress, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/webhooks/{channel}", get(subscribe).post(deliver))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(ingress)
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            value
                .to_str()
                .ok()
                .map(|v| (name.as_str().to_ascii_lowercase(), v.to_owned()))
        })
        .collect()
}

async fn subscribe(
    State(ingress): State<Ingress>,
    Path(channel): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    uri: Uri,
    headers: HeaderMap,
) -> (StatusCode, String) {
    let Some((channel, adapter)) = ingress.adapter(&channel) else {
        return (StatusCode::NOT_FOUND, "no such channel".to_owned());
    };
    let headers = header_pairs(&headers);
    let request = WebhookRequest {
        uri: uri.path_and_query().map_or(uri.path(), |pq| pq.as_str()),
        query: &query,
        headers: &headers,
        body: &[],
    };
    match adapter.verify_subscription(&request) {
        Ok(challenge) => {
            tracing::info!(%channel, "webhook subscription verified");
            (StatusCode::OK, challenge)
        }
        Err(e) => {
            tracing::warn!(%channel, error = %e, "webhook subscription refused");
            (StatusCode::FORBIDDEN, "refused".to_owned())
        }
    }
}

async fn deliver(
    State(ingress): State<Ingress>,
    Path(channel): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let metrics = &crate::metrics::METRICS;
    let Some((channel, adapter)) = ingress.adapter(&channel) else {
        metrics.webhook("none", "no_channel");
        return (StatusCode::NOT_FOUND, "no such channel").into_response();
    };
    let headers = header_pairs(&headers);
    let request = WebhookRequest {
        uri: uri.path_and_query().map_or(uri.path(), |pq| pq.as_str()),
        query: &query,
        headers: &headers,
        body: &body,
    };
    let counted = |result: &str| metrics.webhook(channel.as_str(), result);
    if let Err(e) = adapter.verify_signature(&request) {
        counted("unauthorized");
        tracing::warn!(%channel, error = %e, "webhook with a bad signature refused");
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    // The message of ours the request is about, if it names one: what it
    // carries may only count for that message, and the answer may need it.
    let asked = match ingress.asked(channel, adapter, &request).await {
        Ok(asked) => asked,
        Err(error) => {
            counted("not_recorded");
            let status = crate::http::status("reading the message a call asks for", &error);
            return (status, "not recorded; deliver again").into_response();
        }
    };
    match ingress
        .ingest_request(channel, adapter, &request, asked.as_ref())
        .await
    {
        Ok(()) => {
            counted("ok");
            let (content_type, answer) = adapter.webhook_answer(&request, asked.as_ref());
            (
                StatusCode::OK,
                [(axum::http::header::CONTENT_TYPE, content_type)],
                answer,
            )
                .into_response()
        }
        Err(Rejected::Malformed(e)) => {
            counted("malformed");
            tracing::warn!(%channel, error = %e, "malformed webhook refused");
            (StatusCode::BAD_REQUEST, "malformed body").into_response()
        }
        Err(Rejected::NotRecorded(error)) => {
            counted("not_recorded");
            let status = crate::http::status("recording a webhook", &error);
            (status, "not recorded; deliver again").into_response()
        }
    }
}
