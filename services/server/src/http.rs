//! The one place where the application's errors become HTTP statuses, for
//! every HTTP face (provider webhooks, the links and pages mail carries):
//! a store that cannot be reached is 503 (the provider delivers again,
//! the person tries again; nothing was stored), logged at most once per
//! interval while it is down; bad input 400, what does not exist 404,
//! what cannot be done now 409; anything else 500, logged with its cause.

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::app::AppError;
use crate::telemetry::Throttle;

/// The HTTP status of `error`, logged as `what` failing.
pub fn status(what: &str, error: &AppError) -> StatusCode {
    static DOWN: Throttle = Throttle::new(5_000);
    match error {
        AppError::Store(e) if e.is_transient() => {
            if let Some(suppressed) = DOWN.allow() {
                tracing::warn!(error = %omniroute_store::error_chain(e), suppressed, "{what} failed: store unavailable; answering 503");
            }
            StatusCode::SERVICE_UNAVAILABLE
        }
        AppError::Invalid(_) => StatusCode::BAD_REQUEST,
        AppError::NotFound(_) => StatusCode::NOT_FOUND,
        AppError::Precondition(_) => StatusCode::CONFLICT,
        e => {
            tracing::error!(error = %omniroute_store::error_chain(e), "{what} failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// A response for `error`: its status, and a body that tells a person what
/// to do (never the cause).
pub fn response(what: &str, error: &AppError) -> Response {
    let status = status(what, error);
    let body = match status {
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::INTERNAL_SERVER_ERROR => "try again later",
        StatusCode::NOT_FOUND => "not found",
        _ => "refused",
    };
    (status, body).into_response()
}

/// `routes` with every request bounded by `timeout`, its body's upload
/// included: a slower one is answered 408 (nothing was recorded; the
/// provider delivers again), so a stalled client cannot hold a worker.
pub fn bounded(routes: Router, timeout: std::time::Duration) -> Router {
    routes.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| async move {
            use axum::response::IntoResponse;
            match tokio::time::timeout(timeout, next.run(request)).await {
                Ok(response) => response,
                Err(_) => {
                    tracing::warn!(timeout_secs = timeout.as_secs(), "HTTP request timed out");
                    (StatusCode::REQUEST_TIMEOUT, "request timed out").into_response()
                }
            }
        },
    ))
}
