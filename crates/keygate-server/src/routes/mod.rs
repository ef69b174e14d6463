//! The native HTTP API: one file per resource, each handler a thin translation between HTTP and
//! an operation of `service`.

pub mod bulk_revoke;
pub mod gateway;
pub mod import;
pub mod leaks;
pub mod meta;
pub mod ops;
pub mod replication;
pub mod session;
pub mod tenants;
pub mod tokens;
pub mod usage;
pub mod users;
pub mod verify;
pub mod webhooks;

use axum::routing::{any, MethodRouter};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The native API's routes, each with its OpenAPI description.
pub fn native() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(tokens::create_token, tokens::list_tokens))
        .routes(routes!(tokens::lookup_token))
        .routes(routes!(bulk_revoke::bulk_revoke))
        .routes(routes!(tokens::get_self, tokens::revoke_self))
        .routes(routes!(
            tokens::get_token,
            tokens::update_token,
            tokens::delete_token
        ))
        .routes(routes!(tokens::disable_token))
        .routes(routes!(tokens::enable_token))
        .routes(routes!(tokens::rotate_token))
        .routes(routes!(tokens::change_credits))
        .merge(import::router())
        .routes(routes!(usage::token_usage))
        .routes(routes!(usage::tenant_usage))
        .routes(routes!(replication::snapshot))
        .routes(routes!(replication::changes))
        .routes(routes!(verify::verify))
        .routes(routes!(verify::forward_auth))
        // Any method and any suffix, undocumented beside GET: Envoy's HTTP ext_authz sends the
        // original method and appends the original path.
        .route(
            gateway::AUTH_PATH,
            MethodRouter::new().fallback(verify::forward_auth),
        )
        .route(
            &format!("{}/", gateway::AUTH_PATH),
            any(verify::forward_auth),
        )
        .route(
            &format!("{}/{{*original}}", gateway::AUTH_PATH),
            any(verify::forward_auth),
        )
        .routes(routes!(users::create_user, users::list_users))
        .routes(routes!(
            users::get_user,
            users::update_user,
            users::delete_user
        ))
        .routes(routes!(webhooks::create_webhook, webhooks::list_webhooks))
        .routes(routes!(
            webhooks::get_webhook,
            webhooks::update_webhook,
            webhooks::delete_webhook
        ))
        .routes(routes!(webhooks::list_deliveries))
        .routes(routes!(webhooks::redeliver))
        .routes(routes!(leaks::github))
        .routes(routes!(leaks::gitlab_types))
        .routes(routes!(leaks::gitlab_revoke))
        .routes(routes!(tenants::create_tenant))
        .routes(routes!(tenants::get_policy, tenants::put_policy))
        .routes(routes!(session::login, session::current, session::logout))
        .routes(routes!(meta::list_scopes))
        .routes(routes!(meta::list_audit))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
}
