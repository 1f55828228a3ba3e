//! One-click unsubscribe for marketing email (RFC 8058), on the HTTP
//! listener: `POST /unsubscribe/email/{token}` with
//! `List-Unsubscribe=One-Click` (what mailbox providers send) records a
//! marketing opt-out for email in the consent ledger, with the evidence
//! (source `list-unsubscribe`, the message, the time); routing reads it on
//! the next send. A `GET` (a person following the link, or a scanner
//! prefetching it) only shows a page with a button; it changes nothing. A
//! token that does not verify is 404 and changes nothing.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use omniroute_channel::{Category, Channel};
use uuid::Uuid;

use super::Links;

/// The routes.
pub(super) fn routes() -> Router<Links> {
    Router::new().route("/unsubscribe/email/{token}", get(page).post(one_click))
}

async fn page(State(state): State<Links>, Path(token): Path<String>) -> Response {
    if state.tokens.verify(&token).is_none() {
        return (StatusCode::NOT_FOUND, "unknown unsubscribe link").into_response();
    }
    Html(format!(
        "<!doctype html><html><body><form method=\"post\" action=\"{}{token}\">\
         <input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
         <p>Stop marketing email from us?</p><button type=\"submit\">Unsubscribe</button>\
         </form></body></html>",
        omniroute_email::unsubscribe::PATH
    ))
    .into_response()
}

async fn one_click(
    State(state): State<Links>,
    Path(token): Path<String>,
    body: String,
) -> Response {
    let Some((tenant, message)) = state.tokens.verify(&token) else {
        return (StatusCode::NOT_FOUND, "unknown unsubscribe link").into_response();
    };
    if !body
        .split('&')
        .any(|p| p.trim() == "List-Unsubscribe=One-Click")
    {
        return (
            StatusCode::BAD_REQUEST,
            "expected List-Unsubscribe=One-Click (RFC 8058)",
        )
            .into_response();
    }
    let Ok(message_id) = Uuid::parse_str(&message) else {
        return (StatusCode::NOT_FOUND, "unknown unsubscribe link").into_response();
    };
    let evidence = format!("one-click unsubscribe (RFC 8058) from messages/{message_id}");
    match state
        .app
        .opt_out(
            &tenant,
            message_id,
            Channel::Email,
            Category::Marketing,
            "list-unsubscribe",
            evidence,
        )
        .await
    {
        Ok(true) => (StatusCode::OK, "unsubscribed").into_response(),
        Ok(false) => (StatusCode::NOT_FOUND, "unknown unsubscribe link").into_response(),
        Err(e) => crate::http::response("an unsubscribe", &e),
    }
}
