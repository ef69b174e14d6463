//! The scope catalogue and the audit log.

use axum::extract::State;
use keygate_store::AuditFilter;

use crate::auth::{AnyScope, AuditRead, Authorized};
use crate::dto::{AuditList, ListAuditQuery, ScopeInfo};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::Query;
use crate::routes::tokens::{page_limit, parse_cursor};
use crate::state::AppState;

/// The scopes this deployment knows, built-in and deployment-defined.
#[utoipa::path(get, path = "/api/v1/scopes", tag = "scopes",
    responses((status = 200, body = Vec<ScopeInfo>), (status = 401, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn list_scopes(
    State(state): State<AppState>,
    _caller: Authorized<AnyScope>,
) -> axum::Json<Vec<ScopeInfo>> {
    axum::Json(
        state
            .config
            .catalog
            .entries()
            .map(|(name, entry)| ScopeInfo {
                name: name.to_owned(),
                description: entry.description.clone(),
                group: entry.group.to_owned(),
            })
            .collect(),
    )
}

/// Every change, newest first: who, what, which token, from where, when.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    params(ListAuditQuery),
    responses((status = 200, body = AuditList), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn list_audit(
    State(state): State<AppState>,
    caller: Authorized<AuditRead>,
    Query(q): Query<ListAuditQuery>,
) -> ApiResult<axum::Json<AuditList>> {
    let filter = AuditFilter {
        action: q.action,
        actor: q.actor_id,
        target_id: q.target_id,
        before_seq: parse_cursor(q.cursor.as_deref())?,
        limit: page_limit(q.limit)?,
    };
    let page = state.store.list_audit(caller.tenant_id(), &filter).await?;
    Ok(axum::Json(AuditList {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next.map(|n| n.to_string()),
    }))
}
