//! Request logging (with tokens redacted from query strings) and request metrics.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use keygate_core::credentials::{redact_query, redact_tokens};

use crate::extract::BodyLimit;
use crate::metrics::{method_name, RequestLabels, RouteName};
use crate::state::AppState;

/// Logs every request without its credentials: the path and the query with anything that may
/// be a secret replaced by `REDACTED`, the status and the time taken. Headers are never logged.
pub async fn log_requests(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    req.extensions_mut()
        .insert(BodyLimit(state.config.max_body_bytes));
    let started = Instant::now();
    let method = req.method().clone();
    // The URI is kept (a cheap clone of shared bytes) and redacted only for a line that is
    // written: redaction allocates, and most requests are not logged.
    let uri = req.uri().clone();
    let resp = next.run(req).await;
    let failed = resp.status().is_server_error();
    if failed || tracing::enabled!(tracing::Level::DEBUG) {
        let prefix = state.config.prefix.as_str();
        let path = redact_tokens(uri.path(), prefix);
        let query = uri.query().map(|q| redact_query(q, prefix));
        let query = query.as_deref().unwrap_or("");
        let status = resp.status().as_u16();
        let micros = started.elapsed().as_micros() as u64;
        if failed {
            tracing::warn!(%method, path, query, status, micros, "request failed");
        } else {
            tracing::debug!(%method, path, query, status, micros, "request");
        }
    }
    resp
}

/// Counts requests by matched route (not raw path, so ids do not explode the label set).
pub async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = RouteName(req.extensions().get::<MatchedPath>().cloned());
    let method = method_name(req.method());
    let resp = next.run(req).await;
    state.metrics.request(
        RequestLabels {
            method,
            route,
            status: resp.status().as_u16(),
        },
        started.elapsed(),
    );
    resp
}
