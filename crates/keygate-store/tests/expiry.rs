//! The expiry scan against real databases, with `now` passed in: which notices reach the
//! outbox, once each, and that two PostgreSQL nodes scanning one database at once still send
//! each notice once.

mod common;

use std::sync::Arc;

use common::{on_both_backends, Db};
use keygate_core::{EventType, TokenId};
use keygate_store::expiry::{DueNotice, Notice};
use keygate_store::{now, Backend, NewEvent, SqlStore, Store, TokenRecord, Write, DEFAULT_TENANT};
use time::{Duration, OffsetDateTime};

const DAY: u64 = 86_400;
const WARNINGS: [u64; 3] = [30 * DAY, 7 * DAY, DAY];

/// The event as the test reads it back: the type, and the threshold for `token.expiring`.
fn build(due: &DueNotice) -> NewEvent {
    let (event_type, threshold) = match due.notice {
        Notice::Expiring { threshold_secs } => (EventType::TokenExpiring, threshold_secs),
        Notice::Expired => (EventType::TokenExpired, 0),
    };
    NewEvent {
        id: format!("msg_{}_{threshold}", due.token.id.as_str()),
        tenant_id: due.token.tenant_id.clone(),
        event_type,
        at: now(),
        payload: serde_json::json!({"token": due.token.id.as_str(), "threshold": threshold})
            .to_string(),
    }
}

async fn pool(db: &Db) -> sqlx::AnyPool {
    sqlx::AnyPool::connect(&db.url).await.unwrap()
}

/// An endpoint subscribed to everything, so that every event leaves an outbox row.
async fn subscribe(db: &Db) {
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, tenant_id, url, events, secret, enabled, \
         created_at, updated_at) VALUES ('wh_test', $1, 'http://127.0.0.1:9/', ',*,', \
         'whsec_test', 1, 0, 0)",
    )
    .bind(DEFAULT_TENANT)
    .execute(&pool(db).await)
    .await
    .unwrap();
}

/// `(token id, type, threshold)` of every outbox row, oldest first.
async fn sent(db: &Db) -> Vec<(String, String, u64)> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT event_type, payload FROM webhook_deliveries ORDER BY id")
            .fetch_all(&pool(db).await)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(event_type, payload)| {
            let p: serde_json::Value = serde_json::from_str(&payload).unwrap();
            (
                p["token"].as_str().unwrap().to_owned(),
                event_type,
                p["threshold"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn token(expires_at: OffsetDateTime) -> TokenRecord {
    let mut t = common::service_token();
    t.expires_at = Some(expires_at);
    t
}

async fn insert(store: &SqlStore, t: &TokenRecord) {
    store
        .apply(&[Write::InsertToken(t.clone())], &[])
        .await
        .unwrap();
}

async fn scan(store: &SqlStore, at: OffsetDateTime) -> usize {
    store
        .send_expiry_notices(at, &WARNINGS, 100, &build)
        .await
        .unwrap()
}

/// A whole second, far enough ahead that inserting the tokens does not race with it.
fn expiry() -> OffsetDateTime {
    let t = now() + Duration::days(100);
    t.replace_millisecond(0).unwrap()
}

async fn each_notice_is_sent_once_tightest_threshold_first(db: Db) {
    subscribe(&db).await;
    let exp = expiry();
    let t = token(exp);
    insert(&db.store, &t).await;
    let id = t.id.as_str().to_owned();
    let ev = |kind: &str, threshold: u64| (id.clone(), kind.to_owned(), threshold);

    // Far ahead: no notice, and the token is not due again before its 30-day threshold.
    assert_eq!(scan(&db.store, exp - Duration::days(60)).await, 1);
    assert_eq!(scan(&db.store, exp - Duration::days(31)).await, 0);
    assert!(sent(&db).await.is_empty());
    // Two days before: the 7d warning only (30d is wider and was never sent).
    scan(&db.store, exp - Duration::days(2)).await;
    scan(&db.store, exp - Duration::days(2)).await;
    assert_eq!(sent(&db).await, vec![ev("token.expiring", 7 * DAY)]);
    // Not due again before the 1d threshold.
    assert_eq!(scan(&db.store, exp - Duration::hours(25)).await, 0);
    scan(&db.store, exp - Duration::hours(20)).await;
    scan(&db.store, exp).await;
    scan(&db.store, exp + Duration::days(3)).await;
    assert_eq!(
        sent(&db).await,
        vec![
            ev("token.expiring", 7 * DAY),
            ev("token.expiring", DAY),
            ev("token.expired", 0),
        ]
    );
    // Nothing is left to send: the token is no longer in the index.
    assert_eq!(scan(&db.store, exp + Duration::days(300)).await, 0);
}

async fn disabled_and_rotated_out_tokens_get_no_notice(db: Db) {
    subscribe(&db).await;
    let exp = expiry();
    let mut disabled = token(exp);
    disabled.enabled = false;
    let mut rotated = token(exp);
    rotated.rotated_to = Some(TokenId::from_stored("kg_successor".into()));
    insert(&db.store, &disabled).await;
    insert(&db.store, &rotated).await;
    scan(&db.store, exp - Duration::days(2)).await;
    scan(&db.store, exp + Duration::days(1)).await;
    assert!(sent(&db).await.is_empty(), "{:?}", sent(&db).await);
}

async fn enabling_a_token_again_sends_only_the_notice_due_now(db: Db) {
    subscribe(&db).await;
    let exp = expiry();
    let mut t = token(exp);
    t.enabled = false;
    insert(&db.store, &t).await;
    scan(&db.store, exp - Duration::days(10)).await;
    t.enabled = true;
    t.updated_at = now();
    db.store
        .apply(&[Write::UpdateToken(t.clone())], &[])
        .await
        .unwrap();
    scan(&db.store, exp - Duration::hours(20)).await;
    assert_eq!(
        sent(&db).await,
        vec![(t.id.as_str().to_owned(), "token.expiring".into(), DAY)]
    );
}

async fn a_new_expiry_starts_the_notices_over(db: Db) {
    subscribe(&db).await;
    let exp = expiry();
    let mut t = token(exp);
    insert(&db.store, &t).await;
    scan(&db.store, exp - Duration::days(2)).await;
    let later = exp + Duration::days(50);
    t.expires_at = Some(later);
    t.updated_at = now();
    db.store
        .apply(&[Write::UpdateToken(t.clone())], &[])
        .await
        .unwrap();
    scan(&db.store, later - Duration::days(20)).await;
    let id = t.id.as_str().to_owned();
    assert_eq!(
        sent(&db).await,
        vec![
            (id.clone(), "token.expiring".into(), 7 * DAY),
            (id, "token.expiring".into(), 30 * DAY),
        ]
    );
    // Removing the expiry takes the token out of the scan.
    t.expires_at = None;
    db.store
        .apply(&[Write::UpdateToken(t.clone())], &[])
        .await
        .unwrap();
    assert_eq!(scan(&db.store, later + Duration::days(1)).await, 0);
}

on_both_backends!(
    each_notice_is_sent_once_tightest_threshold_first,
    disabled_and_rotated_out_tokens_get_no_notice,
    enabling_a_token_again_sends_only_the_notice_due_now,
    a_new_expiry_starts_the_notices_over,
);

/// Two nodes on one PostgreSQL scan the same due tokens at once, in small batches: every
/// notice reaches the outbox exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_postgres_nodes_scanning_at_once_send_each_notice_once() {
    let db = common::db(Backend::Postgres).await;
    subscribe(&db).await;
    let other = Arc::new(SqlStore::open(&db.url).await.unwrap());
    let exp = expiry();
    let tokens: Vec<TokenRecord> = (0..300).map(|_| token(exp)).collect();
    for chunk in tokens.chunks(50) {
        let writes: Vec<Write> = chunk.iter().cloned().map(Write::InsertToken).collect();
        db.store.apply(&writes, &[]).await.unwrap();
    }
    let at = exp - Duration::hours(20);
    let node = |store: Arc<SqlStore>| {
        tokio::spawn(async move {
            let mut looked_at = 0;
            loop {
                let n = store
                    .send_expiry_notices(at, &WARNINGS, 7, &build)
                    .await
                    .unwrap();
                looked_at += n;
                if n == 0 {
                    return looked_at;
                }
            }
        })
    };
    let (a, b) = (node(db.store.clone()), node(other.clone()));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!(a + b, tokens.len(), "each due token is looked at once");
    let mut ids: Vec<String> = sent(&db)
        .await
        .into_iter()
        .map(|(id, kind, threshold)| {
            assert_eq!((kind.as_str(), threshold), ("token.expiring", DAY));
            id
        })
        .collect();
    ids.sort();
    let mut expected: Vec<String> = tokens.iter().map(|t| t.id.as_str().to_owned()).collect();
    expected.sort();
    assert_eq!(ids, expected);
    other.close().await;
}
