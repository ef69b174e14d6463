//! The replicas' change stream against the real databases (SQLite files, and a fresh database
//! per test on the machine's PostgreSQL, `KEYGATE_TEST_DATABASE_URL`; unreachable is a failure,
//! never a skip): changes come in commit order with each token's current state, a tenant sees
//! only its own, a snapshot pages through every token, a pruned or foreign cursor is refused,
//! and two nodes writing at once while a reader follows never make it miss a change.

mod common;
use common::{on_both_backends, Db};

use std::collections::HashSet;
use std::sync::Arc;

use keygate_core::{PlainToken, ScopeSet, TokenHash, TokenPrefix};
use keygate_store::*;

fn minted(tenant: &str, name: &str) -> TokenRecord {
    let (id, plain) = PlainToken::mint(&TokenPrefix::default());
    TokenRecord::minted(
        id,
        tenant.into(),
        plain.hash(),
        name.into(),
        tenant.into(),
        ScopeSet::parse(["metrics:read"]).unwrap(),
        now(),
    )
}

async fn insert(store: &dyn Store, t: &TokenRecord) {
    store
        .apply(&[Write::InsertToken(t.clone())], &[])
        .await
        .unwrap();
}

async fn changes_after(
    store: &dyn Store,
    tenant: &str,
    after: i64,
    limit: u32,
) -> (i64, Vec<ReplicatedChange>, bool) {
    let log = store.replication_head().await.unwrap().log_id;
    match store
        .replication_changes(tenant, &log, after, limit)
        .await
        .unwrap()
    {
        ChangeRead::Changes {
            through,
            changes,
            more,
            ..
        } => (through, changes, more),
        ChangeRead::TooOld => panic!("cursor {after} refused"),
    }
}

/// `+name` for an upsert, `-hash` for a delete: what a change stream says, in a form to compare.
fn summary(changes: &[ReplicatedChange], names: &[(&TokenRecord, &str)]) -> Vec<String> {
    let name_of = |h: &TokenHash| {
        names
            .iter()
            .find(|(t, _)| t.hash == *h)
            .map(|(_, n)| n.to_string())
            .unwrap_or_else(|| "?".into())
    };
    changes
        .iter()
        .map(|c| match c {
            ReplicatedChange::Upsert(t) => format!("+{}:{}", name_of(&t.hash), t.enabled),
            ReplicatedChange::Delete(h) => format!("-{}", name_of(h)),
        })
        .collect()
}

async fn changes_come_in_commit_order_with_the_current_state(db: Db) {
    let store: &dyn Store = db.store.as_ref();
    store
        .apply(
            &[Write::InsertTenant {
                id: "other".into(),
                created_at: now(),
            }],
            &[],
        )
        .await
        .unwrap();
    let start = store.replication_head().await.unwrap().seq;
    let a = minted(DEFAULT_TENANT, "a");
    let b = minted(DEFAULT_TENANT, "b");
    let theirs = minted("other", "theirs");
    insert(store, &a).await;
    insert(store, &b).await;
    insert(store, &theirs).await;
    let mut disabled = a.clone();
    disabled.enabled = false;
    store
        .apply(&[Write::UpdateToken(disabled)], &[])
        .await
        .unwrap();
    store
        .apply(
            &[Write::DeleteToken {
                tenant_id: DEFAULT_TENANT.into(),
                id: b.id.clone(),
            }],
            &[],
        )
        .await
        .unwrap();
    let head = store.replication_head().await.unwrap();
    assert_eq!(head.seq, start + 5, "one number per changed token, no gaps");
    let names = [(&a, "a"), (&b, "b"), (&theirs, "theirs")];
    let (through, changes, more) = changes_after(store, DEFAULT_TENANT, start, 100).await;
    assert_eq!(summary(&changes, &names), ["+a:false", "-b"]);
    assert_eq!((through, more), (head.seq, false));
    let (_, changes, _) = changes_after(store, "other", start, 100).await;
    assert_eq!(summary(&changes, &names), ["+theirs:true"]);
    // Nothing after the head; a page of one row says there is more.
    let (through, changes, more) = changes_after(store, DEFAULT_TENANT, head.seq, 100).await;
    assert!(changes.is_empty() && !more && through == head.seq);
    let (through, changes, more) = changes_after(store, DEFAULT_TENANT, start, 1).await;
    assert_eq!(summary(&changes, &names), ["+a:false"]);
    assert!(more);
    assert_eq!(through, start + 1);
}

async fn a_failed_batch_takes_no_number(db: Db) {
    let store: &dyn Store = db.store.as_ref();
    let before = store.replication_head().await.unwrap().seq;
    let t = minted(DEFAULT_TENANT, "over the limit");
    let refused = store
        .apply(
            &[
                Write::InsertToken(t.clone()),
                Write::EnforceOwnerLimit {
                    tenant_id: DEFAULT_TENANT.into(),
                    owner_id: DEFAULT_TENANT.into(),
                    max: 0,
                },
            ],
            &[],
        )
        .await;
    assert!(matches!(refused, Err(StoreError::LimitReached(_))));
    assert_eq!(store.replication_head().await.unwrap().seq, before);
    insert(store, &minted(DEFAULT_TENANT, "next")).await;
    assert_eq!(store.replication_head().await.unwrap().seq, before + 1);
}

async fn a_snapshot_pages_through_every_token_of_the_tenant(db: Db) {
    let store: &dyn Store = db.store.as_ref();
    let mut made = HashSet::new();
    for i in 0..25 {
        let t = minted(DEFAULT_TENANT, &format!("t{i}"));
        made.insert(t.hash);
        insert(store, &t).await;
    }
    // Reading the head numbers what has committed (PostgreSQL); a snapshot starts from it.
    let head = store.replication_head().await.unwrap();
    let first = store
        .replication_snapshot(DEFAULT_TENANT, None, 10)
        .await
        .unwrap();
    assert_eq!(first.head, head);
    let mut seen: Vec<TokenHash> = first.tokens.iter().map(|t| t.hash).collect();
    let mut next = first.next;
    let mut pages = 1;
    while let Some(after) = next {
        let p = store
            .replication_snapshot(DEFAULT_TENANT, Some(after), 10)
            .await
            .unwrap();
        seen.extend(p.tokens.iter().map(|t| t.hash));
        next = p.next;
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 25, "no token twice");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), made);
}

async fn a_pruned_or_foreign_cursor_is_refused(db: Db) {
    let store: &dyn Store = db.store.as_ref();
    let start = store.replication_head().await.unwrap();
    insert(store, &minted(DEFAULT_TENANT, "a")).await;
    insert(store, &minted(DEFAULT_TENANT, "b")).await;
    let refused = |log: String, after: i64| async move {
        matches!(
            store
                .replication_changes(DEFAULT_TENANT, &log, after, 10)
                .await
                .unwrap(),
            ChangeRead::TooOld
        )
    };
    assert!(
        refused("0123456789ab".into(), start.seq).await,
        "another database's cursor"
    );
    assert!(
        refused(start.log_id.clone(), start.seq + 3).await,
        "a cursor past the head"
    );
    assert!(!refused(start.log_id.clone(), start.seq).await);
    // Everything written before now is pruned.
    store.prune_replication(unix_ms(now()) + 1).await.unwrap();
    let head = store.replication_head().await.unwrap();
    assert_eq!(head.pruned_through, start.seq + 2);
    assert!(refused(start.log_id.clone(), start.seq).await, "pruned");
    assert!(refused(start.log_id.clone(), start.seq + 1).await, "pruned");
    let (through, changes, _) = changes_after(store, DEFAULT_TENANT, head.seq, 10).await;
    assert!(changes.is_empty());
    assert_eq!(through, head.seq, "the head itself can be continued");
}

on_both_backends!(
    changes_come_in_commit_order_with_the_current_state,
    a_failed_batch_takes_no_number,
    a_snapshot_pages_through_every_token_of_the_tenant,
    a_pruned_or_foreign_cursor_is_refused,
);

/// Two nodes on one PostgreSQL write at once while a reader follows the stream with its
/// cursor: the reader ends with every token, each exactly once, though the nodes' transactions
/// interleave and their rows are numbered after they commit. With numbers taken inside the
/// writing transactions from a sequence, one that took a lower number but committed later would
/// be skipped by a reader already past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_writing_at_once_never_make_a_reader_miss_a_change() {
    let db = common::db(Backend::Postgres).await;
    let other: Arc<dyn Store> = Arc::new(SqlStore::open(&db.url).await.unwrap());
    let nodes: [Arc<dyn Store>; 2] = [db.store.clone(), other];
    let start = nodes[0].replication_head().await.unwrap().seq;
    const PER_NODE: usize = 60;
    let writers: Vec<_> = nodes
        .iter()
        .enumerate()
        .flat_map(|(n, node)| {
            (0..4).map(move |w| {
                let node = node.clone();
                tokio::spawn(async move {
                    let mut hashes = Vec::new();
                    for i in 0..PER_NODE / 4 {
                        let t = minted(DEFAULT_TENANT, &format!("n{n}w{w}i{i}"));
                        hashes.push(t.hash);
                        insert(node.as_ref(), &t).await;
                    }
                    hashes
                })
            })
        })
        .collect();
    let reader = nodes[1].clone();
    let follow = tokio::spawn(async move {
        let mut cursor = start;
        let mut seen = Vec::new();
        while seen.len() < 2 * PER_NODE {
            let (through, changes, _) =
                changes_after(reader.as_ref(), DEFAULT_TENANT, cursor, 7).await;
            for c in changes {
                match c {
                    ReplicatedChange::Upsert(t) => seen.push(t.hash),
                    ReplicatedChange::Delete(h) => panic!("{h:?} deleted"),
                }
            }
            cursor = through;
            tokio::task::yield_now().await;
        }
        seen
    });
    let mut written = HashSet::new();
    for w in writers {
        written.extend(w.await.unwrap());
    }
    let seen = tokio::time::timeout(std::time::Duration::from_secs(60), follow)
        .await
        .expect("the reader saw every change within a minute")
        .unwrap();
    assert_eq!(seen.len(), 2 * PER_NODE, "no change twice");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), written);
}
