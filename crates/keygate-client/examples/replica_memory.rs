//! Memory per held token: the growth of resident memory while N tokens enter a replica through
//! the code a snapshot takes (snapshot pages' JSON → parsing → interning → the map), minus the
//! HTTP. Compare with keygate-store's `cache_memory`, which holds the same tokens.
//!
//! ```sh
//! cargo run --release -p keygate-client --example replica_memory -- 1000000
//! ```

use std::time::Duration;

use keygate_client::{Options, Replica};

#[path = "support/rss.rs"]
mod rss;
#[path = "support/snapshot.rs"]
mod snapshot;

/// The allocator `keygate serve` runs with, so the figure compares with the server's cache.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PAGE: usize = 10_000;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let options = Options {
        max_staleness: Duration::from_secs(3600),
        ..Options::default()
    };
    let replica = Replica::offline("kg", &options).expect("a replica");
    let before = rss::rss();
    // Page by page, minted and dropped as it goes, so the JSON of a million tokens is never
    // resident at once: what remains is what the replica holds.
    for start in (0..n).step_by(PAGE) {
        let (pages, _) = snapshot::minted_pages(PAGE.min(n - start), PAGE, |_| false);
        for page in pages {
            replica
                .apply_snapshot_page(&page)
                .expect("a page keygate could send");
        }
    }
    let bytes = rss::rss().saturating_sub(before);
    let held = replica.stats().tokens;
    println!(
        "{held} tokens held: resident memory grew by {bytes} bytes, {:.0} bytes per held token \
         (TokenInfo itself: {} bytes)",
        bytes as f64 / held as f64,
        std::mem::size_of::<keygate_client::TokenInfo>()
    );
}
