//! axum and tower: the extractor that names a handler's scopes in its type, the layer that
//! guards a whole router, and the refusal answers both give (keygate's error body and statuses).

use std::borrow::Cow;
use std::future::Future;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::{header, request::Parts, Extensions, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use keygate_core::credentials::{extract_from_authorization, extract_from_query, Credential};
use keygate_core::permission::{Query, QueryError};

use crate::replica::Replica;
use crate::verification::{Code, Request, TokenInfo, Verification};

/// The scopes a [`KeygateToken`] requires, as a type. Declare one with [`scopes!`](crate::scopes).
pub trait Scopes {
    /// Every one of these must be held.
    const SCOPES: &'static [&'static str];
}

/// No scope required: any valid token of the tenant.
#[derive(Debug, Clone, Copy)]
pub struct NoScopes;

impl Scopes for NoScopes {
    const SCOPES: &'static [&'static str] = &[];
}

/// The client's address, when your own middleware knows it better than the connection does
/// (behind a proxy): insert it into the request's extensions before the layer or extractor
/// runs. Without it, `ConnectInfo<SocketAddr>` is used when the server provides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The verified token, which [`KeygateLayer`] puts into the request's extensions.
#[derive(Debug, Clone)]
pub struct Verified(pub Arc<TokenInfo>);

/// Why a request was refused, answered like keygate answers: `{"error", "message", "code"}` with
/// 401 (no token, malformed, unknown, disabled, expired; with `WWW-Authenticate: Bearer`),
/// 403 (scopes, address), 429 (rate limits, credits; `Retry-After` when known) or 503
/// (the replica is stale, keygate cannot be reached).
#[derive(Debug, Clone)]
pub struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: Cow<'static, str>,
    missing_scopes: Vec<String>,
    retry_after: Option<Duration>,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            missing_scopes: Vec::new(),
            retry_after: None,
        }
    }

    fn missing_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "missing_token",
            "Invalid API token",
        )
    }

    fn invalid_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "Invalid API token",
        )
    }

    /// The refusal for a verification that is not `VALID`.
    pub fn of(v: &Verification) -> Self {
        let mut r = match v.code {
            Code::Valid => Self::new(StatusCode::OK, "valid", "Valid"),
            Code::Malformed | Code::NotFound => Self::invalid_token(),
            Code::Disabled => Self::new(
                StatusCode::UNAUTHORIZED,
                "token_disabled",
                "API token disabled",
            ),
            Code::Expired => Self::new(
                StatusCode::UNAUTHORIZED,
                "token_expired",
                "API token expired",
            ),
            Code::InsufficientScope => Self::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                if v.missing_scopes.is_empty() {
                    "The token lacks the scopes this request needs".to_owned()
                } else {
                    format!(
                        "The token lacks the scopes this request needs: {}",
                        v.missing_scopes.join(", ")
                    )
                },
            ),
            Code::IpNotAllowed => Self::new(
                StatusCode::FORBIDDEN,
                "ip_not_allowed",
                "The token may not be used from this address",
            ),
            Code::RateLimited => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "The token's rate limit is reached",
            ),
            Code::UsageExceeded => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "usage_exceeded",
                "The token's credits are used up",
            ),
            Code::Unavailable => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Token verification is unavailable; try again shortly",
            ),
        };
        r.missing_scopes.clone_from(&v.missing_scopes);
        r.retry_after = v.retry_after;
        r
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// keygate's error code, e.g. `invalid_token`.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({
            "error": self.status.canonical_reason().unwrap_or("Error"),
            "message": self.message,
            "code": self.code,
        });
        if self.code == "insufficient_scope" {
            body["missingScopes"] = serde_json::json!(self.missing_scopes);
        }
        let mut resp = (self.status, axum::Json(body)).into_response();
        let headers = resp.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(after) = self.retry_after {
            // Whole seconds, rounded up: an early retry would be refused again.
            let secs = after.as_millis().div_ceil(1000) as u64;
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        resp
    }
}

/// The token a request presents, in the forms keygate accepts: the `Authorization` header
/// (`Bearer`, `Token`, `apiToken`, `Api-Token`), else the `api-token` query parameters.
fn presented<'a>(headers: &'a HeaderMap, uri: &'a Uri) -> Result<Cow<'a, str>, Refusal> {
    let credential = match headers.get(header::AUTHORIZATION) {
        Some(value) => extract_from_authorization(value.as_bytes()),
        None => uri.query().map_or(Credential::Missing, extract_from_query),
    };
    match credential {
        Credential::Token(t) => Ok(t),
        Credential::Missing => Err(Refusal::missing_token()),
        Credential::Unusable => Err(Refusal::invalid_token()),
    }
}

fn client_ip(extensions: &Extensions) -> Option<IpAddr> {
    extensions.get::<ClientIp>().map(|c| c.0).or_else(|| {
        extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
    })
}

async fn authorize(
    replica: &Replica,
    headers: &HeaderMap,
    uri: &Uri,
    extensions: &Extensions,
    scopes: &[&str],
    permissions: Option<&Query>,
) -> Result<Arc<TokenInfo>, Refusal> {
    let token = presented(headers, uri)?;
    let v = replica
        .check(&Request {
            token: &token,
            scopes,
            permissions,
            ip: client_ip(extensions),
            cost: None,
        })
        .await;
    match (v.code, v.token) {
        (Code::Valid, Some(t)) => Ok(t),
        (_, token) => Err(Refusal::of(&Verification { token, ..v })),
    }
}

/// The verified token of a request, holding every scope of `S`. The [`Replica`] comes from the
/// request's extensions: add it with `Extension(replica)` or with [`KeygateLayer`].
///
/// ```no_run
/// keygate_client::scopes!(pub WriteOrders = "orders:write");
///
/// async fn create_order(token: keygate_client::KeygateToken<WriteOrders>) -> String {
///     format!("created by {}", token.info().id())
/// }
/// ```
pub struct KeygateToken<S: Scopes = NoScopes> {
    info: Arc<TokenInfo>,
    _scopes: PhantomData<fn() -> S>,
}

impl<S: Scopes> KeygateToken<S> {
    /// What the replica knows about the token.
    pub fn info(&self) -> &Arc<TokenInfo> {
        &self.info
    }
}

impl<S: Scopes> std::ops::Deref for KeygateToken<S> {
    type Target = TokenInfo;

    fn deref(&self) -> &TokenInfo {
        &self.info
    }
}

impl<S: Scopes> std::fmt::Debug for KeygateToken<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("KeygateToken").field(&self.info).finish()
    }
}

impl<S: Scopes, St: Send + Sync> FromRequestParts<St> for KeygateToken<S> {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Refusal> {
        let Some(replica) = parts.extensions.get::<Replica>() else {
            tracing::error!("keygate-client: no Replica in the request's extensions; add Extension(replica) or KeygateLayer");
            return Err(Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ));
        };
        let info = authorize(
            replica,
            &parts.headers,
            &parts.uri,
            &parts.extensions,
            S::SCOPES,
            None,
        )
        .await?;
        Ok(KeygateToken {
            info,
            _scopes: PhantomData,
        })
    }
}

/// A tower layer that verifies every request's token before the inner service sees it, and
/// puts the [`Replica`] and the [`Verified`] token into the request's extensions.
///
/// ```no_run
/// # fn app(replica: keygate_client::Replica) -> axum::Router {
/// use keygate_client::KeygateLayer;
/// axum::Router::new()
///     .route("/orders", axum::routing::get(|| async { "orders" }))
///     .layer(KeygateLayer::new(replica).require(&["orders:read"]))
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct KeygateLayer {
    replica: Replica,
    scopes: &'static [&'static str],
    permissions: Option<Arc<Query>>,
}

impl KeygateLayer {
    /// Requires a valid token of the replica's tenant, with no particular scope.
    pub fn new(replica: Replica) -> Self {
        Self {
            replica,
            scopes: &[],
            permissions: None,
        }
    }

    /// Requires every scope in `scopes` as well.
    pub fn require(mut self, scopes: &'static [&'static str]) -> Self {
        self.scopes = scopes;
        self
    }

    /// Requires the token's scopes to meet a permission query, e.g.
    /// `orders:read AND (orders:write OR orders:admin)`.
    pub fn require_query(mut self, permissions: &str) -> Result<Self, QueryError> {
        self.permissions = Some(Arc::new(Query::parse(permissions)?));
        Ok(self)
    }
}

impl<S> tower::Layer<S> for KeygateLayer {
    type Service = KeygateService<S>;

    fn layer(&self, inner: S) -> KeygateService<S> {
        KeygateService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`KeygateLayer`] wraps around yours.
#[derive(Clone, Debug)]
pub struct KeygateService<S> {
    inner: S,
    layer: KeygateLayer,
}

impl<S, B> tower::Service<axum::http::Request<B>> for KeygateService<S>
where
    S: tower::Service<axum::http::Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: axum::http::Request<B>) -> Self::Future {
        // The clone that was polled ready serves this request; the fresh one waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let verified = authorize(
                &layer.replica,
                req.headers(),
                req.uri(),
                req.extensions(),
                layer.scopes,
                layer.permissions.as_deref(),
            )
            .await;
            match verified {
                Ok(info) => {
                    req.extensions_mut().insert(Verified(info));
                    req.extensions_mut().insert(layer.replica);
                    inner.call(req).await
                }
                Err(refusal) => Ok(refusal.into_response()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::routing::get;
    use axum::{Extension, Router};
    use keygate_core::{PlainToken, TokenPrefix};
    use serde_json::{json, Value};
    use tower::ServiceExt;

    use super::*;
    use crate::Options;

    crate::scopes!(ReadOrders = "orders:read");
    crate::scopes!(ShipOrders = "orders:read", "orders:ship");

    /// A replica holding one token with `fields` over the defaults; returns the token too.
    fn replica_with(fields: Value, options: &Options) -> (Replica, String) {
        let (id, plain) = PlainToken::mint(&TokenPrefix::default());
        let hash: String = plain.hash().0.iter().map(|b| format!("{b:02x}")).collect();
        let mut record = json!({
            "hash": hash, "id": id.as_str(), "name": "n", "tenantId": "acme", "ownerId": "u1",
            "scopes": ["orders:read"], "enabled": true
        });
        for (k, v) in fields.as_object().unwrap() {
            record[k] = v.clone();
        }
        let replica = Replica::offline("kg", options).unwrap();
        replica
            .apply_snapshot_page(
                &json!({"cursor": "c1", "prefix": "kg", "tokens": [record], "next": null})
                    .to_string(),
            )
            .unwrap();
        (replica, plain.expose().to_owned())
    }

    fn request(auth: Option<String>, uri: &str) -> axum::http::Request<Body> {
        let mut b = axum::http::Request::builder().uri(uri);
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(Body::empty()).unwrap()
    }

    async fn answer(app: Router, req: axum::http::Request<Body>) -> (StatusCode, HeaderMap, Value) {
        let resp = app.oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (parts.status, parts.headers, value)
    }

    fn layered(replica: &Replica) -> Router {
        Router::new()
            .route(
                "/orders",
                get(|Extension(Verified(t)): Extension<Verified>| async move {
                    axum::Json(json!({"id": t.id()}))
                }),
            )
            .layer(KeygateLayer::new(replica.clone()).require(&["orders:read"]))
    }

    #[tokio::test]
    async fn the_layer_admits_a_valid_token_in_each_accepted_form_and_hands_it_on() {
        let (replica, token) = replica_with(json!({}), &Options::default());
        for req in [
            request(Some(format!("Bearer {token}")), "/orders"),
            request(Some(format!("Token {token}")), "/orders"),
            request(None, &format!("/orders?api-token={token}")),
        ] {
            let (status, _, body) = answer(layered(&replica), req).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body["id"].as_str().unwrap(), &token[..19]);
        }
    }

    #[tokio::test]
    async fn the_layer_refuses_as_keygate_does() {
        let (replica, token) = replica_with(json!({}), &Options::default());
        let (status, headers, body) = answer(layered(&replica), request(None, "/orders")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["code"], "missing_token");
        assert_eq!(body["error"], "Unauthorized");
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");

        let (status, _, body) = answer(
            layered(&replica),
            request(Some("Basic abc".into()), "/orders"),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_token"))
        );

        let strict = Router::new()
            .route("/ship", get(|| async { "shipped" }))
            .layer(
                KeygateLayer::new(replica.clone())
                    .require_query("orders:ship AND orders:read")
                    .unwrap(),
            );
        let (status, _, body) =
            answer(strict, request(Some(format!("Bearer {token}")), "/ship")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["code"], "insufficient_scope");
        assert_eq!(body["missingScopes"], json!(["orders:ship"]));
    }

    #[tokio::test]
    async fn the_extractor_checks_the_scopes_of_its_type() {
        let (replica, token) = replica_with(json!({}), &Options::default());
        let app = Router::new()
            .route(
                "/read",
                get(|t: KeygateToken<ReadOrders>| async move { t.id().to_owned() }),
            )
            .route(
                "/ship",
                get(|_: KeygateToken<ShipOrders>| async { "shipped" }),
            )
            .route("/any", get(|_: KeygateToken| async { "any" }))
            .layer(Extension(replica));
        let auth = || Some(format!("Bearer {token}"));
        let resp = app.clone().oneshot(request(auth(), "/read")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let resp = app.clone().oneshot(request(auth(), "/any")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let (status, _, body) = answer(app, request(auth(), "/ship")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["missingScopes"], json!(["orders:ship"]));
    }

    #[tokio::test]
    async fn the_extractor_takes_the_address_from_client_ip_or_the_connection() {
        let (replica, token) =
            replica_with(json!({"allowedCidrs": ["10.0.0.0/8"]}), &Options::default());
        let app = Router::new()
            .route("/read", get(|_: KeygateToken<ReadOrders>| async { "ok" }))
            .layer(Extension(replica));
        let at = |ext: Option<Extensions>| {
            let mut req = request(Some(format!("Bearer {token}")), "/read");
            if let Some(ext) = ext {
                req.extensions_mut().extend(ext);
            }
            let app = app.clone();
            async move { answer(app, req).await }
        };
        let (status, _, body) = at(None).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("ip_not_allowed"))
        );
        let mut inside = Extensions::new();
        inside.insert(ConnectInfo(SocketAddr::from(([10, 1, 2, 3], 5555))));
        assert_eq!(at(Some(inside.clone())).await.0, StatusCode::OK);
        // A ClientIp from the application's own middleware wins over the connection's address.
        inside.insert(ClientIp("192.0.2.1".parse().unwrap()));
        assert_eq!(at(Some(inside)).await.0, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn status_refusals_are_401_and_a_stale_replica_is_503() {
        let (replica, token) = replica_with(json!({"enabled": false}), &Options::default());
        let (status, _, body) = answer(
            layered(&replica),
            request(Some(format!("Bearer {token}")), "/orders"),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("token_disabled"))
        );

        let quick = Options {
            max_staleness: Duration::from_millis(20),
            wait: Duration::from_millis(10),
            ..Options::default()
        };
        let (replica, token) = replica_with(json!({}), &quick);
        tokio::time::sleep(Duration::from_millis(40)).await;
        let (status, _, body) = answer(
            layered(&replica),
            request(Some(format!("Bearer {token}")), "/orders"),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable"))
        );
    }

    #[tokio::test]
    async fn an_extractor_without_a_replica_is_an_internal_error() {
        let app = Router::new().route("/read", get(|_: KeygateToken| async { "ok" }));
        let resp = app
            .oneshot(request(Some("Bearer x".into()), "/read"))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        let v = Verification {
            retry_after: Some(Duration::from_millis(1200)),
            ..Verification::local(Code::RateLimited, None)
        };
        let resp = Refusal::of(&v).into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
    }
}
