//! The questions a protected API asks: `POST /api/v1/verify` (JSON) and `GET /api/v1/auth`
//! (forward-auth for nginx `auth_request`, Traefik ForwardAuth, Envoy ext_authz over HTTP).

use std::net::IpAddr;
use std::time::Instant;

use axum::extract::Request;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use keygate_core::credentials::{extract_from_query, redact_secrets, Credential};
use keygate_store::Outcome;

use crate::auth::token::presented_token;
use crate::dto::{VerifyRequest, VerifyResponse};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{client_ip, parse_json, ClientIp, JsonBody};
use crate::state::AppState;

const MAX_WANTED_SCOPES: usize = 100;

async fn check(
    state: &AppState,
    token: &str,
    wanted: &[&str],
    ip: Option<IpAddr>,
) -> ApiResult<Outcome> {
    let started = Instant::now();
    let outcome = crate::auth::token::verify(state, token, wanted, ip).await;
    let code = match &outcome {
        Ok(o) => o.code(),
        Err(ApiError::RateLimited(_)) => "RATE_LIMITED",
        Err(_) => return outcome,
    };
    state.metrics.verification(code, started.elapsed());
    outcome
}

/// Is this token good, and does it hold these scopes? Always 200 with a `code`, unless the
/// request itself is malformed, or its client address has failed too often (429).
#[utoipa::path(post, path = "/api/v1/verify", tag = "verify",
    request_body = VerifyRequest,
    responses((status = 200, body = VerifyResponse), (status = 400, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn verify(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let req: VerifyRequest = parse_json(&body)?;
    if req.scopes.len() > MAX_WANTED_SCOPES {
        return Err(ApiError::Unprocessable(format!(
            "at most {MAX_WANTED_SCOPES} scopes may be asked for"
        )));
    }
    let wanted: Vec<&str> = req.scopes.iter().map(|s| s.as_ref()).collect();
    let outcome = check(&state, &req.token, &wanted, ip).await?;
    // Written straight into a buffer of the right size: this is the hottest answer keygate
    // gives, and it borrows everything from the cached token.
    let mut answer = Vec::with_capacity(512);
    serde_json::to_writer(
        &mut answer,
        &response(&outcome, state.config.prefix.as_str()),
    )
    .map_err(|e| ApiError::Internal(format!("writing a verify answer: {e}")))?;
    Ok(([(header::CONTENT_TYPE, JSON)], answer).into_response())
}

const JSON: HeaderValue = HeaderValue::from_static("application/json");

fn response<'a>(o: &'a Outcome, prefix: &str) -> VerifyResponse<'a> {
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
    };
    if let Some(t) = o.token() {
        r.token_id = Some(t.id.as_str());
        r.name = Some(&t.name);
        r.owner_id = Some(&t.owner_id);
        r.tenant_id = Some(&t.tenant_id);
        r.expires_at = t.expires_at;
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

#[utoipa::path(get, path = "/api/v1/auth", tag = "verify",
    params(("scope" = Option<Vec<String>>, Query, description = "Scopes the token must hold")),
    responses(
        (status = 200, description = "Token is valid",
         headers(("X-Keygate-Token-Id" = String), ("X-Keygate-Owner-Id" = String),
                 ("X-Keygate-Tenant-Id" = String), ("X-Keygate-Scopes" = String, description = "Comma-separated"))),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "Too many failed attempts from this address")),
    security((), ("apiToken" = []), ("bearer" = [])))]
pub async fn forward_auth(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    // The request by value, not `Parts`: no copy of its headers on the hot path.
    let (parts, _) = req.into_parts();
    let wanted: Vec<String> = form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .take(MAX_WANTED_SCOPES)
        .collect();
    let ip = client_ip(&parts, state.config.trust_forwarded_for);
    let token = match presented_token(&parts, state.config.allow_query_token) {
        Credential::Missing => original_uri_token(&parts.headers, state.config.allow_query_token),
        other => other,
    };
    let token = match token {
        Credential::Missing => {
            state
                .metrics
                .verification("MALFORMED", std::time::Duration::ZERO);
            return Err(ApiError::MissingToken);
        }
        Credential::Unusable => {
            let e = crate::auth::token::unusable(&state, ip);
            let code = match e {
                ApiError::RateLimited(_) => "RATE_LIMITED",
                _ => "MALFORMED",
            };
            state.metrics.verification(code, std::time::Duration::ZERO);
            return Err(e);
        }
        Credential::Token(t) => t,
    };
    let wanted_refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
    match check(&state, &token, &wanted_refs, ip).await? {
        Outcome::Valid(t) => {
            let mut headers = HeaderMap::new();
            let mut put = |name: &'static str, value: &str| {
                if let Ok(v) = HeaderValue::from_str(value) {
                    headers.insert(HeaderName::from_static(name), v);
                }
            };
            put("x-keygate-token-id", t.id.as_str());
            put("x-keygate-owner-id", &t.owner_id);
            put("x-keygate-tenant-id", &t.tenant_id);
            put("x-keygate-scopes", &t.scopes.names().join(","));
            Ok((headers, "").into_response())
        }
        Outcome::Malformed | Outcome::NotFound => Err(ApiError::InvalidToken),
        Outcome::Disabled(_) => Err(ApiError::TokenDisabled),
        Outcome::Expired(_) => Err(ApiError::TokenExpired),
        Outcome::InsufficientScope { missing, .. } => Err(ApiError::InsufficientScope(missing)),
    }
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
