//! Webhook deliveries end to end: a local receiver over HTTP gets each
//! event signed as Standard Webhooks says, each contact's in log order,
//! retried with the same webhook-id after a 500 or a timeout, later as a
//! 429's Retry-After asks; 410 and a long failure disable the endpoint
//! with an event; names resolving to private addresses are refused when
//! connecting; a replay delivers again; a rotation signs with both
//! secrets. Every attempt is in ListEndpointDeliveries.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use omniroute_e2e::TestApp;
use omniroute_proto::v1 as pb;
use pb::endpoint_service_client::EndpointServiceClient;
use sha2::Sha256;
use tonic::transport::Channel;

use crate::events::{next, subscribe, subscribe_to};
use crate::support::*;

crate::on_both_stores!(
    deliveries_are_signed_in_order_and_logged,
    failures_are_retried_with_the_same_id,
    retry_after_on_429_is_honoured,
    gone_disables_at_once_with_an_event,
    an_endpoint_failing_too_long_is_disabled,
    names_of_private_addresses_are_refused_when_connecting,
    a_replay_delivers_again,
    a_rotation_signs_with_both_secrets,
    a_test_event_reports_how_it_went,
    a_reset_connection_is_retried,
    a_slow_endpoint_holds_up_only_itself,
);

const WAIT: Duration = Duration::from_secs(30);

/// What the receiver answers next.
#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(u16),
    RetryAfter(u16, u64),
    /// Answers 200 after this long (longer than the delivery timeout).
    Slow(Duration),
}

/// A delivery as the receiver got it.
#[derive(Debug, Clone)]
struct Got {
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

impl Got {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Debug, Default)]
struct Inbox {
    got: Vec<Got>,
    script: VecDeque<Reply>,
}

#[derive(Debug, Clone, Default)]
struct Receiver(Arc<Mutex<Inbox>>);

impl Receiver {
    fn script(&self, replies: &[Reply]) {
        self.0
            .lock()
            .unwrap()
            .script
            .extend(replies.iter().copied());
    }

    fn got(&self) -> Vec<Got> {
        self.0.lock().unwrap().got.clone()
    }

    /// The deliveries, once at least `n` arrived.
    async fn wait_for(&self, n: usize) -> Vec<Got> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{n} deliveries expected, {} arrived",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn hook(
    State(receiver): State<Receiver>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> impl IntoResponse {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let reply = {
        let mut inbox = receiver.0.lock().unwrap();
        inbox.got.push(Got {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            body: body.to_vec(),
        });
        inbox.script.pop_front().unwrap_or(Reply::Status(200))
    };
    let mut answer_headers = HeaderMap::new();
    let status = match reply {
        Reply::Status(code) => code,
        Reply::RetryAfter(code, secs) => {
            answer_headers.insert("retry-after", secs.to_string().parse().unwrap());
            code
        }
        Reply::Slow(wait) => {
            tokio::time::sleep(wait).await;
            200
        }
    };
    (StatusCode::from_u16(status).unwrap(), answer_headers, "")
}

/// A receiver on loopback, and its URL.
async fn receiver() -> (String, Receiver) {
    let receiver = Receiver::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://127.0.0.1:{port}/hook"), receiver)
}

/// The app again, delivering to loopback with quick retries.
async fn delivering(
    app: TestApp,
    adjust: impl FnOnce(&mut omniroute::settings::Settings),
) -> TestApp {
    app.respawn_with(|s| {
        s.endpoints.allow_http_loopback = true;
        s.endpoints.retry_schedule_secs = vec![1];
        s.endpoints.poll_interval_ms = 100;
        adjust(s);
    })
    .await
}

fn client(app: &TestApp) -> EndpointServiceClient<Channel> {
    EndpointServiceClient::new(app.channel.clone())
}

async fn register(app: &TestApp, url: &str, types: &[pb::EventType]) -> (pb::Endpoint, String) {
    let created = client(app)
        .create_endpoint(pb::CreateEndpointRequest {
            endpoint: Some(pb::Endpoint {
                url: url.to_owned(),
                event_types: types.iter().map(|t| *t as i32).collect(),
                ..Default::default()
            }),
        })
        .await
        .expect("create_endpoint")
        .into_inner();
    (created.endpoint.unwrap(), created.secret)
}

async fn deliveries(app: &TestApp, endpoint: &pb::Endpoint) -> Vec<pb::EndpointDelivery> {
    client(app)
        .list_endpoint_deliveries(pb::ListEndpointDeliveriesRequest {
            name: endpoint.name.clone(),
            page_size: 1000,
            page_token: String::new(),
        })
        .await
        .expect("list_endpoint_deliveries")
        .into_inner()
        .deliveries
}

/// The endpoint's attempts, once `n` were logged.
async fn logged(app: &TestApp, endpoint: &pb::Endpoint, n: usize) -> Vec<pb::EndpointDelivery> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let attempts = deliveries(app, endpoint).await;
        if attempts.len() >= n {
            return attempts;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} attempts expected: {attempts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get_endpoint(app: &TestApp, endpoint: &pb::Endpoint) -> pb::Endpoint {
    client(app)
        .get_endpoint(pb::GetEndpointRequest {
            name: endpoint.name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .endpoint
        .unwrap()
}

/// The endpoint, once the router disabled it.
async fn disabled(app: &TestApp, endpoint: &pb::Endpoint) -> pb::Endpoint {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let read = get_endpoint(app, endpoint).await;
        if read.disabled {
            return read;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not disabled: {read:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `got` carries a valid signature by `secret` (the specification's
/// verification, written here again).
fn signed_by(got: &Got, secret: &str) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", got.id, got.timestamp).as_bytes());
    mac.update(&got.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    got.signature.split(' ').any(|s| s == expected)
}

fn outcome(d: &pb::EndpointDelivery) -> pb::DeliveryOutcome {
    pb::DeliveryOutcome::try_from(d.outcome).unwrap()
}

async fn deliveries_are_signed_in_order_and_logged(app: TestApp) {
    let mut app = delivering(app, |_| {}).await;
    let (url, receiver) = receiver().await;
    let (endpoint, secret) = register(&app, &url, &[]).await;
    let anna = create(&mut app, "Anna", vec![email("anna@example.com")]).await;
    let bert = create(&mut app, "Bert", vec![email("bert@example.com")]).await;
    for n in 0..3 {
        send_text(&mut app, &anna.name, &format!("Anna {n}")).await;
        send_text(&mut app, &bert.name, &format!("Bert {n}")).await;
    }
    // Two contacts, three messages each: at least their creation and
    // acceptance, for each.
    let deadline = tokio::time::Instant::now() + WAIT;
    let got = loop {
        let got = receiver.got();
        let of = |c: &str| got.iter().filter(|g| g.json()["contact"] == c).count();
        if of(&anna.name) >= 4 && of(&bert.name) >= 4 {
            break got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} deliveries",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for g in &got {
        assert!(signed_by(g, &secret), "not signed by the secret: {g:?}");
        let body = g.json();
        assert_eq!(body["cursor"], g.id, "webhook-id is the event's cursor");
        assert!(body["type"].as_str().unwrap().starts_with("EVENT_TYPE_"));
        let ts: u64 = g.timestamp.parse().unwrap();
        assert!(ts.abs_diff(now) < 300, "timestamp in seconds");
    }
    // Each contact's events arrive in log order.
    for contact in [&anna.name, &bert.name] {
        let ids: Vec<&String> = got
            .iter()
            .filter(|g| g.json()["contact"] == contact.as_str())
            .map(|g| &g.id)
            .collect();
        assert!(ids.len() >= 4, "{contact}: {ids:?}");
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{contact}: {ids:?}");
    }
    let attempts = logged(&app, &endpoint, got.len()).await;
    let delivered: Vec<&pb::EndpointDelivery> = attempts
        .iter()
        .filter(|a| outcome(a) == pb::DeliveryOutcome::Delivered)
        .collect();
    assert!(delivered.len() >= got.len().min(8));
    assert!(
        delivered
            .iter()
            .all(|a| a.status_code == 200 && a.error.is_empty())
    );
}

async fn failures_are_retried_with_the_same_id(app: TestApp) {
    let mut app = delivering(app, |s| s.endpoints.timeout_secs = 1).await;
    let (url, receiver) = receiver().await;
    receiver.script(&[Reply::Status(500), Reply::Slow(Duration::from_secs(3))]);
    let (endpoint, _) = register(&app, &url, &[pb::EventType::ContactCreated]).await;
    create(&mut app, "Anna", vec![email("anna@example.com")]).await;
    let got = receiver.wait_for(3).await;
    assert!(
        got.iter().all(|g| g.id == got[0].id),
        "the same webhook-id: {got:?}"
    );
    let attempts = logged(&app, &endpoint, 3).await;
    // Newest first: delivered, timed out, answered 500.
    assert_eq!(outcome(&attempts[0]), pb::DeliveryOutcome::Delivered);
    assert_eq!(outcome(&attempts[1]), pb::DeliveryOutcome::Failed);
    assert!(attempts[1].error.contains("timed out"), "{:?}", attempts[1]);
    assert_eq!(attempts[2].status_code, 500);
    assert!(attempts[2].next_try_time.is_some());
    assert!(attempts.iter().all(|a| a.event_cursor == got[0].id));
    assert!(!get_endpoint(&app, &endpoint).await.disabled);
}

/// A proxy to `target` (host:port) that resets its first `resets`
/// connections once a request started arriving; its URL.
async fn resetting(target: &str, resets: usize) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let target = target.to_owned();
    tokio::spawn(async move {
        let mut left = resets;
        while let Ok((mut inbound, _)) = listener.accept().await {
            if left > 0 {
                left -= 1;
                let mut some = [0u8; 16];
                let _ = tokio::io::AsyncReadExt::read(&mut inbound, &mut some).await;
                // An abortive close: RST, not FIN.
                let _ = inbound.set_zero_linger();
                drop(inbound);
                continue;
            }
            let target = target.clone();
            tokio::spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect(target).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    format!("http://127.0.0.1:{port}/hook")
}

async fn a_reset_connection_is_retried(app: TestApp) {
    let mut app = delivering(app, |_| {}).await;
    let (url, receiver) = receiver().await;
    let target = url.trim_start_matches("http://").trim_end_matches("/hook");
    let proxy = resetting(target, 1).await;
    let (endpoint, _) = register(&app, &proxy, &[pb::EventType::ContactCreated]).await;
    create(&mut app, "Anna", vec![email("anna@example.com")]).await;
    let got = receiver.wait_for(1).await;
    let attempts = logged(&app, &endpoint, 2).await;
    assert_eq!(outcome(&attempts[0]), pb::DeliveryOutcome::Delivered);
    assert_eq!(outcome(&attempts[1]), pb::DeliveryOutcome::Failed);
    assert_eq!(attempts[1].status_code, 0, "no answer: {:?}", attempts[1]);
    assert_eq!(attempts[1].event_cursor, got[0].id);
}

async fn a_slow_endpoint_holds_up_only_itself(app: TestApp) {
    let mut app = delivering(app, |s| s.endpoints.timeout_secs = 60).await;
    let (slow_url, slow) = receiver().await;
    slow.script(&[Reply::Slow(Duration::from_secs(120)); 10]);
    let (quick_url, quick) = receiver().await;
    let types = [pb::EventType::ContactCreated];
    let (stuck, _) = register(&app, &slow_url, &types).await;
    register(&app, &quick_url, &types).await;
    let mut stream = subscribe_to(&mut app, pb::EventType::ContactCreated).await;
    create(&mut app, "Anna", vec![email("anna@example.com")]).await;
    // The quick endpoint gets the event, and sends go on, while the slow
    // one is still waiting for its first answer.
    quick.wait_for(1).await;
    next(&mut stream).await;
    let bert = create(&mut app, "Bert", vec![email("bert@example.com")]).await;
    send_text(&mut app, &bert.name, "hi").await;
    quick.wait_for(2).await;
    assert!(!slow.got().is_empty(), "the slow endpoint was asked");
    assert!(
        deliveries(&app, &stuck).await.is_empty(),
        "no attempt finished"
    );
}

async fn retry_after_on_429_is_honoured(app: TestApp) {
    let mut app = delivering(app, |_| {}).await;
    let (url, receiver) = receiver().await;
    receiver.script(&[Reply::RetryAfter(429, 3)]);
    let (endpoint, _) = register(&app, &url, &[pb::EventType::ContactCreated]).await;
    create(&mut app, "Anna", vec![email("anna@example.com")]).await;
    receiver.wait_for(2).await;
    let attempts = logged(&app, &endpoint, 2).await;
    let busy = &attempts[1];
    assert_eq!(busy.status_code, 429);
    let tried = busy.attempt_time.unwrap().seconds;
    let again = busy.next_try_time.unwrap().seconds;
    // The schedule says about 1 s; the endpoint asked for 3.
    assert!(again - tried >= 3, "{busy:?}");
    assert_eq!(outcome(&attempts[0]), pb::DeliveryOutcome::Delivered);
}

async fn gone_disables_at_once_with_an_event(app: TestApp) {
    let mut app = delivering(app, |_| {}).await;
    let (url, receiver) = receiver().await;
    receiver.script(&[Reply::Status(410)]);
    let (endpoint, _) = register(&app, &url, &[pb::EventType::ContactCreated]).await;
    let mut stream = subscribe_to(&mut app, pb::EventType::EndpointDisabled).await;
    create(&mut app, "Anna", vec![email("anna@example.com")]).await;
    let read = disabled(&app, &endpoint).await;
    assert!(read.disabled_reason.contains("410"), "{read:?}");
    let event = next(&mut stream).await;
    match event.payload {
        Some(pb::event::Payload::EndpointNotice(notice)) => {
            assert_eq!(notice.endpoint, endpoint.name);
            assert!(notice.reason.contains("410"));
        }
        other => panic!("an endpoint notice expected: {other:?}"),
    }
    assert_eq!(receiver.got().len(), 1, "nothing after 410");
    let attempts = deliveries(&app, &endpoint).await;
    assert_eq!(attempts[0].next_try_time, None, "disabled: no next try");
}

async fn an_endpoint_failing_too_long_is_disabled(app: TestApp) {
    let mut app = delivering(app, |s| s.endpoints.disable_after_secs = 2).await;
    let (url, receiver) = receiver().await;
    receiver.script(&[Reply::Status(503); 100]);
    let (endpoint, _) = register(&app, &url, &[pb::EventType::ContactCreated]).await;
    create(&mut app, "Anna", vec![email("anna@example.com")]).await;
    let read = disabled(&app, &endpoint).await;
    assert!(read.disabled_reason.contains("failed for"), "{read:?}");
    assert!(receiver.got().len() >= 2, "retried before giving up");
    // Enabled again, it delivers (the receiver now answers 200).
    receiver.0.lock().unwrap().script.clear();
    let before = receiver.got().len();
    client(&app)
        .update_endpoint(pb::UpdateEndpointRequest {
            endpoint: Some(pb::Endpoint {
                name: endpoint.name.clone(),
                disabled: false,
                ..Default::default()
            }),
            update_mask: mask(&["disabled"]),
        })
        .await
        .unwrap();
    receiver.wait_for(before + 1).await;
    let attempts = logged(&app, &endpoint, before + 1).await;
    assert_eq!(outcome(&attempts[0]), pb::DeliveryOutcome::Delivered);
}

async fn names_of_private_addresses_are_refused_when_connecting(app: TestApp) {
    let (url, receiver) = receiver().await;
    let port = url
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches("/hook");
    let mut app = delivering(app, |s| {
        s.endpoints
            .resolve
            .insert("hooks.evil.test".into(), IpAddr::from([127, 0, 0, 1]));
        s.endpoints.resolve.insert(
            "metadata.evil.test".into(),
            IpAddr::from([169, 254, 169, 254]),
        );
    })
    .await;
    let (local, _) = register(
        &app,
        &format!("https://hooks.evil.test:{port}/hook"),
        &[pb::EventType::ContactCreated],
    )
    .await;
    let (metadata, _) = register(
        &app,
        "https://metadata.evil.test/latest/meta-data/",
        &[pb::EventType::ContactCreated],
    )
    .await;
    create(&mut app, "Anna", vec![email("anna@example.com")]).await;
    let refused = logged(&app, &local, 1).await;
    assert!(
        refused[0].error.contains("resolves to a loopback address"),
        "{refused:?}"
    );
    let refused = logged(&app, &metadata, 1).await;
    assert!(
        refused[0]
            .error
            .contains("resolves to a link-local address"),
        "{refused:?}"
    );
    assert!(
        receiver.got().is_empty(),
        "nothing reached the loopback receiver"
    );
}

async fn a_replay_delivers_again(app: TestApp) {
    let mut app = delivering(app, |_| {}).await;
    let (url, receiver) = receiver().await;
    let (endpoint, _) = register(&app, &url, &[pb::EventType::ContactCreated]).await;
    for name in ["Anna", "Bert", "Carl"] {
        create(&mut app, name, vec![email(&format!("{name}@example.com"))]).await;
    }
    let got = receiver.wait_for(3).await;
    let mut ids: Vec<String> = got.iter().map(|g| g.id.clone()).collect();
    ids.sort();
    let replayed = client(&app)
        .replay_endpoint(pb::ReplayEndpointRequest {
            name: endpoint.name.clone(),
            after_cursor: ids[0].clone(),
            start_time: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replayed.endpoint.unwrap().name, endpoint.name);
    let again = receiver.wait_for(5).await;
    let mut second: Vec<String> = again[got.len()..].iter().map(|g| g.id.clone()).collect();
    second.sort();
    assert_eq!(
        second,
        ids[1..].to_vec(),
        "every event after the cursor, again"
    );
    // From a time: every event from then on.
    let before = receiver.got().len();
    client(&app)
        .replay_endpoint(pb::ReplayEndpointRequest {
            name: endpoint.name.clone(),
            after_cursor: String::new(),
            start_time: Some(prost_types::Timestamp::default()),
        })
        .await
        .unwrap();
    let again = receiver.wait_for(before + 3).await;
    let mut third: Vec<String> = again[before..].iter().map(|g| g.id.clone()).collect();
    third.sort();
    assert_eq!(third, ids);
    let both = client(&app)
        .replay_endpoint(pb::ReplayEndpointRequest {
            name: endpoint.name.clone(),
            after_cursor: ids[0].clone(),
            start_time: Some(prost_types::Timestamp::default()),
        })
        .await
        .unwrap_err();
    assert_invalid(&both, "start_time");
    // A cursor this log never issued is refused.
    let refused = client(&app)
        .replay_endpoint(pb::ReplayEndpointRequest {
            name: endpoint.name.clone(),
            after_cursor: format!("{:016x}{:016x}", 0, 999_999_999),
            start_time: None,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::OutOfRange, "{refused:?}");
}

async fn a_rotation_signs_with_both_secrets(app: TestApp) {
    let mut app = delivering(app, |_| {}).await;
    let (url, receiver) = receiver().await;
    let (endpoint, old) = register(&app, &url, &[pb::EventType::ContactCreated]).await;
    let new = client(&app)
        .rotate_endpoint_secret(pb::RotateEndpointSecretRequest {
            name: endpoint.name.clone(),
            previous_secret_grace: None,
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    create(&mut app, "Anna", vec![email("anna@example.com")]).await;
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].signature.split(' ').count(), 2);
    assert!(signed_by(&got[0], &old));
    assert!(signed_by(&got[0], &new));
    // Without a grace, only the new secret signs.
    client(&app)
        .rotate_endpoint_secret(pb::RotateEndpointSecretRequest {
            name: endpoint.name.clone(),
            previous_secret_grace: Some(prost_types::Duration::default()),
        })
        .await
        .unwrap();
    create(&mut app, "Bert", vec![email("bert@example.com")]).await;
    let got = receiver.wait_for(2).await;
    assert_eq!(got[1].signature.split(' ').count(), 1);
    assert!(!signed_by(&got[1], &new), "the second rotation replaced it");
}

async fn a_test_event_reports_how_it_went(app: TestApp) {
    let app = delivering(app, |_| {}).await;
    let (url, receiver) = receiver().await;
    let (endpoint, secret) = register(&app, &url, &[pb::EventType::MessageFailed]).await;
    let test = |name: String| pb::SendTestEventRequest { name };
    let sent = client(&app)
        .send_test_event(test(endpoint.name.clone()))
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(outcome(&sent), pb::DeliveryOutcome::Delivered);
    assert_eq!(sent.status_code, 200);
    let got = receiver.got();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, sent.event_cursor);
    assert!(got[0].id.starts_with("test_"));
    assert!(signed_by(&got[0], &secret));
    let body = got[0].json();
    assert_eq!(body["type"], "EVENT_TYPE_ENDPOINT_TEST");
    assert_eq!(body["endpointNotice"]["endpoint"], endpoint.name.as_str());
    // Not logged, not retried.
    assert!(deliveries(&app, &endpoint).await.is_empty());
    // To an endpoint that does not answer: how it failed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (dead, _) = register(&app, &format!("http://127.0.0.1:{port}/"), &[]).await;
    let failed = client(&app)
        .send_test_event(test(dead.name.clone()))
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(outcome(&failed), pb::DeliveryOutcome::Failed);
    assert_eq!(failed.status_code, 0);
    assert!(failed.error.contains("connect"), "{failed:?}");
    let missing = client(&app)
        .send_test_event(test(
            "endpoints/01a25299-a186-740c-a00c-60adaa07e99c".into(),
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
}

/// Two replicas on one database, one killed while it delivers: every event
/// still arrives, each contact's in order (first arrivals), and only events
/// in flight at the kill arrive twice.
#[tokio::test]
async fn two_replicas_deliver_every_event_while_one_is_killed() {
    let (url, receiver) = receiver().await;
    let adjust = |s: &mut omniroute::settings::Settings| {
        s.endpoints.allow_http_loopback = true;
        s.endpoints.retry_schedule_secs = vec![1];
        s.endpoints.poll_interval_ms = 100;
        s.endpoints.lease_secs = 3;
    };
    let mut first = TestApp::spawn_with(omniroute_e2e::Backend::Postgres, adjust).await;
    let mut second = first.replica_with(adjust).await;
    // Slow answers, so the kill finds deliveries in flight.
    receiver.script(&[Reply::Slow(Duration::from_millis(100)); 30]);
    let (endpoint, _) = register(&first, &url, &[]).await;
    let mut contacts = Vec::new();
    for name in ["Anna", "Bert", "Carl"] {
        contacts.push(
            create(
                &mut first,
                name,
                vec![email(&format!("{name}@example.com"))],
            )
            .await,
        );
    }
    for round in 0..4 {
        for contact in &contacts {
            send_text(&mut first, &contact.name, &format!("update {round}")).await;
        }
    }
    receiver.wait_for(5).await;
    first.kill().await;
    // Every event of the log reaches the endpoint.
    let mut stream = subscribe(&mut second, from_the_beginning()).await;
    let mut expected = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(3), stream.message()).await;
        match event {
            Ok(Ok(Some(response))) => expected.push(response.event.unwrap().cursor),
            _ => break,
        }
    }
    assert!(expected.len() >= 15, "{} events", expected.len());
    let deadline = tokio::time::Instant::now() + WAIT;
    let got = loop {
        let got = receiver.got();
        let ids: std::collections::HashSet<&String> = got.iter().map(|g| &g.id).collect();
        if expected.iter().all(|c| ids.contains(c)) {
            break got;
        }
        assert!(tokio::time::Instant::now() < deadline, "missing deliveries");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut seen = std::collections::HashSet::new();
    let firsts: Vec<&Got> = got.iter().filter(|g| seen.insert(g.id.clone())).collect();
    for contact in &contacts {
        let ids: Vec<&String> = firsts
            .iter()
            .filter(|g| g.json()["contact"] == contact.name.as_str())
            .map(|g| &g.id)
            .collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{}: {ids:?}",
            contact.name
        );
    }
    let repeats = got.len() - firsts.len();
    assert!(
        repeats <= 8,
        "{repeats} repeats: only those in flight at the kill"
    );
    assert!(!get_endpoint(&second, &endpoint).await.disabled);
}
