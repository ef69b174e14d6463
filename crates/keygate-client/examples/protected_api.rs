//! A small API protected by a keygate replica: `GET /orders` needs `orders:read` (extractor),
//! `POST /orders` needs `orders:write` (extractor), everything under `/admin` needs a permission
//! query (layer), `/health` is open and shows the replica's figures.
//!
//! ```sh
//! KEYGATE_URL=http://127.0.0.1:8080 KEYGATE_REPLICATION_TOKEN=kg_… \
//!   cargo run -p keygate-client --example protected_api -- 3000
//! ```
//! The port comes from the first argument, else `PORT`, else 3000 (0: any free port; the
//! chosen address is printed as `listening on <addr>`).

use std::net::SocketAddr;

use axum::routing::get;
use axum::{Extension, Json, Router};
use keygate_client::{KeygateLayer, KeygateToken, Options, Replica, Verified};
use serde_json::{json, Value};

keygate_client::scopes!(pub ReadOrders = "orders:read");
keygate_client::scopes!(pub WriteOrders = "orders:write");

async fn list_orders(token: KeygateToken<ReadOrders>) -> Json<Value> {
    Json(json!({ "orders": [], "tokenId": token.id(), "ownerId": token.owner_id() }))
}

async fn create_order(token: KeygateToken<WriteOrders>, Json(order): Json<Value>) -> Json<Value> {
    Json(json!({ "created": order, "by": token.id() }))
}

async fn admin_report(Extension(Verified(token)): Extension<Verified>) -> Json<Value> {
    Json(json!({ "report": "ok", "tokenId": token.id() }))
}

async fn health(Extension(replica): Extension<Replica>) -> Json<Value> {
    let s = replica.stats();
    Json(json!({
        "status": if s.stale { "stale" } else { "ok" },
        "tokens": s.tokens,
        "cursor": s.cursor,
        "sinceContactMs": s.since_contact.as_millis() as u64,
        "snapshots": s.snapshots,
        "changesApplied": s.changes_applied,
        "errors": s.errors,
        "delegated": s.delegated,
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let url = std::env::var("KEYGATE_URL").map_err(|_| "set KEYGATE_URL")?;
    let token = std::env::var("KEYGATE_REPLICATION_TOKEN")
        .map_err(|_| "set KEYGATE_REPLICATION_TOKEN (a token with scope tokens:replicate)")?;
    let port: u16 = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
        .map_or(Ok(3000), |p| p.parse())?;

    let replica = Replica::connect(&url, token, Options::default()).await?;
    tracing::info!(tokens = replica.stats().tokens, "replica ready");

    let admin = Router::new()
        .route("/admin/report", get(admin_report))
        .layer(KeygateLayer::new(replica.clone()).require_query("orders:admin OR admin")?);
    let app = Router::new()
        .route("/orders", get(list_orders).post(create_order))
        .route("/health", get(health))
        .merge(admin)
        .layer(Extension(replica));

    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
