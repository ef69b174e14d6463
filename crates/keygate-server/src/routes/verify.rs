//! The questions a protected API asks: `POST /api/v1/verify` (JSON) and `GET /api/v1/auth`
//! (forward-auth for nginx `auth_request`, Traefik ForwardAuth, Envoy ext_authz over HTTP).

use std::net::IpAddr;

use axum::extract::Request;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use keygate_core::credentials::{extract_from_query, redact_secrets, Credential};
use keygate_core::network::canonical_ip;
use keygate_store::ratelimit::LimitReport;
use keygate_store::verifier::{Check, Verification};
use keygate_store::Outcome;

use crate::auth::gateway;
use crate::auth::token::presented_token;
use crate::dto::{LimitView, RemainingCredits, VerifyRequest, VerifyResponse};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{client_ip, parse_json, ClientIp, JsonBody};
use crate::routes::gateway::{gateway_asks, strip_token};
use crate::state::AppState;

const MAX_WANTED_SCOPES: usize = 100;
/// As many as a token can have.
const MAX_NAMED_LIMITS: usize = keygate_core::usage::MAX_RATELIMITS;

fn cost(field: &str, cost: i64) -> ApiResult<u64> {
    let cost = u64::try_from(cost)
        .map_err(|_| ApiError::Unprocessable(format!("{field} must be at least 0")))?;
    keygate_core::usage::check_credits(field, cost)?;
    Ok(cost)
}

/// Is this token good, does it hold these scopes and meet this permission query, and may it
/// be used now (rate limits, credits)? Always 200 with a `code`, unless the request itself is
/// malformed, or its client address has failed too often (429).
#[utoipa::path(post, path = "/api/v1/verify", tag = "verify",
    request_body = VerifyRequest,
    responses((status = 200, body = VerifyResponse), (status = 400, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn verify(
    State(state): State<AppState>,
    ClientIp(caller): ClientIp,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let req: VerifyRequest = parse_json(&body)?;
    let ip = match req.ip.as_deref() {
        None => caller,
        Some(ip) => Some(canonical_ip(ip.trim().parse::<IpAddr>().map_err(|_| {
            // The client's text, echoed: a token sent in the wrong field must not come back.
            let shown = redact_secrets(ip, state.config.prefix.as_str());
            ApiError::Unprocessable(format!(
                "ip: {:?} is not an IPv4 or IPv6 address",
                shown.chars().take(64).collect::<String>()
            ))
        })?)),
    };
    if req.scopes.len() > MAX_WANTED_SCOPES {
        return Err(ApiError::Unprocessable(format!(
            "at most {MAX_WANTED_SCOPES} scopes may be asked for"
        )));
    }
    if req.ratelimits.len() > MAX_NAMED_LIMITS {
        return Err(ApiError::Unprocessable(format!(
            "at most {MAX_NAMED_LIMITS} rate limits may be named"
        )));
    }
    let permissions = gateway::permissions(req.permissions.as_deref())?;
    let named = req
        .ratelimits
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let c = l
                .cost
                .map_or(Ok(1), |c| cost(&format!("ratelimits[{i}].cost"), c))?;
            Ok((l.name.as_ref(), c))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let wanted: Vec<&str> = req.scopes.iter().map(|s| s.as_ref()).collect();
    let c = Check {
        token: &req.token,
        scopes: &wanted,
        permissions: permissions.as_ref(),
        ratelimits: &named,
        cost: req
            .credits
            .map_or(Ok(1), |c| cost("credits.cost", c.cost))?,
        ip,
    };
    let v = gateway::check(&state, &c, caller).await?;
    if let Outcome::UnknownRateLimit { name, .. } = &v.outcome {
        return Err(ApiError::BadRequest(format!(
            "ratelimits: the token has no rate limit named {:?}",
            redact_secrets(name, state.config.prefix.as_str())
        )));
    }
    // Written straight into a buffer of the right size: this is the hottest answer keygate
    // gives, and it borrows everything from the cached token.
    let mut answer = Vec::with_capacity(512);
    serde_json::to_writer(&mut answer, &response(&v, state.config.prefix.as_str()))
        .map_err(|e| ApiError::Internal(format!("writing a verify answer: {e}")))?;
    Ok(([(header::CONTENT_TYPE, JSON)], answer).into_response())
}

const JSON: HeaderValue = HeaderValue::from_static("application/json");

fn response<'a>(v: &'a Verification, prefix: &str) -> VerifyResponse<'a> {
    let o = &v.outcome;
    let mut r = VerifyResponse {
        valid: matches!(o, Outcome::Valid(_)),
        code: o.code(),
        token_id: None,
        name: None,
        owner_id: None,
        tenant_id: None,
        scopes: None,
        metadata: None,
        expires_at: None,
        missing_scopes: None,
        external_id: None,
        credits: v
            .credits_remaining
            .map(|remaining| RemainingCredits { remaining }),
        ratelimits: v.ratelimits.iter().map(limit_view).collect(),
    };
    if let Some(t) = o.token() {
        r.token_id = Some(t.id.as_str());
        r.name = Some(&t.name);
        r.owner_id = Some(&t.owner_id);
        r.tenant_id = Some(&t.tenant_id);
        r.expires_at = t.expires_at;
        r.external_id = t.external_id.as_deref();
    }
    match o {
        Outcome::Valid(t) => {
            r.scopes = Some(&t.scopes);
            r.metadata = t.metadata.as_deref();
        }
        Outcome::InsufficientScope { token, missing } => {
            r.scopes = Some(&token.scopes);
            // The only part of a 200 that repeats what the client sent: a token sent as a
            // scope name must not come back, as in error answers (`middleware`).
            r.missing_scopes = Some(missing.iter().map(|m| redact_secrets(m, prefix)).collect());
        }
        _ => {}
    }
    r
}

pub fn limit_view(l: &LimitReport) -> LimitView<'_> {
    LimitView {
        name: &l.name,
        limit: l.limit,
        duration_ms: l.duration_ms,
        remaining: l.remaining,
        reset: l.reset_ms,
        exceeded: l.exceeded,
        auto_apply: l.auto_apply,
    }
}

#[utoipa::path(get, path = "/api/v1/auth", tag = "verify",
    params(("scope" = Option<Vec<String>>, Query, description = "Scopes the token must hold"),
           ("permissions" = Option<String>, Query, description = "A permission query, e.g. `(a OR b) AND c`"),
           ("cost" = Option<u64>, Query, description = "Credits this request costs (default 1)"),
           ("strip_token" = Option<bool>, Query, description = "Name `authorization` in `X-Envoy-Auth-Headers-To-Remove` on a 200, so that an Envoy strips the token before the upstream"),
           ("X-Keygate-Scope" = Option<String>, Header, description = "More scopes the token must hold (comma-separated); how an Envoy, which appends the original path and query (`/api/v1/auth/...`, any method), asks"),
           ("X-Keygate-Permissions" = Option<String>, Header, description = "A permission query that must also hold"),
           ("X-Keygate-Cost" = Option<u64>, Header, description = "Credits this request costs; the higher one counts when the query names one too"),
           ("X-Keygate-Strip-Token" = Option<bool>, Header, description = "As `strip_token`")),
    responses(
        (status = 200, description = "Token is valid",
         headers(("X-Keygate-Token-Id" = String), ("X-Keygate-Owner-Id" = String),
                 ("X-Keygate-Tenant-Id" = String), ("X-Keygate-Scopes" = String, description = "Comma-separated"),
                 ("X-Keygate-External-Id" = String, description = "Empty when the token has none"),
                 ("RateLimit-Limit" = u64, description = "When the token has rate limits"),
                 ("RateLimit-Remaining" = u64), ("RateLimit-Reset" = u64, description = "Seconds"),
                 ("X-Keygate-Credits-Remaining" = u64, description = "Empty when the token has no credits"),
                 ("X-Envoy-Auth-Headers-To-Remove" = String, description = "`authorization`, when `strip_token` asks"))),
        (status = 400, description = "Malformed permission query, cost or strip_token, or more than 100 scopes", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "Rate limited (`rate_limited`), credits used up (`usage_exceeded`), or too many failed attempts from this address; with `Retry-After`")),
    security((), ("apiToken" = []), ("bearer" = [])))]
pub async fn forward_auth(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    // The request by value, not `Parts`: no copy of its headers on the hot path.
    let (parts, _) = req.into_parts();
    let asks = gateway_asks(&parts)?;
    let ip = client_ip(&parts, &state.config);
    let token = match presented_token(&parts, state.config.allow_query_token) {
        Credential::Missing => original_uri_token(&parts.headers, state.config.allow_query_token),
        other => other,
    };
    let token = gateway::presented(&state, token, ip)?;
    let wanted: Vec<&str> = asks.scopes.iter().map(String::as_str).collect();
    let c = Check {
        token: &token,
        scopes: &wanted,
        permissions: asks.permissions.as_ref(),
        ratelimits: &[],
        cost: asks.cost,
        ip,
    };
    let v = gateway::check(&state, &c, ip).await?;
    let mut headers = HeaderMap::new();
    for (name, value) in gateway::ratelimit_headers(&v.ratelimits)
        .into_iter()
        .flatten()
    {
        headers.insert(HeaderName::from_static(name), value.into());
    }
    let Outcome::Valid(t) = &v.outcome else {
        let mut resp = crate::auth::token::refusal(&v).into_response();
        resp.headers_mut().extend(headers);
        return Ok(resp);
    };
    // Every identity header on every 200, empty when it has no value: a gateway that only
    // overwrites the headers an answer carries (Envoy, Caddy 2.6) would otherwise let a
    // client's own `X-Keygate-External-Id` through for a token without one.
    gateway::upstream_headers(t, &v, |name, value| {
        let value = HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static(""));
        headers.insert(HeaderName::from_static(name), value);
    });
    for name in ["x-keygate-external-id", "x-keygate-credits-remaining"] {
        headers
            .entry(HeaderName::from_static(name))
            .or_insert(HeaderValue::from_static(""));
    }
    if asks.strip_token {
        strip_token(&mut headers);
    }
    Ok((headers, "").into_response())
}

fn original_uri_token(headers: &HeaderMap, allow_query: bool) -> Credential<'static> {
    if !allow_query {
        return Credential::Missing;
    }
    for name in ["x-forwarded-uri", "x-original-uri"] {
        let Some(uri) = headers.get(name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let Some((_, query)) = uri.split_once('?') else {
            continue;
        };
        match extract_from_query(query) {
            Credential::Missing => continue,
            Credential::Unusable => return Credential::Unusable,
            Credential::Token(t) => return Credential::Token(t.into_owned().into()),
        }
    }
    Credential::Missing
}
