//! The one HTTP error of the native API: each case has its status and a stable
//! snake_case `code`; internal errors are logged and never shown.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use keygate_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Invalid API token")]
    MissingToken,
    #[error("Invalid API token")]
    InvalidToken,
    #[error("API token disabled")]
    TokenDisabled,
    #[error("API token expired")]
    TokenExpired,
    #[error("The token lacks the scopes this request needs: {}", .0.join(", "))]
    InsufficientScope(Vec<String>),
    #[error("The token may not be used from this address")]
    IpNotAllowed,
    #[error("Your session has ended; log in again")]
    InvalidSession,
    #[error("Wrong username or password")]
    InvalidCredentials,
    #[error("This request needs the X-CSRF-Token header of the web session")]
    CsrfFailed,
    #[error("A change made with the web session's cookie must be a POST, PUT, PATCH or DELETE that carries the X-CSRF-Token header")]
    CookieChangeBySafeMethod,
    #[error("Too many failed attempts; try again in {0} seconds")]
    RateLimited(u64),
    /// A signed request (a secret scanner's report) whose signature is missing, wrong, by an
    /// unknown key, or already used; the message says which.
    #[error("{0}")]
    InvalidSignature(String),
    /// More requests from this client address than a route allows in a minute.
    #[error("Too many requests from this address; try again in {0} seconds")]
    TooManyRequests(u64),
    #[error("The token's rate limit is reached; try again in {0} seconds")]
    TokenRateLimited(u64),
    /// With the seconds until the credits refill, when they do.
    #[error("The token's credits are used up")]
    UsageExceeded(Option<u64>),
    #[error("{0}")]
    NotFound(String),
    /// Syntactically bad input: malformed JSON, a bad query parameter.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed input that breaks a rule: wrong types, unknown scopes, names too long.
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Conflict(String),
    #[error("The request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("The request body did not arrive within {0} seconds")]
    BodyTimeout(u64),
    /// A replica's cursor that the change stream can no longer continue from.
    #[error("This cursor is older than the changes kept (or from another database): take a new snapshot")]
    CursorTooOld,
    #[error("The database is unavailable; try again shortly")]
    Unavailable,
    #[error("Internal error")]
    Internal(String),
}

/// The body of every native error response.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// The HTTP reason phrase, e.g. `Unauthorized`.
    #[schema(example = "Unauthorized")]
    pub error: String,
    #[schema(example = "Invalid API token")]
    pub message: String,
    /// One of `missing_token`, `invalid_token`, `token_disabled`, `token_expired`,
    /// `invalid_session`, `invalid_credentials`, `invalid_signature`, `csrf_failed`,
    /// `insufficient_scope`, `ip_not_allowed`,
    /// `not_found`, `invalid_request`, `conflict`, `cursor_too_old`, `payload_too_large`,
    /// `rate_limited`, `unavailable`, `internal`.
    #[schema(example = "invalid_token")]
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_scopes: Option<Vec<String>>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            MissingToken | InvalidToken | TokenDisabled | TokenExpired | InvalidSession
            | InvalidCredentials | InvalidSignature(_) => StatusCode::UNAUTHORIZED,
            InsufficientScope(_) | IpNotAllowed | CsrfFailed | CookieChangeBySafeMethod => {
                StatusCode::FORBIDDEN
            }
            RateLimited(_) | TokenRateLimited(_) | TooManyRequests(_) | UsageExceeded(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            NotFound(_) => StatusCode::NOT_FOUND,
            BadRequest(_) => StatusCode::BAD_REQUEST,
            Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Conflict(_) => StatusCode::CONFLICT,
            CursorTooOld => StatusCode::GONE,
            PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            MissingToken => "missing_token",
            InvalidToken => "invalid_token",
            TokenDisabled => "token_disabled",
            TokenExpired => "token_expired",
            InsufficientScope(_) => "insufficient_scope",
            IpNotAllowed => "ip_not_allowed",
            InvalidSession => "invalid_session",
            InvalidCredentials => "invalid_credentials",
            InvalidSignature(_) => "invalid_signature",
            CsrfFailed | CookieChangeBySafeMethod => "csrf_failed",
            RateLimited(_) | TokenRateLimited(_) | TooManyRequests(_) => "rate_limited",
            UsageExceeded(_) => "usage_exceeded",
            NotFound(_) => "not_found",
            BadRequest(_) | Unprocessable(_) | BodyTimeout(_) => "invalid_request",
            Conflict(_) => "conflict",
            CursorTooOld => "cursor_too_old",
            PayloadTooLarge(_) => "payload_too_large",
            Unavailable => "unavailable",
            Internal(_) => "internal",
        }
    }

    pub fn token_not_found() -> Self {
        ApiError::NotFound("No token with this id".into())
    }

    pub fn body(&self) -> ErrorBody {
        let status = self.status();
        ErrorBody {
            error: status.canonical_reason().unwrap_or("Error").to_owned(),
            message: self.to_string(),
            code: self.code().to_owned(),
            missing_scopes: match self {
                ApiError::InsufficientScope(m) => Some(m.clone()),
                _ => None,
            },
        }
    }
}

/// A refused field is a well-formed request that breaks a rule, worded as the field's error.
impl From<keygate_core::FieldError> for ApiError {
    fn from(e: keygate_core::FieldError) -> Self {
        ApiError::Unprocessable(e.to_string())
    }
}

/// Rate limits, credits or an externalId that break a rule, named by their path.
impl From<keygate_core::usage::UsageError> for ApiError {
    fn from(e: keygate_core::usage::UsageError) -> Self {
        ApiError::Unprocessable(e.to_string())
    }
}

/// A role a request asks for that does not exist.
impl From<keygate_core::role::UnknownRole> for ApiError {
    fn from(e: keygate_core::role::UnknownRole) -> Self {
        ApiError::Unprocessable(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("Not found".into()),
            StoreError::Conflict(detail) => {
                // The database's own words name tables and indexes: for the log, not the client.
                tracing::warn!(%detail, "unique violation without a mapped message");
                ApiError::Conflict("A record with these values already exists".into())
            }
            StoreError::LimitReached(m) | StoreError::Refused(m) => ApiError::Conflict(m),
            StoreError::Unavailable(m) => {
                tracing::error!(error = %m, "database unavailable");
                ApiError::Unavailable
            }
            StoreError::Corrupt(m) => ApiError::Internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(error = %detail, "internal error");
        }
        let status = self.status();
        let mut resp = (status, axum::Json(self.body())).into_response();
        if let ApiError::RateLimited(seconds)
        | ApiError::TokenRateLimited(seconds)
        | ApiError::TooManyRequests(seconds)
        | ApiError::UsageExceeded(Some(seconds)) = &self
        {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            let h = resp.headers_mut();
            h.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("apiToken realm=\"keygate\""),
            );
            h.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"keygate\""),
            );
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// What SQLite and PostgreSQL say about a broken unique index, as `map_err` receives it.
    const DATABASE_TEXTS: [&str; 2] = [
        "UNIQUE constraint failed: issued_external_ids.tenant_id, issued_external_ids.external_id",
        "duplicate key value violates unique constraint \"issued_external_ids_pkey\"",
    ];

    /// A uniqueness rule the server did not map to its own sentence still answers 409, with a
    /// fixed sentence and none of the database's words (names of tables, indexes, columns).
    #[test]
    fn an_unmapped_unique_violation_shows_no_database_text() {
        for text in DATABASE_TEXTS {
            let body = ApiError::from(StoreError::Conflict(text.into())).body();
            assert_eq!(body.code, "conflict");
            for word in [
                "UNIQUE",
                "unique",
                "constraint",
                "issued_",
                "duplicate key",
                "pkey",
            ] {
                assert!(
                    !body.message.contains(word),
                    "{word:?} in {:?}",
                    body.message
                );
            }
        }
    }
}
