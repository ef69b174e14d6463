//! The JSON shapes of replication: what a replica (`keygate-client`) holds of each token, the
//! pages of a snapshot, and the change stream.

use keygate_core::network::Cidr;
use keygate_store::{ReplicatedChange, TokenRecord};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// What a replica needs to verify a token as keygate would: never the secret, only its
/// SHA-256.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicatedToken {
    /// SHA-256 of the whole token, 64 lowercase hex digits.
    #[schema(example = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")]
    pub hash: String,
    pub id: String,
    pub name: String,
    pub tenant_id: String,
    pub owner_id: String,
    pub scopes: Vec<String>,
    pub enabled: bool,
    #[serde(with = "crate::rfc3339_ms::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Empty: the token may be used from anywhere.
    #[schema(value_type = Vec<String>)]
    pub allowed_cidrs: Vec<Cidr>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Box<RawValue>>,
    pub external_id: Option<String>,
    /// The token has rate limits or credits: a replica must not decide it, but ask
    /// `POST /api/v1/verify`, where the limits are counted and the credits charged.
    pub usage_controlled: bool,
}

impl From<TokenRecord> for ReplicatedToken {
    fn from(t: TokenRecord) -> Self {
        Self {
            hash: hex::encode(t.hash.as_bytes()),
            usage_controlled: !t.ratelimits.is_empty() || t.credits.is_some(),
            id: t.id.into_string(),
            name: t.name,
            tenant_id: t.tenant_id,
            owner_id: t.owner_id,
            scopes: t.scopes.names(),
            enabled: t.enabled,
            expires_at: t.expires_at,
            allowed_cidrs: t.allowed_cidrs,
            metadata: t.metadata,
            external_id: t.external_id,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SnapshotQuery {
    /// The `next` of the previous page; left out for the first page.
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// Tokens per page, 1 to 10000 (default 5000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
}

/// One page of the tenant's tokens, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotPageView {
    /// Where to start the change stream once every page is read. Keep the first page's: changes
    /// made while the pages are read come again in the stream.
    pub cursor: String,
    /// The deployment's token prefix, for checking a token's format before hashing it.
    pub prefix: String,
    pub tokens: Vec<ReplicatedToken>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    /// The `cursor` of a snapshot or of the previous answer.
    pub after: String,
    /// Seconds to wait for a change when there is none yet, 0 to 55 (default 0).
    #[param(minimum = 0, maximum = 55)]
    pub wait: Option<u64>,
    /// Most changes in one answer, 1 to 10000 (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
}

/// A change to apply to a replica: the token's current state, or its removal.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum ChangeView {
    /// Insert or replace the token with this hash.
    Upsert { token: Box<ReplicatedToken> },
    /// The token is gone (revoked or deleted): forget it.
    Delete { hash: String },
}

impl From<ReplicatedChange> for ChangeView {
    fn from(c: ReplicatedChange) -> Self {
        match c {
            ReplicatedChange::Upsert(t) => ChangeView::Upsert {
                token: Box::new((*t).into()),
            },
            ReplicatedChange::Delete(h) => ChangeView::Delete {
                hash: hex::encode(h.as_bytes()),
            },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangesView {
    /// Pass as `after` next time; it moves on even when there were no changes.
    pub cursor: String,
    /// In commit order, one per token.
    pub changes: Vec<ChangeView>,
    /// More changes are already waiting: ask again at once.
    pub more: bool,
}
