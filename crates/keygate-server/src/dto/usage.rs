//! The JSON shapes of usage analytics: a token's verifications over time, and a tenant's top
//! consumers.

use keygate_store::usage::{Counted, Counts, Granularity, UsageGroup, UsageOrder};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UsageGranularity {
    Minute,
    Hour,
    Day,
}

impl From<Granularity> for UsageGranularity {
    fn from(g: Granularity) -> Self {
        match g {
            Granularity::Minute => UsageGranularity::Minute,
            Granularity::Hour => UsageGranularity::Hour,
            Granularity::Day => UsageGranularity::Day,
        }
    }
}

impl From<UsageGranularity> for Granularity {
    fn from(g: UsageGranularity) -> Self {
        match g {
            UsageGranularity::Minute => Granularity::Minute,
            UsageGranularity::Hour => Granularity::Hour,
            UsageGranularity::Day => Granularity::Day,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum UsageGroupBy {
    Token,
    ExternalId,
}

impl From<UsageGroupBy> for UsageGroup {
    fn from(g: UsageGroupBy) -> Self {
        match g {
            UsageGroupBy::Token => UsageGroup::Token,
            UsageGroupBy::ExternalId => UsageGroup::ExternalId,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UsageOrderBy {
    /// Most verifications first.
    Total,
    /// Most refusals first (everything but `valid`).
    Refused,
}

impl From<UsageOrderBy> for UsageOrder {
    fn from(o: UsageOrderBy) -> Self {
        match o {
            UsageOrderBy::Total => UsageOrder::Total,
            UsageOrderBy::Refused => UsageOrder::Refused,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct TokenUsageQuery {
    /// Bucket width [default: hour]. Minute and hour buckets reach back 31 days, day buckets
    /// 400 days.
    pub granularity: Option<UsageGranularity>,
    /// RFC 3339; rounded down to the granularity [default: `to` less an hour (minute), a day
    /// (hour) or 30 days (day)].
    pub from: Option<String>,
    /// RFC 3339, exclusive; rounded up to the granularity [default: now].
    pub to: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct TenantUsageQuery {
    /// RFC 3339 [default: `to` less 24 hours]. Ranges up to two hours are counted to the
    /// minute, up to two days in whole hours, longer ones (or reaching back more than 31 days)
    /// in whole UTC days.
    pub from: Option<String>,
    /// RFC 3339, exclusive [default: now].
    pub to: Option<String>,
    /// [default: token]
    pub group_by: Option<UsageGroupBy>,
    /// [default: total]
    pub order_by: Option<UsageOrderBy>,
    /// 1–100 [default: 10].
    pub limit: Option<u32>,
}

/// Verifications by outcome.
#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UsageCounts {
    pub valid: u64,
    pub rate_limited: u64,
    pub usage_exceeded: u64,
    pub insufficient_scope: u64,
    pub disabled: u64,
    pub expired: u64,
    pub ip_not_allowed: u64,
    /// All of the above.
    pub total: u64,
    /// All but `valid`.
    pub refused: u64,
}

impl From<Counts> for UsageCounts {
    fn from(c: Counts) -> Self {
        Self {
            valid: c.get(Counted::Valid),
            rate_limited: c.get(Counted::RateLimited),
            usage_exceeded: c.get(Counted::UsageExceeded),
            insufficient_scope: c.get(Counted::InsufficientScope),
            disabled: c.get(Counted::Disabled),
            expired: c.get(Counted::Expired),
            ip_not_allowed: c.get(Counted::IpNotAllowed),
            total: c.total(),
            refused: c.refused(),
        }
    }
}

/// One bucket: its start and what was counted in it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageBucket {
    #[serde(with = "crate::rfc3339_ms")]
    pub at: OffsetDateTime,
    #[serde(flatten)]
    pub counts: UsageCounts,
}

/// A token's verifications over time: every bucket of the range, oldest first, empty ones
/// included.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    pub token_id: String,
    pub granularity: UsageGranularity,
    #[serde(with = "crate::rfc3339_ms")]
    pub from: OffsetDateTime,
    #[serde(with = "crate::rfc3339_ms")]
    pub to: OffsetDateTime,
    pub items: Vec<UsageBucket>,
    pub totals: UsageCounts,
}

/// A token (`groupBy=token`) or an external id (`groupBy=externalId`) and its verifications.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageGroupView {
    /// `groupBy=token` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// The token's name; null once the token is deleted. `groupBy=token` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub external_id: Option<String>,
    /// How many tokens of the group were verified. `groupBy=externalId` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    #[serde(flatten)]
    pub counts: UsageCounts,
}

/// A tenant's verifications in a range: totals, and its top groups.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantUsage {
    #[serde(with = "crate::rfc3339_ms")]
    pub from: OffsetDateTime,
    #[serde(with = "crate::rfc3339_ms")]
    pub to: OffsetDateTime,
    /// The rows counted: `minute` for ranges up to two hours, `hour` up to two days (`from`
    /// and `to` then whole hours), `day` beyond, or when the range starts more than 31 days ago
    /// (whole UTC days).
    pub granularity: UsageGranularity,
    pub group_by: UsageGroupBy,
    pub order_by: UsageOrderBy,
    pub totals: UsageCounts,
    /// Groups with nothing counted (for `orderBy=refused`: nothing refused) are left out.
    pub items: Vec<UsageGroupView>,
}
