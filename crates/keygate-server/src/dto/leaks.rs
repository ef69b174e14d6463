//! The JSON shapes of the leak intake: GitHub's secret-scanning partner format and GitLab's
//! Token Revocation API, with the field names those services use (snake_case), not keygate's.
//! Reports hold tokens in plaintext: none of these types derives `Debug`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most tokens one report may name: GitHub batches its matches, and a bound keeps one request
/// from holding a connection and the database for long.
pub const MAX_TOKENS_PER_REPORT: usize = 1000;

/// The token type keygate's tokens are reported under to GitLab.
pub const GITLAB_TOKEN_TYPE: &str = "keygate_api_token";

/// One match of GitHub's secret scanning.
#[derive(Deserialize, ToSchema)]
pub struct GithubLeak {
    /// The token found.
    pub token: String,
    /// The type name the deployment registered its pattern under, e.g. `keygate_api_token`.
    #[serde(rename = "type")]
    pub token_type: String,
    /// Where it was found.
    #[serde(default)]
    pub url: Option<String>,
    /// What kind of place that is, e.g. `content`, `commit`, `gist`, `npm`.
    #[serde(default)]
    pub source: Option<String>,
}

/// keygate's answer about one match.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct GithubLeakAnswer {
    /// SHA-256 of the reported token, lower-case hex.
    #[schema(example = "6f4c…")]
    pub token_hash: String,
    /// The report's `type`, as given.
    pub token_type: String,
    /// `true_positive`: a token of this deployment (now handled by its tenant's `onLeak`);
    /// `false_positive`: not one (wrong prefix or checksum, or no such token).
    #[schema(example = "true_positive")]
    pub label: Label,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    TruePositive,
    FalsePositive,
}

/// The token types this deployment revokes.
#[derive(Serialize, ToSchema)]
pub struct GitlabTokenTypes {
    #[schema(example = json!(["keygate_api_token"]))]
    pub types: Vec<String>,
}

/// One token GitLab's secret detection found.
#[derive(Deserialize, ToSchema)]
pub struct GitlabLeak {
    /// One of `GET /api/v1/leaks/gitlab/revocable_token_types`' types.
    #[serde(rename = "type")]
    pub token_type: String,
    pub token: String,
    /// Where it was found (a URL to the file and line).
    #[serde(default)]
    pub location: Option<String>,
}
