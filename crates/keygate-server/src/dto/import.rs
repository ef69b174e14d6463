//! The JSON shapes of `POST /api/v1/tokens/import`: tokens made elsewhere, known by their
//! SHA-256.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::TokenView;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportTokensRequest {
    /// 1-10000 tokens, imported all or none.
    #[schema(min_items = 1, max_items = 10000)]
    pub tokens: Vec<ImportTokenRequest>,
}

/// One token to import. Its holder keeps using the token as it is: keygate verifies it by its
/// SHA-256, as it verifies the tokens it mints.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportTokenRequest {
    /// `sha256:` and the SHA-256 of the whole token: 64 hex digits, or 32 bytes in base64 or
    /// base64url, padded or not.
    #[schema(example = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")]
    pub hash: String,
    /// 1–200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Scope names from the catalogue, or wildcards such as `metrics:*`; the caller must hold
    /// them.
    #[schema(min_items = 1, max_items = 100)]
    pub scopes: Vec<String>,
    /// A user id of the tenant, or the tenant id for a service token; the caller's own owner
    /// when left out.
    pub owner_id: Option<String>,
    /// Your own id for whoever holds the token (1-256 characters), returned by `verify`.
    pub external_id: Option<String>,
    /// In the future, at most ten years ahead; left out: never.
    #[serde(default, with = "crate::rfc3339_ms::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// A JSON object of at most 4 KiB, returned by `verify`.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Box<RawValue>>,
}

/// The tokens imported, in the order of the request; no secret is ever part of them.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportedTokens {
    pub imported: usize,
    pub tokens: Vec<TokenView>,
}
