//! The HTTP surface: every route, its OpenAPI description, and the layers around them.

pub mod meta;
pub mod ops;
pub mod session;
pub mod tenants;
pub mod tokens;
pub mod users;
pub mod verify;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::middleware::{no_store, AnswerRulesLayer, ObserveLayer};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "keygate",
        description = "Self-hosted API tokens: mint, verify, scope, rotate and revoke.",
        license(name = "Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
    components(schemas(ErrorBody)),
    tags(
        (name = "tokens", description = "Token management"),
        (name = "users", description = "The people of a tenant"),
        (name = "tenants", description = "Tenants (held by the bootstrap token)"),
        (name = "session", description = "Web login with a cookie and a CSRF token"),
        (name = "verify", description = "Checking tokens for a protected API"),
        (name = "scopes", description = "The scope catalogue"),
        (name = "audit", description = "The audit log"),
        (name = "ops", description = "Health, readiness and metrics"),
        (name = "instana", description = "Instana-compatible token API (`--compat instana`)"),
        (name = "dynatrace", description = "Dynatrace-compatible token API (`--compat dynatrace`)"),
        (name = "interana", description = "Interana-compatible token API (`--compat interana`)"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "apiToken",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`apiToken <token>`; the schemes `Api-Token`, `Token` and `Bearer` work too, and \
                 so do the query parameters `api-token`, `apiToken` and `api_token`",
            ))),
        );
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every operation that can answer 401 can also answer 429: a client address that has failed
/// too often (`token_auth`). The 429 has the body of that operation's 401, whose format is the
/// surface's own (native, or a compatible API's), and says when to retry.
struct RateLimitedAnswers;

impl Modify for RateLimitedAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{header::HeaderBuilder, ObjectBuilder, RefOr, Type};
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in operations.into_iter().flatten() {
                let answers = &mut op.responses.responses;
                let Some(RefOr::T(unauthorized)) = answers.get("401") else {
                    continue;
                };
                if answers.contains_key("429") {
                    continue;
                }
                let mut limited = unauthorized.clone();
                limited.description = "Too many failed authentications from this client \
                                       address; retry after `Retry-After` seconds"
                    .into();
                limited.headers.insert(
                    "Retry-After".into(),
                    HeaderBuilder::new()
                        .schema(ObjectBuilder::new().schema_type(Type::Integer))
                        .description(Some("Seconds until attempts are accepted again"))
                        .build(),
                );
                answers.insert("429".into(), RefOr::T(limited));
            }
        }
    }
}

fn api(compat: crate::compat::Compat) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(compat.router())
        .routes(routes!(tokens::create_token, tokens::list_tokens))
        .routes(routes!(tokens::lookup_token))
        .routes(routes!(tokens::get_self, tokens::revoke_self))
        .routes(routes!(
            tokens::get_token,
            tokens::update_token,
            tokens::delete_token
        ))
        .routes(routes!(tokens::disable_token))
        .routes(routes!(tokens::enable_token))
        .routes(routes!(tokens::rotate_token))
        .routes(routes!(verify::verify))
        .routes(routes!(verify::forward_auth))
        .routes(routes!(users::create_user, users::list_users))
        .routes(routes!(
            users::get_user,
            users::update_user,
            users::delete_user
        ))
        .routes(routes!(tenants::create_tenant))
        .routes(routes!(session::login, session::current, session::logout))
        .routes(routes!(meta::list_scopes))
        .routes(routes!(meta::list_audit))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
}

/// The OpenAPI document of every route of these surfaces, as served at `/openapi.json`.
pub fn openapi(compat: crate::compat::Compat) -> utoipa::openapi::OpenApi {
    let mut doc = api(compat).into_openapi();
    // After the routes are merged in: a modifier of `ApiDoc` would see no paths yet.
    RateLimitedAnswers.modify(&mut doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

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
