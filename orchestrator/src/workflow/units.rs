//! Durations (`90s`, `10m`, `2h`, `1d`, `1h30m`) and sizes (`16GiB`, `512MiB`, `40GB`).

use std::time::Duration;

const DURATION_UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
];

/// Parses `90s`, `10m`, `2h`, `1d`, `500ms` and combinations from the largest unit down
/// (`1h30m`). The error says what is wrong in words.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("an empty duration; write e.g. `90s`, `10m`, `2h`, `1d` or `1h30m`".into());
    }
    if s.parse::<f64>().is_ok() {
        return Err(format!("`{s}` has no unit; write e.g. `{s}s` or `{s}m`"));
    }
    let mut rest = s;
    let mut total: u64 = 0;
    let mut last_rank = usize::MAX;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "`{s}` is not a duration; write e.g. `90s`, `10m`, `2h`, `1d` or `1h30m`"
            ));
        }
        let (num, after) = rest.split_at(digits);
        if after.starts_with('.') {
            return Err(format!(
                "`{s}`: use whole numbers of a smaller unit (e.g. `1h30m`, not `1.5h`)"
            ));
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let Some(rank) = DURATION_UNITS.iter().position(|(u, _)| *u == unit) else {
            let hint = if unit.is_empty() {
                "a number needs a unit".to_string()
            } else {
                format!("unknown unit `{unit}`")
            };
            return Err(format!("`{s}`: {hint}; units are `ms`, `s`, `m`, `h`, `d`"));
        };
        if last_rank != usize::MAX && rank <= last_rank {
            return Err(format!(
                "`{s}`: write each unit once, largest first (e.g. `1h30m`)"
            ));
        }
        last_rank = rank;
        let n: u64 = num
            .parse()
            .map_err(|_| format!("`{s}` is too long a duration"))?;
        total = n
            .checked_mul(DURATION_UNITS[rank].1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("`{s}` is too long a duration"))?;
        rest = next;
    }
    Ok(Duration::from_millis(total))
}

const SIZE_UNITS: [(&str, u64); 9] = [
    ("B", 1),
    ("KB", 1000),
    ("MB", 1000_u64.pow(2)),
    ("GB", 1000_u64.pow(3)),
    ("TB", 1000_u64.pow(4)),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

/// Parses a size in bytes: a number (decimals allowed) and a unit, `B`, `KB`/`MB`/`GB`/`TB`
/// (powers of 1000) or `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let unit = unit.trim_start();
    let number: f64 = match num.parse() {
        Ok(n) => n,
        Err(_) => {
            return Err(format!(
                "`{s}` is not a size; write e.g. `16GiB`, `512MiB` or `40GB`"
            ));
        }
    };
    if unit.is_empty() {
        return Err(format!(
            "`{s}` has no unit; write e.g. `{num}GiB` or `{num}MiB`"
        ));
    }
    let Some((_, factor)) = SIZE_UNITS.iter().find(|(u, _)| *u == unit) else {
        let fix = SIZE_UNITS
            .iter()
            .find(|(u, _)| u.eq_ignore_ascii_case(unit))
            .map(|(u, _)| *u);
        let more = match (fix, unit.to_ascii_uppercase().as_str()) {
            (Some(u), _) => format!("; did you mean `{num}{u}`?"),
            (None, "K" | "M" | "G" | "T") => {
                format!(
                    "; write `{num}{}iB` (1024-based) or `{num}{}B` (1000-based)",
                    unit.to_ascii_uppercase(),
                    unit.to_ascii_uppercase()
                )
            }
            _ => String::new(),
        };
        return Err(format!(
            "`{s}`: unknown size unit `{unit}`{more}; units are B, KB, MB, GB, TB, KiB, MiB, GiB, TiB"
        ));
    };
    let bytes = number * *factor as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("`{s}` is too large"));
    }
    Ok(bytes.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration("1d2h3m4s").unwrap(),
            Duration::from_secs(93_784)
        );
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert!(parse_duration("90").unwrap_err().contains("no unit"));
        assert!(
            parse_duration("1.5h")
                .unwrap_err()
                .contains("whole numbers")
        );
        assert!(
            parse_duration("10x")
                .unwrap_err()
                .contains("unknown unit `x`")
        );
        assert!(
            parse_duration("30m1h")
                .unwrap_err()
                .contains("largest first")
        );
        assert!(
            parse_duration("1h1h")
                .unwrap_err()
                .contains("largest first")
        );
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("").is_err());
        assert!(
            parse_duration("99999999999999999999d")
                .unwrap_err()
                .contains("too long")
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16GiB").unwrap(), 16 << 30);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("40GB").unwrap(), 40_000_000_000);
        assert_eq!(parse_size("1.5KiB").unwrap(), 1536);
        assert_eq!(parse_size("100B").unwrap(), 100);
        assert!(parse_size("16").unwrap_err().contains("no unit"));
        assert!(
            parse_size("16gib")
                .unwrap_err()
                .contains("did you mean `16GiB`")
        );
        assert!(
            parse_size("40G")
                .unwrap_err()
                .contains("`40GiB` (1024-based)")
        );
        assert!(parse_size("lots").is_err());
    }
}
