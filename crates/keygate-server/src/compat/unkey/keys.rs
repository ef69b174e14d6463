//! `keys.getKey`, `keys.whoami`, `keys.deleteKey` and `keys.rerollKey`.

use axum::extract::State;
use axum::response::Response;
use keygate_core::AuditAction;
use serde::Deserialize;

use super::envelope::*;
use super::error::UnkeyError;
use super::model::{KeyData, NewKey};
use crate::error::ApiError;
use crate::service::tokens;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct GetKey {
    key_id: String,
    decrypt: Option<bool>,
}

pub(super) fn refuse_decrypt(decrypt: Option<bool>) -> Result<(), UnkeyError> {
    if decrypt == Some(true) {
        return Err(UnkeyError::unsupported(
            "decrypt",
            "keygate keeps only a key's SHA-256, so no key can be shown again",
        ));
    }
    Ok(())
}

pub async fn get_key(
    State(state): State<AppState>,
    caller: Reader,
    body: Body,
) -> Result<Response, UnkeyError> {
    let caller = caller?;
    let req: GetKey = parse(body)?;
    refuse_decrypt(req.decrypt)?;
    let rec = tokens::visible(&state, &caller, &req.key_id).await?;
    Ok(answer(KeyData::of(tokens::view(&state, rec))))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Whoami {
    key: secrecy::SecretString,
}

/// The key behind a plaintext key, if the root key may see it.
pub async fn whoami(
    State(state): State<AppState>,
    caller: Reader,
    body: Body,
) -> Result<Response, UnkeyError> {
    use secrecy::ExposeSecret;
    let caller = caller?;
    let req: Whoami = parse(body)?;
    match tokens::visible_by_secret(&state, &caller, req.key.expose_secret()).await? {
        Some(rec) => Ok(answer(KeyData::of(tokens::view(&state, rec)))),
        None => Err(ApiError::NotFound("no key matches".into()).into()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct DeleteKey {
    key_id: String,
    /// keygate's delete is always permanent (its audit log keeps the record), so both answers
    /// of the flag get the same deletion.
    #[allow(dead_code)]
    permanent: Option<bool>,
}

pub async fn delete_key(
    State(state): State<AppState>,
    caller: Writer,
    body: Body,
) -> Result<Response, UnkeyError> {
    let caller = caller?;
    let req: DeleteKey = parse(body)?;
    let rec = tokens::visible(&state, &caller, &req.key_id).await?;
    tokens::delete(&state, &caller, rec, AuditAction::TokenDelete).await?;
    Ok(answer(serde_json::json!({})))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RerollKey {
    key_id: String,
    /// Milliseconds the old key keeps working; `0` ends it now.
    expiration: u64,
}

/// keygate's rotation: a new key with the same permissions, limits and owner; the old one
/// verifies for `expiration` more milliseconds.
pub async fn reroll_key(
    State(state): State<AppState>,
    caller: Writer,
    body: Body,
) -> Result<Response, UnkeyError> {
    let caller = caller?;
    let req: RerollKey = parse(body)?;
    // keygate counts the overlap in whole seconds; a part second is rounded up, so the old
    // key never ends before the client was told.
    let grace = req.expiration.div_ceil(1000);
    if grace > tokens::MAX_GRACE_SECONDS {
        return Err(UnkeyError::invalid(
            "expiration",
            format!(
                "expiration must be at most {} ms (30 days)",
                tokens::MAX_GRACE_SECONDS * 1000
            ),
        ));
    }
    let (rec, plain) = tokens::rotate(&state, &caller, &req.key_id, grace).await?;
    Ok(answer(NewKey::of(&rec.id, &plain)))
}
