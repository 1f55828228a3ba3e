//! One SMTP session: `mailin`'s state machine fed line by line, with the
//! answers `mailin` 0.6 does not give itself: the EHLO answer (our name
//! first, `SIZE`), `MAIL FROM` parameters (`SIZE=` checked, the null
//! reverse-path), recipients' syntax, and the mail text read up to its
//! `<CRLF>.<CRLF>` with bare line feeds refused.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailin::{Action, Handler, Response};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};

use super::{Refusal, Shared, Slot};
use crate::config::EmailConfig;

/// The longest command line taken (RFC 5321: 512 octets; lenient).
const MAX_COMMAND_LINE: u64 = 4096;
/// The longest line of mail text taken before the mail counts as too big
/// (RFC 5322: 998 octets; some clients send longer).
const MAX_DATA_LINE: u64 = 1 << 20;

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
        if !is_mailbox(to) {
            Response::custom(553, "5.1.3 not a mailbox address (local@domain)".into())
        } else if crate::inbound::is_ours(&self.config, to) {
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

/// Whether `address` is `local@domain`: one `@`, something on each side.
fn is_mailbox(address: &str) -> bool {
    matches!(address.split_once('@'), Some((local, domain))
        if !local.is_empty() && !domain.is_empty() && !domain.contains('@'))
}

/// What the session loop hands `mailin` for the null reverse-path.
/// `mailin` 0.6 does not parse `MAIL FROM:<>` (RFC 5321 4.5.5), which every
/// bounce and auto-reply carries, so the loop hands it on as this stand-in
/// (no address has two `@`), and the envelope keeps the null path.
const NULL_PATH: &str = "@null@";

/// A command line as the session loop reads it, before `mailin` does.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    /// `EHLO`: `mailin` moves on, the answer is ours.
    Ehlo,
    /// `MAIL FROM` within the size limit, as the line `mailin` parses:
    /// the path (or [`NULL_PATH`]) and `BODY=` only.
    Mail(Vec<u8>),
    /// An answer of ours; `mailin` never sees the line.
    Refused(u16, String),
    /// Anything else, for `mailin` as it came.
    Other,
}

/// Reads a command line: EHLO and MAIL get our checks.
fn command(line: &[u8], max_bytes: usize) -> Command {
    let verb = |v: &[u8]| line.len() >= v.len() && line[..v.len()].eq_ignore_ascii_case(v);
    if verb(b"ehlo ") {
        return Command::Ehlo;
    }
    if !verb(b"mail from:") {
        return Command::Other;
    }
    let Ok(text) = std::str::from_utf8(line) else {
        return Command::Other;
    };
    let rest = text["mail from:".len()..].trim_end_matches(['\r', '\n']);
    let Some((path, parameters)) = rest
        .trim_start()
        .strip_prefix('<')
        .and_then(|r| r.split_once('>'))
    else {
        return Command::Other;
    };
    let path = if path.is_empty() { NULL_PATH } else { path };
    let mut body = "";
    for parameter in parameters.split_whitespace() {
        let (keyword, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        if keyword.eq_ignore_ascii_case("size") {
            match value.parse::<u64>() {
                Ok(size) if size > max_bytes as u64 => {
                    return Command::Refused(
                        552,
                        format!("5.3.4 message size exceeds the limit of {max_bytes} bytes"),
                    );
                }
                Ok(_) => {}
                Err(_) => return Command::Refused(501, "5.5.4 bad SIZE value".into()),
            }
        } else if keyword.eq_ignore_ascii_case("body") {
            body = value;
        } else {
            return Command::Refused(
                555,
                format!("5.5.4 MAIL parameter {keyword} not recognized"),
            );
        }
    }
    let mut fixed = format!("MAIL FROM:<{path}>");
    if !body.is_empty() {
        fixed.push_str(" BODY=");
        fixed.push_str(body);
    }
    fixed.push_str("\r\n");
    Command::Mail(fixed.into_bytes())
}

/// The EHLO answer: our name first (RFC 5321 4.1.1.1), then the extensions.
fn ehlo_answer(shared: &Shared) -> Vec<u8> {
    format!(
        "250-{}\r\n250-8BITMIME\r\n250 SIZE {}\r\n",
        shared.settings.hostname, shared.settings.max_message_bytes
    )
    .into_bytes()
}

/// How a wait for the client ended.
enum Read {
    /// A line (or the first `limit` bytes of one).
    Line,
    /// The end of the stream.
    Closed,
    /// Nothing for the idle timeout.
    Idle,
    /// Closed to make room for a new client.
    Evicted,
}

/// Reads one line of at most `limit` bytes into `line` (cleared first).
/// With `slot`, the session counts as idle meanwhile and may be evicted.
async fn read_line(
    reader: &mut BufReader<ReadHalf<'_>>,
    line: &mut Vec<u8>,
    limit: u64,
    timeout: Duration,
    slot: Option<&Slot>,
) -> std::io::Result<Read> {
    line.clear();
    let mut limited = (&mut *reader).take(limit);
    let read = tokio::time::timeout(timeout, limited.read_until(b'\n', line));
    let outcome = |read: Result<std::io::Result<usize>, _>| match read {
        Err(tokio::time::error::Elapsed { .. }) => Ok(Read::Idle),
        Ok(Err(e)) => Err(e),
        Ok(Ok(0)) => Ok(Read::Closed),
        Ok(Ok(_)) => Ok(Read::Line),
    };
    let Some(slot) = slot else {
        return outcome(read.await);
    };
    slot.idle(true);
    let read = tokio::select! {
        read = read => outcome(read),
        () = slot.evict.notified() => Ok(Read::Evicted),
    };
    slot.idle(false);
    read
}

async fn reply(writer: &mut WriteHalf<'_>, response: &Response) -> std::io::Result<()> {
    if response.action == Action::NoReply {
        return Ok(());
    }
    writer.write_all(&response.buffer()?).await
}

/// Serves one client until it quits, goes idle, is evicted or breaks off.
pub(super) async fn run(
    shared: &Shared,
    slot: &Slot,
    mut stream: TcpStream,
    peer: IpAddr,
) -> std::io::Result<()> {
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
        match read_line(
            &mut reader,
            &mut line,
            MAX_COMMAND_LINE,
            timeout,
            Some(slot),
        )
        .await?
        {
            Read::Line => {}
            Read::Closed => return Ok(()),
            Read::Idle => {
                let bye = Response::custom(421, "4.4.2 idle too long, closing".into());
                return reply(&mut writer, &bye).await;
            }
            Read::Evicted => {
                let bye = Response::custom(421, "4.3.2 too busy, closing idle session".into());
                return reply(&mut writer, &bye).await;
            }
        }
        if !line.ends_with(b"\n") {
            let refused = Response::custom(500, "5.5.2 line too long".into());
            return reply(&mut writer, &refused).await;
        }
        let response = match command(&line, shared.settings.max_message_bytes) {
            Command::Ehlo => {
                let response = session.process(&line);
                if response.code == 250 {
                    writer.write_all(&ehlo_answer(shared)).await?;
                    continue;
                }
                response
            }
            Command::Mail(fixed) => session.process(&fixed),
            Command::Refused(code, text) => Response::custom(code, text),
            Command::Other => session.process(&line),
        };
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

/// Reads the mail text up to the final `<CRLF>.<CRLF>` and hands it to the
/// inbox; the answer to the dot. A line ending in a bare LF refuses the
/// whole mail (it is read on to its real end, so that nothing after a
/// `<LF>.<LF>` is taken for commands).
async fn receive(
    shared: &Shared,
    reader: &mut BufReader<ReadHalf<'_>>,
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
    let mut bare_lf = false;
    let mut line = Vec::with_capacity(1024);
    loop {
        match read_line(
            reader,
            &mut line,
            MAX_DATA_LINE,
            shared.settings.idle_timeout,
            None,
        )
        .await?
        {
            Read::Line => {}
            Read::Idle => return Err(std::io::ErrorKind::TimedOut.into()),
            Read::Closed | Read::Evicted => return Err(std::io::ErrorKind::UnexpectedEof.into()),
        }
        if line == b".\r\n" {
            break;
        }
        if !line.ends_with(b"\n") {
            // A line longer than any mail has; the rest of it follows.
            too_big = true;
        } else if !line.ends_with(b"\r\n") {
            bare_lf = true;
        }
        if bare_lf || too_big {
            continue;
        }
        let text = line.strip_prefix(b".").unwrap_or(&line);
        if mail.len() + text.len() > limit {
            too_big = true;
            continue;
        }
        mail.extend_from_slice(text);
    }
    if bare_lf {
        tracing::warn!("smtp mail with a bare line feed refused");
        return Ok(Response::custom(
            550,
            "5.5.2 bare <LF> received: lines must end with <CR><LF> (RFC 5321 2.3.8); nothing was recorded".into(),
        ));
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
    fn mail_from_is_handed_on_without_size_and_with_the_null_path_stand_in() {
        let max = 1000;
        assert_eq!(
            command(b"MAIL FROM:<> BODY=8BITMIME\r\n", max),
            Command::Mail(b"MAIL FROM:<@null@> BODY=8BITMIME\r\n".to_vec())
        );
        assert_eq!(
            command(b"mail from:<a@b.example> SIZE=999\r\n", max),
            Command::Mail(b"MAIL FROM:<a@b.example>\r\n".to_vec())
        );
        assert_eq!(
            command(b"MAIL FROM:<a@b.example> SIZE=1001 BODY=7BIT\r\n", max),
            Command::Refused(
                552,
                "5.3.4 message size exceeds the limit of 1000 bytes".into()
            )
        );
        assert!(matches!(
            command(b"MAIL FROM:<a@b.example> RET=HDRS\r\n", max),
            Command::Refused(555, _)
        ));
        assert_eq!(command(b"EHLO relay.example\r\n", max), Command::Ehlo);
        assert_eq!(command(b"RCPT TO:<a@b>\r\n", max), Command::Other);
    }

    #[test]
    fn a_mailbox_has_one_at_with_something_on_each_side() {
        assert!(is_mailbox("anna@example.com"));
        for bad in [
            "anna@evil@reply.acme.example",
            "anna",
            "@example.com",
            "anna@",
        ] {
            assert!(!is_mailbox(bad), "{bad}");
        }
    }
}
