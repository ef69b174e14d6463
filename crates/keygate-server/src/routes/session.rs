//! `/api/v1/session`: logging in to and out of the web page.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::auth::session::COOKIE;
use crate::auth::{CurrentSession, SessionForLogout};
use crate::dto::{LoginRequest, SessionView};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ClientIp, Json};
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
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Response> {
    // A form on another site can post a body that parses as JSON, but not with this type
    // (that would need a CORS preflight we never grant): no logging a browser in to someone
    // else's account behind its user's back.
    let is_json = headers
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
    let ip = ip.map(|a| a.to_string());
    let logged_in = sessions::login(&state, ip, req).await?;
    let cookie = set_cookie(
        &state,
        &headers,
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
pub async fn current(CurrentSession(user): CurrentSession) -> axum::Json<SessionView> {
    axum::Json(user.view())
}

/// Log out: ends the session and clears the cookie. Needs the session's `X-CSRF-Token`.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session",
    responses((status = 204, description = "Logged out"),
              (status = 401, description = "Not logged in", body = ErrorBody),
              (status = 403, description = "Missing or wrong X-CSRF-Token", body = ErrorBody)))]
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    found: SessionForLogout,
) -> ApiResult<Response> {
    if let SessionForLogout::Live(session) = &found {
        sessions::logout(&state, session).await?;
    }
    // Already gone or just ended: either way the browser forgets the cookie.
    let clear = [(header::SET_COOKIE, set_cookie(&state, &headers, None))];
    Ok((StatusCode::NO_CONTENT, clear).into_response())
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
