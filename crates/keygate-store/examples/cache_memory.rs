//! Memory per cached token, in a process that does nothing else: the growth of resident memory
//! while N tokens go into the verification cache the way a cache miss puts them there (through
//! the interner, into the bounded cache). The server's own RSS, which `bench/run.py scale`
//! reports, also grows with SQLite's page caches and the last-use queue, so it overstates this.
//!
//! ```sh
//! cargo run --release -p keygate-store --example cache_memory -- 1000000
//! ```

use std::sync::Arc;

/// The allocator `keygate serve` runs with, so the figure is the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use keygate_core::{PlainToken, ScopeSet, TokenHash, TokenPrefix};
use keygate_store::cache::{Interner, TokenCache};
use keygate_store::{now, TokenRecord};

#[path = "support/rss.rs"]
mod support_rss;
use support_rss::rss;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let prefix = TokenPrefix::default();
    let scopes = ScopeSet::parse(["metrics:read"]).unwrap();
    let cache = TokenCache::new(n, 1);
    let interner = Interner::default();
    let at = now();
    let before = rss();
    for i in 0..n {
        let (id, plain) = PlainToken::mint(&prefix);
        let hash: TokenHash = plain.hash();
        let rec = TokenRecord::minted(
            id,
            "default".into(),
            hash,
            format!("seed-{i}"),
            "default".into(),
            scopes.clone(),
            at,
        );
        cache.fill(hash, Some(Arc::new(interner.cached(&rec))), cache.epoch());
    }
    let bytes = rss() - before;
    println!(
        "{} tokens cached: resident memory grew by {} bytes, {:.0} bytes per cached token \
         (the struct itself: {} bytes)",
        cache.len(),
        bytes,
        bytes as f64 / cache.len() as f64,
        std::mem::size_of::<keygate_store::cache::CachedToken>()
    );
}
