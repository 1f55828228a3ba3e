//! The `omniroute` binary as users and operators run it: start-up with no
//! settings, stock clients, restarts, several processes on one database, and
//! a process killed mid-dispatch, TLS reloaded on SIGHUP.

mod auth;
mod logs;
#[cfg(feature = "otel")]
mod otel;
mod outage;
mod processes;
mod serve;
mod support;
mod tls;
