//! Quiet hours in the customer's time zone: whether an instant falls inside
//! them and, if so, when they end.
//!
//! Guarantees: the end returned is the first instant at or after `at` that
//! lies outside the quiet hours (so a message deferred to it is never due
//! inside them), computed in the customer's zone with its daylight-saving
//! rules (a local end time skipped by a clock change resolves to the instant
//! after the gap).

use std::time::SystemTime;

use jiff::tz::TimeZone;
use omniroute_domain::QuietRule;

/// Minutes in a day.
const DAY: u16 = 24 * 60;

/// The time zone a rule names; UTC when it names none this build knows
/// (settings and the API validate zones, so that is only for old data).
pub fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap_or(TimeZone::UTC)
}

/// Whether `minute` (after local midnight) is inside quiet hours running
/// from `start` to `end` (crossing midnight when `start > end`; none when
/// equal).
pub fn is_quiet_minute(start: u16, end: u16, minute: u16) -> bool {
    match start.cmp(&end) {
        std::cmp::Ordering::Equal => false,
        std::cmp::Ordering::Less => (start..end).contains(&minute),
        std::cmp::Ordering::Greater => minute >= start || minute < end,
    }
}

/// When the quiet hours around `at` end, or `None` when `at` is not inside
/// them.
pub fn quiet_end(rule: &QuietRule, at: SystemTime) -> Option<SystemTime> {
    // The local end may not exist (a clock change skips it) and resolve to
    // an instant after the gap that is quiet again, when all of the time
    // between end and start falls into the gap: then the quiet hours
    // really end the next day. Each round moves forward by at least a day's
    // worth of quiet hours, so a few rounds always settle.
    let mut end_at = quiet_end_once(rule, at)?;
    for _ in 0..4 {
        match quiet_end_once(rule, end_at) {
            Some(later) if later > end_at => end_at = later,
            _ => break,
        }
    }
    Some(end_at)
}

/// [`quiet_end`] without the clock-change check.
fn quiet_end_once(rule: &QuietRule, at: SystemTime) -> Option<SystemTime> {
    let (start, end) = (rule.start_minute % DAY, rule.end_minute % DAY);
    let tz = zone(&rule.time_zone);
    let zoned = jiff::Timestamp::try_from(at).ok()?.to_zoned(tz.clone());
    let minute = u16::try_from(zoned.hour()).ok()? * 60 + u16::try_from(zoned.minute()).ok()?;
    if !is_quiet_minute(start, end, minute) {
        return None;
    }
    // The end falls today when we are before it, else tomorrow (the range
    // crosses midnight and we are after its start).
    let date = if minute < end {
        zoned.date()
    } else {
        zoned.date().tomorrow().ok()?
    };
    let (hour, min) = (end / 60, end % 60);
    let local = date.at(i8::try_from(hour).ok()?, i8::try_from(min).ok()?, 0, 0);
    let end_at = local.to_zoned(tz).ok()?.timestamp();
    let end_at = SystemTime::from(end_at);
    // A clock change can put the local end before `at`; never go back.
    Some(end_at.max(at))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn rule(zone: &str, start: &str, end: &str) -> QuietRule {
        let minutes = |s: &str| {
            let (h, m) = s.split_once(':').unwrap();
            h.parse::<u16>().unwrap() * 60 + m.parse::<u16>().unwrap()
        };
        QuietRule {
            time_zone: zone.into(),
            start_minute: minutes(start),
            end_minute: minutes(end),
        }
    }

    fn at(text: &str) -> SystemTime {
        SystemTime::from(text.parse::<jiff::Timestamp>().unwrap())
    }

    #[test]
    fn an_end_that_a_clock_change_skips_is_not_quiet_again() {
        // Found by the routing fuzz target: in Pacific/Chatham clocks go
        // from 02:45 to 03:45 on 2026-09-27. With quiet hours 03:40-02:52,
        // the whole waking window 02:52-03:40 falls into the gap: the quiet
        // hours end at 02:52 the next day.
        let r = rule("Pacific/Chatham", "03:40", "02:52");
        let before = at("2026-09-26T13:00:00Z"); // 02:45 local, before the gap
        let end = quiet_end(&r, before).expect("quiet");
        assert!(quiet_end(&r, end).is_none(), "the end is not quiet");
        // The same in Berlin, quiet 02:30-02:10 on the last Sunday of March
        // (02:00 → 03:00).
        let r = rule("Europe/Berlin", "02:30", "02:10");
        let end = quiet_end(&r, at("2026-03-28T23:30:00Z")).expect("quiet");
        assert!(quiet_end(&r, end).is_none(), "the end is not quiet");
    }

    #[test]
    fn ranges_within_a_day_and_across_midnight() {
        assert!(is_quiet_minute(60, 120, 60));
        assert!(!is_quiet_minute(60, 120, 120));
        assert!(is_quiet_minute(22 * 60, 7 * 60, 23 * 60));
        assert!(is_quiet_minute(22 * 60, 7 * 60, 0));
        assert!(!is_quiet_minute(22 * 60, 7 * 60, 12 * 60));
        assert!(!is_quiet_minute(5, 5, 5));
    }

    #[test]
    fn the_end_is_in_the_customers_zone() {
        // 23:30 in Berlin (UTC+1 in December) is inside 22:00–07:00; the
        // end is 07:00 Berlin the next morning = 06:00 UTC.
        let r = rule("Europe/Berlin", "22:00", "07:00");
        assert_eq!(
            quiet_end(&r, at("2026-12-01T22:30:00Z")),
            Some(at("2026-12-02T06:00:00Z"))
        );
        // 03:00 Berlin: the same morning.
        assert_eq!(
            quiet_end(&r, at("2026-12-02T02:00:00Z")),
            Some(at("2026-12-02T06:00:00Z"))
        );
        // Noon Berlin: not quiet.
        assert_eq!(quiet_end(&r, at("2026-12-02T11:00:00Z")), None);
        // The same instant is quiet in New York (06:00 there) and ends at 07:00.
        let ny = rule("America/New_York", "22:00", "07:00");
        assert_eq!(
            quiet_end(&ny, at("2026-12-02T11:00:00Z")),
            Some(at("2026-12-02T12:00:00Z"))
        );
    }

    #[test]
    fn daylight_saving_gaps_resolve_forwards() {
        // Berlin skips 02:00–03:00 on 2026-03-29; quiet hours ending at 02:30
        // end at the first instant after the gap.
        let r = rule("Europe/Berlin", "01:00", "02:30");
        let end = quiet_end(&r, at("2026-03-29T00:30:00Z")).unwrap();
        assert!(end >= at("2026-03-29T00:30:00Z"));
        assert!(end <= at("2026-03-29T01:30:00Z") + Duration::from_secs(1));
        assert_eq!(quiet_end(&r, end), None, "never inside the quiet hours");
    }
}
