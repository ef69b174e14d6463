//! keygate's HTTP service: the native REST API (DESIGN §5), the verification endpoints, metrics
//! and the OpenAPI document, as an axum `Router` over a [`keygate_store::Store`].

pub mod accounts;
pub mod bootstrap;
pub mod compat;
pub mod dto;
pub mod error;
pub mod extract;
pub mod limiter;
pub mod metrics;
pub mod middleware;
pub mod rfc3339_ms;
pub mod routes;
pub mod sessions;
pub mod state;
pub mod token_auth;
pub mod tokens;
pub mod users;
pub mod web;
pub mod workers;

use std::sync::Arc;

use keygate_store::{Store, Verifier, VerifierConfig};

pub use routes::{openapi, router};
pub use state::{AppState, ServerConfig};

/// Builds the shared state; must run inside a Tokio runtime (it starts the last-use writer).
pub fn state(store: Arc<dyn Store>, config: ServerConfig, verifier: VerifierConfig) -> AppState {
    AppState::new(state::Shared {
        verifier: Arc::new(Verifier::new(store.clone(), verifier)),
        store,
        roles: Arc::new(accounts::RoleScopes::new(&config.catalog)),
        login_limiter: Arc::new(accounts::LoginLimiter::new(config.login_limits)),
        auth_limiter: token_auth::AuthLimiter::new(config.auth_limits),
        config: Arc::new(config),
        metrics: Arc::new(metrics::Metrics::default()),
    })
}
