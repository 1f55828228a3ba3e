//! Inbound mail by SMTP: a listener a relay forwards customers' mail to
//! (Postfix `relay_transport`, an MX of the reply domain, a mail
//! provider's forwarding), so that a self-hosted company needs no HTTP
//! hook. The SMTP conversation is `mailin`'s state machine (greeting, EHLO
//! or HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT); this file does the I/O on
//! Tokio and decides the answers:
//!
//! - `RCPT TO` is taken only for our own addresses (a sender's from address,
//!   any address at a reply domain): `550` for anyone else, so the listener
//!   is never a relay.
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
//!
//! The listener speaks plain SMTP without AUTH: it is meant for the relay in
//! front of it, on the same host or a private network.

use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use mailin::{Action, Handler, Response, SessionBuilder};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

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
    /// The name in the greeting.
    pub hostname: String,
    /// The largest mail taken, in bytes (larger: `552`).
    pub max_message_bytes: usize,
    /// How long the client may stay silent (RFC 5321 suggests minutes).
    pub idle_timeout: Duration,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
}

/// The longest command line taken (RFC 5321: 512 octets; lenient).
const MAX_COMMAND_LINE: u64 = 4096;
/// The longest line of mail text taken before the mail counts as too big
/// (RFC 5322: 998 octets; some clients send longer).
const MAX_DATA_LINE: u64 = 1 << 20;

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
    let permits = Arc::new(tokio::sync::Semaphore::new(settings.max_connections.max(1)));
    let shared = Arc::new(Shared {
        builder,
        settings,
        config,
        inbox,
    });
    let mut sessions = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => permit.expect("never closed"),
        };
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
        let shared = Arc::clone(&shared);
        sessions.spawn(async move {
            let _permit = permit;
            if let Err(e) = session(&shared, stream, peer.ip()).await {
                tracing::debug!(error = %e, "smtp session ended");
            }
        });
        // Reap finished sessions as we go.
        while sessions.try_join_next().is_some() {}
    }
    // A session cut here has not been answered 250: its relay delivers the
    // mail again.
    sessions.shutdown().await;
}

struct Shared {
    builder: SessionBuilder,
    settings: ListenerConfig,
    config: EmailConfig,
    inbox: Arc<dyn Inbox>,
}

/// The envelope of the transaction in progress, which `mailin`'s handler
/// learns and the session loop reads.
#[derive(Debug, Default)]
struct Transaction {
    from: String,
    to: Vec<String>,
}

struct Decisions {
    config: EmailConfig,
    transaction: Arc<Mutex<Transaction>>,
}

impl Handler for Decisions {
    fn rcpt(&mut self, to: &str) -> Response {
        if crate::inbound::is_ours(&self.config, to) {
            mailin::response::OK
        } else {
            mailin::response::NO_MAILBOX
        }
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        let mut transaction = self.transaction.lock().expect("not poisoned");
        transaction.from = if from == NULL_PATH { "" } else { from }.to_owned();
        transaction.to = to.to_vec();
        mailin::response::OK
    }

    fn data_end(&mut self) -> Response {
        mailin::response::OK
    }
}

/// What the session loop hands `mailin` for the null reverse-path.
/// `mailin` 0.6 does not parse `MAIL FROM:<>` (RFC 5321 4.5.5), which every
/// bounce and auto-reply carries, so the loop hands it on as this stand-in
/// (no address has two `@`), and the envelope keeps the null path.
const NULL_PATH: &str = "@null@";

/// `line`, with a null reverse-path replaced by [`NULL_PATH`].
fn null_path(line: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    const MAIL: &[u8] = b"mail from:<>";
    match line.get(..MAIL.len()) {
        Some(head) if head.eq_ignore_ascii_case(MAIL) => {
            let mut fixed = b"MAIL FROM:<".to_vec();
            fixed.extend_from_slice(NULL_PATH.as_bytes());
            fixed.extend_from_slice(&line[MAIL.len() - 1..]);
            std::borrow::Cow::Owned(fixed)
        }
        _ => std::borrow::Cow::Borrowed(line),
    }
}

/// Reads one line of at most `limit` bytes into `line` (cleared first).
/// `Ok(false)` at the end of the stream.
async fn read_line(
    reader: &mut BufReader<tokio::net::tcp::ReadHalf<'_>>,
    line: &mut Vec<u8>,
    limit: u64,
    timeout: Duration,
) -> std::io::Result<bool> {
    line.clear();
    let read = tokio::time::timeout(timeout, (&mut *reader).take(limit).read_until(b'\n', line))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "client idle"))??;
    Ok(read > 0)
}

async fn reply(
    writer: &mut tokio::net::tcp::WriteHalf<'_>,
    response: &Response,
) -> std::io::Result<()> {
    if response.action == Action::NoReply {
        return Ok(());
    }
    writer.write_all(&response.buffer()?).await
}

async fn session(shared: &Shared, mut stream: TcpStream, peer: IpAddr) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let transaction = Arc::new(Mutex::new(Transaction::default()));
    let mut session = shared.builder.build(
        peer,
        Decisions {
            config: shared.config.clone(),
            transaction: Arc::clone(&transaction),
        },
    );
    let (read, mut writer) = stream.split();
    let mut reader = BufReader::new(read);
    let timeout = shared.settings.idle_timeout;
    reply(&mut writer, &session.greeting()).await?;
    let mut line = Vec::with_capacity(512);
    loop {
        match read_line(&mut reader, &mut line, MAX_COMMAND_LINE, timeout).await {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                let bye = Response::custom(421, "4.4.2 idle too long, closing".into());
                reply(&mut writer, &bye).await?;
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        if !line.ends_with(b"\n") {
            let refused = Response::custom(500, "5.5.2 line too long".into());
            reply(&mut writer, &refused).await?;
            return Ok(());
        }
        let response = session.process(&null_path(&line));
        reply(&mut writer, &response).await?;
        match response.action {
            Action::Close => return Ok(()),
            _ if response.code == 354 => {
                let verdict = receive(shared, &mut reader, &transaction).await?;
                // The final dot ends the transaction whatever the answer
                // (RFC 5321 4.1.1.4); `mailin` 0.6 would stay in DATA after
                // an error answer, so it is told OK and the verdict is ours
                // to write.
                let ended = session.process(b".\r\n");
                debug_assert_eq!(ended.code, 250);
                reply(&mut writer, &verdict).await?;
            }
            _ => {}
        }
    }
}

/// Reads the mail text up to the final dot and hands it to the inbox; the
/// answer to the dot.
async fn receive(
    shared: &Shared,
    reader: &mut BufReader<tokio::net::tcp::ReadHalf<'_>>,
    transaction: &Mutex<Transaction>,
) -> std::io::Result<Response> {
    let (from, to) = {
        let t = transaction.lock().expect("not poisoned");
        (t.from.clone(), t.to.clone())
    };
    let mut mail = Vec::with_capacity(8192);
    mail.extend_from_slice(format!("Return-Path: <{from}>\r\n").as_bytes());
    for recipient in &to {
        mail.extend_from_slice(format!("Delivered-To: {recipient}\r\n").as_bytes());
    }
    let limit = shared.settings.max_message_bytes + mail.len();
    let mut too_big = false;
    let mut line = Vec::with_capacity(1024);
    loop {
        if !read_line(
            reader,
            &mut line,
            MAX_DATA_LINE,
            shared.settings.idle_timeout,
        )
        .await?
        {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" || line == b".\n" {
            break;
        }
        if !line.ends_with(b"\n") {
            // A line longer than any mail has; the rest of it follows.
            too_big = true;
        }
        let text = line.strip_prefix(b".").unwrap_or(&line);
        if too_big || mail.len() + text.len() > limit {
            too_big = true;
            continue;
        }
        mail.extend_from_slice(text);
    }
    if too_big {
        return Ok(Response::custom(
            552,
            format!(
                "5.3.4 message larger than {} bytes",
                shared.settings.max_message_bytes
            ),
        ));
    }
    Ok(match shared.inbox.deliver(mail).await {
        Ok(()) => Response::custom(250, "2.0.0 recorded".into()),
        Err(Refusal::Malformed(why)) => Response::custom(554, format!("5.6.0 {why}")),
        Err(Refusal::Unavailable(why)) => Response::custom(451, format!("4.3.0 {why}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_null_reverse_path_is_handed_on_as_a_stand_in() {
        assert_eq!(
            &*null_path(b"MAIL FROM:<> BODY=8BITMIME\r\n"),
            b"MAIL FROM:<@null@> BODY=8BITMIME\r\n"
        );
        assert_eq!(&*null_path(b"mail from:<>\r\n"), b"MAIL FROM:<@null@>\r\n");
        assert_eq!(
            &*null_path(b"MAIL FROM:<a@b.example>\r\n"),
            b"MAIL FROM:<a@b.example>\r\n"
        );
    }
}
