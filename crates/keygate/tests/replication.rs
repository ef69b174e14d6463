//! The replication endpoints over HTTP (`/api/v1/replication/snapshot` and `/changes`), on both
//! backends: the scope they need, a snapshot's pages and what they hold (hashes, never
//! secrets), the change stream from a snapshot's cursor, one tenant's tokens only, bad
//! parameters, and a cursor past the retention answered with 410.

mod common;
use common::*;

use std::time::Duration;

use keygate_core::TokenHash;
use serde_json::{json, Value};

fn hex_hash(token: &str) -> String {
    hex::encode(TokenHash::of(token).as_bytes())
}

fn get(s: &Server, path: &str, token: &str) -> (u16, Value) {
    s.call("GET", path, Some(token), None)
}

fn snapshot_all(s: &Server, token: &str, limit: u32) -> (String, Vec<Value>, usize) {
    let (status, first) = get(
        s,
        &format!("/api/v1/replication/snapshot?limit={limit}"),
        token,
    );
    assert_eq!(status, 200, "{first}");
    let cursor = first["cursor"].as_str().unwrap().to_owned();
    assert_eq!(first["prefix"], "kg");
    let mut tokens: Vec<Value> = first["tokens"].as_array().unwrap().clone();
    let mut next = first["next"].clone();
    let mut pages = 1;
    while let Some(after) = next.as_i64() {
        let (status, page) = get(
            s,
            &format!("/api/v1/replication/snapshot?limit={limit}&after={after}"),
            token,
        );
        assert_eq!(status, 200, "{page}");
        tokens.extend(page["tokens"].as_array().unwrap().iter().cloned());
        next = page["next"].clone();
        pages += 1;
    }
    (cursor, tokens, pages)
}

fn changes(s: &Server, token: &str, cursor: &str) -> (u16, Value) {
    get(
        s,
        &format!("/api/v1/replication/changes?after={cursor}"),
        token,
    )
}

both_backends!(replicating_needs_tokens_replicate);
fn replicating_needs_tokens_replicate(backend: Backend) {
    let s = Server::on(backend).start();
    let (_, manager) = s.create_token("manager", &["tokens:admin"]);
    for path in [
        "/api/v1/replication/snapshot",
        "/api/v1/replication/changes?after=abc.0",
    ] {
        let (status, body) = get(&s, path, &manager);
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("insufficient_scope")),
            "{path}"
        );
        assert_eq!(body["missingScopes"], json!(["tokens:replicate"]));
        let (status, _) = s.call("GET", path, None, None);
        assert_eq!(status, 401, "{path} without a token");
    }
}

both_backends!(a_snapshot_holds_every_token_of_the_tenant_as_hashes);
fn a_snapshot_holds_every_token_of_the_tenant_as_hashes(backend: Backend) {
    let s = Server::on(backend)
        .args(&["--scope", "orders:read=Read orders"])
        .start();
    let (_, replicator) = s.create_token("replica", &["tokens:replicate"]);
    let mut made = vec![
        (String::new(), s.admin_token.clone()),
        (String::new(), replicator.clone()),
    ];
    for i in 0..5 {
        made.push(s.create_token_from(json!({
            "name": format!("t{i}"),
            "scopes": ["orders:read"],
            "metadata": { "plan": "pro" },
            "allowedCidrs": ["10.0.0.0/8"],
        })));
    }
    let (_, limited) = s.create_token_from(json!({
        "name": "limited", "scopes": ["orders:read"], "credits": { "remaining": 10 },
    }));
    made.push((String::new(), limited.clone()));
    let (cursor, tokens, pages) = snapshot_all(&s, &replicator, 3);
    assert_eq!((tokens.len(), pages), (8, 3), "{tokens:?}");
    let text = serde_json::to_string(&tokens).unwrap();
    for (_, plain) in &made {
        assert!(!text.contains(plain.as_str()), "a secret in the snapshot");
        assert!(text.contains(&hex_hash(plain)), "every token's hash");
    }
    let t0 = tokens.iter().find(|t| t["name"] == "t0").unwrap();
    assert_eq!(t0["scopes"], json!(["orders:read"]));
    assert_eq!(t0["allowedCidrs"], json!(["10.0.0.0/8"]));
    assert_eq!(t0["metadata"], json!({ "plan": "pro" }));
    assert_eq!(
        (t0["enabled"].as_bool(), t0["usageControlled"].as_bool()),
        (Some(true), Some(false))
    );
    let l = tokens.iter().find(|t| t["name"] == "limited").unwrap();
    assert_eq!(l["usageControlled"], true);

    // Nothing changed since the snapshot: an empty answer with the same cursor.
    let (status, none) = changes(&s, &replicator, &cursor);
    assert_eq!(status, 200, "{none}");
    assert_eq!(
        (none["changes"].as_array().unwrap().len(), &none["cursor"]),
        (0, &json!(cursor))
    );

    // A disable, a scope change and a revoke, in the order they commit, once per token.
    let (id0, tok0) = &made[2];
    let (id1, tok1) = &made[3];
    assert_eq!(
        s.call(
            "POST",
            &format!("/api/v1/tokens/{id0}/disable"),
            Some(&s.admin_token),
            None
        )
        .0,
        200
    );
    let (st, _) = s.call(
        "PUT",
        &format!("/api/v1/tokens/{id1}"),
        Some(&s.admin_token),
        Some(json!({ "name": "t1", "scopes": ["tokens:read"] })),
    );
    assert_eq!(st, 200);
    assert_eq!(
        s.call(
            "DELETE",
            &format!("/api/v1/tokens/{id0}"),
            Some(&s.admin_token),
            None
        )
        .0,
        204
    );
    let (status, c) = changes(&s, &replicator, &cursor);
    assert_eq!(status, 200, "{c}");
    let got: Vec<(String, String)> = c["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ch| {
            let hash = ch["hash"]
                .as_str()
                .or(ch["token"]["hash"].as_str())
                .unwrap();
            (ch["op"].as_str().unwrap().to_owned(), hash.to_owned())
        })
        .collect();
    assert_eq!(
        got,
        [
            ("upsert".to_owned(), hex_hash(tok1)),
            ("delete".to_owned(), hex_hash(tok0))
        ],
        "{c}"
    );
    assert_eq!(c["changes"][0]["token"]["scopes"], json!(["tokens:read"]));
    let (_, after) = changes(&s, &replicator, c["cursor"].as_str().unwrap());
    assert_eq!(after["changes"], json!([]));
}

both_backends!(a_replica_sees_only_its_own_tenant);
fn a_replica_sees_only_its_own_tenant(backend: Backend) {
    let s = Server::on(backend).start();
    let (status, acme) = s.call(
        "POST",
        "/api/v1/tenants",
        Some(&s.admin_token),
        Some(json!({ "name": "acme" })),
    );
    assert_eq!(status, 201, "{acme}");
    let acme_admin = acme["adminToken"].as_str().unwrap();
    let (status, created) = s.call(
        "POST",
        "/api/v1/tokens",
        Some(acme_admin),
        Some(json!({ "name": "acme replica", "scopes": ["tokens:replicate"] })),
    );
    assert_eq!(status, 201, "{created}");
    let acme_replicator = created["token"].as_str().unwrap();
    let (cursor, tokens, _) = snapshot_all(&s, acme_replicator, 100);
    assert!(tokens.iter().all(|t| t["tenantId"] == "acme"), "{tokens:?}");
    assert_eq!(
        tokens.len(),
        2,
        "acme's admin token and its replica: {tokens:?}"
    );
    // A change in the default tenant moves the cursor on, with nothing in it for acme.
    s.create_token("default's", &["tokens:read"]);
    let (_, c) = changes(&s, acme_replicator, &cursor);
    assert_eq!(c["changes"], json!([]));
    assert_ne!(c["cursor"], json!(cursor));
}

both_backends!(bad_parameters_are_refused_with_a_reason);
fn bad_parameters_are_refused_with_a_reason(backend: Backend) {
    let s = Server::on(backend).start();
    let (_, r) = s.create_token("replica", &["tokens:replicate"]);
    let (_, snap) = get(&s, "/api/v1/replication/snapshot", &r);
    let cursor = snap["cursor"].as_str().unwrap();
    for (path, says) in [
        ("/api/v1/replication/snapshot?limit=0".to_owned(), "limit"),
        (
            "/api/v1/replication/snapshot?limit=10001".to_owned(),
            "limit",
        ),
        ("/api/v1/replication/snapshot?after=-1".to_owned(), "after"),
        ("/api/v1/replication/changes".to_owned(), "after"),
        (
            "/api/v1/replication/changes?after=garbage".to_owned(),
            "after",
        ),
        (
            format!("/api/v1/replication/changes?after={cursor}&wait=56"),
            "wait",
        ),
        (
            format!("/api/v1/replication/changes?after={cursor}&limit=0"),
            "limit",
        ),
    ] {
        let (status, body) = get(&s, &path, &r);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(says),
            "{path}: {body}"
        );
    }
    // A cursor of another database, or past the head: start again from a snapshot.
    let (log, seq) = cursor.rsplit_once('.').unwrap();
    let seq: i64 = seq.parse().unwrap();
    for other in [
        format!("0123456789ab.{seq}"),
        format!("{log}.{}", seq + 1000),
    ] {
        let (status, body) = changes(&s, &r, &other);
        assert_eq!(
            (status, body["code"].as_str()),
            (410, Some("cursor_too_old")),
            "{other}"
        );
    }
}

both_backends!(a_cursor_past_the_retention_is_gone);
fn a_cursor_past_the_retention_is_gone(backend: Backend) {
    let s = Server::on(backend)
        .args(&["--replication-retention", "1s"])
        .start();
    let (_, r) = s.create_token("replica", &["tokens:replicate"]);
    let (_, snap) = get(&s, "/api/v1/replication/snapshot", &r);
    let cursor = snap["cursor"].as_str().unwrap().to_owned();
    s.create_token("made later", &["tokens:read"]);
    // Past the retention and the prune after it (every tenth of the retention).
    std::thread::sleep(Duration::from_millis(2500));
    let (status, body) = changes(&s, &r, &cursor);
    assert_eq!(
        (status, body["code"].as_str()),
        (410, Some("cursor_too_old")),
        "{body}"
    );
    // A new snapshot's cursor is good again.
    let (_, snap) = get(&s, "/api/v1/replication/snapshot", &r);
    let (status, _) = changes(&s, &r, snap["cursor"].as_str().unwrap());
    assert_eq!(status, 200);
}
