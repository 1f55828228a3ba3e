//! The provider misbehaves (the fake Graph API scripted to): garbage
//! bodies, connections that break mid-answer, answers past the timeout,
//! 5xx, throttling with Retry-After, and an outage long enough to open the
//! circuit breaker. Every message ends sent or failed with a precise
//! reason, no worker is left stuck, and the breaker opens and closes.

use std::time::Duration;

use omniroute_e2e::TestApp;
use omniroute_proto::v1 as pb;
use omniroute_whatsapp::fake::Fault;

use crate::support::*;
use crate::whatsapp::{app_with_whatsapp_and, inbound_text, send_text, wait_status, webhook};

crate::on_both_stores!(provider_faults_end_each_message_with_a_precise_reason,);

/// Scripts one fault on the fake.
type Inject<'a> = Box<dyn Fn() + 'a>;

async fn preview(app: &mut TestApp, contact: &str) -> pb::RouteDecision {
    app.messaging
        .preview_route(pb::PreviewRouteRequest {
            send: Some(text_to(contact, "ping")),
        })
        .await
        .expect("preview")
        .into_inner()
        .route
        .expect("route")
}

async fn provider_faults_end_each_message_with_a_precise_reason(app: TestApp) {
    let (mut app, graph) = app_with_whatsapp_and(app.backend(), |s| {
        s.dispatch.send_timeout_secs = 1;
        s.routing.breaker_failures = 3;
        // Long enough for the checks while it is open, however slow the
        // machine.
        s.routing.breaker_cool_down_secs = 3;
    })
    .await;
    use pb::AttemptOutcome::{RateLimited, Transient};
    // One fault, then the provider answers: the retry sends the message,
    // and the failed attempt says what went wrong.
    let faults: [(&str, Inject, pb::AttemptOutcome); 5] = [
        (
            "garbage",
            Box::new(|| graph.fault_next(1, Fault::Garbage)),
            Transient,
        ),
        (
            "reset",
            Box::new(|| graph.fault_next(1, Fault::Reset)),
            Transient,
        ),
        (
            "slow",
            Box::new(|| graph.fault_next(1, Fault::Slow(Duration::from_millis(1500)))),
            Transient,
        ),
        (
            "5xx",
            Box::new(|| graph.fail_next(1, 503, 1, None)),
            Transient,
        ),
        (
            "429",
            Box::new(|| graph.fail_next(1, 429, 130429, Some("1"))),
            RateLimited,
        ),
    ];
    for (i, (what, inject, outcome)) in faults.iter().enumerate() {
        inject();
        let accepted = send_text(&mut app, &format!("+49 151 2345670{i}")).await;
        let sent = wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
        assert_eq!(sent.attempts.len(), 2, "{what}: {sent:#?}");
        let failed = &sent.attempts[0];
        assert_eq!(failed.outcome, *outcome as i32, "{what}: {failed:?}");
        assert!(
            !failed.error_message.is_empty() || !failed.error_code.is_empty(),
            "{what}: the failed attempt says why: {failed:?}"
        );
        assert_eq!(
            sent.attempts[1].outcome,
            pb::AttemptOutcome::Accepted as i32
        );
        if *what == "429" {
            let first = failed.start_time.unwrap();
            let second = sent.attempts[1].start_time.unwrap();
            assert!(
                second.seconds * 1_000_000_000 + i64::from(second.nanos)
                    >= first.seconds * 1_000_000_000 + i64::from(first.nanos) + 1_000_000_000,
                "retried no sooner than Retry-After"
            );
        }
    }

    // An outage: every attempt fails until retries run out. The message
    // fails with the reason; three failures in a row open the breaker.
    graph.fail_next(3, 503, 2, None);
    let accepted = send_text(&mut app, "+49 151 23456799").await;
    let failed = wait_status(&mut app, &accepted.name, pb::MessageStatus::Failed).await;
    assert_eq!(failed.attempts.len(), 3, "{failed:#?}");
    assert!(
        failed
            .attempts
            .iter()
            .all(|a| a.outcome == Transient as i32)
    );
    let reason = &failed.status_history.last().unwrap().reason;
    assert!(!reason.is_empty(), "the failure says why: {failed:#?}");

    // Open: routing goes around WhatsApp, saying why.
    let both = create(
        &mut app,
        "Bea",
        vec![whatsapp("+49 151 23456798"), email("bea@example.com")],
    )
    .await;
    // Bea wrote to us: WhatsApp is open to her but for the breaker.
    let hello = inbound_text("wamid.bea.1", "4915123456798", "Bea", "Hi");
    assert_eq!(webhook(&app, &hello).await.status, 200);
    let route = preview(&mut app, &both.name).await;
    assert_eq!(route.plan, [pb::Channel::Email as i32], "{route:#?}");
    assert!(
        route
            .skipped
            .iter()
            .any(|s| s.channel == pb::Channel::Whatsapp as i32
                && s.reason == pb::SkipReason::ChannelUnhealthy as i32),
        "{route:#?}"
    );
    // After the cool-down a probe goes through and its success closes it.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let probe = send_text(&mut app, "+49 151 23456797").await;
    wait_status(&mut app, &probe.name, pb::MessageStatus::Sent).await;
    let route = preview(&mut app, &both.name).await;
    assert_eq!(
        route.plan.first(),
        Some(&(pb::Channel::Whatsapp as i32)),
        "{route:#?}"
    );
    assert!(
        !route
            .skipped
            .iter()
            .any(|s| s.reason == pb::SkipReason::ChannelUnhealthy as i32),
        "{route:#?}"
    );
}
