//! Signing and posting one event to one endpoint: what every delivery
//! does, and a test event (SendTestEvent) too.

use std::time::{Duration, Instant, SystemTime};

use omniroute_domain::{
    Cursor, DeliveryOutcome, Endpoint, Event, EventPayload, EventType, FailureHint,
};
use uuid::Uuid;

use super::client::{Answer, Sender};
use super::sign;
use crate::app::endpoints::UrlRules;
use crate::app::{App, AppError};
use crate::settings::EndpointSettings;

/// Signs and posts events.
#[derive(Debug)]
pub struct Courier {
    sender: Sender,
}

/// How a post went.
#[derive(Debug, Clone, PartialEq)]
pub struct Posted {
    /// When it started.
    pub time: SystemTime,
    pub latency: Duration,
    pub outcome: DeliveryOutcome,
    pub status_code: Option<u16>,
    /// Why it failed (empty when delivered).
    pub error: String,
    /// What a failure asks of the schedule.
    pub hint: Option<FailureHint>,
}

impl Courier {
    /// A courier under `rules`, from validated settings.
    pub fn new(rules: UrlRules, settings: &EndpointSettings) -> anyhow::Result<Courier> {
        Ok(Courier {
            sender: Sender::new(
                rules,
                settings.resolve.clone(),
                Duration::from_secs(settings.timeout_secs),
            )?,
        })
    }

    /// Posts `body` to `url` as webhook `id`, signed with every key.
    pub async fn post(&self, url: &str, keys: &[Vec<u8>], id: &str, body: Vec<u8>) -> Posted {
        let time = SystemTime::now();
        let timestamp = time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let headers = [
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", timestamp.to_string()),
            (
                "webhook-signature",
                sign::signature(keys, id, timestamp, &body),
            ),
        ];
        let started = Instant::now();
        let answer = self.sender.send(url, &headers, body).await;
        let latency = started.elapsed();
        let (outcome, status_code, error, hint) = judge(answer);
        Posted {
            time,
            latency,
            outcome,
            status_code,
            error,
            hint,
        }
    }

    /// Sends `endpoint` a test event now: its webhook-id, and how it went.
    pub async fn send_test(
        &self,
        app: &App,
        endpoint: &Endpoint,
    ) -> Result<(String, Posted), AppError> {
        let now = SystemTime::now();
        let keys = app.endpoint_signing_keys(endpoint, now)?;
        let event = Event {
            cursor: Cursor::default(),
            kind: EventType::EndpointTest,
            time: now,
            contact_id: None,
            message_id: None,
            correlation_ref: String::new(),
            metadata: Default::default(),
            payload: EventPayload::Endpoint {
                endpoint_id: endpoint.id,
                reason: "a test event (SendTestEvent)".to_owned(),
            },
            route: None,
        };
        let id = format!("test_{}", Uuid::now_v7().simple());
        let posted = self
            .post(&endpoint.url, &keys, &id, crate::api::event_json(&event))
            .await;
        tracing::info!(endpoint = %endpoint.id, outcome = ?posted.outcome, "test event sent");
        Ok((id, posted))
    }
}

/// What an answer (or its absence) makes of an attempt.
fn judge(
    answer: Result<Answer, String>,
) -> (DeliveryOutcome, Option<u16>, String, Option<FailureHint>) {
    match answer {
        Ok(Answer { status, .. }) if (200..300).contains(&status) => (
            DeliveryOutcome::Delivered,
            Some(status),
            String::new(),
            None,
        ),
        Ok(Answer {
            status,
            retry_after,
        }) => {
            let error = match status {
                300..=399 => format!("answered {status}; redirects are not followed"),
                410 => "answered 410 Gone".to_owned(),
                _ => format!("answered {status}"),
            };
            let hint = FailureHint {
                gone: status == 410,
                retry_after: retry_after.filter(|_| status == 429 || status == 503),
            };
            (DeliveryOutcome::Failed, Some(status), error, Some(hint))
        }
        Err(error) => (
            DeliveryOutcome::Failed,
            None,
            error,
            Some(FailureHint::default()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_judged_by_status() {
        let ok = judge(Ok(Answer {
            status: 204,
            retry_after: None,
        }));
        assert_eq!(
            (ok.0, ok.1, ok.3),
            (DeliveryOutcome::Delivered, Some(204), None)
        );
        let busy = judge(Ok(Answer {
            status: 429,
            retry_after: Some(Duration::from_secs(9)),
        }));
        assert_eq!(busy.0, DeliveryOutcome::Failed);
        assert_eq!(busy.3.unwrap().retry_after, Some(Duration::from_secs(9)));
        // Retry-After counts only on 429 and 503.
        let broken = judge(Ok(Answer {
            status: 500,
            retry_after: Some(Duration::from_secs(9)),
        }));
        assert_eq!(broken.3.unwrap().retry_after, None);
        let gone = judge(Ok(Answer {
            status: 410,
            retry_after: None,
        }));
        assert!(gone.3.unwrap().gone);
        let moved = judge(Ok(Answer {
            status: 301,
            retry_after: None,
        }));
        assert!(moved.2.contains("redirects are not followed"));
        let down = judge(Err("could not connect".to_owned()));
        assert_eq!((down.0, down.1), (DeliveryOutcome::Failed, None));
    }
}
