//! Request extractors whose rejections are `ApiError`s, so every bad input gets the API's error
//! body: JSON bodies within the size and time limits, query strings, paths, and the client's
//! address. Who the caller is and what it may do is `auth`'s business.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use keygate_core::credentials::redact_echoed_input;
use keygate_core::network::{canonical_ip, forwarded_client, AllowList};
use serde::de::DeserializeOwned;

use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body. The content type is not checked: `curl -d` sends a form type by default, and a
/// body that parses as the expected JSON is what was meant. This is safe against cross-site
/// forms because a request authenticated by the session cookie must also carry the session's
/// CSRF token in a header (`auth::session::authenticate`), which no other site can read or send.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        parse_json(&read_body(req, state).await?).map(Json)
    }
}

/// A JSON body on a route that lifts the body limit to `LIMIT` bytes with a
/// `DefaultBodyLimit` of its own (the import of 10 000 tokens); a 413 names that limit.
pub struct LargeJson<T, const LIMIT: usize>(pub T);

impl<T: DeserializeOwned, const LIMIT: usize> FromRequest<AppState> for LargeJson<T, LIMIT> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        parse_json(&read_body_within(req, state, LIMIT).await?).map(LargeJson)
    }
}

/// A JSON body as its bytes, for a handler that parses it with [`parse_json`] into a type that
/// borrows from them: the verify route, where copying the token out costs more than its hash.
pub struct JsonBody(pub Bytes);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        read_body(req, state).await.map(JsonBody)
    }
}

/// A JSON body that may be left out entirely (then `T::default()`).
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

/// The whole body, within the configured limit (413 beyond it; `DefaultBodyLimit` in the
/// router enforces it, the state names it) and the client timeout: hyper bounds the time to
/// send the headers, but a body sent a byte at a time would hold the connection for ever.
async fn read_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    read_body_within(req, state, state.config.max_body_bytes).await
}

/// [`read_body`] on a route whose own `DefaultBodyLimit` is `limit`.
async fn read_body_within(req: Request, state: &AppState, limit: usize) -> Result<Bytes, ApiError> {
    let timeout = state.config.connection_limits.client_timeout;
    match tokio::time::timeout(timeout, Bytes::from_request(req, state)).await {
        Ok(read) => read.map_err(|e| body_rejection(e, limit)),
        Err(_) => Err(ApiError::BodyTimeout(timeout.as_secs())),
    }
}

fn body_rejection(e: BytesRejection, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(limit)
    } else {
        ApiError::BadRequest(format!("Could not read the request body: {e}"))
    }
}

/// Parses a JSON body. serde's messages quote the input they stumbled on, which may be the
/// caller's token sent as a field name or in the wrong field: long quoted values are redacted.
/// A value of the wrong kind is named by its path (`credits.remaining: invalid value …`).
pub fn parse_json<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        let message = redact_echoed_input(&e.to_string());
        match e.classify() {
            Category::Data => ApiError::Unprocessable(match field_path::<T>(bytes) {
                Some(path) => format!("Invalid request body: {path}: {message}"),
                None => format!("Invalid request body: {message}"),
            }),
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::BadRequest(format!("Malformed JSON: {message}"))
            }
        }
    })
}

/// Where in the body a value was refused, found by parsing again with the path tracked: only
/// a refused body pays for it, never the hot path.
fn field_path<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Option<String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(_) => None,
        Err(e) => Some(e.path().to_string()).filter(|p| p != "."),
    }
}

/// Query parameters, with the API's error body for bad ones.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(t)| Query(t))
            .map_err(|e| {
                let message = redact_echoed_input(&e.body_text());
                ApiError::BadRequest(format!("Invalid query string: {message}"))
            })
    }
}

/// Path parameters, with the API's error body when they cannot be decoded (e.g. invalid UTF-8).
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(t)| Path(t))
            .map_err(|e| {
                let message = redact_echoed_input(&e.body_text());
                ApiError::BadRequest(format!("Invalid path: {message}"))
            })
    }
}

/// The client's address, for allow-lists, audit entries and last use: the connection's peer,
/// or, when the operator says proxies are in front (`--trust-forwarded-for`) and the peer is
/// one of them (`--trusted-proxies`), the right-most address of `X-Forwarded-For` that is not
/// a trusted proxy (or `X-Real-IP`). Untrusted, those headers would let any caller claim
/// whatever address it likes: the left part of the chain is always the client's own writing.
pub fn client_ip(parts: &Parts, config: &ServerConfig) -> Option<IpAddr> {
    // An IPv4 client of a dual-stack socket arrives as `::ffff:a.b.c.d`: recorded and
    // compared as `a.b.c.d`, the address it is.
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| canonical_ip(a.ip()))?;
    if !config.trust_forwarded_for {
        return Some(peer);
    }
    Some(canonical_ip(forwarded_ip(
        &parts.headers,
        peer,
        &config.trusted_proxies,
    )))
}

/// The client's address as an extractor, read from the request in place: taking the whole
/// `Parts` would clone every header and extension of every verification.
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts, &state.config)))
    }
}

/// At most this many `X-Forwarded-For` entries are looked at, however long the chain a client
/// sends: more proxies than this in a row are not a deployment, they are an attack.
const MAX_FORWARDED_HOPS: usize = 32;

fn forwarded_ip(headers: &axum::http::HeaderMap, peer: IpAddr, trusted: &AllowList) -> IpAddr {
    let is_trusted = |ip| trusted.allows(Some(ip));
    let forwarded = headers.get_all("x-forwarded-for");
    if forwarded.iter().next().is_some() {
        // Several headers are one list, in order (RFC 9110 §5.3): the last is the nearest. A
        // value that is not text is a hop that is no address, which ends the walk.
        let hops = forwarded
            .iter()
            .rev()
            .flat_map(|v| v.to_str().unwrap_or("?").rsplit(','));
        return forwarded_client(peer, hops, is_trusted, MAX_FORWARDED_HOPS);
    }
    match headers.get("x-real-ip").and_then(|v| v.to_str().ok()) {
        Some(real) if is_trusted(peer) => real.trim().parse().unwrap_or(peer),
        _ => peer,
    }
}
