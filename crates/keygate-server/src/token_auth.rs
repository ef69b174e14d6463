//! Checking the token a request presents, with failed attempts counted per client address:
//! beyond `AuthLimits::per_ip` failures in a window, further failures from that address are
//! answered 429 `rate_limited` with `Retry-After`, and of its tokens that are not in memory only
//! one a second is looked up in the database (so that the valid token of a client that was
//! misconfigured a minute ago still works at its first use, while a flood from that address
//! costs at most a query a second). Tokens in memory are answered as always, so a valid token
//! is never slowed, not even one sent from an address that an attacker shares.
//!
//! A failure is a token that is malformed, has a bad checksum or is unknown, or an
//! `Authorization` header that holds no usable token. A disabled or expired token, or one
//! without the scope, is a real token and not a guess: it is not counted.

use std::net::IpAddr;
use std::time::Duration;

use keygate_store::Outcome;

use crate::error::{ApiError, ApiResult};
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

/// The verifier's answer for `token`, or 429 if its address has failed too often.
pub async fn verify(
    state: &AppState,
    token: &str,
    wanted: &[&str],
    ip: Option<IpAddr>,
) -> ApiResult<Outcome> {
    let outcome = state
        .verifier
        .verify_or(token, wanted, ip, || refuse_if_blocked(state, ip))
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
    match ip.and_then(|ip| state.auth_limiter.fail(&ip)) {
        Some(wait) => Err(rate_limited(wait)),
        None => Ok(()),
    }
}

/// How often a refused address may still have a token looked up that is not in memory.
const LOOKUP_WHILE_REFUSED_EVERY: Duration = Duration::from_secs(1);

fn refuse_if_blocked(state: &AppState, ip: Option<IpAddr>) -> ApiResult<()> {
    match ip.and_then(|ip| state.auth_limiter.trial(&ip, LOOKUP_WHILE_REFUSED_EVERY)) {
        Some(wait) => Err(rate_limited(wait)),
        None => Ok(()),
    }
}

fn rate_limited(wait: Duration) -> ApiError {
    // Rounded up: a client that waits `Retry-After` seconds must find the window over.
    ApiError::RateLimited(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
}
