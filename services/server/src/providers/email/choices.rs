//! Choice links of interactive messages sent by email, on the HTTP
//! listener: `GET /choices/email/{token}` shows the choice and a button (a
//! person following the link, or a scanner prefetching it: nothing is
//! recorded); the button's `POST` records the customer's choice as an
//! inbound `ChoiceReply` to the message, on the contact it was sent to,
//! once per choice (as a tapped WhatsApp button is recorded), and it ends
//! the fallbacks waiting on the customer. A token that does not verify, or
//! names a message that is not an interactive one sent by email (an erased
//! contact's, say), is 404 and changes nothing.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use omniroute_channel::content::Choice;
use omniroute_channel::{Address, Channel, Content, PhoneRegion};
use omniroute_domain::{NewInbound, Received};
use omniroute_email::Unsubscribe;
use omniroute_store::{Store, StoreError};
use uuid::Uuid;

use super::unsubscribe::failed;
use crate::pipeline::dispatcher::Adapters;

#[derive(Debug, Clone)]
struct Choices {
    store: Arc<dyn Store>,
    adapters: Adapters,
    tokens: Unsubscribe,
}

/// The routes, when links are configured.
pub fn router(store: Arc<dyn Store>, adapters: Adapters, tokens: Option<Unsubscribe>) -> Router {
    let Some(tokens) = tokens else {
        return Router::new();
    };
    Router::new()
        .route("/choices/email/{token}", get(page).post(pick))
        .with_state(Choices {
            store,
            adapters,
            tokens,
        })
}

/// What a verified link names: the tenant, our message, the choice, and
/// the email attempt that carried it (the address and its Message-ID).
struct Picked {
    tenant: String,
    message: omniroute_domain::Message,
    choice: Choice,
    address: String,
    provider_message_id: String,
}

fn unknown() -> Response {
    (StatusCode::NOT_FOUND, "unknown choice link").into_response()
}

async fn resolve(state: &Choices, token: &str) -> Result<Option<Picked>, StoreError> {
    let Some((tenant, message, choice)) = state.tokens.verify_choice(token) else {
        return Ok(None);
    };
    let Ok(id) = Uuid::parse_str(&message) else {
        return Ok(None);
    };
    let message = match state.store.get_message(&tenant, id).await {
        Ok(m) => m,
        Err(StoreError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Content::Interactive(interactive) = &message.content else {
        return Ok(None);
    };
    let Some(choice) = interactive
        .choices
        .all()
        .into_iter()
        .find(|c| c.id == choice)
        .cloned()
    else {
        return Ok(None);
    };
    let Some(attempt) = message
        .attempts
        .iter()
        .rev()
        .find(|a| a.channel == Channel::Email && !a.provider_message_id.is_empty())
    else {
        return Ok(None);
    };
    Ok(Some(Picked {
        address: attempt.address.clone(),
        provider_message_id: attempt.provider_message_id.clone(),
        tenant,
        message,
        choice,
    }))
}

async fn page(State(state): State<Choices>, Path(token): Path<String>) -> Response {
    let picked = match resolve(&state, &token).await {
        Ok(Some(p)) => p,
        Ok(None) => return unknown(),
        Err(e) => return failed("a choice", &e),
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

async fn pick(State(state): State<Choices>, Path(token): Path<String>) -> Response {
    let picked = match resolve(&state, &token).await {
        Ok(Some(p)) => p,
        Ok(None) => return unknown(),
        Err(e) => return failed("a choice", &e),
    };
    let Ok(from) = Address::parse(Channel::Email, &picked.address, PhoneRegion::default()) else {
        return unknown();
    };
    let line = state
        .adapters
        .get(&Channel::Email)
        .map(|a| a.sending_line(&picked.tenant).to_owned())
        .unwrap_or_default();
    let inbound = NewInbound {
        channel: Channel::Email,
        from,
        profile_name: None,
        provider_user_id: None,
        // One answer per choice of a message: a second click is the same.
        provider_message_id: format!("choice:{}:{}", picked.message.id, picked.choice.id),
        time: SystemTime::now(),
        content: Content::ChoiceReply(picked.choice.clone()),
        reply_to: Some(picked.provider_message_id),
        line,
        opens_window: None,
        also_opens: None,
        automatic: false,
        media_bytes: None,
    };
    match state.store.record_inbound(&picked.tenant, inbound).await {
        Ok(Received::New(m)) => {
            tracing::info!(message_id = %picked.message.id, reply = %m.id, "choice picked by email link");
            thanks(&picked.choice)
        }
        Ok(Received::Duplicate) => thanks(&picked.choice),
        Err(e) => failed("a choice", &e),
    }
}

fn thanks(choice: &Choice) -> Response {
    Html(format!(
        "<!doctype html><html><body><p>Thank you. Your answer: <strong>{}</strong></p></body></html>",
        omniroute_email::transformers::escape(&choice.title)
    ))
    .into_response()
}
