//! GCRA, the generic cell rate algorithm, as plain arithmetic: the in-process limiter and the
//! Redis script both decide with it, so a check gives the same answer on either backend.
//!
//! Times are microseconds since the Unix epoch. A limit of `limit` per `duration` lets one
//! request through every `T = duration / limit`, with a burst of `limit`. `T` is rarely a whole
//! number of microseconds, and rounding it would let the error pile up request after request,
//! so a theoretical arrival time ([`Tat`]) keeps whole microseconds plus a remainder counted
//! in 1/`limit` µs. In those units ("ticks") `T` is exactly `duration` in microseconds.

/// Microseconds in a millisecond.
pub const US_PER_MS: u64 = 1_000;

/// A theoretical arrival time: when the limit is full again. `frac` is in 1/`limit` µs and
/// below `limit`. The default (the epoch) means "full", as does any time already past.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tat {
    pub us: u64,
    pub frac: u64,
}

/// One limit: `limit` requests per `duration_us`, both at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    limit: u64,
    duration_us: u64,
}

impl Rate {
    pub fn new(limit: u64, duration_ms: u64) -> Self {
        Self {
            limit: limit.max(1),
            duration_us: duration_ms.max(1).saturating_mul(US_PER_MS),
        }
    }

    pub fn limit(self) -> u64 {
        self.limit
    }

    pub fn duration_us(self) -> u64 {
        self.duration_us
    }

    /// What a request of `cost` adds to the TAT: `cost · T`, split as a [`Tat`] is. A cost
    /// above the limit can never pass, so it is capped at a value that still refuses; this
    /// keeps the numbers small enough for Redis's Lua, which counts in doubles.
    pub fn increment(self, cost: u64) -> Tat {
        let cost = cost.min(self.limit.saturating_add(1));
        let ticks = u128::from(cost) * u128::from(self.duration_us);
        let (us, frac) = div_rem(ticks, self.limit);
        Tat {
            us: u64::try_from(us).unwrap_or(u64::MAX),
            frac,
        }
    }

    /// The TAT a request starts from: the stored one, or now if that has passed.
    fn base(self, tat: Tat, now_us: u64) -> Tat {
        if tat.us < now_us {
            Tat {
                us: now_us,
                frac: 0,
            }
        } else {
            tat
        }
    }

    fn plus(self, tat: Tat, increment: Tat) -> Tat {
        // frac + increment.frac may pass `limit` (a carry) but is computed without overflow.
        let room = self.limit - increment.frac;
        if tat.frac >= room {
            Tat {
                us: tat.us.saturating_add(increment.us).saturating_add(1),
                frac: tat.frac - room,
            }
        } else {
            Tat {
                us: tat.us.saturating_add(increment.us),
                frac: tat.frac + increment.frac,
            }
        }
    }

    /// Whether a TAT at most one duration ahead of now: the GCRA condition.
    fn within_burst(self, tat: Tat, now_us: u64) -> bool {
        let ahead = tat.us - now_us;
        ahead < self.duration_us || (ahead == self.duration_us && tat.frac == 0)
    }
}

/// Division of 128-bit ticks, on the cheap 64-bit instruction whenever they fit.
fn div_rem(ticks: u128, by: u64) -> (u128, u64) {
    match u64::try_from(ticks) {
        Ok(small) => (u128::from(small / by), small % by),
        Err(_) => (ticks / u128::from(by), (ticks % u128::from(by)) as u64),
    }
}

/// Tries a request of `cost` at `now_us` against `tat`. Returns whether it passes and the TAT
/// after it (unchanged when it does not pass, and for cost 0, which always passes).
pub fn attempt(rate: Rate, tat: Tat, now_us: u64, cost: u64) -> (bool, Tat) {
    if cost == 0 {
        return (true, tat);
    }
    if cost > rate.limit {
        return (false, tat);
    }
    let new = rate.plus(rate.base(tat, now_us), rate.increment(cost));
    if rate.within_burst(new, now_us) {
        (true, new)
    } else {
        (false, tat)
    }
}

/// How many more requests of cost 1 would pass at `now_us`.
pub fn remaining(rate: Rate, tat: Tat, now_us: u64) -> u64 {
    let base = rate.base(tat, now_us);
    let ahead_us = base.us - now_us;
    if ahead_us >= rate.duration_us {
        return 0;
    }
    // (duration − ahead) in ticks, over T = duration_us ticks.
    let slack =
        u128::from(rate.duration_us - ahead_us) * u128::from(rate.limit) - u128::from(base.frac);
    let (n, _) = div_rem(slack, rate.duration_us);
    n as u64
}

/// When the limit is full again, in µs since the epoch (rounded up: at that instant it is full).
pub fn reset_us(rate: Rate, tat: Tat, now_us: u64) -> u64 {
    let base = rate.base(tat, now_us);
    base.us.saturating_add(u64::from(base.frac > 0))
}

/// How long a refused request of `cost` must wait until it would pass, in µs (rounded up).
/// A cost above the limit never passes: its answer is the whole duration, the longest that
/// any request that can pass ever waits.
pub fn retry_after_us(rate: Rate, tat: Tat, now_us: u64, cost: u64) -> u64 {
    if cost > rate.limit {
        return rate.duration_us;
    }
    let due = rate.plus(rate.base(tat, now_us), rate.increment(cost));
    if rate.within_burst(due, now_us) {
        return 0;
    }
    (due.us - now_us - rate.duration_us) + u64::from(due.frac > 0)
}

/// Microseconds to whole milliseconds, rounded up (a client that waits that long succeeds).
pub fn ms_ceil(us: u64) -> u64 {
    us.div_ceil(US_PER_MS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: u64 = 1_700_000_000_000_000;

    #[test]
    fn a_fresh_limit_admits_its_burst_at_once_then_one_per_interval() {
        let rate = Rate::new(3, 3_000); // T = 1 s
        let mut tat = Tat::default();
        for n in (0..3).rev() {
            let (ok, next) = attempt(rate, tat, NOW, 1);
            assert!(ok);
            tat = next;
            assert_eq!(remaining(rate, tat, NOW), n);
        }
        assert_eq!(attempt(rate, tat, NOW, 1), (false, tat));
        assert_eq!(retry_after_us(rate, tat, NOW, 1), 1_000_000);
        assert_eq!(reset_us(rate, tat, NOW), NOW + 3_000_000);
        assert!(!attempt(rate, tat, NOW + 999_999, 1).0);
        let (ok, tat) = attempt(rate, tat, NOW + 1_000_000, 1);
        assert!(ok);
        assert!(!attempt(rate, tat, NOW + 1_000_000, 1).0);
    }

    #[test]
    fn an_interval_that_is_no_whole_number_of_microseconds_does_not_drift() {
        // T = 1/3 µs·1000: 1 000 ms / 3 000. Rounding T would gain or lose a request per few
        // thousand; exact ticks give precisely `limit` per duration, forever.
        let rate = Rate::new(3_000, 1_000);
        let mut tat = Tat::default();
        let mut admitted = 0u64;
        for second in 0..100u64 {
            let now = NOW + second * 1_000_000;
            loop {
                let (ok, next) = attempt(rate, tat, now, 1);
                if !ok {
                    break;
                }
                tat = next;
                admitted += 1;
            }
        }
        assert_eq!(admitted, 3_000 * 100);
    }

    #[test]
    fn cost_zero_passes_and_changes_nothing_even_when_exhausted() {
        let rate = Rate::new(1, 1_000);
        let (_, tat) = attempt(rate, Tat::default(), NOW, 1);
        assert_eq!(attempt(rate, tat, NOW, 0), (true, tat));
        assert_eq!(remaining(rate, tat, NOW), 0);
    }

    #[test]
    fn a_cost_above_the_limit_never_passes_and_waits_the_duration() {
        let rate = Rate::new(5, 2_000);
        assert!(!attempt(rate, Tat::default(), NOW, 6).0);
        assert!(!attempt(rate, Tat::default(), NOW + 10_000_000_000, 6).0);
        assert_eq!(retry_after_us(rate, Tat::default(), NOW, 6), 2_000_000);
        assert!(attempt(rate, Tat::default(), NOW, 5).0);
        let inc = rate.increment(u64::MAX);
        assert_eq!(inc, rate.increment(6));
    }

    #[test]
    fn extreme_numbers_do_not_overflow() {
        let rate = Rate::new(u64::MAX, 2_592_000_000);
        let (ok, tat) = attempt(rate, Tat::default(), u64::MAX / 2, u64::MAX);
        assert!(ok);
        assert!(remaining(rate, tat, u64::MAX / 2) == 0);
        let rate = Rate::new(1, 2_592_000_000);
        assert!(!attempt(rate, Tat::default(), NOW, u64::MAX).0);
    }

    fn rates() -> impl Strategy<Value = Rate> {
        (
            1u64..=200,
            prop_oneof![1_000u64..=5_000, Just(2_592_000_000u64)],
        )
            .prop_map(|(limit, ms)| Rate::new(limit, ms))
    }

    proptest! {
        /// At one instant, from any state, at most `limit` requests pass; from a full limit,
        /// exactly `limit`, and `remaining` counted them right beforehand.
        #[test]
        fn one_instant_admits_at_most_the_burst(rate in rates(), ahead in 0u64..10_000_000, frac in 0u64..200) {
            let frac = frac % rate.limit();
            for (start, full) in [(Tat::default(), true), (Tat { us: NOW + ahead, frac }, false)] {
                let mut tat = start;
                let promised = remaining(rate, tat, NOW);
                let mut admitted = 0;
                while let (true, next) = attempt(rate, tat, NOW, 1) {
                    tat = next;
                    admitted += 1;
                    prop_assert!(admitted <= rate.limit());
                }
                prop_assert_eq!(admitted, promised);
                if full {
                    prop_assert_eq!(admitted, rate.limit());
                }
            }
        }

        /// Between any two passing requests at times a ≤ b, everything that passed in [a, b]
        /// costs at most limit + (b − a)/T. With b − a < duration that is at most 2·limit − 1.
        #[test]
        fn any_window_admits_at_most_burst_plus_refill(
            rate in rates(),
            steps in prop::collection::vec((0u64..400_000, 0u64..4), 1..300),
        ) {
            let mut tat = Tat::default();
            let mut now = NOW;
            let mut passed: Vec<(u64, u64)> = Vec::new();
            for (gap, cost) in steps {
                now += gap;
                let (ok, next) = attempt(rate, tat, now, cost);
                if ok {
                    tat = next;
                    if cost > 0 {
                        passed.push((now, cost));
                    }
                }
            }
            let (limit, d) = (u128::from(rate.limit()), u128::from(rate.duration_us()));
            for i in 0..passed.len() {
                let mut sum = 0u128;
                for &(t, cost) in &passed[i..] {
                    sum += u128::from(cost);
                    let width = u128::from(t - passed[i].0);
                    prop_assert!(sum * d <= limit * d + width * limit, "{sum} passed in {width} µs");
                    if width < d {
                        prop_assert!(sum < 2 * limit);
                    }
                }
            }
        }

        /// A request of cost c passes exactly when c ≤ remaining, and `retry_after` is exact to
        /// the microsecond.
        #[test]
        fn cost_remaining_and_retry_after_agree(
            rate in rates(),
            used in 0u64..400,
            cost in 1u64..250,
            later in 0u64..3_000_000,
        ) {
            let mut tat = Tat::default();
            for _ in 0..used {
                tat = attempt(rate, tat, NOW, 1).1;
            }
            let now = NOW + later;
            let (ok, _) = attempt(rate, tat, now, cost);
            prop_assert_eq!(ok, cost <= remaining(rate, tat, now));
            if !ok && cost <= rate.limit() {
                let wait = retry_after_us(rate, tat, now, cost);
                prop_assert!(wait > 0);
                prop_assert!(attempt(rate, tat, now + wait, cost).0);
                prop_assert!(!attempt(rate, tat, now + wait - 1, cost).0);
            }
            prop_assert!(reset_us(rate, tat, now) >= now);
            prop_assert_eq!(remaining(rate, tat, reset_us(rate, tat, now)), rate.limit());
        }

        /// The split increment Redis adds is the same amount the in-process path adds.
        #[test]
        fn the_split_increment_adds_the_same(rate in rates(), cost in 1u64..300, us in 0u64..1_000_000, frac in 0u64..200) {
            let frac = frac % rate.limit();
            let start = Tat { us: NOW + us, frac };
            let inc = rate.increment(cost);
            let mut sum = Tat { us: start.us + inc.us, frac: start.frac + inc.frac };
            if sum.frac >= rate.limit() {
                sum.us += 1;
                sum.frac -= rate.limit();
            }
            let (ok, after) = attempt(rate, start, NOW, cost);
            if ok {
                prop_assert_eq!(after, sum);
            }
        }
    }
}
