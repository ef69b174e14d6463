//! What a caller asks of the limiter and what it answers, whichever backend answers.

use compact_str::CompactString;

/// One limit applied to one verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied<'a> {
    pub name: &'a str,
    /// Requests admitted at once from a full limit; at least 1.
    pub limit: u64,
    /// The time over which a used-up limit refills evenly, in milliseconds; at least 1.
    pub duration_ms: u64,
    /// What this request uses up; 0 checks without using anything.
    pub cost: u64,
    pub auto_apply: bool,
}

/// The state of one checked limit after the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitReport {
    pub name: CompactString,
    pub limit: u64,
    pub duration_ms: u64,
    /// How many more requests of cost 1 would pass now.
    pub remaining: u64,
    /// When the limit is full again, in Unix milliseconds.
    pub reset_ms: i64,
    /// This limit refused the request.
    pub exceeded: bool,
    pub auto_apply: bool,
}

/// The answer to one check: either every limit was charged, or none was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// One per checked limit, in the order given.
    pub reports: Vec<LimitReport>,
    /// On a refusal, how long until the same request would pass (if nothing else uses the
    /// limits meanwhile), in milliseconds; 0 when allowed.
    pub retry_after_ms: u64,
}

impl Decision {
    /// The answer when there is nothing to check.
    pub fn unlimited() -> Self {
        Self {
            allowed: true,
            reports: Vec::new(),
            retry_after_ms: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    #[error("the Redis URL for rate limits is not valid: {0}")]
    RedisUrl(String),
}
