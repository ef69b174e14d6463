//! What every gateway surface shares (forward-auth over HTTP, Envoy ext_authz over gRPC): one
//! counted check, the answer to a request that presents no usable token, and the headers a
//! gateway hands on upstream, so that the surfaces cannot drift apart.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use keygate_core::credentials::Credential;
use keygate_core::permission::Query;
use keygate_store::cache::CachedToken;
use keygate_store::ratelimit::LimitReport;
use keygate_store::verifier::{Check, Verification};
use time::OffsetDateTime;

use crate::auth::token::whole_seconds;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// [`crate::auth::token::check_for`], counted in the metrics by outcome. A database failure is
/// not an outcome and is not counted. `caller` is the address the request came from, which
/// failed attempts count against (the client's, except for a verify asked on its behalf).
pub async fn check(
    state: &AppState,
    c: &Check<'_>,
    caller: Option<IpAddr>,
) -> ApiResult<Verification> {
    let started = Instant::now();
    let verification = crate::auth::token::check_for(state, c, caller).await;
    let code = match &verification {
        Ok(v) => v.outcome.code(),
        Err(ApiError::RateLimited(_)) => "RATE_LIMITED",
        Err(_) => return verification,
    };
    state.metrics.verification(code, started.elapsed());
    verification
}

/// The token of a request, or the refusal of one that presents none it can use: missing, or
/// unreadable (which counts as a failed attempt of its address). Both are counted as
/// verifications, as the check would count them.
pub fn presented<'a>(
    state: &AppState,
    credential: Credential<'a>,
    ip: Option<IpAddr>,
) -> ApiResult<std::borrow::Cow<'a, str>> {
    match credential {
        Credential::Token(t) => Ok(t),
        Credential::Missing => {
            state.metrics.verification("MALFORMED", Duration::ZERO);
            Err(ApiError::MissingToken)
        }
        Credential::Unusable => {
            let e = crate::auth::token::unusable(state, ip);
            let code = match e {
                ApiError::RateLimited(_) => "RATE_LIMITED",
                _ => "MALFORMED",
            };
            state.metrics.verification(code, Duration::ZERO);
            Err(e)
        }
    }
}

/// A permission query as a request sends it; a malformed one is the request's fault.
pub fn permissions(text: Option<&str>) -> ApiResult<Option<Query>> {
    text.map(|t| Query::parse(t).map_err(|e| ApiError::BadRequest(format!("permissions: {e}"))))
        .transpose()
}

/// The credits a gateway request costs, as text: 1 unless it says.
pub fn cost(text: Option<&str>) -> ApiResult<u64> {
    let Some(text) = text else { return Ok(1) };
    text.parse::<u64>()
        .ok()
        .filter(|c| *c <= keygate_core::usage::MAX_CREDITS)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "cost must be a whole number from 0 to {}",
                keygate_core::usage::MAX_CREDITS
            ))
        })
}

/// `RateLimit-Limit`, `-Remaining` and `-Reset` (seconds) of the limit nearest to refusing: the
/// exceeded one, or the one with the least left.
pub fn ratelimit_headers(reports: &[LimitReport]) -> Option<[(&'static str, u64); 3]> {
    let l = reports.iter().min_by_key(|l| (!l.exceeded, l.remaining))?;
    let now_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let reset = whole_seconds(u64::try_from(l.reset_ms - now_ms).unwrap_or(0));
    Some([
        ("ratelimit-limit", l.limit),
        ("ratelimit-remaining", l.remaining),
        ("ratelimit-reset", reset),
    ])
}

/// What the protected API learns of a valid token: its id, owner, tenant, scopes
/// (comma-separated), external id when it has one, and the credits left when it has credits.
/// Handed to `put` one by one: forward-auth writes them straight into its answer's headers.
pub fn upstream_headers(
    t: &CachedToken,
    v: &Verification,
    mut put: impl FnMut(&'static str, &str),
) {
    put("x-keygate-token-id", t.id.as_str());
    put("x-keygate-owner-id", &t.owner_id);
    put("x-keygate-tenant-id", &t.tenant_id);
    put("x-keygate-scopes", &t.scopes.names().join(","));
    if let Some(e) = &t.external_id {
        put("x-keygate-external-id", e);
    }
    if let Some(left) = v.credits_remaining {
        put("x-keygate-credits-remaining", &left.to_string());
    }
}
