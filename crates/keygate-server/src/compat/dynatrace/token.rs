//! One token by id: read, update and delete, and `POST /api/v2/apiTokens/lookup` by the token
//! itself.

use axum::extract::State;
use axum::http::StatusCode;
use keygate_core::AuditAction;
use keygate_core::{ScopeSet, TokenName};
use serde_json::{json, Value};

use super::error::*;
use super::model::*;
use super::request::*;
use crate::error::ApiError;
use crate::extract::Path;
use crate::service::tokens::{self};
use crate::state::AppState;

/// One token's metadata.
#[utoipa::path(get, path = "/api/v2/apiTokens/{id}", tag = "dynatrace",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 200, body = ApiToken), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn get_token(
    State(state): State<AppState>,
    caller: Reader,
    id: Result<Path<String>, ApiError>,
) -> Result<axum::Json<ApiToken>, DtError> {
    let caller = caller?;
    let Path(id) = id?;
    match tokens::visible(&state, &caller, &id).await {
        Ok(t) => Ok(axum::Json(ApiToken::from(&t))),
        Err(ApiError::NotFound(_)) => Err(not_found()),
        Err(e) => Err(e.into()),
    }
}

/// Change a token's name, enabled state or scopes: only what is sent changes, and scopes sent
/// replace the set.
#[utoipa::path(put, path = "/api/v2/apiTokens/{id}", tag = "dynatrace",
    params(("id" = String, Path, description = "Token id")),
    request_body = ApiTokenUpdate,
    responses((status = 204, description = "Updated"), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn update_token(
    State(state): State<AppState>,
    caller: Writer,
    id: Result<Path<String>, ApiError>,
    body: Body,
) -> Result<StatusCode, DtError> {
    let caller = caller?;
    let Path(id) = id?;
    let obj = object(body)?;
    let mut violations = Violations::default();
    let name = match present(&obj, "name") {
        None => None,
        Some(Value::String(n)) => violations.field("name", n.parse::<TokenName>()),
        Some(_) => {
            violations.add("name", "must be a string");
            None
        }
    };
    let enabled = match present(&obj, "enabled") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            violations.add("enabled", "must be a boolean");
            None
        }
    };
    let scopes: Option<ScopeSet> = match present(&obj, "scopes").map(scope_names) {
        None => None,
        Some(Some(names)) => {
            violations.checked("scopes", tokens::validate_scopes(&state, &names))?
        }
        Some(None) => {
            violations.add("scopes", "must be an array of strings");
            None
        }
    };
    violations.finish(Some(()))?;
    if let Some(s) = &scopes {
        tokens::ensure_covers(&caller, s)?;
    }
    let mut rec = match tokens::changeable(&state, &caller, &id).await {
        Ok(r) => r,
        Err(ApiError::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    if name.is_none() && enabled.is_none() && scopes.is_none() {
        return Ok(StatusCode::NO_CONTENT);
    }
    if let Some(n) = name {
        rec.name = n.into_string();
    }
    if let Some(e) = enabled {
        rec.enabled = e;
    }
    if let Some(s) = scopes {
        rec.scopes = s;
    }
    let details = json!({ "name": rec.name, "scopes": rec.scopes.names(), "enabled": rec.enabled,
                          "surface": "dynatrace" });
    match tokens::save(&state, &caller, rec, AuditAction::TokenUpdate, details).await {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(ApiError::NotFound(_)) => Err(not_found()),
        Err(e) => Err(e.into()),
    }
}

/// Revoke a token, given by its id or by the token itself. The token that authenticates the
/// request cannot delete itself here (400).
#[utoipa::path(delete, path = "/api/v2/apiTokens/{id}", tag = "dynatrace",
    params(("id" = String, Path, description = "Token id, or the token itself")),
    responses((status = 204, description = "Revoked"),
              (status = 400, description = "The calling token itself", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn delete_token(
    State(state): State<AppState>,
    caller: Writer,
    id: Result<Path<String>, ApiError>,
) -> Result<StatusCode, DtError> {
    let caller = caller?;
    let Path(id) = id?;
    let rec = match tokens::visible(&state, &caller, &id).await {
        Ok(r) => r,
        Err(ApiError::NotFound(_)) => tokens::visible_by_secret(&state, &caller, &id)
            .await?
            .ok_or_else(not_found)?,
        Err(e) => return Err(e.into()),
    };
    if caller.is_token(&rec.id) {
        return Err(DtError::one(
            "id",
            "You can't delete the token you're using for authentication of the request",
            PATH,
        ));
    }
    match tokens::delete(&state, &caller, rec, AuditAction::TokenDelete).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(ApiError::NotFound(_)) => Err(not_found()),
        Err(e) => Err(e.into()),
    }
}

/// A token's metadata from the token itself.
#[utoipa::path(post, path = "/api/v2/apiTokens/lookup", tag = "dynatrace",
    request_body = ApiTokenSecret,
    responses((status = 200, body = ApiToken), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn lookup_token(
    State(state): State<AppState>,
    caller: Reader,
    body: Body,
) -> Result<axum::Json<ApiToken>, DtError> {
    let caller = caller?;
    let obj = object(body)?;
    let secret = match present(&obj, "token") {
        Some(Value::String(s)) => s,
        Some(_) => return Err(DtError::one("token", "must be a string", BODY)),
        None => return Err(DtError::one("token", "must not be null", BODY)),
    };
    match tokens::visible_by_secret(&state, &caller, secret).await? {
        Some(t) => Ok(axum::Json(ApiToken::from(&t))),
        None => Err(not_found()),
    }
}
