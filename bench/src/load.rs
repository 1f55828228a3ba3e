//! The load: realistic requests, closed-loop clients (each sends its next
//! request when the last one answered) and an open-loop generator (requests
//! start on a fixed schedule whatever the answers do; latency counts from the
//! scheduled start, so a stalled server is not hidden by stalled clients).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use omniroute_proto::v1 as pb;
use pb::messaging_service_client::MessagingServiceClient;
use pb::send_message_request::Recipient;
use tokio::task::JoinSet;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::db::DbWriter;
use crate::stats::{Outcome, Stats, code_name};

/// Request bodies for a pool of contacts.
#[derive(Debug, Clone)]
pub struct Payloads {
    contacts: Arc<Vec<String>>,
    next: Arc<AtomicU64>,
    prefix: &'static str,
}

/// A well-mixed 64-bit hash (splitmix64), to pick contacts without an RNG.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Payloads {
    /// Requests to `contacts`, numbered from a shared counter; every
    /// correlation reference starts with `prefix`.
    pub fn new(contacts: Arc<Vec<String>>, counter: Arc<AtomicU64>, prefix: &'static str) -> Self {
        Payloads {
            contacts,
            next: counter,
            prefix,
        }
    }

    /// The next request: even numbers are transactional text ("Your order
    /// … has shipped", about 110 characters), odd ones the `order_shipped`
    /// template in German with the order number as body parameter; both with
    /// a correlation reference and two metadata keys, to a contact picked at
    /// random from the pool.
    pub fn next(&self) -> pb::SendMessageRequest {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let contact = &self.contacts[(mix(n) % self.contacts.len() as u64) as usize];
        let order = 100_000 + n;
        let content = if n.is_multiple_of(2) {
            pb::content::Kind::Text(pb::TextContent {
                body: format!(
                    "Your order {order} has shipped and is on its way. Track the parcel at \
                     https://shop.example.com/t/{order} any time."
                ),
                subject: "Your order has shipped".into(),
                ..Default::default()
            })
        } else {
            pb::content::Kind::Template(pb::TemplateContent {
                name: "order_shipped".into(),
                language: "de".into(),
                components: vec![pb::TemplateComponent {
                    r#type: pb::TemplateComponentType::Body as i32,
                    parameters: vec![pb::TemplateParameter {
                        parameter_name: String::new(),
                        value: Some(pb::template_parameter::Value::Text(order.to_string())),
                    }],
                    ..Default::default()
                }],
            })
        };
        pb::SendMessageRequest {
            recipient: Some(Recipient::Contact(contact.clone())),
            message: Some(pb::Message {
                category: pb::Category::Transactional as i32,
                content: Some(pb::Content {
                    kind: Some(content),
                }),
                correlation_ref: format!("{}{order}", self.prefix),
                metadata: [
                    ("shop".to_owned(), "shop-eu-1".to_owned()),
                    ("campaign".to_owned(), "shipping-notice".to_owned()),
                ]
                .into(),
                ..Default::default()
            }),
            idempotency_key: String::new(),
        }
    }
}

/// What one client calls, over and over.
#[derive(Debug)]
pub enum Op {
    /// `grpc.health.v1.Health/Check`: the no-op RPC of the gRPC ceiling.
    Health(HealthClient<Channel>),
    /// `SendMessage`.
    Send(MessagingServiceClient<Channel>, Payloads),
    /// `BatchSendMessages` with this many sends per call.
    Batch(MessagingServiceClient<Channel>, Payloads, usize),
    /// A database-ceiling writer.
    Db(Box<DbWriter>),
}

impl Op {
    /// One call.
    pub async fn call(&mut self) -> Outcome {
        match self {
            Op::Health(client) => match client
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
            {
                Ok(_) => Outcome::one(),
                Err(status) => Outcome::error(code_name(status.code())),
            },
            Op::Send(client, payloads) => send(client, payloads.next()).await,
            Op::Batch(client, payloads, size) => {
                let requests = (0..*size).map(|_| payloads.next()).collect();
                batch(client, requests).await
            }
            Op::Db(writer) => writer.call().await,
        }
    }
}

/// One SendMessage.
pub async fn send(
    client: &mut MessagingServiceClient<Channel>,
    request: pb::SendMessageRequest,
) -> Outcome {
    match client.send_message(request).await {
        Ok(response) => Outcome {
            items: 1,
            errors: Vec::new(),
            accepted: response.into_inner().message.map(|m| m.name),
        },
        Err(status) => Outcome::error(code_name(status.code())),
    }
}

/// One BatchSendMessages: items accepted, and rejected ones by code.
pub async fn batch(
    client: &mut MessagingServiceClient<Channel>,
    requests: Vec<pb::SendMessageRequest>,
) -> Outcome {
    match client
        .batch_send_messages(pb::BatchSendMessagesRequest { requests })
        .await
    {
        Ok(response) => {
            let mut outcome = Outcome::default();
            for result in response.into_inner().results {
                match result.result {
                    Some(pb::batch_send_result::Result::Message(m)) => {
                        outcome.items += 1;
                        outcome.accepted = Some(m.name);
                    }
                    Some(pb::batch_send_result::Result::Error(e)) => {
                        let code = code_name(tonic::Code::from_i32(e.code));
                        match outcome.errors.iter_mut().find(|(c, _)| c == code) {
                            Some((_, n)) => *n += 1,
                            None => outcome.errors.push((code.to_owned(), 1)),
                        }
                    }
                    None => outcome.errors.push(("EMPTY_RESULT".to_owned(), 1)),
                }
            }
            outcome
        }
        Err(status) => Outcome::error(code_name(status.code())),
    }
}

/// When a phase measured.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// The end of the warm-up.
    pub from: Instant,
    /// The end of the phase.
    pub to: Instant,
}

/// Runs every op as a closed-loop client: warm-up first, then `duration`
/// measured. A call counts when it ended inside the measured time, so the
/// count over the duration is the steady-state throughput; calls still
/// running at the end are waited for but not counted.
pub async fn closed_loop(ops: Vec<Op>, warmup: Duration, duration: Duration) -> (Stats, Window) {
    let from = Instant::now() + warmup;
    let to = from + duration;
    let mut tasks = JoinSet::new();
    for mut op in ops {
        tasks.spawn(async move {
            let mut stats = Stats::default();
            loop {
                let start = Instant::now();
                if start >= to {
                    return stats;
                }
                let outcome = op.call().await;
                let end = Instant::now();
                if end >= from && end <= to {
                    stats.record(end - start, outcome);
                }
            }
        });
    }
    let mut total = Stats::default();
    while let Some(joined) = tasks.join_next().await {
        if let Ok(stats) = joined {
            total.merge(stats);
        }
    }
    (total, Window { from, to })
}

/// What the open-loop generator did.
#[derive(Debug, Clone, Default)]
pub struct OpenLoop {
    /// Calls answered (latency from the scheduled start).
    pub stats: Stats,
    /// The rate asked for.
    pub rate: f64,
    /// Calls due in the measured time but never started because
    /// `max_in_flight` calls were outstanding.
    pub dropped: u64,
}

/// SendMessage at `rate` per second, round-robin over `clients`, for
/// `warmup` + `duration`; at most `max_in_flight` calls outstanding.
pub async fn open_loop(
    clients: Vec<MessagingServiceClient<Channel>>,
    payloads: Payloads,
    rate: f64,
    warmup: Duration,
    duration: Duration,
    max_in_flight: usize,
) -> (OpenLoop, Window) {
    let start = Instant::now();
    let from = start + warmup;
    let to = from + duration;
    let stats = Arc::new(Mutex::new(Stats::default()));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut dropped = 0;
    let interval = 1.0 / rate;
    let mut tasks = JoinSet::new();
    for i in 0u64.. {
        let due = start + Duration::from_secs_f64(i as f64 * interval);
        if due >= to {
            break;
        }
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        if in_flight.load(Ordering::Relaxed) >= max_in_flight {
            if due >= from {
                dropped += 1;
            }
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let mut client = clients[(i as usize) % clients.len()].clone();
        let request = payloads.next();
        let stats = Arc::clone(&stats);
        let in_flight = Arc::clone(&in_flight);
        tasks.spawn(async move {
            let outcome = send(&mut client, request).await;
            if due >= from {
                let latency = due.elapsed();
                if let Ok(mut stats) = stats.lock() {
                    stats.record(latency, outcome);
                }
            }
            in_flight.fetch_sub(1, Ordering::Relaxed);
        });
        // Reap finished tasks now and then so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let stats = stats.lock().map(|s| s.clone()).unwrap_or_default();
    (
        OpenLoop {
            stats,
            rate,
            dropped,
        },
        Window { from, to },
    )
}

/// Waits until `message` was handed to its provider (status sent or later),
/// polling GetMessage; returns how long that took, or `None` on timeout.
/// Dispatch is first in, first out among messages of one priority, so when
/// the last accepted message is sent the backlog is gone.
pub async fn wait_sent(
    client: &mut MessagingServiceClient<Channel>,
    message: &str,
    timeout: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Ok(response) = client
            .get_message(pb::GetMessageRequest {
                name: message.to_owned(),
            })
            .await
            && let Some(m) = response.into_inner().message
            && m.status >= pb::MessageStatus::Sent as i32
        {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_alternate_text_and_template() {
        let contacts = Arc::new(vec!["contacts/a".to_owned(), "contacts/b".to_owned()]);
        let p = Payloads::new(contacts, Arc::new(AtomicU64::new(0)), "order-");
        let text = p.next();
        let template = p.next();
        let body = |r: &pb::SendMessageRequest| {
            r.message
                .as_ref()
                .unwrap()
                .content
                .as_ref()
                .unwrap()
                .kind
                .clone()
                .unwrap()
        };
        match body(&text) {
            pb::content::Kind::Text(t) => {
                assert!((100..=140).contains(&t.body.chars().count()), "{}", t.body)
            }
            other => panic!("{other:?}"),
        }
        match body(&template) {
            pb::content::Kind::Template(t) => {
                assert_eq!(
                    (t.name.as_str(), t.language.as_str()),
                    ("order_shipped", "de")
                )
            }
            other => panic!("{other:?}"),
        }
        let m = text.message.unwrap();
        assert_eq!(m.correlation_ref, "order-100000");
        assert_eq!(m.metadata.len(), 2);
    }

    #[test]
    fn contacts_are_spread_over_the_pool() {
        let pool: Vec<String> = (0..10).map(|i| format!("contacts/{i}")).collect();
        let p = Payloads::new(Arc::new(pool), Arc::new(AtomicU64::new(0)), "x");
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            if let Some(Recipient::Contact(c)) = p.next().recipient {
                seen.insert(c);
            }
        }
        assert_eq!(seen.len(), 10);
    }
}
