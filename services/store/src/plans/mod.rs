//! The multi-statement operations, planned once for both backends.
//!
//! A plan is a pure, synchronous function over the domain's records: it
//! takes what a backend read inside its transaction and answers what to
//! write (which rows to change, insert or delete, which events to append,
//! what the record becomes). Every decision lives here; a backend keeps
//! only its statements: it reads, asks the plan, and executes the plan's
//! writes (PostgreSQL in a few multi-row statements, SQLite on its single
//! writer), so the two cannot drift.
//!
//! - [`merge`]: which contacts retire, how profiles, preferences and
//!   windows combine, the `ContactMerged` event;
//! - [`erasure`]: which jobs go, which messages are canceled, what every
//!   message and event keeps, the tombstone and its counts;
//! - [`inbound`]: the contact a customer's message is recorded for (found
//!   or created), the windows it opens, the watches it wakes, the message
//!   and its events.

pub mod erasure;
pub mod inbound;
pub mod merge;

#[cfg(test)]
mod tests;
