//! Tenant policies against the real databases (a SQLite file and a fresh PostgreSQL database,
//! `KEYGATE_TEST_DATABASE_URL`; unreachable is a failure, never a skip): a policy read back as
//! written, the tokens that break it listed and counted by SQL that agrees with
//! `TenantPolicy::check_lifetime`, and a `token.reused` event put in the outbox.

mod common;
use common::{on_both_backends, Db};

use keygate_core::{EventType, OnLeak, OnReuse, PlainToken, ScopeSet, TenantPolicy, TokenPrefix};
use keygate_store::*;
use time::Duration;

/// A service token of the default tenant created `age` ago, living `lifetime` from then.
async fn token(store: &SqlStore, age: Duration, lifetime: Option<Duration>) -> TokenRecord {
    let (id, plain) = PlainToken::mint(&TokenPrefix::default());
    let created = now() - age;
    let mut rec = TokenRecord::minted(
        id,
        DEFAULT_TENANT.into(),
        plain.hash(),
        "t".into(),
        DEFAULT_TENANT.into(),
        ScopeSet::parse(["tokens:read"]).unwrap(),
        created,
    );
    rec.expires_at = lifetime.map(|l| created + l);
    store
        .apply(&[Write::InsertToken(rec.clone())], &[])
        .await
        .unwrap();
    rec
}

async fn set(store: &SqlStore, policy: TenantPolicy) {
    let write = Write::SetTenantPolicy {
        tenant_id: DEFAULT_TENANT.into(),
        policy,
        at: now(),
    };
    store.apply(&[write], &[]).await.unwrap();
}

async fn a_policy_reads_back_as_written_and_defaults_without_one(db: Db) {
    let s = &db.store;
    assert_eq!(
        s.tenant_policy(DEFAULT_TENANT).await.unwrap(),
        TenantPolicy::default()
    );
    let strict = TenantPolicy {
        max_lifetime_seconds: Some(3600),
        require_expiry: true,
        on_reuse: OnReuse::Revoke,
        on_leak: OnLeak::Disable,
    };
    set(s, strict).await;
    assert_eq!(s.tenant_policy(DEFAULT_TENANT).await.unwrap(), strict);
    // A second write replaces the first.
    set(s, TenantPolicy::default()).await;
    assert_eq!(
        s.tenant_policy(DEFAULT_TENANT).await.unwrap(),
        TenantPolicy::default()
    );
}

/// The listing and the count find exactly the tokens the Rust rule refuses, leaving out those
/// that have expired.
async fn the_tokens_that_break_a_policy_are_listed_and_counted(db: Db) {
    let s = &db.store;
    let hour = Duration::hours(1);
    let forever = token(s, Duration::ZERO, None).await;
    let short = token(s, Duration::ZERO, Some(hour)).await;
    let long = token(s, Duration::ZERO, Some(hour * 48)).await;
    // Lived too long, but is over: nothing to do about it.
    let _expired = token(s, hour * 72, Some(hour * 48)).await;
    let listed = |f: TokenFilter| async move {
        let mut ids: Vec<String> = s
            .list_tokens(DEFAULT_TENANT, &f)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|t| t.id.to_string())
            .collect();
        ids.sort();
        ids
    };
    let violating = TokenFilter {
        violating_policy_at: Some(now()),
        limit: 100,
        ..TokenFilter::default()
    };
    let ids = |recs: &[&TokenRecord]| {
        let mut v: Vec<String> = recs.iter().map(|t| t.id.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(listed(violating.clone()).await, Vec::<String>::new());
    for (policy, breaking) in [
        (
            TenantPolicy {
                require_expiry: true,
                ..TenantPolicy::default()
            },
            vec![&forever],
        ),
        (
            TenantPolicy {
                max_lifetime_seconds: Some(24 * 3600),
                ..TenantPolicy::default()
            },
            vec![&forever, &long],
        ),
    ] {
        set(s, policy).await;
        for t in [&forever, &short, &long] {
            let lifetime = t
                .expires_at
                .map(|e| (e - t.created_at).whole_milliseconds() as i64);
            assert_eq!(
                policy.check_lifetime(lifetime).is_err(),
                breaking.iter().any(|b| b.id == t.id),
                "the SQL and the rule agree on {policy:?} for {lifetime:?}"
            );
        }
        assert_eq!(
            listed(violating.clone()).await,
            ids(&breaking),
            "{policy:?}"
        );
        assert_eq!(
            s.count_policy_violations(DEFAULT_TENANT, now())
                .await
                .unwrap(),
            breaking.len() as u64
        );
    }
    // Another tenant's policy is not this one's.
    s.apply(
        &[Write::InsertTenant {
            id: "other".into(),
            created_at: now(),
        }],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(s.count_policy_violations("other", now()).await.unwrap(), 0);
}

/// An event of type `token.reused` reaches the outbox of an endpoint subscribed to it.
async fn a_reuse_event_is_written_to_the_outbox(db: Db) {
    let t = token(&db.store, Duration::ZERO, None).await;
    common::console(
        &db,
        &format!(
            "INSERT INTO webhook_endpoints (id, tenant_id, url, events, secret, enabled, \
             created_at, updated_at) VALUES ('we_1', '{DEFAULT_TENANT}', 'http://127.0.0.1:9/', \
             ',token.reused,', 'whsec_x', 1, 0, 0)"
        ),
    )
    .await;
    let event = NewEvent {
        id: "msg_reuse".into(),
        tenant_id: DEFAULT_TENANT.into(),
        event_type: EventType::TokenReused,
        at: now(),
        payload: format!(
            r#"{{"type":"token.reused","data":{{"token":{{"id":"{}"}}}}}}"#,
            t.id
        ),
    };
    db.store.apply(&[Write::Emit(event)], &[]).await.unwrap();
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM webhook_deliveries WHERE endpoint_id = 'we_1' \
             AND event_type = 'token.reused' AND event_id = 'msg_reuse' AND state = 'pending'"
        )
        .await,
        1
    );
}

async fn count(db: &Db, sql: &str) -> i64 {
    let mut c = common::connect_beside(db).await;
    sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
}

on_both_backends!(
    a_policy_reads_back_as_written_and_defaults_without_one,
    the_tokens_that_break_a_policy_are_listed_and_counted,
    a_reuse_event_is_written_to_the_outbox,
);
