//! Logging in and out of the web page: a login checks the password under the login limiters and
//! opens a session; the cookie that names it is shown once, to the browser.

use keygate_core::{base62, AuditAction, TokenHash};
use keygate_store::{NewAudit, SessionRecord, Write, DEFAULT_TENANT};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::auth::session::{stored_role, SessionUser};
use crate::auth::LiveSession;
use crate::dto::LoginRequest;
use crate::error::{ApiError, ApiResult};
use crate::service::passwords;
use crate::state::AppState;

/// 256 bits from the OS-seeded CSPRNG, in base62.
const SESSION_ID_CHARS: usize = 43;
const CSRF_TOKEN_CHARS: usize = 32;

/// What a login produced: the cookie value (shown once, to the browser) and the session.
pub struct LoggedIn {
    pub cookie_value: String,
    pub user: SessionUser,
}

/// Checks a username and password. Failures count against the account at this address, which
/// then waits longer and longer between attempts, and against the address; while either has to
/// wait, attempts are refused without checking the password. Nothing counts against the account
/// alone, so its owner, from an address of their own, is never kept out by strangers.
pub async fn login(state: &AppState, ip: Option<String>, req: LoginRequest) -> ApiResult<LoggedIn> {
    let tenant = req.tenant.unwrap_or_else(|| DEFAULT_TENANT.to_owned());
    let ip_key = ip.clone().unwrap_or_default();
    // A digest: what is typed as a username is unbounded, a limiter's key must not be.
    let account_key = TokenHash::of(&format!(
        "{tenant}\n{}\n{ip_key}",
        req.username.to_lowercase()
    ));
    let limiter = &state.login_limiter;
    if let Some(wait) = limiter
        .account_at_address
        .blocked_for(&account_key)
        .or_else(|| limiter.ips.blocked_for(&ip_key))
    {
        // Rounded up: a client that waits `Retry-After` seconds must find the wait over.
        return Err(ApiError::RateLimited(
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        ));
    }
    let user = if req.password.expose_secret().len() <= passwords::MAX_PASSWORD_BYTES {
        state.store.user_by_name(&tenant, &req.username).await?
    } else {
        None
    };
    let ok =
        passwords::password_matches(user.as_ref().map(|u| u.password_hash.clone()), req.password)
            .await?;
    let now = keygate_store::now();
    let Some(user) = user.filter(|_| ok) else {
        limiter.account_at_address.record_failure(&account_key);
        limiter.ips.record_failure(&ip_key);
        audit_failure(state, &tenant, &req.username, ip).await;
        return Err(ApiError::InvalidCredentials);
    };
    limiter.account_at_address.clear(&account_key);
    let role = stored_role(&user)?;
    let mut cookie_value = String::new();
    base62::random(SESSION_ID_CHARS, &mut cookie_value);
    let mut csrf_token = String::new();
    base62::random(CSRF_TOKEN_CHARS, &mut csrf_token);
    let session = SessionRecord {
        hash: TokenHash::of(&cookie_value),
        tenant_id: user.tenant_id.clone(),
        user_id: user.id.clone(),
        csrf_token: csrf_token.into(),
        created_at: now,
        expires_at: now + state.config.session_ttl,
    };
    let entry = NewAudit {
        tenant_id: user.tenant_id.clone(),
        at: now,
        actor: user.id.clone(),
        action: AuditAction::SessionLogin.into(),
        target_id: Some(user.id.clone()),
        ip,
        details: None,
    };
    state
        .store
        .apply(&[Write::InsertSession(session.clone())], &[entry])
        .await?;
    Ok(LoggedIn {
        cookie_value,
        user: SessionUser {
            scopes: state.roles.of(role).clone(),
            role,
            user,
            session,
        },
    })
}

/// A failed login is audited in its tenant (when the tenant exists), naming the user it was
/// for. The password is never recorded, and neither is a username that names nobody: what is
/// typed into the username field is often a password or a token pasted into the wrong field,
/// and the audit log must not keep it in plaintext. An audit that cannot be written does not
/// turn the answer into a 500: the attempt is refused either way and the failure is logged.
async fn audit_failure(state: &AppState, tenant: &str, username: &str, ip: Option<String>) {
    let result = async {
        if !state.store.tenant_exists(tenant).await? {
            return Ok(());
        }
        let target = state.store.user_by_name(tenant, username).await?;
        let details = match &target {
            Some(user) => json!({ "username": user.username }),
            None => json!({ "username": null, "unknownUsername": true }),
        };
        let entry = NewAudit {
            tenant_id: tenant.to_owned(),
            at: keygate_store::now(),
            actor: "anonymous".into(),
            action: AuditAction::SessionLoginFailed.into(),
            target_id: target.map(|u| u.id),
            ip,
            details: Some(details),
        };
        state.store.apply(&[], &[entry]).await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not audit a failed login");
    }
}

/// Ends the session the request's cookie names; the proof says its CSRF token was checked.
pub async fn logout(state: &AppState, session: &LiveSession) -> ApiResult<()> {
    let user = session.user();
    let entry = NewAudit {
        tenant_id: user.user.tenant_id.clone(),
        at: keygate_store::now(),
        actor: user.user.id.clone(),
        action: AuditAction::SessionLogout.into(),
        target_id: Some(user.user.id.clone()),
        ip: session.ip().map(str::to_owned),
        details: None,
    };
    state
        .store
        .apply(&[Write::DeleteSession(user.session.hash)], &[entry])
        .await?;
    Ok(())
}
