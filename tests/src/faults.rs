//! Faults for the end-to-end tests: a TCP proxy between the server and
//! PostgreSQL that can cut every connection and refuse new ones (a database
//! outage as the server sees it: connections lost mid-query, connects
//! failing), then let traffic through again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// A proxy in front of one TCP server.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    state: Arc<State>,
    accept: AbortHandle,
}

#[derive(Debug, Default)]
struct State {
    cut: AtomicBool,
    connections: Mutex<Vec<AbortHandle>>,
}

impl TcpProxy {
    /// Forwards a new local port to `upstream`.
    pub async fn start(upstream: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(State::default());
        let shared = Arc::clone(&state);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if shared.cut.load(Ordering::SeqCst) {
                    drop(client); // refused: the connection closes at once
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                let mut connections = shared.connections.lock().expect("proxy lock");
                connections.retain(|c| !c.is_finished());
                connections.push(task.abort_handle());
            }
        })
        .abort_handle();
        TcpProxy {
            addr,
            state,
            accept,
        }
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The outage begins: every open connection is cut, new ones are
    /// closed as soon as they connect.
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        for connection in self.state.connections.lock().expect("proxy lock").drain(..) {
            connection.abort();
        }
    }

    /// The outage ends.
    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// A fresh test database reached through a [`TcpProxy`]: the proxy and the
/// connection string that goes through it.
pub async fn proxied_pg_url() -> (TcpProxy, String) {
    let url = omniroute_store::testing::fresh_pg_url().await;
    let config: tokio_postgres::Config = url.parse().expect("test database URL");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => panic!("the outage tests need PostgreSQL over TCP, not {url:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let upstream = tokio::net::lookup_host((host.as_str(), port))
        .await
        .expect("resolve the database host")
        .next()
        .expect("a database address");
    let proxy = TcpProxy::start(upstream).await;
    let mut proxied = format!(
        "host=127.0.0.1 port={} dbname={} user={}",
        proxy.addr().port(),
        config.get_dbname().unwrap_or("postgres"),
        config.get_user().unwrap_or("postgres"),
    );
    if let Some(password) = config.get_password() {
        proxied.push_str(&format!(
            " password='{}'",
            String::from_utf8_lossy(password)
                .replace('\\', "\\\\")
                .replace('\'', "\\'")
        ));
    }
    (proxy, proxied)
}
