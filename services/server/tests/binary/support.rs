//! Running the `omniroute` binary as a user would, and talking to it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use omniroute_proto::v1 as pb;
use tonic::transport::Channel;

/// A running `omniroute serve` process.
pub struct Server {
    child: Child,
    addr: String,
    http_addr: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// Starts `omniroute serve` in `dir` with a clean environment, except for a
/// listener on a free port (the default 50051 may be taken on a developer's
/// machine) and a short shutdown grace (an idle client connection holds a
/// draining hyper server until the grace ends); returns once it logged its
/// address.
/// `env` adds or overrides settings (`OMNIROUTE__…` pairs).
pub fn start(dir: &Path, env: &[(&str, &str)]) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_omniroute"));
    command
        .arg("serve")
        .current_dir(dir)
        .env_clear()
        .env("OMNIROUTE__GRPC__LISTEN", "127.0.0.1:0")
        .env("OMNIROUTE__HTTP__LISTEN", "127.0.0.1:0")
        .env("OMNIROUTE__GRPC__SHUTDOWN_GRACE_SECS", "1");
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("omniroute starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = std::sync::Arc::clone(&log);
    std::thread::spawn(move || {
        let addr_of = |line: &str| {
            line.split("addr=")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .map(str::to_owned)
        };
        let (mut grpc, mut http) = (None, None);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if std::env::var_os("TEST_LOG").is_some() {
                eprintln!("{line}");
            }
            if line.contains("omniroute listening") {
                grpc = addr_of(&line);
            }
            if line.contains("webhook listener ready") {
                http = addr_of(&line);
            }
            kept.lock().expect("not poisoned").push(line);
            // Once, when both listeners are up.
            if let (Some(g), Some(h)) = (grpc.take_if(|_| http.is_some()), &http) {
                let _ = tx.send((g, h.clone()));
            }
        }
    });
    let (addr, http_addr) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("omniroute logs its listening address");
    Server {
        child,
        addr,
        http_addr,
        log,
    }
}

impl Server {
    /// Every line it logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("not poisoned").clone()
    }

    /// The address of its gRPC listener.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The address of its HTTP (webhook) listener.
    pub fn http_addr(&self) -> &str {
        &self.http_addr
    }

    /// A client channel to it.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .expect("connects")
    }

    /// Sends SIGHUP (which reloads the TLS files); the process goes on.
    pub fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP".to_owned(), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits up to `timeout` for a log line containing `text`.
    pub fn wait_for_log(&self, text: &str, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if self.log().iter().any(|line| line.contains(text)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn terminate(self) -> std::process::ExitStatus {
        self.signal("TERM")
    }

    /// Sends SIGKILL: the process dies on the spot, mid-whatever.
    pub fn kill(self) -> std::process::ExitStatus {
        self.signal("KILL")
    }

    fn signal(mut self, signal: &str) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        self.child.wait().expect("omniroute exits")
    }
}

impl Drop for Server {
    /// A test that panics must not leave a server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An address on a channel.
pub fn identity(channel: pb::Channel, address: &str) -> pb::Identity {
    pb::Identity {
        channel: channel as i32,
        address: address.to_owned(),
        ..Default::default()
    }
}

/// A CreateContact request for a contact with a display name and
/// identities.
pub fn new_contact(name: &str, identities: Vec<pb::Identity>) -> pb::CreateContactRequest {
    pb::CreateContactRequest {
        contact: Some(pb::Contact {
            display_name: name.to_owned(),
            identities,
            ..Default::default()
        }),
    }
}

/// A transactional text.
pub fn text(body: &str) -> pb::Message {
    pb::Message {
        category: pb::Category::Transactional as i32,
        content: Some(pb::Content {
            kind: Some(pb::content::Kind::Text(pb::TextContent {
                body: body.to_owned(),
                ..Default::default()
            })),
        }),
        ..Default::default()
    }
}

/// A send of a transactional text to an address.
pub fn text_to_address(to: pb::Identity, body: &str) -> pb::SendMessageRequest {
    pb::SendMessageRequest {
        recipient: Some(pb::send_message_request::Recipient::Address(to)),
        message: Some(text(body)),
        idempotency_key: String::new(),
    }
}

/// A message, by name.
pub async fn get_message(channel: &Channel, name: &str) -> pb::Message {
    pb::messaging_service_client::MessagingServiceClient::new(channel.clone())
        .get_message(pb::GetMessageRequest {
            name: name.to_owned(),
        })
        .await
        .expect("get message")
        .into_inner()
        .message
        .expect("a message")
}
