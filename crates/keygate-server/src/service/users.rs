//! Users: the operations behind `/api/v1/users`, with their rules. The one rule that matters most:
//! acting on a user of some role, or giving a user that role, needs every scope the role holds, so
//! `users:write` alone can never mint an admin.

use keygate_core::{base62, Role, Username};
use keygate_core::{AuditAction, EventType};
use keygate_store::{
    NewAudit, StoreError, TokenFilter, TokenRecord, UserRecord, Write, LAST_ADMIN,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::auth::session::stored_role;
use crate::auth::{Authorized, Caller, UsersWrite};
use crate::dto::{CreateUserRequest, UpdateUserRequest};
use crate::error::{ApiError, ApiResult};
use crate::service::passwords::{self, generate_password, validate_password};
use crate::service::{events, tokens};
use crate::state::AppState;

pub fn new_user_id() -> String {
    let mut id = String::from("usr_");
    base62::random(16, &mut id);
    id
}

/// No escalation through accounts: the caller must hold every scope of `role`.
pub fn ensure_may_manage(state: &AppState, caller: &Caller, role: Role) -> ApiResult<()> {
    tokens::ensure_covers(caller, state.roles.of(role))
}

fn user_not_found() -> ApiError {
    ApiError::NotFound("No user with this id".into())
}

fn audit(
    caller: &Caller,
    action: AuditAction,
    user: &UserRecord,
    details: serde_json::Value,
) -> NewAudit {
    tokens::audit(caller, action, &user.id, details)
}

/// A user of the caller's tenant; the same answer for another tenant's user as for none.
pub async fn visible(state: &AppState, caller: &Caller, id: &str) -> ApiResult<UserRecord> {
    state
        .store
        .user_by_id(caller.tenant_id(), id)
        .await?
        .ok_or_else(user_not_found)
}

/// Creates a user; returns the password too when it was generated (to be shown once).
pub async fn create(
    state: &AppState,
    caller: &Authorized<UsersWrite>,
    req: CreateUserRequest,
) -> ApiResult<(UserRecord, Option<SecretString>)> {
    let username = Username::try_from(req.username)?;
    let role: Role = req.role.as_deref().unwrap_or("member").parse()?;
    ensure_may_manage(state, caller, role)?;
    let (password, generated) = match req.password {
        Some(p) => {
            validate_password(p.expose_secret())?;
            (p, false)
        }
        None => (generate_password().into(), true),
    };
    let user = UserRecord {
        id: new_user_id(),
        tenant_id: caller.tenant_id().to_owned(),
        username: username.into_string(),
        password_hash: passwords::hash_password(password.clone()).await?,
        role: role.as_str().to_owned(),
        created_at: keygate_store::now(),
    };
    let entry = audit(
        caller,
        AuditAction::UserCreate,
        &user,
        json!({ "username": user.username, "role": user.role }),
    );
    state
        .store
        .apply(&[Write::InsertUser(user.clone())], &[entry])
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => {
                ApiError::Conflict(format!("a user named {:?} exists", user.username))
            }
            e => e.into(),
        })?;
    Ok((user, generated.then_some(password)))
}

/// Changes a role, a password, or both. A new password ends the user's web sessions. The store
/// refuses to demote a tenant's last admin, in the transaction of the change.
pub async fn update(
    state: &AppState,
    caller: &Authorized<UsersWrite>,
    id: &str,
    req: UpdateUserRequest,
) -> ApiResult<UserRecord> {
    if req.role.is_none() && req.password.is_none() {
        return Err(ApiError::Unprocessable(
            "give a role, a password, or both".into(),
        ));
    }
    let mut user = visible(state, caller, id).await?;
    let current = stored_role(&user)?;
    ensure_may_manage(state, caller, current)?;
    let mut details = json!({ "username": user.username });
    if let Some(r) = &req.role {
        let new: Role = r.parse()?;
        ensure_may_manage(state, caller, new)?;
        details["roleFrom"] = json!(current.as_str());
        details["roleTo"] = json!(new.as_str());
        user.role = new.as_str().to_owned();
    }
    let mut writes = Vec::new();
    if let Some(p) = req.password {
        validate_password(p.expose_secret())?;
        user.password_hash = passwords::hash_password(p).await?;
        details["passwordChanged"] = json!(true);
        writes.push(Write::DeleteUserSessions {
            tenant_id: user.tenant_id.clone(),
            user_id: user.id.clone(),
        });
    }
    writes.insert(0, Write::UpdateUser(user.clone()));
    let entry = audit(caller, AuditAction::UserUpdate, &user, details);
    state
        .store
        .apply(&writes, &[entry])
        .await
        .map_err(|e| match e {
            StoreError::NotFound => user_not_found(),
            e => e.into(),
        })?;
    Ok(user)
}

/// Every token a user owns.
async fn owned_tokens(state: &AppState, user: &UserRecord) -> ApiResult<Vec<TokenRecord>> {
    let mut all = Vec::new();
    let mut filter = TokenFilter {
        owner_id: Some(user.id.clone()),
        limit: 1000,
        ..TokenFilter::default()
    };
    loop {
        let page = state.store.list_tokens(&user.tenant_id, &filter).await?;
        all.extend(page.items);
        match page.next {
            Some(next) => filter.before_seq = Some(next),
            None => return Ok(all),
        }
    }
}

/// Deletes a user, their sessions and every token they own, each token audited. Returns how
/// many tokens were revoked. The store refuses to delete a tenant's last admin, in the
/// transaction of the delete.
pub async fn delete(
    state: &AppState,
    caller: &Authorized<UsersWrite>,
    id: &str,
) -> ApiResult<usize> {
    // A token created for the user between our listing and our write makes the store refuse
    // the batch (it never leaves a token without its owner); listing again then catches it.
    const ATTEMPTS: usize = 3;
    for attempt in 1..=ATTEMPTS {
        let user = visible(state, caller, id).await?;
        let role = stored_role(&user)?;
        ensure_may_manage(state, caller, role)?;
        if caller.owner_id() == user.id {
            return Err(ApiError::Conflict(
                "you cannot delete your own account (or the user who owns the calling token)"
                    .into(),
            ));
        }
        let owned = owned_tokens(state, &user).await?;
        let mut writes: Vec<Write> = owned
            .iter()
            .map(|t| Write::DeleteToken {
                tenant_id: t.tenant_id.clone(),
                id: t.id.clone(),
            })
            .collect();
        writes.extend(owned.iter().map(|t| {
            events::token_event(
                state,
                EventType::TokenRevoked,
                t,
                events::fields(json!({ "reason": "owner deleted" })),
            )
        }));
        writes.push(Write::DeleteUser {
            tenant_id: user.tenant_id.clone(),
            id: user.id.clone(),
        });
        let mut entries: Vec<NewAudit> = owned
            .iter()
            .map(|t| {
                tokens::audit(
                    caller,
                    AuditAction::TokenDelete,
                    t.id.as_str(),
                    json!({ "name": t.name, "reason": "owner deleted" }),
                )
            })
            .collect();
        entries.push(audit(
            caller,
            AuditAction::UserDelete,
            &user,
            json!({ "username": user.username, "revokedTokens": owned.len() }),
        ));
        let hashes: Vec<_> = owned.iter().map(|t| t.hash).collect();
        match tokens::apply_then_forget(state, writes, entries, hashes).await {
            Ok(()) => return Ok(owned.len()),
            Err(ApiError::Conflict(m)) if m == LAST_ADMIN => return Err(ApiError::Conflict(m)),
            Err(ApiError::Conflict(_) | ApiError::NotFound(_)) if attempt < ATTEMPTS => continue,
            Err(ApiError::NotFound(_)) => return Err(user_not_found()),
            Err(e) => return Err(e),
        }
    }
    unreachable!("the last attempt returns")
}
