//! The proof that a caller may do what a route does: `Authorized<S>` can only be built by its
//! extractor, after the scope `S` names was checked (and, for a web session changing state,
//! its CSRF token), so a function that takes one cannot be reached without the check.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use keygate_core::credentials::Credential;
use keygate_store::Outcome;

use crate::auth::caller::{Caller, Principal};
use crate::auth::session::{self, Intent};
use crate::auth::token::{self, presented_token};
use crate::error::ApiError;
use crate::extract::client_ip;
use crate::state::AppState;

/// A scope requirement, as a type, so that a route states what it needs in its signature, and
/// whether what it does changes state: a web session may then make the change only with its
/// CSRF token and never through a `GET` (`auth::session::Intent`), whatever method the route is
/// mounted on.
pub trait RequiredScope {
    const SCOPE: Option<&'static str>;
    const CHANGES_STATE: bool;
}

macro_rules! required_scope {
    ($($name:ident => $scope:expr, $changes:expr);* $(;)?) => {$(
        pub struct $name;
        impl RequiredScope for $name {
            const SCOPE: Option<&'static str> = $scope;
            const CHANGES_STATE: bool = $changes;
        }
    )*};
}

required_scope! {
    AnyScope => None, false;
    UsersRead => Some(keygate_core::scope::USERS_READ), false;
    UsersWrite => Some(keygate_core::scope::USERS_WRITE), true;
    TenantsAdmin => Some(keygate_core::scope::TENANTS_ADMIN), true;
    TokensRead => Some(keygate_core::scope::TOKENS_READ), false;
    TokensWrite => Some(keygate_core::scope::TOKENS_WRITE), true;
    AuditRead => Some(keygate_core::scope::AUDIT_READ), false;
}

/// A [`Caller`] that holds the scope `S` names.
pub struct Authorized<S> {
    pub caller: Caller,
    _scope: PhantomData<S>,
}

impl<S> std::ops::Deref for Authorized<S> {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.caller
    }
}

impl<S: RequiredScope> FromRequestParts<AppState> for Authorized<S> {
    type Rejection = ApiError;

    /// A token in the request wins; without one, the web session's cookie is used, and a
    /// request that changes something must then carry the session's CSRF token.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let addr = client_ip(parts, state.config.trust_forwarded_for);
        let ip = addr.map(|a| a.to_string());
        let token = match presented_token(parts, state.config.allow_query_token) {
            Credential::Missing => {
                let intent = if S::CHANGES_STATE {
                    Intent::Change
                } else {
                    Intent::Read
                };
                let Some(user) = session::authenticate(parts, state, intent).await? else {
                    return Err(ApiError::MissingToken);
                };
                if let Some(wanted) = S::SCOPE {
                    if !user.scopes.allows(wanted) {
                        return Err(ApiError::InsufficientScope(vec![wanted.to_owned()]));
                    }
                }
                return Ok(Authorized {
                    caller: Caller {
                        principal: Principal::Session(user),
                        ip,
                    },
                    _scope: PhantomData,
                });
            }
            Credential::Unusable => return Err(token::unusable(state, addr)),
            Credential::Token(t) => t,
        };
        let wanted: &[&str] = match &S::SCOPE {
            Some(s) => std::slice::from_ref(s),
            None => &[],
        };
        match token::verify(state, &token, wanted, addr).await? {
            Outcome::Valid(token) => Ok(Authorized {
                caller: Caller {
                    principal: Principal::Token(token),
                    ip,
                },
                _scope: PhantomData,
            }),
            Outcome::Malformed | Outcome::NotFound => Err(ApiError::InvalidToken),
            Outcome::Disabled(_) => Err(ApiError::TokenDisabled),
            Outcome::Expired(_) => Err(ApiError::TokenExpired),
            Outcome::InsufficientScope { missing, .. } => Err(ApiError::InsufficientScope(missing)),
        }
    }
}

/// The token a request presents, for ending it (`DELETE /api/v1/tokens/self`): a disabled or
/// expired token is accepted too, since revoking only takes power away and a holder who finds
/// their token leaked must be able to end it whatever its state. Without a token, the request
/// is authenticated as any other (a web session then has no calling token).
pub struct CallingToken(pub Caller);

impl FromRequestParts<AppState> for CallingToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let addr = client_ip(parts, state.config.trust_forwarded_for);
        let Credential::Token(token) = presented_token(parts, state.config.allow_query_token)
        else {
            return Authorized::<AnyScope>::from_request_parts(parts, state)
                .await
                .map(|a| CallingToken(a.caller));
        };
        match token::verify(state, &token, &[], addr).await? {
            Outcome::Valid(t) | Outcome::Disabled(t) | Outcome::Expired(t) => {
                Ok(CallingToken(Caller {
                    principal: Principal::Token(t),
                    ip: addr.map(|a| a.to_string()),
                }))
            }
            Outcome::Malformed | Outcome::NotFound | Outcome::InsufficientScope { .. } => {
                Err(ApiError::InvalidToken)
            }
        }
    }
}
