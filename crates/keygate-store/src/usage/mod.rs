//! Usage analytics: every verification of a known token counted per token, per minute, by
//! outcome. The hot path only adds one to a counter in memory ([`UsageCounter`]); a background
//! task (`crate::usage_writer`) writes the counts behind in batches, adding them to the rows
//! other nodes write too, and prunes what is past retention. This module holds the counts'
//! types, which the [`crate::store::Store`] trait speaks, so it sits below it.

mod counter;

use std::sync::Arc;

use keygate_core::TokenId;

pub use counter::UsageCounter;

/// Per-minute and per-hour rows are kept this long.
pub const MINUTE_RETENTION_DAYS: i64 = 31;
/// Per-day rows are kept this long.
pub const DAY_RETENTION_DAYS: i64 = 400;

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// What a verification of a known token came to, as counted. Malformed and unknown tokens
/// belong to no token and are not counted here (Prometheus counts them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Valid,
    RateLimited,
    UsageExceeded,
    InsufficientScope,
    Disabled,
    Expired,
    IpNotAllowed,
}

impl Counted {
    pub const ALL: [Counted; 7] = [
        Counted::Valid,
        Counted::RateLimited,
        Counted::UsageExceeded,
        Counted::InsufficientScope,
        Counted::Disabled,
        Counted::Expired,
        Counted::IpNotAllowed,
    ];

    /// The column of the usage tables, in the order of [`Counted::ALL`].
    pub const fn column(self) -> &'static str {
        match self {
            Counted::Valid => "valid",
            Counted::RateLimited => "rate_limited",
            Counted::UsageExceeded => "usage_exceeded",
            Counted::InsufficientScope => "insufficient_scope",
            Counted::Disabled => "disabled",
            Counted::Expired => "expired",
            Counted::IpNotAllowed => "ip_not_allowed",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Verifications by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts(pub [u64; 7]);

impl Counts {
    pub fn get(&self, c: Counted) -> u64 {
        self.0[c.index()]
    }

    pub fn add(&mut self, other: &Counts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a = a.saturating_add(b);
        }
    }

    pub fn total(&self) -> u64 {
        self.0.iter().fold(0u64, |s, n| s.saturating_add(*n))
    }

    /// Everything but `valid`.
    pub fn refused(&self) -> u64 {
        self.total() - self.get(Counted::Valid)
    }
}

/// One token's counts in one minute, as a node adds them to the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDelta {
    pub token_id: TokenId,
    pub tenant_id: Arc<str>,
    /// The minute's start, Unix milliseconds.
    pub minute_ms: i64,
    pub counts: Counts,
}

/// The width of a bucket of a usage series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Minute,
    Hour,
    Day,
}

impl Granularity {
    pub const fn step_ms(self) -> i64 {
        match self {
            Granularity::Minute => MINUTE_MS,
            Granularity::Hour => HOUR_MS,
            Granularity::Day => DAY_MS,
        }
    }

    /// `ms` rounded down to the start of its bucket (UTC).
    pub fn floor(self, ms: i64) -> i64 {
        ms.div_euclid(self.step_ms()) * self.step_ms()
    }

    /// `ms` rounded up to a bucket boundary.
    pub fn ceil(self, ms: i64) -> i64 {
        let f = self.floor(ms);
        if f == ms {
            ms
        } else {
            f + self.step_ms()
        }
    }
}

/// One bucket of a series: its start and what it counted. Buckets with nothing are not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsagePoint {
    pub at_ms: i64,
    pub counts: Counts,
}

/// How a tenant's usage is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageGroup {
    Token,
    /// Tokens that share an `externalId` together; tokens without one are left out.
    ExternalId,
}

/// Which groups come first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageOrder {
    Total,
    Refused,
}

/// The tenant's top groups in `[from_ms, to_ms)`.
#[derive(Debug, Clone, Copy)]
pub struct TopQuery {
    pub from_ms: i64,
    pub to_ms: i64,
    pub group_by: UsageGroup,
    pub order_by: UsageOrder,
    pub limit: u32,
    /// Which rows are added up: `from_ms` and `to_ms` must be on its bucket boundaries.
    pub granularity: Granularity,
}

/// A group of a [`TopQuery`]: a token (its id, with its name and external id if it still
/// exists) or an external id (with how many of its tokens were used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopItem {
    pub token_id: Option<String>,
    pub name: Option<String>,
    pub external_id: Option<String>,
    pub tokens: u64,
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopUsage {
    pub totals: Counts,
    pub items: Vec<TopItem>,
}
