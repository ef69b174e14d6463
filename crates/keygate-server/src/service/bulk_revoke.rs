//! Bulk revoke: every token of the caller's tenant that matches a set of criteria, revoked in
//! one transaction, each revocation audited and announced as single revoke does it. Only a
//! tenant's admin (`TokensAdminChange`) reaches it.

use std::collections::HashSet;

use keygate_core::{AuditAction, EventType};
use keygate_store::{NewAudit, TokenFilter, TokenRecord, Write};
use serde_json::json;
use time::OffsetDateTime;

use crate::auth::{Authorized, Caller, TokensAdminChange};
use crate::error::{ApiError, ApiResult};
use crate::service::events;
use crate::service::tokens::{apply_then_forget, audit};
use crate::state::AppState;

/// Most tokens one request may match (and most ids it may name): a larger revoke is a mistake
/// more often than a plan, and one transaction of it would hold the database for long.
pub const MAX_MATCHED: u32 = 10_000;

/// What the audit entries and the events give as the reason of each revocation.
pub const REASON: &str = "bulk";

/// Which tokens to revoke: every criterion given must hold (AND).
#[derive(Debug, Default, Clone)]
pub struct Criteria {
    pub ids: Option<Vec<String>>,
    pub owner_id: Option<String>,
    pub external_id: Option<String>,
    pub scope: Option<String>,
    pub created_before: Option<OffsetDateTime>,
}

impl Criteria {
    /// Refuses criteria that would match everything (none given) or nothing by mistake (an
    /// empty list of ids), and more ids than one request may revoke.
    pub fn checked(mut self) -> ApiResult<Self> {
        if let Some(ids) = &mut self.ids {
            if ids.is_empty() {
                return Err(ApiError::Unprocessable(
                    "ids must name at least one token (or leave it out and filter by ownerId, \
                     externalId, scope or createdBefore)"
                        .into(),
                ));
            }
            if ids.len() > MAX_MATCHED as usize {
                return Err(ApiError::Unprocessable(format!(
                    "ids may name at most {MAX_MATCHED} tokens per request"
                )));
            }
            let mut seen = HashSet::new();
            ids.retain(|id| seen.insert(id.clone()));
        }
        let Criteria {
            ids,
            owner_id,
            external_id,
            scope,
            created_before,
        } = &self;
        if ids.is_none()
            && owner_id.is_none()
            && external_id.is_none()
            && scope.is_none()
            && created_before.is_none()
        {
            return Err(ApiError::Unprocessable(
                "give at least one criterion: ids, ownerId, externalId, scope or createdBefore \
                 (a bulk revoke never matches every token by default)"
                    .into(),
            ));
        }
        Ok(self)
    }

    /// Are ids the only criterion?
    fn ids_only(&self) -> bool {
        self.owner_id.is_none()
            && self.external_id.is_none()
            && self.scope.is_none()
            && self.created_before.is_none()
    }

    fn filter(&self, ids: Option<Vec<String>>) -> TokenFilter {
        TokenFilter {
            ids,
            owner_id: self.owner_id.clone(),
            external_id: self.external_id.clone(),
            scope: self.scope.clone(),
            created_before: self.created_before,
            limit: MAX_MATCHED,
            ..TokenFilter::default()
        }
    }
}

/// What a bulk revoke did, or would do on a dry run.
#[derive(Debug)]
pub struct Revoked {
    /// The revoked tokens' ids, newest first.
    pub ids: Vec<String>,
    /// Ids asked for that are no token of the caller's tenant (or were revoked already).
    pub not_found: Vec<String>,
    /// The calling token matched and was left alone.
    pub calling_token_kept: bool,
}

/// Revokes every token that matches `criteria` (checked), except the calling token, or with
/// `dry_run` only says which it would. The caller must cover what each token can grant (the
/// rule of [`crate::service::tokens::ensure_may_take_away`], with no exception for the admin):
/// one request can take down many tokens, so it never takes down one more powerful than its
/// caller; a single revoke still can. Refused as a whole (403) when one is not covered, and
/// (422) when more than [`MAX_MATCHED`] match.
pub async fn bulk_revoke(
    state: &AppState,
    caller: &Authorized<TokensAdminChange>,
    criteria: &Criteria,
    dry_run: bool,
) -> ApiResult<Revoked> {
    // A token revoked by someone else between our read and our write fails the batch; the
    // next attempt no longer matches it.
    const ATTEMPTS: usize = 3;
    for attempt in 1..=ATTEMPTS {
        let (to_revoke, revoked) = select(state, caller, criteria).await?;
        if dry_run || to_revoke.is_empty() {
            return Ok(revoked);
        }
        match revoke(state, caller, &to_revoke).await {
            Ok(()) => return Ok(revoked),
            Err(ApiError::NotFound(_)) if attempt < ATTEMPTS => continue,
            Err(ApiError::NotFound(_)) => {
                return Err(ApiError::Conflict(
                    "the matched tokens kept changing while they were being revoked; try again"
                        .into(),
                ))
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the last attempt returns")
}

/// The tokens to revoke, checked against the caller, and the answer that revoking them gives.
async fn select(
    state: &AppState,
    caller: &Caller,
    criteria: &Criteria,
) -> ApiResult<(Vec<TokenRecord>, Revoked)> {
    let matched = matching(state, caller, criteria.filter(criteria.ids.clone())).await?;
    let not_found = match &criteria.ids {
        None => Vec::new(),
        Some(ids) => {
            // An id that exists but fails another criterion is not "not found": it is only
            // not matched. Without other criteria the match already says which exist.
            let only_ids = Criteria {
                ids: Some(ids.clone()),
                ..Criteria::default()
            };
            let existing: HashSet<String> = if criteria.ids_only() {
                matched.iter().map(|t| t.id.to_string()).collect()
            } else {
                matching(state, caller, only_ids.filter(Some(ids.clone())))
                    .await?
                    .iter()
                    .map(|t| t.id.to_string())
                    .collect()
            };
            ids.iter()
                .filter(|id| !existing.contains(*id))
                .cloned()
                .collect()
        }
    };
    let (kept, to_revoke): (Vec<_>, Vec<_>) =
        matched.into_iter().partition(|t| caller.is_token(&t.id));
    for t in &to_revoke {
        ensure_covers(state, caller, t)?;
    }
    let revoked = Revoked {
        ids: to_revoke.iter().map(|t| t.id.to_string()).collect(),
        not_found,
        calling_token_kept: !kept.is_empty(),
    };
    Ok((to_revoke, revoked))
}

/// The caller's tenant's tokens that pass `filter`, at most [`MAX_MATCHED`].
async fn matching(
    state: &AppState,
    caller: &Caller,
    filter: TokenFilter,
) -> ApiResult<Vec<TokenRecord>> {
    let page = state.store.list_tokens(caller.tenant_id(), &filter).await?;
    if page.next.is_some() {
        return Err(ApiError::Unprocessable(format!(
            "more than {MAX_MATCHED} tokens match, the most one bulk revoke may revoke; narrow \
             the criteria (e.g. add createdBefore or ownerId) and repeat"
        )));
    }
    Ok(page
        .items
        .into_iter()
        .filter(|t| caller.may_see(t))
        .collect())
}

/// Does the caller cover what this token can grant? A refusal names what it lacks and which
/// token, so the caller can leave that one out.
fn ensure_covers(state: &AppState, caller: &Caller, t: &TokenRecord) -> ApiResult<()> {
    let missing = state
        .config
        .catalog
        .missing_grants(caller.scopes(), &t.scopes);
    if missing.is_empty() {
        return Ok(());
    }
    tracing::info!(token = %t.id, "bulk revoke refused: the caller does not cover a matched token");
    Err(ApiError::InsufficientScope(missing))
}

/// Deletes the tokens (distinct, of the caller's tenant), with an audit entry and a
/// `token.revoked` event each, in one batch.
async fn revoke(
    state: &AppState,
    caller: &Authorized<TokensAdminChange>,
    tokens: &[TokenRecord],
) -> ApiResult<()> {
    let mut writes: Vec<Write> = Vec::with_capacity(tokens.len() + 1);
    writes.push(Write::DeleteTokens {
        tenant_id: caller.tenant_id().to_owned(),
        ids: tokens.iter().map(|t| t.id.clone()).collect(),
    });
    let mut entries: Vec<NewAudit> = Vec::with_capacity(tokens.len());
    for t in tokens {
        writes.push(events::token_event(
            state,
            EventType::TokenRevoked,
            t,
            events::fields(json!({ "reason": REASON })),
        ));
        entries.push(audit(
            caller,
            AuditAction::TokenDelete,
            t.id.as_str(),
            json!({ "name": t.name, "reason": REASON }),
        ));
    }
    let hashes = tokens.iter().map(|t| t.hash).collect();
    apply_then_forget(state, writes, entries, hashes).await
}
