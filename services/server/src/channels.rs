//! The channels this server reaches customers on: each channel's adapter
//! (its provider's, or the sandbox's), and which tenant each provider
//! account belongs to. Built once at start from the settings
//! (`providers::adapters`, `providers::accounts`) and shared read-only by
//! routing, the pipeline and the use cases.

use std::collections::HashMap;
use std::sync::Arc;

use omniroute_channel::{Adapter, Channel};

/// The adapters by channel.
pub type Adapters = Arc<HashMap<Channel, Arc<dyn Adapter>>>;

/// Which tenant a provider account (a WhatsApp phone number id, a mailbox,
/// a phone line) belongs to.
pub type Accounts = Arc<HashMap<(Channel, String), String>>;
