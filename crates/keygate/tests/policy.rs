//! A tenant's token policy (`GET`/`PUT /api/v1/tenants/{id}/policy`) against a real `keygate
//! serve`: only the tenant's own admins read and replace it, bad values are refused by name, a
//! token beyond it is refused with a 422 naming the rule on every surface that makes tokens
//! (native, Instana, Dynatrace, Interana, Unkey) and nothing is created, and the tokens that
//! already break a new policy are listed, counted and left working.

mod common;
use common::*;

use serde_json::{json, Value};

const HOUR: i64 = 3600;

fn policy_path(tenant: &str) -> String {
    format!("/api/v1/tenants/{tenant}/policy")
}

fn put_policy(s: &Server, token: &str, body: Value) -> (u16, Value) {
    s.call("PUT", &policy_path("default"), Some(token), Some(body))
}

fn token_ids(s: &Server, query: &str) -> Vec<String> {
    let mut ids: Vec<String> = s
        .all_items(&format!("/api/v1/tokens{query}"))
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// A 422 whose text names the rule.
fn assert_names_rule(status: u16, body: &Value, want_status: u16, rule: &str) {
    assert_eq!(status, want_status, "{body}");
    assert!(
        body.to_string().contains(rule),
        "the refusal names {rule}: {body}"
    );
}

both_backends!(the_policy_is_read_and_replaced_by_the_tenants_own_admins_only);
fn the_policy_is_read_and_replaced_by_the_tenants_own_admins_only(backend: Backend) {
    let s = Server::on(backend).start();
    let (_, writer) = s.create_token("writer", &["tokens:read", "tokens:write"]);
    let (status, v) = s.call("GET", &policy_path("default"), Some(&s.admin_token), None);
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v,
        json!({ "tenantId": "default", "maxLifetimeSeconds": null, "requireExpiry": false,
                "onReuse": "notify", "onLeak": "revoke", "violatingTokens": 0 })
    );

    let strict = json!({ "maxLifetimeSeconds": 90 * 24 * HOUR, "requireExpiry": true,
                         "onReuse": "revoke", "onLeak": "disable" });
    let (status, v) = put_policy(&s, &s.admin_token, strict.clone());
    assert_eq!(status, 200, "{v}");
    for field in ["maxLifetimeSeconds", "requireExpiry", "onReuse", "onLeak"] {
        assert_eq!(v[field], strict[field], "{field}: {v}");
    }
    // The bootstrap admin token and `writer` never expire: they break the new policy, and are
    // left working.
    assert_eq!(v["violatingTokens"], 2, "{v}");
    assert_eq!(s.verify(&s.admin_token, &[])["valid"], true);
    let (_, read) = s.call("GET", &policy_path("default"), Some(&s.admin_token), None);
    assert_eq!(read, v);

    // Audited with what it was and what it became.
    let (_, audit) = s.call(
        "GET",
        "/api/v1/audit?action=tenant.policy_update",
        Some(&s.admin_token),
        None,
    );
    let entry = &audit["items"][0];
    assert_eq!(entry["targetId"], "default", "{audit}");
    assert_eq!(entry["details"]["old"]["onReuse"], "notify", "{entry}");
    assert_eq!(entry["details"]["new"]["onReuse"], "revoke", "{entry}");
    assert_eq!(
        entry["details"]["new"]["maxLifetimeSeconds"],
        90 * 24 * HOUR,
        "{entry}"
    );

    // Bad values: 422 naming the field; nothing changes.
    for (body, field) in [
        (json!({ "maxLifetimeSeconds": 0 }), "maxLifetimeSeconds"),
        (json!({ "maxLifetimeSeconds": -5 }), "maxLifetimeSeconds"),
        (
            json!({ "maxLifetimeSeconds": 10 * 365 * 24 * HOUR + 1 }),
            "maxLifetimeSeconds",
        ),
        (json!({ "onReuse": "explode" }), "onReuse"),
        (json!({ "onLeak": "ignore" }), "onLeak"),
        (json!({ "requireExpiry": "yes" }), "requireExpiry"),
        (json!({ "maxAge": 5 }), "maxAge"),
    ] {
        let (status, v) = put_policy(&s, &s.admin_token, body.clone());
        assert_eq!(status, 422, "{body}: {v}");
        assert_eq!(v["code"], "invalid_request", "{v}");
        assert!(
            v["message"].as_str().unwrap().contains(field),
            "{body}: {v}"
        );
    }
    let (_, after) = s.call("GET", &policy_path("default"), Some(&s.admin_token), None);
    assert_eq!(after, read, "a refused PUT changes nothing");

    // Without tokens:admin: 403, for reading and for writing.
    assert_error_body(
        s.call("GET", &policy_path("default"), Some(&writer), None),
        403,
        "insufficient_scope",
    );
    assert_error_body(
        put_policy(&s, &writer, json!({})),
        403,
        "insufficient_scope",
    );

    // An admin of another tenant finds no such tenant, and its own policy is its own.
    let (status, acme) = s.call(
        "POST",
        "/api/v1/tenants",
        Some(&s.admin_token),
        Some(json!({ "name": "acme" })),
    );
    assert_eq!(status, 201, "{acme}");
    let acme_token = acme["adminToken"].as_str().unwrap();
    assert_error_body(
        s.call("GET", &policy_path("default"), Some(acme_token), None),
        404,
        "not_found",
    );
    assert_error_body(
        put_policy(&s, acme_token, json!({ "onReuse": "notify" })),
        404,
        "not_found",
    );
    let (status, theirs) = s.call("GET", &policy_path("acme"), Some(acme_token), None);
    assert_eq!(
        (status, &theirs["onReuse"]),
        (200, &json!("notify")),
        "{theirs}"
    );
    let (_, ours) = s.call("GET", &policy_path("default"), Some(&s.admin_token), None);
    assert_eq!(ours, read, "another tenant's admin changed nothing here");
}

both_backends!(a_token_beyond_the_policy_is_refused_on_every_surface);
/// One refusal per surface, each in the surface's own error format, each naming the rule, and
/// no token made by any of them.
fn a_token_beyond_the_policy_is_refused_on_every_surface(backend: Backend) {
    let s = Server::on(backend).start();
    // Made before the policy: a day-long token to rotate and extend later.
    let (long_id, _) = s.create_token_from(json!({ "name": "long", "scopes": ["tokens:read"],
                                                    "expiresIn": 24 * HOUR }));
    let (status, v) = put_policy(
        &s,
        &s.admin_token,
        json!({ "maxLifetimeSeconds": HOUR, "requireExpiry": true }),
    );
    assert_eq!(status, 200, "{v}");
    let before = token_ids(&s, "");

    // Native create: without an expiry, and living too long.
    let create = |body: Value| s.call("POST", "/api/v1/tokens", Some(&s.admin_token), Some(body));
    let (status, v) = create(json!({ "name": "n", "scopes": ["tokens:read"] }));
    assert_names_rule(status, &v, 422, "maxLifetimeSeconds");
    assert!(
        v["message"].as_str().unwrap().contains("never expire"),
        "{v}"
    );
    let (status, v) = create(json!({ "name": "n", "scopes": ["tokens:read"],
                                     "expiresIn": 2 * HOUR }));
    assert_names_rule(status, &v, 422, "maxLifetimeSeconds");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("at most 3600 s; this one would live 7200 s"),
        "{v}"
    );
    // Native rotate: the successor would live as long as the old token, a day.
    let (status, v) = s.call(
        "POST",
        &format!("/api/v1/tokens/{long_id}/rotate"),
        Some(&s.admin_token),
        Some(json!({ "gracePeriodSeconds": 0 })),
    );
    assert_names_rule(status, &v, 422, "maxLifetimeSeconds");

    // Instana: its own secret and id, no expiry.
    let (status, v) = status_json(
        s.anon("POST", "/api/settings/api-tokens")
            .header("authorization", format!("apiToken {}", s.admin_token))
            .json(&json!({ "accessGrantingToken": "instana-secret-0123456789",
                           "internalId": "inst-1", "name": "n" }))
            .send()
            .unwrap(),
    );
    assert_names_rule(status, &v, 422, "maxLifetimeSeconds");
    assert_eq!(v["code"], "invalid_request", "{v}");

    // Dynatrace: its error body, with its status for a refused body.
    let (status, v) = status_json(
        s.anon("POST", "/api/v2/apiTokens")
            .header("Authorization", format!("Api-Token {}", s.admin_token))
            .json(&json!({ "name": "n", "scopes": ["apiTokens.read"] }))
            .send()
            .unwrap(),
    );
    assert_names_rule(status, &v, 400, "maxLifetimeSeconds");
    assert_eq!(v["error"]["code"], 400, "{v}");

    // Interana: a token for the caller, as long-lived as the caller's own (which never expires).
    let (status, v) = status_json(
        s.anon("POST", "/api/create_token")
            .header("Authorization", format!("Token {}", s.admin_token))
            .send()
            .unwrap(),
    );
    assert_names_rule(status, &v, 422, "maxLifetimeSeconds");
    assert_eq!(v["success"], false, "{v}");

    // Unkey: its error envelope.
    let (status, v) = s.call(
        "POST",
        "/v2/keys.createKey",
        Some(&s.admin_token),
        Some(json!({ "apiId": "default" })),
    );
    assert!((400..500).contains(&status), "{status}: {v}");
    assert_eq!(v["error"]["status"], status, "{v}");
    assert!(
        v["error"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("maxLifetimeSeconds")),
        "{v}"
    );

    assert_eq!(token_ids(&s, ""), before, "no surface made a token");

    // Within the policy, a token is made, and its expiry may not then grow beyond it.
    let (short_id, _) = s.create_token_from(json!({ "name": "short", "scopes": ["tokens:read"],
                                                     "expiresIn": 600 }));
    let far = (time::OffsetDateTime::now_utc() + time::Duration::hours(3))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (status, v) = s.call(
        "PUT",
        &format!("/api/v1/tokens/{short_id}"),
        Some(&s.admin_token),
        Some(json!({ "name": "short", "scopes": ["tokens:read"], "expiresAt": far })),
    );
    assert_names_rule(status, &v, 422, "maxLifetimeSeconds");
    let (status, v) = s.call(
        "PUT",
        &format!("/api/v1/tokens/{short_id}"),
        Some(&s.admin_token),
        Some(json!({ "name": "short", "scopes": ["tokens:read"], "expiresAt": null })),
    );
    assert_names_rule(status, &v, 422, "maxLifetimeSeconds");

    // requireExpiry alone names itself.
    put_policy(&s, &s.admin_token, json!({ "requireExpiry": true }));
    let (status, v) = create(json!({ "name": "n", "scopes": ["tokens:read"] }));
    assert_names_rule(status, &v, 422, "requireExpiry");
}

both_backends!(tokens_made_before_a_stricter_policy_are_listed_not_changed);
/// A stricter policy changes no token: those that break it are counted, listed, keep working
/// and may still be changed in ways that do not touch their expiry.
fn tokens_made_before_a_stricter_policy_are_listed_not_changed(backend: Backend) {
    let s = Server::on(backend).start();
    let (forever_id, forever) = s.create_token("forever", &["tokens:read"]);
    let (week_id, _) = s.create_token_from(json!({ "name": "week", "scopes": ["tokens:read"],
                                                    "expiresIn": 7 * 24 * HOUR }));
    let (hour_id, _) = s.create_token_from(json!({ "name": "hour", "scopes": ["tokens:read"],
                                                    "expiresIn": HOUR }));
    assert!(token_ids(&s, "?violatesPolicy=true").is_empty());

    let (status, v) = put_policy(
        &s,
        &s.admin_token,
        json!({ "maxLifetimeSeconds": 24 * HOUR }),
    );
    assert_eq!(status, 200, "{v}");
    let listed = token_ids(&s, "?violatesPolicy=true");
    assert!(
        listed.contains(&forever_id) && listed.contains(&week_id),
        "{listed:?}"
    );
    assert!(!listed.contains(&hour_id), "{listed:?}");
    // The bootstrap admin token never expires either.
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert_eq!(v["violatingTokens"], 3, "{v}");
    assert_eq!(token_ids(&s, "?violatesPolicy=false").len(), 4);

    // They still work, and a change that leaves the expiry alone is allowed.
    assert_eq!(s.verify(&forever, &[])["valid"], true);
    let (status, v) = s.call(
        "PUT",
        &format!("/api/v1/tokens/{forever_id}"),
        Some(&s.admin_token),
        Some(json!({ "name": "renamed", "scopes": ["tokens:read"] })),
    );
    assert_eq!((status, &v["name"]), (200, &json!("renamed")), "{v}");
    let (status, v) = s.call(
        "POST",
        &format!("/api/v1/tokens/{week_id}/disable"),
        Some(&s.admin_token),
        None,
    );
    assert_eq!(status, 200, "{v}");
    // Bringing one within the policy takes it off the list.
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (status, v) = s.call(
        "PUT",
        &format!("/api/v1/tokens/{forever_id}"),
        Some(&s.admin_token),
        Some(json!({ "name": "renamed", "scopes": ["tokens:read"], "expiresAt": soon })),
    );
    assert_eq!(status, 200, "{v}");
    assert!(!token_ids(&s, "?violatesPolicy=true").contains(&forever_id));
}
