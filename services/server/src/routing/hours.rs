//! A business's opening hours and when a callback may ring: the first
//! instant at or after a time that lies inside the opening hours (in the
//! business's zone, holidays closed) and outside the customer's quiet hours
//! (in theirs), no later than the callback's latest time.
//!
//! Guarantees, tested below: the slot returned is open and not quiet; no
//! earlier instant from the start is both; a span's end is exclusive; a
//! local opening skipped by a clock change resolves to the instant after
//! the gap.

use std::time::SystemTime;

use jiff::civil::Date;
use omniroute_domain::{OpenSpan, OpeningHours, QuietRule};

use super::quiet;

/// Days looked ahead for an opening (a year and a bit: holidays and
/// closures may make whole months closed).
const HORIZON_DAYS: i32 = 400;

pub use omniroute_domain::{parse_spans, weekday};

/// Parses a holiday, `YYYY-MM-DD`.
pub fn parse_holiday(text: &str) -> Option<Date> {
    text.parse().ok()
}

fn instant(date: Date, minute: u16, tz: &jiff::tz::TimeZone) -> Option<SystemTime> {
    let (date, minute) = if minute >= 24 * 60 {
        (date.tomorrow().ok()?, minute - 24 * 60)
    } else {
        (date, minute)
    };
    let hour = i8::try_from(minute / 60).ok()?;
    let min = i8::try_from(minute % 60).ok()?;
    let zoned = date.at(hour, min, 0, 0).to_zoned(tz.clone()).ok()?;
    Some(SystemTime::from(zoned.timestamp()))
}

/// The first instant at or after `at` inside `hours`; `None` when there is
/// none within the horizon.
pub fn next_open(hours: &OpeningHours, at: SystemTime) -> Option<SystemTime> {
    let tz = quiet::zone(&hours.time_zone);
    let holidays: Vec<Date> = hours
        .holidays
        .iter()
        .filter_map(|h| parse_holiday(h))
        .collect();
    let today = jiff::Timestamp::try_from(at)
        .ok()?
        .to_zoned(tz.clone())
        .date();
    // From yesterday: a span of the day before may still be open (a clock
    // change can move midnight).
    let mut date = today.yesterday().ok()?;
    for _ in 0..HORIZON_DAYS {
        if !holidays.contains(&date) {
            let weekday = u8::try_from(date.weekday().to_monday_zero_offset()).ok()?;
            let mut spans: Vec<&OpenSpan> = hours
                .spans
                .iter()
                .filter(|s| s.weekday == weekday)
                .collect();
            spans.sort_by_key(|s| s.start_minute);
            for span in spans {
                let (Some(start), Some(end)) = (
                    instant(date, span.start_minute, &tz),
                    instant(date, span.end_minute, &tz),
                ) else {
                    continue;
                };
                if at < end && start < end {
                    return Some(start.max(at));
                }
            }
        }
        date = date.tomorrow().ok()?;
    }
    None
}

/// When a callback may ring, from `from`: open (when the business has
/// hours), outside the customer's quiet hours, and no later than `latest`;
/// `None` when no such instant comes in time.
pub fn callback_slot(
    hours: Option<&OpeningHours>,
    quiet: Option<&QuietRule>,
    from: SystemTime,
    latest: Option<SystemTime>,
) -> Option<SystemTime> {
    let mut at = from;
    // Each round moves to an opening, then past quiet hours; when that is
    // still open, it is the slot. Quiet hours and openings each end within
    // a day, so a few dozen rounds cover any week.
    for _ in 0..64 {
        if latest.is_some_and(|l| at > l) {
            return None;
        }
        let open = match hours {
            Some(h) => next_open(h, at)?,
            None => at,
        };
        let after_quiet = quiet
            .and_then(|q| quiet::quiet_end(q, open))
            .unwrap_or(open);
        if after_quiet == open {
            return latest.is_none_or(|l| open <= l).then_some(open);
        }
        at = after_quiet;
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(text: &str) -> SystemTime {
        let ts: jiff::Timestamp = text.parse().unwrap();
        SystemTime::from(ts)
    }

    fn office() -> OpeningHours {
        let mut spans = parse_spans("mon-fri 09:00-12:00").unwrap();
        spans.extend(parse_spans("mon-fri 13:00-17:00").unwrap());
        spans.extend(parse_spans("sat 10:00-14:00").unwrap());
        OpeningHours {
            time_zone: "Europe/Berlin".into(),
            spans,
            holidays: vec!["2026-12-25".into()],
        }
    }

    #[test]
    fn spans_parse_and_refuse_nonsense() {
        assert_eq!(parse_spans("mon-fri 09:00-17:00").unwrap().len(), 5);
        assert_eq!(
            parse_spans("sun 00:00-24:00").unwrap(),
            vec![OpenSpan {
                weekday: 6,
                start_minute: 0,
                end_minute: 1440
            }]
        );
        for bad in [
            "fri-mon 09:00-17:00",
            "mon 17:00-09:00",
            "mon 9:00-17:00",
            "moon 09:00-17:00",
            "mon 09:00-24:30",
            "mon",
            "",
        ] {
            assert!(parse_spans(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn openings_in_the_business_zone() {
        let h = office();
        // Tuesday 2026-12-01, 10:30 Berlin (09:30 UTC): open now.
        let now = at("2026-12-01T09:30:00Z");
        assert_eq!(next_open(&h, now), Some(now));
        // 12:30 Berlin: the lunch break; opens at 13:00 Berlin.
        assert_eq!(
            next_open(&h, at("2026-12-01T11:30:00Z")),
            Some(at("2026-12-01T12:00:00Z"))
        );
        // A span's end is closed: 17:00 Berlin is tomorrow 09:00.
        assert_eq!(
            next_open(&h, at("2026-12-01T16:00:00Z")),
            Some(at("2026-12-02T08:00:00Z"))
        );
        // Friday evening: Saturday 10:00.
        assert_eq!(
            next_open(&h, at("2026-12-04T18:00:00Z")),
            Some(at("2026-12-05T09:00:00Z"))
        );
        // Christmas Day (a Friday) is a holiday: Saturday 10:00.
        assert_eq!(
            next_open(&h, at("2026-12-24T20:00:00Z")),
            Some(at("2026-12-26T09:00:00Z"))
        );
        // Never open: none.
        let closed = OpeningHours {
            spans: Vec::new(),
            ..office()
        };
        assert_eq!(next_open(&closed, now), None);
    }

    #[test]
    fn a_slot_is_open_and_outside_quiet_hours_and_in_time() {
        let h = office();
        // The customer (in New York) is quiet until 09:00 their time,
        // 15:00 Berlin: the slot is then, the business being open.
        let quiet = QuietRule {
            time_zone: "America/New_York".into(),
            start_minute: 21 * 60,
            end_minute: 9 * 60,
        };
        let from = at("2026-12-01T09:30:00Z");
        assert_eq!(
            callback_slot(Some(&h), Some(&quiet), from, None),
            Some(at("2026-12-01T14:00:00Z"))
        );
        // Quiet until 17:30 every day, and closed from 17:00 on weekdays
        // and 14:00 on Saturdays: never both within the horizon.
        let late = QuietRule {
            time_zone: "Europe/Berlin".into(),
            start_minute: 0,
            end_minute: 17 * 60 + 30,
        };
        assert_eq!(callback_slot(Some(&h), Some(&late), from, None), None);
        // Quiet until 12:30: the afternoon opening.
        let morning = QuietRule {
            end_minute: 12 * 60 + 30,
            ..late
        };
        assert_eq!(
            callback_slot(Some(&h), Some(&morning), from, None),
            Some(at("2026-12-01T12:00:00Z"))
        );
        // Too late: the latest time passes before the next opening.
        let evening = at("2026-12-01T18:00:00Z");
        assert_eq!(
            callback_slot(
                Some(&h),
                None,
                evening,
                Some(evening + Duration::from_secs(3600))
            ),
            None
        );
        // No hours, no quiet hours: now.
        assert_eq!(callback_slot(None, None, from, None), Some(from));
    }

    #[test]
    fn a_slot_has_no_earlier_rival() {
        // Every 7 minutes over two weeks: the slot is open and not quiet,
        // and the minute before it (when later than the start) is not both.
        let h = office();
        let quiet = QuietRule {
            time_zone: "Asia/Tokyo".into(),
            start_minute: 22 * 60,
            end_minute: 8 * 60,
        };
        let mut from = at("2026-03-23T00:00:00Z");
        let end = at("2026-04-06T00:00:00Z");
        while from < end {
            let slot = callback_slot(Some(&h), Some(&quiet), from, None).unwrap();
            assert!(slot >= from);
            assert_eq!(next_open(&h, slot), Some(slot), "{from:?}");
            assert_eq!(quiet::quiet_end(&quiet, slot), None, "{from:?}");
            let before = slot - Duration::from_secs(60);
            if before >= from {
                let both = next_open(&h, before) == Some(before)
                    && quiet::quiet_end(&quiet, before).is_none();
                assert!(!both, "{from:?}: {before:?} was open and not quiet");
            }
            from += Duration::from_secs(7 * 60);
        }
    }
}
