//! `keys.addPermissions`, `keys.removePermissions`, `keys.setPermissions`: a key's scopes,
//! changed under the same no-escalation rules as the native update. Each answers the key's
//! permissions as they now are.

use axum::extract::State;
use axum::response::Response;
use keygate_core::{AuditAction, Scope, ScopeSet};
use keygate_store::TokenRecord;
use serde::Deserialize;
use serde_json::json;

use super::envelope::*;
use super::error::UnkeyError;
use super::input::{self, At};
use super::model::permissions;
use crate::auth::{Authorized, TokensWrite};
use crate::service::tokens;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct KeyPermissions {
    key_id: String,
    permissions: Vec<String>,
}

enum Change {
    Add,
    Remove,
    Set,
}

pub async fn add_permissions(
    State(state): State<AppState>,
    caller: Writer,
    body: Body,
) -> Result<Response, UnkeyError> {
    change(&state, caller?, parse(body)?, Change::Add).await
}

pub async fn remove_permissions(
    State(state): State<AppState>,
    caller: Writer,
    body: Body,
) -> Result<Response, UnkeyError> {
    change(&state, caller?, parse(body)?, Change::Remove).await
}

pub async fn set_permissions(
    State(state): State<AppState>,
    caller: Writer,
    body: Body,
) -> Result<Response, UnkeyError> {
    change(&state, caller?, parse(body)?, Change::Set).await
}

async fn change(
    state: &AppState,
    caller: Authorized<TokensWrite>,
    req: KeyPermissions,
    how: Change,
) -> Result<Response, UnkeyError> {
    let at = At("");
    if req.permissions.is_empty() && !matches!(how, Change::Set) {
        return Err(UnkeyError::invalid(
            "permissions",
            "permissions must name at least one permission",
        ));
    }
    let (rec, scopes) = match how {
        Change::Add => {
            let added = input::permissions(state, &at, Some(req.permissions))?;
            let rec = tokens::changeable(state, &caller, &req.key_id).await?;
            tokens::ensure_covers(&caller, &added)?;
            let scopes = union(&rec.scopes, &added);
            (rec, scopes)
        }
        Change::Set => {
            let wanted = input::permissions(state, &at, Some(req.permissions))?;
            let rec = tokens::changeable(state, &caller, &req.key_id).await?;
            tokens::ensure_covers(&caller, &wanted)?;
            (rec, wanted)
        }
        // Taking scopes away is never harder than taking the whole key's power away.
        Change::Remove => {
            let rec = tokens::visible(state, &caller, &req.key_id).await?;
            tokens::ensure_may_take_away(state, &caller, &rec)?;
            let kept = rec
                .scopes
                .iter()
                .filter(|s| !req.permissions.iter().any(|p| p == s.as_str()))
                .cloned()
                .collect();
            (rec, ScopeSet::new(kept))
        }
    };
    let saved = save_scopes(state, &caller, rec, scopes).await?;
    Ok(answer(permissions(&saved, &state.config.catalog)))
}

fn union(a: &ScopeSet, b: &ScopeSet) -> ScopeSet {
    let mut all: Vec<Scope> = a.iter().cloned().collect();
    all.extend(b.iter().filter(|s| !a.iter().any(|h| h == *s)).cloned());
    ScopeSet::new(all)
}

async fn save_scopes(
    state: &AppState,
    caller: &Authorized<TokensWrite>,
    mut rec: TokenRecord,
    scopes: ScopeSet,
) -> Result<TokenRecord, UnkeyError> {
    if rec.scopes == scopes {
        return Ok(rec);
    }
    rec.scopes = scopes;
    let details = json!({ "surface": "unkey", "scopes": rec.scopes.names() });
    Ok(tokens::save(state, caller, rec, AuditAction::TokenUpdate, details).await?)
}
