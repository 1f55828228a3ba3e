//! What the logs may hold: a run at debug level that creates a contact,
//! sends to it, takes a customer's message by webhook and refuses a bad
//! request writes neither a raw phone number nor a raw email address nor a
//! secret into any line (masked forms only).

use omniroute_proto::v1 as pb;
use pb::contact_service_client::ContactServiceClient;
use pb::messaging_service_client::MessagingServiceClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{identity, new_contact, start, text};

const SECRET: &str = "sandbox-secret-8d1f0c";
const EMAIL: &str = "zora.leakcheck@example.com";
const PHONE_DIGITS: &str = "4915177770123";

async fn post(addr: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test]
async fn logs_mask_addresses_and_never_hold_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &[
            (
                "OMNIROUTE__LOG__FILTER",
                "debug,h2=info,hyper=info,tower=info,rustls=info",
            ),
            ("OMNIROUTE__SANDBOX__WEBHOOK_SECRET", SECRET),
            ("OMNIROUTE__ROUTING__WHATSAPP_OPT_IN_REQUIRED", "false"),
        ],
    );
    let channel = server.channel().await;
    let mut contacts = ContactServiceClient::new(channel.clone());
    let mut messaging = MessagingServiceClient::new(channel);
    let contact = contacts
        .create_contact(new_contact(
            "Zora",
            vec![
                identity(pb::Channel::Email, EMAIL),
                identity(pb::Channel::Whatsapp, "+49 151 77770123"),
            ],
        ))
        .await
        .expect("created")
        .into_inner()
        .contact
        .unwrap();
    // The customer writes on WhatsApp (the sandbox's webhook, signed).
    let body =
        format!(r#"{{"messages":[{{"id":"in-logs-1","from":"+{PHONE_DIGITS}","text":"hello"}}]}}"#);
    let signature = format!(
        "sha256={}",
        omniroute_channel::signature::hmac_sha256_hex(SECRET, body.as_bytes())
    );
    let answer = post(
        server.http_addr(),
        "/webhooks/whatsapp",
        &[
            ("Content-Type", "application/json".into()),
            ("X-Hub-Signature-256", signature),
        ],
        body.as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    for recipient in [
        pb::send_message_request::Recipient::Contact(contact.name.clone()),
        pb::send_message_request::Recipient::Address(identity(pb::Channel::Email, EMAIL)),
    ] {
        messaging
            .send_message(pb::SendMessageRequest {
                recipient: Some(recipient),
                message: Some(text("Your order shipped")),
                idempotency_key: String::new(),
            })
            .await
            .expect("accepted");
    }
    // A refused request names the address it refused.
    let refused = contacts
        .create_contact(new_contact("", vec![identity(pb::Channel::Email, EMAIL)]))
        .await
        .expect_err("the address is taken");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    // Let the sandbox deliver and read.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let log = server.log();
    server.terminate();

    assert!(
        log.iter().any(|l| l.contains("inbound message")),
        "the run logged at debug level: {} lines",
        log.len()
    );
    let needles = [
        EMAIL,
        "zora.leakcheck",
        PHONE_DIGITS,
        "151 77770123",
        "15177770123",
        SECRET,
    ];
    let leaks: Vec<(&str, &String)> = needles
        .iter()
        .flat_map(|n| {
            log.iter()
                .filter(move |l| l.contains(n))
                .map(move |l| (*n, l))
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "raw addresses or secrets in the logs: {leaks:#?}"
    );
}
