//! The callers of the leak intake, which hold no keygate token: GitHub, whose reports are
//! signed with a key it publishes, and GitLab, which sends the bearer token the operator gave
//! it. Each is an extractor, so a handler of theirs cannot run unchecked, and a route that is
//! not configured answers 404 before anything else is read.

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::token::whole_seconds;
use crate::error::ApiError;
use crate::extract::{client_ip, JsonBody};
use crate::state::AppState;

pub const GITHUB_KEY_ID: &str = "github-public-key-identifier";
pub const GITHUB_SIGNATURE: &str = "github-public-key-signature";

fn not_configured() -> ApiError {
    ApiError::NotFound("No such route".into())
}

/// A report whose signature checked out against GitHub's key, with its raw body (unparsed:
/// the signature is over these bytes).
pub struct SignedGithubReport {
    pub body: Bytes,
    pub key_id: String,
    /// The signature in its canonical form, which names the report for replay detection.
    pub signature: [u8; 64],
    pub ip: Option<IpAddr>,
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, ApiError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| {
            ApiError::InvalidSignature(format!(
                "A secret-scanning report must be signed: the header {name} is missing"
            ))
        })
}

impl FromRequest<AppState> for SignedGithubReport {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let Some(keys) = &state.github_keys else {
            return Err(not_configured());
        };
        let (parts, body) = req.into_parts();
        let ip = client_ip(&parts, &state.config);
        let key_id = header_text(&parts.headers, GITHUB_KEY_ID)?
            .trim()
            .to_owned();
        let signature = header_text(&parts.headers, GITHUB_SIGNATURE)?.to_owned();
        let JsonBody(body) =
            JsonBody::from_request(Request::from_parts(parts, body), state).await?;
        let signature = keys
            .current()
            .verify(&key_id, &signature, &body)
            .map_err(|e| ApiError::InvalidSignature(format!("Report refused: {e}")))?;
        Ok(Self {
            body,
            key_id,
            signature,
            ip,
        })
    }
}

/// GitLab's Token Revocation API client: its token matched the operator's file, within
/// the per-address rate limit (every request counts, refused ones too, so the limit also bounds
/// guessing).
pub struct GitlabRevoker {
    pub ip: Option<IpAddr>,
}

impl FromRequestParts<AppState> for GitlabRevoker {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(expected) = &state.config.leaks.gitlab_token else {
            return Err(not_configured());
        };
        let ip = client_ip(parts, &state.config);
        if let Some(wait) = state.gitlab_limiter.fail(&ip) {
            return Err(ApiError::TooManyRequests(
                whole_seconds(wait.as_millis() as u64).max(1),
            ));
        }
        // GitLab sends its setting's value as the whole header (`Authorization: <token>`); a
        // `Bearer <token>` is taken as well.
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(|v| match v.trim().split_once(' ') {
                Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
                _ => v.trim(),
            })
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::MissingToken)?;
        // Compared as hashes: equal lengths, and the time taken says nothing of the length or
        // the contents of the expected token.
        let a = Sha256::digest(presented.as_bytes());
        let b = Sha256::digest(expected.expose_secret().as_bytes());
        if bool::from(a.ct_eq(&b)) {
            Ok(Self { ip })
        } else {
            Err(ApiError::InvalidToken)
        }
    }
}
