//! The store and the hot path, one suite run against both backends: a real SQLite file and a
//! fresh database on the machine's PostgreSQL (`KEYGATE_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`; unreachable is a failure, never a skip).
//! `Counting` wraps the real store and counts the lookups it serves.

mod common;
use common::TestDb;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use keygate_core::{PlainToken, ScopeSet, TokenHash, TokenPrefix};
use keygate_store::usage::{Granularity, TopQuery, TopUsage, UsageDelta, UsagePoint};
use keygate_store::*;

struct Counting {
    inner: SqlStore,
    by_hash: AtomicUsize,
    last_use_batches: AtomicUsize,
}

#[async_trait]
impl Store for Counting {
    async fn bootstrap(&self, b: &Bootstrap) -> store::Result<bool> {
        self.inner.bootstrap(b).await
    }
    async fn token_by_hash(&self, hash: &TokenHash) -> store::Result<Option<TokenRecord>> {
        self.by_hash.fetch_add(1, Ordering::SeqCst);
        self.inner.token_by_hash(hash).await
    }
    async fn token_by_id(&self, t: &str, id: &str) -> store::Result<Option<TokenRecord>> {
        self.inner.token_by_id(t, id).await
    }
    async fn token_by_chosen_id(&self, t: &str, e: &str) -> store::Result<Option<TokenRecord>> {
        self.inner.token_by_chosen_id(t, e).await
    }
    async fn list_tokens(&self, t: &str, f: &TokenFilter) -> store::Result<Page<TokenRecord>> {
        self.inner.list_tokens(t, f).await
    }
    async fn tenant_policy(&self, t: &str) -> store::Result<keygate_core::TenantPolicy> {
        self.inner.tenant_policy(t).await
    }
    async fn count_policy_violations(
        &self,
        t: &str,
        now: time::OffsetDateTime,
    ) -> store::Result<u64> {
        self.inner.count_policy_violations(t, now).await
    }
    async fn apply(&self, w: &[Write], a: &[NewAudit]) -> store::Result<()> {
        self.inner.apply(w, a).await
    }
    async fn record_last_use(&self, batch: &[LastUse]) -> store::Result<()> {
        self.last_use_batches.fetch_add(1, Ordering::SeqCst);
        self.inner.record_last_use(batch).await
    }
    async fn tenant_exists(&self, t: &str) -> store::Result<bool> {
        self.inner.tenant_exists(t).await
    }
    async fn user_by_id(&self, t: &str, id: &str) -> store::Result<Option<UserRecord>> {
        self.inner.user_by_id(t, id).await
    }
    async fn user_by_name(&self, t: &str, name: &str) -> store::Result<Option<UserRecord>> {
        self.inner.user_by_name(t, name).await
    }
    async fn list_users(&self, t: &str, after: Option<&str>, n: u32) -> store::Result<UserPage> {
        self.inner.list_users(t, after, n).await
    }
    async fn session_by_hash(
        &self,
        h: &TokenHash,
        now: time::OffsetDateTime,
    ) -> store::Result<Option<(SessionRecord, UserRecord)>> {
        self.inner.session_by_hash(h, now).await
    }
    async fn owner_exists(&self, t: &str, o: &str) -> store::Result<bool> {
        self.inner.owner_exists(t, o).await
    }
    async fn list_audit(&self, t: &str, f: &AuditFilter) -> store::Result<Page<AuditEntry>> {
        self.inner.list_audit(t, f).await
    }
    async fn lease_credits(
        &self,
        id: &keygate_core::TokenId,
        want: u64,
        at: time::OffsetDateTime,
    ) -> store::Result<Option<Lease>> {
        self.inner.lease_credits(id, want, at).await
    }
    async fn return_credits(
        &self,
        id: &keygate_core::TokenId,
        amount: u64,
        version: i64,
        period_ms: i64,
    ) -> store::Result<()> {
        self.inner
            .return_credits(id, amount, version, period_ms)
            .await
    }
    async fn record_usage(&self, batch: &[UsageDelta]) -> store::Result<()> {
        self.inner.record_usage(batch).await
    }
    async fn usage_series(
        &self,
        t: &str,
        id: &str,
        g: Granularity,
        from: i64,
        to: i64,
    ) -> store::Result<Vec<UsagePoint>> {
        self.inner.usage_series(t, id, g, from, to).await
    }
    async fn usage_top(&self, t: &str, q: &TopQuery) -> store::Result<TopUsage> {
        self.inner.usage_top(t, q).await
    }
    async fn prune_usage(&self, m: i64, d: i64) -> store::Result<()> {
        self.inner.prune_usage(m, d).await
    }
    async fn ping(&self) -> store::Result<()> {
        self.inner.ping().await
    }
    async fn send_expiry_notices(
        &self,
        now: time::OffsetDateTime,
        thresholds: &[u64],
        limit: u32,
        build: &keygate_store::expiry::BuildNotice<'_>,
    ) -> store::Result<usize> {
        self.inner
            .send_expiry_notices(now, thresholds, limit, build)
            .await
    }
    async fn replication_head(&self) -> store::Result<ReplicationHead> {
        self.inner.replication_head().await
    }
    async fn replication_snapshot(
        &self,
        t: &str,
        after: Option<i64>,
        n: u32,
    ) -> store::Result<SnapshotPage> {
        self.inner.replication_snapshot(t, after, n).await
    }
    async fn replication_changes(
        &self,
        t: &str,
        log: &str,
        after: i64,
        n: u32,
    ) -> store::Result<ChangeRead> {
        self.inner.replication_changes(t, log, after, n).await
    }
    async fn prune_replication(&self, before_ms: i64) -> store::Result<()> {
        self.inner.prune_replication(before_ms).await
    }
    fn replication_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.replication_signal()
    }
}

/// Webhooks are not what this suite counts: every call goes straight to the real store.
#[async_trait]
impl LeakStore for Counting {
    async fn leak_by_hash(&self, h: &TokenHash) -> store::Result<Option<LeakRecord>> {
        self.inner.leak_by_hash(h).await
    }
    async fn count_leak_report(
        &self,
        h: &TokenHash,
        at: time::OffsetDateTime,
    ) -> store::Result<bool> {
        self.inner.count_leak_report(h, at).await
    }
    async fn leak_report_answer(&self, s: &[u8]) -> store::Result<Option<String>> {
        self.inner.leak_report_answer(s).await
    }
    async fn keep_leak_report(
        &self,
        s: &[u8],
        k: &str,
        a: &str,
        at: time::OffsetDateTime,
    ) -> store::Result<bool> {
        self.inner.keep_leak_report(s, k, a, at).await
    }
}

#[async_trait]
impl WebhookStore for Counting {
    async fn webhook(&self, t: &str, id: &str) -> store::Result<Option<WebhookEndpoint>> {
        self.inner.webhook(t, id).await
    }
    async fn list_webhooks(&self, t: &str, n: u32) -> store::Result<Vec<WebhookEndpoint>> {
        self.inner.list_webhooks(t, n).await
    }
    async fn webhook_deliveries(
        &self,
        t: &str,
        e: &str,
        before: Option<i64>,
        n: u32,
    ) -> store::Result<Page<WebhookDelivery>> {
        self.inner.webhook_deliveries(t, e, before, n).await
    }
    async fn webhook_delivery(
        &self,
        t: &str,
        e: &str,
        id: i64,
    ) -> store::Result<Option<WebhookDelivery>> {
        self.inner.webhook_delivery(t, e, id).await
    }
    async fn claim_webhook(
        &self,
        owner: &str,
        now: i64,
        until: i64,
    ) -> store::Result<Option<ClaimedDelivery>> {
        self.inner.claim_webhook(owner, now, until).await
    }
    async fn renew_webhook_lease(&self, e: &str, owner: &str, until: i64) -> store::Result<bool> {
        self.inner.renew_webhook_lease(e, owner, until).await
    }
    async fn record_webhook_attempt(
        &self,
        c: &ClaimedDelivery,
        owner: &str,
        a: &Attempt,
    ) -> store::Result<()> {
        self.inner.record_webhook_attempt(c, owner, a).await
    }
    async fn prune_webhook_deliveries(&self, before: i64) -> store::Result<u64> {
        self.inner.prune_webhook_deliveries(before).await
    }
}

struct Fixture {
    _db: TestDb,
    store: Arc<Counting>,
    verifier: Verifier,
}

async fn fixture(backend: Backend) -> Fixture {
    let (db, url) = TestDb::create(backend).await;
    let store = Arc::new(Counting {
        inner: SqlStore::open(&url).await.unwrap(),
        by_hash: AtomicUsize::new(0),
        last_use_batches: AtomicUsize::new(0),
    });
    let (_, plain) = PlainToken::mint(&TokenPrefix::default());
    let now = now();
    let admin = UserRecord {
        id: "usr_admin".into(),
        tenant_id: DEFAULT_TENANT.into(),
        username: "admin".into(),
        password_hash: "x".into(),
        role: "admin".into(),
        created_at: now,
    };
    let token = record(&plain, &["*"]);
    store
        .bootstrap(&Bootstrap {
            tenant_id: DEFAULT_TENANT.into(),
            admin,
            token,
        })
        .await
        .unwrap();
    let verifier = Verifier::new(
        store.clone(),
        VerifierConfig {
            last_use_interval: Duration::from_millis(100),
            ..VerifierConfig::default()
        },
    );
    Fixture {
        _db: db,
        store,
        verifier,
    }
}

fn record(plain: &PlainToken, scopes: &[&str]) -> TokenRecord {
    let id = plain.expose()[..19].to_owned();
    let now = now();
    TokenRecord::minted(
        keygate_core::TokenId::from_stored(id),
        DEFAULT_TENANT.into(),
        plain.hash(),
        "t".into(),
        "usr_admin".into(),
        ScopeSet::parse(scopes.iter().copied()).unwrap(),
        now,
    )
}

async fn insert(f: &Fixture, scopes: &[&str]) -> (PlainToken, TokenRecord) {
    let (_, plain) = PlainToken::mint(&TokenPrefix::default());
    let rec = record(&plain, scopes);
    f.store
        .apply(&[Write::InsertToken(rec.clone())], &[])
        .await
        .unwrap();
    f.verifier.invalidate(&[rec.hash]);
    (plain, rec)
}

fn lookups(f: &Fixture) -> usize {
    f.store.by_hash.load(Ordering::SeqCst)
}

async fn a_warm_verify_does_not_touch_the_database(f: Fixture) {
    let (plain, _) = insert(&f, &["metrics:read"]).await;
    let o = f
        .verifier
        .verify(plain.expose(), &["metrics:read"], None)
        .await
        .unwrap();
    assert_eq!(o.code(), "VALID");
    assert_eq!(lookups(&f), 1, "the first verify loads the token");
    for _ in 0..1000 {
        let o = f
            .verifier
            .verify(plain.expose(), &["metrics:read"], None)
            .await
            .unwrap();
        assert_eq!(o.code(), "VALID");
    }
    let o = f
        .verifier
        .verify(plain.expose(), &["metrics:write"], None)
        .await
        .unwrap();
    assert_eq!(o.code(), "INSUFFICIENT_SCOPE");
    assert_eq!(lookups(&f), 1, "warm verifies are answered from memory");
}

async fn bad_checksums_cost_no_lookup_and_unknown_hashes_one(f: Fixture) {
    let (_, plain) = PlainToken::mint(&TokenPrefix::default());
    let mut bad = plain.expose().to_owned();
    bad.replace_range(30..31, if &bad[30..31] == "a" { "b" } else { "a" });
    for _ in 0..100 {
        let o = f.verifier.verify(&bad, &[], None).await.unwrap();
        assert_eq!(o.code(), "MALFORMED");
    }
    assert_eq!(
        lookups(&f),
        0,
        "a bad checksum is refused before any lookup"
    );

    for _ in 0..100 {
        let o = f.verifier.verify(plain.expose(), &[], None).await.unwrap();
        assert_eq!(o.code(), "NOT_FOUND");
    }
    assert_eq!(
        lookups(&f),
        1,
        "an unknown hash is looked up once, then remembered"
    );
}

async fn a_token_created_after_being_remembered_as_unknown_is_found(f: Fixture) {
    let (_, plain) = PlainToken::mint(&TokenPrefix::default());
    let o = f.verifier.verify(plain.expose(), &[], None).await.unwrap();
    assert_eq!(o.code(), "NOT_FOUND");
    let rec = record(&plain, &["tokens:read"]);
    f.store
        .apply(&[Write::InsertToken(rec.clone())], &[])
        .await
        .unwrap();
    f.verifier.invalidate(&[rec.hash]);
    let o = f.verifier.verify(plain.expose(), &[], None).await.unwrap();
    assert_eq!(o.code(), "VALID");
}

async fn changes_are_seen_at_once(f: Fixture) {
    let (plain, mut rec) = insert(&f, &["metrics:read"]).await;
    let check = |wanted: &'static [&'static str]| {
        let v = &f.verifier;
        let t = plain.expose().to_owned();
        async move { v.verify(&t, wanted, None).await.unwrap().code() }
    };
    assert_eq!(check(&[]).await, "VALID");

    rec.enabled = false;
    f.store
        .apply(&[Write::UpdateToken(rec.clone())], &[])
        .await
        .unwrap();
    f.verifier.invalidate(&[rec.hash]);
    assert_eq!(check(&[]).await, "DISABLED");

    rec.enabled = true;
    rec.scopes = ScopeSet::parse(["logs:read"]).unwrap();
    f.store
        .apply(&[Write::UpdateToken(rec.clone())], &[])
        .await
        .unwrap();
    f.verifier.invalidate(&[rec.hash]);
    assert_eq!(check(&["metrics:read"]).await, "INSUFFICIENT_SCOPE");

    rec.expires_at = Some(now() - time::Duration::seconds(1));
    f.store
        .apply(&[Write::UpdateToken(rec.clone())], &[])
        .await
        .unwrap();
    f.verifier.invalidate(&[rec.hash]);
    assert_eq!(check(&[]).await, "EXPIRED");

    f.store
        .apply(
            &[Write::DeleteToken {
                tenant_id: DEFAULT_TENANT.into(),
                id: rec.id.clone(),
            }],
            &[],
        )
        .await
        .unwrap();
    f.verifier.invalidate(&[rec.hash]);
    assert_eq!(check(&[]).await, "NOT_FOUND");
}

#[tokio::test]
async fn a_lookup_that_raced_with_a_write_is_not_cached() {
    // The loader read the epoch, then a write committed and invalidated, then the loader's
    // (stale) answer arrived: it must not stay in the cache.
    let cache = cache::TokenCache::new(16, 16);
    let (_, plain) = PlainToken::mint(&TokenPrefix::default());
    let hash = plain.hash();
    let before = cache.epoch();
    cache.invalidate(&[hash]);
    cache.fill(hash, None, before);
    assert!(matches!(cache.get(&hash), cache::Lookup::Miss));
    let now_epoch = cache.epoch();
    cache.fill(hash, None, now_epoch);
    assert!(matches!(cache.get(&hash), cache::Lookup::KnownUnknown));
}

async fn last_use_is_written_behind_in_batches(f: Fixture) {
    let (plain, rec) = insert(&f, &["metrics:read"]).await;
    for _ in 0..5000 {
        let o = f
            .verifier
            .verify(plain.expose(), &[], Some("10.1.2.3".parse().unwrap()))
            .await
            .unwrap();
        assert_eq!(o.code(), "VALID");
    }
    f.verifier.flush_last_use().await;
    let batches = f.store.last_use_batches.load(Ordering::SeqCst);
    // At most one message per token per second, folded into one write per interval: a few
    // writes however long the loop takes on a loaded machine, never one per verify.
    assert!(
        (1..=10).contains(&batches),
        "5000 verifies cost {batches} batch writes"
    );
    let stored = f
        .store
        .token_by_id(DEFAULT_TENANT, rec.id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert!(stored.last_used_at.is_some());
    assert_eq!(stored.last_used_ip.as_deref(), Some("10.1.2.3"));
}

async fn stored_last_use(f: &Fixture, rec: &TokenRecord) -> Option<time::OffsetDateTime> {
    f.store
        .token_by_id(DEFAULT_TENANT, rec.id.as_str())
        .await
        .unwrap()
        .unwrap()
        .last_used_at
}

async fn later_uses_within_the_resolution_are_not_written(f: Fixture) {
    // The fixture's verifier keeps the default resolution (a minute).
    let (plain, rec) = insert(&f, &["metrics:read"]).await;
    async fn verify(v: &Verifier, plain: &PlainToken) {
        let o = v.verify(plain.expose(), &[], None).await.unwrap();
        assert_eq!(o.code(), "VALID");
    }
    verify(&f.verifier, &plain).await;
    f.verifier.flush_last_use().await;
    let first = stored_last_use(&f, &rec)
        .await
        .expect("the first use is written");
    let batches = f.store.last_use_batches.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    verify(&f.verifier, &plain).await;
    f.verifier.flush_last_use().await;
    assert_eq!(stored_last_use(&f, &rec).await, Some(first));
    assert_eq!(
        f.store.last_use_batches.load(Ordering::SeqCst),
        batches,
        "a use a second after the recorded one, within the minute, is not written"
    );

    // With a resolution of a second, the same later use is written.
    let precise = Verifier::new(
        f.store.clone(),
        VerifierConfig {
            last_use_interval: Duration::from_millis(100),
            last_use_resolution: Duration::from_secs(1),
            ..VerifierConfig::default()
        },
    );
    verify(&precise, &plain).await;
    precise.flush_last_use().await;
    let later = stored_last_use(&f, &rec).await.unwrap();
    assert!(later > first, "{later} after {first}");
}

// ---- the Store contract itself ----

async fn a_duplicate_token_is_a_conflict_and_nothing_is_written(f: Fixture) {
    let (_, rec) = insert(&f, &["metrics:read"]).await;
    let audit = NewAudit {
        tenant_id: DEFAULT_TENANT.into(),
        at: now(),
        actor: "test".into(),
        action: "token.create".into(),
        target_id: Some(rec.id.to_string()),
        ip: None,
        details: None,
    };
    let err = f
        .store
        .apply(&[Write::InsertToken(rec.clone())], &[audit])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let audit = f
        .store
        .list_audit(
            DEFAULT_TENANT,
            &AuditFilter {
                action: Some("token.create".into()),
                limit: 10,
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap();
    assert!(
        audit.items.is_empty(),
        "the failed batch left no audit entry"
    );
}

/// The store keeps an expiry that has passed, or that a rotation set, for a change that raced
/// with the check the service makes first.
async fn a_passed_or_rotated_expiry_cannot_change(f: Fixture) {
    let (_, mut expired) = insert(&f, &["metrics:read"]).await;
    expired.expires_at = Some(now() - time::Duration::seconds(1));
    f.store
        .apply(&[Write::UpdateToken(expired.clone())], &[])
        .await
        .unwrap();
    expired.name = "renamed".into();
    f.store
        .apply(&[Write::UpdateToken(expired.clone())], &[])
        .await
        .expect("a change that leaves the expiry alone");
    expired.expires_at = None;
    let err = f
        .store
        .apply(&[Write::UpdateToken(expired.clone())], &[])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Refused(_)), "{err:?}");

    let (_, mut rotated) = insert(&f, &["metrics:read"]).await;
    rotated.expires_at = Some(now() + time::Duration::seconds(600));
    rotated.rotated_to = Some(keygate_core::TokenId::from_stored(
        "kg_successor0000000".into(),
    ));
    f.store
        .apply(&[Write::UpdateToken(rotated.clone())], &[])
        .await
        .unwrap();
    rotated.rotated_to = None;
    rotated.expires_at = None;
    let err = f
        .store
        .apply(&[Write::UpdateToken(rotated.clone())], &[])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Refused(_)), "{err:?}");
    let stored = f.store.token_by_hash(&rotated.hash).await.unwrap().unwrap();
    assert!(stored.expires_at.is_some());
    assert_eq!(stored.rotated_to.unwrap().as_str(), "kg_successor0000000");
}

async fn changing_or_deleting_a_missing_token_is_not_found(f: Fixture) {
    let (_, plain) = PlainToken::mint(&TokenPrefix::default());
    let rec = record(&plain, &["metrics:read"]);
    let err = f
        .store
        .apply(&[Write::UpdateToken(rec.clone())], &[])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    let err = f
        .store
        .apply(
            &[Write::DeleteToken {
                tenant_id: DEFAULT_TENANT.into(),
                id: rec.id.clone(),
            }],
            &[],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

async fn lists_page_newest_first_and_filter(f: Fixture) {
    let mut ids = Vec::new();
    for i in 0..7 {
        let (_, plain) = PlainToken::mint(&TokenPrefix::default());
        let mut rec = record(
            &plain,
            if i % 2 == 0 {
                &["metrics:read"]
            } else {
                &["logs_x:read"]
            },
        );
        rec.name = format!("Name_{i}");
        f.store
            .apply(&[Write::InsertToken(rec.clone())], &[])
            .await
            .unwrap();
        ids.push(rec.id.to_string());
    }
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let p = f
            .store
            .list_tokens(
                DEFAULT_TENANT,
                &TokenFilter {
                    name_contains: Some("name_".into()),
                    before_seq: before,
                    limit: 3,
                    ..TokenFilter::default()
                },
            )
            .await
            .unwrap();
        seen.extend(p.items.iter().map(|t| t.id.to_string()));
        match p.next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "every token once, newest first");
    // `_` is a LIKE wildcard: it must match only itself.
    let p = f
        .store
        .list_tokens(
            DEFAULT_TENANT,
            &TokenFilter {
                scope: Some("logs_x:read".into()),
                limit: 100,
                ..TokenFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(p.items.len(), 3);
    let p = f
        .store
        .list_tokens(
            DEFAULT_TENANT,
            &TokenFilter {
                scope: Some("logsAx:read".into()),
                limit: 100,
                ..TokenFilter::default()
            },
        )
        .await
        .unwrap();
    assert!(
        p.items.is_empty(),
        "a LIKE wildcard in a scope name is literal"
    );
}

async fn last_use_never_moves_backwards(f: Fixture) {
    let (_, rec) = insert(&f, &["metrics:read"]).await;
    let later = now();
    let earlier = later - time::Duration::seconds(60);
    let use_at = |at, ip: &str| LastUse {
        id: rec.id.clone(),
        at,
        ip: Some(ip.into()),
    };
    f.store
        .record_last_use(&[use_at(later, "10.0.0.2")])
        .await
        .unwrap();
    f.store
        .record_last_use(&[use_at(earlier, "10.0.0.1")])
        .await
        .unwrap();
    let t = f
        .store
        .token_by_id(DEFAULT_TENANT, rec.id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.last_used_at, Some(later));
    assert_eq!(t.last_used_ip.as_deref(), Some("10.0.0.2"));
}

async fn concurrent_bootstraps_create_exactly_one(f: Fixture) {
    // The fixture bootstrapped once already: a second tenant name would be a different
    // deployment, so race eight bootstraps of a fresh tenant id instead.
    let attempts = (0..8).map(|_| {
        let store = f.store.clone();
        async move {
            let (_, plain) = PlainToken::mint(&TokenPrefix::default());
            let mut token = record(&plain, &["*"]);
            token.tenant_id = "race".into();
            let mut uid = String::from("usr_");
            keygate_core::base62::random(16, &mut uid);
            token.owner_id = uid.clone();
            let admin = UserRecord {
                id: uid,
                tenant_id: "race".into(),
                username: "admin".into(),
                password_hash: "x".into(),
                role: "admin".into(),
                created_at: now(),
            };
            store
                .bootstrap(&Bootstrap {
                    tenant_id: "race".into(),
                    admin,
                    token,
                })
                .await
        }
    });
    let results: Vec<_> = futures_join_all(attempts).await;
    let created = results.iter().filter(|r| matches!(r, Ok(true))).count();
    let errors: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(created, 1, "exactly one bootstrap wins");
}

// ---- concurrent writes (on SQLite: the group committer) ----

fn audit_for(rec: &TokenRecord, action: &str) -> NewAudit {
    NewAudit {
        tenant_id: DEFAULT_TENANT.into(),
        at: now(),
        actor: "test".into(),
        action: action.into(),
        target_id: Some(rec.id.to_string()),
        ip: None,
        details: None,
    }
}

fn fresh(scopes: &[&str]) -> TokenRecord {
    let (_, plain) = PlainToken::mint(&TokenPrefix::default());
    record(&plain, scopes)
}

/// The audit entries written with `action`, by target id.
async fn audited(f: &Fixture, action: &str) -> std::collections::HashSet<String> {
    let page = f
        .store
        .list_audit(
            DEFAULT_TENANT,
            &AuditFilter {
                action: Some(action.into()),
                limit: 1000,
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap();
    assert!(page.next.is_none(), "more audit entries than one page");
    page.items.into_iter().filter_map(|a| a.target_id).collect()
}

/// Every token of the tenant, read in one statement.
async fn token_ids(f: &Fixture) -> std::collections::HashSet<String> {
    let page = f
        .store
        .list_tokens(
            DEFAULT_TENANT,
            &TokenFilter {
                limit: 1000,
                ..TokenFilter::default()
            },
        )
        .await
        .unwrap();
    assert!(page.next.is_none(), "more tokens than one page");
    page.items.into_iter().map(|t| t.id.to_string()).collect()
}

async fn stored(f: &Fixture, rec: &TokenRecord) -> bool {
    f.store
        .token_by_id(DEFAULT_TENANT, rec.id.as_str())
        .await
        .unwrap()
        .is_some()
}

/// Starts every batch at once, each on its own task, and returns each one's result in order.
async fn apply_all(
    f: &Fixture,
    batches: Vec<(Vec<Write>, Vec<NewAudit>)>,
) -> Vec<store::Result<()>> {
    // Held back until every task is waiting, so the batches meet in the writer's queue.
    let start = Arc::new(tokio::sync::Barrier::new(batches.len()));
    let tasks = batches.into_iter().map(|(writes, audit)| {
        let store = f.store.clone();
        let start = start.clone();
        async move {
            start.wait().await;
            store.apply(&writes, &audit).await
        }
    });
    futures_join_all(tasks).await
}

async fn many_concurrent_writes_all_land(f: Fixture) {
    let tokens: Vec<_> = (0..100).map(|_| fresh(&["metrics:read"])).collect();
    let batches = tokens
        .iter()
        .map(|t| {
            (
                vec![Write::InsertToken(t.clone())],
                vec![audit_for(t, "token.create")],
            )
        })
        .collect();
    for r in apply_all(&f, batches).await {
        r.unwrap();
    }
    let audited = audited(&f, "token.create").await;
    for t in &tokens {
        let got = f.store.token_by_hash(&t.hash).await.unwrap();
        assert_eq!(got.map(|g| g.id), Some(t.id.clone()));
        assert!(audited.contains(t.id.as_str()), "audit entry of {}", t.id);
    }
    assert_eq!(audited.len(), tokens.len());
}

async fn a_failing_batch_among_concurrent_ones_fails_alone(f: Fixture) {
    let (_, existing) = insert(&f, &["metrics:read"]).await;
    // What each batch is, and so what its caller must hear.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Kind {
        Good,
        DuplicateHash,
        DuplicateId,
        /// A good insert, then a change of a token that does not exist: the insert must go too.
        GoodThenMissing,
        /// Two good inserts, then a duplicate hash: both inserts must go.
        GoodThenDuplicate,
    }
    let kinds: Vec<Kind> = (0..80)
        .map(|i| match i % 16 {
            3 => Kind::DuplicateHash,
            7 => Kind::DuplicateId,
            11 => Kind::GoodThenMissing,
            15 => Kind::GoodThenDuplicate,
            _ => Kind::Good,
        })
        .collect();
    let colliding = |mut t: TokenRecord, hash: bool| {
        if hash {
            t.hash = existing.hash;
        } else {
            t.id = existing.id.clone();
        }
        Write::InsertToken(t)
    };
    // Per batch: its writes, and the tokens it would add (each with its audit entry).
    let mut batches = Vec::new();
    let mut own_tokens = Vec::new();
    for kind in &kinds {
        let (t, u) = (fresh(&["metrics:read"]), fresh(&["metrics:read"]));
        let (writes, tokens) = match kind {
            Kind::Good => (vec![Write::InsertToken(t.clone())], vec![t]),
            Kind::DuplicateHash => (vec![colliding(t.clone(), true)], vec![t]),
            Kind::DuplicateId => (vec![colliding(t.clone(), false)], vec![t]),
            Kind::GoodThenMissing => (
                vec![Write::InsertToken(t.clone()), Write::UpdateToken(u)],
                vec![t],
            ),
            Kind::GoodThenDuplicate => (
                vec![
                    Write::InsertToken(t.clone()),
                    Write::InsertToken(u.clone()),
                    colliding(fresh(&["metrics:read"]), true),
                ],
                vec![t, u],
            ),
        };
        let audit = tokens
            .iter()
            .map(|t| audit_for(t, "token.create"))
            .collect();
        batches.push((writes, audit));
        own_tokens.push(tokens);
    }
    let results = apply_all(&f, batches).await;
    let audited = audited(&f, "token.create").await;
    for ((kind, r), tokens) in kinds.iter().zip(&results).zip(&own_tokens) {
        match kind {
            Kind::Good => assert!(r.is_ok(), "a good batch failed with {r:?}"),
            Kind::DuplicateHash | Kind::DuplicateId | Kind::GoodThenDuplicate => {
                assert!(matches!(r, Err(StoreError::Conflict(_))), "{kind:?}: {r:?}")
            }
            Kind::GoodThenMissing => {
                assert!(matches!(r, Err(StoreError::NotFound)), "{kind:?}: {r:?}")
            }
        }
        for t in tokens {
            assert_eq!(
                stored(&f, t).await,
                r.is_ok(),
                "{kind:?}: its tokens are stored if and only if it succeeded"
            );
            assert_eq!(
                audited.contains(t.id.as_str()),
                r.is_ok(),
                "{kind:?}: its audit entries exist if and only if it succeeded"
            );
        }
    }
    let good = kinds.iter().filter(|k| **k == Kind::Good).count();
    assert_eq!(audited.len(), good, "no audit entry of a failed batch");
    // The token everyone collided with is untouched.
    let still = f
        .store
        .token_by_hash(&existing.hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.id, existing.id);
}

async fn a_batch_whose_caller_gives_up_is_written_whole_or_not_at_all(f: Fixture) {
    let mut tasks = Vec::new();
    for _ in 0..128 {
        let store = f.store.clone();
        let (a, b) = (fresh(&["metrics:read"]), fresh(&["metrics:read"]));
        let writes = vec![Write::InsertToken(a.clone()), Write::InsertToken(b.clone())];
        let audit = vec![audit_for(&a, "token.create")];
        let task = tokio::spawn(async move { store.apply(&writes, &audit).await });
        tasks.push((a, b, task));
    }
    // Every other caller gives up at some point of its way: before its batch is queued, while
    // it waits, or while its group is being written.
    for (i, (_, _, task)) in tasks.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        for _ in 0..i % 5 {
            tokio::task::yield_now().await;
        }
        task.abort();
    }
    let mut results = Vec::new();
    for (a, b, task) in tasks {
        results.push((a, b, task.await));
    }
    // A batch whose caller went away may still be on its way (on PostgreSQL, a COMMIT sent
    // before the abort). Batches only add rows, so two equal reads of the tokens around the
    // read of the audit log mean the three saw the same commits.
    let mut settled = None;
    for _ in 0..500 {
        let before = token_ids(&f).await;
        let audited = audited(&f, "token.create").await;
        if token_ids(&f).await == before {
            settled = Some((before, audited));
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (tokens, audited) = settled.expect("writes still landing after 5 s");
    for (a, b, outcome) in results {
        let (has_a, has_b) = (
            tokens.contains(a.id.as_str()),
            tokens.contains(b.id.as_str()),
        );
        assert_eq!(has_a, has_b, "half a batch was written");
        assert_eq!(
            has_a,
            audited.contains(a.id.as_str()),
            "a write apart from its audit"
        );
        if let Ok(r) = outcome {
            assert_eq!(r.is_ok(), has_a, "{r:?}");
        }
    }
}

/// Every keygate id, and every chosen id within its tenant, names one token forever: neither is
/// given again after the token is deleted, so audit histories and stored references never mix.
async fn ids_are_never_given_again_even_after_deletion(f: Fixture) {
    let (_, plain) = PlainToken::mint(&TokenPrefix::default());
    let first = TokenRecord {
        chosen_id: Some("chosen-1".into()),
        ..record(&plain, &["metrics:read"])
    };
    f.store
        .apply(&[Write::InsertToken(first.clone())], &[])
        .await
        .unwrap();
    f.store
        .apply(
            &[Write::DeleteToken {
                tenant_id: DEFAULT_TENANT.into(),
                id: first.id.clone(),
            }],
            &[],
        )
        .await
        .unwrap();

    let (_, other) = PlainToken::mint(&TokenPrefix::default());
    let same_id = TokenRecord {
        id: first.id.clone(),
        chosen_id: None,
        ..record(&other, &["metrics:read"])
    };
    let same_external = TokenRecord {
        chosen_id: Some("chosen-1".into()),
        ..record(&other, &["metrics:read"])
    };
    for again in [same_id, same_external] {
        let err = f
            .store
            .apply(&[Write::InsertToken(again.clone())], &[])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        assert!(f.store.token_by_hash(&again.hash).await.unwrap().is_none());
    }

    // A chosen id is the tenant's own: another tenant may use it.
    f.store
        .apply(
            &[Write::InsertTenant {
                id: "acme".into(),
                created_at: now(),
            }],
            &[],
        )
        .await
        .unwrap();
    let elsewhere = TokenRecord {
        tenant_id: "acme".into(),
        chosen_id: Some("chosen-1".into()),
        ..record(&other, &["metrics:read"])
    };
    f.store
        .apply(&[Write::InsertToken(elsewhere.clone())], &[])
        .await
        .unwrap();
    let found = f
        .store
        .token_by_chosen_id("acme", "chosen-1")
        .await
        .unwrap();
    assert_eq!(found.map(|t| t.id), Some(elsewhere.id));
}

/// Runs the futures concurrently on the current runtime.
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    fs: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case(fixture(Backend::Sqlite).await).await })*
        }
        mod postgres {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case(fixture(Backend::Postgres).await).await })*
        }
    };
}

on_both_backends!(
    a_warm_verify_does_not_touch_the_database,
    bad_checksums_cost_no_lookup_and_unknown_hashes_one,
    a_token_created_after_being_remembered_as_unknown_is_found,
    changes_are_seen_at_once,
    last_use_is_written_behind_in_batches,
    later_uses_within_the_resolution_are_not_written,
    a_duplicate_token_is_a_conflict_and_nothing_is_written,
    changing_or_deleting_a_missing_token_is_not_found,
    a_passed_or_rotated_expiry_cannot_change,
    lists_page_newest_first_and_filter,
    last_use_never_moves_backwards,
    concurrent_bootstraps_create_exactly_one,
    many_concurrent_writes_all_land,
    a_failing_batch_among_concurrent_ones_fails_alone,
    a_batch_whose_caller_gives_up_is_written_whole_or_not_at_all,
    ids_are_never_given_again_even_after_deletion,
);
