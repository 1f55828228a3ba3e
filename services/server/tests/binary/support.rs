//! Running the `omniroute` binary as a user would, and talking to it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tonic::transport::Channel;

/// A running `omniroute serve` process.
pub struct Server {
    child: Child,
    addr: String,
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
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if std::env::var_os("TEST_LOG").is_some() {
                eprintln!("{line}");
            }
            if line.contains("omniroute listening")
                && let Some(addr) = line
                    .split("addr=")
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
            {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("omniroute logs its listening address");
    Server { child, addr }
}

impl Server {
    /// A client channel to it.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .expect("connects")
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
