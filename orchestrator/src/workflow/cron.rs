//! Standard 5-field crontab lines (`minute hour day-of-month month day-of-week`), parsed into a
//! [`CronSpec`]: the set of allowed values per field, and whether the two day fields were
//! restricted. As in Vixie cron, a day field is restricted unless it starts with `*`; when both
//! are, a day matching EITHER fires, otherwise a day must match BOTH — and a field starting with
//! `*` still allows only its own values (`*/10` in day-of-month: the 1st, 11th, 21st, 31st).
//!
//! Accepted: `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b-c`, month names
//! `jan`–`dec`, weekday names `sun`–`sat` (any case), weekday 0 and 7 both Sunday, and the
//! macros `@yearly` `@annually` `@monthly` `@weekly` `@daily` `@midnight` `@hourly`.
//! Errors carry the byte range of the offending part of the line.

use serde::Serialize;

/// A set of small numbers (0..=63) as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct CronSet(u64);

impl CronSet {
    pub fn contains(&self, v: u32) -> bool {
        v < 64 && self.0 & (1 << v) != 0
    }

    pub fn values(&self) -> Vec<u32> {
        (0..64).filter(|v| self.contains(*v)).collect()
    }

    fn insert(&mut self, v: u32) {
        self.0 |= 1 << v;
    }
}

/// A parsed crontab line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CronSpec {
    /// 0–59.
    pub minutes: CronSet,
    /// 0–23.
    pub hours: CronSet,
    /// 1–31.
    pub days_of_month: CronSet,
    /// 1–12.
    pub months: CronSet,
    /// 0–6, 0 = Sunday (a 7 in the line is stored as 0).
    pub days_of_week: CronSet,
    /// The day-of-month field did not start with `*` (both restricted: the day fields OR).
    pub dom_restricted: bool,
    /// The day-of-week field did not start with `*`.
    pub dow_restricted: bool,
}

/// What is wrong with a crontab line, and where (byte range within the line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError {
    pub message: String,
    pub offset: usize,
    pub len: usize,
    pub help: Option<String>,
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// The value of `names[0]`.
    names_base: u32,
}

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        names_base: 0,
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        names_base: 0,
    },
    Field {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
        names_base: 0,
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: MONTHS,
        names_base: 1,
    },
    Field {
        name: "day-of-week",
        min: 0,
        max: 7,
        names: DAYS,
        names_base: 0,
    },
];

const MACROS: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

const FORMAT_HELP: &str =
    "a crontab line has 5 fields: minute hour day-of-month month day-of-week, e.g. `0 2 * * 1-5`";

fn err(message: String, offset: usize, len: usize) -> CronError {
    CronError {
        message,
        offset,
        len,
        help: None,
    }
}

impl CronSpec {
    /// Parses a crontab line.
    pub fn parse(line: &str) -> Result<CronSpec, CronError> {
        let trimmed = line.trim();
        if trimmed.starts_with('@') {
            let lead = line.len() - line.trim_start().len();
            return match MACROS.iter().find(|(m, _)| m.eq_ignore_ascii_case(trimmed)) {
                Some((_, expansion)) => CronSpec::parse(expansion),
                None => Err(CronError {
                    help: Some("macros are @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly".into()),
                    ..err(format!("unknown cron macro `{trimmed}`"), lead, trimmed.len())
                }),
            };
        }
        let words = split_words(line);
        if words.len() != 5 {
            let (offset, len) = match words.get(5) {
                Some((o, w)) => (*o, w.len()),
                None => (0, line.len()),
            };
            return Err(CronError {
                help: Some(FORMAT_HELP.into()),
                ..err(
                    format!("a crontab line needs 5 fields, found {}", words.len()),
                    offset,
                    len,
                )
            });
        }
        let mut sets = [CronSet::default(); 5];
        for (i, (offset, word)) in words.iter().enumerate() {
            sets[i] = parse_field(&FIELDS[i], word, *offset)?;
        }
        let mut dow = CronSet::default();
        for v in sets[4].values() {
            dow.insert(v % 7);
        }
        let spec = CronSpec {
            minutes: sets[0],
            hours: sets[1],
            days_of_month: sets[2],
            months: sets[3],
            days_of_week: dow,
            dom_restricted: !words[2].1.starts_with('*'),
            dow_restricted: !words[4].1.starts_with('*'),
        };
        spec.check_reachable(words[2])?;
        Ok(spec)
    }

    /// Whether the line fires at this minute. `weekday`: 0 = Sunday.
    pub fn matches(&self, minute: u32, hour: u32, day: u32, month: u32, weekday: u32) -> bool {
        let dom = self.days_of_month.contains(day);
        let dow = self.days_of_week.contains(weekday % 7);
        // Vixie cron: OR when both day fields are restricted, else AND (a `*` field allows
        // every day, a `*/N` one its own days).
        let day_ok = if self.dom_restricted && self.dow_restricted {
            dom || dow
        } else {
            dom && dow
        };
        self.minutes.contains(minute)
            && self.hours.contains(hour)
            && self.months.contains(month)
            && day_ok
    }

    /// Refuses lines that can never fire, like `0 0 31 2 *` (no February 31st).
    fn check_reachable(&self, (offset, dom_word): (usize, &str)) -> Result<(), CronError> {
        if self.dow_restricted || !self.dom_restricted {
            return Ok(());
        }
        const DAYS_IN: [u32; 13] = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        let reachable = self.months.values().iter().any(|&m| {
            self.days_of_month
                .values()
                .iter()
                .any(|&d| d <= DAYS_IN[m as usize])
        });
        if reachable {
            return Ok(());
        }
        Err(err(
            format!("this line never fires: no chosen month has day `{dom_word}`"),
            offset,
            dom_word.len(),
        ))
    }
}

impl super::model::Schedule {
    /// The parsed `cron` line (always `Ok` for a schedule that came from a loaded file).
    pub fn spec(&self) -> Result<CronSpec, CronError> {
        CronSpec::parse(&self.cron)
    }
}

fn split_words(line: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line
        .char_indices()
        .chain(std::iter::once((line.len(), ' ')))
    {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push((s, &line[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    out
}

fn parse_field(f: &Field, word: &str, offset: usize) -> Result<CronSet, CronError> {
    let mut set = CronSet::default();
    let mut at = offset;
    for item in word.split(',') {
        if item.is_empty() {
            return Err(err(
                format!("empty item in the {} field `{word}`", f.name),
                offset,
                word.len(),
            ));
        }
        parse_item(f, item, at, &mut set)?;
        at += item.len() + 1;
    }
    Ok(set)
}

fn parse_item(f: &Field, item: &str, offset: usize, set: &mut CronSet) -> Result<(), CronError> {
    let (base, step) = match item.split_once('/') {
        Some((b, s)) => (b, Some(s)),
        None => (item, None),
    };
    let step_offset = offset + base.len() + 1;
    let step = match step {
        None => 1,
        Some(s) => match s.parse::<u32>() {
            Ok(n) if n >= 1 && n <= f.max => n,
            Ok(_) => {
                return Err(err(
                    format!("{} step `{s}` must be between 1 and {}", f.name, f.max),
                    step_offset,
                    s.len(),
                ));
            }
            Err(_) => {
                return Err(err(
                    format!("{} step `{s}` is not a number", f.name),
                    step_offset,
                    s.len(),
                ));
            }
        },
    };
    let (lo, hi) = if base == "*" {
        (f.min, if f.name == "day-of-week" { 6 } else { f.max })
    } else if let Some((a, b)) = base.split_once('-') {
        let lo = value(f, a, offset)?;
        let hi = value(f, b, offset + a.len() + 1)?;
        if lo > hi {
            return Err(CronError {
                help: Some(format!(
                    "write it low to high; to wrap around, use a list: `{a}-{},{}-{b}`",
                    f.max, f.min
                )),
                ..err(
                    format!("{} range `{base}` runs backwards", f.name),
                    offset,
                    base.len(),
                )
            });
        }
        (lo, hi)
    } else {
        let v = value(f, base, offset)?;
        if step != 1 || item.contains('/') {
            return Err(CronError {
                help: Some(format!(
                    "a step needs a range: write `*/{step}` or `{v}-{}/{step}`",
                    f.max
                )),
                ..err(
                    format!("{} `{item}`: a step after a single value", f.name),
                    offset,
                    item.len(),
                )
            });
        }
        (v, v)
    };
    let mut v = lo;
    while v <= hi {
        set.insert(v);
        v += step;
    }
    Ok(())
}

fn value(f: &Field, text: &str, offset: usize) -> Result<u32, CronError> {
    if let Ok(n) = text.parse::<u32>() {
        if n < f.min || n > f.max {
            return Err(CronError {
                help: (f.name == "day-of-week").then(|| "0 and 7 are both Sunday".to_string()),
                ..err(
                    format!("{} `{n}` is out of range {}-{}", f.name, f.min, f.max),
                    offset,
                    text.len(),
                )
            });
        }
        return Ok(n);
    }
    let lower = text.to_ascii_lowercase();
    if let Some(i) = f.names.iter().position(|n| *n == lower) {
        return Ok(f.names_base + i as u32);
    }
    let help = if f.names.is_empty() {
        None
    } else {
        Some(format!(
            "names for the {} field are {}",
            f.name,
            f.names.join(", ")
        ))
    };
    let what = if text.is_empty() {
        "an empty value".to_string()
    } else {
        format!("`{text}`")
    };
    Err(CronError {
        help,
        ..err(
            format!("{} {what} is not a number or name", f.name),
            offset,
            text.len().max(1),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u32]) -> Vec<u32> {
        v.to_vec()
    }

    #[test]
    fn fields_ranges_steps_lists() {
        let c = CronSpec::parse("*/15 9-17/4 1,15 */3 *").unwrap();
        assert_eq!(c.minutes.values(), set(&[0, 15, 30, 45]));
        assert_eq!(c.hours.values(), set(&[9, 13, 17]));
        assert_eq!(c.days_of_month.values(), set(&[1, 15]));
        assert_eq!(c.months.values(), set(&[1, 4, 7, 10]));
        assert_eq!(c.days_of_week.values(), set(&[0, 1, 2, 3, 4, 5, 6]));
        assert!(c.dom_restricted && !c.dow_restricted);
    }

    #[test]
    fn sunday_is_zero_and_seven() {
        assert_eq!(
            CronSpec::parse("0 0 * * 0").unwrap().days_of_week.values(),
            set(&[0])
        );
        assert_eq!(
            CronSpec::parse("0 0 * * 7").unwrap().days_of_week.values(),
            set(&[0])
        );
        assert_eq!(
            CronSpec::parse("0 0 * * 5-7")
                .unwrap()
                .days_of_week
                .values(),
            set(&[0, 5, 6])
        );
        assert_eq!(
            CronSpec::parse("0 0 * * SUN")
                .unwrap()
                .days_of_week
                .values(),
            set(&[0])
        );
    }

    #[test]
    fn names_for_months_and_days() {
        let c = CronSpec::parse("0 2 * jan-mar,Dec mon-fri").unwrap();
        assert_eq!(c.months.values(), set(&[1, 2, 3, 12]));
        assert_eq!(c.days_of_week.values(), set(&[1, 2, 3, 4, 5]));
        assert!(!c.dom_restricted && c.dow_restricted);
    }

    #[test]
    fn day_fields_or_when_both_restricted() {
        // The 1st of the month OR any Monday.
        let c = CronSpec::parse("0 0 1 * mon").unwrap();
        assert!(c.matches(0, 0, 1, 6, 3)); // the 1st, a Wednesday
        assert!(c.matches(0, 0, 9, 6, 1)); // a Monday, the 9th
        assert!(!c.matches(0, 0, 10, 6, 2));
        // Only day-of-week restricted: day-of-month does not widen it.
        let weekdays = CronSpec::parse("0 2 * * 1-5").unwrap();
        assert!(weekdays.matches(0, 2, 14, 6, 5));
        assert!(!weekdays.matches(0, 2, 15, 6, 6));
        assert!(!weekdays.matches(1, 2, 14, 6, 5));
        // `*/2` in day-of-month is not "restricted" (it starts with `*`), so the fields AND,
        // and it still allows only odd days: odd-day Mondays.
        let c = CronSpec::parse("0 0 */2 * mon").unwrap();
        assert!(!c.dom_restricted);
        assert!(!c.matches(0, 0, 3, 1, 2)); // the 3rd, a Tuesday
        assert!(!c.matches(0, 0, 2, 1, 1)); // the 2nd, a Monday
        assert!(c.matches(0, 0, 9, 1, 1)); // the 9th, a Monday
        // A `*/N` day field alone fires on its own days only.
        let c = CronSpec::parse("0 4 */10 * *").unwrap();
        let days: Vec<u32> = (1..=31).filter(|&d| c.matches(0, 4, d, 1, d % 7)).collect();
        assert_eq!(days, [1, 11, 21, 31]);
        let c = CronSpec::parse("0 4 * * */3").unwrap();
        let weekdays: Vec<u32> = (0..7).filter(|&w| c.matches(0, 4, 15, 1, w)).collect();
        assert_eq!(weekdays, [0, 3, 6]);
    }

    #[test]
    fn macros() {
        assert_eq!(
            CronSpec::parse("@daily").unwrap(),
            CronSpec::parse("0 0 * * *").unwrap()
        );
        assert_eq!(
            CronSpec::parse("@weekly").unwrap(),
            CronSpec::parse("0 0 * * 7").unwrap()
        );
        assert!(
            CronSpec::parse("@reboot")
                .unwrap_err()
                .message
                .contains("unknown cron macro")
        );
    }

    #[test]
    fn errors_name_the_offending_column() {
        let e = CronSpec::parse("0 24 * * *").unwrap_err();
        assert_eq!((e.offset, e.len), (2, 2));
        assert!(
            e.message.contains("hour `24` is out of range 0-23"),
            "{}",
            e.message
        );
        let e = CronSpec::parse("0 0 * * 8").unwrap_err();
        assert_eq!(e.offset, 8);
        assert_eq!(e.help.as_deref(), Some("0 and 7 are both Sunday"));
        let e = CronSpec::parse("0 0 * foo *").unwrap_err();
        assert_eq!((e.offset, e.len), (6, 3));
        let e = CronSpec::parse("*/0 * * * *").unwrap_err();
        assert_eq!((e.offset, e.len), (2, 1));
        let e = CronSpec::parse("0 0 * * * *").unwrap_err();
        assert!(e.message.contains("found 6"));
        assert_eq!(e.offset, 10);
        assert!(
            CronSpec::parse("0 0 * *")
                .unwrap_err()
                .message
                .contains("found 4")
        );
        let e = CronSpec::parse("0 5-1 * * *").unwrap_err();
        assert!(e.message.contains("backwards"));
        assert!(
            CronSpec::parse("5/10 * * * *")
                .unwrap_err()
                .message
                .contains("a step after a single value")
        );
        assert!(
            CronSpec::parse("0 0 1,,2 * *")
                .unwrap_err()
                .message
                .contains("empty item")
        );
        let e = CronSpec::parse("0 0 31 2 *").unwrap_err();
        assert!(e.message.contains("never fires"));
        assert!(CronSpec::parse("0 0 31 2 mon").is_ok());
        assert!(CronSpec::parse("0 0 29 feb *").is_ok());
    }
}
