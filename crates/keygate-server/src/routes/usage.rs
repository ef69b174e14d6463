//! `/api/v1/tokens/{id}/usage` and `/api/v1/usage`: verification counts over time.

use axum::extract::State;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::auth::{Authorized, TokensAdmin, TokensRead};
use crate::dto::*;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Path, Query};
use crate::service::usage::{self, Range};
use crate::state::AppState;

fn parse_time(name: &str, value: Option<&str>) -> ApiResult<Option<OffsetDateTime>> {
    value
        .map(|v| {
            OffsetDateTime::parse(v, &Rfc3339).map_err(|_| {
                ApiError::BadRequest(format!(
                    "{name} must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z"
                ))
            })
        })
        .transpose()
}

fn range(from: Option<&str>, to: Option<&str>) -> ApiResult<Range> {
    Ok(Range {
        from: parse_time("from", from)?,
        to: parse_time("to", to)?,
    })
}

/// A token's verifications over time, by outcome: every bucket of the range, oldest first.
/// Counts are written behind: the last few seconds (`--usage-flush-interval`) may be missing.
#[utoipa::path(get, path = "/api/v1/tokens/{id}/usage", tag = "usage",
    params(("id" = String, Path, description = "Token id"), TokenUsageQuery),
    responses(
        (status = 200, body = TokenUsage),
        (status = 400, description = "Bad range or granularity", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn token_usage(
    State(state): State<AppState>,
    caller: Authorized<TokensRead>,
    Path(id): Path<String>,
    Query(q): Query<TokenUsageQuery>,
) -> ApiResult<axum::Json<TokenUsage>> {
    let granularity = q.granularity.unwrap_or(UsageGranularity::Hour);
    let range = range(q.from.as_deref(), q.to.as_deref())?;
    let series = usage::token_series(&state, &caller, &id, granularity.into(), range).await?;
    Ok(axum::Json(TokenUsage {
        token_id: id,
        granularity,
        from: usage::at(series.from_ms),
        to: usage::at(series.to_ms),
        items: series
            .points
            .into_iter()
            .map(|p| UsageBucket {
                at: usage::at(p.at_ms),
                counts: p.counts.into(),
            })
            .collect(),
        totals: series.totals.into(),
    }))
}

/// The tenant's verifications in a range: totals, and its top tokens or external ids, by
/// verifications or by refusals.
#[utoipa::path(get, path = "/api/v1/usage", tag = "usage",
    params(TenantUsageQuery),
    responses(
        (status = 200, body = TenantUsage),
        (status = 400, description = "Bad range or parameter", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs tokens:admin", body = ErrorBody),
    ),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn tenant_usage(
    State(state): State<AppState>,
    caller: Authorized<TokensAdmin>,
    Query(q): Query<TenantUsageQuery>,
) -> ApiResult<axum::Json<TenantUsage>> {
    let group_by = q.group_by.unwrap_or(UsageGroupBy::Token);
    let order_by = q.order_by.unwrap_or(UsageOrderBy::Total);
    let range = range(q.from.as_deref(), q.to.as_deref())?;
    let top = usage::tenant_top(
        &state,
        &caller,
        range,
        group_by.into(),
        order_by.into(),
        q.limit,
    )
    .await?;
    let by_token = matches!(group_by, UsageGroupBy::Token);
    Ok(axum::Json(TenantUsage {
        from: usage::at(top.from_ms),
        to: usage::at(top.to_ms),
        granularity: top.granularity.into(),
        group_by,
        order_by,
        totals: top.usage.totals.into(),
        items: top
            .usage
            .items
            .into_iter()
            .map(|i| UsageGroupView {
                token_id: i.token_id,
                name: i.name,
                external_id: i.external_id,
                tokens: (!by_token).then_some(i.tokens),
                counts: i.counts.into(),
            })
            .collect(),
    }))
}
