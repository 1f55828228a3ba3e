//! The domain of omniroute: the records the product is about and the rules
//! on them, with no I/O, no SQL and no proto.
//!
//! - [`model`]: contacts, identities, profiles, preferences, the consent
//!   ledger and its derived state, service windows, time in microseconds.
//! - [`messages`]: messages, their statuses and the status machine
//!   ([`MessageStatus::may_become`], [`apply_status`]), inbound messages.
//! - [`routes`]: routes and plans (the decision routing stores with a
//!   message), re-exported by [`messages`].
//! - [`events`]: the event log's records and the events a change writes.
//! - [`jobs`]: dispatch jobs and what an attempt's outcome or a provider's
//!   report does to a message and its job ([`apply_completion`],
//!   [`apply_report`).
//! - [`callbacks`]: a callback (a voice message asking an agent to call the
//!   customer back), its state derived from its message and its call.
//! - [`endpoints`] and [`deliveries`]: outbound webhook endpoints, their
//!   cursors over the event log and the rules of a round of deliveries.
//! - [`conversations`]: a conversation's lifecycle: its states, the
//!   moves between them and the timers each state keeps (used by path:
//!   its words are generic).
//! - [`policy`]: a tenant's routing rules (the settings' defaults).
//! - [`auth`]: tenants and API keys.
//!
//! The store (`omniroute-store`) persists these records and applies these
//! rules inside its transactions; routing and the server speak them. Both
//! stores apply the same rules, written once here.

pub mod auth;
pub mod callbacks;
pub mod conversations;
pub mod deliveries;
pub mod endpoints;
pub mod events;
pub mod jobs;
pub mod messages;
pub mod model;
pub mod policy;
pub mod routes;

pub use auth::*;
pub use callbacks::*;
pub use deliveries::*;
pub use endpoints::*;
pub use events::*;
pub use jobs::*;
pub use messages::*;
pub use model::*;
pub use policy::*;
