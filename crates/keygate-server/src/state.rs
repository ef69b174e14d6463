//! What every handler shares: the store, the verifier, the settings, the metrics and the
//! limiters, built once at start.

use std::net::IpAddr;
use std::sync::Arc;

use keygate_core::{Role, ScopeCatalog, ScopeSet};
use keygate_store::cache::CachedToken;
use keygate_store::{Store, Verifier};

use crate::config::ServerConfig;
use crate::leaks::GithubKeys;
use crate::limits::ip_refusals::IpRefusals;
use crate::limits::limiter::FailureLimiter;
use crate::limits::login::LoginLimiter;
use crate::limits::token_failures::AuthLimiter;
use crate::metrics::Metrics;

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
    /// Failed token authentications by client address (`auth::token`).
    pub auth_limiter: AuthLimiter,
    /// Refusals for the client's address already audited this minute (`auth::token`).
    pub ip_refusals: IpRefusals,
    /// Expired tokens already looked at for reuse this minute, by token and address.
    pub expired_seen: IpRefusals,
    /// What `auth` calls when it refuses a token as expired, after the answer is decided:
    /// `service::reuse::expired_presented`, set by `lib::state`. A hook, because reuse
    /// detection writes events and revokes tokens, which is the services' work, and `auth`
    /// lies below them.
    pub on_expired: fn(&AppState, &Arc<CachedToken>, Option<IpAddr>),
    /// Tokens whose refusal for their credits was already told this hour (keyed by token).
    pub usage_exceeded_seen: IpRefusals,
    /// What `auth` calls when it refuses a token for its credits, after the answer:
    /// `service::usage_alerts::usage_exceeded`, a hook for the same reason as `on_expired`.
    pub on_usage_exceeded: fn(&AppState, &Arc<CachedToken>, Option<IpAddr>),
    /// GitHub's secret-scanning keys, when `--github-scanning-keys` names a file.
    pub github_keys: Option<GithubKeys>,
    /// Requests to GitLab's Token Revocation API routes per client address and minute.
    pub gitlab_limiter: FailureLimiter<Option<IpAddr>>,
    /// Set when the server begins to stop: long-polling requests answer at once instead of
    /// holding the graceful stop up.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

impl AppState {
    /// Ends the waits of long-polling requests (the replicas' change stream).
    pub fn begin_stopping(&self) {
        self.stopping.send_replace(true);
    }
}

/// The scopes of each role in this deployment, computed once from the catalogue.
pub struct RoleScopes {
    admin: Arc<ScopeSet>,
    member: Arc<ScopeSet>,
}

impl RoleScopes {
    pub fn new(catalog: &ScopeCatalog) -> Self {
        Self {
            admin: Arc::new(Role::Admin.scopes(catalog)),
            member: Arc::new(Role::Member.scopes(catalog)),
        }
    }

    pub fn of(&self, role: Role) -> &Arc<ScopeSet> {
        match role {
            Role::Admin => &self.admin,
            Role::Member => &self.member,
        }
    }
}
