//! Times as keygate writes them: RFC 3339 in UTC with exactly three fraction digits
//! (`2026-12-01T21:51:28.090Z`), in the API and in audit details alike. `time`'s own RFC 3339
//! drops trailing zeros, so its strings vary in length and do not sort as text. Reading accepts
//! any RFC 3339. Use as `#[serde(with = "crate::rfc3339_ms")]`.

use serde::{Deserializer, Serializer};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// Stored times have millisecond precision, so three digits lose nothing.
const FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

pub fn format(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC)
        .format(FORMAT)
        .expect("a four-digit year formats")
}

pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*t))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
    time::serde::rfc3339::deserialize(d)
}

pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        time::serde::rfc3339::option::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    #[test]
    fn every_time_has_three_fraction_digits_in_utc() {
        assert_eq!(
            super::format(datetime!(2026-12-01 21:51:28 UTC)),
            "2026-12-01T21:51:28.000Z"
        );
        assert_eq!(
            super::format(datetime!(2026-12-01 21:51:28.09 UTC)),
            "2026-12-01T21:51:28.090Z"
        );
        assert_eq!(
            super::format(datetime!(2026-12-01 23:51:28.5 +02:00)),
            "2026-12-01T21:51:28.500Z"
        );
    }
}
