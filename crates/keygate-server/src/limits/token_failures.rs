//! Failed token authentications counted per client address, and the memory of which tokens a
//! refused address presented, so that a token presented again can be told from a fresh guess
//! (`auth::token` explains the policy this serves).

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::config::AuthLimits;
use crate::limits::limiter::FailureLimiter;

/// Failed token authentications per client address, and the tokens refused addresses
/// presented, so that one presented again can be told from a fresh guess.
pub struct AuthLimiter {
    failures: FailureLimiter<IpAddr>,
    refused: RefusedTokens,
}

impl AuthLimiter {
    pub fn new(limits: AuthLimits) -> Self {
        Self {
            failures: FailureLimiter::new(limits.per_ip, limits.window),
            refused: RefusedTokens::new(),
        }
    }

    /// Counts a failure of `ip`; how long it is refused for, if it now is.
    pub fn fail(&self, ip: &IpAddr) -> Option<Duration> {
        self.failures.fail(ip)
    }

    /// May `token`, which is not in memory, be looked up for `ip`? If not, how long the address
    /// is refused for.
    pub fn may_look_up(&self, ip: IpAddr, token: &str) -> Result<(), Duration> {
        let Some(wait) = self.failures.trial(&ip, LOOKUP_WHILE_REFUSED_EVERY) else {
            return Ok(());
        };
        if self.refused.came_back(ip, token)
            && self
                .failures
                .retrial(&ip, LOOKUP_WHILE_REFUSED_EVERY)
                .is_none()
        {
            return Ok(());
        }
        Err(wait)
    }
}

/// Which (address, token) pairs were refused a lookup lately: a fixed table of keyed 64-bit
/// fingerprints, one per slot, the newest refusal winning its slot. Fixed memory whatever floods
/// it; a flood of `n` guesses a second evicts a waiting client's entry within its retry interval
/// `t` with a chance of about `n·t / SLOTS` (a thousand guesses a second, one retry a second:
/// 1.5 %), and the key, random per process, keeps guesses from aiming at a slot.
struct RefusedTokens {
    slots: Box<[AtomicU64]>,
    key: std::collections::hash_map::RandomState,
}

const SLOTS: usize = 1 << 16;

impl RefusedTokens {
    fn new() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            key: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Was `token` refused for `ip` before (and is still remembered)? Remembers it either way.
    fn came_back(&self, ip: IpAddr, token: &str) -> bool {
        // Never 0, the value of an empty slot.
        let fingerprint = self.key.hash_one((ip, token)) | 1;
        let slot = &self.slots[(fingerprint >> 48) as usize % SLOTS];
        slot.swap(fingerprint, Ordering::Relaxed) == fingerprint
    }
}

/// How often a refused address may still have a token looked up that is not in memory, once
/// as a trial and once as a retrial.
const LOOKUP_WHILE_REFUSED_EVERY: Duration = Duration::from_secs(1);
