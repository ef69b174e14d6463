//! The replica's local verification among many held tokens: a valid token, an unknown one, one
//! lacking a scope, a malformed one; and the async `verify` around the same local answer.
//!
//! ```sh
//! cargo bench -p keygate-client --bench verify            # 1 M tokens
//! KEYGATE_BENCH_TOKENS=100000 cargo bench -p keygate-client --bench verify
//! ```

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use keygate_client::{LocalAnswer, Options, Replica, Request};

#[path = "../examples/support/snapshot.rs"]
mod snapshot;

/// The allocator an application would likely run with; the figure of `cache_memory` uses it too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn replica_of(n: usize) -> (Replica, Vec<String>) {
    let (pages, kept) = snapshot::minted_pages(n, 10_000, |i| i % (n / 1000).max(1) == 0);
    let options = Options {
        // A measurement runs longer than the default 30 s without any keygate.
        max_staleness: Duration::from_secs(24 * 3600),
        ..Options::default()
    };
    let replica = Replica::offline("kg", &options).unwrap();
    for page in &pages {
        replica.apply_snapshot_page(page).unwrap();
    }
    (replica, kept)
}

fn answered(replica: &Replica, req: &Request<'_>) -> keygate_client::Code {
    match replica.check_local(req) {
        LocalAnswer::Answered(v) => v.code,
        LocalAnswer::NeedsKeygate => unreachable!("no token here is usage-controlled"),
    }
}

fn bench(c: &mut Criterion) {
    let n: usize = std::env::var("KEYGATE_BENCH_TOKENS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let (replica, kept) = replica_of(n);
    assert_eq!(replica.stats().tokens, n);
    let (_, unknown) = snapshot::minted_pages(1, 1, |_| true);
    let unknown = unknown[0].clone();

    let mut g = c.benchmark_group(format!("replica_{n}_tokens"));
    let mut i = 0;
    g.bench_function("valid", |b| {
        b.iter(|| {
            // Cycling over a thousand held tokens: not one hot cache line.
            i = (i + 1) % kept.len();
            let req = Request {
                token: &kept[i],
                scopes: &["metrics:read"],
                ..Request::default()
            };
            answered(&replica, &req)
        })
    });
    g.bench_function("unknown", |b| {
        b.iter(|| {
            answered(
                &replica,
                &Request {
                    token: &unknown,
                    ..Request::default()
                },
            )
        })
    });
    g.bench_function("insufficient_scope", |b| {
        b.iter(|| {
            answered(
                &replica,
                &Request {
                    token: &kept[0],
                    scopes: &["metrics:write"],
                    ..Request::default()
                },
            )
        })
    });
    g.bench_function("malformed", |b| {
        b.iter(|| {
            answered(
                &replica,
                &Request {
                    token: "kg_not_a_token",
                    ..Request::default()
                },
            )
        })
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    g.bench_function("verify_async_valid", |b| {
        b.to_async(&rt).iter_batched(
            || kept[7 % kept.len()].clone(),
            |token| {
                let replica = replica.clone();
                async move { replica.verify(&token, &["metrics:read"]).await.code }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
