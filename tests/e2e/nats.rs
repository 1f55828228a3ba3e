//! The event log published to NATS JetStream (feature `nats`), against the
//! machine's NATS server with JetStream: every event once, in log order,
//! its cursor as Nats-Msg-Id, across a cut connection to NATS and a
//! restart of omniroute.

use std::time::Duration;

use async_nats::jetstream;
use omniroute_e2e::TestApp;
use omniroute_e2e::faults::TcpProxy;
use omniroute_proto::v1 as pb;

use crate::events::subscribe;
use crate::support::*;

crate::on_both_stores!(every_event_reaches_jetstream_once_in_order_across_cuts_and_restarts);

const NATS: &str = "127.0.0.1:4222";

/// The stream's messages, once at least `n` are stored.
async fn stored(js: &jetstream::Context, stream: &str, n: u64) -> Vec<(String, String, String)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let Ok(mut handle) = js.get_stream(stream).await else {
            assert!(tokio::time::Instant::now() < deadline, "no stream {stream}");
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let count = handle.info().await.unwrap().state.messages;
        if count >= n {
            let mut out = Vec::new();
            for seq in 1..=count {
                let m = handle.get_raw_message(seq).await.unwrap();
                let id = m
                    .headers
                    .get("Nats-Msg-Id")
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default();
                let body: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
                out.push((
                    m.subject.to_string(),
                    id,
                    body["cursor"].as_str().unwrap().to_owned(),
                ));
            }
            return out;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{count} of {n} stored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn every_event_reaches_jetstream_once_in_order_across_cuts_and_restarts(app: TestApp) {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let prefix = format!("omr{}", &run[20..]);
    let stream = prefix.to_uppercase();
    let proxy = TcpProxy::start(NATS.parse().unwrap()).await;
    let (url, stream_name, subject_prefix) = (
        format!("nats://{}", proxy.addr()),
        stream.clone(),
        prefix.clone(),
    );
    let adjust = move |s: &mut omniroute::settings::Settings| {
        s.nats.enabled = true;
        s.nats.url = url.clone();
        s.nats.stream = stream_name.clone();
        s.nats.subject_prefix = subject_prefix.clone();
        s.nats.poll_interval_ms = 100;
        s.nats.lease_secs = 3;
    };
    let mut app = app.restart_with(adjust.clone()).await;
    let client = async_nats::connect(NATS)
        .await
        .expect("NATS runs on 127.0.0.1:4222");
    let js = jetstream::new(client);

    create(&mut app, "Anna", vec![email("anna@example.com")]).await;
    create(&mut app, "Bert", vec![email("bert@example.com")]).await;
    stored(&js, &stream, 2).await;
    // The connection to NATS breaks: publishing resumes after it.
    proxy.cut();
    proxy.restore();
    create(&mut app, "Carl", vec![email("carl@example.com")]).await;
    stored(&js, &stream, 3).await;
    // omniroute restarts: it goes on where it stood.
    let mut app = app.restart_with(adjust).await;
    create(&mut app, "Dora", vec![email("dora@example.com")]).await;
    let messages = stored(&js, &stream, 4).await;

    // Exactly the log's events, in its order, each once.
    let mut events = subscribe(&mut app, from_the_beginning()).await;
    let mut log = Vec::new();
    while let Ok(Ok(Some(r))) = tokio::time::timeout(Duration::from_secs(2), events.message()).await
    {
        let event = r.event.unwrap();
        log.push((pb::EventType::try_from(event.r#type).unwrap(), event.cursor));
    }
    let ids: Vec<&String> = messages.iter().map(|(_, id, _)| id).collect();
    let cursors: Vec<&String> = log.iter().map(|(_, c)| c).collect();
    assert_eq!(ids, cursors, "every event once, in log order");
    for (subject, id, cursor) in &messages {
        assert_eq!(id, cursor, "Nats-Msg-Id is the event's cursor");
        assert_eq!(subject, &format!("{prefix}.default.contact_created"));
    }
    js.delete_stream(&stream).await.unwrap();
}
