//! Reuse detection: a token that was rotated out and is presented after its grace period has
//! most likely leaked (its holder moved to the successor). It is refused as `EXPIRED`, as every
//! expired token is, and beside that: a `token.reused` event and an audit entry with the
//! client's address, and under the tenant's policy `onReuse: "revoke"` the revocation of every
//! token that replaced it, since whoever holds the old one may hold the new one (GitLab's
//! behaviour).
//!
//! None of it is on the hot path: it starts only from an `EXPIRED` refusal, after the answer is
//! decided, at most once a minute per token and address on a node, in a task of its own.

use std::net::IpAddr;
use std::sync::Arc;

use keygate_core::{AuditAction, EventType, OnReuse, TokenId};
use keygate_store::cache::CachedToken;
use keygate_store::{NewAudit, TokenRecord, TokenStatus, Write};
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::service::{events, tokens};
use crate::state::AppState;

/// Rotations followed from a reused token; a chain is never near this long, and a bound keeps
/// a corrupt cycle from looping.
const MAX_CHAIN: usize = 100;

/// Who revokes a successor in the audit log: no caller asked for it.
const ACTOR: &str = "system";

/// Called by `auth` for every token refused as expired (`AppState::on_expired`).
pub fn expired_presented(state: &AppState, t: &Arc<CachedToken>, ip: Option<IpAddr>) {
    let now = keygate_store::now();
    let minute = now.unix_timestamp().div_euclid(60);
    if !state.expired_seen.first_in_minute(&t.id, ip, minute) {
        return;
    }
    let state = state.clone();
    let (tenant_id, id) = (t.tenant_id.to_string(), t.id.clone());
    tokio::spawn(async move {
        if let Err(e) = report(&state, &tenant_id, &id, ip).await {
            tracing::warn!(error = %e, token = %id, "could not record the reuse of a rotated-out token");
        }
    });
}

/// Records the reuse, if the token was rotated out: the cache does not know, so the record is
/// read (an expired token that was never rotated costs this one read a minute per address).
async fn report(
    state: &AppState,
    tenant_id: &str,
    id: &TokenId,
    ip: Option<IpAddr>,
) -> ApiResult<()> {
    // A successor revoked meanwhile fails the batch; the chain is then read again.
    for _ in 0..3 {
        let Some(reused) = state.store.token_by_id(tenant_id, id.as_str()).await? else {
            return Ok(());
        };
        let Some(successor) = reused.rotated_to.clone() else {
            return Ok(());
        };
        if reused.status_at(keygate_store::now()) != TokenStatus::Expired {
            return Ok(());
        }
        match record(state, &reused, &successor, ip).await {
            Err(ApiError::NotFound(_)) => continue,
            done => return done,
        }
    }
    Ok(())
}

async fn record(
    state: &AppState,
    reused: &TokenRecord,
    successor: &TokenId,
    ip: Option<IpAddr>,
) -> ApiResult<()> {
    let policy = state.store.tenant_policy(&reused.tenant_id).await?;
    let revoked = match policy.on_reuse {
        OnReuse::Revoke => successors(state, reused).await?,
        OnReuse::Notify => Vec::new(),
    };
    let ip = ip.map(|a| a.to_string());
    let at = keygate_store::now();
    let entry = |actor: &str, action: AuditAction, target: &TokenRecord, details| NewAudit {
        tenant_id: reused.tenant_id.clone(),
        at,
        actor: actor.to_owned(),
        action: action.into(),
        target_id: Some(target.id.to_string()),
        ip: ip.clone(),
        details: Some(details),
    };
    let revoked_ids: Vec<&str> = revoked.iter().map(|t| t.id.as_str()).collect();
    let mut writes = vec![events::token_event(
        state,
        EventType::TokenReused,
        reused,
        events::fields(json!({ "ip": ip, "successorId": successor,
                               "onReuse": policy.on_reuse.as_str(), "revoked": revoked_ids })),
    )];
    let mut audit = vec![entry(
        reused.id.as_str(),
        AuditAction::TokenReused,
        reused,
        json!({ "ip": ip, "name": reused.name, "successorId": successor,
                "onReuse": policy.on_reuse.as_str(), "revoked": revoked_ids }),
    )];
    for t in &revoked {
        writes.push(Write::DeleteToken {
            tenant_id: t.tenant_id.clone(),
            id: t.id.clone(),
        });
        let why = json!({ "reason": "reuse", "reusedTokenId": reused.id, "name": t.name });
        writes.push(events::token_event(
            state,
            EventType::TokenRevoked,
            t,
            events::fields(json!({ "reason": "reuse", "reusedTokenId": reused.id })),
        ));
        audit.push(entry(ACTOR, AuditAction::TokenDelete, t, why));
    }
    let hashes = revoked.iter().map(|t| t.hash).collect();
    tokens::apply_then_forget(state, writes, audit, hashes).await
}

/// The tokens that replaced `reused`, following `rotated_to` until a token that was not rotated
/// (or is gone).
async fn successors(state: &AppState, reused: &TokenRecord) -> ApiResult<Vec<TokenRecord>> {
    let mut chain: Vec<TokenRecord> = Vec::new();
    let mut next = reused.rotated_to.clone();
    while let Some(id) = next {
        if chain.len() >= MAX_CHAIN || chain.iter().any(|t| t.id == id) || id == reused.id {
            break;
        }
        let Some(t) = state
            .store
            .token_by_id(&reused.tenant_id, id.as_str())
            .await?
        else {
            break;
        };
        next = t.rotated_to.clone();
        chain.push(t);
    }
    Ok(chain)
}
