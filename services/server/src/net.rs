//! Binding listeners: every TCP listener of the server (gRPC, webhooks,
//! metrics, a provider's own) is bound the same way.

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// Connections a listener queues before the server accepts them (the
/// kernel caps it at `net.core.somaxconn`). The standard library's 128
/// overflows when a provider opens a few hundred webhook connections at
/// once, and an overflowed connection is reset, not delayed.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds a listener on `addr` (the setting `what`) with [`LISTEN_BACKLOG`].
pub fn listen(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    let bind = || -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    bind().map_err(|e| anyhow::anyhow!("cannot listen on {what} {addr}: {e}"))
}
