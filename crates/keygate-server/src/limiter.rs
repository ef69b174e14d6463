//! Counting failures per key (an account, a client address) in a fixed window that starts at
//! the first failure, for the limits on failed logins and failed token authentications.
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
        let mut entries = self.entries.lock().expect("limiter lock");
        let w = entries.get_mut(key)?;
        let now = Instant::now();
        let wait = self.wait(w, now)?;
        if w.last_trial.is_some_and(|t| now.duration_since(t) < every) {
            return Some(wait);
        }
        w.last_trial = Some(now);
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
    fn a_window_ends() {
        let l = FailureLimiter::<String>::new(1, Duration::from_millis(1));
        l.record_failure("a");
        std::thread::sleep(Duration::from_millis(5));
        assert!(l.blocked_for("a").is_none());
        assert_eq!(l.fail("a"), None, "a new window starts");
    }
}
