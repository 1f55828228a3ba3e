//! The one place where errors become gRPC statuses: the application's
//! [`AppError`]s, whatever use case or check raised them.
//!
//! Bad input is INVALID_ARGUMENT with a google.rpc.BadRequest listing every
//! field at fault; conflicts name the resource that holds what was asked for;
//! internal errors are logged with their cause and answered with a generic
//! message, so that nothing about the database reaches a caller.

use omniroute_store::StoreError;

use crate::app::{AppError, Violation};
use crate::routing::{RouteError, reason_code};
use crate::telemetry::Throttle;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

impl From<AppError> for Status {
    fn from(error: AppError) -> Status {
        match error {
            AppError::Invalid(violations) => {
                let summary = violations
                    .iter()
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect::<Vec<_>>()
                    .join("; ");
                let violations: Vec<FieldViolation> = violations
                    .into_iter()
                    .map(|v| FieldViolation::new(v.field, v.description))
                    .collect();
                Status::with_error_details(
                    Code::InvalidArgument,
                    format!("invalid request: {summary}"),
                    ErrorDetails::with_bad_request(violations),
                )
            }
            AppError::NotFound(message) => Status::not_found(message),
            AppError::Precondition(message) => Status::failed_precondition(message),
            AppError::Store(e) => store_status(e),
            AppError::Route(e) => route_status(e),
            AppError::Provider { what, error } => provider_status(what, &error),
            AppError::Cursor(check) => cursor_status(check),
            AppError::QuotaExceeded {
                quota,
                limit,
                retry_after,
            } => {
                let message = format!(
                    "the tenant's {quota} send quota of {limit} is spent; try again in {} s",
                    retry_after.as_secs().max(1)
                );
                let mut details = ErrorDetails::with_retry_info(Some(retry_after));
                details.set_error_info(
                    "QUOTA_EXCEEDED",
                    "omniroute.v1",
                    std::collections::HashMap::from([
                        ("quota".to_owned(), quota.to_owned()),
                        ("limit".to_owned(), limit.to_string()),
                    ]),
                );
                Status::with_error_details(Code::ResourceExhausted, message, details)
            }
            AppError::StreamBroken => {
                Status::unavailable("the event log is unavailable; resume from your last cursor")
            }
            AppError::Overloaded(limit) => retry_status(
                Code::ResourceExhausted,
                &format!("the server is busy: {limit} calls in progress; try again shortly"),
                RETRY_OVERLOADED,
            ),
        }
    }
}

impl From<crate::auth::AuthError> for Status {
    fn from(refused: crate::auth::AuthError) -> Status {
        use crate::auth::AuthError;
        match refused {
            AuthError::Unauthenticated(why) => Status::unauthenticated(why),
            AuthError::Unavailable => Status::unavailable(refused.to_string()),
            AuthError::PermissionDenied(why) => Status::permission_denied(why),
        }
    }
}

/// A resume cursor this log never issued: resuming there would skip events
/// silently, so the subscriber is told what happened and how to go on.
fn cursor_status(check: omniroute_domain::CursorCheck) -> Status {
    use omniroute_domain::CursorCheck;
    let (message, reason, mut metadata) = match check {
        CursorCheck::PastHead { head } => (
            "after_cursor lies past the end of the event log (was the database restored or reset?); \
             subscribe from the beginning (events may repeat) or from now",
            "CURSOR_PAST_HEAD",
            std::collections::HashMap::from([("head_cursor".to_owned(), head.encode())]),
        ),
        CursorCheck::Issued | CursorCheck::Unknown => (
            "after_cursor names no event of this log (pruned by retention, or from another log or tenant); \
             subscribe from the beginning (events may repeat) or from now",
            "CURSOR_UNKNOWN",
            std::collections::HashMap::new(),
        ),
    };
    metadata.insert(
        "resume".to_owned(),
        "from_beginning=true, or no after_cursor for from now".to_owned(),
    );
    let mut details = ErrorDetails::with_error_info(reason, "omniroute.v1", metadata);
    details.add_bad_request_violation("after_cursor", message);
    Status::with_error_details(Code::OutOfRange, message, details)
}

/// Routing refusals: bad content is INVALID_ARGUMENT; everything else is
/// FAILED_PRECONDITION naming what is missing, one violation per channel.
fn route_status(error: RouteError) -> Status {
    let message = error.to_string();
    match error {
        RouteError::Invalid(violations) => AppError::Invalid(
            violations
                .into_iter()
                .map(|(field, description)| Violation::new(field, description))
                .collect(),
        )
        .into(),
        RouteError::Erased(id) => Status::with_error_details(
            Code::FailedPrecondition,
            message,
            ErrorDetails::with_precondition_failure_violation(
                "CONTACT_ERASED",
                format!("contacts/{id}"),
                "an erased contact cannot be messaged",
            ),
        ),
        RouteError::OptedOut(category) => Status::with_error_details(
            Code::FailedPrecondition,
            message,
            ErrorDetails::with_precondition_failure_violation(
                "OPTED_OUT",
                format!("categories/{category}"),
                "the customer opted out of this category on every channel",
            ),
        ),
        RouteError::Refused(skip) => Status::with_error_details(
            Code::FailedPrecondition,
            message,
            ErrorDetails::with_precondition_failure_violation(
                reason_code(skip.reason),
                format!("channels/{}", skip.channel),
                skip.detail,
            ),
        ),
        RouteError::NoOpening => Status::with_error_details(
            Code::FailedPrecondition,
            message,
            ErrorDetails::with_precondition_failure_violation(
                "NO_OPENING",
                "callback.latest_time",
                "no time inside the business hours and outside the customer's quiet hours comes before it",
            ),
        ),
        RouteError::Unreachable(skipped) => {
            let violations: Vec<tonic_types::PreconditionViolation> = skipped
                .into_iter()
                .map(|s| {
                    tonic_types::PreconditionViolation::new(
                        reason_code(s.reason),
                        format!("channels/{}", s.channel),
                        s.detail,
                    )
                })
                .collect();
            Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_precondition_failure(violations),
            )
        }
    }
}

/// A provider's answer to an operation asked of it directly: what the
/// channel cannot do, or refused for good, is FAILED_PRECONDITION;
/// misconfiguration too (retrying will not help until an operator acts);
/// transient failures are UNAVAILABLE.
fn provider_status(what: &str, error: &omniroute_channel::AdapterError) -> Status {
    use omniroute_channel::ErrorClass;
    let message = format!("{what}: {}", error.message());
    match error.class() {
        ErrorClass::Unsupported
        | ErrorClass::Permanent
        | ErrorClass::Configuration
        | ErrorClass::WindowClosed
        | ErrorClass::OptedOut => Status::failed_precondition(message),
        ErrorClass::Transient | ErrorClass::RateLimited => Status::unavailable(message),
    }
}

fn store_status(error: StoreError) -> Status {
    match error {
        StoreError::NotFound { resource, id } => {
            Status::not_found(format!("{resource}/{id} not found"))
        }
        StoreError::IdentityTaken { channel, owner } => Status::with_error_details(
            Code::FailedPrecondition,
            format!("the {channel} identity is already linked to contacts/{owner}"),
            ErrorDetails::with_precondition_failure_violation(
                "IDENTITY_LINKED",
                format!("contacts/{owner}"),
                "unlink it there or merge the two contacts",
            ),
        ),
        StoreError::ExternalRefTaken { owner } => Status::with_error_details(
            Code::AlreadyExists,
            format!("the external reference is already used by contacts/{owner}"),
            ErrorDetails::with_resource_info(
                "omniroute.v1.Contact",
                format!("contacts/{owner}"),
                "",
                "external_ref is unique per tenant",
            ),
        ),
        StoreError::Erased(id) => Status::with_error_details(
            Code::FailedPrecondition,
            format!("contacts/{id} is erased"),
            ErrorDetails::with_precondition_failure_violation(
                "CONTACT_ERASED",
                format!("contacts/{id}"),
                "an erased contact cannot change",
            ),
        ),
        StoreError::InvalidMerge(reason) => {
            Status::failed_precondition(format!("cannot merge: {reason}"))
        }
        StoreError::IdentityNotLinked(id) => {
            Status::not_found(format!("the identity is not linked to contacts/{id}"))
        }
        StoreError::IdempotencyConflict { existing } => Status::with_error_details(
            Code::AlreadyExists,
            format!(
                "the idempotency key was used for a different request (messages/{existing}); use a new key"
            ),
            ErrorDetails::with_resource_info(
                "omniroute.v1.Message",
                format!("messages/{existing}"),
                "",
                "an idempotency key names one request",
            ),
        ),
        StoreError::TenantExists(id) => {
            Status::already_exists(format!("tenants/{id} already exists"))
        }
        StoreError::ApiKeyPrefixTaken(_) => {
            Status::already_exists("an API key with this prefix exists already")
        }
        e @ StoreError::Stale { .. } => {
            Status::aborted(format!("{e}; read it again and retry with its etag"))
        }
        StoreError::ContactChanged(id) => Status::aborted(format!(
            "contacts/{id} kept changing while the message was routed; send it again"
        )),
        e @ (StoreError::NotCancelable { .. }
        | StoreError::Sending(_)
        | StoreError::NotRetryable { .. }) => Status::failed_precondition(e.to_string()),
        StoreError::Unavailable(cause) => {
            if let Some(suppressed) = STORE_DOWN.allow() {
                tracing::warn!(error = %omniroute_store::error_chain(cause.as_ref()), suppressed, "store unavailable; answering UNAVAILABLE");
            }
            retry_status(
                Code::Unavailable,
                "the store is unavailable; nothing was changed, retry with back-off",
                RETRY_UNAVAILABLE,
            )
        }
        StoreError::Conflict(cause) => {
            tracing::debug!(error = %omniroute_store::error_chain(cause.as_ref()), "transaction conflict; answering ABORTED");
            retry_status(
                Code::Aborted,
                "a concurrent change conflicted; nothing was changed, retry",
                RETRY_CONFLICT,
            )
        }
        StoreError::Backend(cause) => {
            tracing::error!(error = %omniroute_store::error_chain(cause.as_ref()), "storage backend failed");
            Status::internal("internal error")
        }
    }
}

/// The delay suggested to callers when the store is down, and after a
/// conflict.
const RETRY_UNAVAILABLE: std::time::Duration = std::time::Duration::from_secs(1);
const RETRY_CONFLICT: std::time::Duration = std::time::Duration::from_millis(50);
const RETRY_OVERLOADED: std::time::Duration = std::time::Duration::from_millis(500);

/// A status with google.rpc.RetryInfo: the call changed nothing and may be
/// retried after the delay.
fn retry_status(code: Code, message: &str, delay: std::time::Duration) -> Status {
    Status::with_error_details(code, message, ErrorDetails::with_retry_info(Some(delay)))
}

/// While the store is down every call fails the same way: one log line per
/// interval, with the count of those left out.
static STORE_DOWN: Throttle = Throttle::new(5_000);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_store_is_unavailable_with_retry_info() {
        let status: Status = AppError::Store(StoreError::Unavailable(Box::new(
            std::io::Error::other("connection refused"),
        )))
        .into();
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.get_details_retry_info().is_some());
        let status: Status = AppError::Store(StoreError::Conflict(Box::new(
            std::io::Error::other("deadlock detected"),
        )))
        .into();
        assert_eq!(status.code(), Code::Aborted);
        assert!(status.get_details_retry_info().is_some());
    }
}
