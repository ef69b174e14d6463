//! The proof that a caller may do what a route does: `Authorized<S>` can only be built by its
//! extractor, after the scope `S` names was checked (and, for a web session changing state,
//! its CSRF token), so a function that takes one cannot be reached without the check.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use keygate_core::credentials::Credential;
use keygate_core::ScopeSet;
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
    /// The scope the caller must hold, and the one a refusal names as missing.
    const SCOPE: Option<&'static str>;
    /// Scopes that each do instead of `SCOPE`, for a surface that admits several.
    const OR_ANY_OF: &'static [&'static str] = &[];
    const CHANGES_STATE: bool;
}

/// A requirement whose holder may create, change and revoke tokens (the native `tokens:write`,
/// or what a compatible surface asks for that). It must change state, so that a web session
/// meets it only with its CSRF token: only such a requirement's proof reaches the token
/// mutations of `crate::service::tokens`.
pub trait TokenChange: RequiredScope {}

impl TokenChange for TokensWrite {}
impl TokenChange for TokensAdminChange {}
const _: () = assert!(TokensWrite::CHANGES_STATE, "a token change must be one");

/// Does `scopes` meet `S`? `None` when it does, else what a refusal names as missing.
fn unmet<S: RequiredScope>(scopes: &ScopeSet) -> Option<Vec<String>> {
    let wanted = S::SCOPE?;
    let met = scopes.allows(wanted) || S::OR_ANY_OF.iter().any(|s| scopes.allows(s));
    (!met).then(|| vec![wanted.to_owned()])
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
    TokensAdmin => Some(keygate_core::scope::TOKENS_ADMIN), false;
    TokensReplicate => Some(keygate_core::scope::TOKENS_REPLICATE), false;
    // A tenant's admin changing what applies to every token of the tenant (its policy).
    TenantPolicyWrite => Some(keygate_core::scope::TOKENS_ADMIN), true;
    // Changes to many tokens at once (bulk revoke, import): the tenant admin's, not every
    // `tokens:write` holder's.
    TokensAdminChange => Some(keygate_core::scope::TOKENS_ADMIN), true;
    WebhooksRead => Some(keygate_core::scope::WEBHOOKS_READ), false;
    WebhooksWrite => Some(keygate_core::scope::WEBHOOKS_WRITE), true;
}

/// A [`Caller`] that holds the scope `S` names. Only the extractor below builds one (the
/// marker field is private to this module), so a function that takes `&Authorized<S>` is a
/// function no code path reaches without `S` checked.
pub struct Authorized<S> {
    pub caller: Caller,
    _scope: PhantomData<S>,
}

/// A proof that the caller may create, change or revoke tokens: an [`Authorized`] of a
/// [`TokenChange`] requirement, or the [`CallingToken`] that ends itself. Sealed, so that no
/// type outside this module can claim to be one.
pub trait MayChangeTokens: std::ops::Deref<Target = Caller> + sealed::Proof {}

impl<S: TokenChange> MayChangeTokens for Authorized<S> {}
impl MayChangeTokens for CallingToken {}

mod sealed {
    pub trait Proof {}
    impl<S: super::TokenChange> Proof for super::Authorized<S> {}
    impl Proof for super::CallingToken {}
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
        let addr = client_ip(parts, &state.config);
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
                if let Some(missing) = unmet::<S>(&user.scopes) {
                    return Err(ApiError::InsufficientScope(missing));
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
        // The verifier checks one scope itself; alternatives are checked here, once it has
        // found the token valid.
        let wanted: &[&str] = match (&S::SCOPE, S::OR_ANY_OF) {
            (Some(s), []) => std::slice::from_ref(s),
            _ => &[],
        };
        match token::verify(state, &token, wanted, addr).await? {
            Outcome::Valid(token) if !S::OR_ANY_OF.is_empty() => match unmet::<S>(&token.scopes) {
                Some(missing) => Err(ApiError::InsufficientScope(missing)),
                None => Ok(Authorized {
                    caller: Caller {
                        principal: Principal::Token(token),
                        ip,
                    },
                    _scope: PhantomData,
                }),
            },
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
            Outcome::IpNotAllowed(_) => Err(ApiError::IpNotAllowed),
            Outcome::InsufficientScope { missing, .. } => Err(ApiError::InsufficientScope(missing)),
            o @ (Outcome::RateLimited(_)
            | Outcome::UsageExceeded(_)
            | Outcome::UnknownRateLimit { .. }) => Err(no_usage_control(&o)),
        }
    }
}

/// The token a request presents, for ending it (`DELETE /api/v1/tokens/self`): a disabled or
/// expired token is accepted too, and one presented from outside its allow-list, since revoking
/// only takes power away and a holder who finds their token leaked must be able to end it
/// whatever its state and wherever they are. Without a token, the request
/// is authenticated as any other (a web session then has no calling token). Its caller is
/// private: holding one proves the extractor ran.
pub struct CallingToken(Caller);

impl std::ops::Deref for CallingToken {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl FromRequestParts<AppState> for CallingToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let addr = client_ip(parts, &state.config);
        let Credential::Token(token) = presented_token(parts, state.config.allow_query_token)
        else {
            return Authorized::<AnyScope>::from_request_parts(parts, state)
                .await
                .map(|a| CallingToken(a.caller));
        };
        match token::verify(state, &token, &[], addr).await? {
            Outcome::Valid(t)
            | Outcome::Disabled(t)
            | Outcome::Expired(t)
            | Outcome::IpNotAllowed(t) => Ok(CallingToken(Caller {
                principal: Principal::Token(t),
                ip: addr.map(|a| a.to_string()),
            })),
            Outcome::Malformed | Outcome::NotFound | Outcome::InsufficientScope { .. } => {
                Err(ApiError::InvalidToken)
            }
            o @ (Outcome::RateLimited(_)
            | Outcome::UsageExceeded(_)
            | Outcome::UnknownRateLimit { .. }) => Err(no_usage_control(&o)),
        }
    }
}

/// `Verifier::verify_or`, which checks tokens presented to keygate's own API, applies no rate
/// limit and charges no credit, so it never answers these.
fn no_usage_control(o: &Outcome) -> ApiError {
    ApiError::Internal(format!("{} from a check without usage control", o.code()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_core::scope::{TOKENS_ADMIN, TOKENS_READ, USERS_READ};

    /// Two scopes that neither implies.
    struct UsersOrTokens;
    impl RequiredScope for UsersOrTokens {
        const SCOPE: Option<&'static str> = Some(USERS_READ);
        const OR_ANY_OF: &'static [&'static str] = &[TOKENS_ADMIN];
        const CHANGES_STATE: bool = false;
    }

    fn scopes(names: &[&str]) -> ScopeSet {
        ScopeSet::parse(names.iter().copied()).unwrap()
    }

    #[test]
    fn any_of_the_scopes_meets_a_requirement_and_a_refusal_names_the_first() {
        assert_eq!(unmet::<UsersOrTokens>(&scopes(&[USERS_READ])), None);
        assert_eq!(unmet::<UsersOrTokens>(&scopes(&[TOKENS_ADMIN])), None);
        assert_eq!(
            unmet::<UsersOrTokens>(&scopes(&[TOKENS_READ])),
            Some(vec![USERS_READ.to_owned()])
        );
        assert_eq!(unmet::<AnyScope>(&scopes(&[])), None);
        assert_eq!(
            unmet::<UsersRead>(&scopes(&[TOKENS_ADMIN])),
            Some(vec![USERS_READ.to_owned()])
        );
    }
}
