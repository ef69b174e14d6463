//! The hot path against a real SQLite file: which verifications reach the database and which
//! are answered from memory. `Counting` wraps the real store and counts the lookups it serves.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use keygate_core::{PlainToken, ScopeSet, TokenHash, TokenPrefix};
use keygate_store::*;

struct Counting {
    inner: SqliteStore,
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
    async fn list_tokens(&self, t: &str, f: &TokenFilter) -> store::Result<Page<TokenRecord>> {
        self.inner.list_tokens(t, f).await
    }
    async fn apply(&self, w: &[TokenWrite], a: &[NewAudit]) -> store::Result<()> {
        self.inner.apply(w, a).await
    }
    async fn record_last_use(&self, batch: &[LastUse]) -> store::Result<()> {
        self.last_use_batches.fetch_add(1, Ordering::SeqCst);
        self.inner.record_last_use(batch).await
    }
    async fn owner_exists(&self, t: &str, o: &str) -> store::Result<bool> {
        self.inner.owner_exists(t, o).await
    }
    async fn list_audit(&self, t: &str, f: &AuditFilter) -> store::Result<Page<AuditEntry>> {
        self.inner.list_audit(t, f).await
    }
    async fn ping(&self) -> store::Result<()> {
        self.inner.ping().await
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Counting>,
    verifier: Verifier,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = SqliteStore::url_in_dir(dir.path());
    let store = Arc::new(Counting {
        inner: SqliteStore::open(&url).await.unwrap(),
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
        _dir: dir,
        store,
        verifier,
    }
}

fn record(plain: &PlainToken, scopes: &[&str]) -> TokenRecord {
    let id = plain.expose()[..19].to_owned();
    let now = now();
    TokenRecord {
        id: keygate_core::TokenId::from_stored(id),
        tenant_id: DEFAULT_TENANT.into(),
        hash: plain.hash(),
        name: "t".into(),
        description: None,
        metadata: None,
        owner_id: "usr_admin".into(),
        scopes: ScopeSet::parse(scopes.iter().copied()).unwrap(),
        enabled: true,
        created_at: now,
        updated_at: now,
        expires_at: None,
        last_used_at: None,
        last_used_ip: None,
        created_by: None,
    }
}

async fn insert(f: &Fixture, scopes: &[&str]) -> (PlainToken, TokenRecord) {
    let (_, plain) = PlainToken::mint(&TokenPrefix::default());
    let rec = record(&plain, scopes);
    f.store
        .apply(&[TokenWrite::Insert(rec.clone())], &[])
        .await
        .unwrap();
    f.verifier.invalidate(&[rec.hash]);
    (plain, rec)
}

fn lookups(f: &Fixture) -> usize {
    f.store.by_hash.load(Ordering::SeqCst)
}

#[tokio::test]
async fn a_warm_verify_does_not_touch_the_database() {
    let f = fixture().await;
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

#[tokio::test]
async fn bad_checksums_cost_no_lookup_and_unknown_hashes_one() {
    let f = fixture().await;
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

#[tokio::test]
async fn a_token_created_after_being_remembered_as_unknown_is_found() {
    let f = fixture().await;
    let (_, plain) = PlainToken::mint(&TokenPrefix::default());
    let o = f.verifier.verify(plain.expose(), &[], None).await.unwrap();
    assert_eq!(o.code(), "NOT_FOUND");
    let rec = record(&plain, &["tokens:read"]);
    f.store
        .apply(&[TokenWrite::Insert(rec.clone())], &[])
        .await
        .unwrap();
    f.verifier.invalidate(&[rec.hash]);
    let o = f.verifier.verify(plain.expose(), &[], None).await.unwrap();
    assert_eq!(o.code(), "VALID");
}

#[tokio::test]
async fn changes_are_seen_at_once() {
    let f = fixture().await;
    let (plain, mut rec) = insert(&f, &["metrics:read"]).await;
    let check = |wanted: &'static [&'static str]| {
        let v = &f.verifier;
        let t = plain.expose().to_owned();
        async move { v.verify(&t, wanted, None).await.unwrap().code() }
    };
    assert_eq!(check(&[]).await, "VALID");

    rec.enabled = false;
    f.store
        .apply(&[TokenWrite::Update(rec.clone())], &[])
        .await
        .unwrap();
    f.verifier.invalidate(&[rec.hash]);
    assert_eq!(check(&[]).await, "DISABLED");

    rec.enabled = true;
    rec.scopes = ScopeSet::parse(["logs:read"]).unwrap();
    f.store
        .apply(&[TokenWrite::Update(rec.clone())], &[])
        .await
        .unwrap();
    f.verifier.invalidate(&[rec.hash]);
    assert_eq!(check(&["metrics:read"]).await, "INSUFFICIENT_SCOPE");

    rec.expires_at = Some(now() - time::Duration::seconds(1));
    f.store
        .apply(&[TokenWrite::Update(rec.clone())], &[])
        .await
        .unwrap();
    f.verifier.invalidate(&[rec.hash]);
    assert_eq!(check(&[]).await, "EXPIRED");

    f.store
        .apply(
            &[TokenWrite::Delete {
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

#[tokio::test]
async fn last_use_is_written_behind_in_batches() {
    let f = fixture().await;
    let (plain, rec) = insert(&f, &["metrics:read"]).await;
    for _ in 0..5000 {
        let o = f
            .verifier
            .verify(plain.expose(), &[], Some("10.1.2.3"))
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
