//! The Prometheus endpoint: a scrape after a send shows the counters of
//! what happened (the call, the acceptance, the attempt, the provider's
//! reports, a refused webhook) and the queue read from the store.

use omniroute_e2e::TestApp;
use omniroute_proto::v1 as pb;

use crate::support::*;

crate::on_both_stores!(a_scrape_after_a_send_shows_the_counters_moving);

/// The value of the sample `name{labels}` in a scrape, 0 when absent.
fn sample(scrape: &str, name_and_labels: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn scrape(app: &TestApp) -> String {
    let addr = app.metrics_addr.expect("metrics are on");
    let response = omniroute_e2e::http(addr, "GET", "/metrics", &[], &[]).await;
    assert_eq!(response.status, 200);
    assert!(response.body.ends_with("# EOF\n"), "OpenMetrics text");
    response.body
}

async fn a_scrape_after_a_send_shows_the_counters_moving(app: TestApp) {
    let mut app = app
        .respawn_with(|s| s.metrics.listen = "127.0.0.1:0".into())
        .await;
    let before = scrape(&app).await;
    let sent_calls = r#"omniroute_grpc_requests_total{method="/omniroute.v1.MessagingService/SendMessage",code="OK"}"#;
    let accepted = r#"omniroute_messages_accepted_total{tenant="default",channel="email",category="transactional"}"#;
    let attempts = r#"omniroute_attempts_total{tenant="default",channel="email",outcome="sent"}"#;
    let dispatched = r#"omniroute_dispatch_seconds_count{channel="email"}"#;
    let decided =
        r#"omniroute_dispatch_decisions_total{tenant="default",channel="email",decision="sent"}"#;
    let delivered =
        r#"omniroute_status_reports_total{tenant="default",channel="email",status="delivered"}"#;
    let refused = r#"omniroute_webhook_requests_total{channel="whatsapp",result="unauthorized"}"#;
    let lag = "omniroute_event_delivery_lag_seconds_count";

    let anna = create(&mut app, "Anna", vec![email("anna.metrics@example.com")]).await;
    let message = send_text(&mut app, &anna.name, "Your order has shipped").await;
    crate::whatsapp::wait_status(&mut app, &message.name, pb::MessageStatus::Delivered).await;
    // A subscriber reads the log: its deliveries are timed.
    let mut stream = app
        .events
        .subscribe(from_the_beginning())
        .await
        .expect("subscribed")
        .into_inner();
    crate::events::next(&mut stream).await;
    let forged = omniroute_e2e::http(
        app.http_addr,
        "POST",
        "/webhooks/whatsapp",
        &[("X-Hub-Signature-256", "sha256=00")],
        b"{}",
    )
    .await;
    assert_eq!(forged.status, 401);

    let after = scrape(&app).await;
    for name in [
        sent_calls, accepted, attempts, dispatched, decided, delivered, refused, lag,
    ] {
        assert!(
            sample(&after, name) >= sample(&before, name) + 1.0,
            "{name} did not move:\n{after}"
        );
    }
    // The queue and the latency histograms are there.
    assert!(after.contains("omniroute_queue_jobs "), "{after}");
    assert!(
        after.contains("omniroute_queue_oldest_due_seconds "),
        "{after}"
    );
    assert!(
        after.contains(r#"omniroute_provider_send_seconds_count{channel="email"}"#),
        "{after}"
    );
    assert!(after.contains("omniroute_event_subscribers "), "{after}");
    if app.backend() == omniroute_e2e::Backend::Postgres {
        assert!(
            sample(
                &after,
                r#"omniroute_store_pool_connections_max{pool="main"}"#
            ) >= 1.0,
            "{after}"
        );
    }
}
