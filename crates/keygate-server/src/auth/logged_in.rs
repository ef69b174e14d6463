//! The web session's own routes, as extractors: who is logged in, and the session a logout
//! ends. Those routes take these instead of the raw request, so none of them reads the cookie
//! its own way, and no session is ended without its CSRF token.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::auth::session::{self, Intent, SessionUser};
use crate::error::ApiError;
use crate::extract::client_ip;
use crate::state::AppState;

/// The logged-in user of this browser. Reading it changes nothing, so it needs no CSRF token;
/// without a cookie, or with one that names no live session, the request is refused 401.
pub struct CurrentSession(pub Arc<SessionUser>);

impl FromRequestParts<AppState> for CurrentSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match session::authenticate(parts, state, Intent::Read).await? {
            Some(user) => Ok(CurrentSession(user)),
            None => Err(ApiError::InvalidSession),
        }
    }
}

/// What a logout finds. A request without a cookie, or one that fails the CSRF check, is
/// refused before the route runs.
pub enum SessionForLogout {
    Live(LiveSession),
    /// The cookie names a session that has ended already: there is nothing to end, and the
    /// browser should forget the cookie all the same.
    AlreadyGone,
}

/// A live session whose request carried its CSRF token, as a change must. Its fields are
/// private, so only [`SessionForLogout`] builds one and ending a session needs that check.
pub struct LiveSession {
    user: Arc<SessionUser>,
    ip: Option<String>,
}

impl LiveSession {
    pub fn user(&self) -> &SessionUser {
        &self.user
    }

    /// The client's address, for the audit entry.
    pub fn ip(&self) -> Option<&str> {
        self.ip.as_deref()
    }
}

impl FromRequestParts<AppState> for SessionForLogout {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match session::authenticate(parts, state, Intent::Change).await {
            Ok(Some(user)) => Ok(SessionForLogout::Live(LiveSession {
                user,
                ip: client_ip(parts, &state.config).map(|a| a.to_string()),
            })),
            Err(ApiError::InvalidSession) => Ok(SessionForLogout::AlreadyGone),
            Ok(None) => Err(ApiError::InvalidSession),
            Err(e) => Err(e),
        }
    }
}
