//! A fake mail relay for tests: a real SMTP conversation over TCP on a
//! local port (RFC 5321: greeting, EHLO/HELO, MAIL FROM, RCPT TO, DATA with
//! dot-stuffing, RSET, NOOP, QUIT), recording every message it accepts, and
//! answering scripted replies to the next transactions (451 greylisting,
//! 550 no such user, ...). Optionally it offers DSN (RFC 3461): it then
//! takes `RET`/`ENVID` and `NOTIFY`/`ORCPT` (refused with 555 otherwise, as
//! a relay without the extension does) and writes the success report a
//! receiving MTA sends for a mail delivered ([`Received::delivery_report`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A message the relay accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The envelope sender (MAIL FROM).
    pub mail_from: String,
    /// The envelope recipients (RCPT TO).
    pub rcpt_to: Vec<String>,
    /// The message as transmitted (dot-stuffing undone, CRLF line ends).
    pub data: String,
    /// The MAIL FROM parameters (`RET=HDRS`, `ENVID=…`, `BODY=…`).
    pub mail_parameters: Vec<String>,
    /// The RCPT TO parameters, per recipient (`NOTIFY=…`, `ORCPT=…`).
    pub rcpt_parameters: Vec<Vec<String>>,
}

impl Received {
    /// The value of MAIL FROM parameter `keyword`.
    pub fn mail_parameter(&self, keyword: &str) -> Option<&str> {
        parameter(&self.mail_parameters, keyword)
    }

    /// The report a receiving MTA sends to the envelope sender when this
    /// mail reached its first recipient (`action` `delivered`, or `relayed`
    /// to a server without DSN), as RFC 3464 writes it: the envelope id,
    /// the original recipient, the status, and the headers only (`RET=HDRS`)
    /// or the whole mail. `None` unless the sender asked for it
    /// (`NOTIFY=SUCCESS`).
    pub fn delivery_report(&self, action: &str) -> Option<String> {
        let rcpt = self.rcpt_parameters.first()?;
        let notify = parameter(rcpt, "NOTIFY")?;
        if !notify.split(',').any(|n| n.eq_ignore_ascii_case("SUCCESS")) {
            return None;
        }
        let to = self.rcpt_to.first()?;
        let original_recipient = parameter(rcpt, "ORCPT")
            .map(|o| format!("Original-Recipient: {}\r\n", o.replacen(';', "; ", 1)))
            .unwrap_or_default();
        let envelope_id = self
            .mail_parameter("ENVID")
            .map(|id| format!("Original-Envelope-Id: {id}\r\n"))
            .unwrap_or_default();
        let headers_only = self
            .mail_parameter("RET")
            .is_some_and(|r| r.eq_ignore_ascii_case("HDRS"));
        let original = if headers_only {
            let head = self.data.split("\r\n\r\n").next().unwrap_or("");
            format!("Content-Type: text/rfc822-headers\r\n\r\n{head}\r\n")
        } else {
            format!("Content-Type: message/rfc822\r\n\r\n{}", self.data)
        };
        Some(format!(
            "From: Mail Delivery System <MAILER-DAEMON@fake.relay.test>\r\n\
To: {from}\r\n\
Subject: Successful Mail Delivery Report\r\n\
Message-ID: <dsn-{action}-{id}@fake.relay.test>\r\n\
Auto-Submitted: auto-replied\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"dsn1\"\r\n\
\r\n\
--dsn1\r\n\
Content-Type: text/plain\r\n\
\r\n\
Your message was {action}.\r\n\
--dsn1\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; fake.relay.test\r\n\
{envelope_id}\
\r\n\
Final-Recipient: rfc822; {to}\r\n\
{original_recipient}\
Action: {action}\r\n\
Status: 2.0.0\r\n\
Diagnostic-Code: smtp; 250 2.0.0 Ok: queued\r\n\
\r\n\
--dsn1\r\n\
{original}\
--dsn1--\r\n",
            from = self.mail_from,
            id = self.mail_parameter("ENVID").unwrap_or("none"),
        ))
    }
}

/// The value of `keyword` among `KEYWORD=value` parameters.
fn parameter<'p>(parameters: &'p [String], keyword: &str) -> Option<&'p str> {
    parameters.iter().find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.eq_ignore_ascii_case(keyword).then_some(v)
    })
}

impl Received {
    /// The value of the first header `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(current) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    current.push(' ');
                    current.push_str(line.trim());
                    continue;
                }
                return value;
            }
            if let Some((n, v)) = line.split_once(':')
                && n.eq_ignore_ascii_case(name)
            {
                value = Some(v.trim().to_owned());
            }
        }
        value
    }
}

impl Received {
    /// The decoded body of the first part whose Content-Type is `mime`
    /// (`text/plain`, `text/html`), as a mail client reads it (mail-parser
    /// undoes the transfer encoding and the charset).
    pub fn part(&self, mime: &str) -> Option<String> {
        use mail_parser::MimeHeaders;
        let (ctype, subtype) = mime.split_once('/')?;
        let mail = mail_parser::MessageParser::default().parse(self.data.as_bytes())?;
        mail.parts
            .iter()
            .find(|p| {
                p.content_type().is_some_and(|ct| {
                    ct.ctype().eq_ignore_ascii_case(ctype)
                        && ct
                            .subtype()
                            .is_some_and(|s| s.eq_ignore_ascii_case(subtype))
                })
            })
            .and_then(|p| p.text_contents())
            .map(|t| t.trim_end_matches("\r\n").to_owned())
    }
}

impl Received {
    /// The attachment named `filename`: its MIME type and decoded bytes.
    pub fn attachment(&self, filename: &str) -> Option<(String, Vec<u8>)> {
        use mail_parser::MimeHeaders;
        let mail = mail_parser::MessageParser::default().parse(self.data.as_bytes())?;
        mail.attachments()
            .find(|p| p.attachment_name() == Some(filename))
            .map(|p| {
                let mime = p
                    .content_type()
                    .map(|ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")))
                    .unwrap_or_default();
                (mime, p.contents().to_vec())
            })
    }
}

/// A file server for media URLs: HTTP/1.1 on 127.0.0.1, serving the files
/// it was given by path (`Content-Type`, `Content-Length`), 404 for others.
#[derive(Debug)]
pub struct FakeFiles {
    port: u16,
    server: JoinHandle<()>,
}

impl Drop for FakeFiles {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeFiles {
    /// Serves `files` (path, MIME type, bytes).
    ///
    /// # Panics
    /// When no local port can be bound.
    pub async fn start(files: Vec<(&str, &str, Vec<u8>)>) -> FakeFiles {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let port = listener.local_addr().expect("bound").port();
        let files: Arc<Vec<(String, String, Vec<u8>)>> = Arc::new(
            files
                .into_iter()
                .map(|(p, m, b)| (p.to_owned(), m.to_owned(), b))
                .collect(),
        );
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let files = Arc::clone(&files);
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let Ok(Some(request)) = lines.next_line().await else {
                        return;
                    };
                    while let Ok(Some(line)) = lines.next_line().await {
                        if line.is_empty() {
                            break;
                        }
                    }
                    let path = request.split(' ').nth(1).unwrap_or("");
                    let head = |status: &str, mime: &str, len: usize| {
                        format!(
                            "HTTP/1.1 {status}\r\nContent-Type: {mime}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
                        )
                    };
                    match files.iter().find(|(p, _, _)| p == path) {
                        Some((_, mime, bytes)) => {
                            let _ = write
                                .write_all(head("200 OK", mime, bytes.len()).as_bytes())
                                .await;
                            let _ = write.write_all(bytes).await;
                        }
                        None => {
                            let _ = write
                                .write_all(head("404 Not Found", "text/plain", 9).as_bytes())
                                .await;
                            let _ = write.write_all(b"not found").await;
                        }
                    }
                    let _ = write.shutdown().await;
                });
            }
        });
        FakeFiles { port, server }
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// The configuration tests run the adapter with: a relay on 127.0.0.1 at
/// `port` without TLS, one sender (tenant `acme`, `support@acme.example`,
/// reply domain `reply.acme.example`), the webhook secret
/// [`WEBHOOK_SECRET`], no templates, no unsubscribe.
pub fn config(port: u16) -> crate::EmailConfig {
    crate::EmailConfig {
        relay: crate::RelayConfig {
            host: "127.0.0.1".into(),
            port,
            tls: crate::TlsMode::None,
            username: String::new(),
            password: String::new(),
            timeout: std::time::Duration::from_secs(5),
            pool_size: 2,
            hello_name: "omniroute.test".into(),
        },
        senders: vec![crate::Sender {
            tenant: "acme".into(),
            line: "support@acme.example".into(),
            from_address: "support@acme.example".into(),
            from_name: "ACME Support".into(),
            reply_domain: "reply.acme.example".into(),
            categories: Vec::new(),
        }],
        webhook_secret: WEBHOOK_SECRET.into(),
        template_dir: None,
        unsubscribe: None,
        attachment_max_bytes: 1 << 20,
    }
}

/// The webhook secret of [`config`].
pub const WEBHOOK_SECRET: &str = "inbound-secret";

/// When a scripted failure answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// At RCPT TO (a 550 no such user, a 452 too many recipients).
    Rcpt,
    /// After the data's final dot (a 451 greylisting, a 554 rejection).
    Data,
}

#[derive(Debug, Default)]
struct State {
    received: Vec<Received>,
    failures: VecDeque<(Stage, String)>,
    /// Whether DSN is offered.
    dsn: bool,
    /// NOOPs answered.
    noops: usize,
}

/// The fake relay.
#[derive(Debug)]
pub struct FakeSmtp {
    port: u16,
    state: Arc<Mutex<State>>,
    server: JoinHandle<()>,
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeSmtp {
    /// Starts on 127.0.0.1 (a free port).
    ///
    /// # Panics
    /// When no local port can be bound.
    pub async fn start() -> FakeSmtp {
        FakeSmtp::start_offering(false).await
    }

    /// Starts a relay that offers DSN (RFC 3461), as Postfix does.
    ///
    /// # Panics
    /// When no local port can be bound.
    pub async fn start_with_dsn() -> FakeSmtp {
        FakeSmtp::start_offering(true).await
    }

    async fn start_offering(dsn: bool) -> FakeSmtp {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake relay");
        let port = listener.local_addr().expect("address").port();
        let state = Arc::new(Mutex::new(State {
            dsn,
            ..State::default()
        }));
        let shared = Arc::clone(&state);
        let server = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let _ = session(socket, state).await;
                });
            }
        });
        FakeSmtp {
            port,
            state,
            server,
        }
    }

    /// Its port (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many NOOPs it answered (a client checking a connection, or
    /// done learning what the relay offers).
    pub fn noops(&self) -> usize {
        self.lock().noops
    }

    /// Every message accepted so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// Answers the next `n` transactions with `reply` (for example
    /// `"451 4.7.1 Greylisted, try again later"`) at `stage`.
    pub fn fail_next(&self, n: usize, stage: Stage, reply: &str) {
        let mut state = self.lock();
        state
            .failures
            .extend(std::iter::repeat_n((stage, reply.to_owned()), n));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn session(socket: tokio::net::TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write
        .write_all(b"220 fake.relay.test ESMTP ready\r\n")
        .await?;
    let dsn = state.lock().unwrap_or_else(|p| p.into_inner()).dsn;
    let mut mail_from: Option<String> = None;
    let mut rcpt_to: Vec<String> = Vec::new();
    let mut mail_parameters: Vec<String> = Vec::new();
    let mut rcpt_parameters: Vec<Vec<String>> = Vec::new();
    let mut failure: Option<(Stage, String)> = None;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" if dsn => {
                "250-fake.relay.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n250 PIPELINING"
                    .into()
            }
            "EHLO" => {
                "250-fake.relay.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING".into()
            }
            "HELO" => "250 fake.relay.test".into(),
            "NOOP" => {
                state.lock().unwrap_or_else(|p| p.into_inner()).noops += 1;
                "250 2.0.0 OK".into()
            }
            "RSET" => {
                mail_from = None;
                rcpt_to.clear();
                failure = None;
                "250 2.0.0 OK".into()
            }
            "QUIT" => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            "MAIL" if !dsn && has_dsn_parameter(&command) => {
                "555 5.5.4 Unsupported option: RET, ENVID".into()
            }
            "MAIL" => {
                mail_from = Some(address_of(&command));
                mail_parameters = parameters_of(&command);
                rcpt_to.clear();
                rcpt_parameters.clear();
                failure = {
                    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                    s.failures.pop_front()
                };
                "250 2.1.0 OK".into()
            }
            "RCPT" if mail_from.is_none() => "503 5.5.1 MAIL first".into(),
            "RCPT" if !dsn && has_dsn_parameter(&command) => {
                "555 5.5.4 Unsupported option: NOTIFY, ORCPT".into()
            }
            "RCPT" => match &failure {
                Some((Stage::Rcpt, reply)) => reply.clone(),
                _ => {
                    rcpt_to.push(address_of(&command));
                    rcpt_parameters.push(parameters_of(&command));
                    "250 2.1.5 OK".into()
                }
            },
            "DATA" if rcpt_to.is_empty() => "503 5.5.1 RCPT first".into(),
            "DATA" => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    let content = line.strip_prefix('.').unwrap_or(&line);
                    data.push_str(content.trim_end_matches(['\r', '\n']));
                    data.push_str("\r\n");
                }
                let reply = match failure.take() {
                    Some((Stage::Data, reply)) => reply,
                    _ => {
                        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                        s.received.push(Received {
                            mail_from: mail_from.take().unwrap_or_default(),
                            rcpt_to: std::mem::take(&mut rcpt_to),
                            data,
                            mail_parameters: std::mem::take(&mut mail_parameters),
                            rcpt_parameters: std::mem::take(&mut rcpt_parameters),
                        });
                        "250 2.0.0 OK queued".into()
                    }
                };
                mail_from = None;
                rcpt_to.clear();
                reply
            }
            _ => "502 5.5.2 Command not recognized".into(),
        };
        write.write_all(reply.as_bytes()).await?;
        write.write_all(b"\r\n").await?;
    }
}

/// The parameters after the path in `MAIL FROM:<a@b> RET=HDRS …`.
fn parameters_of(command: &str) -> Vec<String> {
    command
        .split_once('>')
        .map(|(_, rest)| rest.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Whether a command carries a DSN parameter (RFC 3461).
fn has_dsn_parameter(command: &str) -> bool {
    parameters_of(command).iter().any(|p| {
        let keyword = p.split('=').next().unwrap_or("");
        ["RET", "ENVID", "NOTIFY", "ORCPT"]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(keyword))
    })
}

/// The address in `MAIL FROM:<a@b> SIZE=…` or `RCPT TO:<a@b>`.
fn address_of(command: &str) -> String {
    command
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(address, _)| address.to_owned())
        .unwrap_or_default()
}

/// A delivery status notification (RFC 3464) a receiving MTA sends back
/// about our message `id` (sent with Message-ID `<id>@reply.acme.example`):
/// `action` failed, delayed or delivered, with its `status` (5.1.1, 4.4.7);
/// the original attached whole, or only its headers.
pub fn dsn(id: &str, action: &str, status: &str, original_as_headers: bool) -> String {
    let original = if original_as_headers {
        format!(
            "Content-Type: text/rfc822-headers\r\n\r\nFrom: support@acme.example\r\nMessage-ID: <{id}@reply.acme.example>\r\nSubject: Your order\r\n"
        )
    } else {
        format!(
            "Content-Type: message/rfc822\r\n\r\nFrom: support@acme.example\r\nTo: anna@example.com\r\nMessage-ID: <{id}@reply.acme.example>\r\nSubject: Your order\r\n\r\nYour order has shipped.\r\n"
        )
    };
    report(id, action, status, &original)
}

/// A delivery status notification that leaves the original message out
/// (many MTAs send only the status): only the address it is sent to, our
/// return path, names the message.
pub fn dsn_without_original(id: &str, action: &str, status: &str) -> String {
    report(id, action, status, "")
}

fn report(id: &str, action: &str, status: &str, original: &str) -> String {
    let original = if original.is_empty() {
        String::new()
    } else {
        format!("--b1\r\n{original}")
    };
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n\
To: support@acme.example\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
Message-ID: <dsn-{id}-{action}@mx.example.com>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain\r\n\
\r\n\
Your message could not be delivered.\r\n\
--b1\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.example.com\r\n\
\r\n\
Final-Recipient: rfc822; anna@example.com\r\n\
Action: {action}\r\n\
Status: {status}\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <anna@example.com>: Recipient address rejected\r\n\
\r\n\
{original}\
--b1--\r\n"
    )
}

/// A raw SMTP client for tests that speak to a server line by line (and
/// send what a well-behaved relay never would: bare line feeds, pipelined
/// commands inside a mail).
#[derive(Debug)]
pub struct Client {
    read: BufReader<tokio::net::tcp::OwnedReadHalf>,
    write: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    /// Connects to `addr`; the greeting is left to read with
    /// [`Client::reply`].
    ///
    /// # Panics
    /// When the server cannot be reached.
    pub async fn connect(addr: std::net::SocketAddr) -> Client {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("smtp connects");
        let (read, write) = stream.into_split();
        Client {
            read: BufReader::new(read),
            write,
        }
    }

    /// Sends `bytes` as they are.
    ///
    /// # Panics
    /// When the connection is gone.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.write.write_all(bytes).await.expect("smtp write");
    }

    /// Reads one reply: its code and its lines' texts (joined by `\n`);
    /// `None` when the server closed the connection first.
    pub async fn reply(&mut self) -> Option<(u16, String)> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            if self.read.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            let line = line.trim_end_matches(['\r', '\n']);
            let code = line.get(..3).and_then(|c| c.parse().ok())?;
            text.push_str(line.get(4..).unwrap_or(""));
            if line.as_bytes().get(3) != Some(&b'-') {
                return Some((code, text));
            }
            text.push('\n');
        }
    }

    /// Sends one command line (CRLF added) and reads its reply.
    ///
    /// # Panics
    /// When the server closes the connection instead of answering.
    pub async fn command(&mut self, line: &str) -> (u16, String) {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await.expect("the server answers")
    }
}

/// The replies to one SMTP transaction, as the relay that made it saw them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The reply code to each RCPT TO.
    pub rcpt: Vec<u16>,
    /// The reply to the final dot (code and text), when DATA was reached.
    pub data: Option<(u16, String)>,
}

/// Delivers `data` (a raw mail, CRLF line ends) to the SMTP server at
/// `addr` as a relay forwarding mail does: EHLO, MAIL FROM, a RCPT TO per
/// recipient, DATA with dot-stuffing (only when a recipient was taken),
/// QUIT.
///
/// # Panics
/// When the server cannot be reached or answers out of protocol.
pub async fn deliver(
    addr: std::net::SocketAddr,
    from: &str,
    to: &[&str],
    data: &str,
) -> Transaction {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("smtp connects");
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut reply = async || -> (u16, String) {
        let mut text = String::new();
        loop {
            let line = lines
                .next_line()
                .await
                .expect("reads")
                .expect("the server answers");
            let code = line.get(..3).and_then(|c| c.parse().ok()).expect("a code");
            text.push_str(line.get(4..).unwrap_or(""));
            if line.as_bytes().get(3) != Some(&b'-') {
                return (code, text);
            }
            text.push('\n');
        }
    };
    assert_eq!(reply().await.0, 220, "greeting");
    write.write_all(b"EHLO relay.test\r\n").await.unwrap();
    assert_eq!(reply().await.0, 250, "EHLO");
    write
        .write_all(format!("MAIL FROM:<{from}>\r\n").as_bytes())
        .await
        .unwrap();
    assert_eq!(reply().await.0, 250, "MAIL FROM");
    let mut rcpt = Vec::new();
    for recipient in to {
        write
            .write_all(format!("RCPT TO:<{recipient}>\r\n").as_bytes())
            .await
            .unwrap();
        rcpt.push(reply().await.0);
    }
    let mut result = None;
    if rcpt.contains(&250) {
        write.write_all(b"DATA\r\n").await.unwrap();
        assert_eq!(reply().await.0, 354, "DATA");
        let mut body = String::with_capacity(data.len() + 8);
        for line in data.split_inclusive("\r\n") {
            if line.starts_with('.') {
                body.push('.');
            }
            body.push_str(line);
        }
        if !body.ends_with("\r\n") {
            body.push_str("\r\n");
        }
        body.push_str(".\r\n");
        write.write_all(body.as_bytes()).await.unwrap();
        result = Some(reply().await);
    }
    write.write_all(b"QUIT\r\n").await.unwrap();
    let _ = reply().await;
    Transaction { rcpt, data: result }
}
