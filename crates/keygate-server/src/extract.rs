//! Request extractors whose rejections are `ApiError`s, so every bad input gets the §3 body,
//! and `Authorized<S>`: the scope a route needs is part of its signature, checked before the
//! handler runs.

use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use keygate_core::credentials::{
    extract_from_authorization, extract_from_query, redact_echoed_input, Credential,
};
use keygate_core::{ScopeSet, TokenId};
use keygate_store::cache::CachedToken;
use keygate_store::Outcome;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body. The content type is not checked: `curl -d` sends a form type by default, and a
/// body that parses as the expected JSON is what was meant. This is safe against cross-site
/// forms because a request authenticated by the session cookie must also carry the session's
/// CSRF token in a header (`sessions::authenticate`), which no other site can read or send.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        parse_json(&read_body(req, state).await?).map(Json)
    }
}

/// A JSON body as its bytes, for a handler that parses it with [`parse_json`] into a type that
/// borrows from them: the verify route, where copying the token out costs more than its hash.
pub struct JsonBody(pub Bytes);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        read_body(req, state).await.map(JsonBody)
    }
}

/// A JSON body that may be left out entirely (then `T::default()`).
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

/// The whole body, within the configured limit (413 beyond it; `DefaultBodyLimit` in the
/// router enforces it, the state names it) and the client timeout: hyper bounds the time to
/// send the headers, but a body sent a byte at a time would hold the connection for ever.
async fn read_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    let timeout = state.config.client_timeout;
    match tokio::time::timeout(timeout, Bytes::from_request(req, state)).await {
        Ok(read) => read.map_err(|e| body_rejection(e, state.config.max_body_bytes)),
        Err(_) => Err(ApiError::BodyTimeout(timeout.as_secs())),
    }
}

fn body_rejection(e: BytesRejection, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(limit)
    } else {
        ApiError::BadRequest(format!("Could not read the request body: {e}"))
    }
}

/// Parses a JSON body. serde's messages quote the input they stumbled on, which may be the
/// caller's token sent as a field name or in the wrong field: long quoted values are redacted.
pub fn parse_json<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        let message = redact_echoed_input(&e.to_string());
        match e.classify() {
            Category::Data => ApiError::Unprocessable(format!("Invalid request body: {message}")),
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::BadRequest(format!("Malformed JSON: {message}"))
            }
        }
    })
}

/// Query parameters, with a §3 error for bad ones.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(t)| Query(t))
            .map_err(|e| {
                let message = redact_echoed_input(&e.body_text());
                ApiError::BadRequest(format!("Invalid query string: {message}"))
            })
    }
}

/// Path parameters, with a §3 error when they cannot be decoded (e.g. invalid UTF-8).
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(t)| Path(t))
            .map_err(|e| {
                let message = redact_echoed_input(&e.body_text());
                ApiError::BadRequest(format!("Invalid path: {message}"))
            })
    }
}

/// The client's address, for audit entries and last use: the connection's peer, or, when the
/// operator says a trusted proxy is in front (`--trust-forwarded-for`), the first entry of
/// `X-Forwarded-For` (or `X-Real-IP`). Untrusted, those headers would let any caller write
/// whatever address it likes into the audit log.
pub fn client_ip(parts: &Parts, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for {
        if let Some(ip) = forwarded_ip(&parts.headers) {
            return Some(ip);
        }
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip())
}

/// The client's address as an extractor, read from the request in place: taking the whole
/// `Parts` would clone every header and extension of every verification.
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts, state.config.trust_forwarded_for)))
    }
}

fn forwarded_ip(headers: &axum::http::HeaderMap) -> Option<IpAddr> {
    let first = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .or_else(|| headers.get("x-real-ip").and_then(|v| v.to_str().ok()))?;
    first.trim().parse().ok()
}

/// The token a request presents, in the header or (unless disabled) the query string.
pub fn presented_token<'a>(parts: &'a Parts, allow_query: bool) -> Credential<'a> {
    if let Some(v) = parts.headers.get(header::AUTHORIZATION) {
        return extract_from_authorization(v.as_bytes());
    }
    match (allow_query, parts.uri.query()) {
        (true, Some(q)) => extract_from_query(q),
        _ => Credential::Missing,
    }
}

/// A scope requirement, as a type, so that a route states what it needs in its signature, and
/// whether what it does changes state: a web session may then make the change only with its
/// CSRF token and never through a `GET` (`sessions::Intent`), whatever method the route is
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

/// Who is calling: a verified, active token, or a person logged in to the web page.
pub enum Principal {
    Token(Arc<CachedToken>),
    Session(Arc<crate::sessions::SessionUser>),
}

pub struct Caller {
    pub principal: Principal,
    pub ip: Option<String>,
}

impl Caller {
    /// What the caller may do: a token's scopes, or the scopes of a logged-in user's role.
    pub fn scopes(&self) -> &ScopeSet {
        match &self.principal {
            Principal::Token(t) => &t.scopes,
            Principal::Session(s) => &s.scopes,
        }
    }

    /// May this caller act on every token of its tenant?
    pub fn is_admin(&self) -> bool {
        self.scopes().allows(keygate_core::scope::TOKENS_ADMIN)
    }

    pub fn tenant_id(&self) -> &str {
        match &self.principal {
            Principal::Token(t) => &t.tenant_id,
            Principal::Session(s) => &s.user.tenant_id,
        }
    }

    /// Whose tokens are the caller's own: the token's owner, or the logged-in user.
    pub fn owner_id(&self) -> &str {
        match &self.principal {
            Principal::Token(t) => &t.owner_id,
            Principal::Session(s) => &s.user.id,
        }
    }

    /// The calling token, when the caller is one.
    pub fn token(&self) -> Option<&CachedToken> {
        match &self.principal {
            Principal::Token(t) => Some(t),
            Principal::Session(_) => None,
        }
    }

    pub fn is_token(&self, id: &TokenId) -> bool {
        self.token().is_some_and(|t| t.id == *id)
    }

    /// Visibility: the tokens of the caller's own owner, or with `tokens:admin` every token of
    /// its tenant; nothing of another tenant.
    pub fn may_see(&self, t: &keygate_store::TokenRecord) -> bool {
        t.tenant_id == self.tenant_id() && (self.is_admin() || t.owner_id == self.owner_id())
    }

    /// How this caller is named in audit entries: the token id, or the user id.
    pub fn actor(&self) -> String {
        match &self.principal {
            Principal::Token(t) => t.id.to_string(),
            Principal::Session(s) => s.user.id.clone(),
        }
    }
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
                    crate::sessions::Intent::Change
                } else {
                    crate::sessions::Intent::Read
                };
                let Some(user) = crate::sessions::authenticate(parts, state, intent).await? else {
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
            Credential::Unusable => return Err(crate::token_auth::unusable(state, addr)),
            Credential::Token(t) => t,
        };
        let wanted: &[&str] = match &S::SCOPE {
            Some(s) => std::slice::from_ref(s),
            None => &[],
        };
        match crate::token_auth::verify(state, &token, wanted, addr).await? {
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
        match crate::token_auth::verify(state, &token, &[], addr).await? {
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
