//! What happens after a failed attempt: retry the channel with back-off,
//! go on with the plan's next step, or fail the message (dead letter); and
//! when a sent step's watch comes due (its delivery deadline passed, its
//! provider reported a failure, or the customer replied).
//!
//! Retries are capped exponential back-off with full jitter, never sooner
//! than a provider's Retry-After. A permanent failure, a closed window, an
//! opt-out on the provider's side, or retries run out move to the next step.
//!
//! Quiet hours are decided for the time a step would go, not the time the
//! message was accepted: a retry or a next step that would fall into them
//! is due at their end ([`step_due`]), and a step that comes due inside
//! them anyway (the customer's send time, a job that waited out an outage)
//! is held until they end when it is claimed ([`quiet_hold`]). A step that
//! rings always waits for their end; others unless the message is urgent.

use std::time::{Duration, SystemTime};

use omniroute_channel::{AdapterError, ErrorClass};
use omniroute_domain::{
    ClaimedJob, DeliveryEvidence, JobKind, MessageStatus, NextStep, RouteDecision, StatusChange,
};

use super::quiet;
use crate::settings::DispatchSettings;

/// When plan step `index` of `route` may go, from `at`: its own not-before
/// time, and no earlier than the end of quiet hours it would meet.
pub fn step_due(
    route: Option<&RouteDecision>,
    index: usize,
    rings: bool,
    at: SystemTime,
) -> SystemTime {
    let Some(route) = route else {
        return at;
    };
    let own = route
        .plan
        .get(index)
        .and_then(|p| p.not_before)
        .unwrap_or(at)
        .max(at);
    quiet_hold(route, rings, own).unwrap_or(own)
}

/// When a step that would go at `at` must wait for the end of the
/// customer's quiet hours: `Some(end)` when `at` is inside them and the
/// step waits (it rings, or the message is not urgent).
pub fn quiet_hold(route: &RouteDecision, rings: bool, at: SystemTime) -> Option<SystemTime> {
    let waits = rings || !route.inputs.urgent;
    let rule = route.inputs.quiet_hours.as_ref().filter(|_| waits)?;
    quiet::quiet_end(rule, at).filter(|end| *end > at)
}

/// When plan step `index` may go at the earliest from a given time (for
/// [`decide`] and [`on_watch`]: [`step_due`] with the step's channel's
/// own rules).
pub type StepDue<'a> = &'a dyn Fn(usize, SystemTime) -> SystemTime;

/// The step after a failure: retry the channel with back-off while the error
/// is retryable and attempts remain, else fall back to the plan's next
/// channel, else fail with a dead-letter reason.
///
/// `due` says when a plan step may go ([`StepDue`]): a retry or the next
/// step never falls into quiet hours.
#[allow(clippy::too_many_arguments)]
pub fn decide(
    settings: &DispatchSettings,
    channel_attempt: u32,
    plan_index: usize,
    plan_len: usize,
    error: Option<&AdapterError>,
    text: &str,
    now: SystemTime,
    due: StepDue<'_>,
    random: f64,
) -> NextStep {
    let retryable = error.is_some_and(AdapterError::is_retryable);
    if retryable && channel_attempt < settings.max_attempts {
        let delay = backoff(settings, channel_attempt, random);
        let delay = error
            .and_then(AdapterError::retry_after)
            .map_or(delay, |after| delay.max(after));
        return NextStep::RetryAt(due(plan_index, now + delay));
    }
    if plan_index + 1 < plan_len {
        return NextStep::NextChannel {
            index: plan_index + 1,
            due: due(plan_index + 1, now),
            reason: String::new(),
        };
    }
    let reason = match error {
        Some(e) if retryable => exhausted(channel_attempt, e),
        Some(e) => format!(
            "{} failure {}: {}",
            e.class().as_str(),
            e.code(),
            e.message()
        ),
        None => text.to_owned(),
    };
    NextStep::Fail { reason }
}

/// Why a channel tried `attempts` times is given up: the retries ran out,
/// with the last error.
fn exhausted(attempts: impl std::fmt::Display, last: &AdapterError) -> String {
    format!(
        "retries exhausted after {attempts} attempts; last error {}: {}",
        last.code(),
        last.message()
    )
}

/// The error a provider's failure report carried, read back from the status
/// history (`<class> failure <code>: <text>`, as status ingestion writes
/// it); a report that says no more is a permanent failure.
fn reported_error(change: &StatusChange) -> AdapterError {
    match omniroute_domain::reported_error_parts(&change.reason) {
        Some((class, code, message)) => AdapterError::new(class, code, message),
        None => {
            let text = change.reason.split("; ").next().unwrap_or_default();
            AdapterError::new(ErrorClass::Permanent, "reported", text)
        }
    }
}

/// When a sent step's watch comes due: the next step takes over when the
/// step failed (a provider's report) or missed its deadline; nothing
/// follows when the customer replied meanwhile, the message arrived or
/// failed, or the last step's watch ends without a report. A step that
/// watches its reports (a call) is decided like a failed attempt: a
/// transient failure (busy, no answer) is tried again on the channel while
/// attempts remain, then the next step takes over or the message fails.
/// `due` says when a plan step may go ([`StepDue`]).
pub fn on_watch(
    settings: &DispatchSettings,
    job: &ClaimedJob,
    due: StepDue<'_>,
    now: SystemTime,
    random: f64,
) -> NextStep {
    let end = |note: &str| NextStep::EndWatch {
        note: note.to_owned(),
    };
    let message = &job.message;
    let route = message.route.as_ref();
    let next = job.plan_index + 1;
    let plan_len = route.map_or(0, |r| r.plan.len());
    let Some(step) = route.and_then(|r| r.plan.get(job.plan_index)) else {
        return end("");
    };
    if message.status != MessageStatus::Sent {
        return end("");
    }
    let has_next = plan_len > next;
    if job.kind == JobKind::Replied {
        return end(if has_next {
            "the customer replied; fallback canceled"
        } else {
            ""
        });
    }
    let channel = step.channel;
    let failed = format!("{channel} reported a failure after accepting it");
    let reported = omniroute_domain::reported_failure(job);
    if let Some(change) = reported
        && step.watch_reports
    {
        let error = reported_error(change);
        // The sends made on this step (a claim of its watch is none).
        let sends = message
            .attempts
            .iter()
            .filter(|a| a.channel == channel)
            .count();
        if let Some(rule) = route.and_then(|r| r.inputs.callback.as_ref()) {
            return callback_retry(
                rule,
                route.and_then(|r| r.inputs.quiet_hours.as_ref()),
                sends,
                message.expire_time,
                &error,
                now,
            );
        }
        return match decide(
            settings,
            u32::try_from(sends).unwrap_or(u32::MAX),
            job.plan_index,
            plan_len,
            Some(&error),
            &change.reason,
            now,
            due,
            random,
        ) {
            // A step tried again until its attempts ran out says so; one
            // that failed for good says the provider reported it.
            NextStep::NextChannel { index, due, .. } => NextStep::NextChannel {
                index,
                due,
                reason: if error.is_retryable() {
                    exhausted(sends, &error)
                } else {
                    failed
                },
            },
            decided => decided,
        };
    }
    if !has_next {
        return end("");
    }
    let reason = if reported.is_some() {
        failed
    } else if let Some(within) = step.deliver_within {
        if relayed(job, channel) {
            // No delivery report can come any more: the deadline has
            // nothing left to wait for.
            return end(&format!(
                "{channel} handed it on where no delivery report follows; the deadline ends"
            ));
        }
        let unseen = if step.evidence == DeliveryEvidence::Nothing {
            " (it reports no delivery)"
        } else {
            ""
        };
        format!("not delivered on {channel} within {}{unseen}", span(within))
    } else {
        return end("");
    };
    NextStep::NextChannel {
        index: next,
        due: due(next, now),
        reason,
    }
}

/// Whether the watched step's provider said, since the step was sent, that
/// it handed the message on where no delivery report follows.
fn relayed(job: &ClaimedJob, channel: omniroute_channel::Channel) -> bool {
    let history = &job.message.history;
    let sent = history
        .iter()
        .rposition(|h| {
            h.status == MessageStatus::Sent && h.channel == Some(channel) && h.reason.is_empty()
        })
        .unwrap_or(0);
    history[sent..]
        .iter()
        .any(|h| h.channel == Some(channel) && h.reason == omniroute_domain::RELAYED)
}

/// What follows a callback's attempt that did not reach the customer (or
/// the agent): the next attempt of its retry plan, at the first time after
/// the plan's wait that is inside the business hours and outside the
/// customer's quiet hours; failed as expired when that comes after its
/// latest time, or as exhausted when the plan is.
pub fn callback_retry(
    rule: &omniroute_domain::CallbackRule,
    quiet: Option<&omniroute_domain::QuietRule>,
    sends: usize,
    latest: Option<SystemTime>,
    error: &AdapterError,
    now: SystemTime,
) -> NextStep {
    let last = format!("last error {}: {}", error.code(), error.message());
    let Some(wait) = rule.retry_secs.get(sends.saturating_sub(1)) else {
        return NextStep::Fail {
            reason: format!("retries exhausted after {sends} attempts; {last}"),
        };
    };
    let from = now + Duration::from_secs(*wait);
    match super::hours::callback_slot(rule.hours.as_ref(), quiet, from, latest) {
        Some(slot) => NextStep::RetryAt(slot),
        None => NextStep::Fail {
            reason: format!(
                "expired: no time to call again before the latest time after {sends} attempts; {last}"
            ),
        },
    }
}

/// A duration in the largest whole unit: "2 h", "15 min", "90 s".
fn span(d: Duration) -> String {
    match d.as_secs() {
        s if s >= 3600 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// Full jitter: a delay drawn uniformly from 0 to
/// min(cap, base × 2^(attempt − 1)).
pub fn backoff(settings: &DispatchSettings, attempt: u32, random: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(32);
    let ceiling = settings
        .backoff_base_ms
        .saturating_mul(1u64 << exponent)
        .min(settings.backoff_cap_ms);
    Duration::from_millis((ceiling as f64 * random.clamp(0.0, 1.0)) as u64)
}

/// A uniform number in [0, 1) from the random bits of a UUIDv7.
pub fn random_fraction() -> f64 {
    let bits = uuid::Uuid::now_v7().as_u128() as u64 & ((1u64 << 53) - 1);
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use omniroute_channel::ErrorClass;

    use super::*;

    /// Every step may go when asked.
    fn asap(_: usize, at: SystemTime) -> SystemTime {
        at
    }

    fn settings() -> DispatchSettings {
        DispatchSettings {
            max_attempts: 3,
            backoff_base_ms: 100,
            backoff_cap_ms: 1_000,
            ..DispatchSettings::default()
        }
    }

    #[test]
    fn backoff_is_capped_exponential_with_full_jitter() {
        let s = settings();
        assert_eq!(backoff(&s, 1, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(&s, 3, 1.0), Duration::from_millis(400));
        assert_eq!(backoff(&s, 10, 1.0), Duration::from_millis(1_000));
        assert_eq!(backoff(&s, 3, 0.5), Duration::from_millis(200));
        assert_eq!(backoff(&s, 3, 0.0), Duration::ZERO);
    }

    #[test]
    fn transient_errors_retry_then_fail_as_dead_letters() {
        let s = settings();
        let now = SystemTime::UNIX_EPOCH;
        let transient = AdapterError::new(ErrorClass::Transient, "503", "down");
        assert_eq!(
            decide(&s, 1, 0, 1, Some(&transient), "", now, &asap, 1.0),
            NextStep::RetryAt(now + Duration::from_millis(100))
        );
        match decide(&s, 3, 0, 1, Some(&transient), "", now, &asap, 1.0) {
            NextStep::Fail { reason } => {
                assert!(reason.contains("retries exhausted after 3"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        // With another channel in the plan, exhaustion falls back to it.
        assert_eq!(
            decide(&s, 3, 0, 2, Some(&transient), "", now, &asap, 1.0),
            NextStep::NextChannel {
                index: 1,
                due: now,
                reason: String::new()
            }
        );
    }

    #[test]
    fn retry_after_is_honoured() {
        let s = settings();
        let now = SystemTime::UNIX_EPOCH;
        let limited = AdapterError::rate_limited("130429", "slow", Some(Duration::from_secs(5)));
        assert_eq!(
            decide(&s, 1, 0, 1, Some(&limited), "", now, &asap, 0.1),
            NextStep::RetryAt(now + Duration::from_secs(5))
        );
    }

    #[test]
    fn permanent_errors_do_not_retry() {
        let s = settings();
        let permanent = AdapterError::new(ErrorClass::Permanent, "131026", "undeliverable");
        match decide(
            &s,
            1,
            0,
            1,
            Some(&permanent),
            "",
            SystemTime::UNIX_EPOCH,
            &asap,
            1.0,
        ) {
            NextStep::Fail { reason } => {
                assert!(reason.starts_with("permanent failure 131026"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decide(
                &s,
                1,
                0,
                2,
                Some(&permanent),
                "",
                SystemTime::UNIX_EPOCH,
                &asap,
                1.0
            ),
            NextStep::NextChannel {
                index: 1,
                due: SystemTime::UNIX_EPOCH,
                reason: String::new(),
            }
        );
    }

    /// A decision made at `now` for a customer quiet 11:00–13:00 UTC.
    fn quiet_eleven_to_one(now: SystemTime) -> RouteDecision {
        use omniroute_domain::{QuietRule, RouteInputs};
        RouteDecision {
            plan: Vec::new(),
            skipped: Vec::new(),
            hold_until: None,
            decide_time: now,
            inputs: RouteInputs {
                quiet_hours: Some(QuietRule {
                    time_zone: "UTC".into(),
                    start_minute: 11 * 60,
                    end_minute: 13 * 60,
                }),
                ..RouteInputs::default()
            },
        }
    }

    #[test]
    fn the_next_step_waits_for_quiet_hours() {
        // 12:00 UTC, quiet 11:00–13:00 UTC.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_590_400);
        let mut route = quiet_eleven_to_one(now);
        let end = now + Duration::from_secs(3600);
        assert_eq!(step_due(Some(&route), 1, false, now), end);
        route.inputs.urgent = true;
        assert_eq!(step_due(Some(&route), 1, false, now), now);
        assert_eq!(
            step_due(Some(&route), 1, true, now),
            end,
            "a call never rings in them"
        );
        assert_eq!(step_due(None, 1, true, now), now);
    }

    #[test]
    fn a_retry_or_next_step_never_falls_into_quiet_hours() {
        // 10:59:50 UTC, quiet 11:00–13:00 UTC: a retry 20 s later waits
        // for 13:00, an urgent message's does not.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_590_400 - 3610);
        let end = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_590_400 + 3600);
        let mut route = quiet_eleven_to_one(now);
        let s = DispatchSettings {
            backoff_base_ms: 20_000,
            backoff_cap_ms: 60_000,
            ..settings()
        };
        let transient = AdapterError::new(ErrorClass::Transient, "503", "down");
        let decided = |route: &RouteDecision, attempt: u32, plan_len: usize| {
            let due = |index: usize, at: SystemTime| step_due(Some(route), index, false, at);
            decide(
                &s,
                attempt,
                0,
                plan_len,
                Some(&transient),
                "",
                now,
                &due,
                1.0,
            )
        };
        assert_eq!(decided(&route, 1, 1), NextStep::RetryAt(end));
        assert_eq!(
            decided(&route, 3, 2),
            NextStep::NextChannel {
                index: 1,
                due: now,
                reason: String::new()
            },
            "the next step goes now: now is not quiet"
        );
        assert_eq!(quiet_hold(&route, false, now), None);
        assert_eq!(
            quiet_hold(&route, false, now + Duration::from_secs(20)),
            Some(end)
        );
        route.inputs.urgent = true;
        assert_eq!(
            decided(&route, 1, 1),
            NextStep::RetryAt(now + Duration::from_secs(20))
        );
        assert_eq!(
            quiet_hold(&route, true, now + Duration::from_secs(20)),
            Some(end),
            "a call waits, urgent or not"
        );
    }

    /// A message sent on WhatsApp, with email behind it; WhatsApp must be
    /// delivered within `within`.
    fn watched(kind: JobKind, within: Option<Duration>) -> ClaimedJob {
        use omniroute_channel::content::Text;
        use omniroute_domain::{Direction, Message, PlannedChannel, Priority, StatusChange};
        let step = |channel, address: &str| PlannedChannel {
            channel,
            address: address.into(),
            key: address.into(),
            wa_id: None,
            variant: Default::default(),
            deliver_within: None,
            not_before: None,
            watch_reports: false,
            evidence: Default::default(),
        };
        let mut plan = vec![
            step(omniroute_channel::Channel::Whatsapp, "4915123456789"),
            step(omniroute_channel::Channel::Email, "anna@example.com"),
        ];
        plan[0].deliver_within = within;
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        let sent = StatusChange {
            status: MessageStatus::Sent,
            time: t,
            channel: Some(omniroute_channel::Channel::Whatsapp),
            reason: String::new(),
        };
        ClaimedJob {
            tenant: "default".into(),
            message: Message {
                id: uuid::Uuid::now_v7(),
                contact_id: uuid::Uuid::now_v7(),
                direction: Direction::Outbound,
                category: omniroute_channel::Category::Transactional,
                content: omniroute_channel::Content::Text(Text::default()),
                overrides: Vec::new(),
                channel: Some(omniroute_channel::Channel::Whatsapp),
                priority: Priority::Normal,
                correlation_ref: String::new(),
                metadata: Default::default(),
                send_time: None,
                expire_time: None,
                reply_to: None,
                status: MessageStatus::Sent,
                history: vec![sent],
                attempts: Vec::new(),
                route: Some(RouteDecision {
                    plan,
                    skipped: Vec::new(),
                    hold_until: None,
                    decide_time: t,
                    inputs: Default::default(),
                }),
                provider_message_id: Some("wamid.1".into()),
                create_time: t,
                update_time: t,
                automatic: false,
            },
            claim_token: uuid::Uuid::now_v7(),
            plan_index: 0,
            channel_attempt: 1,
            kind,
        }
    }

    #[test]
    fn a_watch_hands_over_on_a_missed_deadline_or_a_reported_failure() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_900);
        let over =
            |job: &ClaimedJob| match on_watch(&DispatchSettings::default(), job, &asap, now, 0.5) {
                NextStep::NextChannel { index, due, reason } => {
                    assert_eq!((index, due), (1, now));
                    reason
                }
                other => panic!("{other:?}"),
            };
        let job = watched(JobKind::Watch, Some(Duration::from_secs(900)));
        assert_eq!(over(&job), "not delivered on whatsapp within 15 min");
        let mut failed = watched(JobKind::Watch, None);
        failed.message.history.push(omniroute_domain::StatusChange {
            status: MessageStatus::Failed,
            time: now,
            channel: Some(omniroute_channel::Channel::Whatsapp),
            reason: "131026; the next step takes over".into(),
        });
        assert_eq!(
            over(&failed),
            "whatsapp reported a failure after accepting it"
        );
    }

    #[test]
    fn a_watch_ends_quietly_or_with_the_reply_noted() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_900);
        let ended =
            |job: &ClaimedJob| match on_watch(&DispatchSettings::default(), job, &asap, now, 0.5) {
                NextStep::EndWatch { note } => note,
                other => panic!("{other:?}"),
            };
        let replied = watched(JobKind::Replied, Some(Duration::from_secs(900)));
        assert_eq!(ended(&replied), "the customer replied; fallback canceled");
        assert_eq!(
            ended(&watched(JobKind::Watch, None)),
            "",
            "no deadline, no failure: nothing to hand over"
        );
        let mut delivered = watched(JobKind::Watch, Some(Duration::from_secs(900)));
        delivered.message.status = MessageStatus::Delivered;
        assert_eq!(ended(&delivered), "");
        let mut last = watched(JobKind::Watch, Some(Duration::from_secs(900)));
        last.message.route.as_mut().unwrap().plan.truncate(1);
        assert_eq!(ended(&last), "", "nothing behind the last step");
    }

    #[test]
    fn a_call_reported_busy_is_tried_again_then_the_message_fails() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_900);
        let settings = DispatchSettings {
            max_attempts: 2,
            ..DispatchSettings::default()
        };
        let mut call = watched(JobKind::Watch, None);
        let plan = &mut call.message.route.as_mut().unwrap().plan;
        plan.truncate(1);
        plan[0].channel = omniroute_channel::Channel::Voice;
        plan[0].watch_reports = true;
        call.message.history.push(omniroute_domain::StatusChange {
            status: MessageStatus::Sent,
            time: now,
            channel: Some(omniroute_channel::Channel::Voice),
            reason: String::new(),
        });
        call.message.history.push(omniroute_domain::StatusChange {
            status: MessageStatus::Failed,
            time: now,
            channel: Some(omniroute_channel::Channel::Voice),
            reason: "transient failure call-busy: the line was busy; routing decides what follows"
                .into(),
        });
        let placed = |number: u32| omniroute_domain::Attempt {
            number,
            channel: omniroute_channel::Channel::Voice,
            address: "+4915123456789".into(),
            start_time: now,
            end_time: now,
            outcome: omniroute_domain::AttemptOutcome::Accepted,
            error_code: String::new(),
            error_message: String::new(),
            provider_message_id: format!("CA{number}"),
        };
        call.message.attempts.push(placed(1));
        // A claim of the watch counts in the job, not as a send.
        call.channel_attempt = 2;
        match on_watch(&settings, &call, &asap, now, 0.5) {
            NextStep::RetryAt(at) => assert!(at >= now, "{at:?}"),
            other => panic!("busy with attempts left: {other:?}"),
        }
        call.message.attempts.push(placed(2));
        match on_watch(&settings, &call, &asap, now, 0.5) {
            NextStep::Fail { reason } => {
                assert!(
                    reason.contains("retries exhausted after 2 attempts"),
                    "{reason}"
                );
                assert!(reason.contains("call-busy"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // A permanent failure is not tried again.
        call.message.attempts.pop();
        call.message.history.last_mut().unwrap().reason =
            "permanent failure call-failed: the call could not be placed; routing decides what follows".into();
        assert!(matches!(
            on_watch(&settings, &call, &asap, now, 0.5),
            NextStep::Fail { .. }
        ));
        // Without a report, the last step's watch ends quietly.
        call.message.history.pop();
        assert!(matches!(
            on_watch(&settings, &call, &asap, now, 0.5),
            NextStep::EndWatch { .. }
        ));
    }

    #[test]
    fn a_callback_is_called_again_per_its_plan_inside_business_hours() {
        use omniroute_domain::{CallbackRule, OpeningHours};
        let busy = AdapterError::new(ErrorClass::Transient, "call-busy", "the line was busy");
        // Tuesday 2026-12-01 16:55 UTC; open 09:00-17:00 UTC on weekdays.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_608_100);
        let rule = CallbackRule {
            hours: Some(OpeningHours {
                time_zone: "UTC".into(),
                spans: super::super::hours::parse_spans("mon-fri 09:00-17:00").unwrap(),
                holidays: Vec::new(),
            }),
            retry_secs: vec![60, 600],
        };
        // After the first call: a minute later, still open.
        assert_eq!(
            callback_retry(&rule, None, 1, None, &busy, now),
            NextStep::RetryAt(now + Duration::from_secs(60))
        );
        // After the second: ten minutes would be after closing; the next
        // morning's opening.
        let morning = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_666_000);
        assert_eq!(
            callback_retry(&rule, None, 2, None, &busy, now),
            NextStep::RetryAt(morning)
        );
        // Unless that is after the latest time: expired.
        match callback_retry(
            &rule,
            None,
            2,
            Some(morning - Duration::from_secs(1)),
            &busy,
            now,
        ) {
            NextStep::Fail { reason } => {
                assert!(reason.starts_with("expired"), "{reason}");
                assert!(reason.contains("call-busy"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // After the third: the plan ran out.
        match callback_retry(&rule, None, 3, None, &busy, now) {
            NextStep::Fail { reason } => assert!(
                reason.starts_with("retries exhausted after 3 attempts; last error call-busy"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
    }
}
