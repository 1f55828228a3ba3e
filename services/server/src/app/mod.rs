//! The application core: the use cases every face calls (gRPC, webhooks,
//! the SMTP listener, pages), taking and returning domain types. No proto
//! and no HTTP here: each face translates its own wire format and maps the
//! use cases' [`AppError`]s in one place.

mod error;

pub use error::{AppError, Violation, Violations};
