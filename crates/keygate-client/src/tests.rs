//! The verification rules on a replica fed by hand with snapshot and change data, as keygate
//! sends it: no server, no follower.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use keygate_core::permission::Query;
use keygate_core::{PlainToken, TokenPrefix};
use serde_json::{json, Value};

use crate::held::Held;
use crate::options::{OnStale, Options};
use crate::replica::{LocalAnswer, Replica};
use crate::shared::Shared;
use crate::verification::{AnsweredBy, Code, Request, Verification};
use crate::wire::{ChangesPage, SnapshotPage};

/// A minted token and its replica record, with `fields` overriding the defaults.
fn token(fields: Value) -> (String, Value) {
    let (id, plain) = PlainToken::mint(&TokenPrefix::default());
    let hash: String = plain.hash().0.iter().map(|b| format!("{b:02x}")).collect();
    let mut record = json!({
        "hash": hash, "id": id.as_str(), "name": "ci", "tenantId": "acme", "ownerId": "u1",
        "scopes": ["orders:read"], "enabled": true, "expiresAt": null, "allowedCidrs": [],
        "metadata": {"plan": "pro"}, "externalId": "cust-7", "usageControlled": false
    });
    for (k, v) in fields.as_object().expect("an object") {
        record[k] = v.clone();
    }
    (plain.expose().to_owned(), record)
}

fn hash_of(record: &Value) -> String {
    record["hash"].as_str().unwrap().to_owned()
}

/// A replica built from one snapshot page holding `records`.
fn replica_with(records: &[&Value], options: Options) -> Replica {
    let page: SnapshotPage = serde_json::from_str(
        &json!({"cursor": "c1", "prefix": "kg", "tokens": records, "next": null}).to_string(),
    )
    .unwrap();
    let held = Held::default();
    for t in page.tokens {
        held.upsert(t).unwrap();
    }
    let shared = Shared::new(
        held,
        TokenPrefix::parse(&page.prefix).unwrap(),
        page.cursor,
        &options,
    );
    shared.heard("c1");
    Replica::from_shared(shared)
}

fn replica(records: &[&Value]) -> Replica {
    replica_with(records, Options::default())
}

fn local(replica: &Replica, req: &Request<'_>) -> Verification {
    match replica.check_local(req) {
        LocalAnswer::Answered(v) => v,
        LocalAnswer::NeedsKeygate => panic!("expected a local answer"),
    }
}

fn code(replica: &Replica, token: &str, scopes: &[&str]) -> Code {
    local(
        replica,
        &Request {
            token,
            scopes,
            ..Request::default()
        },
    )
    .code
}

fn apply(replica: &Replica, changes: Value) {
    let page: ChangesPage = serde_json::from_str(
        &json!({"cursor": "c2", "changes": changes, "more": false}).to_string(),
    )
    .unwrap();
    for c in page.changes {
        replica.shared().held.apply(c).unwrap();
    }
}

#[tokio::test]
async fn a_held_token_with_its_scopes_is_valid_with_what_keygate_knows_of_it() {
    let (plain, rec) = token(json!({}));
    let r = replica(&[&rec]);
    let v = r.verify(&plain, &["orders:read"]).await;
    assert_eq!(v.code, Code::Valid);
    assert_eq!(v.answered_by, AnsweredBy::Replica);
    let info = v.token.unwrap();
    assert_eq!(info.id(), rec["id"].as_str().unwrap());
    assert_eq!(info.tenant_id(), "acme");
    assert_eq!(info.owner_id(), "u1");
    assert_eq!(info.external_id(), Some("cust-7"));
    assert_eq!(info.metadata().unwrap().get(), r#"{"plan":"pro"}"#);
    assert_eq!(r.stats().tokens, 1);
    assert_eq!(r.stats().cursor, "c1");
}

#[test]
fn format_is_checked_before_any_lookup_and_unknown_tokens_are_not_found() {
    let (plain, rec) = token(json!({}));
    let r = replica(&[&rec]);
    let (unknown, _) = token(json!({}));
    assert_eq!(code(&r, &unknown, &[]), Code::NotFound);
    assert_eq!(code(&r, "kg_short", &[]), Code::Malformed);
    assert_eq!(code(&r, "", &[]), Code::Malformed);
    // One changed character breaks the checksum: refused as keygate refuses it.
    let mut bad = plain.into_bytes();
    bad[30] = if bad[30] == b'a' { b'b' } else { b'a' };
    assert_eq!(
        code(&r, &String::from_utf8(bad).unwrap(), &[]),
        Code::Malformed
    );
    // A token minted elsewhere (imported) is looked up by its hash like any other.
    assert_eq!(
        code(&r, "imported-token-from-elsewhere-123", &[]),
        Code::NotFound
    );
}

#[test]
fn an_imported_token_is_found_by_its_hash() {
    let foreign = "imported-token-from-elsewhere-123";
    let hash: String = keygate_core::TokenHash::of(foreign)
        .0
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (_, rec) = token(json!({ "hash": hash }));
    assert_eq!(code(&replica(&[&rec]), foreign, &[]), Code::Valid);
}

#[test]
fn upserts_replace_and_deletes_forget() {
    let (plain, rec) = token(json!({}));
    let r = replica(&[&rec]);
    let mut disabled = rec.clone();
    disabled["enabled"] = json!(false);
    apply(&r, json!([{"op": "upsert", "token": disabled}]));
    assert_eq!(code(&r, &plain, &[]), Code::Disabled);

    let mut more = rec.clone();
    more["scopes"] = json!(["orders:read", "orders:write"]);
    apply(&r, json!([{"op": "upsert", "token": more}]));
    assert_eq!(code(&r, &plain, &["orders:write"]), Code::Valid);

    apply(&r, json!([{"op": "delete", "hash": hash_of(&rec)}]));
    assert_eq!(code(&r, &plain, &[]), Code::NotFound);
    assert_eq!(r.stats().tokens, 0);

    let (new_plain, new) = token(json!({}));
    apply(&r, json!([{"op": "upsert", "token": new}]));
    assert_eq!(code(&r, &new_plain, &[]), Code::Valid);
}

#[test]
fn an_expiry_binds_once_reached() {
    let (past, past_rec) = token(json!({"expiresAt": "2020-01-01T00:00:00.000Z"}));
    let (future, future_rec) = token(json!({"expiresAt": "2999-01-01T00:00:00.000Z"}));
    let r = replica(&[&past_rec, &future_rec]);
    assert_eq!(code(&r, &past, &[]), Code::Expired);
    assert_eq!(code(&r, &future, &[]), Code::Valid);
}

#[test]
fn the_status_comes_before_the_address_and_the_address_before_the_scopes() {
    let (plain, rec) = token(json!({"enabled": false, "allowedCidrs": ["10.0.0.0/8"]}));
    let r = replica(&[&rec]);
    assert_eq!(code(&r, &plain, &["admin"]), Code::Disabled);

    let (plain, rec) = token(json!({"allowedCidrs": ["10.0.0.0/8"]}));
    let r = replica(&[&rec]);
    let elsewhere: IpAddr = "192.168.1.1".parse().unwrap();
    let v = local(
        &r,
        &Request {
            token: &plain,
            scopes: &["admin"],
            ip: Some(elsewhere),
            ..Request::default()
        },
    );
    assert_eq!(v.code, Code::IpNotAllowed);
    assert!(v.missing_scopes.is_empty());
}

#[test]
fn an_allow_list_admits_its_networks_only_and_never_an_unknown_address() {
    let (plain, rec) = token(json!({"allowedCidrs": ["10.0.0.0/8", "2001:db8::/32"]}));
    let r = replica(&[&rec]);
    let at = |ip: Option<&str>| {
        local(
            &r,
            &Request {
                token: &plain,
                ip: ip.map(|s| s.parse().unwrap()),
                ..Request::default()
            },
        )
        .code
    };
    assert_eq!(at(Some("10.1.2.3")), Code::Valid);
    assert_eq!(at(Some("::ffff:10.1.2.3")), Code::Valid);
    assert_eq!(at(Some("2001:db8::1")), Code::Valid);
    assert_eq!(at(Some("11.0.0.1")), Code::IpNotAllowed);
    assert_eq!(at(None), Code::IpNotAllowed);
}

#[test]
fn missing_scopes_are_named_in_the_order_asked_and_wildcards_cover() {
    let (plain, rec) = token(json!({"scopes": ["orders:*", "users:read"]}));
    let r = replica(&[&rec]);
    assert_eq!(
        code(&r, &plain, &["orders:read", "users:read"]),
        Code::Valid
    );
    let v = local(
        &r,
        &Request {
            token: &plain,
            scopes: &["billing:read", "orders:write", "users:write"],
            ..Request::default()
        },
    );
    assert_eq!(v.code, Code::InsufficientScope);
    assert_eq!(v.missing_scopes, ["billing:read", "users:write"]);
    assert!(v.token.is_some());
}

#[tokio::test]
async fn a_permission_query_names_what_a_conjunction_misses_and_a_bad_query_is_an_error() {
    let (plain, rec) = token(json!({"scopes": ["orders:read", "users:read"]}));
    let r = replica(&[&rec]);
    let q = |text: &str| {
        let r = r.clone();
        let plain = plain.clone();
        let text = text.to_owned();
        async move { r.verify_query(&plain, &text).await }
    };
    assert_eq!(
        q("orders:read AND (orders:write OR users:read)")
            .await
            .unwrap()
            .code,
        Code::Valid
    );
    let v = q("orders:read AND orders:write AND billing:read")
        .await
        .unwrap();
    assert_eq!(v.code, Code::InsufficientScope);
    assert_eq!(v.missing_scopes, ["orders:write", "billing:read"]);
    let v = q("orders:write OR billing:read").await.unwrap();
    assert_eq!(v.code, Code::InsufficientScope);
    assert!(v.missing_scopes.is_empty());
    assert!(q("orders:read AND (").await.is_err());

    // Scopes and a query together: both must hold.
    let query = Query::parse("users:read").unwrap();
    let v = local(
        &r,
        &Request {
            token: &plain,
            scopes: &["orders:write"],
            permissions: Some(&query),
            ..Request::default()
        },
    );
    assert_eq!(v.missing_scopes, ["orders:write"]);
}

#[test]
fn a_stale_replica_fails_closed_or_asks_keygate_but_still_refuses_malformed_tokens() {
    let (plain, rec) = token(json!({}));
    let options = Options::default();
    let r = replica_with(&[&rec], options.clone());
    let later = Instant::now() + options.max_staleness + Duration::from_secs(1);
    let req = Request {
        token: &plain,
        ..Request::default()
    };
    assert_eq!(
        r.shared().decide(&req, later).unwrap().code,
        Code::Unavailable
    );
    assert_eq!(
        r.shared().decide(&req, Instant::now()).unwrap().code,
        Code::Valid
    );
    let malformed = Request {
        token: "kg_nope",
        ..Request::default()
    };
    assert_eq!(
        r.shared().decide(&malformed, later).unwrap().code,
        Code::Malformed
    );

    let asking = replica_with(&[&rec], options.with_on_stale(OnStale::AskKeygate));
    assert!(asking.shared().decide(&req, later).is_none());
}

#[tokio::test]
async fn a_replica_past_its_staleness_reports_it_and_answers_unavailable() {
    let (plain, rec) = token(json!({}));
    let options = Options {
        max_staleness: Duration::from_millis(20),
        wait: Duration::from_millis(10),
        ..Options::default()
    };
    let r = replica_with(&[&rec], options);
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert!(r.stats().stale);
    assert_eq!(r.verify(&plain, &[]).await.code, Code::Unavailable);
    r.shared().heard("c9");
    assert!(!r.stats().stale);
    assert_eq!(r.stats().cursor, "c9");
    assert_eq!(r.verify(&plain, &[]).await.code, Code::Valid);
}

#[tokio::test]
async fn a_usage_controlled_token_goes_to_keygate_once_it_passes_the_local_checks() {
    let (plain, rec) = token(json!({"usageControlled": true}));
    let r = replica(&[&rec]);
    let ok = Request {
        token: &plain,
        scopes: &["orders:read"],
        ..Request::default()
    };
    assert!(matches!(r.check_local(&ok), LocalAnswer::NeedsKeygate));
    // A refusal before the limits is the one keygate would give: no need to ask.
    assert_eq!(code(&r, &plain, &["orders:write"]), Code::InsufficientScope);
    // Nothing to ask (no keygate in this test): unavailable, never valid.
    let v = r.check(&ok).await;
    assert_eq!(v.code, Code::Unavailable);
}

#[tokio::test]
async fn wait_until_returns_when_keygate_answers_or_at_the_timeout() {
    let (_, rec) = token(json!({}));
    let r = replica(&[&rec]);
    assert!(
        !r.wait_until(|s| s.cursor == "c5", Duration::from_millis(20))
            .await
    );
    let waiter = {
        let r = r.clone();
        tokio::spawn(async move {
            r.wait_until(|s| s.cursor == "c5", Duration::from_secs(5))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    r.shared().heard("c5");
    assert!(waiter.await.unwrap());
}
