//! keygate's HTTP service: the native REST API, the verification endpoints, the compatible
//! surfaces, metrics and the OpenAPI document, as one axum `Router` over a
//! [`keygate_store::Store`].
//!
//! The modules are layers, and imports only point down (`crates/keygate-layers` checks it):
//! `config`, `error`, `metrics`, `reveal`, `rfc3339_ms`, `dto` (plain data) → `limits`, `leaks` →
//! `state` → `extract` → `auth` → `service` → `routes`, `ext_authz` (Envoy's check over gRPC),
//! `compat`, `web`, `explorer`, `middleware`, `workers` → `api_doc` → this file, which puts the
//! router together. `docs/architecture.md` is the map.

pub mod api_doc;
pub mod auth;
pub mod compat;
pub mod config;
pub mod dto;
pub mod error;
pub mod explorer;
pub mod ext_authz;
pub mod extract;
pub mod leaks;
pub mod limits;
pub mod metrics;
pub mod middleware;
pub mod page_asset;
pub mod reveal;
pub mod rfc3339_ms;
pub mod routes;
pub mod service;
pub mod state;
pub mod web;
pub mod webhooks;
pub mod workers;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use keygate_store::ratelimit::RateLimiter;
use keygate_store::{Store, Verifier, VerifierConfig};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::api_doc::{ApiDoc, RateLimitedAnswers};
use crate::config::Compat;
use crate::error::{ApiError, ErrorBody};
use crate::limits::login::LoginLimiter;
use crate::limits::token_failures::AuthLimiter;
use crate::middleware::{no_store, AnswerRulesLayer, ObserveLayer};
use crate::state::RoleScopes;

pub use crate::config::ServerConfig;
pub use crate::state::AppState;

/// Builds the shared state; must run inside a Tokio runtime (it starts the last-use writer).
pub fn state(
    store: Arc<dyn Store>,
    config: ServerConfig,
    verifier: VerifierConfig,
    limiter: RateLimiter,
) -> AppState {
    AppState::new(state::Shared {
        verifier: Arc::new(Verifier::with_rate_limiter(
            store.clone(),
            verifier,
            limiter,
        )),
        store,
        roles: Arc::new(RoleScopes::new(&config.catalog)),
        login_limiter: Arc::new(LoginLimiter::new(config.login_limits)),
        auth_limiter: AuthLimiter::new(config.auth_limits),
        ip_refusals: Default::default(),
        expired_seen: Default::default(),
        on_expired: service::reuse::expired_presented,
        usage_exceeded_seen: Default::default(),
        on_usage_exceeded: service::usage_alerts::usage_exceeded,
        stopping: Default::default(),
        github_keys: config.leaks.github_keys.clone().map(leaks::GithubKeys::new),
        gitlab_limiter: limits::limiter::FailureLimiter::new(
            config.leaks.gitlab_rate_limit,
            std::time::Duration::from_secs(60),
        ),
        config: Arc::new(config),
        metrics: Arc::new(metrics::Metrics::default()),
    })
}

fn api(compat: Compat) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(compat::router(compat))
        .merge(routes::native())
}

/// The OpenAPI document of every route of these surfaces, as served at `/openapi.json`.
pub fn openapi(compat: Compat) -> utoipa::openapi::OpenApi {
    let mut doc = api(compat).into_openapi();
    // After the routes are merged in: a modifier of `ApiDoc` would see no paths yet.
    RateLimitedAnswers.modify(&mut doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// The whole service: the native API, the compatible surfaces the configuration serves, the
/// web page, the OpenAPI document and its explorer, inside the layers every answer passes.
pub fn router(state: AppState) -> Router {
    let (router, _) = api(state.config.compat).split_for_parts();
    let spec = Arc::new(
        openapi(state.config.compat)
            .to_json()
            .expect("the OpenAPI document serialises"),
    );
    let max_body = state.config.max_body_bytes;
    router
        .merge(crate::web::router())
        .merge(crate::explorer::router())
        .route(
            "/openapi.json",
            get(move || {
                let spec = spec.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        spec.as_str().to_owned(),
                    )
                }
            }),
        )
        .fallback(|| async { ApiError::NotFound("No such route".into()) })
        .method_not_allowed_fallback(|| async { method_not_allowed() })
        // One `layer` call for the whole stack: axum wraps every route once per call, and each
        // wrapping costs a clone and a boxed future per request.
        .layer(
            ServiceBuilder::new()
                // The answer to a panic is written here, outside the rules: it is fixed text,
                // and keeps them itself.
                .layer(CatchPanicLayer::custom(|_| {
                    no_store(ApiError::Internal("a handler panicked".into()).into_response())
                }))
                .layer(AnswerRulesLayer::new(state.config.prefix.as_str()))
                .layer(ObserveLayer::new(state.clone()))
                .layer(DefaultBodyLimit::max(max_body)),
        )
        .with_state(state)
}

fn method_not_allowed() -> Response {
    let body = ErrorBody {
        error: "Method Not Allowed".into(),
        message: "This route does not accept this method".into(),
        code: "invalid_request".into(),
        missing_scopes: None,
    };
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use keygate_core::AuditAction;

    /// The published description of an audit entry names every action keygate writes.
    #[test]
    fn openapi_lists_every_audit_action() {
        let doc = serde_json::to_value(super::openapi(Default::default())).unwrap();
        let action = &doc["components"]["schemas"]["AuditView"]["properties"]["action"];
        let listed: Vec<&str> = action["enum"]
            .as_array()
            .map(|v| v.iter().filter_map(|a| a.as_str()).collect())
            .unwrap_or_default();
        let missing: Vec<&str> = AuditAction::ALL
            .iter()
            .map(|a| a.as_str())
            .filter(|a| !listed.contains(a))
            .collect();
        assert!(
            missing.is_empty(),
            "missing from /openapi.json: {missing:?}; got {action}"
        );
    }
}
