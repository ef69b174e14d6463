//! What bulk revoke asks of the store, on both backends: the listing's `ids` and
//! `created_before` filters, alone and with the others, for as many ids as one request may
//! name; and a batch of many token deletions with their audit entries that commits whole or
//! not at all.

mod common;

use common::{on_both_backends, Db};
use keygate_core::ScopeSet;
use keygate_store::{
    now, AuditFilter, Backend, ChangeRead, NewAudit, ReplicatedChange, SqlStore, Store, StoreError,
    TokenFilter, TokenRecord, Write, DEFAULT_TENANT,
};
use time::{Duration, OffsetDateTime};

/// A token created at `created_at`, with this owner, external id and scopes: not stored yet.
fn token(
    created_at: OffsetDateTime,
    owner: &str,
    external: Option<&str>,
    scopes: &[&str],
) -> TokenRecord {
    let mut t = common::service_token();
    t.created_at = created_at;
    t.updated_at = created_at;
    t.owner_id = owner.into();
    t.external_id = external.map(Into::into);
    t.scopes = ScopeSet::parse(scopes.iter().copied()).unwrap();
    t
}

async fn insert(store: &SqlStore, tokens: &[&TokenRecord]) {
    let writes: Vec<Write> = tokens
        .iter()
        .map(|t| Write::InsertToken((*t).clone()))
        .collect();
    store.apply(&writes, &[]).await.unwrap();
}

/// The ids the listing answers, sorted.
async fn listed(store: &SqlStore, filter: TokenFilter) -> Vec<String> {
    let page = store
        .list_tokens(
            DEFAULT_TENANT,
            &TokenFilter {
                limit: 10_000,
                ..filter
            },
        )
        .await
        .unwrap();
    let mut ids: Vec<String> = page.items.iter().map(|t| t.id.to_string()).collect();
    ids.sort();
    ids
}

fn ids_of(tokens: &[&TokenRecord]) -> Vec<String> {
    let mut ids: Vec<String> = tokens.iter().map(|t| t.id.to_string()).collect();
    ids.sort();
    ids
}

fn revoke_entry(t: &TokenRecord) -> NewAudit {
    NewAudit {
        tenant_id: DEFAULT_TENANT.into(),
        at: now(),
        actor: "kg_test".into(),
        action: "token.delete".into(),
        target_id: Some(t.id.to_string()),
        ip: None,
        details: Some(serde_json::json!({ "name": t.name, "reason": "bulk" })),
    }
}

fn delete(t: &TokenRecord) -> Write {
    Write::DeleteToken {
        tenant_id: t.tenant_id.clone(),
        id: t.id.clone(),
    }
}

/// The targets of every `token.delete` entry, newest first.
async fn audited(store: &SqlStore) -> Vec<String> {
    let mut targets = Vec::new();
    let mut filter = AuditFilter {
        action: Some("token.delete".into()),
        limit: 1000,
        ..AuditFilter::default()
    };
    loop {
        let page = store.list_audit(DEFAULT_TENANT, &filter).await.unwrap();
        targets.extend(page.items.into_iter().filter_map(|e| e.target_id));
        match page.next {
            Some(n) => filter.before_seq = Some(n),
            None => return targets,
        }
    }
}

async fn ids_and_created_before_filter_alone_and_with_the_others(db: Db) {
    let base = now() - Duration::days(10);
    let old_alice = token(base, "alice", Some("cust-1"), &["tokens:read"]);
    let old_bob = token(
        base + Duration::days(1),
        "bob",
        Some("cust-1"),
        &["metrics:read"],
    );
    let new_alice = token(base + Duration::days(5), "alice", None, &["metrics:read"]);
    insert(&db.store, &[&old_alice, &old_bob, &new_alice]).await;
    let ids = |ts: &[&TokenRecord]| Some(ts.iter().map(|t| t.id.to_string()).collect());

    // Ids alone: an unknown id matches nothing, an empty list matches nothing.
    let mut asked: Vec<String> = ids(&[&old_alice, &new_alice]).unwrap();
    asked.push("kg_doesnotexist0000".into());
    let f = TokenFilter {
        ids: Some(asked),
        ..TokenFilter::default()
    };
    assert_eq!(
        listed(&db.store, f).await,
        ids_of(&[&old_alice, &new_alice])
    );
    let f = TokenFilter {
        ids: Some(Vec::new()),
        ..TokenFilter::default()
    };
    assert_eq!(listed(&db.store, f).await, Vec::<String>::new());

    // createdBefore is strict, and a bound between two milliseconds still counts the earlier.
    let cutoff = base + Duration::days(1);
    let f = TokenFilter {
        created_before: Some(cutoff),
        ..TokenFilter::default()
    };
    assert_eq!(listed(&db.store, f).await, ids_of(&[&old_alice]));
    let f = TokenFilter {
        created_before: Some(cutoff + Duration::microseconds(300)),
        ..TokenFilter::default()
    };
    assert_eq!(listed(&db.store, f).await, ids_of(&[&old_alice, &old_bob]));

    // Combined with AND.
    let f = TokenFilter {
        ids: ids(&[&old_alice, &old_bob, &new_alice]),
        owner_id: Some("alice".into()),
        created_before: Some(base + Duration::days(2)),
        ..TokenFilter::default()
    };
    assert_eq!(listed(&db.store, f).await, ids_of(&[&old_alice]));
    let f = TokenFilter {
        external_id: Some("cust-1".into()),
        scope: Some("metrics:read".into()),
        created_before: Some(now()),
        ..TokenFilter::default()
    };
    assert_eq!(listed(&db.store, f).await, ids_of(&[&old_bob]));
}

/// One request may name 10 000 ids: each is a bound parameter of one statement, within what
/// both databases accept.
async fn ten_thousand_ids_fit_in_one_listing(db: Db) {
    let t = token(now(), DEFAULT_TENANT, None, &["tokens:read"]);
    insert(&db.store, &[&t]).await;
    let mut asked: Vec<String> = (0..9_999).map(|i| format!("kg_missing{i:09}")).collect();
    asked.push(t.id.to_string());
    let f = TokenFilter {
        ids: Some(asked),
        ..TokenFilter::default()
    };
    assert_eq!(listed(&db.store, f).await, ids_of(&[&t]));
}

/// The deletions of a bulk revoke (`DeleteTokens`, in chunks of a few hundred) and their audit
/// entries are one batch: when one token is gone by the time it runs, even in the last chunk,
/// nothing is deleted and nothing audited; otherwise all of it is, the entries in order.
async fn a_batch_of_deletions_commits_whole_or_not_at_all(db: Db) {
    const N: usize = 1_201;
    let tokens: Vec<TokenRecord> = (0..N)
        .map(|i| {
            token(
                now() - Duration::minutes(i as i64),
                DEFAULT_TENANT,
                None,
                &["tokens:read"],
            )
        })
        .collect();
    let refs: Vec<&TokenRecord> = tokens.iter().collect();
    insert(&db.store, &refs).await;
    let gone = token(now(), DEFAULT_TENANT, None, &["tokens:read"]);
    let delete_all = |extra: Option<&TokenRecord>| Write::DeleteTokens {
        tenant_id: DEFAULT_TENANT.into(),
        ids: tokens.iter().chain(extra).map(|t| t.id.clone()).collect(),
    };

    let mut entries: Vec<NewAudit> = tokens.iter().map(revoke_entry).collect();
    entries.push(revoke_entry(&gone));
    let err = db
        .store
        .apply(&[delete_all(Some(&gone))], &entries)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert_eq!(
        listed(&db.store, TokenFilter::default()).await,
        ids_of(&refs)
    );
    assert!(audited(&db.store).await.is_empty());

    // The single-token write keeps its rule too.
    let err = db
        .store
        .apply(&[delete(&gone)], &[revoke_entry(&gone)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");

    let entries: Vec<NewAudit> = tokens.iter().map(revoke_entry).collect();
    db.store.apply(&[delete_all(None)], &entries).await.unwrap();
    assert_eq!(
        listed(&db.store, TokenFilter::default()).await,
        Vec::<String>::new()
    );
    // Newest first, so the reverse of the order they were written in.
    let mut written: Vec<String> = tokens.iter().map(|t| t.id.to_string()).collect();
    written.reverse();
    let audited = audited(&db.store).await;
    assert_eq!(audited.len(), N);
    assert!(
        audited == written,
        "the entries are in the order they were written"
    );
    for t in &tokens {
        assert!(db.store.token_by_hash(&t.hash).await.unwrap().is_none());
    }
    // The replicas' change stream names every deleted token.
    let log_id = db.store.replication_head().await.unwrap().log_id;
    let mut deleted = std::collections::HashSet::new();
    let mut after = 0;
    loop {
        match db
            .store
            .replication_changes(DEFAULT_TENANT, &log_id, after, 1000)
            .await
            .unwrap()
        {
            ChangeRead::Changes {
                through,
                changes,
                more,
                ..
            } => {
                deleted.extend(changes.into_iter().filter_map(|c| match c {
                    ReplicatedChange::Delete(h) => Some(h),
                    ReplicatedChange::Upsert(_) => None,
                }));
                after = through;
                if !more {
                    break;
                }
            }
            ChangeRead::TooOld => panic!("cursor {after} refused"),
        }
    }
    assert!(
        tokens.iter().all(|t| deleted.contains(&t.hash)),
        "every deletion in the change stream"
    );
}

on_both_backends!(
    ids_and_created_before_filter_alone_and_with_the_others,
    ten_thousand_ids_fit_in_one_listing,
    a_batch_of_deletions_commits_whole_or_not_at_all,
);
