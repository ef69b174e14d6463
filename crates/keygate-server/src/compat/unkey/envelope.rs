//! What every answer of this surface carries (`meta.requestId`), and how a request body is
//! read: a JSON object of the documented fields only, a refusal naming the field at fault.

use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use super::error::UnkeyError;
use super::meta::{request_id, Meta};
use crate::auth::{AnyScope, Authorized, TokensRead, TokensWrite};
use crate::error::ApiError;
use crate::extract::JsonBody;

pub(super) type Reader = Result<Authorized<TokensRead>, ApiError>;
pub(super) type Writer = Result<Authorized<TokensWrite>, ApiError>;
pub(super) type Verifying = Result<Authorized<AnyScope>, ApiError>;
pub(super) type Body = Result<JsonBody, ApiError>;

/// A 200 of this surface: `{meta, data}`, and for a listing `pagination`.
#[derive(Serialize)]
pub(super) struct Answer<T: Serialize> {
    meta: Meta,
    data: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    pagination: Option<Pagination>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Pagination {
    pub has_more: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

pub(super) fn answer<T: Serialize>(data: T) -> Response {
    axum::Json(Answer {
        meta: Meta {
            request_id: request_id(),
        },
        data,
        pagination: None,
    })
    .into_response()
}

pub(super) fn page<T: Serialize>(data: T, pagination: Pagination) -> Response {
    axum::Json(Answer {
        meta: Meta {
            request_id: request_id(),
        },
        data,
        pagination: Some(pagination),
    })
    .into_response()
}

/// The body as `T`. Its types are `deny_unknown_fields`, so a field Unkey's spec does not have
/// is refused by name; a wrong type is refused with the path of the field.
pub(super) fn parse<T: DeserializeOwned>(body: Body) -> Result<T, UnkeyError> {
    let JsonBody(bytes) = body?;
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = keygate_core::credentials::redact_echoed_input(&e.inner().to_string());
        if path == "." {
            // An unknown field is refused before it has a path of its own.
            match unknown_field(&message) {
                Some(field) => UnkeyError::invalid(
                    &field,
                    format!("{field} is not a field of this request ({message})"),
                ),
                None => UnkeyError::from(ApiError::BadRequest(format!(
                    "invalid request body: {message}"
                ))),
            }
        } else {
            UnkeyError::invalid(&path, format!("{path}: {message}"))
        }
    })
}

/// The field serde names in "unknown field `color`, expected one of …".
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_owned())
}

/// For a field where `null` means something (clear it) and absence means leave it:
/// `None` absent, `Some(None)` null.
pub(super) fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// An `apiId` names a tenant; only the caller's own is visible, any other is not found.
pub(super) fn ensure_own_api(caller: &crate::auth::Caller, api_id: &str) -> Result<(), UnkeyError> {
    if api_id == caller.tenant_id() {
        Ok(())
    } else {
        Err(UnkeyError::api_not_found(api_id))
    }
}
