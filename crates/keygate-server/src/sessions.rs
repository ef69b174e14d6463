//! Web logins. The cookie holds a random session id (only its SHA-256 is stored); the cookie
//! is `HttpOnly` and `SameSite=Strict`, and every request that changes something must also
//! echo the session's CSRF token in `X-CSRF-Token`, which another site can neither read nor
//! send. A session acts with the scopes of its user's current role.

use keygate_core::AuditAction;
use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use keygate_core::{base62, Role, ScopeSet, TokenHash};
use keygate_store::{NewAudit, SessionRecord, UserRecord, Write, DEFAULT_TENANT};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::accounts;
use crate::dto::{LoginRequest, SessionView};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub const COOKIE: &str = "keygate_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// 256 bits from the OS-seeded CSPRNG, in base62.
const SESSION_ID_CHARS: usize = 43;
const CSRF_TOKEN_CHARS: usize = 32;

/// A logged-in user, as a request sees them.
pub struct SessionUser {
    pub user: UserRecord,
    pub role: Role,
    pub scopes: Arc<ScopeSet>,
    pub session: SessionRecord,
}

impl SessionUser {
    pub fn view(&self) -> SessionView {
        SessionView {
            user: self.user.clone().into(),
            scopes: self.scopes.names(),
            csrf_token: self.session.csrf_token.clone(),
            expires_at: self.session.expires_at,
        }
    }
}

/// The value of our cookie among the request's `Cookie` headers.
fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// What a request authenticated by the cookie is about to do, as its route declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Reads only; a `GET` needs no CSRF token.
    Read,
    /// Changes state: needs the CSRF token whatever the method, and is refused as a `GET` or
    /// `HEAD`, which browsers send cross-site for links and images without asking anyone.
    Change,
}

/// The session a request's cookie names: `None` without a cookie; an error for a cookie that
/// names no live session, or for a change without the session's CSRF token. A request with an
/// unsafe method is a change whatever the route says, so a route that forgets to declare its
/// intent is still protected.
pub async fn authenticate(
    parts: &Parts,
    state: &AppState,
    intent: Intent,
) -> ApiResult<Option<Arc<SessionUser>>> {
    let Some(value) = cookie_value(&parts.headers) else {
        return Ok(None);
    };
    let user = lookup(state, value)
        .await?
        .ok_or(ApiError::InvalidSession)?;
    let safe_method = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if intent == Intent::Change && safe_method {
        return Err(ApiError::CookieChangeBySafeMethod);
    }
    if intent == Intent::Change || !safe_method {
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        let expected = user.session.csrf_token.as_bytes();
        if !bool::from(sent.ct_eq(expected)) {
            return Err(ApiError::CsrfFailed);
        }
    }
    Ok(Some(user))
}

async fn lookup(state: &AppState, value: &str) -> ApiResult<Option<Arc<SessionUser>>> {
    // Found by its SHA-256 in the database's index, not compared: the client picks the cookie,
    // not its hash, so the index lookup's timing reveals nothing about a live session.
    let hash = TokenHash::of(value);
    let Some((session, user)) = state
        .store
        .session_by_hash(&hash, keygate_store::now())
        .await?
    else {
        return Ok(None);
    };
    let role: Role = user
        .role
        .parse()
        .map_err(|e| ApiError::Internal(format!("user {}: {e}", user.id)))?;
    Ok(Some(Arc::new(SessionUser {
        scopes: state.roles.of(role).clone(),
        role,
        user,
        session,
    })))
}

/// The `Set-Cookie` value for a new session, or one that clears it (`value` = `None`).
pub fn set_cookie(
    state: &AppState,
    headers: &HeaderMap,
    value: Option<(&str, u64)>,
) -> HeaderValue {
    let secure = state.config.secure_cookies
        || (state.config.trust_forwarded_for
            && headers
                .get("x-forwarded-proto")
                .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https")));
    let (value, max_age) = value.unwrap_or(("", 0));
    let mut cookie =
        format!("{COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict");
    if secure {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).expect("a cookie of base62 and fixed text is a valid header")
}

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
    let user = if req.password.len() <= accounts::MAX_PASSWORD_BYTES {
        state.store.user_by_name(&tenant, &req.username).await?
    } else {
        None
    };
    let ok =
        accounts::password_matches(user.as_ref().map(|u| u.password_hash.clone()), req.password)
            .await?;
    let now = keygate_store::now();
    let Some(user) = user.filter(|_| ok) else {
        limiter.account_at_address.record_failure(&account_key);
        limiter.ips.record_failure(&ip_key);
        audit_failure(state, &tenant, &req.username, ip).await;
        return Err(ApiError::InvalidCredentials);
    };
    limiter.account_at_address.clear(&account_key);
    let role: Role = user
        .role
        .parse()
        .map_err(|e| ApiError::Internal(format!("user {}: {e}", user.id)))?;
    let mut cookie_value = String::new();
    base62::random(SESSION_ID_CHARS, &mut cookie_value);
    let mut csrf_token = String::new();
    base62::random(CSRF_TOKEN_CHARS, &mut csrf_token);
    let session = SessionRecord {
        hash: TokenHash::of(&cookie_value),
        tenant_id: user.tenant_id.clone(),
        user_id: user.id.clone(),
        csrf_token,
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

/// Ends the session the request's cookie names, if any.
pub async fn logout(state: &AppState, user: &SessionUser, ip: Option<String>) -> ApiResult<()> {
    let entry = NewAudit {
        tenant_id: user.user.tenant_id.clone(),
        at: keygate_store::now(),
        actor: user.user.id.clone(),
        action: AuditAction::SessionLogout.into(),
        target_id: Some(user.user.id.clone()),
        ip,
        details: None,
    };
    state
        .store
        .apply(&[Write::DeleteSession(user.session.hash)], &[entry])
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others_and_headers() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        h.append(
            header::COOKIE,
            HeaderValue::from_static("x=y; keygate_session=abc ; z=1"),
        );
        assert_eq!(cookie_value(&h), Some("abc"));
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("keygate_session="));
        assert_eq!(cookie_value(&h), None);
        assert_eq!(cookie_value(&HeaderMap::new()), None);
    }
}
