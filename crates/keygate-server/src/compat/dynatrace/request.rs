//! Reading Dynatrace's requests: the extractors' outcomes as this surface's errors, and the
//! body as a JSON object whose null fields count as absent.

use serde_json::{Map, Value};

use super::error::*;
use crate::auth::{Authorized, TokensRead, TokensWrite};
use crate::error::ApiError;
use crate::extract::Json;

pub(super) type Reader = Result<Authorized<TokensRead>, ApiError>;
pub(super) type Writer = Result<Authorized<TokensWrite>, ApiError>;
pub(super) type Body = Result<Json<Value>, ApiError>;

/// The body as a JSON object (400 for anything else).
pub(super) fn object(body: Body) -> Result<Map<String, Value>, DtError> {
    let Json(v) = body.map_err(|e| match e {
        ApiError::Unprocessable(m) => ApiError::BadRequest(m),
        e => e,
    })?;
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(DtError::one("", "the body must be a JSON object", BODY)),
    }
}

/// A field left out and a field sent as null are the same (the `dt` client sends nulls).
pub(super) fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

pub(super) fn scope_names(v: &Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_owned))
        .collect()
}
