//! Graph API failures, classified by `error.code` (number or string), and
//! failures without any Graph answer.

use std::time::{Duration, SystemTime};

use omniroute_channel::{Adapter, ErrorClass};
use omniroute_whatsapp::{SPAM_LIMIT_BACKOFF, WhatsAppAdapter};
use serde_json::{Value, json};

use crate::*;

#[tokio::test]
async fn each_error_class_from_representative_codes() {
    use ErrorClass::*;
    let table: &[(u16, Value, ErrorClass)] = &[
        (400, json!(131047), WindowClosed),
        (400, json!("131047"), WindowClosed),
        (400, json!(131026), Permanent),
        (400, json!(131050), OptedOut),
        (400, json!(131049), Permanent),
        (429, json!(130429), RateLimited),
        (400, json!("130429"), RateLimited),
        (400, json!(131056), RateLimited),
        (400, json!(4), RateLimited),
        (400, json!(80007), RateLimited),
        (400, json!(131048), RateLimited),
        (500, json!(131000), Transient),
        (503, json!(131016), Transient),
        (503, json!(133004), Transient),
        (400, json!(133005), Transient),
        (400, json!(131057), Transient),
        (401, json!(0), Configuration),
        (401, json!(190), Configuration),
        (403, json!(3), Configuration),
        (403, json!(10), Configuration),
        (403, json!(200), Configuration),
        (403, json!("299"), Configuration),
        (400, json!(100), Permanent),
        (400, json!(131008), Permanent),
        (400, json!(131009), Permanent),
        (400, json!(131051), Permanent),
        (400, json!(132000), Permanent),
        (400, json!(132001), Permanent),
        (400, json!(132005), Permanent),
        (400, json!(132007), Permanent),
        (400, json!(132012), Permanent),
        (400, json!(132015), Permanent),
        (400, json!(132016), Permanent),
        (400, json!(131031), Configuration),
        (400, json!(368), Configuration),
        (400, json!(130497), Configuration),
        (400, json!(131030), Permanent),
        // The code decides, not the HTTP status: a 500 with a permanent code.
        (500, json!(100), Permanent),
        // Unknown codes are transient and keep their code.
        (400, json!(987654), Transient),
        (400, json!("987654"), Transient),
    ];
    let (fake, adapter) = setup().await;
    for (status, code, class) in table {
        fake.fail_next(1, *status, code.clone(), None);
        let e = adapter.send(&message(text("Hallo"))).await.unwrap_err();
        let code_text = match code {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        assert_eq!(e.class(), *class, "HTTP {status} code {code}");
        assert_eq!(e.code(), code_text, "HTTP {status} code {code}");
        assert_eq!(
            e.is_retryable(),
            matches!(class, Transient | RateLimited),
            "code {code}"
        );
    }
    assert_eq!(fake.requests().len(), table.len());
}

#[tokio::test]
async fn spam_rate_limit_backs_off_long() {
    let (fake, adapter) = setup().await;
    fake.fail_next(1, 400, 131048, None);
    let e = adapter.send(&message(text("Hallo"))).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::RateLimited);
    assert_eq!(e.retry_after(), Some(SPAM_LIMIT_BACKOFF));
}

#[tokio::test]
async fn throughput_limit_with_retry_after_then_success() {
    let (fake, adapter) = setup().await;
    fake.fail_next(1, 429, 130429, Some("2"));
    let e = adapter.send(&message(text("Hallo"))).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::RateLimited);
    assert_eq!(e.code(), "130429");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));

    // The dispatcher retries after the delay; the same message goes through.
    let receipt = adapter.send(&message(text("Hallo"))).await.unwrap();
    assert!(receipt.provider_message_id.starts_with("wamid."));
    let sent = fake.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0], sent[1]);
}

#[tokio::test]
async fn retry_after_as_an_http_date() {
    let (fake, adapter) = setup().await;
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
    fake.fail_next(1, 400, "131056", Some(&date));
    let e = adapter.send(&message(text("Hallo"))).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::RateLimited);
    let wait = e.retry_after().unwrap();
    assert!(
        wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
        "{wait:?}"
    );
}

#[tokio::test]
async fn server_errors_without_a_graph_body_are_transient() {
    let (fake, adapter) = setup().await;
    // A code of null: the body has no usable code, only the status is left.
    fake.fail_next(1, 503, Value::Null, None);
    let e = adapter.send(&message(text("Hallo"))).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient);
    assert_eq!(e.code(), "http_503");
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let adapter = WhatsAppAdapter::new(config(&format!("http://{address}"))).unwrap();
    let e = adapter.send(&message(text("Hallo"))).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient);
    assert_eq!(e.code(), "connection");
    assert!(!e.message().contains(TOKEN));
}

#[tokio::test]
async fn a_provider_that_never_answers_times_out_as_transient() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut config = config(&format!("http://{address}"));
    config.request_timeout = Duration::from_millis(200);
    let adapter = WhatsAppAdapter::new(config).unwrap();
    let e = adapter.send(&message(text("Hallo"))).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient);
    assert_eq!(e.code(), "timeout");
    server.abort();
}

#[tokio::test]
async fn an_accepted_answer_without_a_wamid_is_transient() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A server answering every request 200 with an empty JSON object.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buffer = vec![0u8; 64 * 1024];
            let _ = socket.read(&mut buffer).await;
            let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    let adapter = WhatsAppAdapter::new(config(&format!("http://{address}"))).unwrap();
    let e = adapter.send(&message(text("Hallo"))).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient);
    assert_eq!(e.code(), "malformed_response");
    server.abort();
}
