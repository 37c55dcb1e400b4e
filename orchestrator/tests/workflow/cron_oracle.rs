//! tuna's cron fire times against an independent implementation, the `croner` crate, over a
//! table of lines, zones and start instants (names, `@` macros, 7 = Sunday, `*/N` in each
//! field, odd time zones, daylight-saving days).
//!
//! croner decides OR/AND of the day fields by its own rule (a field is a wildcard only when it
//! is exactly `*`, and ORs otherwise); tuna follows Vixie cron (a field starting with `*` makes
//! them AND). So croner is asked for OR exactly when Vixie ORs — both fields restricted — and
//! computes everything else (the sets, the calendar, the zones) on its own.
//!
//! Intentional divergences, checked precisely rather than skipped: for a line that fires more
//! than once an hour or in several hours ("interval" lines in croner's words), croner skips the
//! wall-clock times a spring-forward gap removes and fires twice in a repeated fall-back hour;
//! tuna fires each matching wall-clock minute exactly once — the skipped ones once at the end
//! of the gap, the repeated ones at their first occurrence.

use chrono::{DateTime, LocalResult, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::CronParser;
use tuna::workflow::CronSpec;

/// (line, zone, start)
const CASES: &[(&str, &str, &str)] = &[
    ("0 2 * * *", "UTC", "2024-01-01T00:00:00Z"),
    ("0 4 */10 * *", "UTC", "2024-01-01T00:00:00Z"),
    ("0 4 */10 * *", "Europe/Amsterdam", "2024-02-20T00:00:00Z"),
    ("15 3 */7 * 1-5", "UTC", "2024-03-01T00:00:00Z"),
    ("0 0 */2 * fri", "UTC", "2024-09-01T00:00:00Z"),
    ("0 0 1,15 * mon", "UTC", "2024-09-01T00:00:00Z"),
    ("0 12 13 * 5", "America/New_York", "2024-09-01T00:00:00Z"),
    ("30 6 * * 7", "UTC", "2024-03-01T00:00:00Z"),
    ("30 6 * * 0", "Asia/Tokyo", "2024-03-01T00:00:00Z"),
    ("0 0 * * 5-7", "UTC", "2024-03-01T00:00:00Z"),
    ("0 0 * * */2", "UTC", "2024-03-01T00:00:00Z"),
    ("0 0 * * */3", "Australia/Sydney", "2024-03-01T00:00:00Z"),
    (
        "0 9 * jan-mar,Dec mon-fri",
        "Europe/London",
        "2024-11-20T00:00:00Z",
    ),
    ("0 0 1 */3 *", "UTC", "2024-01-15T00:00:00Z"),
    ("0 */5 * * *", "UTC", "2024-06-01T00:00:00Z"),
    ("*/7 * * * *", "UTC", "2024-06-01T00:00:00Z"),
    ("5-59/20 * * * *", "Asia/Kolkata", "2024-06-01T00:00:00Z"),
    ("0 22 * * sun-thu", "Asia/Kathmandu", "2024-06-01T00:00:00Z"),
    ("45 23 31 * *", "Pacific/Chatham", "2024-01-01T00:00:00Z"),
    ("0 0 29 2 *", "UTC", "2024-03-01T00:00:00Z"),
    ("0 0 29 2 mon", "UTC", "2024-01-01T00:00:00Z"),
    ("0 12 L * *", "UTC", "2024-01-01T00:00:00Z"),
    ("@yearly", "UTC", "2024-05-01T00:00:00Z"),
    ("@monthly", "Europe/Berlin", "2024-05-01T00:00:00Z"),
    ("@weekly", "America/Los_Angeles", "2024-05-01T00:00:00Z"),
    ("@daily", "Australia/Lord_Howe", "2024-03-30T00:00:00Z"),
    ("@hourly", "UTC", "2024-05-01T00:00:00Z"),
    // Daylight-saving days: fixed times in a gap and in a repeated hour.
    ("30 2 * * *", "America/New_York", "2024-03-08T00:00:00Z"),
    ("30 2 * * *", "Europe/Berlin", "2024-10-25T00:00:00Z"),
    ("0 2 * * *", "Australia/Lord_Howe", "2024-04-05T00:00:00Z"),
    ("30 1 * * *", "America/Havana", "2024-03-09T00:00:00Z"),
    // Interval lines across daylight-saving changes (the divergence above).
    ("*/15 * * * *", "America/New_York", "2024-03-10T05:00:00Z"),
    ("0 * * * *", "Europe/Berlin", "2024-10-26T22:00:00Z"),
    ("30 1,2 * * *", "Europe/London", "2024-03-30T00:00:00Z"),
    (
        "*/30 * * * *",
        "Australia/Lord_Howe",
        "2024-04-06T13:00:00Z",
    ),
];

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The next `n` fire times by croner, with OR of the day fields exactly when Vixie cron ORs.
fn croner_upcoming(line: &str, tz: Tz, start: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let or = CronSpec::parse(line)
        .map(|s| s.dom_restricted && s.dow_restricted)
        .unwrap();
    let cron = CronParser::builder()
        .dom_and_dow(!or)
        .build()
        .parse(line)
        .unwrap_or_else(|e| panic!("croner: {line}: {e}"));
    let mut at = start.with_timezone(&tz);
    let mut out = Vec::new();
    for _ in 0..n {
        at = cron.find_next_occurrence(&at, false).unwrap();
        out.push(at.with_timezone(&Utc));
    }
    out
}

/// `t` is the end of a spring-forward gap: the wall-clock minute just before it does not exist.
fn is_gap_end(tz: Tz, t: DateTime<Utc>) -> bool {
    let before = t.with_timezone(&tz).naive_local() - chrono::Duration::minutes(1);
    matches!(tz.from_local_datetime(&before), LocalResult::None)
}

/// `t` is the second occurrence of a repeated wall-clock time.
fn is_repeat(tz: Tz, t: DateTime<Utc>) -> bool {
    match tz.from_local_datetime(&t.with_timezone(&tz).naive_local()) {
        LocalResult::Ambiguous(a, b) => t == a.max(b).with_timezone(&Utc),
        _ => false,
    }
}

#[test]
fn next_fire_times_match_an_independent_implementation() {
    const N: usize = 40;
    for &(line, zone, start) in CASES {
        if line.contains('L') {
            // `L` (last day) is croner's extension; tuna refuses it with a position.
            assert!(CronSpec::parse(line).is_err(), "{line}");
            continue;
        }
        let tz: Tz = zone.parse().unwrap();
        let spec = CronSpec::parse(line).unwrap();
        let ours = tuna::daemon::upcoming(&spec, tz, utc(start), N);
        let theirs = croner_upcoming(line, tz, utc(start), N + 8);
        assert_eq!(ours.len(), N, "{line} in {zone}");
        let last = ours[N - 1];
        let theirs: Vec<_> = theirs.into_iter().filter(|t| *t <= last).collect();
        let only_ours: Vec<_> = ours.iter().filter(|t| !theirs.contains(t)).collect();
        let only_theirs: Vec<_> = theirs.iter().filter(|t| !ours.contains(t)).collect();
        for t in &only_ours {
            assert!(
                is_gap_end(tz, **t),
                "{line} in {zone} from {start}: tuna fires at {t}, croner does not"
            );
        }
        for t in &only_theirs {
            assert!(
                is_repeat(tz, **t),
                "{line} in {zone} from {start}: croner fires at {t}, tuna does not"
            );
        }
    }
}

#[test]
fn the_divergences_are_only_on_daylight_saving_days_of_interval_lines() {
    // Fixed-time lines agree exactly, DST days included; the interval cases above do diverge
    // (so the checks in the other test are exercised, not vacuous).
    let mut diverging = 0;
    for &(line, zone, start) in CASES.iter().filter(|c| !c.0.contains('L')) {
        let tz: Tz = zone.parse().unwrap();
        let spec = CronSpec::parse(line).unwrap();
        let ours = tuna::daemon::upcoming(&spec, tz, utc(start), 40);
        let theirs = croner_upcoming(line, tz, utc(start), 40);
        if ours != theirs {
            diverging += 1;
            let fixed = spec.minutes.values().len() == 1 && spec.hours.values().len() == 1;
            assert!(!fixed, "{line} in {zone}: a fixed-time line diverges");
        }
    }
    assert!(diverging >= 3, "only {diverging} cases diverge");
}
