//! `Window closing` events: a while before a customer service window
//! closes, the event log says so, so that a bot or an agent can still
//! answer free-form.
//!
//! Each tenant has its lead time (`routing.window_closing_lead_secs`, per
//! tenant in `[[routing.tenants]]`; 0 for none). The store marks each window
//! end it announced, in the transaction that logs the event, and skips
//! windows another replica holds: every window end is announced once,
//! whatever the number of replicas, and a restart misses none.

use std::sync::Arc;
use std::time::Duration;

use omniroute_domain::TenantScope;
use omniroute_store::prelude::*;
use tokio::sync::watch;

use crate::settings::RoutingSettings;

/// Windows announced per store call.
const BATCH: usize = 500;

/// Which tenants announce with which lead: each tenant with its own lead
/// alone, everyone else with the default; tenants with none are left out.
pub fn scopes(settings: &RoutingSettings) -> Vec<(TenantScope, Duration)> {
    let lead = |secs: u64| (secs > 0).then(|| Duration::from_secs(secs));
    let own: Vec<&crate::settings::TenantRouting> = settings
        .tenants
        .iter()
        .filter(|t| t.window_closing_lead_secs.is_some())
        .collect();
    let mut scopes: Vec<(TenantScope, Duration)> = own
        .iter()
        .filter_map(|t| {
            let d = lead(t.window_closing_lead_secs?)?;
            Some((TenantScope::Only(t.tenant.clone()), d))
        })
        .collect();
    if let Some(d) = lead(settings.window_closing_lead_secs) {
        let others = own.iter().map(|t| t.tenant.clone()).collect();
        scopes.push((TenantScope::AllBut(others), d));
    }
    scopes
}

/// Announces closing windows every `interval` until `stop`.
pub async fn run(
    store: Arc<dyn Store>,
    scopes: Vec<(TenantScope, Duration)>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    if scopes.is_empty() {
        return;
    }
    loop {
        for (scope, lead) in &scopes {
            loop {
                match store.announce_closing_windows(scope, *lead, BATCH).await {
                    Ok(n) if n == BATCH => continue,
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(announced = n, "closing windows announced"),
                    Err(e) => {
                        tracing::warn!(error = %e, "announcing closing windows failed; retrying later")
                    }
                }
                break;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::TenantRouting;

    #[test]
    fn each_tenant_with_its_own_lead_and_the_rest_with_the_default() {
        let settings = RoutingSettings {
            window_closing_lead_secs: 3600,
            tenants: vec![
                TenantRouting {
                    tenant: "quick".into(),
                    window_closing_lead_secs: Some(600),
                    ..TenantRouting::default()
                },
                TenantRouting {
                    tenant: "silent".into(),
                    window_closing_lead_secs: Some(0),
                    ..TenantRouting::default()
                },
                TenantRouting {
                    tenant: "plain".into(),
                    ..TenantRouting::default()
                },
            ],
            ..RoutingSettings::default()
        };
        assert_eq!(
            scopes(&settings),
            [
                (TenantScope::Only("quick".into()), Duration::from_secs(600)),
                (
                    TenantScope::AllBut(vec!["quick".into(), "silent".into()]),
                    Duration::from_secs(3600)
                ),
            ]
        );
    }
}
