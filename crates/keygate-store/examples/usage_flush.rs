//! What usage counting costs at scale: the memory the in-memory counters hold per token in use,
//! and what one flush writes and how long it takes, with N tokens verified in the interval
//! (default 100 000), on SQLite (a file in a temp dir) and, given its URL, on PostgreSQL.
//!
//! ```sh
//! cargo run --release -p keygate-store --example usage_flush -- 100000 \
//!     postgres://postgres@127.0.0.1:5432/postgres
//! ```
//!
//! A PostgreSQL URL names the server's maintenance database; a fresh database is created beside
//! it and dropped at the end.

use std::sync::Arc;
use std::time::Instant;

/// The allocator `keygate serve` runs with, so the figure is the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use keygate_core::{TokenId, TokenPrefix};
use keygate_store::usage::{Counted, UsageCounter, UsageDelta, MINUTE_MS};
use keygate_store::{now, unix_ms, SqlStore, Store};

#[path = "support/rss.rs"]
mod support_rss;
use support_rss::rss;

/// `n` tokens each verified a few times in one minute: the counters' memory, and the batch.
fn counted(n: usize) -> (usize, Vec<UsageDelta>) {
    let prefix = TokenPrefix::default();
    let tenant: Arc<str> = "default".into();
    let ids: Vec<TokenId> = (0..n).map(|_| TokenId::generate(&prefix)).collect();
    let minute = unix_ms(now()).div_euclid(MINUTE_MS) * MINUTE_MS;
    let counter = UsageCounter::default();
    let before = rss();
    for id in &ids {
        for outcome in [Counted::Valid, Counted::Valid, Counted::RateLimited] {
            counter.add(id, &tenant, minute, outcome);
        }
    }
    let grew = rss().saturating_sub(before);
    (grew, counter.take())
}

async fn flush(label: &str, store: &SqlStore, batch: &[UsageDelta]) {
    // Twice: the first inserts every row, the second adds to rows that exist, as every flush
    // after a token's first in a minute does.
    for round in ["new rows", "existing rows"] {
        let started = Instant::now();
        store.record_usage(batch).await.expect("record_usage");
        let took = started.elapsed();
        println!(
            "{label}: one flush of {} tokens ({round}): {} row upserts (minute, hour and day) in \
             {:.2} s, {:.0} rows/s",
            batch.len(),
            3 * batch.len(),
            took.as_secs_f64(),
            (3 * batch.len()) as f64 / took.as_secs_f64()
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let pg = args.next();

    let (grew, batch) = counted(n);
    println!(
        "{n} tokens counted: resident memory grew by {grew} bytes, {:.0} bytes per token in use \
         (per minute it is used in)",
        grew as f64 / n as f64
    );
    println!(
        "rows written per minute with every token used all minute: {} at --usage-flush-interval \
         10s (six flushes), {} at 60s",
        18 * n,
        3 * n
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqlStore::open(&keygate_store::sqlite_url_in_dir(dir.path()))
        .await
        .expect("SQLite");
    flush("SQLite", &store, &batch).await;
    store.close().await;

    if let Some(admin_url) = pg {
        let name = format!("kg_usage_flush_{}", std::process::id());
        let psql = |sql: String| {
            let ok = std::process::Command::new("psql")
                .args([admin_url.as_str(), "-q", "-c", &sql])
                .status()
                .expect("psql")
                .success();
            assert!(ok, "psql: {sql}");
        };
        psql(format!("CREATE DATABASE {name}"));
        let url = format!("{}/{name}", admin_url.rsplit_once('/').expect("a URL").0);
        let store = SqlStore::open(&url).await.expect("PostgreSQL");
        flush("PostgreSQL", &store, &batch).await;
        store.close().await;
        psql(format!("DROP DATABASE {name} WITH (FORCE)"));
    }
}
