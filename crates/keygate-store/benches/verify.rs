//! The verify hot path in-process, step by step and whole, against a real SQLite
//! store whose cache is warm; then the whole check of a request to a protected API
//! (`Verifier::check_or`) of a plain token against one with rate limits and credits, and one
//! bound to 100 networks (the client's the last of them).
//! Run: `cargo bench -p keygate-store --bench verify -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use keygate_core::usage::RateLimit;
use keygate_core::{token, PlainToken, ScopeSet, TokenHash, TokenPrefix};
use keygate_store::verifier::Check;
use keygate_store::*;

// The server's allocator: the usage checks allocate their reports, so the allocator is part of
// what they cost.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn record(plain: &PlainToken, scopes: &[&str]) -> TokenRecord {
    let now = now();
    TokenRecord::minted(
        keygate_core::TokenId::from_stored(plain.expose()[..19].to_owned()),
        DEFAULT_TENANT.into(),
        plain.hash(),
        "bench".into(),
        "usr_bench".into(),
        ScopeSet::parse(scopes.iter().copied()).unwrap(),
        now,
    )
}

/// Two auto-applied limits and credits, all far beyond what a run uses, so every check passes.
fn with_usage(mut rec: TokenRecord) -> TokenRecord {
    let limit = |name: &str, duration_ms| RateLimit {
        name: name.into(),
        limit: keygate_core::usage::MAX_LIMIT,
        duration_ms,
        auto_apply: true,
    };
    rec.ratelimits = vec![limit("per_second", 1_000), limit("per_minute", 60_000)];
    rec.credits = Some(CreditState::new(9_000_000_000_000_000, None, now()));
    rec
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let prefix = TokenPrefix::default();
    let (_, valid) = PlainToken::mint(&prefix);
    let (_, unknown) = PlainToken::mint(&prefix);
    let (_, limited) = PlainToken::mint(&prefix);
    let (_, bound) = PlainToken::mint(&prefix);
    let client: std::net::IpAddr = "192.0.2.7".parse().unwrap();
    let mut bad_checksum = valid.expose().to_owned();
    bad_checksum.replace_range(
        30..31,
        if &bad_checksum[30..31] == "a" {
            "b"
        } else {
            "a"
        },
    );

    let (verifier, whole_leases, uncounted) = rt.block_on(async {
        let store = SqlStore::open(&keygate_store::sqlite_url_in_dir(dir.path()))
            .await
            .unwrap();
        let admin = UserRecord {
            id: "usr_bench".into(),
            tenant_id: DEFAULT_TENANT.into(),
            username: "admin".into(),
            password_hash: "unused".into(),
            role: "admin".into(),
            created_at: now(),
        };
        let token = record(&valid, &["metrics:read", "tokens:read"]);
        store
            .bootstrap(&Bootstrap {
                tenant_id: DEFAULT_TENANT.into(),
                admin,
                token,
            })
            .await
            .unwrap();
        let limited_record = with_usage(record(&limited, &["metrics:read", "tokens:read"]));
        store
            .apply(&[Write::InsertToken(limited_record)], &[])
            .await
            .unwrap();
        // 99 networks the client is not in, then its own: the whole list is read.
        let mut bound_record = record(&bound, &["metrics:read", "tokens:read"]);
        bound_record.allowed_cidrs = (0..99)
            .map(|i| format!("10.{i}.0.0/16"))
            .chain(["192.0.2.0/24".to_owned()])
            .map(|c| c.parse().unwrap())
            .collect();
        store
            .apply(&[Write::InsertToken(bound_record)], &[])
            .await
            .unwrap();
        let store: Arc<dyn Store> = Arc::new(store);
        let v = Verifier::new(store.clone(), VerifierConfig::default());
        // A lease as large as the run: what the usage checks cost in memory, without the
        // database write every default lease (100 credits) takes.
        let mut whole = VerifierConfig::default();
        whole.credits.lease_max = u64::MAX / 2;
        let whole = Verifier::new(store.clone(), whole);
        // Counting off (`--no-usage-counts`): what the usage counters add to a check.
        let uncounted = Verifier::new(
            store,
            VerifierConfig {
                count_usage: false,
                ..VerifierConfig::default()
            },
        );
        uncounted.verify(valid.expose(), &[], None).await.unwrap();
        // Warm the positive and the negative cache.
        v.verify(valid.expose(), &[], None).await.unwrap();
        v.verify(unknown.expose(), &[], None).await.unwrap();
        v.verify(limited.expose(), &[], None).await.unwrap();
        v.verify(bound.expose(), &[], Some(client)).await.unwrap();
        whole.verify(limited.expose(), &[], None).await.unwrap();
        (v, whole, uncounted)
    });

    let mut g = c.benchmark_group("steps");
    g.bench_function("parse+checksum", |b| {
        b.iter(|| token::parse(black_box(valid.expose()), &prefix))
    });
    g.bench_function("sha256 (the floor)", |b| {
        b.iter(|| TokenHash::of(black_box(valid.expose())))
    });
    let hash = valid.hash();
    g.bench_function("cache hit", |b| {
        b.iter(|| verifier.cache().get(black_box(&hash)))
    });
    let scopes = ScopeSet::parse(["metrics:read", "tokens:read"]).unwrap();
    g.bench_function("scope check", |b| {
        b.iter(|| scopes.missing(black_box(["metrics:read"])))
    });
    g.finish();

    let mut g = c.benchmark_group("verify");
    for (name, tok, wanted) in [
        ("valid", valid.expose(), &["metrics:read"][..]),
        ("unknown (negative cache)", unknown.expose(), &[][..]),
        ("bad checksum", bad_checksum.as_str(), &[][..]),
        ("insufficient scope", valid.expose(), &["metrics:write"][..]),
    ] {
        g.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| async { verifier.verify(black_box(tok), wanted, None).await.unwrap() })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("check_or");
    let wanted = ["metrics:read"];
    let check = |token| Check {
        token,
        scopes: &wanted,
        permissions: None,
        ratelimits: &[],
        cost: 1,
        ip: Some(client),
    };
    for (name, v, tok) in [
        ("plain token", &verifier, valid.expose()),
        ("plain token, usage not counted", &uncounted, valid.expose()),
        ("100-network allow-list", &verifier, bound.expose()),
        ("two auto limits + credits", &verifier, limited.expose()),
        (
            "two auto limits + credits, one lease for the run",
            &whole_leases,
            limited.expose(),
        ),
    ] {
        let ch = check(tok);
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let v = v
                    .check_or(black_box(&ch), || Ok::<_, StoreError>(()))
                    .await
                    .unwrap();
                assert!(matches!(v.outcome, Outcome::Valid(_)));
                v
            })
        });
    }
    g.finish();
    eprintln!(
        "credit leases taken: {} with the default lease size, {} with one lease for the run",
        verifier.credits().leases(),
        whole_leases.credits().leases()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
