//! Reuse detection against a real `keygate serve`: a token rotated out and presented after its
//! grace period is refused as `EXPIRED` on every surface, and audited as `token.reused` with the
//! client's address (once per token, address and minute); under the policy `onReuse: "revoke"`
//! the tokens that replaced it are revoked too, each audited with the reason.
//!
//! The `token.reused` event itself is checked at the store (`keygate-store/tests/policies.rs`):
//! webhook delivery is not part of this change.

mod common;
use common::*;

use serde_json::{json, Value};

fn audit(s: &Server, query: &str) -> Vec<Value> {
    let (status, v) = s.call(
        "GET",
        &format!("/api/v1/audit?{query}"),
        Some(&s.admin_token),
        None,
    );
    assert_eq!(status, 200, "{v}");
    v["items"].as_array().unwrap().clone()
}

fn reuses_from(s: &Server, id: &str, ip: &str) -> Vec<Value> {
    audit(s, &format!("action=token.reused&targetId={id}"))
        .into_iter()
        .filter(|e| e["ip"] == ip)
        .collect()
}

/// Rotates `id` with this grace period; returns the successor's (id, token).
fn rotate(s: &Server, id: &str, grace: u64) -> (String, String) {
    let (status, v) = s.call(
        "POST",
        &format!("/api/v1/tokens/{id}/rotate"),
        Some(&s.admin_token),
        Some(json!({ "gracePeriodSeconds": grace })),
    );
    assert_eq!(status, 201, "{v}");
    (
        v["id"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    )
}

/// `POST /api/v1/verify` on behalf of a client at `ip`.
fn verify_for(s: &Server, token: &str, ip: &str) -> Value {
    let (status, v) = s.call(
        "POST",
        "/api/v1/verify",
        None,
        Some(json!({ "token": token, "ip": ip })),
    );
    assert_eq!(status, 200, "{v}");
    v
}

fn minute_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60
}

both_backends!(a_rotated_out_token_presented_again_is_reported_on_every_surface);
/// With the default policy (`notify`): refused as expired, audited once per address and minute
/// with the address, and the successor keeps working.
fn a_rotated_out_token_presented_again_is_reported_on_every_surface(backend: Backend) {
    let s = Server::on(backend)
        .args(&["--scope", "documents:read=Read documents"])
        .start();
    let (old_id, old) = s.create_token("ci", &["tokens:read", "documents:read"]);
    let (new_id, new) = rotate(&s, &old_id, 0);

    // The verify route, for a client's address; twice within one minute is one entry.
    let mut n = 10;
    let ip = loop {
        let ip = format!("203.0.113.{n}");
        let minute = minute_now();
        for _ in 0..2 {
            assert_eq!(verify_for(&s, &old, &ip)["code"], "EXPIRED");
        }
        if minute_now() == minute {
            break ip;
        }
        n += 1; // Crossed a minute: try again from another address.
    };
    // Forward-auth, from the connection's address.
    let (status, v) = status_json(
        client_from("127.0.0.2")
            .get(s.url("/api/v1/auth"))
            .bearer_auth(&old)
            .send()
            .unwrap(),
    );
    assert_error_body((status, v), 401, "token_expired");
    // keygate's own API.
    let (status, v) = status_json(
        client_from("127.0.0.3")
            .get(s.url("/api/v1/tokens/self"))
            .bearer_auth(&old)
            .send()
            .unwrap(),
    );
    assert_error_body((status, v), 401, "token_expired");
    // Unkey's verifyKey.
    let (status, v) = status_json(
        client_from("127.0.0.4")
            .post(s.url("/v2/keys.verifyKey"))
            .bearer_auth(&s.admin_token)
            .json(&json!({ "key": old }))
            .send()
            .unwrap(),
    );
    assert_eq!(
        (status, &v["data"]["code"]),
        (200, &json!("EXPIRED")),
        "{v}"
    );

    for address in [ip.as_str(), "127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        let entry = eventually(&format!("token.reused from {address}"), || {
            reuses_from(&s, &old_id, address).into_iter().next()
        });
        assert_eq!(entry["details"]["ip"], address, "{entry}");
        assert_eq!(entry["details"]["successorId"], new_id, "{entry}");
        assert_eq!(entry["details"]["onReuse"], "notify", "{entry}");
        assert_eq!(entry["actor"], old_id, "{entry}");
        assert!(
            !entry.to_string().contains(&old),
            "no secret in the audit log"
        );
    }
    assert_eq!(
        reuses_from(&s, &old_id, &ip).len(),
        1,
        "one entry per token, address and minute"
    );

    // Notify only: the successor works, nothing was revoked.
    assert_eq!(s.verify(&new, &["documents:read"])["valid"], true);
    assert!(audit(&s, &format!("action=token.delete&targetId={new_id}")).is_empty());

    // An expired token that was never rotated is no reuse.
    let (plain_id, plain) = s
        .create_token_from(json!({ "name": "short", "scopes": ["tokens:read"],
                                                          "expiresIn": 1 }));
    eventually("the short token expires", || {
        (verify_for(&s, &plain, "203.0.113.200")["code"] == "EXPIRED").then_some(())
    });
    // Presented from a marker address after it: once the marker's entry is there, the plain
    // token's would be too.
    assert_eq!(verify_for(&s, &old, "203.0.113.201")["code"], "EXPIRED");
    eventually("the marker's entry", || {
        reuses_from(&s, &old_id, "203.0.113.201").into_iter().next()
    });
    assert!(audit(&s, &format!("action=token.reused&targetId={plain_id}")).is_empty());
}

both_backends!(with_on_reuse_revoke_the_successor_chain_is_revoked);
/// GitLab's behaviour: the reuse of a rotated-out token revokes every token that replaced it.
fn with_on_reuse_revoke_the_successor_chain_is_revoked(backend: Backend) {
    let s = Server::on(backend).start();
    let (status, v) = s.call(
        "PUT",
        "/api/v1/tenants/default/policy",
        Some(&s.admin_token),
        Some(json!({ "onReuse": "revoke" })),
    );
    assert_eq!(status, 200, "{v}");
    let (a_id, a) = s.create_token("deploy", &["tokens:read"]);
    let (b_id, b) = rotate(&s, &a_id, 0);
    // b is rotated with a grace period: it still works, and is revoked all the same.
    let (c_id, c) = rotate(&s, &b_id, 3600);
    assert_eq!(s.verify(&b, &[])["valid"], true);
    assert_eq!(s.verify(&c, &[])["valid"], true);
    let (_, unrelated) = s.create_token("unrelated", &["tokens:read"]);

    assert_eq!(verify_for(&s, &a, "198.51.100.7")["code"], "EXPIRED");
    let entry = eventually("token.reused", || {
        reuses_from(&s, &a_id, "198.51.100.7").into_iter().next()
    });
    assert_eq!(entry["details"]["onReuse"], "revoke", "{entry}");
    assert_eq!(entry["details"]["revoked"], json!([b_id, c_id]), "{entry}");

    // Revoked in the same transaction as the audit entry: gone now.
    for (id, token) in [(&b_id, &b), (&c_id, &c)] {
        assert_eq!(s.verify(token, &[])["code"], "NOT_FOUND", "{id}");
        let (status, _) = s.call(
            "GET",
            &format!("/api/v1/tokens/{id}"),
            Some(&s.admin_token),
            None,
        );
        assert_eq!(status, 404, "{id}");
        let revoked = audit(&s, &format!("action=token.delete&targetId={id}"));
        assert_eq!(revoked.len(), 1, "{revoked:?}");
        assert_eq!(revoked[0]["actor"], "system", "{revoked:?}");
        assert_eq!(revoked[0]["details"]["reason"], "reuse", "{revoked:?}");
        assert_eq!(revoked[0]["details"]["reusedTokenId"], a_id, "{revoked:?}");
        assert_eq!(revoked[0]["ip"], "198.51.100.7", "{revoked:?}");
    }
    // Nothing else was touched.
    assert_eq!(s.verify(&unrelated, &[])["valid"], true);
    assert_eq!(s.verify(&s.admin_token, &[])["valid"], true);
}
