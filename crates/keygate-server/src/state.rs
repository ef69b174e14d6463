//! What every handler shares.

use std::sync::Arc;

use keygate_core::{ScopeCatalog, TokenPrefix};
use keygate_store::{Store, Verifier};

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
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            prefix: TokenPrefix::default(),
            catalog: ScopeCatalog::default(),
            allow_query_token: true,
            max_body_bytes: 1 << 20,
            trust_forwarded_for: false,
            compat: crate::compat::Compat::default(),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub verifier: Arc<Verifier>,
    pub config: Arc<ServerConfig>,
    pub metrics: Arc<Metrics>,
}
