//! The hot path: parse and checksum (no I/O) → SHA-256 → cache by hash → status
//! and scope check. Only a hash never seen before reaches the store.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use keygate_core::token;
use keygate_core::{TokenHash, TokenPrefix};
use time::OffsetDateTime;

use crate::cache::{CachedToken, Interner, Lookup, TokenCache};
use crate::last_used::LastUseQueue;
use crate::model::{LastUse, TokenStatus};
use crate::store::{Store, StoreError};

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
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            prefix: TokenPrefix::default(),
            cache_capacity: 1_000_000,
            negative_cache_capacity: 100_000,
            last_use_interval: Duration::from_secs(1),
            last_use_resolution: Duration::from_secs(60),
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
    InsufficientScope {
        token: Arc<CachedToken>,
        missing: Vec<String>,
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
        }
    }

    pub fn token(&self) -> Option<&Arc<CachedToken>> {
        match self {
            Outcome::Valid(t) | Outcome::Disabled(t) | Outcome::Expired(t) => Some(t),
            Outcome::InsufficientScope { token, .. } => Some(token),
            Outcome::Malformed | Outcome::NotFound => None,
        }
    }
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
}

impl Verifier {
    /// Must be called inside a Tokio runtime: it starts the last-use writer.
    pub fn new(store: Arc<dyn Store>, config: VerifierConfig) -> Self {
        Self {
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

    /// Checks `token` and that it holds every scope in `wanted`. `ip` is recorded as the
    /// token's last-use address when the answer is `Valid`.
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
    pub async fn verify_or<E: From<StoreError>>(
        &self,
        token: &str,
        wanted: &[&str],
        ip: Option<IpAddr>,
        may_query: impl FnOnce() -> Result<(), E>,
    ) -> Result<Outcome, E> {
        if token::parse(token, &self.prefix).is_err() {
            return Ok(Outcome::Malformed);
        }
        let hash = TokenHash::of(token);
        // Looked up by hash, not compared: see `TokenHash` for why that is no timing oracle.
        let cached = match self.cache.get(&hash) {
            Lookup::Hit(t) => t,
            Lookup::KnownUnknown => return Ok(Outcome::NotFound),
            Lookup::Miss => {
                may_query()?;
                match self.load(hash).await? {
                    Some(t) => t,
                    None => return Ok(Outcome::NotFound),
                }
            }
        };
        let now = OffsetDateTime::now_utc();
        let outcome = match cached.status_at(now) {
            TokenStatus::Disabled => Outcome::Disabled(cached),
            TokenStatus::Expired => Outcome::Expired(cached),
            TokenStatus::Active => {
                let missing = cached.scopes.missing(wanted.iter().copied());
                if missing.is_empty() {
                    self.note_use(&cached, now, ip);
                    Outcome::Valid(cached)
                } else {
                    Outcome::InsufficientScope {
                        token: cached,
                        missing,
                    }
                }
            }
        };
        Ok(outcome)
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
}
