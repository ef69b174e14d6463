//! The floor of keygate's HTTP stack: the same runtime, axum and hyper, answering every request
//! with keygate's `valid` body and doing nothing else. `bench/run.py verify --floor` loads it
//! beside keygate and nginx, which separates what the HTTP stack costs from what keygate adds.
//!
//! ```sh
//! cargo run --release -p keygate-server --example http_floor -- 127.0.0.1:8099
//! ```

use axum::http::header;
use axum::routing::any;
use axum::Router;

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8099".into());
    let app = Router::new().fallback(any(|| async {
        (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"valid":true}"#,
        )
    }));
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
