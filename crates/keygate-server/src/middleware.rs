//! What happens around every request: it is logged (with tokens redacted) and counted by
//! route.
//!
//! One hand-written layer instead of `axum::middleware::from_fn` functions: axum wraps every
//! route in each `.layer()` separately, and each `from_fn` level clones its inner service and
//! boxes a future for every request. On the verify route that overhead cost more than the
//! verification itself (BENCHMARKS.md); this layer calls its inner service in place and its
//! future is a plain struct.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, Uri};
use axum::response::Response;
use keygate_core::credentials::{redact_query, redact_tokens};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

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
