//! The hot path: parse and checksum (no I/O) → SHA-256 → cache by hash → status
//! and scope check. Only a hash never seen before reaches the store.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use keygate_core::permission::Query;
use keygate_core::token;
use keygate_core::usage::RateLimit;
use keygate_core::{TokenHash, TokenPrefix};
use time::OffsetDateTime;

use crate::cache::{CachedToken, Interner, Lookup, TokenCache};
use crate::credits::{CreditConfig, CreditLedger, Spend};
use crate::last_used::LastUseQueue;
use crate::model::{unix_ms, LastUse, TokenStatus};
use crate::ratelimit::{Applied, LimitReport, RateLimiter};
use crate::store::{Store, StoreError};
use crate::usage::Counted;
use crate::usage_writer::UsageWriter;

#[derive(Debug, Clone)]
pub struct VerifierConfig {
    pub prefix: TokenPrefix,
    /// Tokens kept in memory; beyond it the least useful are evicted and reloaded on demand.
    pub cache_capacity: usize,
    /// Unknown hashes remembered, so repeated made-up tokens cost no query.
    pub negative_cache_capacity: usize,
    /// How often queued last-use times are written.
    pub last_use_interval: Duration,
    /// How precisely a token's last use is kept: a use is queued when the token's last queued
    /// use is at least this old. The first use of a token is queued at once.
    pub last_use_resolution: Duration,
    pub credits: CreditConfig,
    /// How often verification counts are written (`--usage-flush-interval`): a crash loses at
    /// most this much of them.
    pub usage_flush_interval: Duration,
    /// Whether verifications are counted per token at all.
    pub count_usage: bool,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            prefix: TokenPrefix::default(),
            cache_capacity: 1_000_000,
            negative_cache_capacity: 100_000,
            last_use_interval: Duration::from_secs(1),
            last_use_resolution: Duration::from_secs(60),
            credits: CreditConfig::default(),
            usage_flush_interval: Duration::from_secs(10),
            count_usage: true,
        }
    }
}

/// The result of checking a token. The codes are those of `POST /api/v1/verify`.
#[derive(Debug, Clone)]
pub enum Outcome {
    Valid(Arc<CachedToken>),
    Malformed,
    NotFound,
    Disabled(Arc<CachedToken>),
    Expired(Arc<CachedToken>),
    /// Lacks a scope that was asked for, or does not meet the permission query. `missing`
    /// names the scopes when the request can be met scope by scope (a list, or a query without
    /// `OR`); otherwise it is empty.
    InsufficientScope {
        token: Arc<CachedToken>,
        missing: Vec<String>,
    },
    /// A rate limit refused it; see [`Verification::ratelimits`].
    RateLimited(Arc<CachedToken>),
    /// Its credits do not cover the cost.
    UsageExceeded(Arc<CachedToken>),
    /// The token has an allow-list of networks, and the client's address is in none of them
    /// (or is not known).
    IpNotAllowed(Arc<CachedToken>),
    /// The request named a rate limit the token does not have. Nothing was charged: it is the
    /// request that is wrong, not the token.
    UnknownRateLimit {
        token: Arc<CachedToken>,
        name: String,
    },
}

impl Outcome {
    pub fn code(&self) -> &'static str {
        match self {
            Outcome::Valid(_) => "VALID",
            Outcome::Malformed => "MALFORMED",
            Outcome::NotFound => "NOT_FOUND",
            Outcome::Disabled(_) => "DISABLED",
            Outcome::Expired(_) => "EXPIRED",
            Outcome::InsufficientScope { .. } => "INSUFFICIENT_SCOPE",
            Outcome::RateLimited(_) => "RATE_LIMITED",
            Outcome::UsageExceeded(_) => "USAGE_EXCEEDED",
            Outcome::IpNotAllowed(_) => "IP_NOT_ALLOWED",
            Outcome::UnknownRateLimit { .. } => "UNKNOWN_RATELIMIT",
        }
    }

    pub fn token(&self) -> Option<&Arc<CachedToken>> {
        match self {
            Outcome::Valid(t)
            | Outcome::Disabled(t)
            | Outcome::Expired(t)
            | Outcome::RateLimited(t)
            | Outcome::UsageExceeded(t)
            | Outcome::IpNotAllowed(t) => Some(t),
            Outcome::InsufficientScope { token, .. } | Outcome::UnknownRateLimit { token, .. } => {
                Some(token)
            }
            Outcome::Malformed | Outcome::NotFound => None,
        }
    }
}

/// One request to a protected API: what the token must be and hold, and what using it costs.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    pub token: &'a str,
    pub scopes: &'a [&'a str],
    pub permissions: Option<&'a Query>,
    /// Rate limits the request names besides the auto-applied ones, with their costs. Naming
    /// an auto-applied limit changes its cost.
    pub ratelimits: &'a [(&'a str, u64)],
    /// Credits this request costs; 0 checks without charging.
    pub cost: u64,
    /// The address of the client that presented the token: checked against the token's
    /// allow-list, and recorded as its last-use address when the answer is `Valid`.
    pub ip: Option<IpAddr>,
}

/// The answer to a [`Check`]: the outcome and what the usage checks found.
#[derive(Debug, Clone)]
pub struct Verification {
    pub outcome: Outcome,
    /// The rate limits that were checked, auto-applied first.
    pub ratelimits: Vec<LimitReport>,
    /// For a token with credits that got as far as being charged: what is left.
    pub credits_remaining: Option<u64>,
    /// For `RateLimited`: how long until the same request would pass.
    pub retry_after_ms: u64,
}

impl Verification {
    fn of(outcome: Outcome) -> Self {
        Self {
            outcome,
            ratelimits: Vec::new(),
            credits_remaining: None,
            retry_after_ms: 0,
        }
    }
}

fn named_cost(named: &[(&str, u64)], name: &str) -> Option<u64> {
    named.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

fn applied_limit(l: &RateLimit, cost: u64) -> Applied<'_> {
    Applied {
        name: &l.name,
        limit: l.limit,
        duration_ms: l.duration_ms,
        cost,
        auto_apply: l.auto_apply,
    }
}

/// Status, then the client's address, then scopes, then the permission query: `Err` with the
/// refusal, or the token. The address comes before the scopes, so that a holder on the wrong
/// network learns nothing of what the token may do.
fn admit(
    cached: Arc<CachedToken>,
    ip: Option<IpAddr>,
    wanted: &[&str],
    permissions: Option<&Query>,
    now: OffsetDateTime,
) -> Result<Arc<CachedToken>, Outcome> {
    match cached.status_at(now) {
        TokenStatus::Disabled => return Err(Outcome::Disabled(cached)),
        TokenStatus::Expired => return Err(Outcome::Expired(cached)),
        TokenStatus::Active => {}
    }
    if !cached.allows_ip(ip) {
        return Err(Outcome::IpNotAllowed(cached));
    }
    if let Some(missing) = cached.scopes.unmet(wanted, permissions) {
        return Err(Outcome::InsufficientScope {
            token: cached,
            missing,
        });
    }
    Ok(cached)
}

pub struct Verifier {
    store: Arc<dyn Store>,
    prefix: TokenPrefix,
    cache: TokenCache,
    last_use: LastUseQueue,
    /// `VerifierConfig::last_use_resolution` in whole seconds, at least one.
    last_use_every: i64,
    interner: Interner,
    /// Verifications that reached the store: the flood tests count these.
    lookups: AtomicU64,
    limiter: RateLimiter,
    credits: CreditLedger,
    usage: Arc<UsageWriter>,
}

impl Verifier {
    /// Must be called inside a Tokio runtime: it starts the last-use writer. Rate limits are
    /// counted in this process.
    pub fn new(store: Arc<dyn Store>, config: VerifierConfig) -> Self {
        Self::with_rate_limiter(store, config, RateLimiter::local())
    }

    /// [`Verifier::new`], with rate limits counted by `limiter` (e.g. in a Redis all nodes
    /// share).
    pub fn with_rate_limiter(
        store: Arc<dyn Store>,
        config: VerifierConfig,
        limiter: RateLimiter,
    ) -> Self {
        Self {
            limiter,
            credits: CreditLedger::start(store.clone(), config.credits),
            usage: UsageWriter::start(
                store.clone(),
                config.usage_flush_interval,
                config.count_usage,
            ),
            last_use: LastUseQueue::start(store.clone(), config.last_use_interval),
            cache: TokenCache::new(config.cache_capacity, config.negative_cache_capacity),
            interner: Interner::default(),
            last_use_every: config.last_use_resolution.as_secs().max(1) as i64,
            lookups: AtomicU64::new(0),
            prefix: config.prefix,
            store,
        }
    }

    pub fn prefix(&self) -> &TokenPrefix {
        &self.prefix
    }

    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    /// This node's unspent credit leases.
    pub fn credits(&self) -> &CreditLedger {
        &self.credits
    }

    /// Checks `token` and that it holds every scope in `wanted`. `ip`, the client's address, is
    /// checked against the token's allow-list, and recorded as its last-use address when the
    /// answer is `Valid`.
    pub async fn verify(
        &self,
        token: &str,
        wanted: &[&str],
        ip: Option<IpAddr>,
    ) -> Result<Outcome, StoreError> {
        self.verify_or(token, wanted, ip, || Ok(())).await
    }

    /// [`Verifier::verify`], but a token that is not in memory reaches the store only if
    /// `may_query` allows it: a client that has failed too often gets its answer from memory
    /// or not at all. Valid tokens in memory never call it, so the limit costs them nothing.
    /// No rate limit is applied and no credit charged: this is the check of keygate's own
    /// API, not of a request to the deployer's.
    pub async fn verify_or<E: From<StoreError>>(
        &self,
        token: &str,
        wanted: &[&str],
        ip: Option<IpAddr>,
        may_query: impl FnOnce() -> Result<(), E>,
    ) -> Result<Outcome, E> {
        let cached = match self.find(token, may_query).await? {
            Ok(t) => t,
            Err(refused) => return Ok(refused),
        };
        let now = OffsetDateTime::now_utc();
        let outcome = match admit(cached, ip, wanted, None, now) {
            Ok(cached) => {
                self.note_use(&cached, now, ip);
                Outcome::Valid(cached)
            }
            Err(refused) => refused,
        };
        self.count(&outcome, now);
        Ok(outcome)
    }

    /// The whole check of a request to a protected API, in order: format, status, scopes and
    /// permission query, rate limits (auto-applied, then named), credits (charged last, only
    /// when everything else passed). `may_query` as in [`Verifier::verify_or`].
    pub async fn check_or<E: From<StoreError>>(
        &self,
        check: &Check<'_>,
        may_query: impl FnOnce() -> Result<(), E>,
    ) -> Result<Verification, E> {
        let cached = match self.find(check.token, may_query).await? {
            Ok(t) => t,
            Err(refused) => return Ok(Verification::of(refused)),
        };
        let now = OffsetDateTime::now_utc();
        let cached = match admit(cached, check.ip, check.scopes, check.permissions, now) {
            Ok(cached) => cached,
            Err(refused) => {
                self.count(&refused, now);
                return Ok(Verification::of(refused));
            }
        };
        let verification = self.charge(cached, check, now).await?;
        if let Outcome::Valid(t) = &verification.outcome {
            self.note_use(t, now, check.ip);
        }
        self.count(&verification.outcome, now);
        Ok(verification)
    }

    /// The cached token this text names, or the answer for a text that names none.
    async fn find<E: From<StoreError>>(
        &self,
        token: &str,
        may_query: impl FnOnce() -> Result<(), E>,
    ) -> Result<Result<Arc<CachedToken>, Outcome>, E> {
        if token::parse(token, &self.prefix).is_err() {
            return Ok(Err(Outcome::Malformed));
        }
        let hash = TokenHash::of(token);
        // Looked up by hash, not compared: see `TokenHash` for why that is no timing oracle.
        Ok(match self.cache.get(&hash) {
            Lookup::Hit(t) => Ok(t),
            Lookup::KnownUnknown => Err(Outcome::NotFound),
            Lookup::Miss => {
                may_query()?;
                self.load(hash).await?.ok_or(Outcome::NotFound)
            }
        })
    }

    /// Rate limits, then credits, for a token that passed every other check.
    async fn charge(
        &self,
        t: Arc<CachedToken>,
        check: &Check<'_>,
        now: OffsetDateTime,
    ) -> Result<Verification, StoreError> {
        let mut applied = Vec::new();
        for l in t.ratelimits.iter().filter(|l| l.auto_apply) {
            let cost = named_cost(check.ratelimits, &l.name).unwrap_or(1);
            applied.push(applied_limit(l, cost));
        }
        for (name, cost) in check.ratelimits {
            match t.ratelimits.iter().find(|l| l.name == *name) {
                Some(l) if l.auto_apply => {}
                Some(l) => applied.push(applied_limit(l, *cost)),
                None => {
                    let name = (*name).to_owned();
                    return Ok(Verification::of(Outcome::UnknownRateLimit {
                        token: t,
                        name,
                    }));
                }
            }
        }
        let mut v = Verification::of(Outcome::Valid(t.clone()));
        if !applied.is_empty() {
            let now_us = u64::try_from(now.unix_timestamp_nanos() / 1_000).unwrap_or(0);
            let decision = self.limiter.check_at(t.id.as_str(), &applied, now_us).await;
            v.ratelimits = decision.reports;
            if !decision.allowed {
                v.retry_after_ms = decision.retry_after_ms;
                v.outcome = Outcome::RateLimited(t);
                return Ok(v);
            }
        }
        match self.credits.spend(&t, check.cost, now).await? {
            Spend::Charged { remaining } => v.credits_remaining = Some(remaining),
            Spend::Exhausted { remaining } => {
                v.credits_remaining = Some(remaining);
                v.outcome = Outcome::UsageExceeded(t);
            }
            Spend::Unlimited => {}
        }
        Ok(v)
    }

    /// How many verifications have looked a token up in the store since start.
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    async fn load(&self, hash: TokenHash) -> Result<Option<Arc<CachedToken>>, StoreError> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let epoch = self.cache.epoch();
        let found = self
            .store
            .token_by_hash(&hash)
            .await?
            .map(|rec| Arc::new(self.interner.cached(&rec)));
        self.cache.fill(hash, found.clone(), epoch);
        Ok(found)
    }

    /// At most one use per token per resolution reaches the writer: with one per second, a
    /// hundred thousand tokens in use meant a hundred thousand row updates a second, and the
    /// writer, not the verification, set the pace (BENCHMARKS.md). The address becomes a
    /// string only here: formatting it for every verification cost more than the lookup.
    fn note_use(&self, t: &CachedToken, now: OffsetDateTime, ip: Option<IpAddr>) {
        let sec = now.unix_timestamp();
        let prev = t.last_use_queued.load(Ordering::Relaxed);
        if (prev == 0 || sec >= prev + self.last_use_every)
            && t.last_use_queued
                .compare_exchange(prev, sec, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.last_use.push(LastUse {
                id: t.id.clone(),
                at: now,
                ip: ip.map(|a| a.to_string()),
            });
        }
    }

    /// Adds the verification to its token's usage counts. A request that named a rate limit the
    /// token lacks is the request's mistake, not a use of the token: not counted.
    fn count(&self, outcome: &Outcome, now: OffsetDateTime) {
        let (t, counted) = match outcome {
            Outcome::Valid(t) => (t, Counted::Valid),
            Outcome::RateLimited(t) => (t, Counted::RateLimited),
            Outcome::UsageExceeded(t) => (t, Counted::UsageExceeded),
            Outcome::InsufficientScope { token, .. } => (token, Counted::InsufficientScope),
            Outcome::Disabled(t) => (t, Counted::Disabled),
            Outcome::Expired(t) => (t, Counted::Expired),
            Outcome::IpNotAllowed(t) => (t, Counted::IpNotAllowed),
            Outcome::Malformed | Outcome::NotFound | Outcome::UnknownRateLimit { .. } => return,
        };
        self.usage.add(&t.id, &t.tenant_id, unix_ms(now), counted);
    }

    /// The usage counts this node has not written yet, and their writer.
    pub fn usage(&self) -> &UsageWriter {
        &self.usage
    }

    /// Call after a committed write that changed or removed these tokens (or created a token
    /// whose hash may have been remembered as unknown).
    pub fn invalidate(&self, hashes: &[TokenHash]) {
        self.cache.invalidate(hashes);
    }

    /// Forgets every cached answer.
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    /// Writes queued last-use times now.
    pub async fn flush_last_use(&self) {
        self.last_use.flush().await;
    }

    /// For a node that stops, after its last verification: writes queued last-use times and
    /// gives unspent credits back, so other nodes can spend them, and writes the usage counts.
    pub async fn shutdown(&self) {
        self.last_use.flush().await;
        if let Err(e) = self.usage.flush().await {
            tracing::error!(error = %e, pending = self.usage.pending(), "writing the last usage counts failed: they are lost");
        }
        self.credits.return_all().await;
    }
}
