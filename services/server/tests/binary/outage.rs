//! PostgreSQL stopped under load, then started again: a cluster of the
//! test's own (initdb in a temporary folder, its own port; never the
//! machine's server). Meanwhile every call answers promptly with
//! UNAVAILABLE (never INTERNAL, never a hang), the process recovers
//! without a restart, and nothing acknowledged is lost.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use omniroute_proto::v1 as pb;
use pb::messaging_service_client::MessagingServiceClient;
use tonic::Code;

use crate::support::{get_message, identity, start, text_to_address};

/// A throwaway PostgreSQL cluster.
struct Cluster {
    bin: PathBuf,
    data: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    /// initdb and start, as the `postgres` user when run as root (initdb
    /// refuses root).
    fn start() -> Cluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's binaries under /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|b| b.join("initdb").exists())
            .expect("initdb");
        let data = tempfile::tempdir().expect("a folder for the cluster");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Cluster { bin, data, port };
        if is_root() {
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(cluster.data.path())
                .status()
                .expect("chown");
            assert!(chown.success());
        }
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.dir(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
            ],
        );
        cluster.up();
        cluster
    }

    fn dir(&self) -> String {
        self.data.path().join("pg").to_string_lossy().into_owned()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn up(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.data.path().display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.dir(),
                "-o",
                &options,
                "-w",
                "-l",
                &self.log(),
                "start",
            ],
        );
    }

    fn down(&self) {
        self.run("pg_ctl", &["-D", &self.dir(), "-m", "fast", "-w", "stop"]);
    }

    fn log(&self) -> String {
        self.data.path().join("log").to_string_lossy().into_owned()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let path = self.bin.join(tool);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let output = command.args(args).output().expect("PostgreSQL tool runs");
        assert!(
            output.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let path = self.bin.join("pg_ctl");
        let dir = self.dir();
        let args = ["-D", dir.as_str(), "-m", "immediate", "stop"];
        let _ = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&path)
                .args(args)
                .output()
        } else {
            Command::new(&path).args(args).output()
        };
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn send(i: usize) -> pb::SendMessageRequest {
    let to = identity(pb::Channel::Email, &format!("o{}@example.com", i % 20));
    pb::SendMessageRequest {
        idempotency_key: format!("outage-{i}"),
        ..text_to_address(to, &format!("Update {i}"))
    }
}

/// No call may take longer than this, database or not.
const NO_HANG: Duration = Duration::from_secs(15);

#[tokio::test]
async fn postgres_stopped_under_load_answers_unavailable_and_recovers_without_loss() {
    let cluster = Cluster::start();
    let url = cluster.url();
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &[
            ("OMNIROUTE__STORE__URL", url.as_str()),
            ("OMNIROUTE__STORE__CONNECT_TIMEOUT_SECS", "2"),
            ("OMNIROUTE__SANDBOX__DELIVERY_DELAY_MS", "20"),
            ("OMNIROUTE__DISPATCH__POLL_INTERVAL_MS", "20"),
        ],
    );
    let channel = server.channel().await;
    let mut client = MessagingServiceClient::new(channel.clone());
    let mut acknowledged = Vec::new();
    let mut unavailable = 0;
    let mut i = 0;
    let call = |i: usize, client: &mut MessagingServiceClient<_>| {
        let mut client = client.clone();
        async move {
            tokio::time::timeout(NO_HANG, client.send_message(send(i)))
                .await
                .unwrap_or_else(|_| panic!("send {i} hung past {NO_HANG:?}"))
        }
    };
    // Load, then the outage in the middle of it.
    for _ in 0..50 {
        acknowledged.push(
            call(i, &mut client)
                .await
                .expect("before the outage")
                .into_inner(),
        );
        i += 1;
    }
    cluster.down();
    for _ in 0..20 {
        match call(i, &mut client).await {
            Ok(r) => acknowledged.push(r.into_inner()),
            Err(e) => {
                assert_eq!(e.code(), Code::Unavailable, "send {i}: {e:?}");
                unavailable += 1;
            }
        }
        i += 1;
    }
    assert!(unavailable > 0, "the outage was seen");
    cluster.up();
    // Recovery without a restart: a client that retries on UNAVAILABLE
    // gets through.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for _ in 0..50 {
        loop {
            match call(i, &mut client).await {
                Ok(r) => {
                    acknowledged.push(r.into_inner());
                    break;
                }
                Err(e) if e.code() == Code::Unavailable => {
                    assert!(tokio::time::Instant::now() < deadline, "never recovered");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("send {i} after the outage: {e:?}"),
            }
        }
        i += 1;
    }
    // Nothing acknowledged is lost: each is delivered.
    for response in &acknowledged {
        let name = response.message.as_ref().unwrap().name.clone();
        loop {
            let message = get_message(&channel, &name).await;
            if message.status == pb::MessageStatus::Delivered as i32 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} never delivered: {message:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    drop(client);
    drop(channel);
    assert!(server.terminate().success());
}
