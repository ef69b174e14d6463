//! One check of several limits, all or nothing: every limit is tried against its stored
//! state, and the request passes only if each does. Both backends feed it the stored states
//! and commit what it returns, so they cannot disagree on a decision or a report.

use crate::ratelimit::decision::{Applied, Decision, LimitReport};
use crate::ratelimit::gcra::{self, Rate, Tat};

pub struct Evaluation {
    pub decision: Decision,
    /// The TAT each limit leaves behind, for the backend to store when the decision allows.
    pub after: Vec<Tat>,
}

/// `stored(i)` is the state of `limits[i]` before this request. A name given twice is
/// charged twice: its second entry starts from what the first left.
pub fn evaluate(limits: &[Applied<'_>], stored: impl Fn(usize) -> Tat, now_us: u64) -> Evaluation {
    let mut after: Vec<Tat> = Vec::with_capacity(limits.len());
    let mut reports = Vec::with_capacity(limits.len());
    let mut allowed = true;
    let mut retry_after_us = 0;
    for (i, limit) in limits.iter().enumerate() {
        let rate = Rate::new(limit.limit, limit.duration_ms);
        let base = limits[..i]
            .iter()
            .rposition(|earlier| earlier.name == limit.name)
            .map_or_else(|| stored(i), |j| after[j]);
        let (passes, tat) = gcra::attempt(rate, base, now_us, limit.cost);
        if !passes {
            allowed = false;
            retry_after_us =
                retry_after_us.max(gcra::retry_after_us(rate, base, now_us, limit.cost));
        }
        after.push(tat);
        reports.push(LimitReport {
            name: limit.name.into(),
            limit: limit.limit,
            duration_ms: limit.duration_ms,
            remaining: 0,
            reset_ms: 0,
            exceeded: !passes,
            auto_apply: limit.auto_apply,
        });
    }
    for (i, (limit, report)) in limits.iter().zip(&mut reports).enumerate() {
        let rate = Rate::new(limit.limit, limit.duration_ms);
        // A refused request charged nothing, so each limit reports its state as it was.
        let tat = if allowed { after[i] } else { stored(i) };
        report.remaining = gcra::remaining(rate, tat, now_us);
        let reset_ms = gcra::ms_ceil(gcra::reset_us(rate, tat, now_us));
        report.reset_ms = i64::try_from(reset_ms).unwrap_or(i64::MAX);
    }
    Evaluation {
        decision: Decision {
            allowed,
            reports,
            retry_after_ms: gcra::ms_ceil(retry_after_us),
        },
        after,
    }
}
