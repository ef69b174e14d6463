//! The flags of a token's usage: `--ratelimit`, `--credits`, `--refill`, and the value of
//! `keygate token credits`. Each is parsed by clap as it reads the command line, so a typo is
//! refused with the flag's name before any request is sent; the server checks them again.

use std::time::Duration;

use keygate_core::usage::{
    RateLimit, Refill, RefillInterval, MAX_CREDITS, MAX_DURATION_MS, MAX_LIMIT,
    MAX_RATELIMIT_NAME_CHARS, MIN_DURATION_MS,
};

/// The suffix of a rate limit that is checked only when a verification names it.
pub const NAMED_ONLY: &str = ":named";

const RATELIMIT_SYNTAX: &str =
    "expected NAME=LIMIT/DURATION, optionally followed by :named, e.g. requests=100/60s or \
     search=10/1s:named";

const REFILL_SYNTAX: &str =
    "expected daily:AMOUNT, monthly:AMOUNT or monthly:AMOUNT@DAY (DAY 1-31), e.g. \
     monthly:1000@15";

/// `NAME=LIMIT/DURATION[:named]`: at most LIMIT uses per DURATION (humantime: `60s`, `1m`,
/// `1h`, `30d`). Without `:named` the limit applies to every verification.
pub fn parse_ratelimit(s: &str) -> Result<RateLimit, String> {
    let (name, rest) = s
        .split_once('=')
        .ok_or_else(|| format!("no `=` after the name; {RATELIMIT_SYNTAX}"))?;
    let (rest, auto_apply) = match rest.strip_suffix(NAMED_ONLY) {
        Some(rest) => (rest, false),
        None => (rest, true),
    };
    let (limit, duration) = rest
        .split_once('/')
        .ok_or_else(|| format!("no `/` between the limit and the duration; {RATELIMIT_SYNTAX}"))?;
    check_name(name)?;
    let limit = whole_number(limit)
        .filter(|l| (1..=MAX_LIMIT).contains(l))
        .ok_or_else(|| {
            format!("the limit {limit:?} is not a whole number between 1 and {MAX_LIMIT}")
        })?;
    let duration_ms = limit_duration(duration)?;
    Ok(RateLimit {
        name: name.to_owned(),
        limit,
        duration_ms,
        auto_apply,
    })
}

fn check_name(name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_RATELIMIT_NAME_CHARS {
        return Err(format!(
            "the name must be 1-{MAX_RATELIMIT_NAME_CHARS} characters; {RATELIMIT_SYNTAX}"
        ));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("the name {name:?} must not contain spaces"));
    }
    Ok(())
}

fn limit_duration(text: &str) -> Result<u64, String> {
    let out_of_range = || format!("the duration {text:?} must be between 1s and 30d");
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("the duration {text:?}: {e} (examples: 1s, 60s, 1m, 1h, 30d)"))?;
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err(format!("the duration {text:?} must be whole milliseconds"));
    }
    let ms = u64::try_from(d.as_millis()).map_err(|_| out_of_range())?;
    if !(MIN_DURATION_MS..=MAX_DURATION_MS).contains(&ms) {
        return Err(out_of_range());
    }
    Ok(ms)
}

/// Digits only: `u64::from_str` would also take a leading `+`.
fn whole_number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A number of credits, 0 up to [`MAX_CREDITS`].
pub fn parse_credits(s: &str) -> Result<u64, String> {
    whole_number(s)
        .filter(|n| *n <= MAX_CREDITS)
        .ok_or_else(|| format!("expected a whole number of credits from 0 to {MAX_CREDITS}"))
}

/// `daily:AMOUNT`, `monthly:AMOUNT` or `monthly:AMOUNT@DAY`.
pub fn parse_refill(s: &str) -> Result<Refill, String> {
    let (interval, rest) = s.split_once(':').ok_or_else(|| REFILL_SYNTAX.to_owned())?;
    let interval = match interval {
        "daily" => RefillInterval::Daily,
        "monthly" => RefillInterval::Monthly,
        other => return Err(format!("unknown interval {other:?}; {REFILL_SYNTAX}")),
    };
    let (amount, day) = match rest.split_once('@') {
        Some((amount, day)) => (amount, Some(day)),
        None => (rest, None),
    };
    let amount = parse_credits(amount).map_err(|_| {
        format!(
            "the amount {amount:?} is not a whole number from 0 to {MAX_CREDITS}; {REFILL_SYNTAX}"
        )
    })?;
    let refill_day = match (interval, day) {
        (_, None) => None,
        (RefillInterval::Daily, Some(_)) => {
            return Err("a refill day (@DAY) applies only to monthly refills".to_owned())
        }
        (RefillInterval::Monthly, Some(day)) => Some(
            whole_number(day)
                .filter(|d| (1..=31).contains(d))
                .and_then(|d| u8::try_from(d).ok())
                .ok_or_else(|| format!("the refill day {day:?} must be from 1 to 31"))?,
        ),
    };
    Ok(Refill {
        interval,
        amount,
        refill_day,
    })
}

/// The value of `keygate token credits … set|increment|decrement VALUE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditValue {
    Unlimited,
    Count(u64),
}

pub fn parse_credit_value(s: &str) -> Result<CreditValue, String> {
    if s == "unlimited" {
        return Ok(CreditValue::Unlimited);
    }
    parse_credits(s)
        .map(CreditValue::Count)
        .map_err(|e| format!("{e}, or unlimited (with set)"))
}

/// A rate limit the way `--ratelimit` takes it, so that what `show` prints can be typed back.
pub fn ratelimit_text(name: &str, limit: u64, duration_ms: u64, auto_apply: bool) -> String {
    let duration = humantime::format_duration(Duration::from_millis(duration_ms))
        .to_string()
        .replace(' ', "");
    let suffix = if auto_apply { "" } else { NAMED_ONLY };
    format!("{name}={limit}/{duration}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratelimit_is_auto_applied_unless_named() {
        let l = parse_ratelimit("requests=100/60s").unwrap();
        assert_eq!(
            (l.name.as_str(), l.limit, l.duration_ms, l.auto_apply),
            ("requests", 100, 60_000, true)
        );
        let l = parse_ratelimit("search=10/1s:named").unwrap();
        assert_eq!((l.limit, l.duration_ms, l.auto_apply), (10, 1_000, false));
        let l = parse_ratelimit("api:search=5/30d").unwrap();
        assert_eq!(
            (l.name.as_str(), l.duration_ms),
            ("api:search", MAX_DURATION_MS)
        );
    }

    #[test]
    fn bad_ratelimits_say_what_is_expected() {
        for (bad, says) in [
            ("requests", "NAME=LIMIT/DURATION"),
            ("requests=100", "no `/`"),
            ("=100/60s", "the name"),
            ("a b=100/60s", "spaces"),
            ("requests=0/60s", "between 1 and"),
            ("requests=+5/60s", "whole number"),
            ("requests=ten/60s", "whole number"),
            ("requests=100/banana", "examples"),
            ("requests=100/500ms", "between 1s and 30d"),
            ("requests=100/31d", "between 1s and 30d"),
            ("requests=100/1500us", "whole milliseconds"),
            ("requests=100/60s:nmed", "examples"),
        ] {
            let e = parse_ratelimit(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn refills_are_daily_or_monthly_with_an_optional_day() {
        assert_eq!(
            parse_refill("monthly:1000").unwrap(),
            Refill {
                interval: RefillInterval::Monthly,
                amount: 1000,
                refill_day: None
            }
        );
        assert_eq!(parse_refill("monthly:5@15").unwrap().refill_day, Some(15));
        assert_eq!(
            parse_refill("daily:50").unwrap().interval,
            RefillInterval::Daily
        );
        for (bad, says) in [
            ("weekly:5", "unknown interval"),
            ("monthly", "expected daily:AMOUNT"),
            ("monthly:-1", "the amount"),
            ("monthly:5@0", "1 to 31"),
            ("monthly:5@32", "1 to 31"),
            ("daily:5@3", "only to monthly"),
        ] {
            let e = parse_refill(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn credit_values_are_numbers_or_unlimited() {
        assert_eq!(parse_credit_value("0"), Ok(CreditValue::Count(0)));
        assert_eq!(parse_credit_value("unlimited"), Ok(CreditValue::Unlimited));
        assert!(parse_credit_value("-3").is_err());
        assert!(parse_credits(&(MAX_CREDITS + 1).to_string()).is_err());
    }

    #[test]
    fn a_shown_ratelimit_parses_back_to_itself() {
        for (limit, ms, auto) in [
            (100, 60_000, true),
            (7, 5_400_000, false),
            (1, MAX_DURATION_MS, true),
        ] {
            let text = ratelimit_text("x", limit, ms, auto);
            let back = parse_ratelimit(&text).unwrap();
            assert_eq!(
                (back.limit, back.duration_ms, back.auto_apply),
                (limit, ms, auto),
                "{text}"
            );
        }
    }
}
