//! The event log published to NATS JetStream (feature `nats`, settings
//! `[nats]`): every tenant's events, in log order, one message each on
//! `<subject_prefix>.<tenant>.<event type>`, its body the event's
//! canonical JSON (as webhooks carry it), its `Nats-Msg-Id` the event's
//! cursor, so that JetStream stores an event published twice (after a
//! failure or a restart, within the stream's duplicate window) once.
//!
//! Each tenant's position is the store's (`SinkStore`), leased to one
//! replica at a time and moved after JetStream acknowledged; a restart, a
//! crash or an outage of NATS resumes there. The first start publishes the
//! retained log from its beginning. Events are published one at a
//! time, each acknowledged before the next, so the stream holds them in
//! the log's order whatever fails in between.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, Context};
use omniroute_domain::{Event, EventFilter};
use omniroute_store::prelude::*;
use tokio::sync::watch;

use crate::settings::NatsSettings;

/// The sink's name in the store.
const SINK: &str = "nats";

/// Events read per page.
const PAGE: usize = 500;

/// Publishes the log to JetStream.
#[derive(Debug)]
pub struct NatsSink {
    store: Arc<dyn Store>,
    settings: NatsSettings,
    /// Tenants published besides those the store lists.
    default_tenant: String,
}

impl NatsSink {
    /// From validated settings.
    pub fn new(store: Arc<dyn Store>, settings: &NatsSettings, default_tenant: &str) -> NatsSink {
        NatsSink {
            store,
            settings: settings.clone(),
            default_tenant: default_tenant.to_owned(),
        }
    }

    /// Runs until `stopped` completes: connects (and reconnects), makes
    /// the stream if asked, and publishes each tenant's log. Positions are
    /// released at the stop, so another replica or the next start goes on
    /// at once.
    pub async fn run(self, stopped: impl Future<Output = ()>) {
        let (stop, stopping) = watch::channel(false);
        let this = Arc::new(self);
        let work = Arc::clone(&this).publish_all(stopping);
        tokio::pin!(work);
        tokio::select! {
            () = &mut work => {}
            () = stopped => {
                let _ = stop.send(true);
                work.await;
            }
        }
    }

    async fn publish_all(self: Arc<Self>, stopping: watch::Receiver<bool>) {
        let client = match async_nats::ConnectOptions::new()
            .name("omniroute")
            .retry_on_initial_connect()
            .connect(self.settings.url.as_str())
            .await
        {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "NATS: cannot connect; events are not published");
                return;
            }
        };
        let js = jetstream::new(client);
        if self.settings.create_stream {
            let mut wait = Backoff::new();
            loop {
                let config = jetstream::stream::Config {
                    name: self.settings.stream.clone(),
                    subjects: vec![format!("{}.>", self.settings.subject_prefix)],
                    duplicate_window: Duration::from_secs(self.settings.duplicate_window_secs),
                    ..Default::default()
                };
                match js.get_or_create_stream(config).await {
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "NATS: cannot make the stream yet");
                        if wait.sleep(&stopping).await {
                            return;
                        }
                    }
                }
            }
        }
        let mut tasks = tokio::task::JoinSet::new();
        let mut started: HashSet<String> = HashSet::new();
        let mut stopping_here = stopping.clone();
        loop {
            for tenant in self.tenants().await {
                if started.insert(tenant.clone()) {
                    let (this, js, stopping) = (Arc::clone(&self), js.clone(), stopping.clone());
                    tasks.spawn(async move { this.publish_tenant(&js, &tenant, stopping).await });
                }
            }
            tokio::select! {
                _ = stopping_here.changed() => break,
                () = tokio::time::sleep(Duration::from_secs(30)) => {}
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    /// The tenants whose logs are published: every one the store knows,
    /// and the default tenant.
    async fn tenants(&self) -> Vec<String> {
        let mut tenants = vec![self.default_tenant.clone()];
        match self.store.list_tenants().await {
            Ok(known) => tenants.extend(known.into_iter().map(|t| t.id)),
            Err(e) => tracing::warn!(error = %e, "NATS: cannot list tenants"),
        }
        tenants
    }

    /// Publishes one tenant's log while this replica holds its position.
    async fn publish_tenant(
        &self,
        js: &Context,
        tenant: &str,
        mut stopping: watch::Receiver<bool>,
    ) {
        let lease = Duration::from_secs(self.settings.lease_secs);
        let poll = Duration::from_millis(self.settings.poll_interval_ms);
        let mut changes = self.store.changes();
        let mut wait = Backoff::new();
        'claim: loop {
            if *stopping.borrow() {
                return;
            }
            let held = match self.store.claim_sink(SINK, tenant, lease).await {
                Ok(Some(held)) => held,
                Ok(None) => {
                    // Another replica publishes it; look again after a while.
                    tokio::select! {
                        _ = stopping.changed() => return,
                        () = tokio::time::sleep(lease / 2) => continue 'claim,
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "NATS: cannot claim a tenant's position");
                    if wait.sleep(&stopping).await {
                        return;
                    }
                    continue 'claim;
                }
            };
            let mut cursor = held.cursor;
            loop {
                changes.borrow_and_update();
                let events = match self
                    .store
                    .read_events(tenant, cursor, &EventFilter::default(), PAGE)
                    .await
                {
                    Ok(events) => events,
                    Err(e) => {
                        tracing::warn!(error = %e, "NATS: cannot read events");
                        Vec::new()
                    }
                };
                let mut failed = false;
                for event in &events {
                    if *stopping.borrow() {
                        break;
                    }
                    match self.publish(js, tenant, event).await {
                        Ok(()) => cursor = event.cursor,
                        Err(e) => {
                            tracing::warn!(error = %e, "NATS: publishing failed; trying again");
                            failed = true;
                            break;
                        }
                    }
                }
                // Record the position (and renew the lease); at the stop,
                // release it.
                let stop = *stopping.borrow();
                let keep = if stop { Duration::ZERO } else { lease };
                match self
                    .store
                    .advance_sink(SINK, tenant, held.token, cursor, keep)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!("NATS: another replica took a tenant's position");
                        continue 'claim;
                    }
                    Err(e) => tracing::warn!(error = %e, "NATS: cannot record the position"),
                }
                if stop {
                    return;
                }
                if failed {
                    // After the wait, the stop (if it came) releases above.
                    wait.sleep(&stopping).await;
                    continue;
                }
                wait.reset();
                if events.len() == PAGE {
                    continue;
                }
                tokio::select! {
                    _ = stopping.changed() => {}
                    _ = changes.changed() => {}
                    () = tokio::time::sleep(poll.min(lease / 3)) => {}
                }
            }
        }
    }

    /// Publishes one event and waits for JetStream's acknowledgement.
    async fn publish(&self, js: &Context, tenant: &str, event: &Event) -> anyhow::Result<()> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", event.cursor.encode());
        let kind = serde_json::to_value(event.kind)?;
        let kind = kind.as_str().unwrap_or("event");
        let subject = format!(
            "{}.{}.{kind}",
            self.settings.subject_prefix,
            subject_token(tenant)
        );
        let body = crate::api::event_json(event);
        js.publish_with_headers(subject, headers, body.into())
            .await?
            .await?;
        Ok(())
    }
}

/// A tenant id as one subject token: anything but letters, digits, `_`
/// and `-` becomes `_`.
fn subject_token(tenant: &str) -> String {
    tenant
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Waits that double from 200 ms to 30 s.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Backoff {
        Backoff(Duration::from_millis(200))
    }

    fn reset(&mut self) {
        self.0 = Duration::from_millis(200);
    }

    /// Waits; `true` when the stop came first.
    async fn sleep(&mut self, stopping: &watch::Receiver<bool>) -> bool {
        let mut stopping = stopping.clone();
        let wait = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(30));
        tokio::select! {
            _ = stopping.changed() => true,
            () = tokio::time::sleep(wait) => *stopping.borrow(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_become_one_subject_token() {
        assert_eq!(subject_token("acme"), "acme");
        assert_eq!(subject_token("acme.eu*>x y"), "acme_eu___x_y");
    }
}
