//! `/api/v1/tokens…`: create, list, read, replace, revoke, disable/enable, rotate, lookup, self.

use axum::extract::State;
use axum::http::StatusCode;
use keygate_core::fields::{Description, Metadata, TokenName};
use keygate_core::usage::CreditOperation;
use keygate_core::AuditAction;
use keygate_core::PlainToken;
use keygate_store::{CreditChange, TokenFilter};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::auth::{AnyScope, Authorized, Caller, CallingToken, TokensRead, TokensWrite};
use crate::dto::*;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, OptionalJson, Path, Query};
use crate::service::tokens::{self, NewToken, Usage};
use crate::state::AppState;

pub const DEFAULT_PAGE: u32 = 100;
pub const MAX_PAGE: u32 = 1000;

pub fn page_limit(limit: Option<u32>) -> ApiResult<u32> {
    match limit.unwrap_or(DEFAULT_PAGE) {
        l @ 1..=MAX_PAGE => Ok(l),
        _ => Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE}"
        ))),
    }
}

/// Cursors are opaque to clients; inside they are the position of the last item served.
pub fn parse_cursor(c: Option<&str>) -> ApiResult<Option<i64>> {
    c.map(|c| {
        c.parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ApiError::BadRequest("invalid cursor".into()))
    })
    .transpose()
}

fn created(
    rec: keygate_store::TokenRecord,
    plain: PlainToken,
) -> (StatusCode, axum::Json<CreatedToken>) {
    (
        StatusCode::CREATED,
        axum::Json(CreatedToken {
            meta: rec.into(),
            token: plain.expose().into(),
        }),
    )
}

/// Create a token. The response is the only place its plaintext ever appears.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens",
    request_body = CreateTokenRequest,
    responses(
        (status = 201, description = "Created; `token` is shown this once", body = CreatedToken),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Scope missing, or escalation attempted", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
    ),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Authorized<TokensWrite>,
    Json(req): Json<CreateTokenRequest>,
) -> ApiResult<(StatusCode, axum::Json<CreatedToken>)> {
    let now = keygate_store::now();
    let name = TokenName::try_from(req.name)?;
    let scopes = tokens::validate_scopes(&state, &req.scopes)?;
    let spec = NewToken {
        expires_at: tokens::expiry(now, req.expires_at, req.expires_in)?,
        owner_id: req.owner_id,
        description: req.description.map(Description::try_from).transpose()?,
        metadata: Metadata::optional(req.metadata)?,
        usage: Usage {
            external_id: req.external_id,
            ratelimits: req.ratelimits,
            credits: req.credits,
            allowed_cidrs: req.allowed_cidrs,
        }
        .checked()?,
        ..NewToken::new(name, scopes)
    };
    let (rec, plain) = tokens::create(&state, &caller, spec).await?;
    Ok(created(rec, plain))
}

/// List tokens, newest first: the caller's own, or with `tokens:admin` the whole tenant's.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    params(ListTokensQuery),
    responses(
        (status = 200, body = TokenList),
        (status = 400, description = "Bad query parameter", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Authorized<TokensRead>,
    Query(q): Query<ListTokensQuery>,
) -> ApiResult<axum::Json<TokenList>> {
    let filter = TokenFilter {
        owner_id: q.owner_id,
        enabled: q.enabled,
        name_contains: q.q.filter(|s| !s.is_empty()),
        scope: q.scope,
        external_id: q.external_id,
        violating_policy_at: q.violates_policy.unwrap_or(false).then(keygate_store::now),
        created_before: q.created_before,
        before_seq: parse_cursor(q.cursor.as_deref())?,
        limit: page_limit(q.limit)?,
        ..TokenFilter::default()
    };
    let page = tokens::list(&state, &caller, filter).await?;
    Ok(axum::Json(TokenList {
        items: page
            .items
            .into_iter()
            .map(|t| tokens::view(&state, t))
            .collect(),
        next_cursor: page.next.map(|n| n.to_string()),
    }))
}

/// One token's metadata.
#[utoipa::path(get, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id, e.g. kg_1A2b3C4d5E6f7G8h")),
    responses((status = 200, body = TokenView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn get_token(
    State(state): State<AppState>,
    caller: Authorized<TokensRead>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<TokenView>> {
    Ok(axum::Json(tokens::view(
        &state,
        tokens::visible(&state, &caller, &id).await?,
    )))
}

/// Replace a token's name and scopes (a scope left out is removed); `expiresAt`, `enabled`,
/// `description` and `metadata` change only when given.
#[utoipa::path(put, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    request_body = UpdateTokenRequest,
    responses((status = 200, body = TokenView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn update_token(
    State(state): State<AppState>,
    caller: Authorized<TokensWrite>,
    Path(id): Path<String>,
    Json(req): Json<UpdateTokenRequest>,
) -> ApiResult<axum::Json<TokenView>> {
    let name = TokenName::try_from(req.name)?;
    let scopes = tokens::validate_scopes(&state, &req.scopes)?;
    tokens::ensure_covers(&caller, &scopes)?;
    let mut rec = tokens::changeable(&state, &caller, &id).await?;
    let now = keygate_store::now();
    if let Some(at) = req.expires_at {
        let at = match at {
            Some(at) if Some(at) != rec.expires_at => tokens::expiry(now, Some(at), None)?,
            at => at,
        };
        tokens::change_expiry(&mut rec, at, now)?;
    }
    if let Some(d) = req.description {
        rec.description = d.map(Description::try_from).transpose()?.map(String::from);
    }
    if let Some(m) = req.metadata {
        rec.metadata = Metadata::optional(m)?.map(Metadata::into_raw);
    }
    if let Some(e) = req.enabled {
        rec.enabled = e;
    }
    if let Some(e) = req.external_id {
        rec.external_id = e;
    }
    if let Some(limits) = req.ratelimits {
        rec.ratelimits = limits;
    }
    if let Some(cidrs) = req.allowed_cidrs {
        rec.allowed_cidrs = cidrs;
    }
    let usage = Usage {
        external_id: rec.external_id.clone(),
        ratelimits: rec.ratelimits.clone(),
        credits: req.credits.flatten(),
        allowed_cidrs: std::mem::take(&mut rec.allowed_cidrs),
    }
    .checked()?;
    rec.allowed_cidrs = usage.allowed_cidrs.clone();
    let details = json!({ "name": name, "scopes": scopes.names(), "enabled": rec.enabled,
                          "expiresAt": rec.expires_at.map(crate::rfc3339_ms::format),
                          "usage": usage.details() });
    rec.name = name.into_string();
    rec.scopes = scopes;
    let rec = tokens::save_with_credits(
        &state,
        &caller,
        rec,
        req.credits,
        AuditAction::TokenUpdate,
        details,
    )
    .await?;
    Ok(axum::Json(tokens::view(&state, rec)))
}

/// Change what is left of a token's credits: `set` it (`null`: unlimited), or `increment` or
/// `decrement` it (a decrement stops at 0).
#[utoipa::path(post, path = "/api/v1/tokens/{id}/credits", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    request_body = CreditsRequest,
    responses((status = 200, body = TokenView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "Increment or decrement of unlimited credits", body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn change_credits(
    State(state): State<AppState>,
    caller: Authorized<TokensWrite>,
    Path(id): Path<String>,
    Json(req): Json<CreditsRequest>,
) -> ApiResult<axum::Json<TokenView>> {
    let value = match req.value {
        None if req.operation == CreditOperation::Set => None,
        None => {
            return Err(ApiError::Unprocessable(
                "value is required for increment and decrement".into(),
            ))
        }
        Some(v) => {
            let v = u64::try_from(v)
                .map_err(|_| ApiError::Unprocessable("value must be at least 0".into()))?;
            keygate_core::usage::check_credits("value", v)?;
            Some(v)
        }
    };
    let change = match (req.operation, value) {
        (CreditOperation::Set, v) => CreditChange::Set(v.map(|v| (v, None))),
        (CreditOperation::Increment, Some(v)) => CreditChange::Increment(v),
        (CreditOperation::Decrement, Some(v)) => CreditChange::Decrement(v),
        (_, None) => unreachable!("a missing value was refused above"),
    };
    let change = keep_refill(&state, &caller, &id, change).await?;
    let rec = tokens::change_credits(&state, &caller, &id, change).await?;
    Ok(axum::Json(tokens::view(&state, rec)))
}

/// A `set` changes how many credits are left, not how they refill.
async fn keep_refill(
    state: &AppState,
    caller: &Caller,
    id: &str,
    change: CreditChange,
) -> ApiResult<CreditChange> {
    Ok(match change {
        CreditChange::Set(Some((v, None))) => {
            let refill = tokens::visible(state, caller, id)
                .await?
                .credits
                .and_then(|c| c.refill);
            CreditChange::Set(Some((v, refill)))
        }
        other => other,
    })
}

/// Revoke a token: rejected from this response on, then gone (404).
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 204, description = "Revoked"), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn delete_token(
    State(state): State<AppState>,
    caller: Authorized<TokensWrite>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let rec = tokens::visible(&state, &caller, &id).await?;
    tokens::delete(&state, &caller, rec, AuditAction::TokenDelete).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deactivate a token; it answers `API token disabled` until enabled again.
#[utoipa::path(post, path = "/api/v1/tokens/{id}/disable", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 200, body = TokenView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn disable_token(
    State(state): State<AppState>,
    caller: Authorized<TokensWrite>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<TokenView>> {
    let rec = tokens::set_enabled(&state, &caller, &id, false).await?;
    Ok(axum::Json(tokens::view(&state, rec)))
}

/// Activate a deactivated token.
#[utoipa::path(post, path = "/api/v1/tokens/{id}/enable", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 200, body = TokenView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn enable_token(
    State(state): State<AppState>,
    caller: Authorized<TokensWrite>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<TokenView>> {
    let rec = tokens::set_enabled(&state, &caller, &id, true).await?;
    Ok(axum::Json(tokens::view(&state, rec)))
}

/// Rotate: a new token with the same name, scopes, owner and lifetime; the old one keeps
/// working for `gracePeriodSeconds` (default 0) and then expires.
#[utoipa::path(post, path = "/api/v1/tokens/{id}/rotate", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    request_body(content = Option<RotateRequest>, description = "May be left out"),
    responses((status = 201, body = CreatedToken),
              (status = 400, description = "Malformed JSON", body = ErrorBody),
              (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "Token is disabled or expired", body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn rotate_token(
    State(state): State<AppState>,
    caller: Authorized<TokensWrite>,
    Path(id): Path<String>,
    // The spec documents the body as optional and nullable: `null` means the same as none.
    OptionalJson(req): OptionalJson<Option<RotateRequest>>,
) -> ApiResult<(StatusCode, axum::Json<CreatedToken>)> {
    let grace = req.and_then(|r| r.grace_period_seconds).unwrap_or(0);
    let (rec, plain) = tokens::rotate(&state, &caller, &id, grace).await?;
    Ok(created(rec, plain))
}

/// Find a token's metadata from the token itself (e.g. one found in a leaked file).
#[utoipa::path(post, path = "/api/v1/tokens/lookup", tag = "tokens",
    request_body = TokenBody,
    responses((status = 200, body = TokenView),
              (status = 400, description = "Malformed JSON", body = ErrorBody),
              (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, description = "A field of the wrong type", body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn lookup_token(
    State(state): State<AppState>,
    caller: Authorized<TokensRead>,
    Json(req): Json<TokenBody>,
) -> ApiResult<axum::Json<TokenView>> {
    match tokens::visible_by_secret(&state, &caller, req.token.expose_secret()).await? {
        Some(t) => Ok(axum::Json(tokens::view(&state, t))),
        None => Err(ApiError::token_not_found()),
    }
}

/// The id of the token making the request; a web session has none.
fn calling_token(caller: &Caller) -> ApiResult<&str> {
    caller.token().map(|t| t.id.as_str()).ok_or_else(|| {
        ApiError::NotFound("This route describes the calling token; a web session has none".into())
    })
}

/// The calling token's own metadata.
#[utoipa::path(get, path = "/api/v1/tokens/self", tag = "tokens",
    responses((status = 200, body = TokenView), (status = 401, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn get_self(
    State(state): State<AppState>,
    caller: Authorized<AnyScope>,
) -> ApiResult<axum::Json<TokenView>> {
    match state
        .store
        .token_by_id(caller.tenant_id(), calling_token(&caller)?)
        .await?
    {
        Some(t) => Ok(axum::Json(tokens::view(&state, t))),
        None => Err(ApiError::InvalidToken),
    }
}

/// Revoke the calling token; a disabled or expired token may end itself too.
#[utoipa::path(delete, path = "/api/v1/tokens/self", tag = "tokens",
    responses((status = 204, description = "Revoked"), (status = 401, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn revoke_self(
    State(state): State<AppState>,
    caller: CallingToken,
) -> ApiResult<StatusCode> {
    let rec = state
        .store
        .token_by_id(caller.tenant_id(), calling_token(&caller)?)
        .await?
        .ok_or(ApiError::InvalidToken)?;
    tokens::delete(&state, &caller, rec, AuditAction::TokenRevokeSelf).await?;
    Ok(StatusCode::NO_CONTENT)
}
