//! Expiry timestamps in Go `time.Time` JSON form, and notary's default
//! expiry periods.
//!
//! Go writes RFC 3339 in UTC with `Z` and a fraction of up to nine digits
//! with trailing zeros trimmed (omitted when zero), e.g.
//! `2036-11-22T15:15:39.384833135Z`. Parsing accepts any RFC 3339 offset,
//! as Go does, and converts to UTC.

use serde::{Deserialize, Deserializer, Serializer};
use time::{Duration, OffsetDateTime, UtcOffset, format_description::well_known::Rfc3339};

/// Default lifetime of root metadata and the root certificate (10 × 365 days).
pub const ROOT_EXPIRY: Duration = Duration::days(3650);
/// Default lifetime of targets metadata and delegations (3 × 365 days).
pub const TARGETS_EXPIRY: Duration = Duration::days(1095);
/// Default lifetime of snapshot metadata (3 × 365 days).
pub const SNAPSHOT_EXPIRY: Duration = Duration::days(1095);
/// Default lifetime of timestamp metadata (14 days).
pub const TIMESTAMP_EXPIRY: Duration = Duration::days(14);

/// Formats a time exactly like Go's `time.Time.MarshalJSON` (without quotes).
///
/// Fails for years outside 0..=9999, which Go refuses to marshal.
pub fn format_go_time(t: OffsetDateTime) -> Result<String, String> {
    let t = t.to_offset(UtcOffset::UTC);
    if !(0..=9999).contains(&t.year()) {
        return Err(format!("year {} is outside 0..=9999", t.year()));
    }
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let nanos = t.nanosecond();
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    Ok(s)
}

/// Parses an RFC 3339 timestamp (as Go's `time.Time.UnmarshalJSON`) into UTC.
pub fn parse_go_time(s: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(s, &Rfc3339).map(|t| t.to_offset(UtcOffset::UTC))
}

/// `now + duration` in UTC: the expiry of freshly signed metadata, e.g.
/// `expires_in(now, TARGETS_EXPIRY)`.
pub fn expires_in(now: OffsetDateTime, duration: Duration) -> OffsetDateTime {
    (now + duration).to_offset(UtcOffset::UTC)
}

/// Serde adapter for `expires` fields (`#[serde(with = "crate::expiry::serde_go_time")]`).
pub mod serde_go_time {
    use super::*;

    /// Serializes as Go would.
    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        let text = format_go_time(*t).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    /// Parses RFC 3339.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        parse_go_time(&text)
            .map_err(|e| serde::de::Error::custom(format!("invalid expiry {text:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_layout_round_trips() {
        for s in [
            "2036-11-22T15:15:39.384833135Z",
            "2026-12-09T15:15:40.66661973Z",
            "2029-11-24T16:05:01.5Z",
            "2029-11-24T16:05:01Z",
            "2026-11-25T03:04:03.524881Z",
        ] {
            assert_eq!(format_go_time(parse_go_time(s).unwrap()).unwrap(), s);
        }
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        let t = parse_go_time("2030-01-01T01:00:00.100+01:00").unwrap();
        assert_eq!(format_go_time(t).unwrap(), "2030-01-01T00:00:00.1Z");
    }
}
