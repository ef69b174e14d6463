//! Checking the token a request presents, with failed attempts counted per client address:
//! beyond `AuthLimits::per_ip` failures in a window, further failures from that address are
//! answered 429 `rate_limited` with `Retry-After`, and of its tokens that are not in memory only
//! two a second are looked up in the database: the first one presented after a second (the
//! trial), and the first one presented again after it was refused (the retrial). A client behind
//! an address that a flood of made-up tokens shares (one NAT) retries its token, which the flood's
//! fresh guesses never do: the retrial lets it through at its second try, while the flood costs
//! at most two queries a second. Tokens in memory are answered as always, so a valid token in
//! memory is never slowed, not even one sent from an address that an attacker shares.
//!
//! A failure is a token that is malformed, has a bad checksum or is unknown, or an
//! `Authorization` header that holds no usable token. A disabled or expired token, or one
//! without the scope, is a real token and not a guess: it is not counted.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keygate_store::Outcome;

use crate::error::{ApiError, ApiResult};
use crate::limiter::FailureLimiter;
use crate::state::AppState;

#[derive(Debug, Clone, Copy)]
pub struct AuthLimits {
    pub per_ip: u32,
    pub window: Duration,
}

impl Default for AuthLimits {
    fn default() -> Self {
        Self {
            per_ip: 100,
            window: Duration::from_secs(60),
        }
    }
}

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

    /// May `token`, which is not in memory, be looked up for `ip`? If not, how long the address
    /// is refused for.
    fn may_look_up(&self, ip: IpAddr, token: &str) -> Result<(), Duration> {
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

/// The verifier's answer for `token`, or 429 if its address has failed too often.
pub async fn verify(
    state: &AppState,
    token: &str,
    wanted: &[&str],
    ip: Option<IpAddr>,
) -> ApiResult<Outcome> {
    let outcome = state
        .verifier
        .verify_or(token, wanted, ip, || refuse_if_blocked(state, ip, token))
        .await?;
    if matches!(outcome, Outcome::Malformed | Outcome::NotFound) {
        count_failure(state, ip)?;
    }
    Ok(outcome)
}

/// A request whose credentials could not even be read (an `Authorization` header with no
/// token in it): `invalid_token`, or `rate_limited` once the address has failed too often.
pub fn unusable(state: &AppState, ip: Option<IpAddr>) -> ApiError {
    match count_failure(state, ip) {
        Ok(()) => ApiError::InvalidToken,
        Err(e) => e,
    }
}

fn count_failure(state: &AppState, ip: Option<IpAddr>) -> ApiResult<()> {
    match ip.and_then(|ip| state.auth_limiter.failures.fail(&ip)) {
        Some(wait) => Err(rate_limited(wait)),
        None => Ok(()),
    }
}

/// How often a refused address may still have a token looked up that is not in memory, once
/// as a trial and once as a retrial.
const LOOKUP_WHILE_REFUSED_EVERY: Duration = Duration::from_secs(1);

fn refuse_if_blocked(state: &AppState, ip: Option<IpAddr>, token: &str) -> ApiResult<()> {
    match ip {
        Some(ip) => state
            .auth_limiter
            .may_look_up(ip, token)
            .map_err(rate_limited),
        None => Ok(()),
    }
}

fn rate_limited(wait: Duration) -> ApiError {
    // Rounded up: a client that waits `Retry-After` seconds must find the window over.
    ApiError::RateLimited(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
}
