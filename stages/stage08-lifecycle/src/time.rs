//! Times as the records and `logs` write them: RFC 3339 in UTC with
//! nanoseconds (`2026-11-30T16:08:36.123456789Z`, what docker and the CRI
//! log format use), and durations as `ps` shows them ("Up 5 minutes").

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time, as nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(pub i128);

impl Time {
    pub fn now() -> Time {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Time(d.as_nanos() as i128)
    }

    /// `2026-11-30T16:08:36.123456789Z`.
    pub fn rfc3339(self) -> String {
        let secs = self.0.div_euclid(1_000_000_000) as i64;
        let nanos = self.0.rem_euclid(1_000_000_000);
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }

    /// Parse RFC 3339 (`Z` or a `±HH:MM` offset; fraction optional).
    pub fn parse_rfc3339(text: &str) -> Option<Time> {
        let b = text.as_bytes();
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let s = text.get(r)?;
            s.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| s.parse().ok())?
        };
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
            return None;
        }
        let mut rest = &text[19..];
        let mut nanos: i128 = 0;
        if let Some(fraction) = rest.strip_prefix('.') {
            let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            let padded = format!("{:0<9}", &fraction[..digits.min(9)]);
            nanos = padded.parse().ok()?;
            rest = &fraction[digits..];
        }
        let offset: i64 = match rest {
            "Z" | "z" => 0,
            _ if rest.len() == 6 && matches!(rest.as_bytes()[0], b'+' | b'-') => {
                let oh: i64 = rest.get(1..3)?.parse().ok()?;
                let om: i64 = rest.get(4..6)?.parse().ok()?;
                let sign = if rest.starts_with('-') { -1 } else { 1 };
                sign * (oh * 3600 + om * 60)
            }
            _ => return None,
        };
        let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset;
        Some(Time(secs as i128 * 1_000_000_000 + nanos))
    }

    /// What `--since` takes, as docker does: a timestamp (RFC 3339, or
    /// seconds since the epoch), or a duration before now (`10m`, `1h30m`).
    pub fn parse_since(text: &str, now: Time) -> Option<Time> {
        if let Some(t) = Time::parse_rfc3339(text) {
            return Some(t);
        }
        if let Ok(secs) = text.parse::<f64>() {
            return (secs.is_finite() && secs >= 0.0).then_some(Time((secs * 1e9) as i128));
        }
        parse_duration(text).map(|d| Time(now.0 - d.as_nanos() as i128))
    }

    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_nanos((self.0 - earlier.0).max(0) as u64)
    }
}

/// `1h30m`, `10m`, `45s`, `500ms`: a Go-style duration, as docker reads one.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .bytes()
            .take_while(|c| c.is_ascii_digit() || *c == b'.')
            .count();
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_secs_f64(total))
}

/// "5 seconds", "About a minute", "3 hours", as docker's `ps` reads.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..60 => format!("{s} seconds"),
        60..120 => "About a minute".into(),
        120..3600 => format!("{} minutes", s / 60),
        3600..7200 => "About an hour".into(),
        7200..172_800 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

// Howard Hinnant's algorithms: days since 1970-01-01 <-> (year, month, day)
// in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_both_ways() {
        let t = Time(1_796_054_916_123_456_789);
        let text = t.rfc3339();
        assert_eq!(text, "2026-11-30T16:08:36.123456789Z");
        assert_eq!(Time::parse_rfc3339(&text), Some(t));
        assert_eq!(Time(0).rfc3339(), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            Time::parse_rfc3339("2026-11-30T17:48:36+01:00"),
            Time::parse_rfc3339("2026-11-30T16:48:36Z")
        );
        assert_eq!(
            Time::parse_rfc3339("2024-02-29T00:00:00Z")
                .unwrap()
                .rfc3339(),
            "2024-02-29T00:00:00.000000000Z"
        );
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-11-30",
            "2026-11-30T16:48:36",
            "x026-11-30T16:48:36Z",
        ] {
            assert_eq!(Time::parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn since_takes_times_and_durations() {
        let now = Time(10_000_000_000_000);
        assert_eq!(
            Time::parse_since("10m", now),
            Some(Time(now.0 - 600_000_000_000))
        );
        assert_eq!(
            Time::parse_since("1h30m", now),
            Some(Time(now.0 - 5_400_000_000_000))
        );
        assert_eq!(
            Time::parse_since("1700000000", now),
            Some(Time(1_700_000_000_000_000_000))
        );
        assert_eq!(Time::parse_since("soon", now), None);
    }

    #[test]
    fn durations_read_as_docker_shows_them() {
        assert_eq!(human(Duration::from_secs(5)), "5 seconds");
        assert_eq!(human(Duration::from_secs(90)), "About a minute");
        assert_eq!(human(Duration::from_secs(600)), "10 minutes");
        assert_eq!(human(Duration::from_secs(3 * 3600)), "3 hours");
    }
}
