//! Times as the API writes them (RFC 3339) and as the tests compare them (Unix milliseconds).

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The RFC 3339 time in `v`; anything else fails the test.
pub fn time_of(v: &Value) -> OffsetDateTime {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("not an RFC 3339 string: {v}"));
    OffsetDateTime::parse(s, &Rfc3339).unwrap_or_else(|e| panic!("{s:?} is not RFC 3339: {e}"))
}

/// The RFC 3339 time in `v`, or `None` where there is none yet (`null`, absent).
pub fn maybe_time_of(v: &Value) -> Option<OffsetDateTime> {
    v.as_str().map(|_| time_of(v))
}

/// Milliseconds since the Unix epoch: the resolution the API stores times at.
pub fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}
