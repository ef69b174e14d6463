//! What a token's usage may be: its named rate limits, its credits and their refill, and the
//! deployer's own id for whoever holds it. Checked once where a request arrives, so every
//! surface (native, Unkey, CLI) refuses the same input with the same words.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime, Time};

pub const MAX_RATELIMITS: usize = 50;
pub const MAX_RATELIMIT_NAME_CHARS: usize = 64;
pub const MIN_DURATION_MS: u64 = 1_000;
/// Thirty days.
pub const MAX_DURATION_MS: u64 = 2_592_000_000;
/// Far beyond any real limit, and small enough that `limit × cost` arithmetic cannot overflow.
pub const MAX_LIMIT: u64 = 1_000_000_000;
/// The largest integer a JSON reader in JavaScript holds exactly (2^53 − 1): credits beyond it
/// would come back changed to a browser or a Node client.
pub const MAX_CREDITS: u64 = 9_007_199_254_740_991;
pub const MAX_EXTERNAL_ID_CHARS: usize = 256;

/// A limit on how often a token may be used: a burst of `limit`, refilled evenly over
/// `duration_ms`. `auto_apply` limits are checked on every verification; the others only when
/// a verification names them.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    pub name: String,
    pub limit: u64,
    pub duration_ms: u64,
    #[serde(default)]
    pub auto_apply: bool,
}

/// A refusal of usage input. Its text is what clients read; `field` is the path of the field
/// in the request, e.g. `ratelimits[1].limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    pub field: String,
    pub message: String,
}

impl UsageError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.message)
    }
}

impl std::error::Error for UsageError {}

/// Checks a token's limits as a whole: count, names unique, each in range.
pub fn check_ratelimits(limits: &[RateLimit]) -> Result<(), UsageError> {
    if limits.len() > MAX_RATELIMITS {
        return Err(UsageError::new(
            "ratelimits",
            format!(
                "has {} entries; at most {MAX_RATELIMITS} are allowed",
                limits.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    for (i, l) in limits.iter().enumerate() {
        let at = |f: &str| format!("ratelimits[{i}].{f}");
        let chars = l.name.chars().count();
        if chars == 0 || chars > MAX_RATELIMIT_NAME_CHARS {
            return Err(UsageError::new(
                at("name"),
                format!("must be 1-{MAX_RATELIMIT_NAME_CHARS} characters"),
            ));
        }
        if l.name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(UsageError::new(
                at("name"),
                "must not contain spaces or control characters",
            ));
        }
        if !seen.insert(l.name.as_str()) {
            return Err(UsageError::new(
                at("name"),
                format!("{:?} is given twice; names are unique per token", l.name),
            ));
        }
        if !(1..=MAX_LIMIT).contains(&l.limit) {
            return Err(UsageError::new(
                at("limit"),
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        check_duration(&at("durationMs"), l.duration_ms)?;
    }
    Ok(())
}

pub fn check_duration(field: &str, duration_ms: u64) -> Result<(), UsageError> {
    if !(MIN_DURATION_MS..=MAX_DURATION_MS).contains(&duration_ms) {
        return Err(UsageError::new(
            field,
            format!(
                "must be between {MIN_DURATION_MS} (1 second) and {MAX_DURATION_MS} (30 days) \
                 milliseconds"
            ),
        ));
    }
    Ok(())
}

/// A number of credits, or a cost: whole, at least 0, at most [`MAX_CREDITS`].
pub fn check_credits(field: &str, value: u64) -> Result<(), UsageError> {
    if value > MAX_CREDITS {
        return Err(UsageError::new(
            field,
            format!("must be at most {MAX_CREDITS}"),
        ));
    }
    Ok(())
}

#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefillInterval {
    Daily,
    Monthly,
}

/// Credits are set back to `amount` at 00:00 UTC each day, or each month on `refill_day`
/// (1-31, clamped to the month's last day; 1 when not given).
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Refill {
    pub interval: RefillInterval,
    pub amount: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refill_day: Option<u8>,
}

impl Refill {
    pub fn check(&self) -> Result<(), UsageError> {
        check_credits("credits.refill.amount", self.amount)?;
        match (self.interval, self.refill_day) {
            (_, Some(d)) if !(1..=31).contains(&d) => Err(UsageError::new(
                "credits.refill.refillDay",
                "must be between 1 and 31",
            )),
            (RefillInterval::Daily, Some(_)) => Err(UsageError::new(
                "credits.refill.refillDay",
                "applies only to a monthly refill",
            )),
            _ => Ok(()),
        }
    }

    /// The start of the refill period `now` is in: the last refill instant at or before it.
    pub fn period_start(&self, now: OffsetDateTime) -> OffsetDateTime {
        let now = now.to_offset(time::UtcOffset::UTC);
        let today = now.date();
        match self.interval {
            RefillInterval::Daily => midnight(today),
            RefillInterval::Monthly => {
                let day = self.refill_day.unwrap_or(1);
                let this_month = refill_date(today.year(), today.month(), day);
                if this_month <= today {
                    midnight(this_month)
                } else {
                    let (y, m) = previous_month(today.year(), today.month());
                    midnight(refill_date(y, m, day))
                }
            }
        }
    }
}

impl Refill {
    /// The first refill after `now`.
    pub fn next_after(&self, now: OffsetDateTime) -> OffsetDateTime {
        let start = self.period_start(now);
        match self.interval {
            RefillInterval::Daily => start + time::Duration::DAY,
            RefillInterval::Monthly => {
                let (y, m) = match start.month() {
                    Month::December => (start.year() + 1, Month::January),
                    m => (start.year(), m.next()),
                };
                midnight(refill_date(y, m, self.refill_day.unwrap_or(1)))
            }
        }
    }
}

fn midnight(d: Date) -> OffsetDateTime {
    d.with_time(Time::MIDNIGHT).assume_utc()
}

fn refill_date(year: i32, month: Month, day: u8) -> Date {
    let day = day.min(month.length(year));
    Date::from_calendar_date(year, month, day).expect("a day clamped to its month")
}

fn previous_month(year: i32, month: Month) -> (i32, Month) {
    match month {
        Month::January => (year - 1, Month::December),
        m => (year, m.previous()),
    }
}

/// A token's credits as given in a create or a replace: how many are left, and the refill.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Credits {
    pub remaining: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refill: Option<Refill>,
}

impl Credits {
    pub fn check(&self) -> Result<(), UsageError> {
        check_credits("credits.remaining", self.remaining)?;
        self.refill.as_ref().map_or(Ok(()), Refill::check)
    }
}

/// How `POST /api/v1/tokens/{id}/credits` changes what is left.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CreditOperation {
    Set,
    Increment,
    Decrement,
}

/// The deployer's own id for the customer or user behind a token: any text of 1-256
/// characters without control characters. Many tokens may share one.
pub fn check_external_id(field: &str, id: &str) -> Result<(), UsageError> {
    let chars = id.chars().count();
    if chars == 0 || chars > MAX_EXTERNAL_ID_CHARS {
        return Err(UsageError::new(
            field,
            format!("must be 1-{MAX_EXTERNAL_ID_CHARS} characters"),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(UsageError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn limit(name: &str, limit: u64, duration_ms: u64) -> RateLimit {
        RateLimit {
            name: name.into(),
            limit,
            duration_ms,
            auto_apply: true,
        }
    }

    #[test]
    fn limits_are_checked_in_range_and_unique() {
        assert!(check_ratelimits(&[limit("a", 1, 1_000), limit("b", 5, MAX_DURATION_MS)]).is_ok());
        let e = check_ratelimits(&[limit("a", 0, 1_000)]).unwrap_err();
        assert_eq!(e.field, "ratelimits[0].limit");
        let e = check_ratelimits(&[limit("a", 1, 999)]).unwrap_err();
        assert_eq!(e.field, "ratelimits[0].durationMs");
        let e = check_ratelimits(&[limit("a", 1, MAX_DURATION_MS + 1)]).unwrap_err();
        assert_eq!(e.field, "ratelimits[0].durationMs");
        let e = check_ratelimits(&[limit("a", 1, 1_000), limit("a", 2, 1_000)]).unwrap_err();
        assert_eq!(e.field, "ratelimits[1].name");
        let e = check_ratelimits(&[limit("", 1, 1_000)]).unwrap_err();
        assert_eq!(e.field, "ratelimits[0].name");
        let many: Vec<_> = (0..51).map(|i| limit(&format!("l{i}"), 1, 1_000)).collect();
        assert_eq!(check_ratelimits(&many).unwrap_err().field, "ratelimits");
        assert!(check_ratelimits(&many[..50]).is_ok());
    }

    #[test]
    fn a_daily_refill_starts_at_midnight_utc() {
        let r = Refill {
            interval: RefillInterval::Daily,
            amount: 10,
            refill_day: None,
        };
        assert_eq!(
            r.period_start(datetime!(2026-03-05 17:30 UTC)),
            datetime!(2026-03-05 0:00 UTC)
        );
        assert_eq!(
            r.period_start(datetime!(2026-03-05 0:00 UTC)),
            datetime!(2026-03-05 0:00 UTC)
        );
    }

    #[test]
    fn a_monthly_refill_day_is_clamped_to_the_month() {
        let on = |day| Refill {
            interval: RefillInterval::Monthly,
            amount: 10,
            refill_day: day,
        };
        assert_eq!(
            on(None).period_start(datetime!(2026-03-05 12:00 UTC)),
            datetime!(2026-03-01 0:00 UTC)
        );
        // The 31st in February is its last day; in March, before the 31st, the period began then.
        assert_eq!(
            on(Some(31)).period_start(datetime!(2026-03-05 12:00 UTC)),
            datetime!(2026-02-28 0:00 UTC)
        );
        assert_eq!(
            on(Some(31)).period_start(datetime!(2026-03-31 0:00 UTC)),
            datetime!(2026-03-31 0:00 UTC)
        );
        assert_eq!(
            on(Some(15)).period_start(datetime!(2026-01-10 0:00 UTC)),
            datetime!(2025-12-15 0:00 UTC)
        );
        assert_eq!(
            on(Some(29)).period_start(datetime!(2028-02-29 8:00 UTC)),
            datetime!(2028-02-29 0:00 UTC)
        );
    }

    #[test]
    fn the_next_refill_follows_the_period_it_is_in() {
        let monthly = Refill {
            interval: RefillInterval::Monthly,
            amount: 10,
            refill_day: Some(31),
        };
        assert_eq!(
            monthly.next_after(datetime!(2026-02-10 12:00 UTC)),
            datetime!(2026-02-28 0:00 UTC)
        );
        assert_eq!(
            monthly.next_after(datetime!(2026-02-28 0:00 UTC)),
            datetime!(2026-03-31 0:00 UTC)
        );
        assert_eq!(
            monthly.next_after(datetime!(2026-12-31 5:00 UTC)),
            datetime!(2027-01-31 0:00 UTC)
        );
        let daily = Refill {
            interval: RefillInterval::Daily,
            amount: 10,
            refill_day: None,
        };
        assert_eq!(
            daily.next_after(datetime!(2026-12-31 5:00 UTC)),
            datetime!(2027-01-01 0:00 UTC)
        );
    }

    #[test]
    fn refill_fields_are_checked() {
        let r = Refill {
            interval: RefillInterval::Daily,
            amount: 1,
            refill_day: Some(3),
        };
        assert_eq!(r.check().unwrap_err().field, "credits.refill.refillDay");
        let r = Refill {
            interval: RefillInterval::Monthly,
            amount: 1,
            refill_day: Some(32),
        };
        assert_eq!(r.check().unwrap_err().field, "credits.refill.refillDay");
        let c = Credits {
            remaining: MAX_CREDITS + 1,
            refill: None,
        };
        assert_eq!(c.check().unwrap_err().field, "credits.remaining");
    }

    #[test]
    fn external_ids_are_bounded() {
        assert!(check_external_id("externalId", "user_123").is_ok());
        assert!(check_external_id("externalId", "").is_err());
        assert!(check_external_id("externalId", &"x".repeat(257)).is_err());
        assert!(check_external_id("externalId", "a\nb").is_err());
    }
}
