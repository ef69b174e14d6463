//! Dynatrace's request and answer shapes for `/api/v2/apiTokens`.

use keygate_store::TokenRecord;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::query::{self, format_date};

/// A token's metadata, Dynatrace's `ApiToken`. Lists show the fields `fields` selects.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiToken {
    /// The token id (its public part, e.g. `kg_1A2b3C4d5E6f7G8h`).
    pub id: String,
    pub name: String,
    pub enabled: bool,
    /// The owner: a user id, or the tenant id for a service token.
    pub owner: String,
    /// True when the owner is a user rather than the tenant.
    pub personal_access_token: bool,
    #[schema(example = "2025-01-25T05:57:01.123Z")]
    pub creation_date: String,
    pub expiration_date: Option<String>,
    pub last_used_date: Option<String>,
    pub last_used_ip_address: Option<String>,
    /// Null while the token was never modified.
    pub modified_date: Option<String>,
    pub scopes: Vec<String>,
    /// The token's keygate metadata object, if any.
    #[schema(value_type = Option<Object>)]
    pub additional_metadata: Option<Value>,
}

impl From<&TokenRecord> for ApiToken {
    fn from(t: &TokenRecord) -> Self {
        ApiToken {
            id: t.id.to_string(),
            name: t.name.clone(),
            enabled: t.enabled,
            owner: t.owner_id.clone(),
            personal_access_token: t.owner_id != t.tenant_id,
            creation_date: format_date(t.created_at),
            expiration_date: t.expires_at.map(format_date),
            last_used_date: t.last_used_at.map(format_date),
            last_used_ip_address: t.last_used_ip.clone(),
            modified_date: query::modified(t).map(format_date),
            scopes: t.scopes.names(),
            additional_metadata: t
                .metadata
                .as_ref()
                .and_then(|m| serde_json::from_str(m.get()).ok()),
        }
    }
}

/// Dynatrace's `ApiTokenList`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenList {
    /// The tokens of this page, with the fields `fields` selects.
    #[schema(value_type = Vec<Object>)]
    pub api_tokens: Vec<Value>,
    /// Send it alone as `nextPageKey` for the next page; null on the last page.
    pub next_page_key: Option<String>,
    pub page_size: u32,
    pub total_count: u64,
}

/// Dynatrace's `ApiTokenCreate`.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenCreate {
    pub name: String,
    pub scopes: Vec<String>,
    /// Epoch milliseconds, ISO 8601 (`2025-01-25T05:57:01.123+01:00`; UTC without an offset)
    /// or relative (`now+14d`, `now+1h`, …). Never expires when left out or null.
    #[schema(value_type = Option<String>, example = "now+14d")]
    pub expiration_date: Option<Value>,
    /// True: the caller's user owns it (the caller must belong to a user); false: the tenant
    /// owns it (needs tokens:admin unless the caller is itself a tenant token); null: the
    /// caller's owner.
    pub personal_access_token: Option<bool>,
}

/// Dynatrace's `ApiTokenCreated`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenCreated {
    pub id: String,
    /// The token itself, shown this once.
    #[serde(serialize_with = "crate::reveal::secret")]
    #[schema(value_type = String)]
    pub token: SecretString,
    pub expiration_date: Option<String>,
}

/// Dynatrace's `ApiTokenUpdate`: only what is sent changes; scopes sent replace the set.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ApiTokenUpdate {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub scopes: Option<Vec<String>>,
}

/// Dynatrace's `ApiTokenSecret`.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ApiTokenSecret {
    #[schema(value_type = String)]
    pub token: SecretString,
}

/// The query of `GET /api/v2/apiTokens` (documentation; parsed by hand).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    /// The key of the next page, from the previous response; sent alone.
    next_page_key: Option<String>,
    /// 100 to 10000; 200 by default.
    page_size: Option<u32>,
    /// `owner("id")`, `personalAccessToken(true|false)`, `scope("a","b")`, joined with commas.
    api_token_selector: Option<String>,
    /// `+field` / `-field`, comma-separated; by default id, name, enabled, owner,
    /// creationDate.
    fields: Option<String>,
    /// Last use from (epoch millis, ISO 8601 or `now-2h`).
    from: Option<String>,
    /// Last use to.
    to: Option<String>,
    /// `±name|lastUsedDate|creationDate|expirationDate|modifiedDate`; `-creationDate` by default.
    sort: Option<String>,
}

/// One problem with one input.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConstraintViolation {
    pub path: String,
    pub message: String,
    /// `PAYLOAD_BODY`, `QUERY` or `PATH`.
    pub parameter_location: &'static str,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// The HTTP status.
    pub code: u16,
    pub message: String,
    pub constraint_violations: Vec<ConstraintViolation>,
}

/// Dynatrace's error body.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorDetail,
}
