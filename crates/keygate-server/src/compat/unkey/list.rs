//! `POST /v2/apis.listKeys`: the keys of a tenant the root key may see, newest first, in pages.

use axum::extract::State;
use axum::response::Response;
use keygate_store::TokenFilter;
use serde::Deserialize;

use super::envelope::*;
use super::error::UnkeyError;
use super::keys::refuse_decrypt;
use super::model::KeyData;
use crate::service::tokens;
use crate::state::AppState;

const MAX_LIMIT: u32 = 100;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ListKeys {
    api_id: String,
    limit: Option<u32>,
    cursor: Option<String>,
    external_id: Option<String>,
    decrypt: Option<bool>,
    /// keygate lists from the database, never from a cache: always fresh, so either answer
    /// is met.
    #[allow(dead_code)]
    revalidate_keys_cache: Option<bool>,
}

pub async fn list_keys(
    State(state): State<AppState>,
    caller: Reader,
    body: Body,
) -> Result<Response, UnkeyError> {
    let caller = caller?;
    let req: ListKeys = parse(body)?;
    ensure_own_api(&caller, &req.api_id)?;
    refuse_decrypt(req.decrypt)?;
    let limit = req.limit.unwrap_or(MAX_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(UnkeyError::invalid(
            "limit",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let before_seq = match req.cursor.as_deref() {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| UnkeyError::invalid("cursor", "cursor is not one this API gave"))?,
        ),
    };
    let filter = TokenFilter {
        external_id: req.external_id,
        before_seq,
        limit,
        ..TokenFilter::default()
    };
    let page = tokens::list(&state, &caller, filter).await?;
    let keys: Vec<KeyData> = page
        .items
        .into_iter()
        .map(|r| KeyData::of(tokens::view(&state, r)))
        .collect();
    Ok(super::envelope::page(
        keys,
        Pagination {
            has_more: page.next.is_some(),
            cursor: page.next.map(|n| n.to_string()),
        },
    ))
}
