//! What every handler shares.

use std::sync::Arc;

use keygate_core::{ScopeCatalog, TokenPrefix};
use keygate_store::{Store, Verifier};

use crate::accounts::{LoginLimiter, RoleScopes};
use crate::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub prefix: TokenPrefix,
    pub catalog: ScopeCatalog,
    /// Accept tokens in the `api-token` / `apiToken` / `api_token` query parameters.
    pub allow_query_token: bool,
    pub max_body_bytes: usize,
    /// Take the client address from `X-Forwarded-For` / `X-Real-IP` (only behind a proxy that
    /// sets them).
    pub trust_forwarded_for: bool,
    /// The compatible surfaces served.
    pub compat: crate::compat::Compat,
    /// How long a web login lasts.
    pub session_ttl: std::time::Duration,
    /// Mark the session cookie `Secure` on every response, for a deployment reached only over
    /// TLS. Without it, the cookie is `Secure` when a trusted proxy says the request came over
    /// HTTPS (`X-Forwarded-Proto: https` with `trust_forwarded_for`).
    pub secure_cookies: bool,
    pub login_limits: crate::accounts::LoginLimits,
    pub auth_limits: crate::token_auth::AuthLimits,
    /// Longest time a slow client may take to send a request's headers or body; see
    /// `workers::ConnectionLimits`.
    pub client_timeout: std::time::Duration,
    /// Most tokens one owner may hold.
    pub max_tokens_per_owner: u32,
}

/// `--max-tokens-per-owner` when it is not set.
pub const DEFAULT_MAX_TOKENS_PER_OWNER: u32 = 10_000;

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            prefix: TokenPrefix::default(),
            catalog: ScopeCatalog::default(),
            allow_query_token: true,
            max_body_bytes: 1 << 20,
            trust_forwarded_for: false,
            compat: crate::compat::Compat::default(),
            session_ttl: std::time::Duration::from_secs(12 * 3600),
            secure_cookies: false,
            login_limits: Default::default(),
            auth_limits: Default::default(),
            client_timeout: crate::workers::ConnectionLimits::default().client_timeout,
            max_tokens_per_owner: DEFAULT_MAX_TOKENS_PER_OWNER,
        }
    }
}

/// What every handler shares, behind one `Arc`: the router clones the state for every layer of
/// every request, and one reference count is cheaper than one per field, above all when two
/// worker threads would otherwise bounce six shared counters between their caches.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub store: Arc<dyn Store>,
    pub verifier: Arc<Verifier>,
    pub config: Arc<ServerConfig>,
    pub metrics: Arc<Metrics>,
    pub roles: Arc<RoleScopes>,
    pub login_limiter: Arc<LoginLimiter>,
    /// Failed token authentications by client address (`token_auth`).
    pub auth_limiter: crate::token_auth::AuthLimiter,
}
