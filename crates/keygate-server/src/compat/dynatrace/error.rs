//! Dynatrace's error body, `{"error": {"code", "message", "constraintViolations"}}`, for every
//! failure of this surface, with the field each violation is about.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::model::*;
use crate::error::{ApiError, ApiResult};
use keygate_core::FieldError;

/// A native error in Dynatrace's shape: validation failures are 400 with their constraint
/// violations.
pub struct DtError {
    inner: ApiError,
    violations: Vec<ConstraintViolation>,
}

impl From<ApiError> for DtError {
    fn from(inner: ApiError) -> Self {
        Self {
            inner,
            violations: Vec::new(),
        }
    }
}

pub(super) const BODY: &str = "PAYLOAD_BODY";
pub(super) const QUERY: &str = "QUERY";
pub(super) const PATH: &str = "PATH";

pub(super) fn violation(
    path: &str,
    message: impl Into<String>,
    location: &'static str,
) -> ConstraintViolation {
    ConstraintViolation {
        path: path.to_owned(),
        message: message.into(),
        parameter_location: location,
    }
}

impl DtError {
    pub(super) fn invalid(violations: Vec<ConstraintViolation>) -> Self {
        let message = match violations.as_slice() {
            [v] => format!("{}: {}", v.path, v.message),
            _ => "Constraints violated.".to_owned(),
        };
        Self {
            inner: ApiError::BadRequest(message),
            violations,
        }
    }

    pub(super) fn one(path: &str, message: impl Into<String>, location: &'static str) -> Self {
        Self::invalid(vec![violation(path, message, location)])
    }
}

/// The problems of one request body, gathered so that the client hears of all of them at once.
#[derive(Default)]
pub(super) struct Violations(Vec<ConstraintViolation>);

impl Violations {
    /// A field's parsed value, or its refusal as a violation of the body at `path` (which the
    /// refusal's text may call otherwise: it is the native wording).
    pub(super) fn field<T>(&mut self, path: &str, parsed: Result<T, FieldError>) -> Option<T> {
        parsed.map_err(|e| self.add(path, e.to_string())).ok()
    }

    /// A value checked by `crate::service::tokens`: its refusal of the input is a violation
    /// at `path`, any other failure ends the request.
    pub(super) fn checked<T>(&mut self, path: &str, r: ApiResult<T>) -> Result<Option<T>, DtError> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(ApiError::BadRequest(m) | ApiError::Unprocessable(m)) => {
                self.add(path, m);
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(super) fn add(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(violation(path, message, BODY));
    }

    /// What was parsed, when nothing was refused; else a 400 listing every refusal. A value
    /// still missing was refused as well.
    pub(super) fn finish<T>(self, parsed: Option<T>) -> Result<T, DtError> {
        match parsed {
            Some(v) if self.0.is_empty() => Ok(v),
            _ => Err(DtError::invalid(self.0)),
        }
    }
}

impl IntoResponse for DtError {
    fn into_response(self) -> Response {
        let status = match &self.inner {
            ApiError::BadRequest(_) | ApiError::Unprocessable(_) => StatusCode::BAD_REQUEST,
            e => e.status(),
        };
        let message = match &self.inner {
            ApiError::MissingToken => "Missing authorization parameter.".to_owned(),
            ApiError::InvalidToken => "Token Authentication failed".to_owned(),
            ApiError::InsufficientScope(missing) => format!(
                "Token is missing required scope. Use one of: {}",
                missing
                    .iter()
                    .map(|m| match m.as_str() {
                        keygate_core::scope::TOKENS_READ => "apiTokens.read (or tokens:read)",
                        keygate_core::scope::TOKENS_WRITE => "apiTokens.write (or tokens:write)",
                        m => m,
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                self.inner.to_string()
            }
            e => e.to_string(),
        };
        let body = ErrorEnvelope {
            error: ErrorDetail {
                code: status.as_u16(),
                message,
                constraint_violations: self.violations,
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Api-Token realm=\"keygate\""),
            );
        }
        resp
    }
}

pub(super) fn not_found() -> DtError {
    ApiError::NotFound("The requested token doesn't exist".into()).into()
}
