//! Web logins. The cookie holds a random session id (only its SHA-256 is stored); the cookie
//! is `HttpOnly` and `SameSite=Strict`, and every request that changes something must also
//! echo the session's CSRF token in `X-CSRF-Token`, which another site can neither read nor
//! send. A session acts with the scopes of its user's current role.

use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use keygate_core::{Role, ScopeSet, TokenHash};
use keygate_store::{SessionRecord, UserRecord};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::dto::SessionView;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub const COOKIE: &str = "keygate_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
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
/// intent is still protected. Only the extractors of `crate::auth` call this, so no route can
/// authenticate a cookie without declaring what it does.
pub(in crate::auth) async fn authenticate(
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
        let expected = user.session.csrf_token.expose_secret().as_bytes();
        if !bool::from(sent.ct_eq(expected)) {
            return Err(ApiError::CsrfFailed);
        }
    }
    Ok(Some(user))
}

/// The role a stored user holds: the one place a stored role is read, for sessions and for the
/// management of accounts alike. A role the store holds but keygate does not know is a fault
/// of the data, not of the request.
pub fn stored_role(user: &UserRecord) -> ApiResult<Role> {
    user.role
        .parse()
        .map_err(|e| ApiError::Internal(format!("user {}: {e}", user.id)))
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
    let role = stored_role(&user)?;
    Ok(Some(Arc::new(SessionUser {
        scopes: state.roles.of(role).clone(),
        role,
        user,
        session,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

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
