//! What a rate-limit check adds to a verification: the in-process limiter with warm state,
//! and (when Redis runs here) one round trip of the Redis script.
//! Run: `cargo bench -p keygate-store --bench ratelimit -- --warm-up-time 1 --measurement-time 3`.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{criterion_group, criterion_main, Criterion};
use keygate_store::{Applied, Decision, RateLimiter};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn limits(names: [&str; 2]) -> [Applied<'_>; 2] {
    // Large enough that every check passes: the warm, allowed path.
    [
        Applied {
            name: names[0],
            limit: u64::from(u32::MAX),
            duration_ms: 1_000,
            cost: 1,
            auto_apply: true,
        },
        Applied {
            name: names[1],
            limit: u64::from(u32::MAX),
            duration_ms: 60_000,
            cost: 1,
            auto_apply: false,
        },
    ]
}

/// The local limiter never waits, so one poll finishes its check; no executor is measured.
fn ready(check: impl Future<Output = Decision>) -> Decision {
    match pin!(check).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(decision) => decision,
        Poll::Pending => unreachable!("the local limiter does not wait"),
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let local = rt.block_on(async { RateLimiter::local() });
    let two = limits(["per_second", "per_minute"]);

    c.bench_function("local: two limits, one warm token", |b| {
        ready(local.check("tok_bench", &two));
        b.iter(|| black_box(ready(local.check(black_box("tok_bench"), black_box(&two)))))
    });

    let tokens: Vec<String> = (0..100_000).map(|i| format!("tok_{i:019}")).collect();
    for token in &tokens {
        ready(local.check(token, &two));
    }
    let mut next = 0;
    c.bench_function("local: two limits, 100 000 warm tokens in turn", |b| {
        b.iter(|| {
            next = (next + 1) % tokens.len();
            black_box(ready(local.check(&tokens[next], black_box(&two))))
        })
    });

    let none: [Applied<'_>; 0] = [];
    c.bench_function("local: no limits", |b| {
        b.iter(|| black_box(ready(local.check("tok_bench", black_box(&none)))))
    });

    let url = std::env::var("KEYGATE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let reachable = rt.block_on(async {
        let client = redis::Client::open(url.as_str()).ok()?;
        client.get_multiplexed_async_connection().await.ok()
    });
    if reachable.is_none() {
        eprintln!("SKIPPED: the Redis bench: Redis is not reachable at {url}");
        return;
    }
    let redis = rt.block_on(RateLimiter::redis(&url)).unwrap();
    let token = format!("tok_bench_{}", std::process::id());
    c.bench_function("redis: two limits, one round trip", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(redis.check(&token, &two).await) })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
