//! The in-process limiter: exact on one node. Each token's limits sit in one map entry, so
//! the entry's lock makes a check of several limits atomic.
//!
//! Memory stays bounded by the tokens in active use: a TAT in the past means the limit is
//! full, which is what a missing entry means too, so a sweep drops such entries.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use compact_str::CompactString;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use crate::ratelimit::decision::{Applied, Decision};
use crate::ratelimit::evaluate::{evaluate, Counts};
use crate::ratelimit::gcra::Tat;

/// How often the sweep runs.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Keys are ids of tokens that verified, not text a client picks, so a fast seeded hash will do.
type Buckets = DashMap<CompactString, Vec<Slot>, foldhash::fast::RandomState>;

/// One named limit of one token.
#[derive(Debug, Clone)]
struct Slot {
    name: CompactString,
    /// The limit the TAT's fraction was counted in.
    limit: u64,
    tat: Tat,
}

#[derive(Clone)]
pub struct LocalLimiter {
    buckets: Arc<Buckets>,
}

impl LocalLimiter {
    /// Within a Tokio runtime, a task sweeps every few seconds for as long as the limiter
    /// lives; outside one nothing sweeps.
    pub fn new() -> Self {
        let buckets = Arc::new(Buckets::default());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweep_while_alive(Arc::downgrade(&buckets)));
        }
        Self { buckets }
    }

    pub fn check(&self, token_id: &str, limits: &[Applied<'_>]) -> Decision {
        self.check_at(token_id, limits, now_us())
    }

    pub fn check_at(&self, token_id: &str, limits: &[Applied<'_>], now_us: u64) -> Decision {
        // A token already counted is found by its &str, without building a key. The guard
        // holds the entry's lock for the whole check.
        if let Some(mut slots) = self.buckets.get_mut(token_id) {
            return check_slots(&mut slots, limits, now_us);
        }
        match self.buckets.entry(CompactString::from(token_id)) {
            Entry::Occupied(mut entry) => check_slots(entry.get_mut(), limits, now_us),
            Entry::Vacant(entry) => {
                let mut slots = Vec::new();
                let decision = check_slots(&mut slots, limits, now_us);
                if !slots.is_empty() {
                    entry.insert(slots);
                }
                decision
            }
        }
    }

    /// Drops every limit that is full at `now_us`, and every token left with none.
    #[cfg(test)]
    pub fn sweep(&self, now_us: u64) {
        sweep(&self.buckets, now_us);
    }

    /// Tokens that have at least one limit in use.
    #[cfg(test)]
    pub fn tracked_tokens(&self) -> usize {
        self.buckets.len()
    }
}

fn check_slots(slots: &mut Vec<Slot>, limits: &[Applied<'_>], now_us: u64) -> Decision {
    let mut slots = Slots {
        slots,
        limits,
        now_us,
        found: [UNKNOWN; REMEMBERED],
    };
    evaluate(limits, &mut slots, now_us)
}

/// One token's slots during a check of `limits`.
struct Slots<'a, 'l> {
    slots: &'a mut Vec<Slot>,
    limits: &'a [Applied<'l>],
    now_us: u64,
    /// Where the first limits' slots are (index + 1, [`ABSENT`] or [`UNKNOWN`]), so that a
    /// commit does not search again for what the check found.
    found: [u8; REMEMBERED],
}

const REMEMBERED: usize = 8;
const UNKNOWN: u8 = 0;
const ABSENT: u8 = u8::MAX;

impl Slots<'_, '_> {
    fn find(&mut self, i: usize) -> Option<usize> {
        match self.found.get(i).copied() {
            Some(ABSENT) => return None,
            Some(UNKNOWN) | None => {}
            Some(at) => return Some(usize::from(at - 1)),
        }
        let name = self.limits[i].name;
        // Callers usually name a token's limits in the same order every time, so the slot at
        // the limit's own index is tried first.
        let at = match self.slots.get(i) {
            Some(slot) if slot.name == name => Some(i),
            _ => self.slots.iter().position(|slot| slot.name == name),
        };
        if let Some(remembered) = self.found.get_mut(i) {
            *remembered = match at.map(|at| u8::try_from(at + 1)) {
                None => ABSENT,
                Some(Ok(at)) if at != ABSENT => at,
                Some(_) => UNKNOWN,
            };
        }
        at
    }
}

impl Counts for Slots<'_, '_> {
    fn stored(&mut self, i: usize) -> Tat {
        match self.find(i).map(|at| &self.slots[at]) {
            // A changed limit counts the fraction in other units: drop it (under 1 µs).
            Some(slot) if slot.limit != self.limits[i].limit => Tat {
                us: slot.tat.us,
                frac: 0,
            },
            Some(slot) => slot.tat,
            None => Tat::default(),
        }
    }

    fn commit(&mut self, after: &[Tat]) {
        for (i, (limit, &tat)) in self.limits.iter().zip(after).enumerate() {
            match self.find(i) {
                Some(at) => {
                    let slot = &mut self.slots[at];
                    slot.tat = tat;
                    slot.limit = limit.limit;
                }
                // Only a limit that is not full needs remembering.
                None if tat.us >= self.now_us => {
                    self.slots.push(Slot {
                        name: limit.name.into(),
                        limit: limit.limit,
                        tat,
                    });
                    // A name given twice must find this slot the second time.
                    if let Some(remembered) = self.found.get_mut(i + 1..) {
                        remembered.fill(UNKNOWN);
                    }
                }
                None => {}
            }
        }
    }
}

fn sweep(buckets: &Buckets, now_us: u64) {
    buckets.retain(|_, slots| {
        slots.retain(|slot| slot.tat.us >= now_us);
        !slots.is_empty()
    });
}

async fn sweep_while_alive(buckets: Weak<Buckets>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(buckets) = buckets.upgrade() else {
            return;
        };
        sweep(&buckets, now_us());
    }
}

/// The wall clock in µs since the Unix epoch (so that `reset` can be told to clients).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000_000;

    fn limit(name: &str, limit: u64, duration_ms: u64, cost: u64) -> Applied<'_> {
        Applied {
            name,
            limit,
            duration_ms,
            cost,
            auto_apply: false,
        }
    }

    #[test]
    fn a_refusal_by_one_limit_charges_none() {
        let limiter = LocalLimiter::new();
        let wide = limit("wide", 10, 60_000, 1);
        let narrow = limit("narrow", 2, 60_000, 1);
        for remaining in [1, 0] {
            let d = limiter.check_at("tok_a", &[wide, narrow], NOW);
            assert!(d.allowed);
            assert_eq!(d.reports[1].remaining, remaining);
        }
        let refused = limiter.check_at("tok_a", &[wide, narrow], NOW);
        assert!(!refused.allowed);
        assert_eq!(
            refused
                .reports
                .iter()
                .map(|r| r.exceeded)
                .collect::<Vec<_>>(),
            [false, true]
        );
        assert_eq!(
            refused.reports[0].remaining, 8,
            "the wide limit was not charged"
        );
        assert_eq!(refused.retry_after_ms, 30_000);
        assert_eq!(refused.reports[1].reset_ms, (NOW / 1_000 + 60_000) as i64);
        let alone = limiter.check_at("tok_a", &[wide], NOW);
        assert_eq!(alone.reports[0].remaining, 7);
    }

    #[test]
    fn a_name_given_twice_is_charged_twice() {
        let limiter = LocalLimiter::new();
        let a = limit("a", 3, 1_000, 1);
        let d = limiter.check_at("tok_b", &[a, a], NOW);
        assert!(d.allowed);
        assert_eq!(d.reports[1].remaining, 1);
        assert!(!limiter.check_at("tok_b", &[a, a], NOW).allowed);
        assert!(limiter.check_at("tok_b", &[a], NOW).allowed);
    }

    #[test]
    fn tokens_and_names_are_separate() {
        let limiter = LocalLimiter::new();
        let one = limit("x", 1, 1_000, 1);
        assert!(limiter.check_at("tok_c", &[one], NOW).allowed);
        assert!(!limiter.check_at("tok_c", &[one], NOW).allowed);
        assert!(limiter.check_at("tok_d", &[one], NOW).allowed);
        assert!(
            limiter
                .check_at("tok_c", &[limit("y", 1, 1_000, 1)], NOW)
                .allowed
        );
    }

    #[test]
    fn cost_zero_reports_without_remembering() {
        let limiter = LocalLimiter::new();
        let d = limiter.check_at("tok_e", &[limit("x", 4, 1_000, 0)], NOW);
        assert!(d.allowed);
        assert_eq!(d.reports[0].remaining, 4);
        assert_eq!(limiter.tracked_tokens(), 0);
    }

    #[test]
    fn the_sweep_drops_full_limits_only() {
        let limiter = LocalLimiter::new();
        limiter.check_at("tok_f", &[limit("short", 1, 1_000, 1)], NOW);
        limiter.check_at(
            "tok_g",
            &[limit("short", 1, 1_000, 1), limit("long", 1, 60_000, 1)],
            NOW,
        );
        assert_eq!(limiter.tracked_tokens(), 2);
        limiter.sweep(NOW + 1_000_000);
        assert_eq!(
            limiter.tracked_tokens(),
            2,
            "a TAT of exactly now may still be charged"
        );
        limiter.sweep(NOW + 1_000_001);
        assert_eq!(limiter.tracked_tokens(), 1);
        let d = limiter.check_at("tok_g", &[limit("long", 1, 60_000, 1)], NOW + 1_000_001);
        assert!(!d.allowed, "the sweep kept the limit still in use");
        limiter.sweep(NOW + 60_000_001);
        assert_eq!(limiter.tracked_tokens(), 0);
    }

    #[test]
    fn threads_hammering_one_token_get_exactly_the_limit() {
        let limiter = LocalLimiter::new();
        let admitted = std::sync::atomic::AtomicU64::new(0);
        // One fixed instant: nothing refills while the threads run, however slow they are.
        let limits = [
            limit("day", 10_000, 86_400_000, 1),
            limit("burst", 25_000, 86_400_000, 2),
        ];
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..3_000 {
                        if limiter.check_at("tok_h", &limits, NOW).allowed {
                            admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        // "burst" allows 12 500 requests of cost 2, "day" 10 000: the smaller one binds.
        assert_eq!(admitted.into_inner(), 10_000);
        let d = limiter.check_at("tok_h", &limits, NOW);
        assert_eq!(d.reports[1].remaining, 25_000 - 20_000);
    }
}
