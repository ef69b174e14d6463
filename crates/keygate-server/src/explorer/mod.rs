//! The API explorer at `/api/docs`: Swagger UI on the document of `/openapi.json`, with "Try it
//! out" against this server. Swagger UI's files are the npm package `swagger-ui-dist` at the
//! version `package-lock.json` pins, copied into `swagger-ui/` by `refresh.sh` and compiled in,
//! so nothing is fetched at build or run time. The page keeps the web page's
//! Content-Security-Policy: our own page and initializer, no inline script or style, and the
//! stylesheet's data: icons replaced by files served from here (`explorer.css`).

use axum::routing::get;
use axum::Router;

const INDEX_HTML: &str = include_str!("index.html");
const EXPLORER_JS: &str = include_str!("explorer.js");
const EXPLORER_CSS: &str = include_str!("explorer.css");
const SWAGGER_UI_JS: &str = include_str!("swagger-ui/swagger-ui-bundle.js");
const SWAGGER_UI_CSS: &str = include_str!("swagger-ui/swagger-ui.css");

/// The icons `explorer.css` puts in place of swagger-ui.css's data: URLs.
const ICONS: [(&str, &str); 8] = [
    ("check.svg", include_str!("icons/check.svg")),
    ("check-dark.svg", include_str!("icons/check-dark.svg")),
    ("copy.svg", include_str!("icons/copy.svg")),
    ("copy-dark.svg", include_str!("icons/copy-dark.svg")),
    ("expand.svg", include_str!("icons/expand.svg")),
    ("expand-dark.svg", include_str!("icons/expand-dark.svg")),
    ("select.svg", include_str!("icons/select.svg")),
    ("select-dark.svg", include_str!("icons/select-dark.svg")),
];

use crate::page_asset::asset;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let router = Router::new()
        .route("/api/docs", get(|| async { asset(HTML, INDEX_HTML) }))
        .route(
            "/api/docs/explorer.js",
            get(|| async { asset(JS, EXPLORER_JS) }),
        )
        .route(
            "/api/docs/explorer.css",
            get(|| async { asset(CSS, EXPLORER_CSS) }),
        )
        .route(
            "/api/docs/swagger-ui-bundle.js",
            get(|| async { asset(JS, SWAGGER_UI_JS) }),
        )
        .route(
            "/api/docs/swagger-ui.css",
            get(|| async { asset(CSS, SWAGGER_UI_CSS) }),
        );
    ICONS.into_iter().fold(router, |router, (name, svg)| {
        router.route(
            &format!("/api/docs/icons/{name}"),
            get(move || async move { asset(SVG, svg) }),
        )
    })
}
