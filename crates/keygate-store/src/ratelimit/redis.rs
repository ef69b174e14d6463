//! The Redis limiter: exact across every node that shares one Redis. One Lua script reads,
//! decides and writes all of a request's limits atomically, on the Redis server's clock, so
//! nodes whose clocks disagree still agree on every limit.
//!
//! When Redis cannot answer, each check falls back to this node's own in-process limiter, so a
//! verification never fails because Redis is down; Redis is tried again a second later.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, RedisError, Script};

use crate::ratelimit::decision::{Applied, Decision, RateLimitError};
use crate::ratelimit::evaluate::{evaluate, Counts};
use crate::ratelimit::gcra::{Rate, Tat, US_PER_MS};
use crate::ratelimit::local::{now_us, LocalLimiter};

/// How long a check waits for Redis before it decides in memory instead.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);
/// After a failure, checks go straight to memory for this long, so an outage costs a
/// timeout once per second rather than on every request.
const PAUSE_AFTER_FAILURE_MS: u64 = 1_000;
/// At most one warning per this long while Redis is unavailable.
const WARN_EVERY_MS: u64 = 10_000;

/// Per limit, four arguments: limit, duration (µs), and the request's cost in time as whole µs
/// and 1/limit µs. A stored limit is a hash: `u` and `f` its TAT (whole µs and 1/`l` µs), `l`
/// the limit the fraction counts in. Numbers stay below 2^53, where Lua's doubles are exact.
/// Replies with whether the request passed, the server's time in µs, and each limit's stored
/// TAT as two numbers, for the caller to compute its report from.
const SCRIPT: &str = r#"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local reply = {1, now}
local after = {}
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[4 * i - 3])
  local duration = tonumber(ARGV[4 * i - 2])
  local inc_us = tonumber(ARGV[4 * i - 1])
  local inc_frac = tonumber(ARGV[4 * i])
  local held = redis.call('HMGET', key, 'u', 'f', 'l')
  local us = tonumber(held[1]) or 0
  local frac = 0
  if tonumber(held[3]) == limit then frac = tonumber(held[2]) or 0 end
  reply[2 * i + 1] = us
  reply[2 * i + 2] = frac
  local base = after[key] or {us, frac}
  if inc_us > 0 or inc_frac > 0 then
    local new_us, new_frac = base[1], base[2]
    if new_us < now then new_us, new_frac = now, 0 end
    new_us = new_us + inc_us
    new_frac = new_frac + inc_frac
    if new_frac >= limit then new_us, new_frac = new_us + 1, new_frac - limit end
    local ahead = new_us - now
    if ahead < duration or (ahead == duration and new_frac == 0) then
      after[key] = {new_us, new_frac, limit}
    else
      reply[1] = 0
    end
  end
end
if reply[1] == 1 then
  for key, tat in pairs(after) do
    redis.call('HSET', key, 'u', tat[1], 'f', tat[2], 'l', tat[3])
    redis.call('PEXPIRE', key, math.floor((tat[1] - now) / 1000) + 2)
  end
end
return reply
"#;

#[derive(Clone)]
pub struct RedisLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    connection: ConnectionManager,
    script: Script,
    fallback: LocalLimiter,
    /// Unix ms before which checks skip Redis.
    paused_until_ms: AtomicU64,
    last_warning_ms: AtomicU64,
}

impl RedisLimiter {
    /// Only a malformed URL is an error. An unreachable Redis is not: checks are decided in
    /// memory until it answers.
    pub async fn connect(url: &str) -> Result<Self, RateLimitError> {
        let client = Client::open(url).map_err(|e| RateLimitError::RedisUrl(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            // One attempt per reconnection: the pause above spaces them out.
            .set_number_of_retries(0);
        let inner = match ConnectionManager::new_with_config(client.clone(), config.clone()).await {
            Ok(connection) => Inner::new(connection),
            Err(error) => {
                let connection = ConnectionManager::new_lazy_with_config(client, config)
                    .map_err(|e| RateLimitError::RedisUrl(e.to_string()))?;
                let inner = Inner::new(connection);
                inner.unavailable(&error);
                inner
            }
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    pub async fn check(&self, token_id: &str, limits: &[Applied<'_>]) -> Decision {
        let inner = &self.inner;
        if now_ms() < inner.paused_until_ms.load(Ordering::Relaxed) {
            return inner.fallback.check(token_id, limits);
        }
        match inner.check_on_redis(token_id, limits).await {
            Ok(decision) => decision,
            Err(error) => {
                inner.unavailable(&error);
                inner.fallback.check(token_id, limits)
            }
        }
    }
}

impl Inner {
    fn new(connection: ConnectionManager) -> Self {
        Self {
            connection,
            script: Script::new(SCRIPT),
            fallback: LocalLimiter::new(),
            paused_until_ms: AtomicU64::new(0),
            last_warning_ms: AtomicU64::new(0),
        }
    }

    async fn check_on_redis(
        &self,
        token_id: &str,
        limits: &[Applied<'_>],
    ) -> Result<Decision, RedisError> {
        let mut invocation = self.script.prepare_invoke();
        for limit in limits {
            invocation.key(key(token_id, limit.name));
        }
        for limit in limits {
            let rate = Rate::new(limit.limit, limit.duration_ms);
            let increment = rate.increment(limit.cost);
            invocation
                .arg(rate.limit())
                .arg(rate.duration_us())
                .arg(increment.us)
                .arg(increment.frac);
        }
        let reply: Vec<u64> = invocation
            .invoke_async(&mut self.connection.clone())
            .await?;
        if reply.len() != 2 + 2 * limits.len() {
            return Err(RedisError::from((
                ::redis::ErrorKind::UnexpectedReturnType,
                "the rate-limit script answered with the wrong number of values",
            )));
        }
        let decision = evaluate(limits, &mut Reply(&reply), reply[1]);
        // The script decided and committed; evaluating its reply describes that decision.
        debug_assert_eq!(decision.allowed, reply[0] == 1);
        Ok(decision)
    }

    fn unavailable(&self, error: &RedisError) {
        let now = now_ms();
        self.paused_until_ms
            .store(now + PAUSE_AFTER_FAILURE_MS, Ordering::Relaxed);
        let last = self.last_warning_ms.load(Ordering::Relaxed);
        if now >= last + WARN_EVERY_MS
            && self
                .last_warning_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                %error,
                "Redis is unavailable: rate limits are counted on this node alone until it answers"
            );
        }
    }
}

/// The script's reply: after the decision and the time, each limit's stored TAT.
struct Reply<'a>(&'a [u64]);

impl Counts for Reply<'_> {
    fn stored(&mut self, i: usize) -> Tat {
        Tat {
            us: self.0[2 + 2 * i],
            frac: self.0[3 + 2 * i],
        }
    }

    /// The script has stored them already.
    fn commit(&mut self, _: &[Tat]) {}
}

/// One token's keys share the hash tag `{token id}`, so they live in one cluster slot and one
/// script may touch them all.
fn key(token_id: &str, name: &str) -> String {
    format!("keygate:rl:{{{token_id}}}:{name}")
}

fn now_ms() -> u64 {
    now_us() / US_PER_MS
}
