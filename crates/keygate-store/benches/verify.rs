//! The verify hot path in-process, step by step and whole, against a real SQLite
//! store whose cache is warm. Run: `cargo bench -p keygate-store --bench verify`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use keygate_core::{token, PlainToken, ScopeSet, TokenHash, TokenPrefix};
use keygate_store::*;

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
    let mut bad_checksum = valid.expose().to_owned();
    bad_checksum.replace_range(
        30..31,
        if &bad_checksum[30..31] == "a" {
            "b"
        } else {
            "a"
        },
    );

    let verifier = rt.block_on(async {
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
        let v = Verifier::new(Arc::new(store), VerifierConfig::default());
        // Warm the positive and the negative cache.
        v.verify(valid.expose(), &[], None).await.unwrap();
        v.verify(unknown.expose(), &[], None).await.unwrap();
        v
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
}

criterion_group!(benches, bench);
criterion_main!(benches);
