//! The application's errors: what a use case (or a face's check of its
//! input) answers when it refuses or fails, typed, so that each face maps
//! them in one place.

use omniroute_store::StoreError;

use crate::routing::RouteError;

/// One field at fault in a request, with why (a path like
/// `message.content.text.body`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The field's path in the request.
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

impl Violation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Violation {
        Violation {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Why a use case (or a face's check of its input) refused or failed. Each
/// face maps it in one place: gRPC in `api/error.rs`, HTTP in `http.rs`.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed; nothing was changed.
    #[error("invalid request")]
    Invalid(Vec<Violation>),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something that does not exist, found by lookup rather than by name.
    #[error("{0}")]
    NotFound(String),
    /// The request is valid but the system is not in a state to carry it out.
    #[error("{0}")]
    Precondition(String),
    /// Routing refused the message.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// A subscription asked to resume from a cursor this log never issued.
    #[error("the cursor is not a position of this event log")]
    Cursor(omniroute_domain::CursorCheck),
    /// A stream broke off (the event log could not be read): resume from
    /// the last position received.
    #[error("the event log is unavailable; resume from your last cursor")]
    StreamBroken,
    /// The server is answering as many calls as it takes at once
    /// (`grpc.max_concurrent_requests`); nothing was done.
    #[error("the server is busy: {0} calls in progress; try again shortly")]
    Overloaded(usize),
    /// The tenant's send quota is spent for now.
    #[error("the tenant's {quota} send quota of {limit} is spent; try again in {} s", .retry_after.as_secs().max(1))]
    QuotaExceeded {
        /// Which quota: `per_second` or `per_day`.
        quota: &'static str,
        limit: u64,
        /// When a send would fit again.
        retry_after: std::time::Duration,
    },
    /// The channel's provider refused or failed an operation (a read
    /// receipt, a media download).
    #[error("{what}: {}", .error.message())]
    Provider {
        /// What was asked of it.
        what: &'static str,
        /// How it failed.
        error: omniroute_channel::AdapterError,
    },
}

impl AppError {
    /// One invalid field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> AppError {
        AppError::Invalid(vec![Violation::new(field, description)])
    }
}

/// Collects field violations while a request is checked, so that a caller
/// learns about every bad field at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<Violation>);

impl Violations {
    /// Records a violation.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(Violation::new(field, description));
    }

    /// Records the error of a check, if any, and passes its value on.
    pub fn check<T, E: std::fmt::Display>(
        &mut self,
        field: impl Into<String>,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.add(field, e.to_string());
                None
            }
        }
    }

    /// Ok when nothing was recorded.
    pub fn finish(self) -> Result<(), AppError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(AppError::Invalid(self.0))
        }
    }
}
