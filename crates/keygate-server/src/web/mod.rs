//! The web page: five static files and the vendored chart library compiled into the binary, so
//! there is nothing to build or deploy beside keygate. The page talks to the same REST API as
//! everyone else, logged in with the session cookie.

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::page_asset::asset;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");
const USAGE_JS: &str = include_str!("usage.js");
const EVENTS_JS: &str = include_str!("events.js");
/// Chart.js, byte for byte as published on npm (see vendor/README.md): the usage charts.
const CHART_JS: &str = include_str!("vendor/chart.umd.min.js");

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/ui/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/ui/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/ui/usage.js",
            get(|| async { asset("text/javascript; charset=utf-8", USAGE_JS) }),
        )
        .route(
            "/ui/events.js",
            get(|| async { asset("text/javascript; charset=utf-8", EVENTS_JS) }),
        )
        .route(
            "/ui/vendor/chart.umd.min.js",
            get(|| async { asset("text/javascript; charset=utf-8", CHART_JS) }),
        )
        // Browsers ask for it whatever the page says; an empty answer keeps their consoles quiet.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
}
