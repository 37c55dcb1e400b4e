//! When a crontab line fires, in its IANA time zone: the next fire time after an instant, and
//! every fire time in an interval.
//!
//! Semantics are standard 5-field crontab ([`CronSpec::matches`]: 0 and 7 are Sunday, the two
//! day fields are ORed when both are restricted, ANDed otherwise, `*/N` allowing its own days). Wall-clock times are read in the schedule's
//! zone; around daylight-saving changes each matching wall-clock minute fires once:
//! - a time that does not exist (skipped by a spring-forward change) fires at the first
//!   instant after the gap, once even when several skipped minutes match;
//! - a time that happens twice (a fall-back change) fires at its first occurrence only.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::workflow::CronSpec;

/// How far ahead to look for the next fire: covers `0 0 29 2 *` with day-of-week restrictions.
const HORIZON_DAYS: i64 = 366 * 8;

/// The first fire time strictly after `after`.
pub fn next_after(spec: &CronSpec, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // Start a day early: a gap-shifted fire of the previous local day may land after `after`.
    let local = after.with_timezone(&tz).naive_local();
    let start = local.date() - Duration::days(1);
    // Wall-clock times this far before `after` cannot resolve after it (DST shifts are < 1 day).
    let floor = local - Duration::hours(26);
    for offset in 0..HORIZON_DAYS {
        let day = start + Duration::days(offset);
        if !day_matches(spec, day) {
            continue;
        }
        for hour in spec.hours.values() {
            for minute in spec.minutes.values() {
                let naive = day
                    .and_hms_opt(hour, minute, 0)
                    .expect("valid wall-clock time");
                if naive < floor {
                    continue;
                }
                let at = resolve(tz, naive);
                if at > after {
                    return Some(at);
                }
            }
        }
    }
    None
}

/// Fire times `t` with `from < t <= to`, oldest first, at most `cap` of them (the newest `cap`
/// when there are more, so `latest` still sees the last one).
pub fn fires_between(
    spec: &CronSpec,
    tz: Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    cap: usize,
) -> Vec<DateTime<Utc>> {
    let mut out = std::collections::VecDeque::new();
    let mut at = from;
    while let Some(t) = next_after(spec, tz, at) {
        if t > to {
            break;
        }
        if out.len() == cap {
            out.pop_front();
        }
        out.push_back(t);
        at = t;
    }
    out.into()
}

/// The next `n` fire times after `after`.
pub fn upcoming(spec: &CronSpec, tz: Tz, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let mut out = Vec::with_capacity(n);
    let mut at = after;
    while out.len() < n {
        match next_after(spec, tz, at) {
            Some(t) => {
                out.push(t);
                at = t;
            }
            None => break,
        }
    }
    out
}

fn day_matches(spec: &CronSpec, day: NaiveDate) -> bool {
    let weekday = day.weekday().num_days_from_sunday();
    // Any hour/minute the line allows: only the day fields and the month decide here.
    let (Some(&h), Some(&m)) = (spec.hours.values().first(), spec.minutes.values().first()) else {
        return false;
    };
    spec.matches(m, h, day.day(), day.month(), weekday)
}

/// The instant a wall-clock time names in `tz`: the earlier one when it happens twice, the end
/// of the gap when it does not exist.
fn resolve(tz: Tz, naive: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
        LocalResult::None => {
            // Walk forward minute by minute to the first wall-clock time that exists: the gap's
            // end (gaps are at most a few hours).
            let mut probe = naive;
            for _ in 0..(24 * 60) {
                probe += Duration::minutes(1);
                if let Some(t) = tz.from_local_datetime(&probe).earliest() {
                    return t.with_timezone(&Utc);
                }
            }
            Utc.from_utc_datetime(&naive)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(line: &str, tz: &str, after: &str) -> String {
        let spec = CronSpec::parse(line).unwrap();
        let tz: Tz = tz.parse().unwrap();
        next_after(&spec, tz, utc(after))
            .unwrap()
            .with_timezone(&tz)
            .to_rfc3339()
    }

    fn all(line: &str, tz: &str, from: &str, to: &str) -> Vec<String> {
        let spec = CronSpec::parse(line).unwrap();
        let tz: Tz = tz.parse().unwrap();
        fires_between(&spec, tz, utc(from), utc(to), 1000)
            .into_iter()
            .map(|t| t.with_timezone(&tz).to_rfc3339())
            .collect()
    }

    #[test]
    fn weekday_range_skips_the_weekend() {
        // 2024-03-08 is a Friday.
        assert_eq!(
            next("0 2 * * 1-5", "UTC", "2024-03-08T02:00:00Z"),
            "2024-03-11T02:00:00+00:00"
        );
        assert_eq!(
            all(
                "0 2 * * mon-fri",
                "UTC",
                "2024-03-08T00:00:00Z",
                "2024-03-13T00:00:00Z"
            ),
            [
                "2024-03-08T02:00:00+00:00",
                "2024-03-11T02:00:00+00:00",
                "2024-03-12T02:00:00+00:00"
            ]
        );
    }

    #[test]
    fn zero_and_seven_are_both_sunday() {
        // 2024-03-10 is a Sunday.
        for line in ["30 6 * * 0", "30 6 * * 7", "30 6 * * sun"] {
            assert_eq!(
                next(line, "UTC", "2024-03-06T00:00:00Z"),
                "2024-03-10T06:30:00+00:00",
                "{line}"
            );
        }
        assert_eq!(
            all(
                "0 0 * * 5-7",
                "UTC",
                "2024-03-07T00:00:00Z",
                "2024-03-11T00:00:00Z"
            ),
            [
                "2024-03-08T00:00:00+00:00",
                "2024-03-09T00:00:00+00:00",
                "2024-03-10T00:00:00+00:00"
            ]
        );
    }

    #[test]
    fn day_of_month_or_day_of_week() {
        // The 13th OR any Friday: 2024-09-06 (Fri), 09-13 (Fri and 13th), 09-20 (Fri),
        // 09-27 (Fri), 10-04 (Fri), 10-11 (Fri), 10-13 (Sun, the 13th).
        assert_eq!(
            all(
                "0 12 13 * 5",
                "UTC",
                "2024-09-01T00:00:00Z",
                "2024-10-14T00:00:00Z"
            ),
            [
                "2024-09-06T12:00:00+00:00",
                "2024-09-13T12:00:00+00:00",
                "2024-09-20T12:00:00+00:00",
                "2024-09-27T12:00:00+00:00",
                "2024-10-04T12:00:00+00:00",
                "2024-10-11T12:00:00+00:00",
                "2024-10-13T12:00:00+00:00"
            ]
        );
        // A star in one day field: only the other decides.
        assert_eq!(
            next("0 0 13 * *", "UTC", "2024-09-01T00:00:00Z"),
            "2024-09-13T00:00:00+00:00"
        );
        // As in Vixie cron, a day field starting with `*` makes the two fields AND, and `*/2`
        // still allows odd days only: the first odd-day Friday after 09-01 is 09-13.
        assert_eq!(
            next("0 0 */2 * 5", "UTC", "2024-09-01T00:00:00Z"),
            "2024-09-13T00:00:00+00:00"
        );
        // `*/10` in day-of-month alone: the 1st, 11th, 21st and 31st, never every day.
        assert_eq!(
            all(
                "0 4 */10 * *",
                "UTC",
                "2024-01-01T00:00:00Z",
                "2024-02-12T00:00:00Z"
            ),
            [
                "2024-01-01T04:00:00+00:00",
                "2024-01-11T04:00:00+00:00",
                "2024-01-21T04:00:00+00:00",
                "2024-01-31T04:00:00+00:00",
                "2024-02-01T04:00:00+00:00",
                "2024-02-11T04:00:00+00:00"
            ]
        );
    }

    #[test]
    fn leap_day_only_line_finds_the_next_leap_year() {
        assert_eq!(
            next("0 0 29 2 *", "UTC", "2024-03-01T00:00:00Z"),
            "2028-02-29T00:00:00+00:00"
        );
    }

    #[test]
    fn time_zone_shifts_the_instant() {
        assert_eq!(
            next("0 2 * * *", "Asia/Tokyo", "2024-01-01T00:00:00Z"),
            "2024-01-02T02:00:00+09:00"
        );
    }

    #[test]
    fn spring_forward_gap_fires_once_at_the_gap_end() {
        // America/New_York: 2024-03-10 02:00 EST → 03:00 EDT; 02:30 does not exist.
        assert_eq!(
            all(
                "30 2 * * *",
                "America/New_York",
                "2024-03-09T00:00:00Z",
                "2024-03-12T00:00:00Z"
            ),
            [
                "2024-03-09T02:30:00-05:00",
                "2024-03-10T03:00:00-04:00",
                "2024-03-11T02:30:00-04:00"
            ]
        );
        // Every 15 minutes: 02:00–02:45 collapse into one fire at 03:00, then 03:15…
        let fires = all(
            "*/15 * * * *",
            "America/New_York",
            "2024-03-10T06:40:00Z",
            "2024-03-10T07:20:00Z",
        );
        assert_eq!(
            fires,
            [
                "2024-03-10T01:45:00-05:00",
                "2024-03-10T03:00:00-04:00",
                "2024-03-10T03:15:00-04:00"
            ]
        );
    }

    #[test]
    fn fall_back_repeated_hour_fires_once() {
        // Europe/Berlin: 2024-10-27 03:00 CEST → 02:00 CET; 02:30 happens twice.
        assert_eq!(
            all(
                "30 2 * * *",
                "Europe/Berlin",
                "2024-10-26T00:00:00Z",
                "2024-10-29T00:00:00Z"
            ),
            [
                "2024-10-26T02:30:00+02:00",
                "2024-10-27T02:30:00+02:00",
                "2024-10-28T02:30:00+01:00"
            ]
        );
        // Hourly across the change: 02:00 fires once (CEST); 03:00 CET follows two hours later.
        let fires = all(
            "0 * * * *",
            "Europe/Berlin",
            "2024-10-26T23:30:00Z",
            "2024-10-27T02:30:00Z",
        );
        assert_eq!(
            fires,
            ["2024-10-27T02:00:00+02:00", "2024-10-27T03:00:00+01:00"]
        );
    }

    #[test]
    fn cap_keeps_the_newest() {
        let spec = CronSpec::parse("* * * * *").unwrap();
        let got = fires_between(
            &spec,
            Tz::UTC,
            utc("2024-01-01T00:00:00Z"),
            utc("2024-01-01T01:00:00Z"),
            3,
        );
        assert_eq!(
            got,
            [
                utc("2024-01-01T00:58:00Z"),
                utc("2024-01-01T00:59:00Z"),
                utc("2024-01-01T01:00:00Z")
            ]
        );
    }
}
