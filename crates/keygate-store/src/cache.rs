//! The verification cache: what a warm verify reads instead of the database.
//!
//! Positive entries map a token hash to what verification needs; negative entries remember
//! hashes that the store does not know, so a flood of made-up (but well-checksummed) tokens
//! costs one query each at most. Both are bounded (CLOCK-Pro eviction from `quick_cache`).
//!
//! Coherence with writes uses an epoch: a writer bumps it and then removes the entries it
//! changed; a loader reads it before its query, inserts, and re-reads it afterwards, removing
//! its own insert if a write happened in between. Whichever order the two interleave in, no
//! stale entry survives a completed write.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use compact_str::CompactString;
use keygate_core::network::AllowList;
use keygate_core::shared_copies::SharedCopies;
use keygate_core::usage::{RateLimit, Refill};
use keygate_core::{ScopeSet, TokenHash, TokenId};
use quick_cache::sync::Cache;
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::model::{status, TokenRecord, TokenStatus};

/// What verification needs to know about a token, held in memory. Kept small, because a node
/// holds up to `--cache-capacity` of them: the tenant, the owner and the scope set are shared
/// with every other cached token that has the same ones (see [`Interner`]).
#[derive(Debug)]
pub struct CachedToken {
    pub id: TokenId,
    pub tenant_id: Arc<str>,
    pub owner_id: Arc<str>,
    /// Inline up to 24 bytes, like the id.
    pub name: CompactString,
    pub scopes: Arc<ScopeSet>,
    pub enabled: bool,
    pub expires_at: Option<OffsetDateTime>,
    pub metadata: Option<Box<RawValue>>,
    /// The deployer's id for whoever holds the token (`externalId`).
    pub external_id: Option<Box<str>>,
    pub ratelimits: Box<[RateLimit]>,
    /// `None`: unlimited. What is left is not here: it lives in the database and in the
    /// credit ledger's leases.
    pub credits: Option<CachedCredits>,
    /// The networks it may be used from; `None`: anywhere. Boxed, so that the tokens without
    /// one (most) pay a pointer for it.
    pub allowed: Option<Box<AllowList>>,
    /// Unix second of the last use this node has queued for writing; at most one write-behind
    /// message per token per `--last-use-resolution` (`VerifierConfig::last_use_resolution`).
    pub(crate) last_use_queued: AtomicI64,
}

/// What a verification needs to charge a token's credits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedCredits {
    pub refill: Option<Refill>,
    /// The database's `credits_version` when this entry was loaded: a lease of another version
    /// is void. A change that bumps it also drops this entry from every node's cache.
    pub version: i64,
}

impl CachedToken {
    pub fn status_at(&self, now: OffsetDateTime) -> TokenStatus {
        status(self.enabled, self.expires_at, now)
    }

    /// Whether a request from `ip` (`None`: not known) may use the token.
    pub fn allows_ip(&self, ip: Option<std::net::IpAddr>) -> bool {
        self.allowed.as_ref().is_none_or(|l| l.allows(ip))
    }
}

/// Hands out one shared copy of each tenant id, owner id and scope set (see
/// [`SharedCopies`]). Only cache misses come here.
#[derive(Default)]
pub struct Interner {
    strings: SharedCopies<str>,
    scopes: SharedCopies<ScopeSet>,
}

impl Interner {
    /// The cache's form of a stored token.
    pub fn cached(&self, t: &TokenRecord) -> CachedToken {
        CachedToken {
            id: t.id.clone(),
            tenant_id: self
                .strings
                .of(&t.tenant_id, || Arc::from(t.tenant_id.as_str())),
            owner_id: self
                .strings
                .of(&t.owner_id, || Arc::from(t.owner_id.as_str())),
            name: CompactString::from(t.name.as_str()),
            scopes: self.scopes.of(&t.scopes, || Arc::new(t.scopes.clone())),
            enabled: t.enabled,
            expires_at: t.expires_at,
            metadata: t.metadata.clone(),
            external_id: t.external_id.as_deref().map(Box::from),
            ratelimits: t.ratelimits.clone().into_boxed_slice(),
            credits: t.credits.map(|c| CachedCredits {
                refill: c.refill,
                version: c.version,
            }),
            allowed: (!t.allowed_cidrs.is_empty())
                .then(|| Box::new(AllowList::new(&t.allowed_cidrs))),
            last_use_queued: AtomicI64::new(t.last_used_at.map_or(0, |t| t.unix_timestamp())),
        }
    }
}

pub struct TokenCache {
    positive: Cache<TokenHash, Arc<CachedToken>>,
    negative: Cache<TokenHash, ()>,
    epoch: AtomicU64,
}

pub enum Lookup {
    Hit(Arc<CachedToken>),
    KnownUnknown,
    Miss,
}

impl TokenCache {
    pub fn new(capacity: usize, negative_capacity: usize) -> Self {
        Self {
            positive: Cache::new(capacity.max(1)),
            negative: Cache::new(negative_capacity.max(1)),
            epoch: AtomicU64::new(0),
        }
    }

    pub fn get(&self, hash: &TokenHash) -> Lookup {
        if let Some(t) = self.positive.get(hash) {
            Lookup::Hit(t)
        } else if self.negative.get(hash).is_some() {
            Lookup::KnownUnknown
        } else {
            Lookup::Miss
        }
    }

    /// Read before a store lookup; pass to [`Self::fill`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Caches a store lookup's result unless a write raced with it.
    pub fn fill(&self, hash: TokenHash, found: Option<Arc<CachedToken>>, epoch_before: u64) {
        match found {
            Some(t) => self.positive.insert(hash, t),
            None => self.negative.insert(hash, ()),
        }
        if self.epoch.load(Ordering::SeqCst) != epoch_before {
            self.positive.remove(&hash);
            self.negative.remove(&hash);
        }
    }

    /// Call after a write to these tokens has committed.
    pub fn invalidate(&self, hashes: &[TokenHash]) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        for h in hashes {
            self.positive.remove(h);
            self.negative.remove(h);
        }
    }

    /// Forgets everything (after losing track of other nodes' changes for too long).
    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.positive.clear();
        self.negative.clear();
    }

    pub fn len(&self) -> usize {
        self.positive.len()
    }

    pub fn is_empty(&self) -> bool {
        self.positive.is_empty()
    }

    pub fn negative_len(&self) -> usize {
        self.negative.len()
    }
}
