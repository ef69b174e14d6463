//! [`RateLimiter`]: the one type callers hold, whichever backend counts.

use crate::ratelimit::decision::{Applied, Decision, RateLimitError};
use crate::ratelimit::local::LocalLimiter;
use crate::ratelimit::redis::RedisLimiter;

/// Per-token rate limits (GCRA). Cloning is cheap and shares the counts.
#[derive(Clone)]
pub struct RateLimiter {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Local(LocalLimiter),
    Redis(RedisLimiter),
}

impl RateLimiter {
    /// Counts in this process: exact on one node. Create it within a Tokio runtime, whose task
    /// then forgets limits that have refilled.
    pub fn local() -> Self {
        Self {
            backend: Backend::Local(LocalLimiter::new()),
        }
    }

    /// Counts in Redis: exact across every node that shares it. Fails only on a malformed URL;
    /// while Redis cannot answer, each check is counted on this node alone.
    pub async fn redis(url: &str) -> Result<Self, RateLimitError> {
        Ok(Self {
            backend: Backend::Redis(RedisLimiter::connect(url).await?),
        })
    }

    /// Checks `limits` for one request and charges them all, or none if any refuses.
    pub async fn check(&self, token_id: &str, limits: &[Applied<'_>]) -> Decision {
        self.check_at(token_id, limits, crate::ratelimit::local::now_us())
            .await
    }

    /// [`RateLimiter::check`] at `now_us` (Unix µs), for a caller that has read the clock
    /// already: reading it again cost a fifth of a warm check. Redis goes by its own clock.
    pub async fn check_at(&self, token_id: &str, limits: &[Applied<'_>], now_us: u64) -> Decision {
        if limits.is_empty() {
            return Decision::unlimited();
        }
        match &self.backend {
            Backend::Local(local) => local.check_at(token_id, limits, now_us),
            Backend::Redis(redis) => redis.check(token_id, limits).await,
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Local(_) => "local",
            Backend::Redis(_) => "redis",
        }
    }
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the Redis URL: it may hold a password.
        f.debug_struct("RateLimiter")
            .field("backend", &self.backend_name())
            .finish()
    }
}
