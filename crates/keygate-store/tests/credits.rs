//! Credits against the real databases: leases taken from a token's pool in SQLite files and
//! on the machine's PostgreSQL (`KEYGATE_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`, a fresh database per test; unreachable is a
//! failure, never a skip), spent by many tasks on one node and on two nodes at once.
//!
//! The one promise checked everywhere: the credits charged add up to exactly the credits
//! granted, however many more spends are attempted.

mod common;
use common::{db, on_both_backends, Db};

use std::sync::Arc;
use std::time::Duration;

use keygate_core::usage::{Refill, RefillInterval};
use keygate_core::TokenId;
use keygate_store::cache::{CachedToken, Interner};
use keygate_store::*;
use time::OffsetDateTime;

/// A service token with these credits, stored.
async fn token(store: &SqlStore, credits: Option<CreditState>) -> TokenRecord {
    let mut rec = common::service_token();
    rec.credits = credits;
    store
        .apply(&[Write::InsertToken(rec.clone())], &[])
        .await
        .unwrap();
    rec
}

fn credits(n: u64) -> Option<CreditState> {
    Some(CreditState::new(n, None, now()))
}

/// The token as a verification finds it: read from the database into the cache's form.
async fn cached(store: &SqlStore, id: &TokenId) -> Arc<CachedToken> {
    let rec = store
        .token_by_id(DEFAULT_TENANT, id.as_str())
        .await
        .unwrap()
        .expect("the token exists");
    Arc::new(Interner::default().cached(&rec))
}

/// What the database's pool holds (`None`: unlimited).
async fn pool(store: &SqlStore, id: &TokenId) -> Option<u64> {
    store
        .token_by_id(DEFAULT_TENANT, id.as_str())
        .await
        .unwrap()
        .expect("the token exists")
        .credits
        .map(|c| c.remaining)
}

async fn change(store: &SqlStore, id: &TokenId, change: CreditChange) {
    store
        .apply(
            &[Write::ChangeCredits {
                tenant_id: DEFAULT_TENANT.into(),
                id: id.clone(),
                change,
                at: now(),
            }],
            &[],
        )
        .await
        .unwrap();
}

/// Idle returns out of the way: only `return_all` gives credits back.
fn never_idle() -> CreditConfig {
    CreditConfig {
        idle_return: Duration::from_secs(3600),
        ..CreditConfig::default()
    }
}

fn quick_idle() -> CreditConfig {
    CreditConfig {
        idle_return: Duration::from_millis(100),
        ..CreditConfig::default()
    }
}

fn charged(s: Spend) -> u64 {
    match s {
        Spend::Charged { .. } => 1,
        _ => 0,
    }
}

/// `tasks` tasks per ledger, each making `attempts` spends with the costs in turn, all at
/// once; the credits charged in all.
async fn spend_many(
    nodes: &[(CreditLedger, Arc<CachedToken>)],
    tasks: usize,
    attempts: usize,
    costs: &'static [u64],
) -> u64 {
    let mut running = Vec::new();
    for (ledger, token) in nodes {
        for t in 0..tasks {
            let (ledger, token) = (ledger.clone(), token.clone());
            running.push(tokio::spawn(async move {
                let mut spent = 0;
                for i in 0..attempts {
                    let cost = costs[(t + i) % costs.len()];
                    spent += cost * charged(ledger.spend(&token, cost, now()).await.unwrap());
                }
                spent
            }));
        }
    }
    let mut total = 0;
    for r in running {
        total += r.await.unwrap();
    }
    total
}

/// Spends one credit at a time from `tasks` tasks per ledger until each is refused; the
/// credits charged in all.
async fn drain(
    nodes: &[(CreditLedger, Arc<CachedToken>)],
    tasks: usize,
    at: OffsetDateTime,
) -> u64 {
    let mut running = Vec::new();
    for (ledger, token) in nodes {
        for _ in 0..tasks {
            let (ledger, token) = (ledger.clone(), token.clone());
            running.push(tokio::spawn(async move {
                let mut spent = 0;
                while let Spend::Charged { .. } = ledger.spend(&token, 1, at).await.unwrap() {
                    spent += 1;
                }
                spent
            }));
        }
    }
    let mut total = 0;
    for r in running {
        total += r.await.unwrap();
    }
    total
}

/// Bounds a wait for the idle returns: a lease never given back is what this looks for.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen within 5 s");
}

/// Spends far more than granted on these nodes, from many tasks at once, lets the idle returns
/// bring back what was stranded, drains the rest: exactly `granted` is charged in all, and
/// nothing is left anywhere.
///
/// The first round's costs are multiples of 3 and `granted` is not, so it always ends with
/// credits no spender could use: the pool was emptied, and they come back only through a
/// return.
async fn exactly_the_granted_credits_are_charged(
    store: &SqlStore,
    nodes: &[(CreditLedger, Arc<CachedToken>)],
    id: &TokenId,
    granted: u64,
) {
    assert_ne!(granted % 3, 0);
    let attempts = 4 * granted as usize / (8 * nodes.len());
    let mut total = spend_many(nodes, 8, attempts, &[3, 6]).await;
    assert!(total <= granted, "charged {total} of {granted} granted");
    let mut rounds = 0;
    loop {
        until("the idle return of every lease", || {
            nodes
                .iter()
                .all(|(l, _)| l.unspent(id) == 0 && l.returning() == 0)
        })
        .await;
        let drained = drain(nodes, 4, now()).await;
        total += drained;
        assert!(total <= granted, "charged {total} of {granted} granted");
        let held: u64 = nodes
            .iter()
            .map(|(l, _)| l.unspent(id) + l.returning())
            .sum();
        if drained == 0 && held == 0 && pool(store, id).await == Some(0) {
            break;
        }
        rounds += 1;
        assert!(
            rounds < 10,
            "credits keep coming back: {total} charged so far"
        );
    }
    assert_eq!(total, granted);
    assert_eq!(pool(store, id).await, Some(0));
    let returns: u64 = nodes.iter().map(|(l, _)| l.returns()).sum();
    assert!(
        returns > 0,
        "the stranded credits came back without a return"
    );
}

async fn many_spenders_on_one_node_charge_exactly_what_was_granted(d: Db) {
    const GRANTED: u64 = 400;
    let rec = token(&d.store, credits(GRANTED)).await;
    let ledger = CreditLedger::start(d.store.clone(), quick_idle());
    let nodes = [(ledger, cached(&d.store, &rec.id).await)];
    exactly_the_granted_credits_are_charged(&d.store, &nodes, &rec.id, GRANTED).await;
}

/// Two nodes: two stores with their own connections and their own ledgers on one PostgreSQL
/// database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_together_charge_exactly_what_was_granted() {
    const GRANTED: u64 = 601;
    let d = db(Backend::Postgres).await;
    let other = Arc::new(SqlStore::open(&d.url).await.unwrap());
    let rec = token(&d.store, credits(GRANTED)).await;
    let a = CreditLedger::start(d.store.clone(), quick_idle());
    let b = CreditLedger::start(other.clone(), quick_idle());
    let nodes = [
        (a.clone(), cached(&d.store, &rec.id).await),
        (b.clone(), cached(&other, &rec.id).await),
    ];
    exactly_the_granted_credits_are_charged(&d.store, &nodes, &rec.id, GRANTED).await;
    assert!(a.leases() > 1 && b.leases() > 1, "both nodes leased");
}

async fn a_refill_that_is_due_gives_the_amount_back(d: Db) {
    let day1 = OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
    let day2 = day1 + time::Duration::days(1);
    let refill = Refill {
        interval: RefillInterval::Daily,
        amount: 50,
        refill_day: None,
    };
    let rec = token(&d.store, Some(CreditState::new(10, Some(refill), day1))).await;
    let ledger = CreditLedger::start(d.store.clone(), never_idle());
    let nodes = [(ledger.clone(), cached(&d.store, &rec.id).await)];
    assert_eq!(drain(&nodes, 4, day1).await, 10);
    assert_eq!(
        ledger.spend(&nodes[0].1, 1, day1).await.unwrap(),
        Spend::Exhausted { remaining: 0 }
    );

    // The next day the same cached token spends again: the refill replaced the pool.
    assert_eq!(
        ledger.spend(&nodes[0].1, 1, day2).await.unwrap(),
        Spend::Charged { remaining: 49 }
    );
    assert_eq!(1 + drain(&nodes, 4, day2).await, 50);
    ledger.return_all().await;
    assert_eq!(pool(&d.store, &rec.id).await, Some(0));

    // A lease of the day before is void: the database does not take it back.
    let day3 = day2 + time::Duration::days(1);
    let old = d
        .store
        .lease_credits(&rec.id, 5, day3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((old.granted, old.pool_after), (5, 45));
    let day4 = day3 + time::Duration::days(1);
    let new = d
        .store
        .lease_credits(&rec.id, 0, day4)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new.pool_after, 50);
    assert!(new.period_ms > old.period_ms);
    d.store
        .return_credits(&rec.id, old.granted, old.version, old.period_ms)
        .await
        .unwrap();
    assert_eq!(pool(&d.store, &rec.id).await, Some(50));
}

async fn setting_the_credits_voids_the_leases(d: Db) {
    let rec = token(&d.store, credits(100)).await;
    let ledger = CreditLedger::start(d.store.clone(), never_idle());
    let before = cached(&d.store, &rec.id).await;
    assert!(matches!(
        ledger.spend(&before, 1, now()).await.unwrap(),
        Spend::Charged { .. }
    ));
    let held = ledger.unspent(&rec.id);
    assert!(held > 0);
    let stale_version = before.credits.unwrap().version;

    change(&d.store, &rec.id, CreditChange::Set(Some((20, None)))).await;
    let after = cached(&d.store, &rec.id).await;
    assert_eq!(
        ledger.spend(&after, 1, now()).await.unwrap(),
        Spend::Charged { remaining: 19 }
    );
    let nodes = [(ledger.clone(), after)];
    assert_eq!(drain(&nodes, 4, now()).await, 19);

    // The old lease is forgotten, and the database would refuse it anyway.
    ledger.return_all().await;
    d.store
        .return_credits(&rec.id, held, stale_version, 0)
        .await
        .unwrap();
    assert_eq!(pool(&d.store, &rec.id).await, Some(0));
}

async fn an_increment_keeps_the_leases(d: Db) {
    let rec = token(&d.store, credits(100)).await;
    let ledger = CreditLedger::start(d.store.clone(), never_idle());
    let t = cached(&d.store, &rec.id).await;
    ledger.spend(&t, 1, now()).await.unwrap();
    let held = ledger.unspent(&rec.id);
    change(&d.store, &rec.id, CreditChange::Increment(10)).await;
    let t = cached(&d.store, &rec.id).await;
    ledger.spend(&t, 1, now()).await.unwrap();
    assert_eq!(ledger.unspent(&rec.id), held - 1, "the lease survived");
    ledger.return_all().await;
    assert_eq!(pool(&d.store, &rec.id).await, Some(108));
}

async fn shutdown_returns_what_is_unspent(d: Db) {
    let rec = token(&d.store, credits(100)).await;
    let ledger = CreditLedger::start(d.store.clone(), never_idle());
    let t = cached(&d.store, &rec.id).await;
    ledger.spend(&t, 3, now()).await.unwrap();
    assert!(ledger.unspent(&rec.id) > 0);
    assert!(pool(&d.store, &rec.id).await < Some(97));
    ledger.return_all().await;
    assert_eq!(ledger.unspent(&rec.id), 0);
    assert_eq!(pool(&d.store, &rec.id).await, Some(97));
    assert_eq!(ledger.returns(), 1);
}

async fn a_quiet_node_gives_its_lease_back(d: Db) {
    let rec = token(&d.store, credits(100)).await;
    let ledger = CreditLedger::start(d.store.clone(), quick_idle());
    let t = cached(&d.store, &rec.id).await;
    ledger.spend(&t, 1, now()).await.unwrap();
    assert!(ledger.unspent(&rec.id) > 0);
    for i in 0.. {
        if pool(&d.store, &rec.id).await == Some(99) {
            break;
        }
        assert!(i < 500, "the lease was not given back within 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ledger.unspent(&rec.id), 0);
    assert_eq!(ledger.returns(), 1);
}

async fn a_short_lease_is_kept_for_smaller_costs(d: Db) {
    let rec = token(&d.store, credits(3)).await;
    let ledger = CreditLedger::start(d.store.clone(), never_idle());
    let t = cached(&d.store, &rec.id).await;
    assert_eq!(
        ledger.spend(&t, 5, now()).await.unwrap(),
        Spend::Exhausted { remaining: 3 }
    );
    assert_eq!(ledger.unspent(&rec.id), 3);
    for left in [2, 1, 0] {
        assert_eq!(
            ledger.spend(&t, 1, now()).await.unwrap(),
            Spend::Charged { remaining: left }
        );
    }
    assert_eq!(
        ledger.spend(&t, 1, now()).await.unwrap(),
        Spend::Exhausted { remaining: 0 }
    );
}

async fn a_cost_of_zero_always_passes_and_charges_nothing(d: Db) {
    let rec = token(&d.store, credits(1)).await;
    let ledger = CreditLedger::start(d.store.clone(), never_idle());
    let t = cached(&d.store, &rec.id).await;
    assert_eq!(
        ledger.spend(&t, 0, now()).await.unwrap(),
        Spend::Charged { remaining: 1 }
    );
    assert_eq!(pool(&d.store, &rec.id).await, Some(1));
    ledger.spend(&t, 1, now()).await.unwrap();
    assert_eq!(
        ledger.spend(&t, 0, now()).await.unwrap(),
        Spend::Charged { remaining: 0 }
    );
    assert_eq!(
        ledger.spend(&t, 1, now()).await.unwrap(),
        Spend::Exhausted { remaining: 0 }
    );
}

async fn unlimited_and_missing_tokens_lease_nothing(d: Db) {
    let unlimited = token(&d.store, None).await;
    assert_eq!(
        d.store
            .lease_credits(&unlimited.id, 5, now())
            .await
            .unwrap(),
        None
    );
    let missing = TokenId::from_stored("kg_nosuchtoken00000".into());
    assert_eq!(
        d.store.lease_credits(&missing, 5, now()).await.unwrap(),
        None
    );

    let ledger = CreditLedger::start(d.store.clone(), never_idle());
    let t = cached(&d.store, &unlimited.id).await;
    assert_eq!(ledger.spend(&t, 5, now()).await.unwrap(), Spend::Unlimited);

    // The cache still says limited, the database has made the token unlimited since.
    let rec = token(&d.store, credits(1)).await;
    let stale = cached(&d.store, &rec.id).await;
    change(&d.store, &rec.id, CreditChange::Set(None)).await;
    assert_eq!(
        ledger.spend(&stale, 5, now()).await.unwrap(),
        Spend::Unlimited
    );
    assert_eq!(ledger.leases(), 0, "no credits were taken");
}

/// Verifications in steady state cost about one lease per `lease_max` credits: this is the
/// count the lead reports as writes per 1 000 verifications.
async fn a_busy_token_costs_one_lease_per_lease_max_credits(d: Db) {
    let rec = token(&d.store, credits(1_000_000)).await;
    let ledger = CreditLedger::start(d.store.clone(), never_idle());
    let t = cached(&d.store, &rec.id).await;
    for _ in 0..1000 {
        assert!(matches!(
            ledger.spend(&t, 1, now()).await.unwrap(),
            Spend::Charged { .. }
        ));
    }
    // A first lease of lease_max / 8, then full ones; the next may have been taken ahead.
    let full = 1000 / CreditConfig::default().lease_max;
    let leases = ledger.leases();
    assert!(
        (1 + full..=2 + full).contains(&leases),
        "{leases} leases for 1000 verifications"
    );
    ledger.return_all().await;
    assert_eq!(pool(&d.store, &rec.id).await, Some(1_000_000 - 1000));
}

/// A credits change must wait for a lease that holds the row, and count from what the lease
/// left: if it counted from the pool it read before, the lease's credits would be in the pool
/// again, spendable twice. The lease here is a transaction held open by hand, so the order of
/// events is fixed and no timing decides the outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decrement_waits_for_a_lease_in_flight() {
    use sqlx::Connection;
    let d = db(Backend::Postgres).await;
    let rec = token(&d.store, credits(100)).await;
    let mut lessee = sqlx::PgConnection::connect(&d.url).await.unwrap();
    let mut lease = lessee.begin().await.unwrap();
    sqlx::query("SELECT credits_remaining FROM tokens WHERE id = $1 FOR UPDATE")
        .bind(rec.id.as_str())
        .execute(&mut *lease)
        .await
        .unwrap();

    let store = d.store.clone();
    let id = rec.id.clone();
    let decrement =
        tokio::spawn(async move { change(&store, &id, CreditChange::Decrement(10)).await });
    // Until the decrement waits for the row: then it has read all it reads before writing.
    let mut watcher = sqlx::PgConnection::connect(&d.url).await.unwrap();
    for i in 0.. {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut watcher)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(i < 500, "the decrement never waited for the row");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sqlx::query("UPDATE tokens SET credits_remaining = credits_remaining - 50 WHERE id = $1")
        .bind(rec.id.as_str())
        .execute(&mut *lease)
        .await
        .unwrap();
    lease.commit().await.unwrap();
    decrement.await.unwrap();
    assert_eq!(pool(&d.store, &rec.id).await, Some(40));
}

on_both_backends!(
    many_spenders_on_one_node_charge_exactly_what_was_granted,
    a_refill_that_is_due_gives_the_amount_back,
    setting_the_credits_voids_the_leases,
    an_increment_keeps_the_leases,
    shutdown_returns_what_is_unspent,
    a_quiet_node_gives_its_lease_back,
    a_short_lease_is_kept_for_smaller_costs,
    a_cost_of_zero_always_passes_and_charges_nothing,
    unlimited_and_missing_tokens_lease_nothing,
    a_busy_token_costs_one_lease_per_lease_max_credits,
);
