//! `/api/v1/replication/*`: what a `keygate-client` replica reads: a snapshot of the tenant's
//! tokens, page by page, and the change stream after it (long-poll).

use std::time::Duration;

use axum::extract::State;

use crate::auth::{Authorized, TokensReplicate};
use crate::dto::*;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Query;
use crate::service::replication::{
    self, page_limit, Cursor, DEFAULT_CHANGES_PAGE, DEFAULT_SNAPSHOT_PAGE, MAX_WAIT,
};
use crate::state::AppState;

/// One page of the tenant's tokens, oldest first: hashes, never secrets. Start the change
/// stream from the first page's `cursor` once the last page is read.
#[utoipa::path(get, path = "/api/v1/replication/snapshot", tag = "replication",
    params(SnapshotQuery),
    responses(
        (status = 200, body = SnapshotPageView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The token lacks tokens:replicate", body = ErrorBody),
    ),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn snapshot(
    State(state): State<AppState>,
    caller: Authorized<TokensReplicate>,
    Query(q): Query<SnapshotQuery>,
) -> ApiResult<axum::Json<SnapshotPageView>> {
    if q.after.is_some_and(|a| a < 0) {
        return Err(ApiError::BadRequest(
            "after must be the next of a previous page".into(),
        ));
    }
    let limit = page_limit(q.limit, DEFAULT_SNAPSHOT_PAGE)?;
    let (cursor, page) = replication::snapshot(&state, &caller, q.after, limit).await?;
    Ok(axum::Json(SnapshotPageView {
        cursor: cursor.to_string(),
        prefix: state.config.prefix.as_str().to_owned(),
        tokens: page.tokens.into_iter().map(Into::into).collect(),
        next: page.next,
    }))
}

/// Every change to the tenant's tokens that can change a verification's answer (create,
/// update, disable, expiry, scopes, allow-list, limits or credits switched on or off, delete),
/// from every node, in commit order. With `wait`, an answer with no changes waits up to that
/// many seconds for one. A cursor older than the changes kept (`--replication-retention`) is
/// refused with 410: take a new snapshot.
#[utoipa::path(get, path = "/api/v1/replication/changes", tag = "replication",
    params(ChangesQuery),
    responses(
        (status = 200, body = ChangesView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The token lacks tokens:replicate", body = ErrorBody),
        (status = 410, description = "The cursor is too old: take a new snapshot", body = ErrorBody),
    ),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn changes(
    State(state): State<AppState>,
    caller: Authorized<TokensReplicate>,
    Query(q): Query<ChangesQuery>,
) -> ApiResult<axum::Json<ChangesView>> {
    let after: Cursor = q.after.parse()?;
    let wait = Duration::from_secs(q.wait.unwrap_or(0));
    if wait > MAX_WAIT {
        return Err(ApiError::BadRequest(format!(
            "wait must be between 0 and {} seconds",
            MAX_WAIT.as_secs()
        )));
    }
    let limit = page_limit(q.limit, DEFAULT_CHANGES_PAGE)?;
    let c = replication::changes(&state, &caller, after, wait, limit).await?;
    Ok(axum::Json(ChangesView {
        cursor: c.cursor.to_string(),
        changes: c.changes.into_iter().map(Into::into).collect(),
        more: c.more,
    }))
}
