//! Unkey's error body, `{meta: {requestId}, error: {title, detail, status, type}}`, for every
//! failure of this surface; a 400 also lists each refused field in `error.errors`, since the
//! clients require that list.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use keygate_core::usage::UsageError;
use keygate_core::FieldError;
use serde::Serialize;

use super::meta::{request_id, Meta};
use crate::error::ApiError;

/// A failure in Unkey's shape. `location` names the refused field (`body.ratelimits[0].limit`)
/// for a refusal of the input.
pub struct UnkeyError {
    inner: ApiError,
    location: Option<String>,
    /// Status, title and type when they are Unkey's own rather than a keygate error's: the
    /// 412 keygate does not have, an API rather than a key not found.
    kind: Option<(StatusCode, &'static str, &'static str)>,
}

impl From<ApiError> for UnkeyError {
    fn from(inner: ApiError) -> Self {
        Self {
            inner,
            location: None,
            kind: None,
        }
    }
}

impl From<UsageError> for UnkeyError {
    fn from(e: UsageError) -> Self {
        let field = unkey_field(&e.field);
        UnkeyError::invalid(&field, format!("{field} {}", e.message))
    }
}

impl UnkeyError {
    /// A 400 about the body's field at `path` (Unkey's name for it).
    pub fn invalid(path: &str, message: impl Into<String>) -> Self {
        Self {
            inner: ApiError::BadRequest(message.into()),
            location: Some(format!("body.{path}")),
            kind: None,
        }
    }

    /// A field keygate does not do: refused, never ignored.
    pub fn unsupported(path: &str, why: &str) -> Self {
        Self::invalid(path, format!("{path} is not supported by keygate: {why}"))
    }

    /// A refusal of a checked field, in the words of Unkey's field `name`, at `location`
    /// (`name`, or `keys[2].name` inside a list).
    pub fn field(location: &str, name: &'static str, e: FieldError) -> Self {
        Self::invalid(location, e.for_field(name).to_string())
    }

    /// Unkey's 412: the request asks for something the key does not have.
    pub fn precondition(detail: String) -> Self {
        Self {
            inner: ApiError::Conflict(detail),
            location: None,
            kind: Some((
                StatusCode::PRECONDITION_FAILED,
                "Precondition Failed",
                "unkey/application/precondition_failed",
            )),
        }
    }

    pub fn api_not_found(api_id: &str) -> Self {
        Self {
            inner: ApiError::NotFound(format!(
                "no API {api_id:?}: an apiId is a keygate tenant id, and only the caller's own \
                 tenant is visible"
            )),
            location: None,
            kind: Some((
                StatusCode::NOT_FOUND,
                "Not Found",
                "unkey/data/api_not_found",
            )),
        }
    }
}

/// keygate's name of a usage field in Unkey's words: durations are `duration` there.
fn unkey_field(native: &str) -> String {
    native.replace("durationMs", "duration")
}

#[derive(Serialize)]
struct ErrorBody {
    meta: Meta,
    error: ErrorDetail,
}

#[derive(Serialize)]
struct ErrorDetail {
    title: &'static str,
    detail: String,
    status: u16,
    #[serde(rename = "type")]
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<Vec<ValidationError>>,
}

#[derive(Serialize)]
struct ValidationError {
    location: String,
    message: String,
}

fn docs(kind: &str) -> String {
    format!("https://unkey.com/docs/errors/{kind}")
}

impl IntoResponse for UnkeyError {
    fn into_response(self) -> Response {
        let (status, title, kind) = self.kind.unwrap_or_else(|| match &self.inner {
            ApiError::MissingToken => (
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "unkey/authentication/missing",
            ),
            ApiError::InvalidToken | ApiError::TokenDisabled | ApiError::TokenExpired => (
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "unkey/authentication/key_not_found",
            ),
            ApiError::InsufficientScope(_)
            | ApiError::CsrfFailed
            | ApiError::CookieChangeBySafeMethod => (
                StatusCode::FORBIDDEN,
                "Forbidden",
                "unkey/authorization/insufficient_permissions",
            ),
            ApiError::NotFound(_) => (
                StatusCode::NOT_FOUND,
                "Not Found",
                "unkey/data/key_not_found",
            ),
            ApiError::BadRequest(_) | ApiError::Unprocessable(_) => (
                StatusCode::BAD_REQUEST,
                "Bad Request",
                "unkey/application/invalid_input",
            ),
            ApiError::Conflict(_) => (
                StatusCode::CONFLICT,
                "Conflict",
                "unkey/application/precondition_failed",
            ),
            ApiError::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too Many Requests",
                "user/too_many_requests/rate_limited",
            ),
            e => (
                e.status(),
                "Internal Server Error",
                "unkey/application/unexpected_error",
            ),
        });
        let detail = match &self.inner {
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                self.inner.to_string()
            }
            ApiError::MissingToken => {
                "this request needs a root key: a keygate token in `Authorization: Bearer`"
                    .to_owned()
            }
            ApiError::InsufficientScope(missing) => format!(
                "the root key lacks a permission this request needs: {} (tokens:write manages \
                 the keys of the key's own owner, tokens:admin every key of its tenant)",
                missing.join(", ")
            ),
            e => e.to_string(),
        };
        let errors = (status == StatusCode::BAD_REQUEST).then(|| {
            vec![ValidationError {
                location: self.location.unwrap_or_else(|| "body".to_owned()),
                message: detail.clone(),
            }]
        });
        let body = ErrorBody {
            meta: Meta {
                request_id: request_id(),
            },
            error: ErrorDetail {
                title,
                detail,
                status: status.as_u16(),
                kind: docs(kind),
                errors,
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            // The clients read a 429 only as a problem document.
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            );
        }
        resp
    }
}
