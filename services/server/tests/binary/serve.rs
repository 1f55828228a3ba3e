//! The `omniroute` binary as a user runs it: `omniroute serve` with no
//! settings at all starts on the embedded store, answers a stock gRPC client
//! (server reflection, grpc.health.v1), keeps its data across a restart, and
//! stops gracefully on SIGTERM.

use std::process::Command;

use omniroute_proto::v1 as pb;
use pb::contact_service_client::ContactServiceClient;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use crate::support::{identity, new_contact, start};

async fn list_services(channel: Channel) -> Vec<String> {
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let response = stream.message().await.unwrap().expect("one response");
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection response {other:?}"),
    }
}

async fn describe_symbol(channel: Channel, symbol: &str) -> usize {
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(symbol.to_owned())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    match stream.message().await.unwrap().unwrap().message_response {
        Some(MessageResponse::FileDescriptorResponse(files)) => files.file_descriptor_proto.len(),
        other => panic!("unexpected reflection response {other:?}"),
    }
}

#[tokio::test]
async fn serve_with_no_settings_uses_the_embedded_store_and_answers_stock_clients() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let channel = server.channel().await;

    let services = list_services(channel.clone()).await;
    for expected in [
        "omniroute.v1.ContactService",
        "omniroute.v1.PreferenceService",
        "omniroute.v1.MessagingService",
        "omniroute.v1.CallbackService",
        "omniroute.v1.EventService",
        "omniroute.v1.EndpointService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            services.iter().any(|s| s == expected),
            "{expected} not in {services:?}"
        );
    }
    // A stock client can fetch the schema it needs to build requests.
    assert!(describe_symbol(channel.clone(), "omniroute.v1.ContactService").await >= 1);

    let mut health = HealthClient::new(channel.clone());
    for service in [
        "",
        "omniroute.v1.ContactService",
        "omniroute.v1.PreferenceService",
    ] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }

    // The embedded store is a file in the working folder, and it keeps data
    // across a restart.
    let mut contacts = ContactServiceClient::new(channel);
    let created = contacts
        .create_contact(new_contact(
            "Anna",
            vec![identity(pb::Channel::Email, "anna@example.com")],
        ))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert!(dir.path().join("data/omniroute.db").is_file());
    drop((contacts, health));
    let status = server.terminate();
    assert!(
        status.success(),
        "graceful shutdown exits 0, got {status:?}"
    );

    let server = start(dir.path(), &[]);
    let mut contacts = ContactServiceClient::new(server.channel().await);
    let again = contacts
        .get_contact(pb::GetContactRequest {
            name: created.name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(again, created);
    drop(contacts);
    let status = server.terminate();
    assert!(
        status.success(),
        "graceful shutdown exits 0, got {status:?}"
    );
}

#[test]
fn invalid_settings_fail_fast_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_omniroute"))
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("OMNIROUTE__CONTACTS__DEFAULT_REGION", "Germany")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("contacts.default_region"), "{stderr}");
}
