//! One check of several limits, all or nothing: every limit is tried against its stored
//! state, and the request passes only if each does. Both backends run their checks through
//! here, so they cannot disagree on a decision or a report.

use compact_str::CompactString;

use crate::ratelimit::decision::{Applied, Decision, LimitReport};
use crate::ratelimit::gcra::{self, Rate, Tat};

/// Where a backend keeps its TATs, as one check sees them.
pub trait Counts {
    /// The state of `limits[i]` before this request.
    fn stored(&mut self, i: usize) -> Tat;
    /// Stores the TAT each limit leaves behind; called only when the request passes.
    fn commit(&mut self, after: &[Tat]);
}

/// Checks of up to this many limits keep their working state on the stack.
const INLINE: usize = 8;

/// A name given twice is charged twice: its second entry starts from what the first left.
pub fn evaluate(limits: &[Applied<'_>], counts: &mut impl Counts, now_us: u64) -> Decision {
    let mut inline = [Tat::default(); INLINE];
    let mut heap = Vec::new();
    let after: &mut [Tat] = if limits.len() <= INLINE {
        &mut inline[..limits.len()]
    } else {
        heap.resize(limits.len(), Tat::default());
        &mut heap
    };
    let mut reports = Vec::with_capacity(limits.len());
    let mut allowed = true;
    let mut retry_after_us = 0;
    for (i, limit) in limits.iter().enumerate() {
        let rate = Rate::new(limit.limit, limit.duration_ms);
        let base = limits[..i]
            .iter()
            .rposition(|earlier| earlier.name == limit.name)
            .map_or_else(|| counts.stored(i), |j| after[j]);
        let (passes, tat) = gcra::attempt(rate, base, now_us, limit.cost);
        if !passes {
            allowed = false;
            retry_after_us =
                retry_after_us.max(gcra::retry_after_us(rate, base, now_us, limit.cost));
        }
        after[i] = tat;
        reports.push(LimitReport {
            name: CompactString::default(),
            limit: limit.limit,
            duration_ms: limit.duration_ms,
            remaining: gcra::remaining(rate, tat, now_us),
            reset_ms: reset_ms(rate, tat, now_us),
            exceeded: !passes,
            auto_apply: limit.auto_apply,
        });
        if let Some(report) = reports.last_mut() {
            // Written in place: a name built elsewhere and moved in costs a store-forwarding
            // stall per report, a tenth of a warm check.
            report.name.push_str(limit.name);
        }
    }
    if !allowed {
        // A refused request charged nothing, so each limit reports its state as it was.
        for (i, (limit, report)) in limits.iter().zip(&mut reports).enumerate() {
            let rate = Rate::new(limit.limit, limit.duration_ms);
            let tat = counts.stored(i);
            report.remaining = gcra::remaining(rate, tat, now_us);
            report.reset_ms = reset_ms(rate, tat, now_us);
        }
    }
    if allowed {
        counts.commit(after);
    }
    Decision {
        allowed,
        reports,
        retry_after_ms: gcra::ms_ceil(retry_after_us),
    }
}

fn reset_ms(rate: Rate, tat: Tat, now_us: u64) -> i64 {
    i64::try_from(gcra::ms_ceil(gcra::reset_us(rate, tat, now_us))).unwrap_or(i64::MAX)
}
