//! Inbound mail by SMTP: a listener a relay forwards customers' mail to
//! (Postfix `relay_transport`, an MX of the reply domain, a mail
//! provider's forwarding), so that a self-hosted company needs no HTTP
//! hook. The SMTP conversation is `mailin`'s state machine (greeting, EHLO
//! or HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT); this module does the I/O on
//! Tokio and decides the answers:
//!
//! - `RCPT TO` is taken only for our own addresses (a sender's from address,
//!   any address at a reply domain): `550` for anyone else, so the listener
//!   is never a relay; an address that is not `local@domain` (two `@`, say)
//!   is `553`.
//! - EHLO names the listener first (`250-<name>`, RFC 5321 4.1.1.1) and
//!   offers `SIZE <max>` (RFC 1870): a `MAIL FROM` declaring more is refused
//!   at once (`552 5.3.4`), before any of the mail is sent.
//! - Mail text ends only at `<CRLF>.<CRLF>`. A line ending in a bare LF is
//!   refused (`550 5.5.2`, as Postfix's `smtpd_forbid_bare_newline =
//!   reject`): the transaction is read on to its real end and nothing of it
//!   is recorded, so `<LF>.<LF>` can never end one mail and smuggle the rest
//!   in as commands of another (SMTP smuggling).
//! - After the final `.` the mail is handed to the [`Inbox`] and `250` is
//!   answered only once it is recorded; while the store cannot take it the
//!   answer is `451` (the relay keeps the mail and delivers again, and
//!   mail is recorded once per Message-ID, so a redelivery is harmless);
//!   something that is not an email is `554`, and one over the size limit
//!   `552`.
//! - As the final delivery agent, the listener adds `Return-Path` (the
//!   envelope sender) and a `Delivered-To` per accepted recipient (RFC
//!   9228), which tell the parser which mailbox the mail came to even when
//!   the customer was a Bcc, and which bounce address (VERP) a delivery
//!   status notification came back to.
//! - Idle clients cannot starve others: a client silent for
//!   `idle_timeout` is told `421` and disconnected, and when every one of
//!   `max_connections` is taken, the session that has waited longest for
//!   a command is closed the same way to make room (RFC 5321 lets a server
//!   close with `421`; a relay delivers again). Only when no session is idle
//!   is a new client told `421` at once.
//!
//! The listener speaks plain SMTP without AUTH: it is meant for the relay in
//! front of it, on the same host or a private network.

mod session;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use mailin::SessionBuilder;
use tokio::net::TcpListener;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::EmailConfig;

/// Why a mail was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// It is not an email (`554`: do not deliver it again).
    Malformed(String),
    /// It could not be recorded now (`451`: deliver it again later).
    Unavailable(String),
}

/// Where the listener hands each mail it received.
#[async_trait]
pub trait Inbox: Send + Sync + 'static {
    /// Records one raw mail (RFC 5322); `Ok` once it is durably recorded
    /// (or deliberately ignored).
    async fn deliver(&self, raw: Vec<u8>) -> Result<(), Refusal>;
}

/// How the listener behaves.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// The name in the greeting and the first line of the EHLO answer.
    pub hostname: String,
    /// The largest mail taken, in bytes (offered as `SIZE`; larger: `552`).
    pub max_message_bytes: usize,
    /// How long a client may stay silent before it is told `421` and
    /// disconnected.
    pub idle_timeout: Duration,
    /// Sessions served at once; when all are taken, the longest idle one
    /// makes room for a new client.
    pub max_connections: usize,
}

/// How long a new client waits for the session closed to make room for it.
const MAKING_ROOM: Duration = Duration::from_secs(2);

/// Serves SMTP on `listener` until `shutdown` completes. Mail for `config`'s
/// addresses goes to `inbox`.
pub async fn serve(
    listener: TcpListener,
    settings: ListenerConfig,
    config: EmailConfig,
    inbox: Arc<dyn Inbox>,
    shutdown: impl Future<Output = ()>,
) {
    // Neither AUTH nor STARTTLS is offered (see the module's words).
    let builder = SessionBuilder::new(settings.hostname.clone());
    let permits = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let shared = Arc::new(Shared {
        builder,
        settings,
        config,
        inbox,
        sessions: Sessions::default(),
    });
    let mut sessions = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "smtp accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = room(&permits, &shared.sessions) => permit,
        };
        let Some(permit) = permit else {
            // Every session is busy with a mail: this client comes back
            // later (a relay keeps its mail and retries).
            tracing::warn!("smtp listener full, a client was turned away");
            let _ = stream.try_write(b"421 4.3.2 too busy, try again later\r\n");
            continue;
        };
        let shared = Arc::clone(&shared);
        sessions.spawn(async move {
            let _permit = permit;
            let slot = shared.sessions.open();
            if let Err(e) = session::run(&shared, &slot, stream, peer.ip()).await {
                tracing::debug!(error = %e, "smtp session ended");
            }
            shared.sessions.close(&slot);
        });
        // Reap finished sessions as we go.
        while sessions.try_join_next().is_some() {}
    }
    // A session cut here has not been answered 250: its relay delivers the
    // mail again.
    sessions.shutdown().await;
}

/// A session's permit: at once while one is free, else after the longest
/// idle session was closed to make room; `None` when no session is idle.
async fn room(permits: &Arc<Semaphore>, sessions: &Sessions) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = Arc::clone(permits).try_acquire_owned() {
        return Some(permit);
    }
    if !sessions.evict_longest_idle() {
        return None;
    }
    tokio::time::timeout(MAKING_ROOM, Arc::clone(permits).acquire_owned())
        .await
        .ok()
        .map(|permit| permit.expect("never closed"))
}

struct Shared {
    builder: SessionBuilder,
    settings: ListenerConfig,
    config: EmailConfig,
    inbox: Arc<dyn Inbox>,
    sessions: Sessions,
}

/// One session as the accept loop sees it: since when it waits for a
/// command (`None` while it reads a mail or records it), and the signal
/// that closes it to make room.
#[derive(Debug, Default)]
struct Slot {
    id: u64,
    idle_since: Mutex<Option<Instant>>,
    evict: Notify,
}

impl Slot {
    /// Marks the session waiting for a command (`true`) or busy.
    fn idle(&self, idle: bool) {
        *self.idle_since.lock().expect("not poisoned") = idle.then(Instant::now);
    }
}

/// The open sessions.
#[derive(Debug, Default)]
struct Sessions {
    open: Mutex<(u64, HashMap<u64, Arc<Slot>>)>,
}

impl Sessions {
    fn open(&self) -> Arc<Slot> {
        let mut open = self.open.lock().expect("not poisoned");
        open.0 += 1;
        let slot = Arc::new(Slot {
            id: open.0,
            ..Slot::default()
        });
        open.1.insert(slot.id, Arc::clone(&slot));
        slot
    }

    fn close(&self, slot: &Slot) {
        self.open.lock().expect("not poisoned").1.remove(&slot.id);
    }

    /// Tells the session that has waited longest for a command to close;
    /// `false` when none waits.
    fn evict_longest_idle(&self) -> bool {
        let open = self.open.lock().expect("not poisoned");
        let longest = open
            .1
            .values()
            .filter_map(|slot| {
                let since = (*slot.idle_since.lock().expect("not poisoned"))?;
                Some((since, slot))
            })
            .min_by_key(|(since, _)| *since);
        match longest {
            Some((_, slot)) => {
                // Stored if the session is between two reads: it closes at
                // its next wait for a command.
                slot.evict.notify_one();
                true
            }
            None => false,
        }
    }
}
