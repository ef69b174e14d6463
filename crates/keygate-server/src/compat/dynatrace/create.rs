//! `POST /api/v2/apiTokens`: creating a token the Dynatrace way.

use axum::extract::State;
use axum::http::StatusCode;
use keygate_core::TokenName;
use serde_json::Value;

use super::error::*;
use super::model::*;
use super::query::{self, format_date};
use super::request::*;
use crate::service::tokens::{self, NewToken};
use crate::state::AppState;

/// Create a token. `expirationDate` takes epoch millis, ISO 8601 or `now+14d`.
#[utoipa::path(post, path = "/api/v2/apiTokens", tag = "dynatrace",
    request_body = ApiTokenCreate,
    responses(
        (status = 201, description = "Created; `token` is shown this once", body = ApiTokenCreated),
        (status = 400, description = "Invalid input", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "Scope missing, or escalation attempted", body = ErrorEnvelope),
    ),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Writer,
    body: Body,
) -> Result<(StatusCode, axum::Json<ApiTokenCreated>), DtError> {
    let caller = caller?;
    let obj = object(body)?;
    let now = keygate_store::now();
    let mut violations = Violations::default();
    let name = match present(&obj, "name") {
        Some(Value::String(n)) => violations.field("name", n.parse::<TokenName>()),
        Some(_) => {
            violations.add("name", "must be a string");
            None
        }
        None => {
            violations.add("name", "must not be null");
            None
        }
    };
    let scopes = match present(&obj, "scopes").map(scope_names) {
        Some(Some(names)) => {
            violations.checked("scopes", tokens::validate_scopes(&state, &names))?
        }
        Some(None) => {
            violations.add("scopes", "must be an array of strings");
            None
        }
        None => {
            violations.add("scopes", "must not be null");
            None
        }
    };
    let expires_at = match present(&obj, "expirationDate") {
        None => None,
        Some(v) => {
            let at = match v {
                Value::String(s) => query::parse_time(s, now),
                Value::Number(n) => n
                    .as_i64()
                    .ok_or_else(|| "must be epoch milliseconds".to_owned())
                    .and_then(|ms| query::parse_time(&ms.to_string(), now)),
                _ => Err("must be a string or epoch milliseconds".to_owned()),
            };
            match at {
                Ok(at) => violations
                    .field("expirationDate", tokens::expiry(now, Some(at), None))
                    .flatten(),
                Err(m) => {
                    violations.add("expirationDate", m);
                    None
                }
            }
        }
    };
    let owner_id = match present(&obj, "personalAccessToken") {
        None => None,
        Some(Value::Bool(true)) => {
            if caller.owner_id() == caller.tenant_id() {
                violations.add(
                    "personalAccessToken",
                    "the calling token belongs to the tenant, not to a user, so it cannot create \
                     a personal access token",
                );
            }
            None
        }
        Some(Value::Bool(false)) => Some(caller.tenant_id().to_owned()),
        Some(_) => {
            violations.add("personalAccessToken", "must be a boolean");
            None
        }
    };
    let (name, scopes) = violations.finish(name.zip(scopes))?;
    let spec = NewToken {
        expires_at,
        owner_id,
        ..NewToken::new(name, scopes)
    };
    let (rec, plain) = tokens::create(&state, &caller, spec).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(ApiTokenCreated {
            id: rec.id.to_string(),
            token: plain.expose().into(),
            expiration_date: rec.expires_at.map(format_date),
        }),
    ))
}
