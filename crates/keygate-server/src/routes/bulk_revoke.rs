//! `POST /api/v1/tokens/bulk-revoke`: many tokens of the tenant revoked at once, by ids and
//! filters (`service::bulk_revoke`).

use axum::extract::State;

use crate::auth::{Authorized, TokensAdminChange};
use crate::dto::{BulkRevokeQuery, BulkRevokeRequest, BulkRevokeResponse};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Query};
use crate::service::bulk_revoke::{self, Criteria};
use crate::state::AppState;

/// Revoke every token of the tenant that matches all the criteria given, in one transaction,
/// each audited (`token.delete`, reason `bulk`) and announced (`token.revoked`). The calling
/// token is never revoked. Refused as a whole when the caller does not cover what a matched
/// token can grant (403) or when more than 10 000 tokens match (422). `dryRun=true` answers the
/// same and changes nothing.
#[utoipa::path(post, path = "/api/v1/tokens/bulk-revoke", tag = "tokens",
    params(BulkRevokeQuery),
    request_body = BulkRevokeRequest,
    responses(
        (status = 200, description = "Revoked (or, on a dry run, would be)", body = BulkRevokeResponse),
        (status = 400, description = "Malformed JSON or query", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "tokens:admin missing, or a matched token holds a scope the caller lacks", body = ErrorBody),
        (status = 409, description = "The matched tokens kept changing; try again", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "No criterion, an invalid field, or more than 10 000 tokens match", body = ErrorBody),
    ),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn bulk_revoke(
    State(state): State<AppState>,
    caller: Authorized<TokensAdminChange>,
    Query(q): Query<BulkRevokeQuery>,
    Json(req): Json<BulkRevokeRequest>,
) -> ApiResult<axum::Json<BulkRevokeResponse>> {
    let criteria = Criteria {
        ids: req.ids,
        owner_id: req.owner_id,
        external_id: req.external_id,
        scope: req.scope,
        created_before: req.created_before,
    }
    .checked()?;
    let dry_run = q.dry_run.unwrap_or(false);
    let done = bulk_revoke::bulk_revoke(&state, &caller, &criteria, dry_run).await?;
    Ok(axum::Json(BulkRevokeResponse {
        revoked: done.ids.len(),
        dry_run,
        ids: done.ids,
        not_found: done.not_found,
        calling_token_kept: done.calling_token_kept,
    }))
}
