//! The JSON shapes of `POST /api/v1/tokens/bulk-revoke`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// Which tokens to revoke: at least one criterion, and every criterion given must hold.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkRevokeRequest {
    /// Token ids, e.g. `kg_1A2b3C4d5E6f7G8h` (1–10 000); ids of no token of the tenant are
    /// answered in `notFound`.
    #[schema(min_items = 1, max_items = 10000)]
    pub ids: Option<Vec<String>>,
    /// Only tokens of this owner (a user id, or the tenant id for service tokens).
    pub owner_id: Option<String>,
    /// Only tokens with exactly this `externalId`.
    pub external_id: Option<String>,
    /// Only tokens that hold exactly this scope name.
    pub scope: Option<String>,
    /// Only tokens created before this instant (RFC 3339).
    #[serde(default, with = "crate::rfc3339_ms::option")]
    pub created_before: Option<OffsetDateTime>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct BulkRevokeQuery {
    /// `true`: answer what would be revoked, and change nothing.
    pub dry_run: Option<bool>,
}

/// What was revoked (or, on a dry run, would be).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkRevokeResponse {
    /// How many tokens were revoked.
    pub revoked: usize,
    pub dry_run: bool,
    /// The revoked tokens' ids, newest first.
    #[schema(example = json!(["kg_1A2b3C4d5E6f7G8h"]))]
    pub ids: Vec<String>,
    /// Ids of `ids` that are no token of the tenant (never were, or revoked already).
    pub not_found: Vec<String>,
    /// The calling token matched and was kept: a bulk revoke never revokes its caller
    /// (`DELETE /api/v1/tokens/self` does).
    pub calling_token_kept: bool,
}
