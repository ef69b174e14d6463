//! The parsing Dynatrace's token API needs: its time formats (epoch millis, ISO 8601, `now-2h`),
//! `apiTokenSelector`, `fields`, `sort`, and the `nextPageKey` encoding. Pure functions: every
//! bad input is an `Err(message)`, never a panic.

use std::cmp::Ordering;

use keygate_store::TokenRecord;
use serde::{Deserialize, Serialize};
use time::{Date, Duration, Month, OffsetDateTime, Time, UtcOffset};

/// The largest number a relative time may name (`now+100000d`): far beyond any real use, far
/// from overflowing anything.
const MAX_RELATIVE: i64 = 100_000;

/// A point in time as Dynatrace accepts one: epoch milliseconds, ISO 8601 (offset optional,
/// UTC when left out; a space may stand for the `T`; seconds and fractions optional), or a
/// time relative to now (`now`, `now-2h`, `now+14d`, `now-1d/d`; units s, m, h, d, w, M, q, y).
pub fn parse_time(s: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let s = s.trim();
    let bad = || {
        format!(
            "{s:?} is not a time: use epoch milliseconds, ISO 8601 (2025-01-25T05:57:01.123+01:00) \
             or a relative time such as now+14d or now-2h"
        )
    };
    if s.is_empty() {
        return Err(bad());
    }
    let digits = s.strip_prefix('-').unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        let ms: i64 = s.parse().map_err(|_| bad())?;
        return OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
            .map_err(|_| bad());
    }
    if s.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("now")) {
        return parse_relative(&s[3..], now).ok_or_else(bad);
    }
    parse_iso(s).ok_or_else(bad)
}

fn parse_relative(rest: &str, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let (offset, align) = match rest.split_once('/') {
        Some((o, a)) => (o, Some(a)),
        None => (rest, None),
    };
    let mut t = now;
    if !offset.is_empty() {
        // In a query string an unescaped `+` arrives as a space.
        let (sign, amount) = match offset.as_bytes()[0] {
            b'+' | b' ' => (1i64, &offset[1..]),
            b'-' => (-1, &offset[1..]),
            _ => return None,
        };
        let split = amount
            .bytes()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(amount.len());
        let (n, unit) = amount.split_at(split);
        let n: i64 = if n.is_empty() { 1 } else { n.parse().ok()? };
        if n > MAX_RELATIVE {
            return None;
        }
        t = shift(t, sign * n, unit)?;
    }
    match align {
        Some(unit) => align_to(t, unit),
        None => Some(t),
    }
}

fn shift(t: OffsetDateTime, n: i64, unit: &str) -> Option<OffsetDateTime> {
    let d = match unit {
        "s" => Duration::seconds(n),
        "m" => Duration::minutes(n),
        "h" => Duration::hours(n),
        "d" => Duration::days(n),
        "w" => Duration::weeks(n),
        "M" => return add_months(t, n),
        "q" => return add_months(t, n * 3),
        "y" => return add_months(t, n * 12),
        _ => return None,
    };
    t.checked_add(d)
}

fn add_months(t: OffsetDateTime, n: i64) -> Option<OffsetDateTime> {
    let total = t.year() as i64 * 12 + (t.month() as i64 - 1) + n;
    let year = i32::try_from(total.div_euclid(12)).ok()?;
    let month = Month::try_from((total.rem_euclid(12) + 1) as u8).ok()?;
    let day = t.day().min(month.length(year));
    let date = Date::from_calendar_date(year, month, day).ok()?;
    Some(t.replace_date(date))
}

fn align_to(t: OffsetDateTime, unit: &str) -> Option<OffsetDateTime> {
    let t = t.to_offset(UtcOffset::UTC);
    let midnight = |d: Date| Some(d.midnight().assume_utc());
    match unit {
        "s" => t.replace_nanosecond(0).ok(),
        "m" => t
            .replace_time(Time::from_hms(t.hour(), t.minute(), 0).ok()?)
            .into(),
        "h" => t.replace_time(Time::from_hms(t.hour(), 0, 0).ok()?).into(),
        "d" => midnight(t.date()),
        "w" => midnight(
            t.date()
                .checked_sub(Duration::days(t.weekday().number_days_from_monday() as i64))?,
        ),
        "M" => midnight(t.date().replace_day(1).ok()?),
        "q" => {
            let m = (t.month() as u8 - 1) / 3 * 3 + 1;
            midnight(Date::from_calendar_date(t.year(), Month::try_from(m).ok()?, 1).ok()?)
        }
        "y" => midnight(Date::from_calendar_date(t.year(), Month::January, 1).ok()?),
        _ => None,
    }
}

/// `YYYY-MM-DD[(T| )HH:MM[:SS[.fff]]][Z|±HH[:MM]]`.
fn parse_iso(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<u32> {
        let part = s.get(from..from + len)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = num(0, 4)? as i32;
    let month = Month::try_from(u8::try_from(num(5, 2)?).ok()?).ok()?;
    let date = Date::from_calendar_date(year, month, u8::try_from(num(8, 2)?).ok()?).ok()?;
    let mut i = 10;
    let (mut h, mut m, mut sec, mut nanos) = (0u32, 0u32, 0u32, 0u32);
    if i < b.len() && matches!(b[i], b'T' | b't' | b' ') {
        h = num(i + 1, 2)?;
        if b.get(i + 3) != Some(&b':') {
            return None;
        }
        m = num(i + 4, 2)?;
        i += 6;
        if b.get(i) == Some(&b':') {
            sec = num(i + 1, 2)?;
            i += 3;
            if b.get(i) == Some(&b'.') {
                let start = i + 1;
                let mut end = start;
                while end < b.len() && b[end].is_ascii_digit() {
                    end += 1;
                }
                let frac = &s[start..end];
                if frac.is_empty() || frac.len() > 9 {
                    return None;
                }
                nanos = frac.parse::<u32>().ok()? * 10u32.pow(9 - frac.len() as u32);
                i = end;
            }
        }
    }
    let offset = match &s[i..] {
        "" | "Z" | "z" => UtcOffset::UTC,
        o if o.starts_with('+') || o.starts_with('-') => {
            let sign: i8 = if o.starts_with('-') { -1 } else { 1 };
            let body = o[1..].replace(':', "");
            if !(body.len() == 2 || body.len() == 4) || !body.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let oh: i8 = body[..2].parse().ok()?;
            let om: i8 = if body.len() == 4 {
                body[2..].parse().ok()?
            } else {
                0
            };
            UtcOffset::from_hms(sign * oh, sign * om, 0).ok()?
        }
        _ => return None,
    };
    let time = Time::from_hms_nano(
        u8::try_from(h).ok()?,
        u8::try_from(m).ok()?,
        u8::try_from(sec).ok()?,
        nanos,
    )
    .ok()?;
    Some(date.with_time(time).assume_offset(offset))
}

/// Dynatrace's date format, `yyyy-MM-ddTHH:mm:ss.SSSZ`, always in UTC and always ending in `Z`.
pub fn format_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

pub fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// `owner("a","b"), personalAccessToken(true), scope("x")`: all criteria must hold; the values
/// of one criterion are alternatives.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Selector {
    pub owners: Option<Vec<String>>,
    pub personal: Option<bool>,
    pub scopes: Option<Vec<String>>,
}

impl Selector {
    pub fn matches(&self, rec: &TokenRecord) -> bool {
        self.owners
            .as_ref()
            .is_none_or(|o| o.contains(&rec.owner_id))
            && self
                .personal
                .is_none_or(|p| p == (rec.owner_id != rec.tenant_id))
            && self.scopes.as_ref().is_none_or(|wanted| {
                wanted
                    .iter()
                    .any(|w| rec.scopes.iter().any(|s| s.as_str() == w))
            })
    }
}

pub fn parse_selector(s: &str) -> Result<Selector, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut sel = Selector::default();
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        let start = i;
        while i < chars.len() && chars[i].is_ascii_alphabetic() {
            i += 1;
        }
        let name: String = chars[start..i].iter().collect();
        skip_ws(&mut i);
        if name.is_empty() || chars.get(i) != Some(&'(') {
            return Err(format!(
                "expected a criterion such as owner(\"x\"), personalAccessToken(true) or \
                 scope(\"a\",\"b\") at position {start}"
            ));
        }
        i += 1;
        let mut values = Vec::new();
        loop {
            skip_ws(&mut i);
            let mut v = String::new();
            if chars.get(i) == Some(&'"') {
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated quoted value".into()),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        // Dynatrace escapes with `~`; a backslash is accepted too.
                        Some('~' | '\\') => {
                            let c = chars.get(i + 1).ok_or("unterminated quoted value")?;
                            v.push(*c);
                            i += 2;
                        }
                        Some(c) => {
                            v.push(*c);
                            i += 1;
                        }
                    }
                }
                skip_ws(&mut i);
            } else {
                while i < chars.len() && chars[i] != ',' && chars[i] != ')' {
                    v.push(chars[i]);
                    i += 1;
                }
                v = v.trim().to_owned();
            }
            if v.is_empty() {
                return Err(format!("{name}(…) needs a non-empty value"));
            }
            values.push(v);
            match chars.get(i) {
                Some(',') => i += 1,
                Some(')') => {
                    i += 1;
                    break;
                }
                _ => return Err(format!("expected , or ) at position {i}")),
            }
        }
        let twice = || format!("criterion {name} is given twice");
        match name.as_str() {
            "owner" => {
                if sel.owners.replace(values).is_some() {
                    return Err(twice());
                }
            }
            "scope" => {
                if sel.scopes.replace(values).is_some() {
                    return Err(twice());
                }
            }
            "personalAccessToken" => {
                let b = match values.as_slice() {
                    [v] if v.eq_ignore_ascii_case("true") => true,
                    [v] if v.eq_ignore_ascii_case("false") => false,
                    _ => return Err("personalAccessToken(…) takes true or false".into()),
                };
                if sel.personal.replace(b).is_some() {
                    return Err(twice());
                }
            }
            other => {
                return Err(format!(
                    "unknown criterion {other:?}; known: owner, personalAccessToken, scope"
                ))
            }
        }
        skip_ws(&mut i);
        match chars.get(i) {
            None => return Ok(sel),
            Some(',') => i += 1,
            Some(_) => return Err(format!("expected , between criteria at position {i}")),
        }
    }
}

/// Every field an `ApiToken` can have, in the order they are shown.
pub const ALL_FIELDS: &[&str] = &[
    "id",
    "name",
    "enabled",
    "owner",
    "personalAccessToken",
    "creationDate",
    "expirationDate",
    "lastUsedDate",
    "lastUsedIpAddress",
    "modifiedDate",
    "scopes",
    "additionalMetadata",
];

pub const DEFAULT_FIELDS: &[&str] = &["id", "name", "enabled", "owner", "creationDate"];

/// `+scopes,-owner`: the default fields with these added and removed (a name without a sign
/// is added).
pub fn parse_fields(s: &str) -> Result<Vec<&'static str>, String> {
    let mut on: Vec<bool> = ALL_FIELDS
        .iter()
        .map(|f| DEFAULT_FIELDS.contains(f))
        .collect();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (add, name) = match part.as_bytes()[0] {
            b'-' => (false, part[1..].trim()),
            b'+' => (true, part[1..].trim()),
            _ => (true, part),
        };
        let idx = ALL_FIELDS
            .iter()
            .position(|f| *f == name)
            .ok_or_else(|| format!("unknown field {name:?}; known: {}", ALL_FIELDS.join(", ")))?;
        on[idx] = add;
    }
    Ok(ALL_FIELDS
        .iter()
        .zip(on)
        .filter(|(_, on)| *on)
        .map(|(f, _)| *f)
        .collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    Name,
    LastUsedDate,
    CreationDate,
    ExpirationDate,
    ModifiedDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub field: SortField,
    pub descending: bool,
}

impl Default for Sort {
    fn default() -> Self {
        Sort {
            field: SortField::CreationDate,
            descending: true,
        }
    }
}

/// `-creationDate`, `+name`, `name` (ascending).
pub fn parse_sort(s: &str) -> Result<Sort, String> {
    let s = s.trim();
    let (descending, name) = match s.as_bytes().first() {
        Some(b'-') => (true, s[1..].trim()),
        Some(b'+') => (false, s[1..].trim()),
        _ => (false, s),
    };
    let field = match name {
        "name" => SortField::Name,
        "lastUsedDate" => SortField::LastUsedDate,
        "creationDate" => SortField::CreationDate,
        "expirationDate" => SortField::ExpirationDate,
        "modifiedDate" => SortField::ModifiedDate,
        other => {
            return Err(format!(
                "cannot sort by {other:?}; use name, lastUsedDate, creationDate, expirationDate \
                 or modifiedDate, with + or -"
            ))
        }
    };
    Ok(Sort { field, descending })
}

/// When a token was last modified: `None` while it never was.
pub fn modified(rec: &TokenRecord) -> Option<OffsetDateTime> {
    (rec.updated_at > rec.created_at).then_some(rec.updated_at)
}

/// A token's place in a sort order, comparable with a position kept in a `nextPageKey`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Key {
    S(String),
    N(i64),
}

/// Where the sort puts a token: never used and never modified come first in ascending order,
/// tokens that never expire last.
pub fn sort_key(rec: &TokenRecord, field: SortField) -> Key {
    let date = |t: Option<OffsetDateTime>, none: i64| Key::N(t.map_or(none, millis));
    match field {
        SortField::Name => Key::S(rec.name.to_lowercase()),
        SortField::LastUsedDate => date(rec.last_used_at, i64::MIN),
        SortField::CreationDate => date(Some(rec.created_at), i64::MIN),
        SortField::ExpirationDate => date(rec.expires_at, i64::MAX),
        SortField::ModifiedDate => date(modified(rec), i64::MIN),
    }
}

/// The order of two positions: the sort key in the sort's direction, then the id, so that the
/// order is total and a page boundary is exact.
pub fn compare(a: (&Key, &str), b: (&Key, &str), descending: bool) -> Ordering {
    let primary = a.0.cmp(b.0);
    let primary = if descending {
        primary.reverse()
    } else {
        primary
    };
    primary.then_with(|| a.1.cmp(b.1))
}

/// Everything a next page needs: the query, resolved (relative times made absolute), and the
/// position of the last token served.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PageKey {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<i64>,
    pub page_size: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<(Key, String)>,
}

impl PageKey {
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let mut out = String::with_capacity(json.len() * 2);
        for b in json {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    pub fn decode(s: &str) -> Option<PageKey> {
        let s = s.trim();
        if !s.len().is_multiple_of(2) || s.len() > 16 * 1024 {
            return None;
        }
        let bytes = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        serde_json::from_slice(&bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2025-03-15 12:34:56.789 UTC);

    #[test]
    fn times() {
        assert_eq!(
            parse_time("1735689600000", NOW).unwrap(),
            datetime!(2025-01-01 0:00 UTC)
        );
        assert_eq!(
            parse_time("2025-01-25T05:57:01.123+01:00", NOW).unwrap(),
            datetime!(2025-01-25 04:57:01.123 UTC)
        );
        assert_eq!(
            parse_time("2025-01-25 05:57", NOW).unwrap(),
            datetime!(2025-01-25 05:57 UTC)
        );
        assert_eq!(
            parse_time("2025-01-25", NOW).unwrap(),
            datetime!(2025-01-25 0:00 UTC)
        );
        assert_eq!(
            parse_time("2025-01-25T05:57:01.000", NOW).unwrap(),
            datetime!(2025-01-25 05:57:01 UTC)
        );
        assert_eq!(parse_time("now", NOW).unwrap(), NOW);
        assert_eq!(
            parse_time("now+14d", NOW).unwrap(),
            NOW + Duration::days(14)
        );
        assert_eq!(
            parse_time("now 30m", NOW).unwrap(),
            NOW + Duration::minutes(30)
        );
        assert_eq!(parse_time("now-2h", NOW).unwrap(), NOW - Duration::hours(2));
        assert_eq!(parse_time("now+1w", NOW).unwrap(), NOW + Duration::weeks(1));
        assert_eq!(
            parse_time("now-1M", NOW).unwrap(),
            datetime!(2025-02-15 12:34:56.789 UTC)
        );
        assert_eq!(
            parse_time("now-1d/d", NOW).unwrap(),
            datetime!(2025-03-14 0:00 UTC)
        );
        assert_eq!(
            parse_time("now/w", NOW).unwrap(),
            datetime!(2025-03-10 0:00 UTC)
        );
        for bad in [
            "",
            "soon",
            "now+",
            "now+5x",
            "now+99999999999999999999d",
            "now+1000000y",
            "2025-13-01",
            "2025-01-01T25:00",
            "2025-01-01T05:57:01+1",
            "99999999999999999999",
            "2025-01-01Tfoo",
            "2025-01-01T05:57:01.",
            "ééé",
            "nowé",
            "now+1é",
            "2025-01-01Té",
            "2025-01-01T05:57:01+0é",
            "2025é01-01",
        ] {
            assert!(parse_time(bad, NOW).is_err(), "{bad}");
        }
        assert_eq!(
            format_date(datetime!(2025-01-02 03:04:05.006 +02:00)),
            "2025-01-02T01:04:05.006Z"
        );
    }

    #[test]
    fn selectors() {
        let s =
            parse_selector(r#"owner("a~"b"), personalAccessToken(true),scope("x","y")"#).unwrap();
        assert_eq!(s.owners, Some(vec!["a\"b".to_owned()]));
        assert_eq!(s.personal, Some(true));
        assert_eq!(s.scopes, Some(vec!["x".to_owned(), "y".to_owned()]));
        assert_eq!(
            parse_selector("owner(u1)").unwrap().owners,
            Some(vec!["u1".to_owned()])
        );
        for bad in [
            "",
            "owner",
            "owner(\"a\"",
            "owner()",
            "colour(\"red\")",
            "personalAccessToken(maybe)",
            "owner(\"a\") owner(\"b\")",
            "owner(\"a\"),owner(\"b\")",
        ] {
            assert!(parse_selector(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fields_and_sort() {
        assert_eq!(
            parse_fields("+scopes,-owner").unwrap(),
            vec!["id", "name", "enabled", "creationDate", "scopes"]
        );
        assert_eq!(
            parse_fields(" expirationDate").unwrap(),
            vec![
                "id",
                "name",
                "enabled",
                "owner",
                "creationDate",
                "expirationDate"
            ]
        );
        assert!(parse_fields("+colour").is_err());
        assert_eq!(
            parse_sort(" name").unwrap(),
            Sort {
                field: SortField::Name,
                descending: false
            }
        );
        assert!(parse_sort("-expirationDate").unwrap().descending);
        assert!(parse_sort("-colour").is_err());
    }

    /// Every short string over an awkward alphabet, after prefixes that reach deep into the
    /// parsers: none may panic.
    #[test]
    fn no_input_panics() {
        let alphabet: Vec<char> = "0-+ :.,()\"~\\/Tzé*dMa\u{0}".chars().collect();
        let mut tails = vec![String::new()];
        for _ in 0..3 {
            let longer: Vec<String> = tails
                .iter()
                .flat_map(|t| alphabet.iter().map(move |c| format!("{t}{c}")))
                .collect();
            tails.extend(longer);
        }
        tails.sort();
        tails.dedup();
        for head in [
            "",
            "now",
            "now+1",
            "2025-01-01",
            "2025-01-01T05:57",
            "2025-01-01T05:57:01",
            "owner(",
            "scope(\"a\"",
            "+",
            "-",
        ] {
            for t in &tails {
                let s = format!("{head}{t}");
                let _ = parse_time(&s, NOW);
                let _ = parse_selector(&s);
                let _ = parse_fields(&s);
                let _ = parse_sort(&s);
                let _ = PageKey::decode(&s);
            }
        }
    }

    #[test]
    fn page_keys_round_trip() {
        let k = PageKey {
            selector: Some("owner(\"x\")".into()),
            page_size: 100,
            after: Some((Key::N(5), "kg_x".into())),
            ..PageKey::default()
        };
        assert_eq!(PageKey::decode(&k.encode()), Some(k));
        assert_eq!(PageKey::decode("zz"), None);
        assert_eq!(PageKey::decode("abc"), None);
        assert_eq!(PageKey::decode("é"), None);
    }
}
