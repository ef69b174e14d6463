//! Credits charged on the hot path without a database write per verification.
//!
//! The database holds each token's pool. A node takes a lease, a handful of credits moved out
//! of the pool in one transaction, and charges verifications against it in memory; what it
//! does not spend goes back to the pool once the token has been quiet for `idle_return`, and at
//! shutdown. A lease is void once the token's credits are set outright (its version moves on)
//! or a refill replaces the pool (its period moves on): the node forgets it, and the database
//! refuses to take it back. `docs/credits.md` has the design and why no more is ever spent
//! than was granted.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use keygate_core::TokenId;
use time::OffsetDateTime;

use crate::cache::CachedToken;
use crate::model::{unix_ms, CreditState};
use crate::store::{Lease, Store, StoreError};

#[derive(Debug, Clone, Copy)]
pub struct CreditConfig {
    /// The most credits one lease takes. Larger leases mean fewer database writes, but more
    /// credits held by one node that others cannot spend until it gives them back.
    pub lease_max: u64,
    /// A lease unused this long goes back to the pool.
    pub idle_return: Duration,
}

impl Default for CreditConfig {
    /// 1 000 credits a lease: about one lease write per 1 000 verifications of a busy token. At
    /// 100 a lease, the lease writes (a durable commit each) cost a busy token 40 % of its
    /// throughput on one SQLite node (BENCHMARKS.md). A node strands at most one lease per
    /// token, and only until the token has been quiet for a second, which is long enough that
    /// a token in steady use keeps its lease.
    fn default() -> Self {
        Self {
            lease_max: 1_000,
            idle_return: Duration::from_secs(1),
        }
    }
}

/// What charging a verification's cost came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// Charged; `remaining` is what the pool held when this node last leased, plus what this
    /// node still holds: exact with one node, high by what other nodes hold with several.
    Charged { remaining: u64 },
    /// Not enough credits for the cost; nothing was charged.
    Exhausted { remaining: u64 },
    /// The token's credits are unlimited (or it is gone, which its cache entry will learn).
    Unlimited,
}

/// Tokens are spread over this many locks, so that verifications of different tokens seldom
/// wait for each other.
const SHARDS: usize = 16;

/// A node's unspent leases. Cloning shares them.
#[derive(Clone)]
pub struct CreditLedger {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    config: CreditConfig,
    shard_of: RandomState,
    shards: [Mutex<HashMap<TokenId, Held>>; SHARDS],
    /// Returns that failed (the database was away), tried again on the next sweep.
    retry: Mutex<Vec<(TokenId, Current)>>,
    /// Credits taken out of leases to give back, and not yet written back.
    returning: AtomicU64,
    leases: AtomicU64,
    returns: AtomicU64,
}

/// One token's state on this node.
struct Held {
    lease: Option<Current>,
    last_use: Instant,
    /// Held while a lease is in flight, so one node asks for one token at a time.
    flight: Arc<tokio::sync::Mutex<()>>,
    /// Counts the leases that came back, so a spender that waited for one knows it did.
    generation: u64,
    /// The last lease got less than it asked for: the pool was empty.
    dry: bool,
}

#[derive(Debug, Clone, Copy)]
struct Current {
    left: u64,
    /// The pool right after this node's last lease.
    pool_after: u64,
    version: i64,
    period_ms: i64,
}

/// What a spend needs to know of the token.
#[derive(Clone, Copy)]
struct Charge {
    cost: u64,
    /// The cached token's credits version: a lease of an older one is void.
    version: i64,
    /// The start of the current refill period: a lease of an earlier one is void.
    period_floor: Option<i64>,
}

enum Next {
    Done(Spend),
    Lease(u64),
}

impl Current {
    fn usable_for(&self, c: &Charge) -> bool {
        // A lease of a newer version than the cached token's is valid: the cache has not
        // heard of the change yet, and the database handed the lease out under it.
        self.version >= c.version && c.period_floor.is_none_or(|f| self.period_ms >= f)
    }

    fn remaining(&self) -> u64 {
        self.pool_after.saturating_add(self.left)
    }

    fn take(&mut self, cost: u64) -> Spend {
        if self.left >= cost {
            self.left -= cost;
            Spend::Charged {
                remaining: self.remaining(),
            }
        } else {
            Spend::Exhausted {
                remaining: self.remaining(),
            }
        }
    }
}

impl Held {
    fn new() -> Self {
        Self {
            lease: None,
            last_use: Instant::now(),
            flight: Arc::new(tokio::sync::Mutex::new(())),
            generation: 0,
            dry: false,
        }
    }

    /// The lease, unless it is void for this charge; a void one is forgotten.
    fn valid(&mut self, c: &Charge) -> Option<&mut Current> {
        if self.lease.is_some_and(|l| !l.usable_for(c)) {
            self.lease = None;
        }
        self.lease.as_mut()
    }
}

impl CreditLedger {
    /// Starts the task that returns idle leases, on the current runtime; it ends when the last
    /// clone of the ledger is dropped.
    pub fn start(store: Arc<dyn Store>, config: CreditConfig) -> Self {
        let inner = Arc::new(Inner {
            store,
            config,
            shard_of: RandomState::new(),
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            retry: Mutex::new(Vec::new()),
            returning: AtomicU64::new(0),
            leases: AtomicU64::new(0),
            returns: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&inner);
        let every = (config.idle_return / 4).max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                inner.return_idle().await;
            }
        });
        Self { inner }
    }

    pub fn config(&self) -> CreditConfig {
        self.inner.config
    }

    /// Charges `cost` credits to the token. A cost of 0 charges nothing and always passes.
    /// Errors only when a lease was needed and the database could not give one.
    pub async fn spend(
        &self,
        token: &CachedToken,
        cost: u64,
        now: OffsetDateTime,
    ) -> Result<Spend, StoreError> {
        let Some(credits) = token.credits else {
            return Ok(Spend::Unlimited);
        };
        let charge = Charge {
            cost,
            version: credits.version,
            period_floor: credits.refill.map(|r| unix_ms(r.period_start(now))),
        };
        if let Some((done, prefetch)) = self.inner.charge_held(&token.id, &charge) {
            if let Some(turn) = prefetch {
                self.prefetch(&token.id, charge, now, turn);
            }
            return Ok(done);
        }
        self.spend_leasing(&token.id, charge, now).await
    }

    /// Takes the token's next lease in the background while the current one still lasts:
    /// otherwise every verification of a busy token waited for each lease's write (a durable
    /// commit) when the lease ran out, and the token's throughput halved (BENCHMARKS.md).
    fn prefetch(
        &self,
        id: &TokenId,
        charge: Charge,
        now: OffsetDateTime,
        turn: tokio::sync::OwnedMutexGuard<()>,
    ) {
        let inner = self.inner.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let _turn = turn;
            let want = inner.prefetch_size(&id, &charge);
            if want == 0 {
                return;
            }
            match inner.store.lease_credits(&id, want, now).await {
                Ok(lease) => {
                    inner.leases.fetch_add(1, Ordering::Relaxed);
                    inner.settle(&id, &Charge { cost: 0, ..charge }, want, lease);
                }
                // The verification that finds the lease empty asks again, and reports it.
                Err(e) => tracing::debug!(error = %e, token = %id, "prefetching credits failed"),
            }
        });
    }

    /// Credits this node holds unspent for the token.
    pub fn unspent(&self, id: &TokenId) -> u64 {
        let shard = self.inner.shard(id);
        shard.get(id).and_then(|h| h.lease).map_or(0, |l| l.left)
    }

    /// [`CreditLedger::unspent`] for a token whose stored credits are `stored`: none when what
    /// this node holds is void (of an older version or refill period).
    pub fn unspent_of(&self, id: &TokenId, stored: &CreditState, now: OffsetDateTime) -> u64 {
        let charge = Charge {
            cost: 0,
            version: stored.version,
            period_floor: stored.refill.map(|r| unix_ms(r.period_start(now))),
        };
        let shard = self.inner.shard(id);
        shard
            .get(id)
            .and_then(|h| h.lease)
            .filter(|l| l.usable_for(&charge))
            .map_or(0, |l| l.left)
    }

    /// Gives every unspent lease back to the pool; for shutdown, after the last verification.
    pub async fn return_all(&self) {
        // Leases in flight land first: one that landed after the drain (a prefetch) would
        // hold credits nobody gives back.
        let flights: Vec<_> = self
            .inner
            .shards
            .iter()
            .flat_map(|shard| {
                let shard = shard.lock().expect("credit ledger lock");
                shard.values().map(|h| h.flight.clone()).collect::<Vec<_>>()
            })
            .collect();
        for flight in flights {
            drop(flight.lock().await);
        }
        let mut back = Vec::new();
        for shard in &self.inner.shards {
            let mut shard = shard.lock().expect("credit ledger lock");
            for (id, h) in shard.drain() {
                self.inner.take_back(&mut back, id, h.lease);
            }
        }
        self.inner.give_back(back).await;
    }

    /// Leases that took credits so far: each is one write transaction. (A lease that finds the
    /// pool empty is a read, and not counted.)
    pub fn leases(&self) -> u64 {
        self.inner.leases.load(Ordering::Relaxed)
    }

    /// Returns written to the database so far.
    pub fn returns(&self) -> u64 {
        self.inner.returns.load(Ordering::Relaxed)
    }

    /// Credits of all tokens on their way back to the database: no longer held, not yet in
    /// the pool (a return waiting to be retried included).
    pub fn returning(&self) -> u64 {
        self.inner.returning.load(Ordering::SeqCst)
    }

    async fn spend_leasing(
        &self,
        id: &TokenId,
        charge: Charge,
        now: OffsetDateTime,
    ) -> Result<Spend, StoreError> {
        let (flight, arrived) = {
            let mut shard = self.inner.shard(id);
            let held = held_mut(&mut shard, id);
            (held.flight.clone(), held.generation)
        };
        let turn = flight.lock_owned().await;
        let want = match self.inner.after_waiting(id, &charge, arrived) {
            Next::Done(spend) => return Ok(spend),
            Next::Lease(want) => want,
        };
        // Its own task, so that a caller that stops waiting (a client that hung up) never
        // loses a lease the database has already handed out.
        let inner = self.inner.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let _turn = turn;
            let lease = inner.store.lease_credits(&id, want, now).await?;
            if lease.is_some_and(|l| l.granted > 0) {
                inner.leases.fetch_add(1, Ordering::Relaxed);
            }
            Ok(inner.settle(&id, &charge, want, lease))
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("a credit lease did not finish: {e}")))?
    }
}

fn held_mut<'a>(shard: &'a mut HashMap<TokenId, Held>, id: &TokenId) -> &'a mut Held {
    if !shard.contains_key(id) {
        shard.insert(id.clone(), Held::new());
    }
    shard.get_mut(id).expect("inserted above")
}

impl Inner {
    fn shard(&self, id: &TokenId) -> MutexGuard<'_, HashMap<TokenId, Held>> {
        let i = (self.shard_of.hash_one(id) as usize) % SHARDS;
        self.shards[i].lock().expect("credit ledger lock")
    }

    /// The warm path: the lease covers the cost. No await, no allocation. With the charge, the
    /// lease turn for a prefetch, when the lease is down to less than half of the next one and
    /// no lease is in flight.
    fn charge_held(
        &self,
        id: &TokenId,
        c: &Charge,
    ) -> Option<(Spend, Option<tokio::sync::OwnedMutexGuard<()>>)> {
        let now = Instant::now();
        let mut shard = self.shard(id);
        let held = shard.get_mut(id)?;
        let dry = held.dry;
        let lease = held.valid(c)?;
        if lease.left < c.cost {
            return None;
        }
        let spend = lease.take(c.cost);
        let running_low = !dry
            && lease.pool_after > 0
            && lease.left.saturating_mul(2) < self.next_lease(lease.pool_after);
        held.last_use = now;
        let prefetch = if running_low {
            held.flight.clone().try_lock_owned().ok()
        } else {
            None
        };
        Some((spend, prefetch))
    }

    /// How much a prefetch asks for: the next lease, unless the lease it was meant to extend
    /// is gone (void, or returned) or has been extended meanwhile.
    fn prefetch_size(&self, id: &TokenId, c: &Charge) -> u64 {
        let mut shard = self.shard(id);
        let Some(held) = shard.get_mut(id) else {
            return 0;
        };
        let Some(lease) = held.valid(c) else {
            return 0;
        };
        let next = self.next_lease(lease.pool_after);
        if lease.left.saturating_mul(2) < next {
            next
        } else {
            0
        }
    }

    /// With this token's lease turn: charge if a lease that came meanwhile covers the cost,
    /// refuse if it found the pool empty, or say how much to lease.
    fn after_waiting(&self, id: &TokenId, c: &Charge, arrived: u64) -> Next {
        let mut shard = self.shard(id);
        let held = held_mut(&mut shard, id);
        held.last_use = Instant::now();
        let others_found_dry = held.generation != arrived && held.dry;
        let Some(lease) = held.valid(c) else {
            return Next::Lease(if c.cost == 0 {
                0
            } else {
                c.cost.max(self.first_lease())
            });
        };
        // A spender that queued behind a lease which found the pool empty is refused on that
        // answer: otherwise every one of them would ask the database again.
        if lease.left >= c.cost || others_found_dry {
            return Next::Done(lease.take(c.cost));
        }
        Next::Lease((c.cost - lease.left).max(self.next_lease(lease.pool_after)))
    }

    /// Before this node knows the pool: a small lease, so that a node that is not busy does
    /// not take what busy ones need.
    fn first_lease(&self) -> u64 {
        (self.config.lease_max / 8).max(1)
    }

    /// Leases shrink with the pool, so the last credits are not all stranded on one node.
    fn next_lease(&self, pool: u64) -> u64 {
        (pool / 8).clamp(1, self.config.lease_max.max(1))
    }

    /// A lease came back: keep it and charge from it.
    fn settle(&self, id: &TokenId, c: &Charge, want: u64, lease: Option<Lease>) -> Spend {
        let mut shard = self.shard(id);
        let Some(l) = lease else {
            shard.remove(id);
            return Spend::Unlimited;
        };
        let held = held_mut(&mut shard, id);
        held.generation += 1;
        held.dry = l.granted < want;
        held.last_use = Instant::now();
        let fresh = Current {
            left: l.granted,
            pool_after: l.pool_after,
            version: l.version,
            period_ms: l.period_ms,
        };
        let current = match &mut held.lease {
            Some(h) if (h.version, h.period_ms) == (l.version, l.period_ms) => {
                h.left += l.granted;
                h.pool_after = l.pool_after;
                h
            }
            // A newer lease is already here (taken while this one was in flight): this one is
            // void in the database too, so it is dropped.
            Some(h) if (h.version, h.period_ms) > (l.version, l.period_ms) => h,
            // Anything held from before is void now: the lease shows the pool moved on.
            slot => slot.insert(fresh),
        };
        current.take(c.cost)
    }

    /// Takes out the leases unused for `idle_return` (and forgets quiet tokens), then gives
    /// them back.
    async fn return_idle(&self) {
        let now = Instant::now();
        let idle = self.config.idle_return;
        let mut back = Vec::new();
        for shard in &self.shards {
            let mut shard = shard.lock().expect("credit ledger lock");
            shard.retain(|id, h| {
                // A lease in flight will land in this entry: leave it be.
                if now.duration_since(h.last_use) < idle || h.flight.try_lock().is_err() {
                    return true;
                }
                self.take_back(&mut back, id.clone(), h.lease);
                false
            });
        }
        self.give_back(back).await;
    }

    /// Counted as returning from the moment it leaves the ledger, under its shard's lock, so
    /// that a credit is always either held or returning until it is back.
    fn take_back(&self, back: &mut Vec<(TokenId, Current)>, id: TokenId, lease: Option<Current>) {
        if let Some(l) = lease.filter(|l| l.left > 0) {
            self.returning.fetch_add(l.left, Ordering::SeqCst);
            back.push((id, l));
        }
    }

    async fn give_back(&self, mut back: Vec<(TokenId, Current)>) {
        back.append(&mut self.retry.lock().expect("credit retry lock"));
        let mut failed = Vec::new();
        for (id, l) in back {
            match self
                .store
                .return_credits(&id, l.left, l.version, l.period_ms)
                .await
            {
                Ok(()) => {
                    self.returns.fetch_add(1, Ordering::Relaxed);
                    self.returning.fetch_sub(l.left, Ordering::SeqCst);
                }
                Err(e) => {
                    tracing::warn!(error = %e, token = %id, "returning unspent credits failed; will retry");
                    failed.push((id, l));
                }
            }
        }
        self.retry.lock().expect("credit retry lock").extend(failed);
    }
}
