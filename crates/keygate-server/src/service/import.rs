//! Importing tokens made and hashed elsewhere, known only by their SHA-256: one operation for
//! the native `POST /api/v1/tokens/import` and Unkey's `keys.migrateKeys`. A whole batch is
//! checked first and then written in one transaction, with the audit entry and the
//! `token.created` event of each token, so a refused batch changes nothing.

use std::collections::HashMap;

use keygate_core::{AuditAction, EventType, TokenHash, TokenId};
use keygate_store::{TokenRecord, Write};
use serde_json::{json, Map};

use crate::auth::MayChangeTokens;
use crate::error::{ApiError, ApiResult};
use crate::service::tokens::{self, NewToken};
use crate::service::{events, policy};
use crate::state::AppState;

/// Most tokens one import request may hold: a large system moves in a few requests, and one
/// request's transaction stays bounded.
pub const MAX_IMPORT: usize = 10_000;

/// The SHA-256 of a token as an import names it: `sha256:` and 64 hex digits, or the 32 bytes
/// in base64 or base64url, padded or not (what other systems store and export).
pub fn parse_sha256(text: &str) -> Result<TokenHash, String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine;
    let refused = |why: &str| {
        Err(format!(
            "not a SHA-256 ({why}; expected \"sha256:\" and 64 hex digits, or 32 bytes in base64 \
             or base64url)"
        ))
    };
    let Some(digest) = text.strip_prefix("sha256:") else {
        return refused("no \"sha256:\" prefix");
    };
    let bytes = if digest.len() == 64 {
        hex::decode(digest).ok()
    } else {
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|e| e.decode(digest).ok())
    };
    match bytes {
        None => refused("neither hex nor base64"),
        Some(b) => match TokenHash::from_slice(&b) {
            Some(h) => Ok(h),
            None => refused(&format!("{} bytes, not 32", b.len())),
        },
    }
}

/// One token to import, already parsed.
pub struct ImportToken {
    pub hash: TokenHash,
    pub spec: NewToken,
    pub enabled: bool,
}

/// What to do with a token whose hash keygate holds already (or that the batch holds twice).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Refuse the whole batch (409 for a stored hash, 422 for a repeat), naming the index.
    Refuse,
    /// Leave the token out and go on (Unkey's `failed` list).
    Skip,
}

/// Where the imported tokens came from, and how a refusal names an item.
pub struct Source<'a> {
    /// Stored with each token as `imported_from`, e.g. `import` or `unkey`.
    pub name: &'a str,
    /// The request's array, as an error names it: `tokens` gives `tokens[3].hash`.
    pub field: &'a str,
    /// Added to each token's audit entry.
    pub audit: serde_json::Value,
}

/// The outcome: the tokens imported, and the indexes left out under [`Existing::Skip`].
pub struct Imported {
    pub tokens: Vec<TokenRecord>,
    pub skipped: Vec<usize>,
}

/// Imports a batch, all or nothing: the rules of a create (no escalation, owners, the tenant's
/// policy, the owner's limit) for each token, then one transaction.
pub async fn import(
    state: &AppState,
    caller: &impl MayChangeTokens,
    batch: Vec<ImportToken>,
    existing: Existing,
    source: Source<'_>,
) -> ApiResult<Imported> {
    let at = |i: usize, what: &str| format!("{}[{i}].{what}", source.field);
    if batch.is_empty() || batch.len() > MAX_IMPORT {
        return Err(ApiError::Unprocessable(format!(
            "{} must hold 1-{MAX_IMPORT} tokens, not {}",
            source.field,
            batch.len()
        )));
    }
    let mut skipped = Vec::new();
    let mut first_of: HashMap<TokenHash, usize> = HashMap::with_capacity(batch.len());
    for (i, t) in batch.iter().enumerate() {
        if let Some(j) = first_of.get(&t.hash) {
            if existing == Existing::Refuse {
                return Err(ApiError::Unprocessable(format!(
                    "{}: duplicate of {}[{j}]",
                    at(i, "hash"),
                    source.field
                )));
            }
            skipped.push(i);
        } else {
            first_of.insert(t.hash, i);
        }
        tokens::ensure_covers(caller, &t.spec.scopes).map_err(|e| in_item(e, &at(i, "scopes")))?;
    }
    let hashes: Vec<TokenHash> = first_of.keys().copied().collect();
    let mut stored: Vec<usize> = state
        .store
        .existing_hashes(&hashes)
        .await?
        .iter()
        .map(|h| first_of[h])
        .collect();
    stored.sort_unstable();
    if let (Existing::Refuse, Some(i)) = (existing, stored.first()) {
        return Err(ApiError::Conflict(format!(
            "{}: a token with this hash exists already{}",
            at(*i, "hash"),
            more(stored.len())
        )));
    }
    skipped.extend(stored);
    skipped.sort_unstable();
    let mut owners = Owners::default();
    let mut records = Vec::with_capacity(batch.len() - skipped.len());
    for (i, mut t) in batch.into_iter().enumerate() {
        if skipped.binary_search(&i).is_ok() {
            continue;
        }
        let owner = owners
            .resolve(state, caller, t.spec.owner_id.take())
            .await
            .map_err(|e| in_item(e, &at(i, "ownerId")))?;
        let mut rec = tokens::new_record(
            caller,
            t.spec,
            TokenId::generate(&state.config.prefix),
            t.hash,
            owner,
        );
        rec.enabled = t.enabled;
        rec.imported_from = Some(source.name.to_owned());
        records.push((i, rec));
    }
    policy::check_new_all(state, records.iter().map(|(i, r)| (*i, r)))
        .await
        .map_err(|(i, e)| in_item(e, &at(i, "expiresAt")))?;
    let records: Vec<TokenRecord> = records.into_iter().map(|(_, r)| r).collect();
    write(state, caller, &records, &owners, &source).await?;
    Ok(Imported {
        tokens: records,
        skipped,
    })
}

/// ", and N more" when a refusal has more offenders than the one it names.
fn more(n: usize) -> String {
    match n {
        0 | 1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    }
}

/// A refusal about one item names it; a message that names no item is prefixed with it.
fn in_item(e: ApiError, at: &str) -> ApiError {
    match e {
        ApiError::Unprocessable(m) => ApiError::Unprocessable(format!("{at}: {m}")),
        ApiError::Conflict(m) => ApiError::Conflict(format!("{at}: {m}")),
        e => e,
    }
}

/// The owners named in a batch, each checked once.
#[derive(Default)]
struct Owners {
    checked: Vec<String>,
}

impl Owners {
    async fn resolve(
        &mut self,
        state: &AppState,
        caller: &impl MayChangeTokens,
        asked: Option<String>,
    ) -> ApiResult<String> {
        let owner = asked.unwrap_or_else(|| caller.owner_id().to_owned());
        if self.checked.contains(&owner) {
            return Ok(owner);
        }
        if owner != caller.owner_id() {
            if !caller.is_admin() {
                return Err(ApiError::InsufficientScope(vec![
                    keygate_core::scope::TOKENS_ADMIN.into(),
                ]));
            }
            if !state.store.owner_exists(caller.tenant_id(), &owner).await? {
                return Err(ApiError::Unprocessable(format!(
                    "{owner:?} is neither a user of this tenant nor the tenant itself"
                )));
            }
        }
        self.checked.push(owner.clone());
        Ok(owner)
    }
}

/// One transaction: every token with its event, each owner's limit checked after all the
/// inserts, and an audit entry a token.
async fn write(
    state: &AppState,
    caller: &impl MayChangeTokens,
    records: &[TokenRecord],
    owners: &Owners,
    source: &Source<'_>,
) -> ApiResult<()> {
    let mut writes = Vec::with_capacity(records.len() * 2 + owners.checked.len());
    let mut audit = Vec::with_capacity(records.len());
    for rec in records {
        let mut details = tokens::created_details(rec);
        if let Some(d) = details.as_object_mut() {
            d.insert("importedFrom".into(), json!(source.name));
            if let serde_json::Value::Object(more) = &source.audit {
                d.extend(more.clone());
            }
        }
        audit.push(tokens::audit(
            caller,
            AuditAction::TokenCreate,
            rec.id.as_str(),
            details,
        ));
        writes.push(Write::InsertToken(rec.clone()));
        writes.push(events::token_event(
            state,
            EventType::TokenCreated,
            rec,
            Map::new(),
        ));
    }
    for owner in &owners.checked {
        writes.push(Write::EnforceOwnerLimit {
            tenant_id: caller.tenant_id().to_owned(),
            owner_id: owner.clone(),
            max: state.config.max_tokens_per_owner,
        });
    }
    tokens::commit(state, writes, audit)
        .await
        .map_err(|e| match e {
            // Checked above; a hash can only have been taken by a request that raced this one.
            ApiError::Conflict(m) if m.starts_with("A record") => ApiError::Conflict(format!(
                "a token with one of these hashes was created meanwhile; nothing was imported \
                 ({m})"
            )),
            e => e,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sha256_is_read_in_each_encoding_and_anything_else_is_refused() {
        let hash = TokenHash::of("a token made elsewhere, 32 chars");
        let bytes = hash.as_bytes();
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        use base64::Engine;
        for text in [
            hex::encode(bytes),
            hex::encode(bytes).to_uppercase(),
            STANDARD.encode(bytes),
            STANDARD.encode(bytes).trim_end_matches('=').to_owned(),
            URL_SAFE_NO_PAD.encode(bytes),
            format!("{}=", URL_SAFE_NO_PAD.encode(bytes)),
        ] {
            assert!(
                parse_sha256(&format!("sha256:{text}")) == Ok(hash),
                "{text}"
            );
        }
        for bad in [
            hex::encode(bytes),
            format!("sha256:{}", &hex::encode(bytes)[..62]),
            format!("sha512:{}", hex::encode(bytes)),
            format!("sha256:{}", STANDARD.encode([0u8; 31])),
            "sha256:".into(),
            format!("sha256:{}zz", &hex::encode(bytes)[..62]),
        ] {
            let e = parse_sha256(&bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(e.starts_with("not a SHA-256 ("), "{e}");
        }
    }
}
