//! `POST /api/v1/tokens/import`: tokens made and hashed elsewhere, imported by their SHA-256
//! so that their holders keep them; all or nothing.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use keygate_core::fields::{Metadata, TokenName};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authorized, TokensAdminChange};
use crate::dto::{ImportTokenRequest, ImportTokensRequest, ImportedTokens};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::LargeJson;
use crate::service::import::{self, parse_sha256, Existing, ImportToken, Source};
use crate::service::tokens::{self, NewToken, Usage};
use crate::state::AppState;

/// 10 000 tokens with names, scopes and some metadata: more than the default limit of every
/// other route, so this route alone has its own.
pub const MAX_IMPORT_BODY: usize = 16 << 20;

/// The route, with its own body limit.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(import_tokens))
        .layer(DefaultBodyLimit::max(MAX_IMPORT_BODY))
}

/// Import tokens made elsewhere by the SHA-256 of each, all or none (tokens:admin). Their
/// holders keep them: keygate verifies them by hash, as it does its own.
#[utoipa::path(post, path = "/api/v1/tokens/import", tag = "tokens",
    request_body = ImportTokensRequest,
    responses(
        (status = 201, description = "Imported, in the order of the request", body = ImportedTokens),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "tokens:admin missing, or a scope the caller lacks", body = ErrorBody),
        (status = 409, description = "A hash keygate holds already (the index named), or an owner's limit", body = ErrorBody),
        (status = 413, description = "Body over 16 MiB", body = ErrorBody),
        (status = 422, description = "An invalid token (the index named), or more than 10000", body = ErrorBody),
    ),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn import_tokens(
    State(state): State<AppState>,
    caller: Authorized<TokensAdminChange>,
    LargeJson(req): LargeJson<ImportTokensRequest, MAX_IMPORT_BODY>,
) -> ApiResult<(StatusCode, axum::Json<ImportedTokens>)> {
    if req.tokens.is_empty() || req.tokens.len() > import::MAX_IMPORT {
        return Err(ApiError::Unprocessable(format!(
            "tokens must hold 1-{} tokens, not {}; import more in several requests",
            import::MAX_IMPORT,
            req.tokens.len()
        )));
    }
    let now = keygate_store::now();
    let batch = req
        .tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| parse_token(&state, now, i, t))
        .collect::<ApiResult<Vec<_>>>()?;
    let source = Source {
        name: "import",
        field: "tokens",
        audit: json!({}),
    };
    let done = import::import(&state, &caller, batch, Existing::Refuse, source).await?;
    let tokens: Vec<_> = done
        .tokens
        .into_iter()
        .map(|t| tokens::view(&state, t))
        .collect();
    Ok((
        StatusCode::CREATED,
        axum::Json(ImportedTokens {
            imported: tokens.len(),
            tokens,
        }),
    ))
}

/// One token of the request, checked as a create checks its fields; a refusal names it by
/// its index.
fn parse_token(
    state: &AppState,
    now: time::OffsetDateTime,
    i: usize,
    t: ImportTokenRequest,
) -> ApiResult<ImportToken> {
    let at = format!("tokens[{i}]");
    let refused = |e: &dyn std::fmt::Display| ApiError::Unprocessable(format!("{at}.{e}"));
    let hash =
        parse_sha256(&t.hash).map_err(|e| ApiError::Unprocessable(format!("{at}.hash: {e}")))?;
    let name = TokenName::try_from(t.name).map_err(|e| refused(&e))?;
    let scopes = tokens::validate_scopes(state, &t.scopes).map_err(|e| match e {
        ApiError::Unprocessable(m) => ApiError::Unprocessable(format!("{at}.scopes: {m}")),
        e => e,
    })?;
    let spec = NewToken {
        expires_at: tokens::expiry(now, t.expires_at, None).map_err(|e| refused(&e))?,
        owner_id: t.owner_id,
        metadata: Metadata::optional(t.metadata).map_err(|e| refused(&e))?,
        usage: Usage {
            external_id: t.external_id,
            ..Usage::default()
        }
        .checked()
        .map_err(|e| match e {
            ApiError::Unprocessable(m) => ApiError::Unprocessable(format!("{at}.{m}")),
            e => e,
        })?,
        ..NewToken::new(name, scopes)
    };
    Ok(ImportToken {
        hash,
        spec,
        enabled: true,
    })
}
