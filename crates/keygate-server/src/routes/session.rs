//! `/api/v1/session`: logging in to and out of the web page.

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::auth::session::{self, Intent, COOKIE};
use crate::dto::{LoginRequest, SessionView};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{client_ip, Json};
use crate::service::sessions;
use crate::state::AppState;

/// Log in with a username and password. Sets the `keygate_session` cookie (HttpOnly,
/// SameSite=Strict, Secure over TLS) and returns the CSRF token the page must send in
/// `X-CSRF-Token` with every change. Failed logins are audited; after a few, an address waits
/// longer and longer between its attempts at that account, and one with many failures is
/// refused for a while (429 with `Retry-After` meanwhile). Nothing counts against an account
/// alone: other addresses are never held up.
#[utoipa::path(post, path = "/api/v1/session", tag = "session",
    request_body = LoginRequest,
    responses(
        (status = 200, body = SessionView, headers(("Set-Cookie" = String))),
        (status = 400, body = ErrorBody),
        (status = 401, description = "Wrong username or password", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, description = "Too many failed logins from this address (for this account)", body = ErrorBody,
         headers(("Retry-After" = u64)))))]
pub async fn login(
    State(state): State<AppState>,
    parts: Parts,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Response> {
    // A form on another site can post a body that parses as JSON, but not with this type
    // (that would need a CORS preflight we never grant): no logging a browser in to someone
    // else's account behind its user's back.
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !is_json {
        return Err(ApiError::BadRequest(
            "send the login as JSON, with Content-Type: application/json".into(),
        ));
    }
    let ip = client_ip(&parts, state.config.trust_forwarded_for).map(|a| a.to_string());
    let logged_in = sessions::login(&state, ip, req).await?;
    let cookie = set_cookie(
        &state,
        &parts.headers,
        Some((&logged_in.cookie_value, state.config.session_ttl.as_secs())),
    );
    Ok((
        [(header::SET_COOKIE, cookie)],
        axum::Json(logged_in.user.view()),
    )
        .into_response())
}

/// The logged-in user of this browser, with the session's CSRF token.
#[utoipa::path(get, path = "/api/v1/session", tag = "session",
    responses((status = 200, body = SessionView),
              (status = 401, description = "Not logged in", body = ErrorBody)))]
pub async fn current(
    State(state): State<AppState>,
    parts: Parts,
) -> ApiResult<axum::Json<SessionView>> {
    match session::authenticate(&parts, &state, Intent::Read).await? {
        Some(user) => Ok(axum::Json(user.view())),
        None => Err(ApiError::InvalidSession),
    }
}

/// Log out: ends the session and clears the cookie. Needs the session's `X-CSRF-Token`.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session",
    responses((status = 204, description = "Logged out"),
              (status = 401, description = "Not logged in", body = ErrorBody),
              (status = 403, description = "Missing or wrong X-CSRF-Token", body = ErrorBody)))]
pub async fn logout(State(state): State<AppState>, parts: Parts) -> ApiResult<Response> {
    let clear = |headers: &HeaderMap| [(header::SET_COOKIE, set_cookie(&state, headers, None))];
    match session::authenticate(&parts, &state, Intent::Change).await {
        Ok(Some(user)) => {
            let ip = client_ip(&parts, state.config.trust_forwarded_for).map(|a| a.to_string());
            sessions::logout(&state, &user, ip).await?;
            Ok((StatusCode::NO_CONTENT, clear(&parts.headers)).into_response())
        }
        // Already gone: make the browser forget the cookie too.
        Err(ApiError::InvalidSession) => {
            Ok((StatusCode::NO_CONTENT, clear(&parts.headers)).into_response())
        }
        Ok(None) => Err(ApiError::InvalidSession),
        Err(e) => Err(e),
    }
}

/// The `Set-Cookie` value for a new session, or one that clears it (`value` = `None`).
pub fn set_cookie(
    state: &AppState,
    headers: &HeaderMap,
    value: Option<(&str, u64)>,
) -> HeaderValue {
    let secure = state.config.secure_cookies
        || (state.config.trust_forwarded_for
            && headers
                .get("x-forwarded-proto")
                .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https")));
    let (value, max_age) = value.unwrap_or(("", 0));
    let mut cookie =
        format!("{COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict");
    if secure {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).expect("a cookie of base62 and fixed text is a valid header")
}
