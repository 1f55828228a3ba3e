//! Several processes, and processes that die: the guarantees that only show
//! across process boundaries.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use omniroute_proto::v1 as pb;
use pb::messaging_service_client::MessagingServiceClient;
use tonic::transport::Channel;

use crate::support::{Server, identity, new_contact, start, text_to_address};

/// How long a scenario may take before it counts as stuck.
const PATIENCE: Duration = Duration::from_secs(180);

fn email(address: &str) -> pb::Identity {
    identity(pb::Channel::Email, address)
}

/// How many times each message ("messages/…") reached the provider, from
/// the sandbox's record of sends.
fn sends_per_message(lines: &[String]) -> HashMap<String, usize> {
    let mut calls: HashMap<String, usize> = HashMap::new();
    for line in lines {
        let id = line.split('\t').nth(1).expect("message id column");
        *calls.entry(format!("messages/{id}")).or_default() += 1;
    }
    calls
}

/// Accepts `count` messages for each of `contacts` addresses, in batches of
/// 500, alternating between the given servers; returns their names.
async fn send_batches(channels: &[Channel], contacts: &[&str], count: usize) -> Vec<String> {
    let mut names = Vec::new();
    let mut turn = 0;
    for contact in contacts {
        let mut left = count;
        while left > 0 {
            let n = left.min(500);
            left -= n;
            let requests = (0..n)
                .map(|i| text_to_address(email(contact), &format!("Order update {i}")))
                .collect();
            let mut client = MessagingServiceClient::new(channels[turn % channels.len()].clone());
            turn += 1;
            let results = client
                .batch_send_messages(pb::BatchSendMessagesRequest { requests })
                .await
                .expect("batch accepted")
                .into_inner()
                .results;
            for result in results {
                match result.result {
                    Some(pb::batch_send_result::Result::Message(m)) => names.push(m.name),
                    other => panic!("a send was refused: {other:?}"),
                }
            }
        }
    }
    names
}

/// Lines of the sandbox's send record: `channel<TAB>message id<TAB>attempt`.
fn recorded(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits until every message of the contacts has one of `statuses`.
async fn wait_until_all(
    channel: &Channel,
    contacts: &[&str],
    total: usize,
    statuses: &[pb::MessageStatus],
) {
    let mut contacts_client =
        pb::contact_service_client::ContactServiceClient::new(channel.clone());
    let mut messaging = MessagingServiceClient::new(channel.clone());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut done = 0;
        let mut other = HashMap::new();
        for address in contacts {
            let contact = contacts_client
                .lookup_contact(pb::LookupContactRequest {
                    key: Some(pb::lookup_contact_request::Key::Address(
                        (*address).to_owned(),
                    )),
                })
                .await
                .expect("contact exists")
                .into_inner()
                .contact
                .unwrap();
            let mut token = String::new();
            loop {
                let page = messaging
                    .list_messages(pb::ListMessagesRequest {
                        contact: contact.name.clone(),
                        page_size: 1000,
                        page_token: token,
                    })
                    .await
                    .expect("list")
                    .into_inner();
                for m in &page.messages {
                    if statuses.iter().any(|s| *s as i32 == m.status) {
                        done += 1;
                    } else {
                        *other.entry(m.status).or_insert(0) += 1;
                    }
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
        }
        if done == total {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "only {done} of {total} messages reached {statuses:?}; others by status: {other:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn quick_sandbox(record: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("OMNIROUTE__SANDBOX__RECORD_PATH", record),
        ("OMNIROUTE__SANDBOX__DELIVERY_DELAY_MS", "20"),
        ("OMNIROUTE__SANDBOX__READ_DELAY_MS", "20"),
        ("OMNIROUTE__DISPATCH__POLL_INTERVAL_MS", "20"),
    ]
}

#[tokio::test]
async fn two_processes_on_one_postgres_send_each_message_exactly_once() {
    let url = omniroute_store::testing::fresh_pg_url().await;
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("sends.tsv");
    let record_text = record.to_string_lossy().into_owned();
    let mut env = quick_sandbox(&record_text);
    env.push(("OMNIROUTE__STORE__URL", &url));
    env.push(("OMNIROUTE__DISPATCH__BATCH_SIZE", "50"));
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a: Server = start(dir_a.path(), &env);
    let b: Server = start(dir_b.path(), &env);
    let channels = [a.channel().await, b.channel().await];

    let contacts = [
        "c0@example.com",
        "c1@example.com",
        "c2@example.com",
        "c3@example.com",
    ];
    let names = send_batches(&channels, &contacts, 500).await;
    assert_eq!(names.len(), 2000);
    // Every message was handed to the provider once the record holds as many
    // sends; then every message is delivered (nothing still in flight).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while recorded(&record).len() < names.len() {
        assert!(tokio::time::Instant::now() < deadline, "dispatch stalled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_until_all(
        &channels[0],
        &contacts,
        names.len(),
        &[pb::MessageStatus::Delivered],
    )
    .await;

    // Every accepted message reached the provider exactly once.
    let lines = recorded(&record);
    let calls = sends_per_message(&lines);
    let twice: Vec<_> = calls.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    for name in &names {
        assert_eq!(
            calls.get(name),
            Some(&1),
            "{name} was not sent exactly once"
        );
    }
    assert_eq!(lines.len(), names.len());
    drop(channels);
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}

/// Concurrency of the crash runs' dispatchers: a kill can duplicate at most
/// this many sends (those handed to the provider whose outcome was not yet
/// committed), the documented bound.
const CRASH_CONCURRENCY: usize = 8;

/// kill -9 under load, several times, on `replicas` processes sharing one
/// store (the embedded file when `url` is None: then one process), always
/// killing the first one and starting it again: every accepted message
/// ends delivered, each reached the provider, and no more sends were
/// duplicated than the bound (kills x concurrency). Reconciliation keeps
/// its default delay (ten minutes): statuses lost in a crash come back at
/// once after the restart, not then.
async fn crash_run(url: Option<&str>, replicas: usize, kills: usize) {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("sends.tsv");
    let record_text = record.to_string_lossy().into_owned();
    let concurrency = CRASH_CONCURRENCY.to_string();
    let mut env = quick_sandbox(&record_text);
    env.extend([
        ("OMNIROUTE__DISPATCH__LEASE_SECS", "3"),
        ("OMNIROUTE__DISPATCH__SEND_TIMEOUT_SECS", "2"),
        ("OMNIROUTE__DISPATCH__CONCURRENCY", concurrency.as_str()),
        // A provider answering in 10 ms and reporting deliveries a second
        // later: each kill lands with sends in flight and many sent
        // messages still waiting for their report.
        ("OMNIROUTE__SANDBOX__SEND_DELAY_MS", "10"),
        ("OMNIROUTE__SANDBOX__DELIVERY_DELAY_MS", "1000"),
    ]);
    if let Some(url) = url {
        env.push(("OMNIROUTE__STORE__URL", url));
    }
    let dirs: Vec<_> = (0..replicas)
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let mut servers: Vec<Server> = dirs.iter().map(|d| start(d.path(), &env)).collect();
    let mut channels = Vec::new();
    for server in &servers {
        channels.push(server.channel().await);
    }
    let contacts = ["k0@example.com", "k1@example.com", "k2@example.com"];
    // More messages per kill in the long mode, so kills stay apart.
    let names = send_batches(&channels, &contacts, 200 * kills).await;

    // Kill points: after a pseudo-random share of the sends (printed, so a
    // failing run can be told apart).
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as usize;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    for kill in 0..kills {
        let jitter = (seed / (kill + 1)) % (names.len() / (4 * (kills + 1)));
        let target = names.len() * (kill + 1) / (kills + 1) + jitter;
        eprintln!("crash run: kill {kill} after {target} sends (seed {seed})");
        while recorded(&record).len() < target {
            assert!(tokio::time::Instant::now() < deadline, "dispatch stalled");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        servers.remove(0).kill();
        servers.insert(0, start(dirs[0].path(), &env));
        channels[0] = servers[0].channel().await;
    }
    wait_until_all(
        &channels[0],
        &contacts,
        names.len(),
        &[pb::MessageStatus::Delivered],
    )
    .await;
    let lines = recorded(&record);
    let calls = sends_per_message(&lines);
    for name in &names {
        assert!(
            calls.contains_key(name),
            "{name} never reached the provider"
        );
    }
    let duplicates = lines.len() - calls.len();
    eprintln!(
        "crash run on {} with {replicas} process(es): {} messages, {kills} kills, \
         {duplicates} duplicate sends",
        if url.is_some() {
            "PostgreSQL"
        } else {
            "the embedded store"
        },
        names.len()
    );
    assert!(
        duplicates <= kills * CRASH_CONCURRENCY,
        "{duplicates} duplicate sends after {kills} kills exceed the bound of \
         {CRASH_CONCURRENCY} per kill"
    );
    drop(channels);
    for server in servers {
        assert!(server.terminate().success());
    }
}

/// Kills per crash run: 3 in CI; `OMNIROUTE_FAULTS_LONG=1` for the long
/// mode (RELIABILITY.md).
fn kills() -> usize {
    if std::env::var("OMNIROUTE_FAULTS_LONG").is_ok_and(|v| !v.is_empty() && v != "0") {
        12
    } else {
        3
    }
}

#[tokio::test]
async fn killed_repeatedly_every_message_is_delivered_within_the_duplicate_bound() {
    crash_run(None, 1, kills()).await;
}

#[tokio::test]
async fn a_replica_killed_repeatedly_on_postgres_loses_nothing() {
    let url = omniroute_store::testing::fresh_pg_url().await;
    crash_run(Some(&url), 2, kills()).await;
}

/// Two processes on one PostgreSQL calling through one (fake) Twilio
/// account: every callback is placed exactly once, and a callback placed
/// by one is finished through the other's webhook listener.
#[tokio::test]
async fn two_processes_place_each_callback_exactly_once() {
    use omniroute_voice::fake::FakeTwilio;
    use pb::callback_service_client::CallbackServiceClient;
    use pb::contact_service_client::ContactServiceClient;
    const ACCOUNT: &str = "AC00000000000000000000000000000007";
    const TOKEN: &str = "replica-auth-token";
    const PUBLIC: &str = "https://router.replicas.example";
    let fake = FakeTwilio::start(ACCOUNT, TOKEN).await;
    let url = omniroute_store::testing::fresh_pg_url().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("omniroute.toml");
    std::fs::write(
        &config,
        format!(
            "[voice]\nenabled = true\napi_base = \"{}\"\naccount_sid = \"{ACCOUNT}\"\n\
             public_base_url = \"{PUBLIC}\"\nnumbers = [{{ tenant = \"default\", number = \"+4930123456\" }}]\n\
             [routing]\ncallback_retry_secs = [0]\n",
            fake.base_url()
        ),
    )
    .unwrap();
    let config = config.to_string_lossy().into_owned();
    let env = [
        ("OMNIROUTE_CONFIG", config.as_str()),
        ("OMNIROUTE__VOICE__AUTH_TOKEN", TOKEN),
        ("OMNIROUTE__STORE__URL", url.as_str()),
        ("OMNIROUTE__DISPATCH__POLL_INTERVAL_MS", "20"),
    ];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a: Server = start(dir_a.path(), &env);
    let b: Server = start(dir_b.path(), &env);
    // Twilio calls back the public URL, which reaches replica B.
    fake.behind_proxy(PUBLIC, &format!("http://{}", b.http_addr()));
    let channels = [a.channel().await, b.channel().await];

    const COUNT: usize = 40;
    let mut names = Vec::new();
    for i in 0..COUNT {
        let channel = channels[i % 2].clone();
        let contact = ContactServiceClient::new(channel.clone())
            .create_contact(new_contact(
                &format!("Customer {i}"),
                vec![identity(pb::Channel::Voice, &format!("+49151555{i:05}"))],
            ))
            .await
            .expect("created")
            .into_inner()
            .contact
            .unwrap();
        let callback = CallbackServiceClient::new(channel)
            .create_callback(pb::CreateCallbackRequest {
                callback: Some(pb::Callback {
                    contact: contact.name,
                    agent_address: "+4930555000111".into(),
                    ..Default::default()
                }),
                idempotency_key: String::new(),
            })
            .await
            .expect("scheduled")
            .into_inner()
            .callback
            .unwrap();
        names.push(callback.name);
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while fake.calls().len() < COUNT {
        assert!(tokio::time::Instant::now() < deadline, "callbacks stalled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every callback dialling, each customer called once.
    let mut client = CallbackServiceClient::new(channels[0].clone());
    for name in &names {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let callback = client
                .get_callback(pb::GetCallbackRequest { name: name.clone() })
                .await
                .unwrap()
                .into_inner()
                .callback
                .unwrap();
            if callback.state == pb::CallbackState::Dialing as i32 {
                assert_eq!(callback.attempt_count, 1, "{name}");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}: {callback:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let calls = fake.calls();
    let mut per_number: HashMap<String, usize> = HashMap::new();
    for call in &calls {
        *per_number.entry(call.to.clone()).or_default() += 1;
    }
    assert_eq!(per_number.len(), COUNT, "every customer called");
    assert!(
        per_number.values().all(|n| *n == 1),
        "called more than once: {per_number:?}"
    );
    // One finished through the other replica's listener.
    let first = &calls[0];
    let (status, twiml) = fake.answer(&first.sid, "human").await;
    assert_eq!(status, 200);
    assert!(twiml.contains("<Dial"), "{twiml}");
    assert_eq!(fake.dial(&first.sid, "completed", 12).await.0, 200);
    assert_eq!(fake.hang_up(&first.sid).await, 200);
    let done = loop {
        let page = client
            .list_callbacks(pb::ListCallbacksRequest {
                state: pb::CallbackState::Completed as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if let Some(done) = page.callbacks.into_iter().next() {
            break done;
        }
        assert!(tokio::time::Instant::now() < deadline, "never completed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done.duration_seconds, 12);
    assert_eq!(fake.calls().len(), COUNT, "no call placed twice");
    drop(channels);
    drop(client);
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}

/// SIGTERM while sends are in flight: the listener stops, the sends the
/// provider is working on finish and their outcomes are recorded (within
/// the grace time, which bounds the wait), the process exits cleanly, and what was not sent yet
/// waits in the store: after a restart every message is delivered, each
/// handed to the provider exactly once.
#[tokio::test]
async fn sigterm_with_sends_in_flight_loses_nothing_and_sends_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("sends.tsv");
    let record_text = record.to_string_lossy().into_owned();
    let mut env = quick_sandbox(&record_text);
    // Each send takes a while at the provider: a stop finds some in flight.
    env.push(("OMNIROUTE__SANDBOX__SEND_DELAY_MS", "1500"));
    env.push(("OMNIROUTE__DISPATCH__CONCURRENCY", "8"));
    env.push(("OMNIROUTE__GRPC__SHUTDOWN_GRACE_SECS", "10"));
    let server = start(dir.path(), &env);
    let channel = server.channel().await;
    let contacts = ["s0@example.com", "s1@example.com"];
    let names = send_batches(std::slice::from_ref(&channel), &contacts, 30).await;
    assert_eq!(names.len(), 60);
    // Sends are in flight once the provider has been handed one.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while recorded(&record).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "nothing was sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(channel);
    assert!(server.terminate().success(), "a clean exit");
    let handed = recorded(&record).len();
    assert!(handed < names.len(), "the stop came before the last send");

    // The rest goes after a restart; nothing is sent twice.
    let mut env = quick_sandbox(&record_text);
    env.push(("OMNIROUTE__SANDBOX__SEND_DELAY_MS", "0"));
    let server = start(dir.path(), &env);
    let channel = server.channel().await;
    wait_until_all(
        &channel,
        &contacts,
        names.len(),
        &[pb::MessageStatus::Delivered, pb::MessageStatus::Read],
    )
    .await;
    let mut sends: HashMap<String, usize> = HashMap::new();
    for line in recorded(&record) {
        let id = line
            .split('\t')
            .nth(1)
            .expect("message id column")
            .to_owned();
        *sends.entry(format!("messages/{id}")).or_default() += 1;
    }
    for name in &names {
        assert_eq!(
            sends.get(name),
            Some(&1),
            "{name} was not sent exactly once"
        );
    }
    drop(channel);
    assert!(server.terminate().success());
}
