//! What happens around every request: it is logged (with tokens redacted) and counted by
//! route; and what every answer obeys, whichever route or surface made it: no cache keeps it,
//! and an error answer shows no secret.
//!
//! Hand-written layers instead of `axum::middleware::from_fn` functions: axum wraps every
//! route in each `.layer()` separately, and each `from_fn` level clones its inner service and
//! boxes a future for every request. On the verify route that overhead cost more than the
//! verification itself (BENCHMARKS.md); these layers call their inner service in place and
//! their futures are plain structs (an error answer, whose body is rewritten, is the exception).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use keygate_core::credentials::{redact_query, redact_secrets, redact_tokens};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::error::ApiError;
use crate::metrics::{method_name, RequestLabels, RouteName};
use crate::state::AppState;

/// Logs every request without its credentials and counts it by matched route. Applied with
/// `Router::layer`, it runs after routing, so the matched route pattern (never the raw path,
/// whose ids would explode the label set) is in the request's extensions.
#[derive(Clone)]
pub struct ObserveLayer {
    state: AppState,
}

impl ObserveLayer {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            state: self.state.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    state: AppState,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let route = RouteName(req.extensions().get::<MatchedPath>().cloned());
        let method = req.method().clone();
        // The URI is kept (a cheap clone of shared bytes) and redacted only for a line that
        // is written: redaction allocates, and most requests are not logged.
        let uri = req.uri().clone();
        ObserveFuture {
            inner: self.inner.call(req),
            seen: Some(Seen {
                state: self.state.clone(),
                started: Instant::now(),
                method,
                uri,
                route,
            }),
        }
    }
}

/// What is known of a request before its answer.
struct Seen {
    state: AppState,
    started: Instant,
    method: Method,
    uri: Uri,
    route: RouteName,
}

pin_project! {
    pub struct ObserveFuture<F> {
        #[pin]
        inner: F,
        seen: Option<Seen>,
    }
}

impl<F, E> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        if let (Some(seen), Ok(resp)) = (this.seen.take(), &out) {
            seen.answered(resp);
        }
        Poll::Ready(out)
    }
}

impl Seen {
    fn answered(self, resp: &Response) {
        let took = self.started.elapsed();
        let status = resp.status();
        self.state.metrics.request(
            RequestLabels {
                method: method_name(&self.method),
                route: self.route,
                status: status.as_u16(),
            },
            took,
        );
        let failed = status.is_server_error();
        if failed || tracing::enabled!(tracing::Level::DEBUG) {
            let prefix = self.state.config.prefix.as_str();
            let path = redact_tokens(self.uri.path(), prefix);
            let query = self.uri.query().map(|q| redact_query(q, prefix));
            let query = query.as_deref().unwrap_or("");
            let (method, status, micros) = (self.method, status.as_u16(), took.as_micros() as u64);
            if failed {
                tracing::warn!(%method, path, query, status, micros, "request failed");
            } else {
                tracing::debug!(%method, path, query, status, micros, "request");
            }
        }
    }
}

/// The rules of every answer, applied around the whole router so that no route, surface,
/// extractor or fallback, present or added later, can skip them (the answer to a caught panic
/// is made further out; it is fixed text and keeps them itself):
/// - `Cache-Control: no-store` unless the answer chose its own: many answers carry a secret
///   (a new token, a generated password, the session's CSRF token) and the others are
///   per-caller, so no browser or proxy may keep any of them.
/// - An error answer (4xx, 5xx) never shows a secret: a client that sent its token where a
///   scope, a sort key, a date or a role belongs would otherwise get it back in a message,
///   which proxies log. Its body is redacted as logs are ([`redact_secrets`]), whatever built
///   it: the native error, a compatible surface's own, or one written later.
#[derive(Clone)]
pub struct AnswerRulesLayer {
    prefix: Arc<str>,
}

impl AnswerRulesLayer {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }
}

impl<S> Layer<S> for AnswerRulesLayer {
    type Service = AnswerRules<S>;

    fn layer(&self, inner: S) -> AnswerRules<S> {
        AnswerRules {
            inner,
            prefix: self.prefix.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AnswerRules<S> {
    inner: S,
    prefix: Arc<str>,
}

impl<S> Service<Request> for AnswerRules<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = AnswerRulesFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        AnswerRulesFuture::Answering {
            inner: self.inner.call(req),
            prefix: Some(self.prefix.clone()),
        }
    }
}

/// An error body larger than this is not one keygate wrote: it is replaced, not shown.
const MAX_ERROR_BODY: usize = 1 << 20;

type Redacting = Pin<Box<dyn Future<Output = Response> + Send>>;

pin_project! {
    #[project = AnswerRulesProj]
    pub enum AnswerRulesFuture<F> {
        Answering { #[pin] inner: F, prefix: Option<Arc<str>> },
        Redacting { body: Redacting },
    }
}

impl<F, E> Future for AnswerRulesFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (resp, prefix) = match self.as_mut().project() {
            AnswerRulesProj::Answering { inner, prefix } => match std::task::ready!(inner.poll(cx))
            {
                Ok(resp) => (resp, prefix.take().expect("polled after completion")),
                Err(e) => return Poll::Ready(Err(e)),
            },
            AnswerRulesProj::Redacting { body } => return body.as_mut().poll(cx).map(Ok),
        };
        if !(resp.status().is_client_error() || resp.status().is_server_error()) {
            return Poll::Ready(Ok(no_store(resp)));
        }
        self.set(AnswerRulesFuture::Redacting {
            body: Box::pin(without_secrets(resp, prefix)),
        });
        self.poll(cx)
    }
}

/// `resp`, which no cache may keep unless it says otherwise.
pub fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

/// The error answer with its body redacted.
async fn without_secrets(resp: Response, prefix: Arc<str>) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_ERROR_BODY).await {
        Ok(b) => b,
        Err(e) => {
            let e = ApiError::Internal(format!("reading an error answer to redact it: {e}"));
            return no_store(e.into_response());
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let redacted = redact_secrets(&text, &prefix);
    let body = if redacted == text {
        Body::from(bytes)
    } else {
        parts.headers.remove(header::CONTENT_LENGTH);
        Body::from(redacted)
    };
    no_store(Response::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    use super::*;

    const TOKEN: &str = "kg_1A2b3C4d5E6f7G8h_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLM";

    /// A route written with no thought of secrets, as a new one might be.
    async fn answer(router: Router, path: &str) -> (StatusCode, Option<String>, String) {
        let resp = router
            .layer(AnswerRulesLayer::new("kg"))
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let cache = resp
            .headers()
            .get(header::CACHE_CONTROL)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, cache, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn any_error_answer_loses_the_secret_and_every_answer_says_no_store() {
        let router = Router::new()
            .route(
                "/careless",
                get(|| async { (StatusCode::BAD_REQUEST, format!("no such thing: {TOKEN}")) }),
            )
            .route("/created", get(|| async { (StatusCode::CREATED, TOKEN) }))
            .route(
                "/cached",
                get(|| async { ([(header::CACHE_CONTROL, "max-age=60")], "static") }),
            );
        let (status, cache, body) = answer(router.clone(), "/careless").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, "no such thing: kg_1A2b3C4d5E6f7G8h_REDACTED");
        assert_eq!(cache.as_deref(), Some("no-store"));
        // A success that carries a secret on purpose keeps it, and is not cached.
        let (_, cache, body) = answer(router.clone(), "/created").await;
        assert_eq!((cache.as_deref(), body.as_str()), (Some("no-store"), TOKEN));
        let (_, cache, _) = answer(router.clone(), "/cached").await;
        assert_eq!(cache.as_deref(), Some("max-age=60"), "its own choice stays");
        // The router's own 404 is an answer like any other.
        let (status, cache, _) = answer(router, "/nowhere").await;
        assert_eq!(
            (status, cache.as_deref()),
            (StatusCode::NOT_FOUND, Some("no-store"))
        );
    }
}
