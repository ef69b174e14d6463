//! The Interana-compatible surface (seed 002), driven with raw HTTP exactly as the document's
//! curl lines: `create_token`, `revoke_token`, their bodies, and the three-day primary/secondary
//! rotation. No Interana client exists to run.

mod common;
use common::*;

use serde_json::{json, Value};

/// `curl -X POST -H "Authorization: Token <token>" http://hostname/api/create_token`
fn create_token(s: &Server, token: &str) -> (u16, Value) {
    status_json(
        s.anon("POST", "/api/create_token")
            .header("Authorization", format!("Token {token}"))
            .send()
            .unwrap(),
    )
}

/// `curl -H "Authorization: Token <token1>" -H "Content-Type: application/json" -X POST
///  -d '{"token":"<token2>"}' http://hostname/api/revoke_token`
fn revoke_token(s: &Server, with: &str, revoke: &str) -> (u16, Value) {
    status_json(
        s.anon("POST", "/api/revoke_token")
            .header("Authorization", format!("Token {with}"))
            .header("Content-Type", "application/json")
            .body(json!({ "token": revoke }).to_string())
            .send()
            .unwrap(),
    )
}

fn valid(s: &Server, token: &str) -> bool {
    s.verify(token, &[])["valid"] == true
}

both_backends!(create_token_returns_a_token_for_the_same_owner_with_the_callers_scopes);
fn create_token_returns_a_token_for_the_same_owner_with_the_callers_scopes(backend: Backend) {
    let s = Server::on(backend).start();
    let (_, caller) = s.create_token("primary", &["tokens:write", "audit:read"]);
    let (status, body) = create_token(&s, &caller);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    let new = body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        body.as_object().unwrap().len(),
        2,
        "exactly token and success: {body}"
    );
    let caller_v = s.verify(&caller, &[]);
    let new_v = s.verify(&new, &[]);
    assert_eq!(new_v["code"], "VALID");
    assert_eq!(new_v["ownerId"], caller_v["ownerId"]);
    assert_eq!(new_v["scopes"], caller_v["scopes"]);
    // GET works too, as the document says.
    let (status, body) = status_json(
        s.anon("GET", "/api/create_token")
            .header("Authorization", format!("Token {caller}"))
            .send()
            .unwrap(),
    );
    assert_eq!(
        (status, body["success"].clone()),
        (200, json!(true)),
        "{body}"
    );
}

both_backends!(a_created_token_never_outlives_its_creator);
fn a_created_token_never_outlives_its_creator(backend: Backend) {
    let s = Server::on(backend).start();
    let r = s
        .admin("POST", "/api/v1/tokens")
        .json(&json!({ "name": "short", "scopes": ["tokens:write"], "expiresIn": 3600 }))
        .send()
        .unwrap();
    let (_, created) = status_json(r);
    let caller = created["token"].as_str().unwrap();
    let (_, body) = create_token(&s, caller);
    let v = s.verify(body["token"].as_str().unwrap(), &[]);
    assert_eq!(v["expiresAt"], created["expiresAt"], "{v}");
}

both_backends!(failures_say_not_logged_in_with_success_false);
fn failures_say_not_logged_in_with_success_false(backend: Backend) {
    let s = Server::on(backend).start();
    for auth in [
        None,
        Some("Token nope-not-a-token-at-all"),
        Some("Token kg_bad"),
    ] {
        let mut r = s.anon("POST", "/api/create_token");
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        let (status, body) = status_json(r.send().unwrap());
        assert_eq!(status, 401, "{auth:?}: {body}");
        assert_eq!(body, json!({ "msg": "Not logged in.", "success": false }));
    }
    let (_, reader) = s.create_token("reader", &["tokens:read"]);
    let (status, body) = create_token(&s, &reader);
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["success"], false);
    assert!(
        body["msg"].as_str().unwrap().contains("tokens:write"),
        "{body}"
    );
}

both_backends!(revoke_token_revokes_tokens_of_the_same_owner_only);
fn revoke_token_revokes_tokens_of_the_same_owner_only(backend: Backend) {
    let s = Server::on(backend).start();
    let (_, a1) = s.create_token("a1", &["tokens:write"]);
    let (_, a2) = s.create_token("a2", &["tokens:write"]);
    let (status, body) = revoke_token(&s, &a1, &a2);
    assert_eq!(
        (status, body.clone()),
        (200, json!({ "success": true })),
        "{body}"
    );
    assert!(!valid(&s, &a2));
    // A token of another owner (a service token owned by the tenant) is not the caller's:
    // not found, and untouched.
    let r = s
        .admin("POST", "/api/v1/tokens")
        .json(&json!({ "name": "svc", "scopes": ["tokens:write"], "ownerId": "default" }))
        .send()
        .unwrap();
    let (_, svc) = status_json(r);
    let svc = svc["token"].as_str().unwrap();
    let (status, body) = revoke_token(&s, &a1, svc);
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["success"], false);
    assert!(valid(&s, svc));
    // With tokens:admin, any token of the tenant.
    let (status, _) = revoke_token(&s, &s.admin_token, svc);
    assert_eq!(status, 200);
    assert!(!valid(&s, svc));
    // Unknown and malformed tokens, and a bad body.
    let (status, body) = revoke_token(&s, &a1, &fresh_token());
    assert_eq!((status, body["success"].clone()), (404, json!(false)));
    let (status, body) = status_json(
        s.anon("POST", "/api/revoke_token")
            .header("Authorization", format!("Token {a1}"))
            .body("{not json")
            .send()
            .unwrap(),
    );
    assert_eq!(
        (status, body["success"].clone()),
        (400, json!(false)),
        "{body}"
    );
    // Revocations are audited like any other.
    let (_, audit) = status_json(
        s.admin("GET", "/api/v1/audit?action=token.delete")
            .send()
            .unwrap(),
    );
    assert_eq!(audit["items"].as_array().unwrap().len(), 2, "{audit}");
}

both_backends!(the_documents_three_day_rotation_works_as_written);
fn the_documents_three_day_rotation_works_as_written(backend: Backend) {
    let s = Server::on(backend).start();
    let (_, abc) = s.create_token("ABC123", &["tokens:write", "audit:read"]);
    // Day 1: the primary creates the secondary; both are valid.
    let (_, body) = create_token(&s, &abc);
    let xyz = body["token"].as_str().unwrap().to_owned();
    assert!(
        valid(&s, &abc) && valid(&s, &xyz),
        "day 1: primary and secondary"
    );
    let mut primary = abc;
    let mut secondary = xyz;
    let mut retired = Vec::new();
    for day in 2..=4 {
        // The secondary revokes the primary and becomes the primary...
        let (status, body) = revoke_token(&s, &secondary, &primary);
        assert_eq!(status, 200, "day {day}: {body}");
        retired.push(std::mem::replace(&mut primary, secondary.clone()));
        // ...and creates the new secondary.
        let (status, body) = create_token(&s, &primary);
        assert_eq!(status, 200, "day {day}: {body}");
        secondary = body["token"].as_str().unwrap().to_owned();
        assert!(valid(&s, &primary), "day {day}: primary valid");
        assert!(valid(&s, &secondary), "day {day}: secondary valid");
        for old in &retired {
            assert!(!valid(&s, old), "day {day}: a revoked token is refused");
        }
        let owner = s.verify(&primary, &[])["ownerId"].clone();
        let (_, list) = status_json(
            s.with_token(
                "GET",
                &format!("/api/v1/tokens?ownerId={}", owner.as_str().unwrap()),
                &s.admin_token,
            )
            .send()
            .unwrap(),
        );
        let names: Vec<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["name"] != "bootstrap")
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "day {day}: exactly two tokens: {names:?}");
    }
}

both_backends!(query_parameter_tokens_work_here_too);
fn query_parameter_tokens_work_here_too(backend: Backend) {
    // Seed 001's style, on a compatible surface.
    let s = Server::on(backend).start();
    let (_, t) = s.create_token("q", &["tokens:write"]);
    let (status, body) = status_json(
        s.anon("POST", &format!("/api/create_token?api-token={t}"))
            .send()
            .unwrap(),
    );
    assert_eq!(
        (status, body["success"].clone()),
        (200, json!(true)),
        "{body}"
    );
}

both_backends!(surfaces_can_be_switched_off);
fn surfaces_can_be_switched_off(backend: Backend) {
    let s = Server::on(backend).args(&["--no-compat"]).start();
    let (status, body) = create_token(&s, &s.admin_token);
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "not_found");
    let (_, spec) = status_json(s.anon("GET", "/openapi.json").send().unwrap());
    assert!(spec["paths"].get("/api/create_token").is_none());

    let s = Server::on(backend).args(&["--compat", "interana"]).start();
    assert_eq!(create_token(&s, &s.admin_token).0, 200);
    let (_, spec) = status_json(s.anon("GET", "/openapi.json").send().unwrap());
    assert!(spec["paths"].get("/api/create_token").is_some());

    let failed = Server::on(backend)
        .args(&["--compat", "interana,splunk"])
        .fail();
    assert!(!failed.status.success());
    let err = failed.stderr;
    assert!(err.contains("splunk"), "{err}");
}
