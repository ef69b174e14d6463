//! Unkey's key API (v2), `POST /v2/keys.*` and `POST /v2/apis.listKeys`, so that Unkey's
//! clients (`unkey-py`, `@unkey/api`) work against keygate unchanged. The root key is a
//! keygate token; an `apiId` is a tenant id; keys are keygate tokens, Unkey's permissions are
//! keygate's scopes, its `meta` their metadata. Every answer is `{meta: {requestId}, data}`,
//! every failure Unkey's error body. Everything goes through `crate::service::tokens`, so
//! visibility, no escalation, audit and cache invalidation are the native ones; what keygate
//! does not do is refused with a 400 naming the field.

mod create;
mod envelope;
mod error;
mod input;
mod keys;
mod list;
mod meta;
mod migrate;
mod model;
mod permissions;
mod update;
mod verify;

use axum::routing::post;
use utoipa_axum::router::OpenApiRouter;

pub use self::error::UnkeyError;
use crate::state::AppState;

/// Unkey's routes are RPC-style POSTs; they stay out of keygate's own OpenAPI document
/// (Unkey publishes theirs).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .route("/v2/keys.createKey", post(create::create_key))
        .route("/v2/keys.verifyKey", post(verify::verify_key))
        .route("/v2/keys.getKey", post(keys::get_key))
        .route("/v2/keys.whoami", post(keys::whoami))
        .route("/v2/keys.updateKey", post(update::update_key))
        .route("/v2/keys.updateCredits", post(update::update_credits))
        .route("/v2/keys.deleteKey", post(keys::delete_key))
        .route("/v2/keys.rerollKey", post(keys::reroll_key))
        .route(
            "/v2/keys.addPermissions",
            post(permissions::add_permissions),
        )
        .route(
            "/v2/keys.removePermissions",
            post(permissions::remove_permissions),
        )
        .route(
            "/v2/keys.setPermissions",
            post(permissions::set_permissions),
        )
        .route("/v2/keys.migrateKeys", post(migrate::migrate_keys))
        .route("/v2/apis.listKeys", post(list::list_keys))
}
