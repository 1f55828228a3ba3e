//! Dispatch jobs and what their outcomes and providers' reports do to a
//! message: the rules both stores apply inside the transaction that holds
//! the message's lock.
//!
//! A message has at most one job. It is a *send* job while an attempt is
//! due (the first step, a retry, a fallback step), and a *watch* while a
//! sent step that has a next step behind it waits to be delivered:
//! - due at the step's delivery deadline: when it comes due undelivered,
//!   the next step takes over;
//! - a delivered or read report ends it (the message arrived);
//! - a failure report makes it due at once instead of failing the message
//!   (the next step takes over: providers report most permanent failures
//!   after accepting a send);
//! - a message from the customer ends it as *replied* (the customer is
//!   there: the fallback is canceled).
//!
//! So a deadline is a row of the queue, durable, shared by every replica
//! and leased like any job: it survives restarts and fires once.

use std::time::{Duration, SystemTime};

use omniroute_channel::Channel;
use uuid::Uuid;

use crate::events::*;
use crate::messages::*;

/// What a dispatch job is waiting for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum JobKind {
    /// An attempt on the plan's current step.
    #[default]
    Send,
    /// A sent step's delivery (its deadline, or a failure report).
    Watch,
    /// A watch the customer's reply ended: its fallback is canceled.
    Replied,
}

impl JobKind {
    /// Stable storage code.
    pub fn code(self) -> i16 {
        match self {
            JobKind::Send => 0,
            JobKind::Watch => 1,
            JobKind::Replied => 2,
        }
    }

    /// The kind of a job put back in line: a watch when it watches for a
    /// contact, else a send job.
    pub fn released(watch_of: Option<Uuid>) -> JobKind {
        if watch_of.is_some() {
            JobKind::Watch
        } else {
            JobKind::Send
        }
    }

    /// Parses [`JobKind::code`] back.
    pub fn from_code(code: i64) -> JobKind {
        match code {
            1 => JobKind::Watch,
            2 => JobKind::Replied,
            _ => JobKind::Send,
        }
    }
}

/// How long a sent step with a next step but no delivery deadline is
/// watched (for failure reports) before the watch simply ends.
pub const WATCH_WITHOUT_DEADLINE: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long the last step of a plan is watched for a report when it
/// watches its reports (a call's outcome comes within minutes).
pub const WATCH_REPORTS: Duration = Duration::from_secs(3600);

/// How much of a daily quota of `limit` a request for `wanted` gets when
/// `used` is spent: as much as is left, up to what was asked.
pub fn granted(used: u64, wanted: u64, limit: u64) -> u64 {
    wanted.min(limit.saturating_sub(used))
}

/// A connection pool's use now (for metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUse {
    /// The pool's name (`main`, `queue`, `events`).
    pub name: &'static str,
    /// Connections handed out now.
    pub in_use: usize,
    /// Its largest size.
    pub max: usize,
}

/// The dispatch queue at a glance (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    /// Jobs in the queue: sends waiting or in flight, and watches.
    pub jobs: u64,
    /// The earliest due time of any job.
    pub earliest_due: Option<SystemTime>,
}

/// A dispatch job a worker holds under a lease.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    /// The message's tenant.
    pub tenant: String,
    /// The message, as of the claim.
    pub message: Message,
    /// Proves the lease: a completion with an older token is refused.
    pub claim_token: Uuid,
    /// Index into the route plan of the channel to try (or watched).
    pub plan_index: usize,
    /// Attempts on that channel so far, including this one.
    pub channel_attempt: u32,
    /// What the job waits for.
    pub kind: JobKind,
}

/// The outcome of one claimed job, for the store's `complete_jobs`.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The job as claimed (its claim token proves the lease).
    pub job: ClaimedJob,
    /// The attempt made, if one was.
    pub attempt: Option<Attempt>,
    /// What happens next.
    pub next: NextStep,
}

/// What a worker decided after an attempt (or a watch coming due).
#[derive(Debug, Clone, PartialEq)]
pub enum NextStep {
    /// The provider accepted the message: it is sent.
    Sent { provider_message_id: String },
    /// Try the same channel again at this time.
    RetryAt(SystemTime),
    /// Go on with this plan index, due at this time.
    NextChannel {
        /// The plan index.
        index: usize,
        due: SystemTime,
        /// Why; empty: the attempt's error.
        reason: String,
    },
    /// Give up: the message failed (dead letter).
    Fail {
        /// Why, for the operator.
        reason: String,
    },
    /// A watch ends without a fallback; `note`, when not empty, goes into
    /// the status history (why no fallback followed).
    EndWatch {
        /// Why.
        note: String,
    },
    /// The step came due inside the customer's quiet hours: no attempt is
    /// made, and the job waits, durably, until they end. The claim does
    /// not count as an attempt on the channel.
    Hold {
        /// When the quiet hours end.
        until: SystemTime,
    },
}

/// A status reported by a provider (or the sandbox) for a sent message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderStatus {
    /// Our message id, when the provider echoed it back.
    pub message_id: Option<Uuid>,
    pub channel: Channel,
    /// With the channel, what finds the message when our id was not echoed
    /// back (the attempt that sent it recorded the provider's id).
    pub provider_message_id: String,
    /// Sent, delivered, read or failed.
    pub status: MessageStatus,
    /// When the provider says it happened.
    pub time: SystemTime,
    /// For failures: why.
    pub reason: String,
    /// A failure only if the message has no outcome yet (a call that
    /// ended: a callback's bridge to the agent was its delivery, and a call
    /// ends once, so its end after the outcome changes nothing).
    pub unless_delivered: bool,
}

/// A provider's report matched to its message: the message as the report
/// left it, and whose it is (reports name no tenant; the message does).
#[derive(Debug, Clone, PartialEq)]
pub struct Reported {
    /// The message's tenant.
    pub tenant: String,
    /// The message after the report.
    pub message: Message,
}

/// What a completion does to the message's dispatch job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobChange {
    /// The job is done (sent with nothing behind it, failed, or a watch
    /// ended): delete it.
    Delete,
    /// Put it back in line, unleased, as a send job.
    Release {
        due: SystemTime,
        /// The plan index it tries next.
        plan_index: usize,
        /// The attempts on that step's channel so far (0 on a new channel;
        /// the claim's count taken back when no attempt was made).
        channel_attempt: u32,
    },
    /// Keep it, unleased, as the watch of the step just sent.
    Watch {
        /// The step's delivery deadline.
        due: SystemTime,
    },
}

/// What applying a completion did.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// What becomes of the job.
    pub job: JobChange,
    /// The event to log, if the message changed.
    pub event: Option<NewEvent>,
}

/// Why an attempt failed, in a few words for the status history.
fn attempt_reason(attempt: &Attempt) -> String {
    match (attempt.error_code.as_str(), attempt.error_message.as_str()) {
        ("", "") => match attempt.outcome {
            AttemptOutcome::Failed(class) => class.as_str().to_owned(),
            AttemptOutcome::Accepted => String::new(),
        },
        (code, "") => code.to_owned(),
        ("", message) => message.to_owned(),
        (code, message) => format!("{code}: {message}"),
    }
}

/// When the watch of plan step `index` of a message sent `now` is due, if
/// the step has a next step behind it or watches its reports.
fn watch_due(message: &Message, index: usize, now: SystemTime) -> Option<SystemTime> {
    let plan = &message.route.as_ref()?.plan;
    let step = plan.get(index)?;
    let within = if plan.get(index + 1).is_some() {
        step.deliver_within.unwrap_or(WATCH_WITHOUT_DEADLINE)
    } else if step.watch_reports {
        step.deliver_within.unwrap_or(WATCH_REPORTS)
    } else {
        return None;
    };
    Some(now + within)
}

/// Applies the outcome of a claimed job to its message, in memory, as both
/// stores do inside the transaction that holds the message's lock: appends
/// the attempt, moves the status with [`apply_status`], and says what
/// becomes of the job and which event to log.
pub fn apply_completion(
    message: &mut Message,
    job: &ClaimedJob,
    attempt: Option<Attempt>,
    next: NextStep,
    now: SystemTime,
) -> Applied {
    let plan_index = job.plan_index;
    let before = message.status;
    let reason = attempt.as_ref().map(attempt_reason).unwrap_or_default();
    let channel = attempt.as_ref().map(|a| a.channel).or(message.channel);
    if let Some(attempt) = attempt {
        message.attempts.push(attempt);
    }
    message.update_time = now;
    let logged = |changed: bool, message: &Message| changed.then(|| status_event(before, message));
    match next {
        NextStep::Sent {
            provider_message_id,
        } => {
            message.provider_message_id = Some(provider_message_id);
            let changed = if message.status == MessageStatus::Sent {
                // A fallback step after a step that was sent: sent again,
                // on the new channel.
                message.history.push(StatusChange {
                    status: MessageStatus::Sent,
                    time: now,
                    channel,
                    reason: String::new(),
                });
                true
            } else {
                apply_status(message, MessageStatus::Sent, channel, "", now)
            };
            // A report may have come first (delivered, failed): then there
            // is nothing to watch.
            let job = match watch_due(message, plan_index, now) {
                Some(due) if message.status == MessageStatus::Sent => JobChange::Watch { due },
                _ => JobChange::Delete,
            };
            Applied {
                job,
                event: logged(changed, message),
            }
        }
        NextStep::RetryAt(due) => {
            let reason = if reason.is_empty() { "retry" } else { &reason };
            let changed = apply_status(message, MessageStatus::Queued, channel, reason, now);
            Applied {
                job: JobChange::Release {
                    due,
                    plan_index,
                    channel_attempt: job.channel_attempt,
                },
                event: logged(changed, message),
            }
        }
        NextStep::NextChannel {
            index,
            due,
            reason: why,
        } => {
            let to = message
                .route
                .as_ref()
                .and_then(|r| r.plan.get(index))
                .map(|p| p.channel);
            message.channel = to.or(message.channel);
            let why = if why.is_empty() { reason } else { why };
            let text = format!(
                "falling back to {}: {why}",
                message.channel.map(Channel::as_str).unwrap_or("?")
            );
            // A sent step stays sent while the next one is queued.
            apply_status(message, MessageStatus::Queued, channel, &text, now);
            let due = due.max(now);
            let change = RouteChange {
                from: channel,
                to,
                reason: why,
                until: (due > now).then_some(due),
            };
            Applied {
                job: JobChange::Release {
                    due,
                    plan_index: index,
                    channel_attempt: 0,
                },
                event: Some(route_event(EventType::MessageFallback, message, change)),
            }
        }
        NextStep::Fail { reason } => {
            // The decision fails the message even when a failure reported
            // on the same channel is in its history already (a call tried
            // again and again): that entry did not fail it.
            let changed = if message.status.may_become(MessageStatus::Failed) {
                message.history.push(StatusChange {
                    status: MessageStatus::Failed,
                    time: now,
                    channel,
                    reason,
                });
                message.status = MessageStatus::Failed;
                true
            } else {
                apply_status(message, MessageStatus::Failed, channel, &reason, now)
            };
            Applied {
                job: JobChange::Delete,
                event: logged(changed, message),
            }
        }
        NextStep::EndWatch { note } => {
            let changed = !note.is_empty();
            if changed {
                message.history.push(StatusChange {
                    status: message.status,
                    time: now,
                    channel,
                    reason: note,
                });
            }
            Applied {
                job: JobChange::Delete,
                event: logged(changed, message),
            }
        }
        NextStep::Hold { until } => {
            apply_status(
                message,
                MessageStatus::Queued,
                message.channel,
                HELD_FOR_QUIET_HOURS,
                now,
            );
            let until = until.max(now);
            Applied {
                job: JobChange::Release {
                    due: until,
                    plan_index,
                    channel_attempt: job.channel_attempt.saturating_sub(1),
                },
                event: Some(held_event(message, until)),
            }
        }
    }
}

/// Applies a provider's report to a message: [`apply_status`], except that
/// a failure of a watched step (one with a next step behind it, `watched`)
/// is kept in the history without failing the message: the next step takes
/// over. A failure also fails the attempt it is about ([`fail_attempt`).
/// Returns whether anything changed.
pub fn apply_report(
    message: &mut Message,
    report: &ProviderStatus,
    watched: bool,
    now: SystemTime,
) -> bool {
    let changed = apply_reported_status(message, report, watched, now);
    if changed && report.status == MessageStatus::Failed {
        fail_attempt(message, report);
    }
    changed
}

/// The parts of a reported failure's reason as status ingestion writes it
/// (`<class> failure <code>: <text>`): class, code and text.
pub fn reported_error_parts(reason: &str) -> Option<(omniroute_channel::ErrorClass, &str, &str)> {
    let text = reason.split("; ").next().unwrap_or(reason);
    let (class, rest) = text.split_once(" failure ")?;
    let class = omniroute_channel::ErrorClass::parse(class)?;
    let (code, message) = rest.split_once(": ").unwrap_or((rest, ""));
    Some((class, code, message))
}

/// A failure a provider reports after accepting a send (an email's bounce,
/// a WhatsApp `failed` status) fails the attempt that sent it, with the
/// report's error, so that the attempt says what became of it: the
/// attempt of the reported provider id (else the last one accepted on the
/// channel), if it still says accepted.
fn fail_attempt(message: &mut Message, report: &ProviderStatus) {
    let Some((class, code, text)) = reported_error_parts(&report.reason) else {
        return;
    };
    let accepted =
        |a: &Attempt| a.channel == report.channel && a.outcome == AttemptOutcome::Accepted;
    let index = message
        .attempts
        .iter()
        .rposition(|a| accepted(a) && a.provider_message_id == report.provider_message_id)
        .or_else(|| message.attempts.iter().rposition(accepted));
    if let Some(attempt) = index.map(|i| &mut message.attempts[i]) {
        attempt.outcome = AttemptOutcome::Failed(class);
        attempt.error_code = code.to_owned();
        attempt.error_message = text.to_owned();
    }
}

/// The history's note when a provider handed a sent message on to a
/// system that reports no further (an email relayed past DSN): no delivery
/// report will follow, so a deadline waiting for one ends
/// (`routing::fallback::on_watch` reads it).
pub const RELAYED: &str = "relayed where no delivery report follows";

fn apply_reported_status(
    message: &mut Message,
    report: &ProviderStatus,
    watched: bool,
    now: SystemTime,
) -> bool {
    if report.status == MessageStatus::Sent
        && report.reason == RELAYED
        && message.status == MessageStatus::Sent
    {
        message.history.push(StatusChange {
            status: MessageStatus::Sent,
            time: now,
            channel: Some(report.channel),
            reason: RELAYED.to_owned(),
        });
        message.update_time = now;
        return true;
    }
    // A report naming our id may be the first we hear of the provider's.
    if message.provider_message_id.is_none() && !report.provider_message_id.is_empty() {
        message.provider_message_id = Some(report.provider_message_id.clone());
    }
    let channel = Some(report.channel);
    // An attempt that ended (a call hung up, busy, unanswered) adds nothing
    // once the message has its outcome: delivered, failed or canceled.
    if report.unless_delivered
        && matches!(
            message.status,
            MessageStatus::Delivered
                | MessageStatus::Read
                | MessageStatus::Failed
                | MessageStatus::Canceled
        )
    {
        return false;
    }
    if watched && report.status == MessageStatus::Failed && message.status == MessageStatus::Sent {
        // Once per send: a channel tried again (a call nobody answered)
        // may fail again.
        let sent = message
            .history
            .iter()
            .rposition(|h| h.status == MessageStatus::Sent && h.channel == channel)
            .unwrap_or(0);
        if message.history[sent..]
            .iter()
            .any(|h| h.status == MessageStatus::Failed && h.channel == channel)
        {
            return false;
        }
        // A channel is in a plan once: the step this report is about.
        let has_next = message.route.as_ref().is_some_and(|r| {
            r.plan
                .iter()
                .position(|p| Some(p.channel) == channel)
                .is_some_and(|i| i + 1 < r.plan.len())
        });
        let follows = if has_next {
            "the next step takes over"
        } else {
            "routing decides what follows"
        };
        let reason = if report.reason.is_empty() {
            format!("failed; {follows}")
        } else {
            format!("{}; {follows}", report.reason)
        };
        message.history.push(StatusChange {
            status: MessageStatus::Failed,
            time: now,
            channel,
            reason,
        });
        message.update_time = now;
        return true;
    }
    apply_status(message, report.status, channel, &report.reason, now)
}

/// Whether a report ends the message's pending steps (it arrived).
pub fn ends_pending_steps(status: MessageStatus) -> bool {
    matches!(status, MessageStatus::Delivered | MessageStatus::Read)
}

/// What a claimed watch found, for the dispatcher: the failure a provider
/// reported on the watched step since it was sent, if any.
pub fn reported_failure(job: &ClaimedJob) -> Option<&StatusChange> {
    let channel = job
        .message
        .route
        .as_ref()
        .and_then(|r| r.plan.get(job.plan_index))
        .map(|p| p.channel)?;
    let sent = job
        .message
        .history
        .iter()
        .rposition(|h| h.status == MessageStatus::Sent && h.channel == Some(channel))?;
    job.message.history[sent..]
        .iter()
        .find(|h| h.status == MessageStatus::Failed && h.channel == Some(channel))
}
