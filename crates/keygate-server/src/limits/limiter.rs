//! Counting failures per key: in a fixed window that starts at the first failure
//! ([`FailureLimiter`], for client addresses), or with a wait that doubles per failure
//! ([`BackoffLimiter`], for an account at an address), for the limits on failed logins and
//! failed token authentications.
//!
//! Kept in memory on each node: with several nodes behind a balancer, an attacker gets at most
//! the limit once per node, which still bounds guessing to a handful per window.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct FailureLimiter<K> {
    max: u32,
    window: Duration,
    entries: Mutex<HashMap<K, Window>>,
}

struct Window {
    start: Instant,
    failures: u32,
    /// When a refused key was last let through anyway, by [`FailureLimiter::trial`].
    last_trial: Option<Instant>,
    /// The same for [`FailureLimiter::retrial`], a budget of its own.
    last_retrial: Option<Instant>,
}

/// Beyond this many keys, expired windows are swept; if all are live, new keys go uncounted
/// rather than letting a flood of made-up names or addresses grow memory without bound.
const MAX_KEYS: usize = 100_000;

impl<K: Hash + Eq> FailureLimiter<K> {
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// How long `key` must wait, if it has used up its failures.
    pub fn blocked_for<Q>(&self, key: &Q) -> Option<Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entries = self.entries.lock().expect("limiter lock");
        self.wait(entries.get(key)?, Instant::now())
    }

    /// [`FailureLimiter::blocked_for`], except that a blocked key is let through once per
    /// `every`: a refused client address may still have its one valid token looked up, while
    /// a flood from it costs the database at most one query per `every`.
    pub fn trial<Q>(&self, key: &Q, every: Duration) -> Option<Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.let_through(key, every, |w| &mut w.last_trial)
    }

    /// [`FailureLimiter::trial`] on a second budget, for what a blocked key presents again
    /// after it was refused: a flood of fresh guesses takes every trial but never comes back,
    /// so it does not use this one up.
    pub fn retrial<Q>(&self, key: &Q, every: Duration) -> Option<Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.let_through(key, every, |w| &mut w.last_retrial)
    }

    fn let_through<Q>(
        &self,
        key: &Q,
        every: Duration,
        last: impl FnOnce(&mut Window) -> &mut Option<Instant>,
    ) -> Option<Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut entries = self.entries.lock().expect("limiter lock");
        let w = entries.get_mut(key)?;
        let now = Instant::now();
        let wait = self.wait(w, now)?;
        let last = last(w);
        if last.is_some_and(|t| now.duration_since(t) < every) {
            return Some(wait);
        }
        *last = Some(now);
        None
    }

    pub fn record_failure<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.fail(key);
    }

    /// Records one more failure of `key`, unless it has used up its failures already: then
    /// how long it must wait. One lock for both, on the path every failed attempt takes.
    pub fn fail<Q>(&self, key: &Q) -> Option<Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut entries = self.entries.lock().expect("limiter lock");
        let now = Instant::now();
        if let Some(w) = entries.get_mut(key) {
            if let Some(wait) = self.wait(w, now) {
                return Some(wait);
            }
            if now.duration_since(w.start) >= self.window {
                *w = Window {
                    start: now,
                    failures: 0,
                    last_trial: None,
                    last_retrial: None,
                };
            }
            w.failures += 1;
            return None;
        }
        if entries.len() >= MAX_KEYS {
            entries.retain(|_, w| now.duration_since(w.start) < self.window);
            if entries.len() >= MAX_KEYS {
                return None;
            }
        }
        entries.insert(
            key.to_owned(),
            Window {
                start: now,
                failures: 1,
                last_trial: None,
                last_retrial: None,
            },
        );
        None
    }

    pub fn clear<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.lock().expect("limiter lock").remove(key);
    }

    fn wait(&self, w: &Window, now: Instant) -> Option<Duration> {
        let elapsed = now.duration_since(w.start);
        (w.failures >= self.max && elapsed < self.window).then(|| self.window - elapsed)
    }
}

/// Failures per key with growing waits: the first `free` failures cost nothing; after them,
/// each attempt must wait `first_delay` after the latest failure, doubled for every further
/// failure, at most `max_delay`. A key is forgotten on [`BackoffLimiter::clear`] or a day after
/// its latest failure.
pub struct BackoffLimiter<K> {
    free: u32,
    first_delay: Duration,
    max_delay: Duration,
    entries: Mutex<HashMap<K, Backoff>>,
}

struct Backoff {
    failures: u32,
    latest: Instant,
}

/// Long enough that waiting out the longest delay does not buy fresh free failures.
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

impl<K: Hash + Eq> BackoffLimiter<K> {
    pub fn new(free: u32, first_delay: Duration, max_delay: Duration) -> Self {
        Self {
            free,
            first_delay,
            max_delay,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// How long `key` must still wait before its next attempt, if at all.
    pub fn blocked_for<Q>(&self, key: &Q) -> Option<Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entries = self.entries.lock().expect("limiter lock");
        let b = entries.get(key)?;
        let ready = b.latest + self.delay_after(b.failures)?;
        ready.checked_duration_since(Instant::now())
    }

    pub fn record_failure<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut entries = self.entries.lock().expect("limiter lock");
        let now = Instant::now();
        if let Some(b) = entries.get_mut(key) {
            if now.duration_since(b.latest) >= FORGET_AFTER {
                b.failures = 0;
            }
            b.failures = b.failures.saturating_add(1);
            b.latest = now;
            return;
        }
        if entries.len() >= MAX_KEYS {
            // Keys whose wait is over lose only their record of failures; if every key is
            // still waiting, a new one goes uncounted (the limit per address still holds).
            entries.retain(|_, b| now.duration_since(b.latest) < self.max_delay);
            if entries.len() >= MAX_KEYS {
                return;
            }
        }
        entries.insert(
            key.to_owned(),
            Backoff {
                failures: 1,
                latest: now,
            },
        );
    }

    pub fn clear<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.lock().expect("limiter lock").remove(key);
    }

    /// The wait after the `failures`-th failure, if it is beyond the free ones.
    fn delay_after(&self, failures: u32) -> Option<Duration> {
        let beyond = failures.checked_sub(self.free)?;
        let doubled = self
            .first_delay
            .checked_mul(1u32.checked_shl(beyond).unwrap_or(u32::MAX))
            .unwrap_or(self.max_delay);
        Some(doubled.min(self.max_delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_blocked_after_its_failures_and_others_are_not() {
        let l = FailureLimiter::<String>::new(3, Duration::from_secs(60));
        for _ in 0..2 {
            l.record_failure("a");
        }
        assert!(l.blocked_for("a").is_none());
        l.record_failure("a");
        let wait = l.blocked_for("a").expect("blocked after 3 failures");
        assert!(wait <= Duration::from_secs(60) && wait > Duration::from_secs(50));
        assert!(l.blocked_for("b").is_none());
        l.clear("a");
        assert!(l.blocked_for("a").is_none());
    }

    #[test]
    fn fail_answers_the_wait_once_the_failures_are_used_up() {
        let ip: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        let l = FailureLimiter::new(2, Duration::from_secs(60));
        assert_eq!(l.fail(&ip), None);
        assert_eq!(l.fail(&ip), None);
        assert!(l.fail(&ip).is_some(), "the third failure is refused");
        assert!(l.blocked_for(&ip).is_some());
    }

    #[test]
    fn a_blocked_key_gets_one_trial_per_interval() {
        let l = FailureLimiter::<String>::new(1, Duration::from_secs(60));
        let every = Duration::from_millis(50);
        assert_eq!(l.trial("a", every), None, "not blocked");
        l.record_failure("a");
        assert_eq!(l.trial("a", every), None, "the first trial");
        assert!(l.trial("a", every).is_some(), "no second one at once");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(l.trial("a", every), None, "another after the interval");
        assert!(l.trial("a", every).is_some());
        assert!(l.blocked_for("a").is_some(), "still blocked throughout");
    }

    #[test]
    fn retrials_have_a_budget_of_their_own() {
        let l = FailureLimiter::<String>::new(1, Duration::from_secs(60));
        let every = Duration::from_secs(60);
        l.record_failure("a");
        assert_eq!(l.trial("a", every), None);
        assert!(l.trial("a", every).is_some(), "the trial is used up");
        assert_eq!(l.retrial("a", every), None, "the retrial is not");
        assert!(l.retrial("a", every).is_some());
    }

    #[test]
    fn backoff_doubles_after_the_free_failures_up_to_the_cap() {
        let l = BackoffLimiter::<String>::new(2, Duration::from_secs(1), Duration::from_secs(5));
        let waits: Vec<_> = (0..7).map(|n| l.delay_after(n)).collect();
        let s = |n| Some(Duration::from_secs(n));
        assert_eq!(waits, [None, None, s(1), s(2), s(4), s(5), s(5)]);
        assert_eq!(l.delay_after(u32::MAX), s(5));
        l.record_failure("a");
        l.record_failure("a");
        assert!(l.blocked_for("b").is_none());
        let wait = l.blocked_for("a").expect("waits after two failures");
        assert!(wait <= Duration::from_secs(1) && wait > Duration::from_millis(500));
        l.clear("a");
        assert!(l.blocked_for("a").is_none());
    }

    #[test]
    fn a_window_ends() {
        let l = FailureLimiter::<String>::new(1, Duration::from_millis(1));
        l.record_failure("a");
        std::thread::sleep(Duration::from_millis(5));
        assert!(l.blocked_for("a").is_none());
        assert_eq!(l.fail("a"), None, "a new window starts");
    }
}
