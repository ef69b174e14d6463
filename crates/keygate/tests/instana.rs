//! The Instana-compatible token API (`/api/settings/api-tokens`), end to end: raw HTTP for
//! every route and error, and the unmodified `instana-client` package from PyPI.

mod common;

use std::process::Command;

use common::*;
use serde_json::{json, Value};

const BASE: &str = "/api/settings/api-tokens";

/// The actions of the audit entries `query` selects, newest first, read with the admin token.
fn audit_actions(s: &Server, query: &str) -> Vec<String> {
    let (st, audit) = status_json(
        s.admin("GET", &format!("/api/v1/audit?{query}"))
            .send()
            .unwrap(),
    );
    assert_eq!(st, 200, "{audit}");
    audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

/// A request with `Authorization: apiToken <token>`, as the Instana client sends it.
fn instana(s: &Server, method: &str, path: &str, token: &str) -> reqwest::blocking::RequestBuilder {
    s.anon(method, path)
        .header("authorization", format!("apiToken {token}"))
}

fn post(s: &Server, token: &str, body: Value) -> (u16, Value) {
    status_json(instana(s, "POST", BASE, token).json(&body).send().unwrap())
}

fn get(s: &Server, token: &str, internal_id: &str) -> (u16, Value) {
    status_json(
        instana(s, "GET", &format!("{BASE}/{internal_id}"), token)
            .send()
            .unwrap(),
    )
}

fn list(s: &Server, token: &str) -> Vec<Value> {
    let (st, v) = status_json(instana(s, "GET", BASE, token).send().unwrap());
    assert_eq!(st, 200, "{v}");
    v.as_array().expect("a JSON array").clone()
}

both_backends!(crud_with_raw_http);
fn crud_with_raw_http(backend: Backend) {
    let s = Server::on(backend).start();
    let admin = s.admin_token.clone();
    let secret = "my-own-instana-secret-0001";

    let (st, v) = post(
        &s,
        &admin,
        json!({"accessGrantingToken": secret, "internalId": "ext-1", "name": "first",
               "canViewAuditLog": true, "canConfigureUsers": true, "canViewLogs": false}),
    );
    assert_eq!(st, 200, "POST answers 200, not 201: {v}");
    assert_eq!(v["internalId"], "ext-1");
    assert_eq!(v["name"], "first");
    let id = v["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("kg_"), "{v}");
    // The secret is never shown, not even in the answer to the request that chose it.
    assert_eq!(v["accessGrantingToken"], format!("{id}_****"));
    assert!(!v.to_string().contains(secret));
    assert_eq!(v["canViewAuditLog"], true);
    assert_eq!(v["canConfigureUsers"], true);
    assert_eq!(v["canViewLogs"], false);
    assert_eq!(v["limitedZhmcScope"], false, "every flag is present: {v}");
    assert!(v["createdOn"].as_i64().unwrap() > 1_600_000_000_000);
    assert!(v.get("expiresOn").is_none() && v.get("lastUsedOn").is_none());

    let (st, g) = get(&s, &admin, "ext-1");
    assert_eq!(st, 200);
    assert_eq!(g, v, "GET shows what POST answered");

    // The chosen secret works on the native API and carries exactly the flags set.
    let (st, me) = self_of(&s, secret);
    assert_eq!(st, 200, "{me}");
    assert_eq!(me["id"], id.as_str());
    assert_eq!(
        me["scopes"],
        json!(["instana:canConfigureUsers", "instana:canViewAuditLog"])
    );
    // ...and it was used, which a read shows as lastUsedOn eventually (written behind).

    // The list has it and the bootstrap token (under its keygate id, every flag true).
    let all = list(&s, &admin);
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.iter().any(|t| t["internalId"] == "ext-1"));
    let boot = all.iter().find(|t| t["internalId"] != "ext-1").unwrap();
    assert_eq!(boot["internalId"], boot["id"]);
    assert_eq!(boot["canConfigureApiTokens"], true);
    assert_eq!(boot["limitedSAPScope"], true);
    let (st, b) = get(&s, &admin, boot["internalId"].as_str().unwrap());
    assert_eq!((st, &b["id"]), (200, &boot["id"]));

    // PUT renames and replaces the flags; an absent flag becomes false.
    let (st, p) = status_json(
        instana(&s, "PUT", &format!("{BASE}/ext-1"), &admin)
            .json(
                &json!({"accessGrantingToken": v["accessGrantingToken"], "internalId": "ext-1",
                          "name": "renamed", "canViewLogs": true}),
            )
            .send()
            .unwrap(),
    );
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["name"], "renamed");
    assert_eq!(p["canViewLogs"], true);
    assert_eq!(p["canViewAuditLog"], false);
    assert_eq!(p["id"], id.as_str(), "the same token");
    let (_, me) = self_of(&s, secret);
    assert_eq!(me["scopes"], json!(["instana:canViewLogs"]), "seen at once");
    assert_eq!(me["name"], "renamed");

    // DELETE answers 204; the token is gone and rejected.
    let r = instana(&s, "DELETE", &format!("{BASE}/ext-1"), &admin)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(get(&s, &admin, "ext-1").0, 404);
    assert_unauthorized(
        instana(&s, "GET", "/api/v1/tokens/self", secret)
            .send()
            .unwrap(),
        "Invalid API token",
        "invalid_token",
        "the deleted token",
    );
    let r = instana(&s, "DELETE", &format!("{BASE}/ext-1"), &admin)
        .send()
        .unwrap();
    assert_error(r, 404, "not_found");

    // Every change is in the audit log, under the keygate id.
    let actions = audit_actions(&s, &format!("targetId={id}"));
    for a in ["token.create", "token.update", "token.delete"] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
}

both_backends!(put_creates_an_unknown_id_and_query_token_works);
fn put_creates_an_unknown_id_and_query_token_works(backend: Backend) {
    let s = Server::on(backend).start();
    let admin = s.admin_token.clone();
    let secret = "put-created-secret-0123456789";
    let (st, v) = status_json(
        instana(&s, "PUT", &format!("{BASE}/by-put"), &admin)
            .json(
                &json!({"accessGrantingToken": secret, "internalId": "by-put",
                          "name": "made by put", "canCreateHeapDump": true}),
            )
            .send()
            .unwrap(),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["internalId"], "by-put");
    assert_eq!(v["canCreateHeapDump"], true);
    assert_eq!(self_of(&s, secret).0, 200);
    // The body's internalId may be left out on PUT: the path names the token.
    let (st, v) = status_json(
        instana(&s, "PUT", &format!("{BASE}/by-put-2"), &admin)
            .json(&json!({"accessGrantingToken": "another-secret-abcdefgh", "name": "x"}))
            .send()
            .unwrap(),
    );
    assert_eq!((st, &v["internalId"]), (200, &json!("by-put-2")), "{v}");
    // A PUT without a secret cannot create.
    let r = instana(&s, "PUT", &format!("{BASE}/by-put-3"), &admin)
        .json(&json!({"internalId": "by-put-3", "name": "x"}))
        .send()
        .unwrap();
    assert_error(r, 422, "invalid_request");

    // Seed 001's query-parameter style works on this surface too.
    let r = s
        .anon("GET", &format!("{BASE}/by-put?api_token={admin}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .anon("GET", &format!("{BASE}?apiToken={admin}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

both_backends!(errors_have_instanas_shape_and_never_500);
fn errors_have_instanas_shape_and_never_500(backend: Backend) {
    let s = Server::on(backend).start();
    let admin = s.admin_token.clone();

    // 401: no token, a wrong token, a made-up one; Instana's body.
    let r = s.anon("GET", BASE).send().unwrap();
    assert_unauthorized(r, "Invalid API token", "missing_token", "no token");
    for (what, token) in [
        ("a wrong token", "not-a-real-token-1234567".to_owned()),
        ("a made-up token", fresh_token()),
    ] {
        let r = instana(&s, "GET", BASE, &token).send().unwrap();
        assert_unauthorized(r, "Invalid API token", "invalid_token", what);
    }
    let r = instana(&s, "POST", BASE, "nope")
        .json(&json!({}))
        .send()
        .unwrap();
    assert_unauthorized(r, "Invalid API token", "invalid_token", "a malformed token");

    // 403: a valid token that may not manage tokens here.
    let (_, reader) = s.create_token("reader", &["tokens:read", "instana:canViewLogs"]);
    for (m, p) in [
        ("GET", BASE.to_owned()),
        ("GET", format!("{BASE}/x")),
        ("DELETE", format!("{BASE}/x")),
    ] {
        let r = instana(&s, m, &p, &reader).send().unwrap();
        let v = assert_error(r, 403, "insufficient_scope");
        assert_eq!(v["missingScopes"], json!(["instana:canConfigureApiTokens"]));
        assert_error_snapshot!("instana_403_without_the_permission", v);
    }

    // 404 for unknown ids.
    let v = assert_error(
        instana(&s, "GET", &format!("{BASE}/nope"), &admin)
            .send()
            .unwrap(),
        404,
        "not_found",
    );
    assert_error_snapshot!("instana_404_unknown_internal_id", v);

    let ok = json!({"accessGrantingToken": "a-good-secret-0123456789", "internalId": "dup",
                    "name": "n"});
    assert_eq!(post(&s, &admin, ok.clone()).0, 200);
    // A duplicate internalId, and a duplicate secret under a new id: 409.
    let (st, v) = post(&s, &admin, ok);
    assert_eq!((st, v["code"].as_str()), (409, Some("conflict")), "{v}");
    assert_error_snapshot!("instana_409_duplicate_internal_id", v);
    let (st, v) = post(
        &s,
        &admin,
        json!({"accessGrantingToken": "a-good-secret-0123456789", "internalId": "dup2", "name": "n"}),
    );
    assert_eq!((st, v["code"].as_str()), (409, Some("conflict")), "{v}");
    assert!(!v.to_string().contains("UNIQUE"), "no database detail: {v}");
    // An internalId equal to another token's keygate id is refused, as any of that shape is.
    let (boot_id, _) = s.create_token("native", &["tokens:read"]);
    let (st, _) = post(
        &s,
        &admin,
        json!({"accessGrantingToken": "yet-another-secret-0123", "internalId": boot_id, "name": "n"}),
    );
    assert_eq!(st, 422);

    // Bad bodies: 400 or 422 with the native body, never 500.
    let bad: Vec<(Value, u16)> = vec![
        (json!({"internalId": "b1", "name": "n"}), 422), // no secret
        (
            json!({"accessGrantingToken": "", "internalId": "b1", "name": "n"}),
            422,
        ),
        (
            json!({"accessGrantingToken": "short", "internalId": "b1", "name": "n"}),
            422,
        ),
        (
            json!({"accessGrantingToken": "has a space in it 123456", "internalId": "b1", "name": "n"}),
            422,
        ),
        (
            json!({"accessGrantingToken": "x".repeat(257), "internalId": "b1", "name": "n"}),
            422,
        ),
        (
            json!({"accessGrantingToken": "a-good-secret-99999999", "name": "n"}),
            422,
        ), // no id
        (
            json!({"accessGrantingToken": "a-good-secret-99999999", "internalId": "", "name": "n"}),
            422,
        ),
        (
            json!({"accessGrantingToken": "a-good-secret-99999999", "internalId": "b1"}),
            422,
        ), // no name
        (
            json!({"accessGrantingToken": "a-good-secret-99999999", "internalId": "b1", "name": ""}),
            422,
        ),
        (
            json!({"accessGrantingToken": "a-good-secret-99999999", "internalId": "b1", "name": "n",
                "canViewLogs": "true"}),
            422,
        ), // strict booleans
        (
            json!({"accessGrantingToken": "a-good-secret-99999999", "internalId": "b1", "name": "n",
                "canViewLogs": 1}),
            422,
        ),
        (
            json!({"accessGrantingToken": 12345678901234567i64, "internalId": "b1", "name": "n"}),
            422,
        ),
        (
            json!({"accessGrantingToken": "a-good-secret-99999999", "internalId": "b1", "name": "n",
                "expiresOn": 1000}),
            422,
        ), // in the past
        (
            json!({"accessGrantingToken": "a-good-secret-99999999", "internalId": "b1", "name": "n",
                "expiresOn": "tomorrow"}),
            422,
        ),
        (
            json!({"accessGrantingToken": "a-good-secret-99999999", "internalId": "b1", "name": "n",
                "expiresOn": i64::MAX}),
            422,
        ),
        (json!([1, 2]), 422),
    ];
    for (body, want) in bad {
        let (st, v) = post(&s, &admin, body.clone());
        assert_eq!(st, want, "{body} → {v}");
        assert_eq!(v["code"], "invalid_request", "{body} → {v}");
    }
    let (_, no_secret) = post(&s, &admin, json!({"internalId": "b1", "name": "n"}));
    assert_error_snapshot!("instana_422_without_a_secret", no_secret);
    for raw in ["{", "not json", ""] {
        let r = instana(&s, "POST", BASE, &admin)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .unwrap();
        assert_error(r, 400, "invalid_request");
    }
    assert!(get(&s, &admin, "b1").0 == 404, "nothing was made");

    // PUT: a body naming another id, and a bad name on an existing token.
    let r = instana(&s, "PUT", &format!("{BASE}/dup"), &admin)
        .json(&json!({"internalId": "other", "name": "n"}))
        .send()
        .unwrap();
    assert_error(r, 422, "invalid_request");
    let r = instana(&s, "PUT", &format!("{BASE}/dup"), &admin)
        .json(&json!({"internalId": "dup", "name": "x".repeat(201)}))
        .send()
        .unwrap();
    assert_error(r, 422, "invalid_request");
    let r = instana(&s, "PUT", &format!("{BASE}/dup"), &admin)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .unwrap();
    assert_error(r, 400, "invalid_request");

    // A valid expiresOn is kept and enforced.
    let soon = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 3_600_000) as i64;
    let (st, v) = post(
        &s,
        &admin,
        json!({"accessGrantingToken": "expiring-secret-0123456", "internalId": "exp",
               "name": "n", "expiresOn": soon}),
    );
    assert_eq!((st, v["expiresOn"].as_i64()), (200, Some(soon)), "{v}");
}

both_backends!(visibility_and_no_escalation);
fn visibility_and_no_escalation(backend: Backend) {
    let s = Server::on(backend).start();
    let admin = s.admin_token.clone();
    // A service token (owner: the tenant) that may manage tokens here and holds two flags.
    let r = s
        .admin("POST", "/api/v1/tokens")
        .json(&json!({"name": "manager", "ownerId": "default",
                      "scopes": ["instana:canConfigureApiTokens", "instana:canViewLogs"]}))
        .send()
        .unwrap();
    let (st, m) = status_json(r);
    assert_eq!(st, 201, "{m}");
    let manager = m["token"].as_str().unwrap().to_owned();

    // It sees only its owner's tokens: itself, not the bootstrap token.
    let mine = list(&s, &manager);
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["id"], m["id"]);
    assert_eq!(mine[0]["canConfigureApiTokens"], true);
    assert_eq!(mine[0]["canViewLogs"], true);
    assert_eq!(mine[0]["canViewAuditLog"], false);
    let boot_id = list(&s, &admin)
        .into_iter()
        .find(|t| t["id"] != m["id"])
        .unwrap()["internalId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        get(&s, &manager, &boot_id).0,
        404,
        "another owner's token is not found"
    );
    let r = instana(&s, "DELETE", &format!("{BASE}/{boot_id}"), &manager)
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);

    // It can give what it holds, not more.
    let (st, v) = post(
        &s,
        &manager,
        json!({"accessGrantingToken": "child-secret-0123456789", "internalId": "child",
               "name": "child", "canViewLogs": true}),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = post(
        &s,
        &manager,
        json!({"accessGrantingToken": "child-secret-9876543210", "internalId": "child2",
               "name": "child2", "canViewAuditLog": true}),
    );
    assert_eq!(
        (st, v["code"].as_str()),
        (403, Some("insufficient_scope")),
        "{v}"
    );
    assert_eq!(v["missingScopes"], json!(["instana:canViewAuditLog"]));
    let r = instana(&s, "PUT", &format!("{BASE}/child"), &manager)
        .json(
            &json!({"internalId": "child", "name": "child", "canViewLogs": true,
                      "canViewAuditLog": true}),
        )
        .send()
        .unwrap();
    assert_error(r, 403, "insufficient_scope");
    // A PUT creating an unknown id obeys the same rule.
    let r = instana(&s, "PUT", &format!("{BASE}/child3"), &manager)
        .json(
            &json!({"accessGrantingToken": "child-secret-3333333333", "name": "c",
                      "canDeleteLogs": true}),
        )
        .send()
        .unwrap();
    assert_error(r, 403, "insufficient_scope");

    // tokens:admin alone sees the whole tenant, but cannot hand out instana flags it lacks.
    let (_, tadmin) = s.create_token("tokens admin", &["tokens:admin"]);
    assert_eq!(list(&s, &tadmin).len(), 4);
    let (st, _) = post(
        &s,
        &tadmin,
        json!({"accessGrantingToken": "ta-secret-0123456789", "internalId": "ta",
               "name": "ta", "canViewLogs": true}),
    );
    assert_eq!(st, 403);
    // ...and cannot change a token holding flags it lacks (the target's scopes count too).
    let r = instana(&s, "PUT", &format!("{BASE}/child"), &tadmin)
        .json(&json!({"internalId": "child", "name": "renamed"}))
        .send()
        .unwrap();
    assert_error(r, 403, "insufficient_scope");
    // Taking a token's power away is never harder than giving it: tokens:admin manages every
    // token of its tenant and may revoke it.
    let r = instana(&s, "DELETE", &format!("{BASE}/child"), &tadmin)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    // A token without flags is fine to create.
    let (st, v) = post(
        &s,
        &tadmin,
        json!({"accessGrantingToken": "ta-secret-0123456789", "internalId": "ta", "name": "ta"}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(self_of(&s, "ta-secret-0123456789").1["scopes"], json!([]));
}

both_backends!(tokens_made_elsewhere_show_their_flags_and_keep_other_scopes);
fn tokens_made_elsewhere_show_their_flags_and_keep_other_scopes(backend: Backend) {
    let s = Server::on(backend).start();
    let admin = s.admin_token.clone();
    let (id, token) = s.create_token("native", &["tokens:read", "instana:canViewLogs"]);
    let (st, v) = get(&s, &admin, &id);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["internalId"], id.as_str());
    assert_eq!(v["canViewLogs"], true);
    assert_eq!(v["canViewAuditLog"], false);
    assert_eq!(v["accessGrantingToken"], format!("{id}_****"));
    assert!(!v.to_string().contains(&token));

    // Changing the flags keeps the scopes the Instana model cannot show.
    let r = instana(&s, "PUT", &format!("{BASE}/{id}"), &admin)
        .json(&json!({"internalId": id, "name": "native", "canDeleteLogs": true}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, me) = self_of(&s, &token);
    assert_eq!(
        me["scopes"],
        json!(["instana:canDeleteLogs", "tokens:read"])
    );

    // `instana:*` shows every flag; a PUT that leaves the flags as shown keeps the scopes.
    let (wid, wtoken) = s.create_token("wild", &["instana:*", "audit:read"]);
    let (_, mut w) = get(&s, &admin, &wid);
    assert!(w
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("can") || k.starts_with("limited"))
        .all(|(_, v)| *v == true));
    w["name"] = json!("wild renamed");
    let r = instana(&s, "PUT", &format!("{BASE}/{wid}"), &admin)
        .json(&w)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, me) = self_of(&s, &wtoken);
    assert_eq!(me["scopes"], json!(["audit:read", "instana:*"]));
    assert_eq!(me["name"], "wild renamed");

    // Setting every flag through this surface stores the flags, one scope each.
    let mut all = w.clone();
    all["internalId"] = json!("all-flags");
    all["accessGrantingToken"] = json!("all-flags-secret-012345");
    let (st, v) = post(&s, &admin, all);
    assert_eq!(st, 200, "{v}");
    let scopes = self_of(&s, "all-flags-secret-012345").1["scopes"].clone();
    assert_eq!(scopes.as_array().unwrap().len(), 106, "{scopes}");
    assert!(!scopes.to_string().contains('*'), "{scopes}");

    // A token whose chosen id looks like a keygate id of another token does not hide it: the
    // keygate id of a token with a chosen id is not an internalId.
    let (_, created) = post(
        &s,
        &admin,
        json!({"accessGrantingToken": "chosen-id-secret-01234", "internalId": "chosen", "name": "c"}),
    );
    let kid = created["id"].as_str().unwrap();
    assert_eq!(get(&s, &admin, kid).0, 404);
    assert_eq!(get(&s, &admin, "chosen").0, 200);
}

both_backends!(scopes_openapi_and_switching_off);
fn scopes_openapi_and_switching_off(backend: Backend) {
    let s = Server::on(backend).start();
    let (st, scopes) = status_json(s.admin("GET", "/api/v1/scopes").send().unwrap());
    assert_eq!(st, 200);
    let names: Vec<&str> = scopes
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for n in [
        "instana:canViewAuditLog",
        "instana:canConfigureApiTokens",
        "instana:limitedZhmcScope",
    ] {
        assert!(names.contains(&n), "{n} registered");
    }
    assert_eq!(
        names.iter().filter(|n| n.starts_with("instana:")).count(),
        106
    );

    let (st, doc) = status_json(s.anon("GET", "/openapi.json").send().unwrap());
    assert_eq!(st, 200);
    let paths = &doc["paths"];
    for (p, methods) in [
        (BASE.to_owned(), &["get", "post"][..]),
        (
            format!("{BASE}/{{internalId}}"),
            &["get", "put", "delete"][..],
        ),
    ] {
        for m in methods {
            assert_eq!(paths[&p][m]["tags"], json!(["instana"]), "{m} {p}");
        }
    }
    assert!(
        doc["components"]["schemas"]["InstanaApiToken"]["properties"]["canViewAuditLog"]
            .is_object()
    );

    // Switched off: no routes, no scopes.
    let off = Server::on(backend).args(&["--compat", "interana"]).start();
    let r = instana(&off, "GET", BASE, &off.admin_token).send().unwrap();
    assert_eq!(r.status(), 404);
    let (_, scopes) = status_json(off.admin("GET", "/api/v1/scopes").send().unwrap());
    assert!(!scopes.to_string().contains("instana:"));
    let r = off
        .admin("POST", "/api/v1/tokens")
        .json(&json!({"name": "x", "scopes": ["instana:canViewLogs"]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 422, "an unknown scope when the surface is off");
}

both_backends!(the_real_instana_client_works_unmodified);
fn the_real_instana_client_works_unmodified(backend: Backend) {
    // `lazy-imports`: the instana-client wheel forgets that dependency.
    let python = match venv_with(
        "keygate-instana-venv",
        &["instana-client==1.1.4", "lazy-imports==1.2.0"],
    ) {
        Ok(python) => python,
        Err(e) => {
            skip_outside_ci(
                "the_real_instana_client_works_unmodified",
                &format!("cannot install instana-client from PyPI: {e}"),
            );
            return;
        }
    };
    let s = Server::on(backend).start();
    let secret = "chosen-by-the-instana-client-01";
    let keep_secret = "kept-by-the-instana-client-0001";
    let script = workspace_root().join("crates/keygate/tests/instana_client.py");
    // `-I`: the script's directory (and so the script, named like the package) stays out of
    // sys.path.
    let out = Command::new(&python)
        .arg("-I")
        .arg(&script)
        .env("KEYGATE_URL", &s.url)
        .env("KEYGATE_TOKEN", &s.admin_token)
        .env("INSTANA_SECRET", secret)
        .env("INSTANA_KEEP_SECRET", keep_secret)
        .output()
        .expect("running the instana client script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the client script failed ({}):\n{stdout}\n{stderr}\nserver:\n{}",
        out.status,
        s.output()
    );
    assert!(stdout.contains("INSTANA CLIENT OK"), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains(secret),
        "the secret is never echoed: {stdout}"
    );
    for step in [
        "create keeps the chosen internalId",
        "put replaces the permissions",
        "get after delete is 404",
        "a deleted token's internalId is not given again",
        "a wrong token gets 401",
    ] {
        assert!(stdout.contains(&format!("ok: {step}")), "{step}: {stdout}");
    }

    // What the client made is a keygate token like any other: it works on the native API
    // (with the secret the client chose) and its life is in the audit log.
    assert_eq!(self_of(&s, secret).0, 401, "the deleted one is refused");
    let (st, me) = self_of(&s, keep_secret);
    assert_eq!(st, 200, "{me}");
    assert_eq!(me["name"], "kept");
    assert_eq!(me["scopes"], json!(["instana:canViewLogs"]));
    let (st, audit) = status_json(s.admin("GET", "/api/v1/audit?limit=100").send().unwrap());
    assert_eq!(st, 200);
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "token.create").count(),
        2,
        "{actions:?}"
    );
    assert!(actions.contains(&"token.update") && actions.contains(&"token.delete"));
    let kept = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["targetId"] == me["id"])
        .expect("the kept token's creation is audited");
    assert_eq!(kept["action"], "token.create");
}

/// A token in keygate's own format that carries `id`: anyone can compute one for any id, since
/// the format is public and its checksum is a CRC32.
fn native_token_with_id(id: &str) -> String {
    let fresh = fresh_token();
    let secret = &fresh[20..20 + keygate_core::token::SECRET_LEN];
    let mut token = format!("{id}_{secret}");
    let crc = crc32fast::hash(token.as_bytes());
    keygate_core::base62::encode_fixed(
        u64::from(crc),
        keygate_core::token::CHECKSUM_LEN,
        &mut token,
    );
    assert_eq!(
        keygate_core::token::parse(&token, &keygate_core::TokenPrefix::default()),
        Ok(keygate_core::token::ParsedToken::Native { id }),
        "a well-formed token carrying {id}"
    );
    token
}

/// The id a token of keygate's format carries (`kg_` and 16 characters).
fn carried_id(token: &str) -> &str {
    &token[..19]
}

both_backends!(a_chosen_internal_id_never_names_a_keygate_id);
fn a_chosen_internal_id_never_names_a_keygate_id(backend: Backend) {
    let s = Server::on(backend).start();
    let admin = s.admin_token.clone();
    let secret = fresh_token();
    let x = carried_id(&secret).to_owned();

    // The decoy: an internalId shaped like a keygate id (of this prefix or any other) is refused,
    // whether or not a token has that id.
    for shaped in [x.as_str(), "ab_0123456789abcdef", "zz9_AbCdEfGhIjKlMnOp"] {
        let (st, v) = post(
            &s,
            &admin,
            json!({"accessGrantingToken": "decoy-secret-0123456789", "internalId": shaped,
                   "name": "decoy"}),
        );
        assert_eq!(
            (st, v["code"].as_str()),
            (422, Some("invalid_request")),
            "internalId {shaped:?}: {v}"
        );
        let r = instana(&s, "PUT", &format!("{BASE}/{shaped}"), &admin)
            .json(&json!({"accessGrantingToken": "decoy-secret-0123456789", "name": "decoy"}))
            .send()
            .unwrap();
        assert_error(r, 422, "invalid_request");
    }

    // The real token: its secret carries x, but its keygate id is one keygate made.
    let (st, real) = post(
        &s,
        &admin,
        json!({"accessGrantingToken": secret, "internalId": "real", "name": "real",
               "canViewLogs": true}),
    );
    assert_eq!(st, 200, "{real}");
    let rid = real["id"].as_str().unwrap().to_owned();
    assert_ne!(rid, x, "a chosen secret never chooses its keygate id");
    assert!(rid.starts_with("kg_") && rid.len() == 19, "{rid}");
    assert_eq!(real["accessGrantingToken"], format!("{rid}_****"));
    // Verification is by hash: the id need not be a prefix of the token.
    let (st, me) = self_of(&s, &secret);
    assert_eq!((st, me["id"].as_str()), (200, Some(rid.as_str())), "{me}");
    assert_eq!(s.verify(&secret, &["instana:canViewLogs"])["valid"], true);

    // x names nothing, so deleting it deletes nothing; the real token goes by its internalId.
    assert_eq!(get(&s, &admin, &x).0, 404);
    let r = instana(&s, "DELETE", &format!("{BASE}/{x}"), &admin)
        .send()
        .unwrap();
    assert_error(r, 404, "not_found");
    assert_eq!(self_of(&s, &secret).0, 200, "nothing was deleted");
    let r = instana(&s, "DELETE", &format!("{BASE}/real"), &admin)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(self_of(&s, &secret).0, 401, "the real token is revoked");
    assert_eq!(s.verify(&secret, &[])["valid"], false);
}

both_backends!(ids_of_deleted_tokens_are_never_given_again);
fn ids_of_deleted_tokens_are_never_given_again(backend: Backend) {
    let s = Server::on(backend).start();
    let admin = s.admin_token.clone();
    // A token is made and revoked; its id stays in the audit log.
    let (x, _) = s.create_token("old", &["tokens:read"]);
    let r = s
        .admin("DELETE", &format!("/api/v1/tokens/{x}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);

    // Another user, who may manage tokens on this surface, sends a secret that carries x.
    let bob = s.create_user("bob", "bob-password-0123456", "member");
    let (st, b) = status_json(
        s.admin("POST", "/api/v1/tokens")
            .json(&json!({"name": "bob's manager", "ownerId": bob,
                          "scopes": ["instana:canConfigureApiTokens"]}))
            .send()
            .unwrap(),
    );
    assert_eq!(st, 201, "{b}");
    let bob_token = b["token"].as_str().unwrap().to_owned();
    let forged = native_token_with_id(&x);
    let (st, v) = post(
        &s,
        &bob_token,
        json!({"accessGrantingToken": forged, "internalId": "bobs", "name": "bob's"}),
    );
    assert_eq!(st, 200, "{v}");
    assert_ne!(
        v["id"],
        x.as_str(),
        "a revoked token's id is not given again"
    );
    let (st, me) = self_of(&s, &forged);
    assert_eq!((st, &me["id"]), (200, &v["id"]));
    // So the revoked token's audit history is its own: its creation and its deletion.
    let actions = audit_actions(&s, &format!("targetId={x}"));
    assert_eq!(actions, ["token.delete", "token.create"]);

    // A deleted token's internalId is not given again either, to anyone in the tenant.
    let (st, v) = post(
        &s,
        &admin,
        json!({"accessGrantingToken": "first-holder-secret-0123", "internalId": "ci-1",
               "name": "first"}),
    );
    assert_eq!(st, 200, "{v}");
    let r = instana(&s, "DELETE", &format!("{BASE}/ci-1"), &admin)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    for (who, secret) in [
        (&admin, "second-holder-secret-012"),
        (&bob_token, "third-holder-secret-0123"),
    ] {
        let (st, v) = post(
            &s,
            who,
            json!({"accessGrantingToken": secret, "internalId": "ci-1", "name": "again"}),
        );
        assert_eq!(
            (st, v["code"].as_str()),
            (409, Some("conflict")),
            "a deleted internalId: {v}"
        );
        let r = instana(&s, "PUT", &format!("{BASE}/ci-1"), who)
            .json(&json!({"accessGrantingToken": secret, "name": "again"}))
            .send()
            .unwrap();
        assert_error(r, 409, "conflict");
        assert_eq!(self_of(&s, secret).0, 401, "nothing was made");
    }
    assert_eq!(get(&s, &admin, "ci-1").0, 404);
}

both_backends!(another_tenants_ids_answer_as_free_ones);
fn another_tenants_ids_answer_as_free_ones(backend: Backend) {
    let s = Server::on(backend).start();
    let admin = s.admin_token.clone();
    // Tenant default holds a token made natively and one with a chosen internalId, and has
    // deleted another.
    let (x, _) = s.create_token("default's", &["tokens:read"]);
    for id in ["shared", "gone"] {
        let (st, v) = post(
            &s,
            &admin,
            json!({"accessGrantingToken": format!("default-{id}-secret-0123"),
                   "internalId": id, "name": id}),
        );
        assert_eq!(st, 200, "{v}");
    }
    let r = instana(&s, "DELETE", &format!("{BASE}/gone"), &admin)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);

    let (st, t) = status_json(
        s.admin("POST", "/api/v1/tenants")
            .json(&json!({"name": "acme"}))
            .send()
            .unwrap(),
    );
    assert_eq!(st, 201, "{t}");
    let acme = t["adminToken"].as_str().unwrap().to_owned();

    // A secret carrying default's token id answers as one carrying a free id.
    let free = carried_id(&fresh_token()).to_owned();
    let answers: Vec<(u16, Value)> = [(&x, "a1"), (&free, "a2")]
        .into_iter()
        .map(|(carried, internal)| {
            post(
                &s,
                &acme,
                json!({"accessGrantingToken": native_token_with_id(carried),
                       "internalId": internal, "name": "n"}),
            )
        })
        .collect();
    assert_eq!(
        (answers[0].0, answers[1].0),
        (200, 200),
        "a taken id and a free one: {answers:?}"
    );
    assert!(answers.iter().all(|(_, v)| v["id"] != x.as_str()));

    // default's internalIds, live or deleted, are free in acme.
    for id in ["shared", "gone", "unused"] {
        let (st, v) = post(
            &s,
            &acme,
            json!({"accessGrantingToken": format!("acme-{id}-secret-012345"),
                   "internalId": id, "name": id}),
        );
        assert_eq!(st, 200, "{id}: {v}");
        assert_eq!(v["internalId"], id);
    }
    // Both tenants' tokens named "shared" are their own.
    let (_, d) = get(&s, &admin, "shared");
    let (_, a) = get(&s, &acme, "shared");
    assert_ne!(d["id"], a["id"]);
    assert_eq!(self_of(&s, "default-shared-secret-0123").1["id"], d["id"]);
}

both_backends!(a_put_keeps_a_wildcard_and_every_other_scope);
fn a_put_keeps_a_wildcard_and_every_other_scope(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    let admin = s.admin_token.clone();
    let boot_id = self_of(&s, &admin).1["id"].as_str().unwrap().to_owned();

    // A token holding `*` shows every flag; a PUT that would clear some cannot take `*` away.
    let (star_id, star) = s.create_token("star", &["*"]);
    for (id, token) in [(&star_id, &star), (&boot_id, &admin)] {
        let (st, v) = get(&s, &admin, id);
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["canConfigureApiTokens"], true);
        assert_eq!(v["limitedZhmcScope"], true);
        let r = instana(&s, "PUT", &format!("{BASE}/{id}"), &admin)
            .json(&json!({"internalId": id, "name": "narrowed", "canViewLogs": true}))
            .send()
            .unwrap();
        let e = assert_error(r, 409, "conflict");
        assert!(e["message"].as_str().unwrap().contains('*'), "{e}");
        let (_, me) = self_of(&s, token);
        assert_eq!(me["scopes"], json!(["*"]), "{id} keeps *");
        assert_ne!(
            me["name"], "narrowed",
            "nothing of the refused PUT was written"
        );
    }
    // The bootstrap token can still make tenants.
    let r = s
        .admin("POST", "/api/v1/tenants")
        .json(&json!({"name": "still-possible"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    // A rename that sends the flags as shown is fine and keeps `*`.
    let (_, mut v) = get(&s, &admin, &star_id);
    v["name"] = json!("star renamed");
    let r = instana(&s, "PUT", &format!("{BASE}/{star_id}"), &admin)
        .json(&v)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, me) = self_of(&s, &star);
    assert_eq!(
        (&me["scopes"], &me["name"]),
        (&json!(["*"]), &json!("star renamed"))
    );

    // `instana:*` is the 106 flags: clearing one leaves the other 105, and the scopes outside
    // `instana:` stay.
    let (wid, wild) = s.create_token("wild", &["instana:*", "audit:read", "metrics:*"]);
    let (_, mut w) = get(&s, &admin, &wid);
    w["canDeleteLogs"] = json!(false);
    let r = instana(&s, "PUT", &format!("{BASE}/{wid}"), &admin)
        .json(&w)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, me) = self_of(&s, &wild);
    let scopes: Vec<&str> = me["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(scopes.len(), 2 + 105, "{scopes:?}");
    assert!(scopes.contains(&"audit:read") && scopes.contains(&"metrics:*"));
    assert!(!scopes.contains(&"instana:canDeleteLogs") && !scopes.contains(&"instana:*"));
    assert_eq!(get(&s, &admin, &wid).1["canDeleteLogs"], false);
}

/// Every flag set, as a request body.
fn all_flags(secret: &str, internal_id: &str) -> Value {
    let mut body = json!({"accessGrantingToken": secret, "internalId": internal_id,
                          "name": "every flag"});
    for f in keygate_server::compat::instana::FLAGS {
        body[*f] = json!(true);
    }
    body
}

both_backends!(an_admin_can_give_every_flag_and_a_narrower_caller_cannot);
fn an_admin_can_give_every_flag_and_a_narrower_caller_cannot(backend: Backend) {
    let s = Server::on(backend).start();
    let admin = s.login("admin", ADMIN_PASSWORD);
    let r = s
        .as_session(&admin, "POST", BASE)
        .json(&all_flags("every-flag-secret-0123456", "every"))
        .send()
        .unwrap();
    let (st, v) = status_json(r);
    assert_eq!(st, 200, "an admin's session gives every flag: {v}");
    assert!(keygate_server::compat::instana::FLAGS
        .iter()
        .all(|f| v[*f] == true));
    // Stored as the flags themselves, which is what the admin role holds.
    let (_, me) = self_of(&s, "every-flag-secret-0123456");
    let scopes = me["scopes"].as_array().unwrap();
    assert_eq!(scopes.len(), 106, "{me}");
    assert!(scopes
        .iter()
        .all(|n| n.as_str().unwrap().starts_with("instana:can")
            || n.as_str().unwrap().starts_with("instana:limited")));
    // The admin session can also change and delete it.
    let r = s
        .as_session(&admin, "DELETE", &format!("{BASE}/every"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);

    // A member's token that holds two flags cannot give the others.
    s.create_user("mia", "mia-password-0123456", "member");
    let mia = s.login("mia", "mia-password-0123456");
    let (st, m) = status_json(
        s.as_session(&mia, "POST", "/api/v1/tokens")
            .json(&json!({"name": "mia's manager",
                          "scopes": ["instana:canConfigureApiTokens", "instana:canViewLogs"]}))
            .send()
            .unwrap(),
    );
    assert_eq!(st, 201, "{m}");
    let narrow = m["token"].as_str().unwrap().to_owned();
    let (st, v) = post(&s, &narrow, all_flags("narrow-every-secret-0123", "narrow"));
    assert_eq!(
        (st, v["code"].as_str()),
        (403, Some("insufficient_scope")),
        "{v}"
    );
    let missing = v["missingScopes"].as_array().unwrap();
    assert_eq!(missing.len(), 104, "{v}");
    assert!(!missing.contains(&json!("instana:canViewLogs")));
    assert_eq!(self_of(&s, "narrow-every-secret-0123").0, 401);
}
