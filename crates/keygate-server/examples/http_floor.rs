//! The floor of keygate's HTTP stack: the same HTTP workers, axum and hyper, reading each
//! request's body and answering with the `valid` body nginx sends, doing nothing else.
//! `bench/run.py verify` loads it beside keygate and nginx (unless `--no-floor`), which
//! separates what the HTTP stack costs from what keygate adds.
//!
//! ```sh
//! cargo run --release -p keygate-server --example http_floor -- 127.0.0.1:8099
//! ```

use axum::body::Bytes;
use axum::http::header;
use axum::routing::any;
use axum::Router;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8099".into());
    // The body is read, as keygate reads it: that is part of the stack's cost, not keygate's.
    let app = Router::new().fallback(any(|body: Bytes| async move {
        std::hint::black_box(body);
        (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"valid":true}"#,
        )
    }));
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    let mut workers = keygate_server::workers::start(listener, app, workers, Default::default())
        .expect("workers");
    // Serves until killed.
    let e = workers.failed().await;
    panic!("{e:#}");
}
