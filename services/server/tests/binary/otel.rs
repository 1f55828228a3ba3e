//! Traces over OTLP (a build with the `otel` feature): a caller's W3C
//! trace context is taken from its gRPC metadata, and the message it sends
//! is followed in that one trace from SendMessage through dispatch to the
//! provider call, exported to an OTLP/HTTP collector (here a local one that
//! decodes what it receives); the provider's API hears of the trace in the
//! `traceparent` header.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use omniroute_proto::v1 as pb;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

use crate::support::{get_message, identity, start, text_to_address};

/// A span as the collector received it: its name, ids and parent.
#[derive(Debug, Clone)]
struct Received {
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent: Vec<u8>,
}

/// A local OTLP/HTTP collector (`POST /v1/traces`, protobuf); its address
/// and what it received.
async fn collector() -> (std::net::SocketAddr, Arc<Mutex<Vec<Received>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&spans);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let kept = Arc::clone(&kept);
            async move {
                let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                    return axum::http::StatusCode::BAD_REQUEST;
                };
                let mut kept = kept.lock().unwrap();
                for resource in request.resource_spans {
                    for scope in resource.scope_spans {
                        for span in scope.spans {
                            kept.push(Received {
                                name: span.name,
                                trace_id: span.trace_id,
                                span_id: span.span_id,
                                parent: span.parent_span_id,
                            });
                        }
                    }
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, spans)
}

/// A text to `address` on `channel`, sent in the caller's trace.
fn traced_send(
    traceparent: &str,
    channel: pb::Channel,
    address: &str,
    body: &str,
) -> tonic::Request<pb::SendMessageRequest> {
    let mut request = tonic::Request::new(text_to_address(identity(channel, address), body));
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    request
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// Two workers: the collector answers while the test waits for the
// process to exit (the wait blocks its thread).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_one_trace_from_send_through_dispatch_to_the_provider() {
    use omniroute_voice::fake::FakeTwilio;
    const ACCOUNT: &str = "AC00000000000000000000000000000009";
    const TOKEN: &str = "traced-auth-token";
    let (addr, spans) = collector().await;
    let twilio = FakeTwilio::start(ACCOUNT, TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("omniroute.toml");
    std::fs::write(
        &config,
        format!(
            "[voice]\nenabled = true\napi_base = \"{}\"\naccount_sid = \"{ACCOUNT}\"\n\
             public_base_url = \"https://router.traced.example\"\n\
             numbers = [{{ tenant = \"default\", number = \"+4930123456\" }}]\n",
            twilio.base_url()
        ),
    )
    .unwrap();
    let config = config.to_string_lossy().into_owned();
    let endpoint = format!("http://{addr}/v1/traces");
    let server = start(
        dir.path(),
        &[
            ("OMNIROUTE_CONFIG", config.as_str()),
            ("OMNIROUTE__VOICE__AUTH_TOKEN", TOKEN),
            ("OMNIROUTE__LOG__OTLP_ENDPOINT", endpoint.as_str()),
            ("OMNIROUTE__SANDBOX__DELIVERY_DELAY_MS", "20"),
            ("OMNIROUTE__DISPATCH__POLL_INTERVAL_MS", "20"),
        ],
    );
    let channel = server.channel().await;
    // The caller's trace.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_id}-{caller_span}-01");
    let request = traced_send(
        &traceparent,
        pb::Channel::Email,
        "traced@example.com",
        "Your order has shipped",
    );
    let mut messaging = pb::messaging_service_client::MessagingServiceClient::new(channel.clone());
    let message = messaging
        .send_message(request)
        .await
        .expect("accepted")
        .into_inner()
        .message
        .unwrap();
    // Sent and delivered.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = get_message(&channel, &message.name).await;
        if got.status == pb::MessageStatus::Delivered as i32
            || got.status == pb::MessageStatus::Read as i32
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{got:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A call placed through the telephony provider, in the same trace.
    let call = traced_send(
        &traceparent,
        pb::Channel::Voice,
        "+4915112345678",
        "Your table is ready",
    );
    messaging.send_message(call).await.expect("accepted");
    while twilio.calls().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no call placed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(messaging);
    drop(channel);
    // Stopping flushes the spans still queued.
    assert!(server.terminate().success());
    let spans = spans.lock().unwrap().clone();
    let ours: Vec<&Received> = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == trace_id)
        .collect();
    let names: Vec<&str> = ours.iter().map(|s| s.name.as_str()).collect();
    for wanted in ["grpc", "dispatch", "provider.send"] {
        assert!(
            names.contains(&wanted),
            "no {wanted} span in the caller's trace: {names:?} (all: {spans:#?})"
        );
    }
    // The server's span of the call is the child of the caller's.
    assert!(
        ours.iter()
            .any(|s| s.name == "grpc" && hex(&s.parent) == caller_span),
        "{ours:#?}"
    );
    // The provider's API was called in the trace, as a child of the
    // provider call's span.
    let header = twilio.calls()[0]
        .traceparent
        .clone()
        .expect("the call request carries a traceparent");
    let parts: Vec<&str> = header.split('-').collect();
    assert_eq!(parts.len(), 4, "{header}");
    assert_eq!(parts[1], trace_id, "{header}");
    assert!(
        ours.iter()
            .any(|s| s.name == "provider.send" && hex(&s.span_id) == parts[2]),
        "{header} names no provider.send span: {ours:#?}"
    );
}
