//! Interana's token API (seed 002): `create_token` makes a new token for the caller's owner with
//! the caller's scopes; `revoke_token` revokes a token of the same owner (any of the tenant with
//! `tokens:admin`). Answers `{"token": …, "success": true}` / `{"success": true}`, failures
//! `{"msg": …, "success": false}`. Together they give the document's primary/secondary
//! rotation: create the secondary with the primary, revoke the primary with the secondary.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keygate_core::AuditAction;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authorized, TokensWrite};
use crate::error::ApiError;
use crate::extract::Json;
use crate::service::tokens::{self, NewToken};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_token_post, create_token_get))
        .routes(routes!(revoke_token))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    #[serde(serialize_with = "crate::reveal::secret")]
    #[schema(value_type = String)]
    pub token: SecretString,
    pub success: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Done {
    pub success: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Failure {
    pub msg: String,
    pub success: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RevokeRequest {
    #[schema(value_type = String)]
    pub token: SecretString,
}

/// Interana's failure body, with the native error's status.
pub struct InteranaError(ApiError);

impl From<ApiError> for InteranaError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for InteranaError {
    fn into_response(self) -> Response {
        let msg = match &self.0 {
            // Interana's own words for "no usable credentials".
            ApiError::MissingToken | ApiError::InvalidToken => "Not logged in.".to_owned(),
            e => e.to_string(),
        };
        let status = self.0.status();
        let mut resp = (
            status,
            axum::Json(Failure {
                msg,
                success: false,
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Token realm=\"keygate\""),
            );
        }
        resp
    }
}

type Caller = Result<Authorized<TokensWrite>, ApiError>;

async fn create(state: AppState, caller: Caller) -> Result<axum::Json<Created>, InteranaError> {
    let caller = caller?;
    // Same owner, same scopes, and never a longer life than the caller's own token.
    let name = "created by create_token"
        .parse()
        .expect("a valid token name");
    let description = format!("Created by {} through /api/create_token", caller.actor());
    let spec = NewToken {
        expires_at: caller.token().and_then(|t| t.expires_at),
        description: Some(description.parse().map_err(ApiError::from)?),
        ..NewToken::new(name, caller.scopes().clone())
    };
    let (_, plain) = tokens::create(&state, &caller, spec).await?;
    Ok(axum::Json(Created {
        token: plain.expose().into(),
        success: true,
    }))
}

/// Create a token for the calling token's owner, with the caller's scopes.
#[utoipa::path(post, path = "/api/create_token", tag = "interana",
    responses((status = 200, body = Created), (status = 401, body = Failure), (status = 403, body = Failure)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn create_token_post(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Created>, InteranaError> {
    create(state, caller).await
}

/// The same as `POST /api/create_token` (Interana accepts both methods).
#[utoipa::path(get, path = "/api/create_token", tag = "interana",
    responses((status = 200, body = Created), (status = 401, body = Failure), (status = 403, body = Failure)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn create_token_get(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Created>, InteranaError> {
    create(state, caller).await
}

/// Revoke a token of the caller's owner (any token of the tenant with `tokens:admin`).
#[utoipa::path(post, path = "/api/revoke_token", tag = "interana",
    request_body = RevokeRequest,
    responses((status = 200, body = Done), (status = 400, body = Failure), (status = 401, body = Failure),
              (status = 403, body = Failure), (status = 404, body = Failure),
              (status = 422, description = "A field of the wrong type", body = Failure)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<RevokeRequest>, ApiError>,
) -> Result<axum::Json<Done>, InteranaError> {
    let caller = caller?;
    let Json(req) = body?;
    let not_found = || ApiError::NotFound("No such token of yours".into());
    let rec = tokens::visible_by_secret(&state, &caller, req.token.expose_secret())
        .await?
        .ok_or_else(not_found)?;
    let action = if caller.is_token(&rec.id) {
        AuditAction::TokenRevokeSelf
    } else {
        AuditAction::TokenDelete
    };
    tokens::delete(&state, &caller, rec, action).await?;
    Ok(axum::Json(Done { success: true }))
}
