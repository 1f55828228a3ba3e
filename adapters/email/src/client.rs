//! The SMTP transport to the relay: lettre's async SMTP connections (TLS
//! mode, AUTH, one command at a time) in a small pool of our own, so that
//! each transaction can carry the parameters lettre's transport does not
//! send: where the relay offers DSN (RFC 3461) in its EHLO answer, `MAIL
//! FROM:<…> RET=HDRS ENVID=<message id>` and `RCPT TO:<…>
//! NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;<address>` ask for a report of
//! delivery, not only of failure. Whether the relay offers it is learned
//! from each new connection's EHLO (and once at start, [`Transport::learn`])
//! and declared by the adapter: without DSN a relay's `250` is the last
//! thing it says of a mail that arrived.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use lettre::Address;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::{
    ClientId, Extension, MailBodyParameter, MailParameter, RcptParameter,
};
use omniroute_channel::{AdapterError, DeliveryReports, ErrorClass};
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

use crate::config::{RelayConfig, TlsMode};

/// How long an unused connection is kept for the next mail.
const IDLE: Duration = Duration::from_secs(60);

/// What the relay said of DSN in its last EHLO answer.
const UNKNOWN: u8 = 0;
const NO_DSN: u8 = 1;
const DSN: u8 = 2;

/// A pool of SMTP connections to the relay.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

struct Inner {
    relay: RelayConfig,
    hello: ClientId,
    tls: Option<TlsParameters>,
    /// Connections open at once, at most `pool_size`.
    permits: Semaphore,
    idle: Mutex<Vec<(Connection, Instant)>>,
    dsn: AtomicU8,
}

struct Connection {
    smtp: AsyncSmtpConnection,
    dsn: bool,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("relay", &self.inner.relay)
            .field("dsn", &self.inner.dsn.load(Ordering::Relaxed))
            .finish()
    }
}

/// Builds the transport (no connection is opened yet).
pub fn transport(relay: &RelayConfig) -> Result<Transport, AdapterError> {
    let tls = match relay.tls {
        TlsMode::None => None,
        // The relay's certificate must name its host.
        TlsMode::Implicit | TlsMode::StartTlsRequired => {
            Some(TlsParameters::new(relay.host.clone()).map_err(|e| {
                AdapterError::new(ErrorClass::Configuration, "smtp-config", e.to_string())
            })?)
        }
    };
    Ok(Transport {
        inner: Arc::new(Inner {
            hello: ClientId::Domain(relay.hello_name.clone()),
            permits: Semaphore::new(relay.pool_size.max(1) as usize),
            relay: relay.clone(),
            tls,
            idle: Mutex::new(Vec::new()),
            dsn: AtomicU8::new(UNKNOWN),
        }),
    })
}

/// What a send asked the relay for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Whether a report of delivery was asked for (the relay offers DSN).
    pub dsn: bool,
}

impl Transport {
    /// Whether the relay reports delivery, as its last EHLO said; until one
    /// was heard, not.
    pub fn delivery_reports(&self) -> DeliveryReports {
        match self.inner.dsn.load(Ordering::Relaxed) {
            DSN => DeliveryReports::Reported,
            _ => DeliveryReports::NotReported,
        }
    }

    /// Connects once to learn what the relay offers (and keeps the
    /// connection for the first mail). A relay that cannot be reached now
    /// is learned at the first send.
    pub async fn learn(&self) {
        let Ok(_permit) = self.inner.permits.acquire().await else {
            return;
        };
        match self.connect().await {
            Ok(mut connection) => {
                // Learned; the connection is kept only while it answers.
                let _ = self
                    .timed(async { Ok(connection.smtp.test_connected().await) })
                    .await;
                self.put(connection).await;
            }
            Err(e) => tracing::debug!(error = %e, "smtp relay not reached yet"),
        }
    }

    /// Whether the relay answers (a connection, then NOOP).
    pub async fn health(&self) -> Result<(), AdapterError> {
        let _permit = self.inner.permits.acquire().await.expect("never closed");
        let connection = self.get().await?;
        self.put(connection).await;
        Ok(())
    }

    /// Sends one email in one SMTP transaction: one recipient, asking for
    /// delivery reports where the relay offers DSN (`envelope_id`: our
    /// message id).
    pub async fn send(
        &self,
        envelope: &Envelope,
        email: &[u8],
        envelope_id: &str,
    ) -> Result<Sent, AdapterError> {
        let _permit = self.inner.permits.acquire().await.expect("never closed");
        let mut connection = self.get().await?;
        let dsn = connection.dsn;
        match self
            .transaction(&mut connection.smtp, envelope, email, envelope_id, dsn)
            .await
        {
            Ok(()) => {
                self.put(connection).await;
                Ok(Sent { dsn })
            }
            Err(e) => {
                connection.smtp.abort().await;
                Err(e)
            }
        }
    }

    async fn transaction(
        &self,
        smtp: &mut AsyncSmtpConnection,
        envelope: &Envelope,
        email: &[u8],
        envelope_id: &str,
        dsn: bool,
    ) -> Result<(), AdapterError> {
        let info = smtp.server_info().clone();
        let mut mail = Vec::new();
        // Internationalization, as lettre's own send does it.
        let non_ascii = |a: &Address| !AsRef::<str>::as_ref(a).is_ascii();
        if envelope.from().is_some_and(non_ascii) || envelope.to().iter().any(non_ascii) {
            mail.push(MailParameter::SmtpUtfEight);
        }
        if !email.is_ascii() && info.supports_feature(Extension::EightBitMime) {
            mail.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let mut rcpt = Vec::new();
        if dsn {
            let other = |keyword: &str, value: String| (keyword.to_owned(), Some(value));
            for (keyword, value) in [
                other("RET", "HDRS".into()),
                other("ENVID", envelope_id.to_owned()),
            ] {
                mail.push(MailParameter::Other { keyword, value });
            }
        }
        self.timed(smtp.command(Mail::new(envelope.from().cloned(), mail)))
            .await?;
        for to in envelope.to() {
            if dsn {
                rcpt = dsn_recipient(to);
            }
            self.timed(smtp.command(Rcpt::new(to.clone(), rcpt.clone())))
                .await?;
        }
        self.timed(smtp.command(Data)).await?;
        self.timed(smtp.message(email)).await?;
        Ok(())
    }

    /// Waits for one step at most the relay's timeout; its failure as an
    /// error class.
    async fn timed<T>(
        &self,
        step: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
    ) -> Result<T, AdapterError> {
        match tokio::time::timeout(self.inner.relay.timeout, step).await {
            Ok(done) => done.map_err(|e| crate::error::classify(&e)),
            Err(_) => Err(AdapterError::new(
                ErrorClass::Transient,
                "smtp-timeout",
                "the relay did not answer in time",
            )),
        }
    }

    /// A kept connection that still answers, else a new one.
    async fn get(&self) -> Result<Connection, AdapterError> {
        loop {
            let kept = self.inner.idle.lock().await.pop();
            let Some((mut connection, since)) = kept else {
                return self.connect().await;
            };
            if since.elapsed() < IDLE
                && self
                    .timed(async { Ok(connection.smtp.test_connected().await) })
                    .await
                    .unwrap_or(false)
            {
                return Ok(connection);
            }
            connection.smtp.abort().await;
        }
    }

    async fn put(&self, connection: Connection) {
        if !connection.smtp.has_broken() {
            self.inner
                .idle
                .lock()
                .await
                .push((connection, Instant::now()));
        }
    }

    /// A new connection: TLS as configured, EHLO (whose answer says whether
    /// the relay offers DSN), AUTH when credentials are set.
    async fn connect(&self) -> Result<Connection, AdapterError> {
        let inner = &self.inner;
        let relay = &inner.relay;
        let implicit = (relay.tls == TlsMode::Implicit)
            .then(|| inner.tls.clone())
            .flatten();
        let mut smtp = AsyncSmtpConnection::connect_tokio1(
            (relay.host.as_str(), relay.port),
            Some(relay.timeout),
            &inner.hello,
            implicit,
            None,
        )
        .await
        .map_err(|e| crate::error::classify(&e))?;
        if relay.tls == TlsMode::StartTlsRequired
            && let Some(tls) = inner.tls.clone()
        {
            // Required: lettre refuses when the relay does not offer it.
            self.timed(smtp.starttls(tls, &inner.hello)).await?;
        }
        // lettre keeps only the extensions it knows; the EHLO answer again
        // (after TLS, before AUTH: what the relay offers now) says DSN.
        let ehlo = self
            .timed(smtp.command(Ehlo::new(inner.hello.clone())))
            .await?;
        let dsn = ehlo
            .message()
            .any(|line| line.split_whitespace().next() == Some("DSN"));
        inner
            .dsn
            .store(if dsn { DSN } else { NO_DSN }, Ordering::Relaxed);
        if !relay.username.is_empty() {
            let credentials = Credentials::new(relay.username.clone(), relay.password.clone());
            self.timed(smtp.auth(&[Mechanism::Plain, Mechanism::Login], &credentials))
                .await?;
        }
        Ok(Connection { smtp, dsn })
    }
}

/// `NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;<address>` (RFC 3461).
fn dsn_recipient(to: &Address) -> Vec<RcptParameter> {
    vec![
        RcptParameter::Other {
            keyword: "NOTIFY".into(),
            value: Some("SUCCESS,FAILURE,DELAY".into()),
        },
        RcptParameter::Other {
            keyword: "ORCPT".into(),
            value: Some(format!("rfc822;{to}")),
        },
    ]
}
