//! `meta`, which every answer of this surface carries, success or error.

use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Meta {
    pub request_id: String,
}

/// A request id in Unkey's shape, `req_` and 22 base62 characters: answers are not traced
/// across requests, so it only has to be unique enough to quote in a support question.
pub(super) fn request_id() -> String {
    let mut id = String::with_capacity(26);
    id.push_str("req_");
    keygate_core::base62::random(22, &mut id);
    id
}
