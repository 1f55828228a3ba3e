//! End-to-end tests: a real server on a local TCP port, driven by the tonic
//! clients of omniroute.v1. Every scenario runs twice, once on the embedded
//! store and once on PostgreSQL (a fresh database per test).

mod auth;
mod bounds;
mod callback_states;
mod callbacks;
mod contacts;
mod deadlines;
mod deliveries;
mod email;
mod email_smtp;
mod endpoints;
mod events;
mod invalid;
mod limits;
mod messaging;
mod metrics;
#[cfg(feature = "nats")]
mod nats;
mod outage;
mod policy;
mod postfix;
mod preferences;
mod provider_faults;
mod reliability;
mod routing;
mod support;
mod tls;
mod voice;
mod whatsapp;

/// Instantiates each scenario `async fn name(app: TestApp)` for both stores.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $name() {
                    let app = omniroute_e2e::TestApp::spawn(omniroute_e2e::Backend::Embedded).await;
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let app = omniroute_e2e::TestApp::spawn(omniroute_e2e::Backend::Postgres).await;
                    super::$name(app).await;
                }
            )*
        }
    };
}
pub(crate) use on_both_stores;
