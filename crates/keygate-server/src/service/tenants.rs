//! Tenants: creating one, with its first admin user and that admin's token, in one transaction.

use keygate_core::{AuditAction, PlainToken, Role, TenantPolicy, TokenId, Username};
use keygate_store::{TokenRecord, UserRecord, Write};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::auth::{Authorized, Caller, TenantPolicyWrite, TenantsAdmin};
use crate::dto::{CreateTenantRequest, CreatedTenant, TenantPolicyRequest, TenantPolicyView};
use crate::error::{ApiError, ApiResult};
use crate::service::passwords::{self, generate_password, validate_password};
use crate::service::tokens;
use crate::service::users::new_user_id;
use crate::state::AppState;

pub const MAX_TENANT_NAME_CHARS: usize = 63;

/// Lower-case letters, digits and `-`: a tenant's name is also its id, in URLs and headers.
pub fn validate_tenant_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_TENANT_NAME_CHARS
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(format!(
            "tenant name must be 1-{MAX_TENANT_NAME_CHARS} characters: lower-case letters, \
             digits and '-', starting with a letter or digit"
        )))
    }
}

/// Creates a tenant with its first admin user and a token for that admin, all in one
/// transaction, audited in the new tenant and in the caller's.
pub async fn create_tenant(
    state: &AppState,
    caller: &Authorized<TenantsAdmin>,
    req: CreateTenantRequest,
) -> ApiResult<CreatedTenant> {
    validate_tenant_name(&req.name)?;
    let username = Username::try_from(req.admin_username.unwrap_or_else(|| "admin".to_owned()))?;
    let (password, generated) = match req.admin_password {
        Some(p) => {
            validate_password(p.expose_secret())?;
            (p, false)
        }
        None => (generate_password().into(), true),
    };
    let now = keygate_store::now();
    let admin = UserRecord {
        id: new_user_id(),
        tenant_id: req.name.clone(),
        username: username.into_string(),
        password_hash: passwords::hash_password(password.clone()).await?,
        role: Role::Admin.as_str().to_owned(),
        created_at: now,
    };
    let (token_id, plain): (TokenId, PlainToken) = PlainToken::mint(&state.config.prefix);
    let token = TokenRecord {
        description: Some("Created with the tenant; holds the admin role's scopes".into()),
        created_by: Some(caller.actor()),
        ..TokenRecord::minted(
            token_id,
            req.name.clone(),
            plain.hash(),
            "first admin token".into(),
            admin.id.clone(),
            (**state.roles.of(Role::Admin)).clone(),
            now,
        )
    };
    let details = json!({ "tenant": req.name, "adminUserId": admin.id, "adminTokenId": token.id });
    let mut in_new = tokens::audit(
        caller,
        AuditAction::TenantCreate,
        &req.name,
        details.clone(),
    );
    in_new.tenant_id = req.name.clone();
    let in_callers = tokens::audit(caller, AuditAction::TenantCreate, &req.name, details);
    let writes = vec![
        Write::InsertTenant {
            id: req.name.clone(),
            created_at: now,
        },
        Write::InsertUser(admin.clone()),
        Write::InsertToken(token.clone()),
    ];
    tokens::commit(state, writes, vec![in_new, in_callers])
        .await
        .map_err(|e| match e {
            ApiError::Conflict(_) => {
                ApiError::Conflict(format!("a tenant named {:?} exists", req.name))
            }
            e => e,
        })?;
    Ok(CreatedTenant {
        id: req.name.clone(),
        name: req.name,
        created_at: now,
        admin: admin.into(),
        admin_password: generated.then_some(password),
        admin_token: plain.expose().into(),
        admin_token_id: token.id.to_string(),
    })
}

/// A tenant's policy is its own admins' business: another tenant's is not found, so that
/// callers cannot learn which tenants exist.
fn own_tenant(caller: &Caller, tenant_id: &str) -> ApiResult<()> {
    if caller.tenant_id() == tenant_id {
        Ok(())
    } else {
        Err(ApiError::NotFound("No tenant with this id".into()))
    }
}

async fn policy_view(
    state: &AppState,
    tenant_id: &str,
    policy: TenantPolicy,
) -> ApiResult<TenantPolicyView> {
    let violating = state
        .store
        .count_policy_violations(tenant_id, keygate_store::now())
        .await?;
    Ok(TenantPolicyView::new(tenant_id, policy, violating))
}

/// The caller's tenant's policy, with how many of its tokens break it.
pub async fn policy(
    state: &AppState,
    caller: &Caller,
    tenant_id: &str,
) -> ApiResult<TenantPolicyView> {
    own_tenant(caller, tenant_id)?;
    let policy = state.store.tenant_policy(tenant_id).await?;
    policy_view(state, tenant_id, policy).await
}

/// Replaces the caller's tenant's policy. Tokens that break the new one are left as they are:
/// the answer counts them, and the token listing's `violatesPolicy` names them.
pub async fn set_policy(
    state: &AppState,
    caller: &Authorized<TenantPolicyWrite>,
    tenant_id: &str,
    req: TenantPolicyRequest,
) -> ApiResult<TenantPolicyView> {
    own_tenant(caller, tenant_id)?;
    let new = TenantPolicy {
        max_lifetime_seconds: req
            .max_lifetime_seconds
            .map(keygate_core::policy::check_max_lifetime)
            .transpose()
            .map_err(|e| ApiError::Unprocessable(e.message))?,
        require_expiry: req.require_expiry,
        on_reuse: req.on_reuse.into(),
        on_leak: req.on_leak.into(),
    };
    let old = state.store.tenant_policy(tenant_id).await?;
    let shown = |p: TenantPolicy| {
        serde_json::to_value(TenantPolicyView::new(tenant_id, p, 0))
            .map(|mut v| {
                if let Some(o) = v.as_object_mut() {
                    o.remove("violatingTokens");
                    o.remove("tenantId");
                }
                v
            })
            .expect("a policy serialises")
    };
    let entry = tokens::audit(
        caller,
        AuditAction::TenantPolicyUpdate,
        tenant_id,
        json!({ "old": shown(old), "new": shown(new) }),
    );
    let write = Write::SetTenantPolicy {
        tenant_id: tenant_id.to_owned(),
        policy: new,
        at: keygate_store::now(),
    };
    tokens::commit(state, vec![write], vec![entry]).await?;
    policy_view(state, tenant_id, new).await
}
