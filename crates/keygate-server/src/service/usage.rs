//! Reading usage counts on behalf of a caller: a token's series (whoever may see the token) and
//! the tenant's top consumers (`tokens:admin`). Ranges are checked here, with refusals that say
//! what to ask instead.

use keygate_store::usage::{
    Counts, Granularity, TopQuery, TopUsage, UsageGroup, UsageOrder, UsagePoint, DAY_MS,
    DAY_RETENTION_DAYS, HOUR_MS, MINUTE_RETENTION_DAYS,
};
use keygate_store::{from_unix_ms, unix_ms};
use time::OffsetDateTime;

use crate::auth::{Authorized, Caller, TokensAdmin};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Most buckets one series answer holds: a day by minute, or two months by hour.
pub const MAX_BUCKETS: i64 = 1500;
pub const DEFAULT_TOP: u32 = 10;
pub const MAX_TOP: u32 = 100;
/// Tenant ranges up to this long are added up from minute rows, exactly to the minute...
const MINUTE_RANGE_MAX_MS: i64 = 2 * HOUR_MS;
/// ...up to this long from hour rows, in whole hours; longer ones from day rows, in whole days.
const HOUR_RANGE_MAX_MS: i64 = 2 * DAY_MS;

/// A range as asked for: both ends optional.
#[derive(Debug, Clone, Copy, Default)]
pub struct Range {
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
}

/// A series as answered: the range after rounding, and every bucket in it.
pub struct Series {
    pub from_ms: i64,
    pub to_ms: i64,
    pub points: Vec<UsagePoint>,
    pub totals: Counts,
}

fn default_span(g: Granularity) -> i64 {
    match g {
        Granularity::Minute => HOUR_MS,
        Granularity::Hour => DAY_MS,
        Granularity::Day => 30 * DAY_MS,
    }
}

/// The range in Unix ms, with defaults, refused when backwards. `to` is first rounded up to
/// `align` so that a default range holds whole buckets: the last hour by minute is 60 of them,
/// the current one included.
fn resolve(
    range: Range,
    now_ms: i64,
    default_ms: i64,
    align: Granularity,
) -> ApiResult<(i64, i64)> {
    let to = align.ceil(range.to.map_or(now_ms, unix_ms));
    let from = range.from.map_or(to - default_ms, unix_ms);
    if from >= to {
        return Err(ApiError::BadRequest("from must be before to".into()));
    }
    Ok((from, to))
}

/// One token's verifications by bucket, dense: buckets with nothing counted are zeros.
pub async fn token_series(
    state: &AppState,
    caller: &Caller,
    id: &str,
    granularity: Granularity,
    range: Range,
) -> ApiResult<Series> {
    let now_ms = unix_ms(OffsetDateTime::now_utc());
    let (from, to) = resolve(range, now_ms, default_span(granularity), granularity)?;
    let (from, to) = (granularity.floor(from), granularity.ceil(to));
    let step = granularity.step_ms();
    let buckets = (to - from) / step;
    if buckets > MAX_BUCKETS {
        return Err(ApiError::BadRequest(format!(
            "the range holds {buckets} buckets and at most {MAX_BUCKETS} are served: ask for a \
             shorter range or a coarser granularity"
        )));
    }
    let (kept_days, instead) = match granularity {
        Granularity::Minute | Granularity::Hour => (MINUTE_RETENTION_DAYS, "; use granularity=day"),
        Granularity::Day => (DAY_RETENTION_DAYS, ""),
    };
    if from < granularity.floor(now_ms - kept_days * DAY_MS) {
        return Err(ApiError::BadRequest(format!(
            "{} buckets are kept for {kept_days} days: from is older{instead}",
            granularity_name(granularity)
        )));
    }
    let token = crate::service::tokens::visible(state, caller, id).await?;
    let stored = state
        .store
        .usage_series(&token.tenant_id, id, granularity, from, to)
        .await?;
    let mut totals = Counts::default();
    let mut stored = stored.into_iter().peekable();
    let mut points = Vec::with_capacity(buckets as usize);
    for i in 0..buckets {
        let at_ms = from + i * step;
        let counts = match stored.peek() {
            Some(p) if p.at_ms == at_ms => stored.next().map(|p| p.counts).unwrap_or_default(),
            _ => Counts::default(),
        };
        totals.add(&counts);
        points.push(UsagePoint { at_ms, counts });
    }
    Ok(Series {
        from_ms: from,
        to_ms: to,
        points,
        totals,
    })
}

pub fn granularity_name(g: Granularity) -> &'static str {
    match g {
        Granularity::Minute => "minute",
        Granularity::Hour => "hour",
        Granularity::Day => "day",
    }
}

/// What the tenant's top query was answered for: the range after rounding, and which rows.
pub struct Top {
    pub from_ms: i64,
    pub to_ms: i64,
    pub granularity: Granularity,
    pub usage: TopUsage,
}

/// The tenant's totals and its top tokens or external ids in a range.
pub async fn tenant_top(
    state: &AppState,
    caller: &Authorized<TokensAdmin>,
    range: Range,
    group_by: UsageGroup,
    order_by: UsageOrder,
    limit: Option<u32>,
) -> ApiResult<Top> {
    let limit = match limit.unwrap_or(DEFAULT_TOP) {
        l @ 1..=MAX_TOP => l,
        _ => {
            return Err(ApiError::BadRequest(format!(
                "limit must be between 1 and {MAX_TOP}"
            )))
        }
    };
    let now_ms = unix_ms(OffsetDateTime::now_utc());
    let (from, to) = resolve(range, now_ms, DAY_MS, Granularity::Minute)?;
    let kept_short = from >= Granularity::Minute.floor(now_ms - MINUTE_RETENTION_DAYS * DAY_MS);
    let granularity = match to - from {
        span if span <= MINUTE_RANGE_MAX_MS && kept_short => Granularity::Minute,
        span if span <= HOUR_RANGE_MAX_MS && kept_short => Granularity::Hour,
        _ => Granularity::Day,
    };
    let (from, to) = (granularity.floor(from), granularity.ceil(to));
    if from < Granularity::Day.floor(now_ms - DAY_RETENTION_DAYS * DAY_MS) {
        return Err(ApiError::BadRequest(format!(
            "usage is kept for {DAY_RETENTION_DAYS} days: from is older"
        )));
    }
    let q = TopQuery {
        from_ms: from,
        to_ms: to,
        group_by,
        order_by,
        limit,
        granularity,
    };
    let usage = state.store.usage_top(caller.tenant_id(), &q).await?;
    Ok(Top {
        from_ms: from,
        to_ms: to,
        granularity,
        usage,
    })
}

/// For answers: a stored time back as a date-time.
pub fn at(ms: i64) -> OffsetDateTime {
    from_unix_ms(ms)
}
