//! Choice links of interactive messages sent by email, on the HTTP
//! listener: `GET /choices/email/{token}` shows the choice and a button (a
//! person following the link, or a scanner prefetching it: nothing is
//! recorded); the button's `POST` records the customer's choice as an
//! inbound `ChoiceReply` to the message, on the contact it was sent to,
//! once per choice (as a tapped WhatsApp button is recorded), and it ends
//! the fallbacks waiting on the customer. A token that does not verify, or
//! names a message that is not an interactive one sent by email (an erased
//! contact's, say), is 404 and changes nothing.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use omniroute_channel::content::Choice;

use super::Links;
use crate::app::choices::Picked;

/// The routes.
pub(super) fn routes() -> Router<Links> {
    Router::new().route("/choices/email/{token}", get(page).post(pick))
}

fn unknown() -> Response {
    (StatusCode::NOT_FOUND, "unknown choice link").into_response()
}

/// What a link names, when it verifies and names a choice of ours; the
/// answer otherwise.
async fn resolve(state: &Links, token: &str) -> Result<Picked, Response> {
    let Some((tenant, message, choice)) = state.tokens.verify_choice(token) else {
        return Err(unknown());
    };
    match state.app.choice_of(tenant, &message, &choice).await {
        Ok(Some(picked)) => Ok(picked),
        Ok(None) => Err(unknown()),
        Err(e) => Err(crate::http::response("a choice", &e)),
    }
}

async fn page(State(state): State<Links>, Path(token): Path<String>) -> Response {
    let picked = match resolve(&state, &token).await {
        Ok(picked) => picked,
        Err(response) => return response,
    };
    Html(format!(
        "<!doctype html><html><body><form method=\"post\" action=\"{}{token}\">\
         <p>Your answer: <strong>{}</strong></p><button type=\"submit\">Send this answer</button>\
         </form></body></html>",
        omniroute_email::unsubscribe::CHOICE_PATH,
        omniroute_email::transformers::escape(&picked.choice.title),
    ))
    .into_response()
}

async fn pick(State(state): State<Links>, Path(token): Path<String>) -> Response {
    let picked = match resolve(&state, &token).await {
        Ok(picked) => picked,
        Err(response) => return response,
    };
    match state.app.pick(&picked).await {
        Ok(true) => thanks(&picked.choice),
        Ok(false) => unknown(),
        Err(e) => crate::http::response("a choice", &e),
    }
}

fn thanks(choice: &Choice) -> Response {
    Html(format!(
        "<!doctype html><html><body><p>Thank you. Your answer: <strong>{}</strong></p></body></html>",
        omniroute_email::transformers::escape(&choice.title)
    ))
    .into_response()
}
