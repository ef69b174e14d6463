//! The counters verifications add to: one slot per token per minute, in a sharded map, so a
//! verification takes one shard's lock for an addition and never waits for I/O.

use std::sync::Arc;

use dashmap::DashMap;
use keygate_core::TokenId;

use super::{Counted, Counts, UsageDelta, MINUTE_MS};

struct Slot {
    tenant_id: Arc<str>,
    /// 32 bits: four billion verifications of one token in one minute on one node is out of
    /// reach, and the slot is half the size. Added with saturation all the same.
    counts: [u32; 7],
}

/// Counts not yet written. Keyed by minute as well as token, so a batch taken across a minute's
/// end still puts every verification into its own minute.
#[derive(Default)]
pub struct UsageCounter {
    slots: DashMap<(TokenId, i64), Slot>,
}

impl UsageCounter {
    /// Counts one verification of `token_id` at `now_ms` (Unix milliseconds).
    pub fn add(&self, token_id: &TokenId, tenant_id: &Arc<str>, now_ms: i64, outcome: Counted) {
        let minute = now_ms.div_euclid(MINUTE_MS);
        let mut slot = self
            .slots
            .entry((token_id.clone(), minute))
            .or_insert_with(|| Slot {
                tenant_id: tenant_id.clone(),
                counts: [0; 7],
            });
        let n = &mut slot.counts[outcome as usize];
        *n = n.saturating_add(1);
    }

    /// Takes every count out. A verification counted while this runs lands either in the batch
    /// or in a new slot for the next one, never in neither: each slot leaves the map under its
    /// shard's lock.
    pub fn take(&self) -> Vec<UsageDelta> {
        let mut out = Vec::with_capacity(self.slots.len());
        self.slots.retain(|(token_id, minute), slot| {
            out.push(UsageDelta {
                token_id: token_id.clone(),
                tenant_id: slot.tenant_id.clone(),
                minute_ms: minute * MINUTE_MS,
                counts: Counts(slot.counts.map(u64::from)),
            });
            false
        });
        // A burst of tokens (a cold start under load) must not keep its high-water mark
        // allocated for good; steady load keeps about the same number of slots.
        if self.slots.capacity() > 4 * out.len() + 4096 {
            self.slots.shrink_to_fit();
        }
        out
    }

    /// Puts back counts a failed write took out, so they go with the next batch.
    pub fn put_back(&self, batch: Vec<UsageDelta>) {
        for d in batch {
            let mut slot = self
                .slots
                .entry((d.token_id, d.minute_ms.div_euclid(MINUTE_MS)))
                .or_insert_with(|| Slot {
                    tenant_id: d.tenant_id,
                    counts: [0; 7],
                });
            for (a, b) in slot.counts.iter_mut().zip(d.counts.0) {
                *a = a.saturating_add(u32::try_from(b).unwrap_or(u32::MAX));
            }
        }
    }

    /// Token-minutes counted and not yet written.
    pub fn pending(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> TokenId {
        TokenId::from_stored(s.to_owned())
    }

    #[test]
    fn counts_by_token_minute_and_outcome() {
        let c = UsageCounter::default();
        let tenant: Arc<str> = "t1".into();
        let (a, b) = (id("kg_aaaaaaaaaaaaaaaa"), id("kg_bbbbbbbbbbbbbbbb"));
        c.add(&a, &tenant, 60_000, Counted::Valid);
        c.add(&a, &tenant, 119_999, Counted::Valid);
        c.add(&a, &tenant, 119_999, Counted::Expired);
        c.add(&a, &tenant, 120_000, Counted::Valid);
        c.add(&b, &tenant, 60_001, Counted::RateLimited);
        let mut batch = c.take();
        batch.sort_by(|x, y| {
            (x.token_id.as_str(), x.minute_ms).cmp(&(y.token_id.as_str(), y.minute_ms))
        });
        let got: Vec<(&str, i64, Counts)> = batch
            .iter()
            .map(|d| (d.token_id.as_str(), d.minute_ms, d.counts))
            .collect();
        assert_eq!(
            got,
            vec![
                (a.as_str(), 60_000, Counts([2, 0, 0, 0, 0, 1, 0])),
                (a.as_str(), 120_000, Counts([1, 0, 0, 0, 0, 0, 0])),
                (b.as_str(), 60_000, Counts([0, 1, 0, 0, 0, 0, 0])),
            ]
        );
        assert_eq!(c.pending(), 0);
        assert!(c.take().is_empty());
    }

    #[test]
    fn put_back_adds_to_what_came_since() {
        let c = UsageCounter::default();
        let tenant: Arc<str> = "t1".into();
        let a = id("kg_aaaaaaaaaaaaaaaa");
        c.add(&a, &tenant, 0, Counted::Valid);
        let batch = c.take();
        c.add(&a, &tenant, 1, Counted::Valid);
        c.add(&a, &tenant, 2, Counted::Disabled);
        c.put_back(batch);
        let batch = c.take();
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].counts, Counts([2, 0, 0, 0, 1, 0, 0]));
    }
}
