//! How the web page and the API explorer serve their static files: one Content-Security-Policy
//! and the same security headers for both, so the two cannot drift apart.

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::IntoResponse;

/// Only our own scripts, styles and API; never framed (clickjacking), never a form posting
/// elsewhere. The API explorer is served under the same policy.
pub const CSP: &str =
    "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// A static file with the page's security headers; the API explorer's files too.
pub fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    let headers: [(HeaderName, HeaderValue); 5] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    (headers, body)
}
