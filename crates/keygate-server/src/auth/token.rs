//! The token a request presents, and checking it, with failed attempts counted per client address:
//! beyond `config::AuthLimits::per_ip` failures in a window, further failures from that address are
//! answered 429 `rate_limited` with `Retry-After`, and of its tokens that are not in memory only
//! two a second are looked up in the database: the first one presented after a second (the trial),
//! and the first one presented again after it was refused (the retrial). A client behind an address
//! that a flood of made-up tokens shares (one NAT) retries its token, which the flood's fresh
//! guesses never do: the retrial lets it through at its second try, while the flood costs at most
//! two queries a second. Tokens in memory are answered as always, so a valid token in memory is
//! never slowed, not even one sent from an address that an attacker shares.
//!
//! A failure is a token that is malformed, has a bad checksum or is unknown, or an `Authorization`
//! header that holds no usable token. A disabled or expired token, or one without the scope, is a
//! real token and not a guess: it is not counted.

use std::net::IpAddr;
use std::time::Duration;

use axum::http::header;
use axum::http::request::Parts;
use keygate_core::credentials::{extract_from_authorization, extract_from_query, Credential};
use keygate_core::AuditAction;
use keygate_store::cache::CachedToken;
use keygate_store::verifier::{Check, Verification};
use keygate_store::{NewAudit, Outcome};
use serde_json::json;
use time::OffsetDateTime;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The token a request presents, in the header or (unless disabled) the query string.
pub fn presented_token<'a>(parts: &'a Parts, allow_query: bool) -> Credential<'a> {
    if let Some(v) = parts.headers.get(header::AUTHORIZATION) {
        return extract_from_authorization(v.as_bytes());
    }
    match (allow_query, parts.uri.query()) {
        (true, Some(q)) => extract_from_query(q),
        _ => Credential::Missing,
    }
}

/// The verifier's answer for a token presented to keygate's own API, or 429 if its address
/// has failed too often. No rate limit or credit of the token applies here.
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
    match &outcome {
        Outcome::Malformed | Outcome::NotFound => count_failure(state, ip)?,
        Outcome::IpNotAllowed(t) => audit_ip_refusal(state, t, ip),
        Outcome::Expired(t) => (state.on_expired)(state, t, ip),
        _ => {}
    }
    Ok(outcome)
}

/// The verifier's answer for a request to a protected API, or 429 if the client's address has
/// failed too often.
pub async fn check(state: &AppState, check: &Check<'_>) -> ApiResult<Verification> {
    check_for(state, check, check.ip).await
}

/// [`check`] for a request that reached keygate from `caller`, which may be another address
/// than the client's (`check.ip`): a protected API that asks `POST /api/v1/verify` on behalf of
/// its client. Failed attempts are counted against `caller`, who sent them, and cannot be
/// spread over made-up client addresses.
pub async fn check_for(
    state: &AppState,
    check: &Check<'_>,
    caller: Option<IpAddr>,
) -> ApiResult<Verification> {
    let verification = state
        .verifier
        .check_or(check, || refuse_if_blocked(state, caller, check.token))
        .await?;
    match &verification.outcome {
        Outcome::Malformed | Outcome::NotFound => count_failure(state, caller)?,
        Outcome::IpNotAllowed(t) => audit_ip_refusal(state, t, check.ip),
        Outcome::Expired(t) => (state.on_expired)(state, t, check.ip),
        Outcome::UsageExceeded(t) => (state.on_usage_exceeded)(state, t, check.ip),
        _ => {}
    }
    Ok(verification)
}

/// A token presented from outside its allow-list is audited with the address (at most once a
/// minute per token and address: see `limits::ip_refusals`), after the answer: the write never
/// slows the refusal.
fn audit_ip_refusal(state: &AppState, t: &CachedToken, ip: Option<IpAddr>) {
    let now = keygate_store::now();
    let minute = now.unix_timestamp().div_euclid(60);
    if !state.ip_refusals.first_in_minute(&t.id, ip, minute) {
        return;
    }
    let entry = NewAudit {
        tenant_id: t.tenant_id.to_string(),
        at: now,
        actor: t.id.to_string(),
        action: AuditAction::TokenIpRefused.into(),
        target_id: Some(t.id.to_string()),
        ip: ip.map(|a| a.to_string()),
        details: Some(json!({ "ip": ip.map(|a| a.to_string()), "name": &*t.name })),
    };
    let store = state.store.clone();
    tokio::spawn(async move {
        if let Err(e) = store.apply(&[], &[entry]).await {
            tracing::warn!(error = %e, "could not audit a refusal for the client's address");
        }
    });
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

/// What a gateway answers for a refused verification (forward-auth's status and body, and
/// ext_authz's denied response): 401 for a token that is not (or no longer) usable, 403 for one
/// that may not do this or not from here, 429 for one that may not do it now.
pub fn refusal(v: &Verification) -> ApiError {
    match &v.outcome {
        Outcome::Valid(_) => ApiError::Internal("a valid token was refused".into()),
        Outcome::Malformed | Outcome::NotFound => ApiError::InvalidToken,
        Outcome::Disabled(_) => ApiError::TokenDisabled,
        Outcome::Expired(_) => ApiError::TokenExpired,
        Outcome::IpNotAllowed(_) => ApiError::IpNotAllowed,
        Outcome::InsufficientScope { missing, .. } => ApiError::InsufficientScope(missing.clone()),
        Outcome::RateLimited(_) => ApiError::TokenRateLimited(whole_seconds(v.retry_after_ms)),
        Outcome::UsageExceeded(t) => ApiError::UsageExceeded(
            t.credits
                .and_then(|c| c.refill)
                .map(|r| seconds_until(r.next_after(OffsetDateTime::now_utc()))),
        ),
        Outcome::UnknownRateLimit { .. } => {
            ApiError::Internal("a gateway check names no rate limit".into())
        }
    }
}

/// Rounded up: a client that waits this long must find the limit passed.
pub fn whole_seconds(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

fn seconds_until(t: OffsetDateTime) -> u64 {
    let ms = (t - OffsetDateTime::now_utc()).whole_milliseconds();
    whole_seconds(u64::try_from(ms).unwrap_or(0))
}
