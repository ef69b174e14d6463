//! The tenant's policy, kept wherever a token comes to be or changes its expiry: the native API
//! and every compatible surface reach these checks through `service::tokens` (create, import,
//! save, rotate), so a token beyond the policy is refused the same way everywhere, with a 422
//! that names the rule.

use keygate_store::TokenRecord;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// How long a token lives, from its creation to its expiry, in milliseconds (`None`: for ever).
fn lifetime_ms(rec: &TokenRecord) -> Option<i64> {
    rec.expires_at
        .map(|e| (e - rec.created_at).whole_milliseconds() as i64)
}

/// A new token (created, imported or minted by a rotation) must keep its tenant's policy.
pub async fn check_new(state: &AppState, rec: &TokenRecord) -> ApiResult<()> {
    let policy = state.store.tenant_policy(&rec.tenant_id).await?;
    policy
        .check_lifetime(lifetime_ms(rec))
        .map_err(|e| ApiError::Unprocessable(e.message))
}

/// [`check_new`] for a batch of new tokens of one tenant, the policy read once; a refusal
/// gives the key of the token refused.
pub async fn check_new_all<'a, K>(
    state: &AppState,
    recs: impl Iterator<Item = (K, &'a TokenRecord)>,
) -> Result<(), (K, ApiError)> {
    let mut policy = None;
    for (k, rec) in recs {
        if policy.is_none() {
            match state.store.tenant_policy(&rec.tenant_id).await {
                Ok(p) => policy = Some(p),
                Err(e) => return Err((k, e.into())),
            }
        }
        if let Some(Err(e)) = policy.as_ref().map(|p| p.check_lifetime(lifetime_ms(rec))) {
            return Err((k, ApiError::Unprocessable(e.message)));
        }
    }
    Ok(())
}

/// A changed token must keep the policy if its expiry changes. A token made before a stricter
/// policy may still be renamed, rescoped or disabled: the policy lists it
/// (`violatesPolicy`), it does not lock it.
pub async fn check_changed(state: &AppState, rec: &TokenRecord) -> ApiResult<()> {
    let policy = state.store.tenant_policy(&rec.tenant_id).await?;
    let Err(e) = policy.check_lifetime(lifetime_ms(rec)) else {
        return Ok(());
    };
    let stored = state
        .store
        .token_by_id(&rec.tenant_id, rec.id.as_str())
        .await?;
    if stored.is_some_and(|s| s.expires_at == rec.expires_at) {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(e.message))
    }
}
