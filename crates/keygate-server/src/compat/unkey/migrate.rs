//! `POST /v2/keys.migrateKeys`: keys made and hashed elsewhere, imported by their SHA-256 so
//! that their holders keep them. keygate stores the SHA-256 of a key, the hash Unkey itself
//! keeps, so a migrated key verifies as it is, with no `migrationId` at verification.

use axum::extract::State;
use axum::response::Response;
use base64::Engine;
use keygate_core::TokenHash;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::envelope::*;
use super::error::UnkeyError;
use super::input::{self, At, CreditsIn, RatelimitIn};
use crate::service::import::{self, Existing, ImportToken, Source};
use crate::service::tokens::{self, NewToken};
use crate::state::AppState;

/// Keys per request: enough for a batch job, small enough that one request's work is bounded.
const MAX_KEYS: usize = 1000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct MigrateKeys {
    migration_id: String,
    api_id: String,
    keys: Vec<MigrateKey>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct MigrateKey {
    hash: HashIn,
    name: Option<String>,
    external_id: Option<String>,
    meta: Option<Value>,
    roles: Option<Vec<String>>,
    permissions: Option<Vec<String>>,
    expires: Option<i64>,
    enabled: Option<bool>,
    credits: Option<CreditsIn>,
    ratelimits: Option<Vec<RatelimitIn>>,
}

/// The SHA-256 of the key: a string is standard base64 (how Unkey stores its own keys); the
/// object form names its encoding.
#[derive(Deserialize)]
#[serde(untagged)]
enum HashIn {
    Base64(String),
    Tagged { value: String, variant: String },
}

impl HashIn {
    fn text(&self) -> &str {
        match self {
            HashIn::Base64(v) | HashIn::Tagged { value: v, .. } => v,
        }
    }

    fn decode(&self, at: &At) -> Result<TokenHash, UnkeyError> {
        let bytes = match self {
            HashIn::Base64(v) => base64_bytes(v),
            HashIn::Tagged { value, variant } => match variant.as_str() {
                "sha256_base64" => base64_bytes(value),
                "sha256_hex" => hex_bytes(value),
                _ => {
                    return Err(UnkeyError::unsupported(
                        &at.path("hash.variant"),
                        "keygate imports SHA-256 hashes: sha256_base64 or sha256_hex",
                    ))
                }
            },
        };
        bytes
            .and_then(|b| TokenHash::from_slice(&b))
            .ok_or_else(|| {
                UnkeyError::invalid(
                    &at.path("hash"),
                    "hash must be the 32-byte SHA-256 of the key, in standard base64 (or in \
                     hex with variant sha256_hex)",
                )
            })
    }
}

fn base64_bytes(v: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(v).ok()
}

fn hex_bytes(v: &str) -> Option<Vec<u8>> {
    if !v.len().is_multiple_of(2) {
        return None;
    }
    (0..v.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(v.get(i..i + 2)?, 16).ok())
        .collect()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Migrated {
    hash: String,
    key_id: String,
}

#[derive(Serialize)]
struct Outcome {
    migrated: Vec<Migrated>,
    failed: Vec<String>,
}

struct Parsed {
    hash: TokenHash,
    text: String,
    spec: NewToken,
    enabled: bool,
}

fn parse_key(state: &AppState, i: usize, k: MigrateKey) -> Result<Parsed, UnkeyError> {
    let prefix = format!("keys[{i}].");
    let at = At(&prefix);
    input::refuse_roles(&at, &k.roles)?;
    let now = keygate_store::now();
    let usage = tokens::Usage {
        external_id: input::external_id(&at, k.external_id)?,
        ratelimits: input::ratelimits(&at, k.ratelimits)?,
        credits: input::credits(&at, k.credits)?,
        allowed_cidrs: Vec::new(),
    };
    let spec = NewToken {
        expires_at: input::expires(&at, k.expires, now)?,
        metadata: input::meta(&at, k.meta)?,
        usage,
        ..NewToken::new(
            input::name(&at, k.name)?,
            input::permissions(state, &at, k.permissions)?,
        )
    };
    Ok(Parsed {
        hash: k.hash.decode(&at)?,
        text: k.hash.text().to_owned(),
        spec,
        enabled: k.enabled.unwrap_or(true),
    })
}

pub async fn migrate_keys(
    State(state): State<AppState>,
    caller: Writer,
    body: Body,
) -> Result<Response, UnkeyError> {
    let caller = caller?;
    let req: MigrateKeys = parse(body)?;
    ensure_own_api(&caller, &req.api_id)?;
    // Recorded in each imported key's audit entry: bounded like any text kept there.
    let id_chars = req.migration_id.chars().count();
    if !(1..=255).contains(&id_chars) || req.migration_id.chars().any(char::is_control) {
        return Err(UnkeyError::invalid(
            "migrationId",
            "migrationId must be 1-255 characters without control characters",
        ));
    }
    if req.keys.is_empty() || req.keys.len() > MAX_KEYS {
        return Err(UnkeyError::invalid(
            "keys",
            format!("keys must hold 1-{MAX_KEYS} keys"),
        ));
    }
    // Every key is checked before any is imported, so a refused request changes nothing.
    let parsed = req
        .keys
        .into_iter()
        .enumerate()
        .map(|(i, k)| parse_key(&state, i, k))
        .collect::<Result<Vec<_>, _>>()?;
    let (texts, batch): (Vec<String>, Vec<ImportToken>) = parsed
        .into_iter()
        .map(|p| {
            let t = ImportToken {
                hash: p.hash,
                spec: p.spec,
                enabled: p.enabled,
            };
            (p.text, t)
        })
        .unzip();
    // One transaction for the request; a hash keygate holds already (or that the request
    // repeats) is reported in `failed`, as Unkey does, and the others are imported.
    let source = Source {
        name: "unkey",
        field: "keys",
        audit: json!({ "migrationId": req.migration_id }),
    };
    let done = import::import(&state, &caller, batch, Existing::Skip, source).await?;
    let failed = done.skipped.iter().map(|&i| texts[i].clone()).collect();
    let mut texts = texts.into_iter().enumerate();
    let migrated = done
        .tokens
        .into_iter()
        .map(|rec| {
            // Imported tokens come back in request order, skipped ones left out.
            let hash = texts
                .by_ref()
                .find(|(i, _)| done.skipped.binary_search(i).is_err())
                .map(|(_, t)| t)
                .unwrap_or_default();
            Migrated {
                hash,
                key_id: rec.id.into_string(),
            }
        })
        .collect();
    Ok(answer(Outcome { migrated, failed }))
}
