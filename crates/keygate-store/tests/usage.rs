//! Usage counts against the real databases (SQLite files, and a fresh database per test on the
//! machine's PostgreSQL, `KEYGATE_TEST_DATABASE_URL`; unreachable is a failure, never a skip):
//! batches add up, series and top lists read back what was written, two nodes' counts sum,
//! and pruning keeps what retention promises.

mod common;
use common::{on_both_backends, Db};

use std::sync::Arc;
use std::time::Duration;

use keygate_core::{PlainToken, ScopeSet, TokenId, TokenPrefix};
use keygate_store::usage::*;
use keygate_store::*;

const T0: i64 = 1_764_547_200_000; // 2025-12-01T00:00:00Z, a day's start.

/// A stored token, with its plaintext.
async fn token(store: &SqlStore, name: &str, external: Option<&str>) -> (TokenRecord, PlainToken) {
    let (_, plain) = PlainToken::mint(&TokenPrefix::default());
    let mut rec = TokenRecord::minted(
        TokenId::from_stored(plain.expose()[..19].to_owned()),
        DEFAULT_TENANT.into(),
        plain.hash(),
        name.into(),
        DEFAULT_TENANT.into(),
        ScopeSet::parse(["metrics:read"]).unwrap(),
        now(),
    );
    rec.external_id = external.map(str::to_owned);
    store
        .apply(&[Write::InsertToken(rec.clone())], &[])
        .await
        .unwrap();
    (rec, plain)
}

fn delta(t: &TokenRecord, minute_ms: i64, counts: [u64; 7]) -> UsageDelta {
    UsageDelta {
        token_id: t.id.clone(),
        tenant_id: DEFAULT_TENANT.into(),
        minute_ms,
        counts: Counts(counts),
    }
}

fn points(series: &[UsagePoint]) -> Vec<(i64, [u64; 7])> {
    series.iter().map(|p| (p.at_ms, p.counts.0)).collect()
}

async fn series_of(
    store: &SqlStore,
    t: &TokenRecord,
    g: Granularity,
    from: i64,
    to: i64,
) -> Vec<(i64, [u64; 7])> {
    points(
        &store
            .usage_series(DEFAULT_TENANT, t.id.as_str(), g, from, to)
            .await
            .unwrap(),
    )
}

/// Batches add to what is stored, per minute, per hour and per day; minutes of one hour or day
/// in one batch add up too.
async fn batches_add_up_in_every_granularity(db: Db) {
    let s = &*db.store;
    let (a, _) = token(s, "a", None).await;
    let m = MINUTE_MS;
    s.record_usage(&[
        delta(&a, T0, [3, 1, 0, 0, 0, 0, 0]),
        delta(&a, T0 + 61 * m, [1, 0, 0, 2, 0, 0, 0]),
        delta(&a, T0 + 62 * m, [0, 0, 0, 0, 1, 0, 0]),
    ])
    .await
    .unwrap();
    s.record_usage(&[delta(&a, T0, [2, 0, 1, 0, 0, 0, 0])])
        .await
        .unwrap();
    // The next day.
    s.record_usage(&[delta(&a, T0 + DAY_MS + 5 * m, [7, 0, 0, 0, 0, 0, 1])])
        .await
        .unwrap();

    assert_eq!(
        series_of(s, &a, Granularity::Minute, T0, T0 + 2 * HOUR_MS).await,
        vec![
            (T0, [5, 1, 1, 0, 0, 0, 0]),
            (T0 + 61 * m, [1, 0, 0, 2, 0, 0, 0]),
            (T0 + 62 * m, [0, 0, 0, 0, 1, 0, 0])
        ]
    );
    assert_eq!(
        series_of(s, &a, Granularity::Hour, T0, T0 + 2 * DAY_MS).await,
        vec![
            (T0, [5, 1, 1, 0, 0, 0, 0]),
            (T0 + HOUR_MS, [1, 0, 0, 2, 1, 0, 0]),
            (T0 + DAY_MS, [7, 0, 0, 0, 0, 0, 1]),
        ]
    );
    assert_eq!(
        series_of(s, &a, Granularity::Day, T0, T0 + 2 * DAY_MS).await,
        vec![
            (T0, [6, 1, 1, 2, 1, 0, 0]),
            (T0 + DAY_MS, [7, 0, 0, 0, 0, 0, 1])
        ]
    );
    // The range's end is exclusive.
    assert_eq!(
        series_of(s, &a, Granularity::Minute, T0 + m, T0 + 61 * m).await,
        vec![]
    );
}

/// The tenant's top tokens and external ids, by total and by refusals, with totals.
async fn top_lists_rank_and_group(db: Db) {
    let s = &*db.store;
    let (a, _) = token(s, "alpha", Some("cus_1")).await;
    let (b, _) = token(s, "beta", Some("cus_1")).await;
    let (c, _) = token(s, "gamma", None).await;
    s.record_usage(&[
        delta(&a, T0, [10, 0, 0, 0, 0, 0, 0]),
        delta(&b, T0, [2, 5, 0, 0, 0, 0, 0]),
        delta(&c, T0 + MINUTE_MS, [4, 0, 0, 0, 1, 0, 0]),
    ])
    .await
    .unwrap();
    let q = |group_by, order_by, granularity| TopQuery {
        from_ms: T0,
        to_ms: T0 + DAY_MS,
        group_by,
        order_by,
        limit: 10,
        granularity,
    };
    for daily in [Granularity::Minute, Granularity::Hour, Granularity::Day] {
        let top = s
            .usage_top(
                DEFAULT_TENANT,
                &q(UsageGroup::Token, UsageOrder::Total, daily),
            )
            .await
            .unwrap();
        assert_eq!(top.totals.0, [16, 5, 0, 0, 1, 0, 0], "{daily:?}");
        let names: Vec<(Option<&str>, u64)> = top
            .items
            .iter()
            .map(|i| (i.name.as_deref(), i.counts.total()))
            .collect();
        assert_eq!(
            names,
            vec![(Some("alpha"), 10), (Some("beta"), 7), (Some("gamma"), 5)]
        );
        assert_eq!(top.items[0].token_id.as_deref(), Some(a.id.as_str()));
        assert_eq!(top.items[0].external_id.as_deref(), Some("cus_1"));

        let refused = s
            .usage_top(
                DEFAULT_TENANT,
                &q(UsageGroup::Token, UsageOrder::Refused, daily),
            )
            .await
            .unwrap();
        let ids: Vec<(&str, u64)> = refused
            .items
            .iter()
            .map(|i| (i.name.as_deref().unwrap(), i.counts.refused()))
            .collect();
        // alpha refused nothing: not listed among the most refused.
        assert_eq!(ids, vec![("beta", 5), ("gamma", 1)]);

        let by_customer = s
            .usage_top(
                DEFAULT_TENANT,
                &q(UsageGroup::ExternalId, UsageOrder::Total, daily),
            )
            .await
            .unwrap();
        assert_eq!(by_customer.items.len(), 1, "gamma has no external id");
        assert_eq!(by_customer.items[0].external_id.as_deref(), Some("cus_1"));
        assert_eq!(by_customer.items[0].tokens, 2);
        assert_eq!(by_customer.items[0].counts.0, [12, 5, 0, 0, 0, 0, 0]);
    }
    // Another tenant's usage is not this one's.
    let other = s
        .usage_top(
            "other-tenant",
            &q(UsageGroup::Token, UsageOrder::Total, Granularity::Minute),
        )
        .await
        .unwrap();
    assert!(other.items.is_empty());
    assert_eq!(other.totals, Counts::default());
    // A limit of one.
    let one = s
        .usage_top(
            DEFAULT_TENANT,
            &TopQuery {
                limit: 1,
                ..q(UsageGroup::Token, UsageOrder::Total, Granularity::Minute)
            },
        )
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
}

/// Pruning deletes minute and hour rows before its first bound and day rows before its second.
async fn pruning_keeps_what_retention_promises(db: Db) {
    let s = &*db.store;
    let (a, _) = token(s, "a", None).await;
    s.record_usage(&[
        delta(&a, T0, [1, 0, 0, 0, 0, 0, 0]),
        delta(&a, T0 + 3 * DAY_MS, [2, 0, 0, 0, 0, 0, 0]),
    ])
    .await
    .unwrap();
    s.prune_usage(T0 + DAY_MS, T0 + 1).await.unwrap();
    for g in [Granularity::Minute, Granularity::Hour] {
        assert_eq!(
            series_of(s, &a, g, T0, T0 + 4 * DAY_MS).await,
            vec![(T0 + 3 * DAY_MS, [2, 0, 0, 0, 0, 0, 0])],
            "{g:?}"
        );
    }
    assert_eq!(
        series_of(s, &a, Granularity::Day, T0, T0 + 4 * DAY_MS).await,
        vec![(T0 + 3 * DAY_MS, [2, 0, 0, 0, 0, 0, 0])]
    );
}

/// Verifications on two nodes (two verifiers, each with its own store on the one database)
/// are counted exactly, by outcome, once both have flushed.
async fn two_nodes_counts_add_up(db: Db) {
    let config = VerifierConfig {
        // Only the explicit flushes below write.
        usage_flush_interval: Duration::from_secs(3600),
        ..VerifierConfig::default()
    };
    let (a, plain) = token(&db.store, "a", None).await;
    let other: Arc<dyn Store> = Arc::new(SqlStore::open(&db.url).await.unwrap());
    let nodes = [
        Verifier::new(db.store.clone(), config.clone()),
        Verifier::new(other, config),
    ];
    let started = unix_ms(now());
    for (i, node) in nodes.iter().enumerate() {
        for _ in 0..(10 + i) {
            let out = node
                .verify(plain.expose(), &["metrics:read"], None)
                .await
                .unwrap();
            assert_eq!(out.code(), "VALID");
        }
        for _ in 0..(3 + i) {
            let out = node
                .verify(plain.expose(), &["metrics:write"], None)
                .await
                .unwrap();
            assert_eq!(out.code(), "INSUFFICIENT_SCOPE");
        }
        // Not a use of any token: not counted.
        node.verify("kg_nothing", &[], None).await.unwrap();
    }
    for node in &nodes {
        assert!(node.usage().pending() > 0);
        node.usage().flush().await.unwrap();
        assert_eq!(node.usage().pending(), 0);
    }
    let series = db
        .store
        .usage_series(
            DEFAULT_TENANT,
            a.id.as_str(),
            Granularity::Day,
            Granularity::Day.floor(started),
            Granularity::Day.floor(started) + 2 * DAY_MS,
        )
        .await
        .unwrap();
    let mut sum = Counts::default();
    for p in &series {
        sum.add(&p.counts);
    }
    assert_eq!(sum.get(Counted::Valid), 21);
    assert_eq!(sum.get(Counted::InsufficientScope), 7);
    assert_eq!(sum.total(), 28);
}

/// A write that fails is all undone and its counts kept for the next: nothing lost, nothing
/// counted twice (the minute rows of a batch whose day rows fail are not left behind).
async fn a_failed_write_keeps_the_counts(db: Db) {
    let (a, plain) = token(&db.store, "a", None).await;
    let node = Verifier::new(
        db.store.clone(),
        VerifierConfig {
            usage_flush_interval: Duration::from_secs(3600),
            ..VerifierConfig::default()
        },
    );
    for _ in 0..5 {
        node.verify(plain.expose(), &[], None).await.unwrap();
    }
    common::console(&db, "ALTER TABLE usage_day RENAME TO usage_day_away").await;
    assert!(node.usage().flush().await.is_err());
    assert_eq!(node.usage().pending(), 1, "one token, one minute, kept");
    common::console(&db, "ALTER TABLE usage_day_away RENAME TO usage_day").await;
    for _ in 0..2 {
        node.verify(plain.expose(), &[], None).await.unwrap();
    }
    node.usage().flush().await.unwrap();
    let today = Granularity::Day.floor(unix_ms(now()));
    for g in [Granularity::Minute, Granularity::Day] {
        let total: u64 = db
            .store
            .usage_series(
                DEFAULT_TENANT,
                a.id.as_str(),
                g,
                today - DAY_MS,
                today + DAY_MS,
            )
            .await
            .unwrap()
            .iter()
            .map(|p| p.counts.total())
            .sum();
        assert_eq!(total, 7, "{g:?}");
    }
}

on_both_backends!(
    batches_add_up_in_every_granularity,
    top_lists_rank_and_group,
    pruning_keeps_what_retention_promises,
    two_nodes_counts_add_up,
    a_failed_write_keeps_the_counts,
);
