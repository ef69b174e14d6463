//! The native token API: create, list, read, replace, revoke, disable/enable,
//! rotate, lookup, self, no escalation, the scope catalogue and the audit log, each checked over
//! HTTP against a real `keygate serve`.

mod common;
use common::*;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The id of a native token: everything before the secret (`kg_` + 16 base62).
fn id_of(token: &str) -> String {
    token[..19].to_owned()
}

/// The secret part of a native token (after `<id>_`).
fn secret_of(token: &str) -> &str {
    &token[20..]
}

fn is_base62(s: &str) -> bool {
    s.bytes().all(|c| c.is_ascii_alphanumeric())
}

/// Seconds from now to `t` (negative when in the past).
fn secs_from_now(t: OffsetDateTime) -> i64 {
    (t - OffsetDateTime::now_utc()).whole_seconds()
}

/// POST /api/v1/tokens with this body as `token`.
fn create_as(s: &Server, token: &str, body: Value) -> (u16, Value) {
    status_json(
        s.with_token("POST", "/api/v1/tokens", token)
            .json(&body)
            .send()
            .unwrap(),
    )
}

/// POST /api/v1/tokens as `token`, asserting 201; returns the body.
fn create_ok(s: &Server, token: &str, body: Value) -> Value {
    let (st, v) = create_as(s, token, body);
    assert_eq!(st, 201, "create: {v}");
    v
}

fn get_as(s: &Server, token: &str, path: &str) -> (u16, Value) {
    status_json(s.with_token("GET", path, token).send().unwrap())
}

/// GET as admin, asserting 200.
fn admin_get(s: &Server, path: &str) -> Value {
    let (st, v) = get_as(s, &s.admin_token, path);
    assert_eq!(st, 200, "GET {path}: {v}");
    v
}

fn post_as(s: &Server, token: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = s.with_token("POST", path, token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    status_json(r.send().unwrap())
}

fn put_as(s: &Server, token: &str, id: &str, body: Value) -> (u16, Value) {
    status_json(
        s.with_token("PUT", &format!("/api/v1/tokens/{id}"), token)
            .json(&body)
            .send()
            .unwrap(),
    )
}

/// Every item of a paged list, following `nextCursor`; also returns the page sizes.
fn collect_pages(s: &Server, token: &str, path: &str, limit: u32) -> (Vec<Value>, Vec<usize>) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let url = match &cursor {
            None => format!("{path}{sep}limit={limit}"),
            Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
        };
        let (st, v) = get_as(s, token, &url);
        assert_eq!(st, 200, "GET {url}: {v}");
        let page = v["items"].as_array().unwrap().clone();
        assert!(page.len() <= limit as usize, "page larger than limit: {v}");
        sizes.push(page.len());
        items.extend(page);
        match &v["nextCursor"] {
            Value::Null => return (items, sizes),
            Value::String(c) => cursor = Some(c.clone()),
            other => panic!("nextCursor is neither null nor a string: {other}"),
        }
    }
    panic!("paging did not end");
}

/// The audit log, newest first (one page of up to 1000).
fn audit(s: &Server, query: &str) -> Vec<Value> {
    let v = admin_get(s, &format!("/api/v1/audit{query}"));
    v["items"].as_array().unwrap().clone()
}

/// The one audit entry with this action and target.
fn audit_entry(s: &Server, action: &str, target: &str) -> Value {
    let items = audit(s, &format!("?action={action}&targetId={target}"));
    assert_eq!(items.len(), 1, "one {action} entry for {target}: {items:?}");
    items[0].clone()
}

fn assert_forbidden(r: (u16, Value), missing: &[&str]) {
    let (st, v) = r;
    assert_eq!(st, 403, "body: {v}");
    assert_eq!(v["code"], "insufficient_scope", "body: {v}");
    assert_eq!(v["error"], "Forbidden", "body: {v}");
    assert_eq!(v["missingScopes"], json!(missing), "body: {v}");
}

// ---------------------------------------------------------------------------------------------
// 1. Create
// ---------------------------------------------------------------------------------------------

both_backends!(create_returns_201_with_the_token_and_every_metadata_field);
fn create_returns_201_with_the_token_and_every_metadata_field(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    let before = OffsetDateTime::now_utc() - time::Duration::seconds(2);
    let v = create_ok(
        &s,
        &s.admin_token,
        json!({"name": "ci deploy", "scopes": ["metrics:read", "tokens:read"],
               "description": "for the deploy job"}),
    );
    let id = v["id"].as_str().unwrap();
    assert_eq!(id.len(), 19, "id {id}");
    assert!(id.starts_with("kg_"), "id {id}");
    assert!(is_base62(&id[3..]), "id {id}");

    let token = v["token"].as_str().unwrap();
    assert_eq!(token.len(), 69, "token length");
    assert!(
        token.starts_with(&format!("{id}_")),
        "token starts with its id"
    );
    assert!(is_base62(&token[20..]), "secret and checksum are base62");

    assert_eq!(v["name"], "ci deploy");
    assert_eq!(v["description"], "for the deploy job");
    assert_eq!(v["metadata"], Value::Null);
    let self_view = admin_get(&s, "/api/v1/tokens/self");
    assert_eq!(v["ownerId"], self_view["ownerId"], "owner is the caller's");
    assert!(v["ownerId"].as_str().unwrap().starts_with("usr_"));
    assert_eq!(v["tenantId"], "default");
    assert_eq!(v["scopes"], json!(["metrics:read", "tokens:read"]));
    assert_eq!(v["enabled"], true);
    assert_eq!(v["status"], "active");
    let created = time_of(&v["createdAt"]);
    assert!(created >= before && secs_from_now(created).abs() < 60);
    assert!(v["createdAt"].as_str().unwrap().ends_with('Z'), "UTC: {v}");
    time_of(&v["updatedAt"]);
    assert!(v.get("expiresAt").is_some() && v["expiresAt"].is_null());
    assert!(v.get("lastUsedAt").is_some() && v["lastUsedAt"].is_null());
    assert!(v.get("lastUsedIp").is_some() && v["lastUsedIp"].is_null());
    assert_eq!(v["createdBy"], id_of(&s.admin_token));
}

both_backends!(created_token_is_valid_at_once);
fn created_token_is_valid_at_once(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    let v = create_ok(
        &s,
        &s.admin_token,
        json!({"name": "fresh", "scopes": ["metrics:read"]}),
    );
    let token = v["token"].as_str().unwrap();
    let r = s.verify(token, &["metrics:read"]);
    assert_eq!(r["valid"], true, "{r}");
    assert_eq!(r["code"], "VALID");
    assert_eq!(r["tokenId"], v["id"]);
    assert_eq!(r["name"], "fresh");
    assert_eq!(r["ownerId"], v["ownerId"]);
    assert_eq!(r["tenantId"], "default");
    assert_eq!(r["scopes"], json!(["metrics:read"]));
    // And it authenticates requests of its own.
    let (st, me) = get_as(&s, token, "/api/v1/tokens/self");
    assert_eq!(st, 200, "{me}");
    assert_eq!(me["id"], v["id"]);
}

both_backends!(expires_in_sets_expires_at);
fn expires_in_sets_expires_at(backend: Backend) {
    let s = Server::on(backend).start();
    let v = create_ok(
        &s,
        &s.admin_token,
        json!({"name": "short", "scopes": ["tokens:read"], "expiresIn": 3600}),
    );
    let left = secs_from_now(time_of(&v["expiresAt"]));
    assert!((3540..=3600).contains(&left), "expires in {left}s: {v}");
    let got = admin_get(&s, &format!("/api/v1/tokens/{}", v["id"].as_str().unwrap()));
    assert_eq!(time_of(&got["expiresAt"]), time_of(&v["expiresAt"]));
    let r = s.verify(v["token"].as_str().unwrap(), &[]);
    assert_eq!(r["code"], "VALID");
    assert_eq!(time_of(&r["expiresAt"]), time_of(&v["expiresAt"]));
}

both_backends!(expires_at_sets_expires_at);
fn expires_at_sets_expires_at(backend: Backend) {
    let s = Server::on(backend).start();
    let at = "2031-06-01T12:00:00Z";
    let v = create_ok(
        &s,
        &s.admin_token,
        json!({"name": "dated", "scopes": ["tokens:read"], "expiresAt": at}),
    );
    assert_eq!(time_of(&v["expiresAt"]), time_of(&json!(at)));
    let got = admin_get(&s, &format!("/api/v1/tokens/{}", v["id"].as_str().unwrap()));
    assert_eq!(time_of(&got["expiresAt"]), time_of(&json!(at)));
    assert_eq!(got["status"], "active");
}

both_backends!(expires_at_given_with_an_offset_is_returned_in_utc);
/// Times are RFC 3339 UTC: an `expiresAt` given with an offset comes back in UTC,
/// in the 201 as in every later read.
fn expires_at_given_with_an_offset_is_returned_in_utc(backend: Backend) {
    let s = Server::on(backend).start();
    let v = create_ok(
        &s,
        &s.admin_token,
        json!({"name": "offset", "scopes": ["tokens:read"],
               "expiresAt": "2031-06-01T14:00:00+02:00"}),
    );
    let got = admin_get(&s, &format!("/api/v1/tokens/{}", v["id"].as_str().unwrap()));
    assert_eq!(
        time_of(&got["expiresAt"]),
        time_of(&json!("2031-06-01T12:00:00Z"))
    );
    assert!(
        got["expiresAt"].as_str().unwrap().ends_with('Z'),
        "GET: {got}"
    );
    assert!(
        v["expiresAt"].as_str().unwrap().ends_with('Z'),
        "the 201 answers expiresAt {} instead of a UTC time (GET says {})",
        v["expiresAt"],
        got["expiresAt"]
    );
}

both_backends!(expires_in_and_expires_at_together_are_422);
fn expires_in_and_expires_at_together_are_422(backend: Backend) {
    let s = Server::on(backend).start();
    let at = rfc3339(OffsetDateTime::now_utc() + time::Duration::hours(1));
    let r = create_as(
        &s,
        &s.admin_token,
        json!({"name": "both", "scopes": ["tokens:read"], "expiresIn": 60, "expiresAt": at}),
    );
    assert_error_body(r, 422, "invalid_request");
}

both_backends!(expires_at_in_the_past_is_422);
fn expires_at_in_the_past_is_422(backend: Backend) {
    let s = Server::on(backend).start();
    let at = rfc3339(OffsetDateTime::now_utc() - time::Duration::minutes(1));
    let r = create_as(
        &s,
        &s.admin_token,
        json!({"name": "past", "scopes": ["tokens:read"], "expiresAt": at}),
    );
    assert_error_body(r, 422, "invalid_request");
}

both_backends!(expires_in_zero_is_422);
fn expires_in_zero_is_422(backend: Backend) {
    let s = Server::on(backend).start();
    let r = create_as(
        &s,
        &s.admin_token,
        json!({"name": "zero", "scopes": ["tokens:read"], "expiresIn": 0}),
    );
    assert_error_body(r, 422, "invalid_request");
}

both_backends!(expiry_fields_of_the_wrong_type_are_422);
fn expiry_fields_of_the_wrong_type_are_422(backend: Backend) {
    let s = Server::on(backend).start();
    for body in [
        json!({"name": "n", "scopes": ["tokens:read"], "expiresIn": -5}),
        json!({"name": "n", "scopes": ["tokens:read"], "expiresIn": "60"}),
        json!({"name": "n", "scopes": ["tokens:read"], "expiresAt": "tomorrow"}),
    ] {
        let r = create_as(&s, &s.admin_token, body.clone());
        assert_error_body(r, 422, "invalid_request");
    }
}

both_backends!(metadata_is_returned_by_get_list_and_verify);
fn metadata_is_returned_by_get_list_and_verify(backend: Backend) {
    let s = Server::on(backend).start();
    let meta = json!({"team": "payments", "ci": {"job": 42, "tags": ["a", "b"]}});
    let v = create_ok(
        &s,
        &s.admin_token,
        json!({"name": "with meta", "scopes": ["tokens:read"], "metadata": meta}),
    );
    assert_eq!(v["metadata"], meta);
    let id = v["id"].as_str().unwrap();
    let got = admin_get(&s, &format!("/api/v1/tokens/{id}"));
    assert_eq!(got["metadata"], meta);
    let list = admin_get(&s, "/api/v1/tokens?q=with%20meta");
    assert_eq!(list["items"][0]["metadata"], meta);
    let r = s.verify(v["token"].as_str().unwrap(), &[]);
    assert_eq!(r["code"], "VALID");
    assert_eq!(r["metadata"], meta);
}

both_backends!(metadata_that_is_not_an_object_is_422);
fn metadata_that_is_not_an_object_is_422(backend: Backend) {
    let s = Server::on(backend).start();
    for m in [json!([1, 2]), json!("text"), json!(42), json!(true)] {
        let r = create_as(
            &s,
            &s.admin_token,
            json!({"name": "bad meta", "scopes": ["tokens:read"], "metadata": m}),
        );
        assert_error_body(r, 422, "invalid_request");
    }
}

both_backends!(metadata_over_4_kib_is_422);
fn metadata_over_4_kib_is_422(backend: Backend) {
    let s = Server::on(backend).start();
    let big = json!({"blob": "x".repeat(5000)});
    let r = create_as(
        &s,
        &s.admin_token,
        json!({"name": "big meta", "scopes": ["tokens:read"], "metadata": big}),
    );
    assert_error_body(r, 422, "invalid_request");
    // Just under the limit is fine.
    let fits = json!({"blob": "x".repeat(4000)});
    let v = create_ok(
        &s,
        &s.admin_token,
        json!({"name": "fits", "scopes": ["tokens:read"], "metadata": fits}),
    );
    assert_eq!(v["metadata"], fits);
}

/// `{"l":{"l":…{"l":1}}}`: `depth` objects, each inside the one before.
fn nested_metadata(depth: usize) -> Value {
    (1..depth).fold(json!({"l": 1}), |inner, _| json!({ "l": inner }))
}

/// The status and raw body: a body nested too deeply for serde_json is still seen.
fn send_raw(r: reqwest::blocking::RequestBuilder) -> (u16, String) {
    let r = r.send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

both_backends!(metadata_nested_deeper_than_16_levels_is_422_on_create_and_replace);
fn metadata_nested_deeper_than_16_levels_is_422_on_create_and_replace(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, _) = s.create_token("to-replace", &["tokens:read"]);
    for depth in [17, 130] {
        let meta = nested_metadata(depth);
        let create = s.admin("POST", "/api/v1/tokens").json(&json!({
            "name": "deep", "scopes": ["tokens:read"], "metadata": meta}));
        let replace = s
            .admin("PUT", &format!("/api/v1/tokens/{id}"))
            .json(&json!({
            "name": "deep", "scopes": ["tokens:read"], "metadata": meta}));
        for (what, req) in [("create", create), ("replace", replace)] {
            let (status, body) = send_raw(req);
            assert_eq!(status, 422, "{what} with {depth} levels: {body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["code"], "invalid_request", "{v}");
            let message = v["message"].as_str().unwrap();
            assert!(
                message.contains("metadata") && message.contains("16 levels"),
                "the message names the bound: {message}"
            );
        }
    }
    // Nothing was stored: the token keeps no metadata.
    assert_eq!(
        admin_get(&s, &format!("/api/v1/tokens/{id}"))["metadata"],
        Value::Null
    );
    // Arrays are levels too.
    let arrays = (1..17).fold(json!([1]), |inner, _| json!([inner]));
    let (status, body) = send_raw(s.admin("POST", "/api/v1/tokens").json(&json!({
        "name": "deep", "scopes": ["tokens:read"], "metadata": {"a": arrays}})));
    assert_eq!(status, 422, "{body}");
}

both_backends!(metadata_16_levels_deep_is_kept_and_readable_everywhere);
fn metadata_16_levels_deep_is_kept_and_readable_everywhere(backend: Backend) {
    let s = Server::on(backend).args(&["--compat", "dynatrace"]).start();
    let meta = nested_metadata(16);
    let created = create_ok(
        &s,
        &s.admin_token,
        json!({"name": "deep", "scopes": ["tokens:read"], "metadata": meta}),
    );
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["metadata"], meta);
    assert_eq!(
        admin_get(&s, &format!("/api/v1/tokens/{id}"))["metadata"],
        meta
    );
    let list = admin_get(&s, "/api/v1/tokens?q=deep");
    assert_eq!(list["items"][0]["metadata"], meta);
    let dt = admin_get(&s, "/api/v2/apiTokens?fields=%2BadditionalMetadata");
    let shown = dt["apiTokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("{dt}"));
    assert_eq!(shown["additionalMetadata"], meta, "{dt}");
}

both_backends!(bad_names_are_422);
fn bad_names_are_422(backend: Backend) {
    let s = Server::on(backend).start();
    for name in [
        String::new(),
        "   ".into(),
        "a".repeat(201),
        "tab\there".into(),
    ] {
        let r = create_as(
            &s,
            &s.admin_token,
            json!({"name": name, "scopes": ["tokens:read"]}),
        );
        assert_error_body(r, 422, "invalid_request");
    }
    // 200 characters (multi-byte ones) is the limit, inclusive.
    let v = create_ok(
        &s,
        &s.admin_token,
        json!({"name": "é".repeat(200), "scopes": ["tokens:read"]}),
    );
    assert_eq!(v["name"], "é".repeat(200));
}

both_backends!(malformed_or_incomplete_create_bodies_are_rejected);
fn malformed_or_incomplete_create_bodies_are_rejected(backend: Backend) {
    let s = Server::on(backend).start();
    let r = s
        .admin("POST", "/api/v1/tokens")
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .unwrap();
    assert_error(r, 400, "invalid_request");
    for body in [
        json!({"scopes": ["tokens:read"]}),
        json!({"name": "no scopes"}),
        json!({"name": "empty scopes", "scopes": []}),
        json!({"name": "scopes not a list", "scopes": "tokens:read"}),
        json!({"name": "unknown field", "scopes": ["tokens:read"], "colour": "red"}),
    ] {
        let r = create_as(&s, &s.admin_token, body);
        assert_error_body(r, 422, "invalid_request");
    }
}

both_backends!(create_without_a_token_is_401);
fn create_without_a_token_is_401(backend: Backend) {
    let s = Server::on(backend).start();
    let r = s
        .anon("POST", "/api/v1/tokens")
        .json(&json!({"name": "x", "scopes": ["tokens:read"]}))
        .send()
        .unwrap();
    assert_unauthorized(r, "Invalid API token", "missing_token", "no token");
    let r = s
        .with_token("POST", "/api/v1/tokens", &fresh_token())
        .json(&json!({"name": "x", "scopes": ["tokens:read"]}))
        .send()
        .unwrap();
    assert_unauthorized(r, "Invalid API token", "invalid_token", "unknown token");
}

// ---------------------------------------------------------------------------------------------
// 2. The plaintext is shown once
// ---------------------------------------------------------------------------------------------

both_backends!(plaintext_appears_only_in_the_201);
fn plaintext_appears_only_in_the_201(backend: Backend) {
    let s = Server::on(backend).start();
    let v = create_ok(
        &s,
        &s.admin_token,
        json!({"name": "secretive", "scopes": ["tokens:read"]}),
    );
    let token = v["token"].as_str().unwrap().to_owned();
    let id = v["id"].as_str().unwrap().to_owned();
    let secret = secret_of(&token).to_owned();
    // Use it once, so that the server has handled it on the verify path too.
    assert_eq!(s.verify(&token, &[])["code"], "VALID");

    let mut bodies = Vec::new();
    for path in [
        format!("/api/v1/tokens/{id}"),
        "/api/v1/tokens".to_owned(),
        "/api/v1/audit".to_owned(),
    ] {
        let r = s.admin("GET", &path).send().unwrap();
        assert_eq!(r.status(), 200, "{path}");
        bodies.push((path, r.text().unwrap()));
    }
    let r = s
        .with_token("GET", "/api/v1/tokens/self", &token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    bodies.push(("self".into(), r.text().unwrap()));
    let r = s
        .admin("POST", "/api/v1/tokens/lookup")
        .json(&json!({ "token": token }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    bodies.push(("lookup".into(), r.text().unwrap()));

    for (path, body) in &bodies {
        assert!(body.contains(&id), "{path} names the token: {body}");
        assert!(!body.contains(&secret), "{path} shows the secret: {body}");
        let parsed: Value = serde_json::from_str(body).unwrap();
        assert!(
            parsed.get("token").is_none(),
            "{path} has a `token` field: {body}"
        );
    }
    let list: Value = serde_json::from_str(&bodies[1].1).unwrap();
    for item in list["items"].as_array().unwrap() {
        assert!(item.get("token").is_none(), "list item with token: {item}");
    }

    // Nothing secret is written anywhere in plaintext: not in the logs, not
    // in the database files.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !s.output().contains(&secret),
        "the server logged the secret"
    );
    let bytes = s.database_bytes();
    assert!(
        !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the database holds the secret in plaintext"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. List
// ---------------------------------------------------------------------------------------------

both_backends!(list_is_newest_first);
fn list_is_newest_first(backend: Backend) {
    let s = Server::on(backend).start();
    let a = s.create_token("first", &["tokens:read"]).0;
    let b = s.create_token("second", &["tokens:read"]).0;
    let c = s.create_token("third", &["tokens:read"]).0;
    let v = admin_get(&s, "/api/v1/tokens");
    let got = ids(&v["items"]);
    assert_eq!(got.len(), 4, "three tokens and the bootstrap one: {v}");
    assert_eq!(&got[..3], &[c, b, a]);
    assert_eq!(
        got[3],
        id_of(&s.admin_token),
        "bootstrap token is the oldest"
    );
    assert_eq!(v["nextCursor"], Value::Null);
}

both_backends!(list_pages_with_limit_and_cursor);
fn list_pages_with_limit_and_cursor(backend: Backend) {
    let s = Server::on(backend).start();
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(s.create_token(&format!("page-{i}"), &["tokens:read"]).0);
    }
    let (items, sizes) = collect_pages(&s, &s.admin_token, "/api/v1/tokens", 3);
    assert_eq!(sizes, vec![3, 3, 2], "8 tokens in pages of 3");
    let got = ids(&Value::Array(items));
    let unique: HashSet<_> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "no duplicates: {got:?}");
    let mut expected: Vec<String> = made.iter().rev().cloned().collect();
    expected.push(id_of(&s.admin_token));
    assert_eq!(got, expected, "every token, newest first");

    // A page that ends exactly at the end has no next cursor.
    let (items, sizes) = collect_pages(&s, &s.admin_token, "/api/v1/tokens", 4);
    assert_eq!(sizes, vec![4, 4]);
    assert_eq!(ids(&Value::Array(items)), expected);

    // Paging composes with filters.
    let (items, sizes) = collect_pages(&s, &s.admin_token, "/api/v1/tokens?q=page-", 5);
    assert_eq!(sizes, vec![5, 2]);
    assert_eq!(ids(&Value::Array(items)), expected[..7].to_vec());
}

both_backends!(list_filters_by_name_case_insensitively);
fn list_filters_by_name_case_insensitively(backend: Backend) {
    let s = Server::on(backend).start();
    let a = s.create_token("Deploy Bot", &["tokens:read"]).0;
    let b = s.create_token("nightly-deploy", &["tokens:read"]).0;
    s.create_token("Grafana", &["tokens:read"]);
    let v = admin_get(&s, "/api/v1/tokens?q=DEPLOY");
    assert_eq!(ids(&v["items"]), vec![b, a.clone()]);
    let v = admin_get(&s, "/api/v1/tokens?q=y%20b");
    assert_eq!(ids(&v["items"]), vec![a]);
    let v = admin_get(&s, "/api/v1/tokens?q=nothing-like-this");
    assert_eq!(v["items"], json!([]));
    assert_eq!(v["nextCursor"], Value::Null);
}

both_backends!(list_filters_by_enabled);
fn list_filters_by_enabled(backend: Backend) {
    let s = Server::on(backend).start();
    let a = s.create_token("a", &["tokens:read"]).0;
    let b = s.create_token("b", &["tokens:read"]).0;
    let (st, _) = post_as(
        &s,
        &s.admin_token,
        &format!("/api/v1/tokens/{a}/disable"),
        None,
    );
    assert_eq!(st, 200);
    let v = admin_get(&s, "/api/v1/tokens?enabled=false");
    assert_eq!(ids(&v["items"]), vec![a]);
    assert_eq!(v["items"][0]["enabled"], false);
    assert_eq!(v["items"][0]["status"], "disabled");
    let v = admin_get(&s, "/api/v1/tokens?enabled=true");
    assert_eq!(ids(&v["items"]), vec![b, id_of(&s.admin_token)]);
}

both_backends!(list_filters_by_scope);
fn list_filters_by_scope(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    let r = s.create_token("reader", &["metrics:read"]).0;
    s.create_token("writer", &["metrics:write"]);
    let rw = s.create_token("both", &["metrics:read", "metrics:write"]).0;
    let v = admin_get(&s, "/api/v1/tokens?scope=metrics:read");
    assert_eq!(ids(&v["items"]), vec![rw, r]);
    let v = admin_get(&s, "/api/v1/tokens?scope=audit:read");
    assert_eq!(v["items"], json!([]));
}

both_backends!(list_rejects_a_limit_out_of_range);
fn list_rejects_a_limit_out_of_range(backend: Backend) {
    let s = Server::on(backend).start();
    for l in ["0", "1001", "-1", "many"] {
        let r = s
            .admin("GET", &format!("/api/v1/tokens?limit={l}"))
            .send()
            .unwrap();
        assert_error(r, 400, "invalid_request");
    }
    for l in ["1", "1000"] {
        admin_get(&s, &format!("/api/v1/tokens?limit={l}"));
    }
}

both_backends!(list_rejects_a_garbage_cursor);
fn list_rejects_a_garbage_cursor(backend: Backend) {
    let s = Server::on(backend).start();
    for c in ["garbage", "-3", "0", "%00"] {
        let r = s
            .admin("GET", &format!("/api/v1/tokens?cursor={c}"))
            .send()
            .unwrap();
        assert_error(r, 400, "invalid_request");
    }
}

both_backends!(list_rejects_a_bad_enabled_value);
fn list_rejects_a_bad_enabled_value(backend: Backend) {
    let s = Server::on(backend).start();
    let r = s
        .admin("GET", "/api/v1/tokens?enabled=maybe")
        .send()
        .unwrap();
    assert_error(r, 400, "invalid_request");
}

// ---------------------------------------------------------------------------------------------
// 4. Visibility
// ---------------------------------------------------------------------------------------------

both_backends!(a_non_admin_token_does_not_see_tokens_of_another_owner);
/// A service token (owned by the tenant `default`) and a personal non-admin token (owned by
/// the admin user): each sees its own owner's tokens only.
fn a_non_admin_token_does_not_see_tokens_of_another_owner(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    // Personal, non-admin: owner is the admin user.
    let (_, personal) = s.create_token("personal", &["tokens:read", "tokens:write"]);
    // Service token owned by the tenant.
    let service = create_ok(
        &s,
        &s.admin_token,
        json!({"name": "service", "scopes": ["tokens:read", "tokens:write", "metrics:read"],
               "ownerId": "default"}),
    );
    assert_eq!(service["ownerId"], "default");
    let service_id = service["id"].as_str().unwrap().to_owned();
    let service_token = service["token"].as_str().unwrap().to_owned();

    // The personal token cannot see the service token in any way.
    let r = get_as(&s, &personal, &format!("/api/v1/tokens/{service_id}"));
    assert_error_body(r, 404, "not_found");
    let v = get_as(&s, &personal, "/api/v1/tokens").1;
    let seen = ids(&v["items"]);
    assert!(!seen.contains(&service_id), "{seen:?}");
    assert!(
        seen.contains(&id_of(&s.admin_token)),
        "same owner: {seen:?}"
    );
    let r = post_as(
        &s,
        &personal,
        "/api/v1/tokens/lookup",
        Some(json!({ "token": service_token })),
    );
    assert_error_body(r, 404, "not_found");
    // ...nor change it.
    let r = put_as(
        &s,
        &personal,
        &service_id,
        json!({"name": "mine now", "scopes": ["tokens:read"]}),
    );
    assert_error_body(r, 404, "not_found");
    for action in ["disable", "enable", "rotate"] {
        let r = post_as(
            &s,
            &personal,
            &format!("/api/v1/tokens/{service_id}/{action}"),
            None,
        );
        assert_error_body(r, 404, "not_found");
    }
    let r = status_json(
        s.with_token("DELETE", &format!("/api/v1/tokens/{service_id}"), &personal)
            .send()
            .unwrap(),
    );
    assert_error_body(r, 404, "not_found");
    assert_eq!(s.verify(&service_token, &[])["code"], "VALID");

    // The service token creates tokens owned by the tenant and sees only those.
    let child = create_ok(
        &s,
        &service_token,
        json!({"name": "service child", "scopes": ["metrics:read"]}),
    );
    assert_eq!(child["ownerId"], "default");
    let v = get_as(&s, &service_token, "/api/v1/tokens").1;
    assert_eq!(
        ids(&v["items"]),
        vec![child["id"].as_str().unwrap().to_owned(), service_id.clone()]
    );
    let r = get_as(
        &s,
        &service_token,
        &format!("/api/v1/tokens/{}", id_of(&s.admin_token)),
    );
    assert_error_body(r, 404, "not_found");

    // The admin sees all of them, and can filter by owner.
    let v = admin_get(&s, "/api/v1/tokens?ownerId=default");
    assert_eq!(
        ids(&v["items"]),
        vec![child["id"].as_str().unwrap().to_owned(), service_id.clone()]
    );
    admin_get(&s, &format!("/api/v1/tokens/{service_id}"));
}

both_backends!(a_non_admin_asking_for_another_owner_gets_403);
fn a_non_admin_asking_for_another_owner_gets_403(backend: Backend) {
    let s = Server::on(backend).start();
    let (_, personal) = s.create_token("personal", &["tokens:read"]);
    let r = get_as(&s, &personal, "/api/v1/tokens?ownerId=default");
    assert_forbidden(r, &["tokens:admin"]);
    // Its own owner is fine.
    let owner = get_as(&s, &personal, "/api/v1/tokens/self").1["ownerId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (st, v) = get_as(&s, &personal, &format!("/api/v1/tokens?ownerId={owner}"));
    assert_eq!(st, 200, "{v}");
}

both_backends!(a_non_admin_cannot_create_a_token_for_another_owner);
fn a_non_admin_cannot_create_a_token_for_another_owner(backend: Backend) {
    let s = Server::on(backend).start();
    let (_, personal) = s.create_token("personal", &["tokens:read", "tokens:write"]);
    let r = create_as(
        &s,
        &personal,
        json!({"name": "svc", "scopes": ["tokens:read"], "ownerId": "default"}),
    );
    assert_forbidden(r, &["tokens:admin"]);
    // Naming its own owner explicitly is allowed.
    let owner = get_as(&s, &personal, "/api/v1/tokens/self").1["ownerId"].clone();
    let v = create_ok(
        &s,
        &personal,
        json!({"name": "mine", "scopes": ["tokens:read"], "ownerId": owner}),
    );
    assert_eq!(v["ownerId"], owner);
}

both_backends!(an_unknown_owner_on_create_is_422);
fn an_unknown_owner_on_create_is_422(backend: Backend) {
    let s = Server::on(backend).start();
    let r = create_as(
        &s,
        &s.admin_token,
        json!({"name": "ghost", "scopes": ["tokens:read"], "ownerId": "usr_doesnotexist0000"}),
    );
    assert_error_body(r, 422, "invalid_request");
    let r = create_as(
        &s,
        &s.admin_token,
        json!({"name": "other tenant", "scopes": ["tokens:read"], "ownerId": "acme"}),
    );
    assert_error_body(r, 422, "invalid_request");
}

// ---------------------------------------------------------------------------------------------
// 5. GET
// ---------------------------------------------------------------------------------------------

both_backends!(get_returns_the_token_metadata);
fn get_returns_the_token_metadata(backend: Backend) {
    let s = Server::on(backend).start();
    let v = create_ok(
        &s,
        &s.admin_token,
        json!({"name": "readable", "scopes": ["tokens:read"], "description": "d"}),
    );
    let id = v["id"].as_str().unwrap();
    let got = admin_get(&s, &format!("/api/v1/tokens/{id}"));
    for field in [
        "id",
        "name",
        "description",
        "metadata",
        "ownerId",
        "tenantId",
        "scopes",
        "enabled",
        "status",
        "createdAt",
        "updatedAt",
        "expiresAt",
        "createdBy",
    ] {
        assert_eq!(got[field], v[field], "{field}: {got} vs {v}");
    }
    assert!(got.get("lastUsedAt").is_some() && got.get("lastUsedIp").is_some());
}

both_backends!(get_unknown_id_is_404_not_found);
fn get_unknown_id_is_404_not_found(backend: Backend) {
    let s = Server::on(backend).start();
    let unknown = id_of(&fresh_token());
    for id in [unknown.as_str(), "nonsense", "kg_"] {
        let r = s
            .admin("GET", &format!("/api/v1/tokens/{id}"))
            .send()
            .unwrap();
        assert_error(r, 404, "not_found");
    }
}

both_backends!(get_needs_tokens_read);
fn get_needs_tokens_read(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    let (_, t) = s.create_token("metrics only", &["metrics:read"]);
    let r = get_as(&s, &t, &format!("/api/v1/tokens/{}", id_of(&s.admin_token)));
    assert_forbidden(r, &["tokens:read"]);
    let r = get_as(&s, &t, "/api/v1/tokens");
    assert_forbidden(r, &["tokens:read"]);
}

// ---------------------------------------------------------------------------------------------
// 6. PUT
// ---------------------------------------------------------------------------------------------

both_backends!(put_replaces_scopes_and_name);
fn put_replaces_scopes_and_name(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    let (id, token) = s.create_token("old name", &["metrics:read", "metrics:write"]);
    assert_eq!(s.verify(&token, &["metrics:write"])["code"], "VALID");
    let (st, v) = put_as(
        &s,
        &s.admin_token,
        &id,
        json!({"name": "new name", "scopes": ["metrics:read"]}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["name"], "new name");
    assert_eq!(v["scopes"], json!(["metrics:read"]));
    assert_eq!(v["id"], id);
    let got = admin_get(&s, &format!("/api/v1/tokens/{id}"));
    assert_eq!(got["name"], "new name");
    assert_eq!(got["scopes"], json!(["metrics:read"]));
    assert!(time_of(&got["updatedAt"]) >= time_of(&got["createdAt"]));

    // The removed scope is gone at once; the kept one still works.
    let r = s.verify(&token, &["metrics:write"]);
    assert_eq!(r["code"], "INSUFFICIENT_SCOPE", "{r}");
    assert_eq!(r["valid"], false);
    assert_eq!(r["missingScopes"], json!(["metrics:write"]));
    let r = s.verify(&token, &["metrics:read"]);
    assert_eq!(r["code"], "VALID");
    assert_eq!(r["name"], "new name");
}

both_backends!(put_keeps_fields_it_does_not_name);
fn put_keeps_fields_it_does_not_name(backend: Backend) {
    let s = Server::on(backend).start();
    let v = create_ok(
        &s,
        &s.admin_token,
        json!({"name": "keep", "scopes": ["tokens:read"], "expiresIn": 7200,
               "description": "kept", "metadata": {"k": 1}}),
    );
    let id = v["id"].as_str().unwrap();
    let (st, u) = put_as(
        &s,
        &s.admin_token,
        id,
        json!({"name": "keep", "scopes": ["tokens:read", "audit:read"]}),
    );
    assert_eq!(st, 200, "{u}");
    assert_eq!(time_of(&u["expiresAt"]), time_of(&v["expiresAt"]));
    assert_eq!(u["description"], "kept");
    assert_eq!(u["metadata"], json!({"k": 1}));
    assert_eq!(u["enabled"], true);
}

both_backends!(put_enabled_false_disables);
fn put_enabled_false_disables(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, token) = s.create_token("to disable", &["tokens:read"]);
    let (st, v) = put_as(
        &s,
        &s.admin_token,
        &id,
        json!({"name": "to disable", "scopes": ["tokens:read"], "enabled": false}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["enabled"], false);
    assert_eq!(v["status"], "disabled");
    assert_eq!(s.verify(&token, &[])["code"], "DISABLED");
    let (st, v) = put_as(
        &s,
        &s.admin_token,
        &id,
        json!({"name": "to disable", "scopes": ["tokens:read"], "enabled": true}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(s.verify(&token, &[])["code"], "VALID");
}

both_backends!(put_expires_at_null_removes_the_expiry);
fn put_expires_at_null_removes_the_expiry(backend: Backend) {
    let s = Server::on(backend).start();
    let v = create_ok(
        &s,
        &s.admin_token,
        json!({"name": "expiring", "scopes": ["tokens:read"], "expiresIn": 3600}),
    );
    let id = v["id"].as_str().unwrap();
    let token = v["token"].as_str().unwrap();
    assert!(s.verify(token, &[])["expiresAt"].is_string());
    let (st, u) = put_as(
        &s,
        &s.admin_token,
        id,
        json!({"name": "expiring", "scopes": ["tokens:read"], "expiresAt": null}),
    );
    assert_eq!(st, 200, "{u}");
    assert_eq!(u["expiresAt"], Value::Null);
    assert_eq!(
        admin_get(&s, &format!("/api/v1/tokens/{id}"))["expiresAt"],
        Value::Null
    );
    let r = s.verify(token, &[]);
    assert_eq!(r["code"], "VALID");
    assert!(
        r.get("expiresAt").is_none() || r["expiresAt"].is_null(),
        "{r}"
    );

    // And a new expiry can be set the same way.
    let at = "2032-01-01T00:00:00Z";
    let (st, u) = put_as(
        &s,
        &s.admin_token,
        id,
        json!({"name": "expiring", "scopes": ["tokens:read"], "expiresAt": at}),
    );
    assert_eq!(st, 200, "{u}");
    assert_eq!(time_of(&u["expiresAt"]), time_of(&json!(at)));
}

both_backends!(put_with_an_expiry_in_the_past_is_422);
fn put_with_an_expiry_in_the_past_is_422(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, _) = s.create_token("p", &["tokens:read"]);
    let at = rfc3339(OffsetDateTime::now_utc() - time::Duration::hours(1));
    let r = put_as(
        &s,
        &s.admin_token,
        &id,
        json!({"name": "p", "scopes": ["tokens:read"], "expiresAt": at}),
    );
    assert_error_body(r, 422, "invalid_request");
}

both_backends!(put_without_scopes_is_422);
fn put_without_scopes_is_422(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, token) = s.create_token("needs scopes", &["tokens:read"]);
    let r = put_as(&s, &s.admin_token, &id, json!({"name": "needs scopes"}));
    assert_error_body(r, 422, "invalid_request");
    let r = put_as(
        &s,
        &s.admin_token,
        &id,
        json!({"name": "needs scopes", "scopes": []}),
    );
    assert_error_body(r, 422, "invalid_request");
    let r = put_as(&s, &s.admin_token, &id, json!({"scopes": ["tokens:read"]}));
    assert_error_body(r, 422, "invalid_request");
    // Nothing changed.
    assert_eq!(s.verify(&token, &["tokens:read"])["code"], "VALID");
}

both_backends!(put_with_an_unknown_scope_is_422);
fn put_with_an_unknown_scope_is_422(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    let (id, _) = s.create_token("typo", &["metrics:read"]);
    let r = put_as(
        &s,
        &s.admin_token,
        &id,
        json!({"name": "typo", "scopes": ["metrics:raed"]}),
    );
    assert_error_body(r, 422, "invalid_request");
    let got = admin_get(&s, &format!("/api/v1/tokens/{id}"));
    assert_eq!(got["scopes"], json!(["metrics:read"]));
}

both_backends!(put_unknown_id_is_404);
fn put_unknown_id_is_404(backend: Backend) {
    let s = Server::on(backend).start();
    let r = put_as(
        &s,
        &s.admin_token,
        &id_of(&fresh_token()),
        json!({"name": "nobody", "scopes": ["tokens:read"]}),
    );
    assert_error_body(r, 404, "not_found");
}

// ---------------------------------------------------------------------------------------------
// 7. DELETE
// ---------------------------------------------------------------------------------------------

both_backends!(delete_revokes_at_once_and_then_404);
fn delete_revokes_at_once_and_then_404(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, token) = s.create_token("doomed", &["tokens:read"]);
    // Warm every cache first.
    assert_eq!(s.verify(&token, &[])["code"], "VALID");
    let (st, _) = get_as(&s, &token, "/api/v1/tokens/self");
    assert_eq!(st, 200);

    let r = s
        .admin("DELETE", &format!("/api/v1/tokens/{id}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.text().unwrap().is_empty(), "204 has no body");

    let v = s.verify(&token, &[]);
    assert_eq!(v["code"], "NOT_FOUND", "{v}");
    assert_eq!(v["valid"], false);
    let r = s
        .with_token("GET", "/api/v1/tokens/self", &token)
        .send()
        .unwrap();
    assert_unauthorized(r, "Invalid API token", "invalid_token", "unknown token");
    let r = s
        .admin("GET", &format!("/api/v1/tokens/{id}"))
        .send()
        .unwrap();
    assert_error(r, 404, "not_found");
    let r = s
        .admin("DELETE", &format!("/api/v1/tokens/{id}"))
        .send()
        .unwrap();
    assert_error(r, 404, "not_found");
    let list = admin_get(&s, "/api/v1/tokens");
    assert!(!ids(&list["items"]).contains(&id));
}

// ---------------------------------------------------------------------------------------------
// 8. Disable / enable
// ---------------------------------------------------------------------------------------------

both_backends!(disable_rejects_the_token_and_enable_restores_it);
fn disable_rejects_the_token_and_enable_restores_it(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, token) = s.create_token("switch", &["tokens:read"]);
    assert_eq!(s.verify(&token, &[])["code"], "VALID");

    let (st, v) = post_as(
        &s,
        &s.admin_token,
        &format!("/api/v1/tokens/{id}/disable"),
        None,
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["id"], id);
    assert_eq!(v["enabled"], false);
    assert_eq!(v["status"], "disabled");
    assert!(v.get("token").is_none());

    let r = s.verify(&token, &[]);
    assert_eq!(r["code"], "DISABLED", "{r}");
    assert_eq!(r["valid"], false);
    assert_eq!(r["tokenId"], id);
    let r = s
        .with_token("GET", "/api/v1/tokens/self", &token)
        .send()
        .unwrap();
    assert_unauthorized(r, "API token disabled", "token_disabled", "disabled token");

    // Disabling twice is harmless.
    let (st, _) = post_as(
        &s,
        &s.admin_token,
        &format!("/api/v1/tokens/{id}/disable"),
        None,
    );
    assert_eq!(st, 200);

    let (st, v) = post_as(
        &s,
        &s.admin_token,
        &format!("/api/v1/tokens/{id}/enable"),
        None,
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["enabled"], true);
    assert_eq!(v["status"], "active");
    assert_eq!(s.verify(&token, &[])["code"], "VALID");
    let (st, _) = get_as(&s, &token, "/api/v1/tokens/self");
    assert_eq!(st, 200);
}

both_backends!(disable_and_enable_unknown_id_are_404);
fn disable_and_enable_unknown_id_are_404(backend: Backend) {
    let s = Server::on(backend).start();
    let id = id_of(&fresh_token());
    for action in ["disable", "enable"] {
        let r = post_as(
            &s,
            &s.admin_token,
            &format!("/api/v1/tokens/{id}/{action}"),
            None,
        );
        assert_error_body(r, 404, "not_found");
    }
}

// ---------------------------------------------------------------------------------------------
// 9. Rotate
// ---------------------------------------------------------------------------------------------

both_backends!(rotate_mints_a_successor_and_expires_the_old_token_at_once);
fn rotate_mints_a_successor_and_expires_the_old_token_at_once(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    let old = create_ok(
        &s,
        &s.admin_token,
        json!({"name": "rotating", "scopes": ["metrics:read", "tokens:read"],
               "description": "desc", "metadata": {"team": "x"}}),
    );
    let old_id = old["id"].as_str().unwrap();
    let old_token = old["token"].as_str().unwrap();
    assert_eq!(s.verify(old_token, &[])["code"], "VALID");

    let (st, new) = post_as(
        &s,
        &s.admin_token,
        &format!("/api/v1/tokens/{old_id}/rotate"),
        Some(json!({})),
    );
    assert_eq!(st, 201, "{new}");
    let new_token = new["token"].as_str().unwrap();
    let new_id = new["id"].as_str().unwrap();
    assert_ne!(new_id, old_id);
    assert_eq!(new_token.len(), 69);
    assert!(new_token.starts_with(&format!("{new_id}_")));
    assert_eq!(new["name"], "rotating");
    assert_eq!(new["scopes"], old["scopes"]);
    assert_eq!(new["ownerId"], old["ownerId"]);
    assert_eq!(new["tenantId"], "default");
    assert_eq!(new["description"], "desc");
    assert_eq!(new["metadata"], json!({"team": "x"}));
    assert_eq!(new["enabled"], true);
    assert_eq!(new["status"], "active");
    assert_eq!(s.verify(new_token, &["metrics:read"])["code"], "VALID");

    // Default grace 0: the old token is expired from this response on.
    let r = s.verify(old_token, &[]);
    assert_eq!(r["code"], "EXPIRED", "{r}");
    assert_eq!(r["valid"], false);
    let r = s
        .with_token("GET", "/api/v1/tokens/self", old_token)
        .send()
        .unwrap();
    assert_unauthorized(r, "API token expired", "token_expired", "expired token");
    let got = admin_get(&s, &format!("/api/v1/tokens/{old_id}"));
    assert_eq!(got["status"], "expired");
    assert!(secs_from_now(time_of(&got["expiresAt"])) <= 0);
}

both_backends!(rotate_with_a_grace_period_keeps_the_old_token_valid_until_it_ends);
fn rotate_with_a_grace_period_keeps_the_old_token_valid_until_it_ends(backend: Backend) {
    let s = Server::on(backend).start();
    let (old_id, old_token) = s.create_token("graceful", &["tokens:read"]);
    let (st, new) = post_as(
        &s,
        &s.admin_token,
        &format!("/api/v1/tokens/{old_id}/rotate"),
        Some(json!({"gracePeriodSeconds": 3600})),
    );
    assert_eq!(st, 201, "{new}");
    assert_eq!(
        new["expiresAt"],
        Value::Null,
        "the successor does not expire"
    );
    let r = s.verify(&old_token, &[]);
    assert_eq!(r["code"], "VALID", "{r}");
    let left = secs_from_now(time_of(&r["expiresAt"]));
    assert!((3540..=3600).contains(&left), "old expires in {left}s");
    let got = admin_get(&s, &format!("/api/v1/tokens/{old_id}"));
    assert_eq!(got["status"], "active");
    let left = secs_from_now(time_of(&got["expiresAt"]));
    assert!((3540..=3600).contains(&left), "old expires in {left}s");
    assert_eq!(
        s.verify(new["token"].as_str().unwrap(), &[])["code"],
        "VALID"
    );
}

both_backends!(rotate_keeps_the_lifetime_and_never_extends_the_old_expiry);
fn rotate_keeps_the_lifetime_and_never_extends_the_old_expiry(backend: Backend) {
    let s = Server::on(backend).start();
    let old = create_ok(
        &s,
        &s.admin_token,
        json!({"name": "day pass", "scopes": ["tokens:read"], "expiresIn": 86400}),
    );
    let old_id = old["id"].as_str().unwrap();
    let old_exp = time_of(&old["expiresAt"]);
    // A grace period longer than the remaining life does not extend it.
    let (st, new) = post_as(
        &s,
        &s.admin_token,
        &format!("/api/v1/tokens/{old_id}/rotate"),
        Some(json!({"gracePeriodSeconds": 7 * 86400})),
    );
    assert_eq!(st, 201, "{new}");
    let left = secs_from_now(time_of(&new["expiresAt"]));
    assert!(
        (86340..=86400).contains(&left),
        "successor lives a day: {left}s"
    );
    let got = admin_get(&s, &format!("/api/v1/tokens/{old_id}"));
    assert_eq!(time_of(&got["expiresAt"]), old_exp);
}

both_backends!(a_rotated_out_token_cannot_change_its_expiry);
/// The end of a grace period is binding: a rotated-out token cannot extend or remove its own
/// expiry, nor be rotated again, and it names its successor.
fn a_rotated_out_token_cannot_change_its_expiry(backend: Backend) {
    let s = Server::on(backend).start();
    let (old_id, old) = s.create_token("deploy", &["tokens:write"]);
    let (st, rotated) = post_as(
        &s,
        &s.admin_token,
        &format!("/api/v1/tokens/{old_id}/rotate"),
        Some(json!({"gracePeriodSeconds": 600})),
    );
    assert_eq!(st, 201, "{rotated}");
    let before = admin_get(&s, &format!("/api/v1/tokens/{old_id}"));
    assert_eq!(before["rotatedTo"], rotated["id"]);
    let later = rfc3339(OffsetDateTime::now_utc() + time::Duration::days(365));
    for expires_at in [Value::Null, json!(later)] {
        for by in [&old, &s.admin_token] {
            let r = put_as(
                &s,
                by,
                &old_id,
                json!({"name": "deploy", "scopes": ["tokens:write"], "expiresAt": expires_at}),
            );
            assert_error_body(r, 409, "conflict");
        }
    }
    let after = admin_get(&s, &format!("/api/v1/tokens/{old_id}"));
    assert_eq!(after["expiresAt"], before["expiresAt"]);
    // A change that leaves the expiry alone still works, as does one that restates it.
    let r = put_as(
        &s,
        &old,
        &old_id,
        json!({"name": "deploy (old)", "scopes": ["tokens:write"],
               "expiresAt": before["expiresAt"]}),
    );
    assert_eq!(r.0, 200, "{}", r.1);
    let r = post_as(
        &s,
        &s.admin_token,
        &format!("/api/v1/tokens/{old_id}/rotate"),
        None,
    );
    assert_error_body(r, 409, "conflict");
}

both_backends!(an_expired_token_cannot_be_revived);
/// An expired token stays expired: no token of its owner can give it a new expiry.
fn an_expired_token_cannot_be_revived(backend: Backend) {
    let s = Server::on(backend).start();
    let (_, writer) = s.create_token("writer", &["tokens:write"]);
    let v = create_ok(
        &s,
        &s.admin_token,
        json!({"name": "short", "scopes": ["tokens:read"], "expiresIn": 1}),
    );
    let (id, token) = (v["id"].as_str().unwrap(), v["token"].as_str().unwrap());
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(s.verify(token, &[])["code"], "EXPIRED");
    let later = rfc3339(OffsetDateTime::now_utc() + time::Duration::days(1));
    for expires_at in [Value::Null, json!(later)] {
        for by in [&writer, &s.admin_token] {
            let r = put_as(
                &s,
                by,
                id,
                json!({"name": "short", "scopes": ["tokens:read"], "expiresAt": expires_at}),
            );
            assert_error_body(r, 409, "conflict");
        }
    }
    assert_eq!(s.verify(token, &[])["code"], "EXPIRED");
}

both_backends!(rotate_with_an_empty_body_works);
fn rotate_with_an_empty_body_works(backend: Backend) {
    let s = Server::on(backend).start();
    let (old_id, old_token) = s.create_token("no body", &["tokens:read"]);
    let r = s
        .admin("POST", &format!("/api/v1/tokens/{old_id}/rotate"))
        .send()
        .unwrap();
    let (st, v) = status_json(r);
    assert_eq!(st, 201, "{v}");
    assert!(v["token"].is_string());
    assert_eq!(s.verify(&old_token, &[])["code"], "EXPIRED");

    // `{}` and a JSON content type with an empty body work too.
    let (id2, _) = s.create_token("empty object", &["tokens:read"]);
    let (st, v) = post_as(
        &s,
        &s.admin_token,
        &format!("/api/v1/tokens/{id2}/rotate"),
        Some(json!({})),
    );
    assert_eq!(st, 201, "{v}");
    let (id3, _) = s.create_token("empty json", &["tokens:read"]);
    let r = s
        .admin("POST", &format!("/api/v1/tokens/{id3}/rotate"))
        .header("content-type", "application/json")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
}

both_backends!(rotate_grace_over_30_days_is_422);
fn rotate_grace_over_30_days_is_422(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, token) = s.create_token("long grace", &["tokens:read"]);
    let r = post_as(
        &s,
        &s.admin_token,
        &format!("/api/v1/tokens/{id}/rotate"),
        Some(json!({"gracePeriodSeconds": 30 * 86400 + 1})),
    );
    assert_error_body(r, 422, "invalid_request");
    let r = post_as(
        &s,
        &s.admin_token,
        &format!("/api/v1/tokens/{id}/rotate"),
        Some(json!({"gracePeriodSeconds": -1})),
    );
    assert_error_body(r, 422, "invalid_request");
    assert_eq!(s.verify(&token, &[])["code"], "VALID", "not rotated");
    // Exactly 30 days is allowed.
    let (st, v) = post_as(
        &s,
        &s.admin_token,
        &format!("/api/v1/tokens/{id}/rotate"),
        Some(json!({"gracePeriodSeconds": 30 * 86400})),
    );
    assert_eq!(st, 201, "{v}");
}

both_backends!(rotating_a_disabled_or_expired_token_is_409);
fn rotating_a_disabled_or_expired_token_is_409(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, _) = s.create_token("off", &["tokens:read"]);
    let (st, _) = post_as(
        &s,
        &s.admin_token,
        &format!("/api/v1/tokens/{id}/disable"),
        None,
    );
    assert_eq!(st, 200);
    let r = post_as(
        &s,
        &s.admin_token,
        &format!("/api/v1/tokens/{id}/rotate"),
        None,
    );
    assert_error_body(r, 409, "conflict");

    // An old token that rotation already expired cannot be rotated again.
    let (id2, _) = s.create_token("twice", &["tokens:read"]);
    let (st, _) = post_as(
        &s,
        &s.admin_token,
        &format!("/api/v1/tokens/{id2}/rotate"),
        None,
    );
    assert_eq!(st, 201);
    let r = post_as(
        &s,
        &s.admin_token,
        &format!("/api/v1/tokens/{id2}/rotate"),
        None,
    );
    assert_error_body(r, 409, "conflict");
}

both_backends!(rotate_unknown_id_is_404);
fn rotate_unknown_id_is_404(backend: Backend) {
    let s = Server::on(backend).start();
    let r = post_as(
        &s,
        &s.admin_token,
        &format!("/api/v1/tokens/{}/rotate", id_of(&fresh_token())),
        None,
    );
    assert_error_body(r, 404, "not_found");
}

both_backends!(rotate_is_audited_with_the_new_token_id);
fn rotate_is_audited_with_the_new_token_id(backend: Backend) {
    let s = Server::on(backend).start();
    let (old_id, _) = s.create_token("audited rotation", &["tokens:read"]);
    let (st, new) = post_as(
        &s,
        &s.admin_token,
        &format!("/api/v1/tokens/{old_id}/rotate"),
        Some(json!({"gracePeriodSeconds": 60})),
    );
    assert_eq!(st, 201);
    let e = audit_entry(&s, "token.rotate", &old_id);
    assert_eq!(e["targetId"], old_id);
    assert_eq!(e["actor"], id_of(&s.admin_token));
    assert_eq!(e["details"]["newTokenId"], new["id"]);
    assert_eq!(e["details"]["gracePeriodSeconds"], 60);
    let text = s
        .admin("GET", "/api/v1/audit")
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!text.contains(secret_of(new["token"].as_str().unwrap())));
}

// ---------------------------------------------------------------------------------------------
// 10. Lookup
// ---------------------------------------------------------------------------------------------

both_backends!(lookup_returns_metadata_without_the_secret);
fn lookup_returns_metadata_without_the_secret(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, token) = s.create_token("leaked", &["tokens:read"]);
    let (st, v) = post_as(
        &s,
        &s.admin_token,
        "/api/v1/tokens/lookup",
        Some(json!({ "token": token })),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["id"], id);
    assert_eq!(v["name"], "leaked");
    assert_eq!(v["scopes"], json!(["tokens:read"]));
    assert!(v.get("token").is_none(), "{v}");
    assert!(!v.to_string().contains(secret_of(&token)));
    // A token may look itself up.
    let (st, v) = post_as(
        &s,
        &token,
        "/api/v1/tokens/lookup",
        Some(json!({ "token": token })),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["id"], id);
}

both_backends!(lookup_of_an_unknown_or_malformed_token_is_404);
fn lookup_of_an_unknown_or_malformed_token_is_404(backend: Backend) {
    let s = Server::on(backend).start();
    let mut tampered = s.create_token("real", &["tokens:read"]).1;
    // Change one secret character: the checksum no longer matches.
    let c = if &tampered[30..31] == "A" { "B" } else { "A" };
    tampered.replace_range(30..31, c);
    for t in [
        fresh_token(),
        tampered,
        "not-a-token".to_owned(),
        "kg_short".to_owned(),
        "x".repeat(40),
    ] {
        let r = post_as(
            &s,
            &s.admin_token,
            "/api/v1/tokens/lookup",
            Some(json!({ "token": t })),
        );
        assert_error_body(r, 404, "not_found");
    }
    let r = post_as(&s, &s.admin_token, "/api/v1/tokens/lookup", Some(json!({})));
    assert_error_body(r, 422, "invalid_request");
}

// ---------------------------------------------------------------------------------------------
// 11. Self
// ---------------------------------------------------------------------------------------------

both_backends!(self_works_with_a_token_that_holds_no_token_scope);
fn self_works_with_a_token_that_holds_no_token_scope(backend: Backend) {
    let s = Server::on(backend)
        .args(&["--scope", "metrics:read=Read metrics"])
        .start();
    let (id, token) = s.create_token("metrics only", &["metrics:read"]);
    let (st, v) = get_as(&s, &token, "/api/v1/tokens/self");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["id"], id);
    assert_eq!(v["name"], "metrics only");
    assert_eq!(v["scopes"], json!(["metrics:read"]));
    assert_eq!(v["tenantId"], "default");
    assert!(v.get("token").is_none());
    // But nothing else of the token API.
    assert_forbidden(get_as(&s, &token, "/api/v1/tokens"), &["tokens:read"]);

    let r = s.anon("GET", "/api/v1/tokens/self").send().unwrap();
    assert_unauthorized(r, "Invalid API token", "missing_token", "no token");
}

both_backends!(a_disabled_or_expired_token_can_still_revoke_itself);
/// A token may always end itself: a disabled or an expired one too, and each is then gone.
fn a_disabled_or_expired_token_can_still_revoke_itself(backend: Backend) {
    let s = Server::on(backend).start();
    let (disabled_id, disabled) = s.create_token("disabled", &["tokens:read"]);
    let (st, v) = post_as(
        &s,
        &s.admin_token,
        &format!("/api/v1/tokens/{disabled_id}/disable"),
        None,
    );
    assert_eq!(st, 200, "{v}");
    let v = create_ok(
        &s,
        &s.admin_token,
        json!({"name": "expired", "scopes": ["tokens:read"], "expiresIn": 1}),
    );
    let expired = v["token"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(1100));
    for (token, was) in [(&disabled, "DISABLED"), (&expired, "EXPIRED")] {
        assert_eq!(s.verify(token, &[])["code"], was);
        let r = s
            .with_token("DELETE", "/api/v1/tokens/self", token)
            .send()
            .unwrap();
        assert_eq!(r.status(), 204, "{was}");
        assert_eq!(s.verify(token, &[])["code"], "NOT_FOUND");
    }
    // Nothing else opens to them: a disabled token still reads nothing.
    let (_, other) = s.create_token("other", &["tokens:read"]);
    let other_id = id_of(&other);
    post_as(
        &s,
        &s.admin_token,
        &format!("/api/v1/tokens/{other_id}/disable"),
        None,
    );
    let r = s
        .with_token("GET", "/api/v1/tokens/self", &other)
        .send()
        .unwrap();
    assert_unauthorized(r, "API token disabled", "token_disabled", "disabled token");
}

both_backends!(delete_self_revokes_the_calling_token);
fn delete_self_revokes_the_calling_token(backend: Backend) {
    let s = Server::on(backend)
        .args(&["--scope", "metrics:read=Read metrics"])
        .start();
    let (id, token) = s.create_token("self destruct", &["metrics:read"]);
    assert_eq!(s.verify(&token, &[])["code"], "VALID");
    let r = s
        .with_token("DELETE", "/api/v1/tokens/self", &token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(s.verify(&token, &[])["code"], "NOT_FOUND");
    let r = s
        .with_token("GET", "/api/v1/tokens/self", &token)
        .send()
        .unwrap();
    assert_unauthorized(r, "Invalid API token", "invalid_token", "unknown token");
    let r = s
        .with_token("DELETE", "/api/v1/tokens/self", &token)
        .send()
        .unwrap();
    assert_unauthorized(r, "Invalid API token", "invalid_token", "unknown token");
    let r = s
        .admin("GET", &format!("/api/v1/tokens/{id}"))
        .send()
        .unwrap();
    assert_error(r, 404, "not_found");

    let e = audit_entry(&s, "token.revoke_self", &id);
    assert_eq!(e["actor"], id, "the token revoked itself");
    assert_eq!(e["ip"], "127.0.0.1");
}

// ---------------------------------------------------------------------------------------------
// 12. No escalation
// ---------------------------------------------------------------------------------------------

both_backends!(a_narrow_token_cannot_create_a_wider_one);
fn a_narrow_token_cannot_create_a_wider_one(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    let (_, narrow) = s.create_token("narrow", &["tokens:write", "metrics:read"]);
    let r = create_as(
        &s,
        &narrow,
        json!({"name": "wider", "scopes": ["metrics:read", "metrics:write"]}),
    );
    assert_forbidden(r, &["metrics:write"]);
    let r = create_as(&s, &narrow, json!({"name": "all", "scopes": ["*"]}));
    assert_forbidden(r, &["*"]);
    let r = create_as(&s, &narrow, json!({"name": "ns", "scopes": ["metrics:*"]}));
    assert_forbidden(r, &["metrics:*"]);
    let r = create_as(
        &s,
        &narrow,
        json!({"name": "admin", "scopes": ["tokens:admin", "audit:read"]}),
    );
    let (st, v) = r;
    assert_eq!(st, 403, "{v}");
    let mut missing: Vec<String> = serde_json::from_value(v["missingScopes"].clone()).unwrap();
    missing.sort();
    assert_eq!(missing, vec!["audit:read", "tokens:admin"]);
    // A subset of its own scopes is fine (tokens:write implies tokens:read).
    let v = create_ok(
        &s,
        &narrow,
        json!({"name": "subset", "scopes": ["metrics:read", "tokens:read"]}),
    );
    assert_eq!(v["scopes"], json!(["metrics:read", "tokens:read"]));
}

both_backends!(a_narrow_token_cannot_widen_a_token_with_put);
fn a_narrow_token_cannot_widen_a_token_with_put(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    let (_, narrow) = s.create_token("narrow", &["tokens:write", "metrics:read"]);
    let child = create_ok(
        &s,
        &narrow,
        json!({"name": "child", "scopes": ["metrics:read"]}),
    );
    let id = child["id"].as_str().unwrap();
    let r = put_as(
        &s,
        &narrow,
        id,
        json!({"name": "child", "scopes": ["metrics:read", "metrics:write"]}),
    );
    assert_forbidden(r, &["metrics:write"]);
    let r = put_as(&s, &narrow, id, json!({"name": "child", "scopes": ["*"]}));
    assert_forbidden(r, &["*"]);
    assert_eq!(
        admin_get(&s, &format!("/api/v1/tokens/{id}"))["scopes"],
        json!(["metrics:read"])
    );
    // Within its own scopes it may change the token.
    let (st, v) = put_as(
        &s,
        &narrow,
        id,
        json!({"name": "renamed child", "scopes": ["metrics:read"]}),
    );
    assert_eq!(st, 200, "{v}");
}

both_backends!(a_narrow_token_cannot_rotate_a_token_whose_scopes_it_lacks);
fn a_narrow_token_cannot_rotate_a_token_whose_scopes_it_lacks(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    let (_, narrow) = s.create_token("narrow", &["tokens:write", "metrics:read"]);
    let (wide_id, wide) = s.create_token("wide", &["metrics:write", "metrics:read"]);
    let r = post_as(
        &s,
        &narrow,
        &format!("/api/v1/tokens/{wide_id}/rotate"),
        None,
    );
    assert_forbidden(r, &["metrics:write"]);
    assert_eq!(s.verify(&wide, &[])["code"], "VALID", "not rotated");
    // A token within its scopes can be rotated.
    let (sub_id, _) = s.create_token("sub", &["metrics:read"]);
    let (st, v) = post_as(
        &s,
        &narrow,
        &format!("/api/v1/tokens/{sub_id}/rotate"),
        None,
    );
    assert_eq!(st, 201, "{v}");
}

both_backends!(a_narrow_token_cannot_disable_a_wider_token);
/// A token can only create or change tokens whose scopes are a subset of its
/// own. Disabling a token is changing it.
fn a_narrow_token_cannot_disable_a_wider_token(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    let (_, narrow) = s.create_token("narrow", &["tokens:write", "metrics:read"]);
    let (wide_id, wide) = s.create_token("wide", &["metrics:write", "metrics:read"]);
    let r = post_as(
        &s,
        &narrow,
        &format!("/api/v1/tokens/{wide_id}/disable"),
        None,
    );
    let still = s.verify(&wide, &[])["code"].clone();
    assert_forbidden(r, &["metrics:write"]);
    assert_eq!(still, "VALID");
}

both_backends!(a_narrow_token_cannot_put_a_wider_token);
/// No escalation also covers changing a wider token, even to narrow it: a
/// `metrics:read` token must not be able to strip the admin's tokens of their scopes.
fn a_narrow_token_cannot_put_a_wider_token(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    let (_, narrow) = s.create_token("narrow", &["tokens:write", "metrics:read"]);
    let (wide_id, wide) = s.create_token("wide", &["metrics:write", "metrics:read"]);
    let r = put_as(
        &s,
        &narrow,
        &wide_id,
        json!({"name": "wide", "scopes": ["metrics:read"]}),
    );
    let still = s.verify(&wide, &["metrics:write"])["code"].clone();
    assert_forbidden(r, &["metrics:write"]);
    assert_eq!(still, "VALID");
}

both_backends!(a_narrow_token_cannot_delete_a_wider_token);
/// Revoking is the strongest change there is; a `tokens:write` +
/// `metrics:read` token must not revoke the tenant's `*` bootstrap token.
fn a_narrow_token_cannot_delete_a_wider_token(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    let (_, narrow) = s.create_token("narrow", &["tokens:write", "metrics:read"]);
    let r = status_json(
        s.with_token(
            "DELETE",
            &format!("/api/v1/tokens/{}", id_of(&s.admin_token)),
            &narrow,
        )
        .send()
        .unwrap(),
    );
    let still = s.verify(&s.admin_token, &[])["code"].clone();
    assert_forbidden(r, &["*"]);
    assert_eq!(still, "VALID");
}

both_backends!(wildcard_tokens_can_be_disabled_and_revoked_by_whoever_covers_what_they_grant);
/// Taking power away is never harder than giving it: the tenant's admin (web session, or a
/// token with `tokens:admin`) disables and revokes wildcard tokens, the bootstrap `*` token
/// included; a token of the same owner that holds every `metrics:` scope of the catalogue may
/// disable a `metrics:*` one, and one that lacks `metrics:write` may not.
fn wildcard_tokens_can_be_disabled_and_revoked_by_whoever_covers_what_they_grant(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    let session = s.login("admin", ADMIN_PASSWORD);
    let (ns_id, ns) = s.create_token("namespace", &["metrics:*"]);
    let (star_id, star) = s.create_token("everything", &["*"]);
    let as_session = |method: &str, path: &str| {
        let r = s.as_session(&session, method, path).send().unwrap();
        r.status().as_u16()
    };
    assert_eq!(
        as_session("POST", &format!("/api/v1/tokens/{ns_id}/disable")),
        200
    );
    assert_eq!(s.verify(&ns, &[])["code"], "DISABLED");
    assert_eq!(
        as_session("POST", &format!("/api/v1/tokens/{star_id}/disable")),
        200
    );
    assert_eq!(s.verify(&star, &[])["code"], "DISABLED");
    assert_eq!(
        as_session("DELETE", &format!("/api/v1/tokens/{ns_id}")),
        204
    );
    assert_eq!(
        as_session("DELETE", &format!("/api/v1/tokens/{star_id}")),
        204
    );
    assert_eq!(s.verify(&star, &[])["code"], "NOT_FOUND");

    // A token with tokens:admin and nothing of the wildcard's: the leaked bootstrap token.
    let (_, admin) = s.create_token("token admin", &["tokens:admin"]);
    let bootstrap = id_of(&s.admin_token);
    let (st, v) = post_as(
        &s,
        &admin,
        &format!("/api/v1/tokens/{bootstrap}/disable"),
        None,
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(s.verify(&s.admin_token, &[])["code"], "DISABLED");
    let r = s
        .with_token("DELETE", &format!("/api/v1/tokens/{bootstrap}"), &admin)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(s.verify(&s.admin_token, &[])["code"], "NOT_FOUND");
}

both_backends!(an_owners_token_covering_every_scope_of_a_namespace_may_disable_its_wildcard_token);
/// The same owner without `tokens:admin`: coverage counts a wildcard as what it grants.
fn an_owners_token_covering_every_scope_of_a_namespace_may_disable_its_wildcard_token(
    backend: Backend,
) {
    let s = Server::on(backend).with_metrics_scopes().start();
    let (ns_id, ns) = s.create_token("namespace", &["metrics:*"]);
    let (_, narrow) = s.create_token("narrow", &["tokens:write", "metrics:read"]);
    let (_, full) = s.create_token("full", &["tokens:write", "metrics:read", "metrics:write"]);
    let path = format!("/api/v1/tokens/{ns_id}/disable");
    assert_forbidden(post_as(&s, &narrow, &path, None), &["metrics:*"]);
    assert_eq!(s.verify(&ns, &[])["code"], "VALID");
    let (st, v) = post_as(&s, &full, &path, None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(s.verify(&ns, &[])["code"], "DISABLED");
    // Giving the power back is giving power: it needs the wildcard itself.
    assert_forbidden(
        post_as(&s, &full, &format!("/api/v1/tokens/{ns_id}/enable"), None),
        &["metrics:*"],
    );
}

both_backends!(a_wildcard_holder_can_create_a_token_within_its_namespace);
fn a_wildcard_holder_can_create_a_token_within_its_namespace(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    let (_, ns) = s.create_token("namespace", &["tokens:write", "metrics:*"]);
    let v = create_ok(
        &s,
        &ns,
        json!({"name": "reader", "scopes": ["metrics:read"]}),
    );
    assert_eq!(v["scopes"], json!(["metrics:read"]));
    let v = create_ok(
        &s,
        &ns,
        json!({"name": "both", "scopes": ["metrics:read", "metrics:write"]}),
    );
    assert_eq!(v["scopes"], json!(["metrics:read", "metrics:write"]));
    let v = create_ok(&s, &ns, json!({"name": "ns", "scopes": ["metrics:*"]}));
    assert_eq!(v["scopes"], json!(["metrics:*"]));
    let r = create_as(&s, &ns, json!({"name": "audit", "scopes": ["audit:read"]}));
    assert_forbidden(r, &["audit:read"]);
}

both_backends!(creating_needs_tokens_write);
fn creating_needs_tokens_write(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    let (_, reader) = s.create_token("reader", &["tokens:read", "metrics:read"]);
    let r = create_as(
        &s,
        &reader,
        json!({"name": "x", "scopes": ["metrics:read"]}),
    );
    assert_forbidden(r, &["tokens:write"]);
    let (id, _) = s.create_token("target", &["metrics:read"]);
    let r = put_as(
        &s,
        &reader,
        &id,
        json!({"name": "x", "scopes": ["metrics:read"]}),
    );
    assert_forbidden(r, &["tokens:write"]);
    for action in ["disable", "enable", "rotate"] {
        let r = post_as(&s, &reader, &format!("/api/v1/tokens/{id}/{action}"), None);
        assert_forbidden(r, &["tokens:write"]);
    }
    let r = status_json(
        s.with_token("DELETE", &format!("/api/v1/tokens/{id}"), &reader)
            .send()
            .unwrap(),
    );
    assert_forbidden(r, &["tokens:write"]);
}

// ---------------------------------------------------------------------------------------------
// 13. Scopes
// ---------------------------------------------------------------------------------------------

both_backends!(scopes_lists_built_ins_and_deployment_scopes);
fn scopes_lists_built_ins_and_deployment_scopes(backend: Backend) {
    // Without compatible surfaces, whose scopes would join the catalogue.
    let s = Server::on(backend)
        .args(&[
            "--no-compat",
            "--scope",
            "metrics:read=Read metrics",
            "--scope",
            "metrics:write=Write metrics",
        ])
        .start();
    let v = admin_get(&s, "/api/v1/scopes");
    let list = v.as_array().unwrap();
    let find = |name: &str| {
        list.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing from {v}"))
            .clone()
    };
    for name in [
        "tokens:read",
        "tokens:write",
        "tokens:admin",
        "tokens:replicate",
        "users:read",
        "users:write",
        "audit:read",
        "tenants:admin",
        "webhooks:read",
        "webhooks:write",
    ] {
        let e = find(name);
        assert!(
            !e["description"].as_str().unwrap().is_empty(),
            "{name} has a description"
        );
    }
    assert_eq!(find("metrics:read")["description"], "Read metrics");
    assert_eq!(find("metrics:write")["description"], "Write metrics");
    assert_eq!(list.len(), 12, "{v}");

    // Any valid token may read it; no token may not.
    let (_, t) = s.create_token("metrics", &["metrics:read"]);
    let (st, v2) = get_as(&s, &t, "/api/v1/scopes");
    assert_eq!(st, 200);
    assert_eq!(v2, v);
    let r = s.anon("GET", "/api/v1/scopes").send().unwrap();
    assert_unauthorized(r, "Invalid API token", "missing_token", "no token");
}

both_backends!(creating_with_an_unknown_scope_is_422);
fn creating_with_an_unknown_scope_is_422(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    for scopes in [
        json!(["metrics:raed"]),
        json!(["metrics:read", "nope"]),
        json!(["bad scope"]),
        json!(["x:"]),
    ] {
        let r = create_as(
            &s,
            &s.admin_token,
            json!({"name": "typo", "scopes": scopes}),
        );
        assert_error_body(r, 422, "invalid_request");
    }
}

both_backends!(a_wildcard_needs_a_registered_namespace);
fn a_wildcard_needs_a_registered_namespace(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    let v = create_ok(
        &s,
        &s.admin_token,
        json!({"name": "all metrics", "scopes": ["metrics:*"]}),
    );
    let token = v["token"].as_str().unwrap();
    assert_eq!(
        s.verify(token, &["metrics:read", "metrics:write"])["code"],
        "VALID"
    );
    assert_eq!(
        s.verify(token, &["audit:read"])["code"],
        "INSUFFICIENT_SCOPE"
    );
    let r = create_as(
        &s,
        &s.admin_token,
        json!({"name": "logs", "scopes": ["logs:*"]}),
    );
    assert_error_body(r, 422, "invalid_request");
    // Without any metrics scope registered, `metrics:*` is unknown too.
    let plain = Server::on(backend).start();
    let r = create_as(
        &plain,
        &plain.admin_token,
        json!({"name": "all metrics", "scopes": ["metrics:*"]}),
    );
    assert_error_body(r, 422, "invalid_request");
}

// ---------------------------------------------------------------------------------------------
// 14. Audit
// ---------------------------------------------------------------------------------------------

both_backends!(every_change_is_audited);
fn every_change_is_audited(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    // A second caller, so that actor is checked to be the calling token and not the admin.
    let (actor_id, actor) = s.create_token("operator", &["tokens:write", "metrics:*"]);
    let started = OffsetDateTime::now_utc() - time::Duration::seconds(2);

    let v = create_ok(
        &s,
        &actor,
        json!({"name": "subject", "scopes": ["metrics:read"]}),
    );
    let id = v["id"].as_str().unwrap().to_owned();
    let (st, _) = put_as(
        &s,
        &actor,
        &id,
        json!({"name": "subject 2", "scopes": ["metrics:read", "metrics:write"]}),
    );
    assert_eq!(st, 200);
    assert_eq!(
        post_as(&s, &actor, &format!("/api/v1/tokens/{id}/disable"), None).0,
        200
    );
    assert_eq!(
        post_as(&s, &actor, &format!("/api/v1/tokens/{id}/enable"), None).0,
        200
    );
    let (st, new) = post_as(&s, &actor, &format!("/api/v1/tokens/{id}/rotate"), None);
    assert_eq!(st, 201);
    let new_id = new["id"].as_str().unwrap().to_owned();
    let r = s
        .with_token("DELETE", &format!("/api/v1/tokens/{new_id}"), &actor)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    let (self_id, self_token) = s.create_token("self", &["metrics:read"]);
    let r = s
        .with_token("DELETE", "/api/v1/tokens/self", &self_token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);

    let expected = [
        ("token.create", &id, &actor_id),
        ("token.update", &id, &actor_id),
        ("token.disable", &id, &actor_id),
        ("token.enable", &id, &actor_id),
        ("token.rotate", &id, &actor_id),
        ("token.delete", &new_id, &actor_id),
        ("token.revoke_self", &self_id, &self_id),
    ];
    for (action, target, who) in expected {
        let e = audit_entry(&s, action, target);
        assert_eq!(e["action"], action, "{e}");
        assert_eq!(&e["targetId"], target.as_str(), "{e}");
        assert_eq!(&e["actor"], who.as_str(), "{action}: {e}");
        assert_eq!(e["ip"], "127.0.0.1", "{action}: {e}");
        let at = time_of(&e["at"]);
        assert!(
            at >= started && secs_from_now(at) <= 1,
            "{action} at {at}: {e}"
        );
        assert!(e["id"].is_i64() || e["id"].is_string(), "{e}");
    }
    // The rotation's successor is created by the rotate entry, the actor's own create is the
    // admin's.
    let e = audit_entry(&s, "token.create", &actor_id);
    assert_eq!(e["actor"], id_of(&s.admin_token));
    // The update records the new state.
    let e = audit_entry(&s, "token.update", &id);
    assert_eq!(e["details"]["name"], "subject 2", "{e}");

    // Newest first.
    let all = audit(&s, "");
    let actions: Vec<&str> = all.iter().map(|e| e["action"].as_str().unwrap()).collect();
    let pos = |a: &str| actions.iter().position(|x| *x == a).unwrap();
    assert!(pos("token.revoke_self") < pos("token.delete"));
    assert!(pos("token.delete") < pos("token.rotate"));
    assert!(pos("token.enable") < pos("token.disable"));
    assert!(pos("token.update") < pos("system.bootstrap"));
}

both_backends!(a_failed_change_leaves_no_audit_entry);
fn a_failed_change_leaves_no_audit_entry(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    let before = audit(&s, "").len();
    let r = create_as(
        &s,
        &s.admin_token,
        json!({"name": "bad", "scopes": ["unknown:scope"]}),
    );
    assert_eq!(r.0, 422);
    let (_, narrow) = s.create_token("narrow", &["tokens:write"]);
    let r = create_as(&s, &narrow, json!({"name": "x", "scopes": ["audit:read"]}));
    assert_eq!(r.0, 403);
    assert_eq!(
        audit(&s, "").len(),
        before + 1,
        "only the narrow token's create"
    );
}

both_backends!(audit_filters_by_action_target_and_actor);
fn audit_filters_by_action_target_and_actor(backend: Backend) {
    let s = Server::on(backend).start();
    let (actor_id, actor) = s.create_token("actor", &["tokens:write"]);
    let a = create_ok(&s, &actor, json!({"name": "a", "scopes": ["tokens:read"]}));
    let a_id = a["id"].as_str().unwrap().to_owned();
    let (b_id, _) = s.create_token("b", &["tokens:read"]);
    post_as(&s, &actor, &format!("/api/v1/tokens/{a_id}/disable"), None);
    post_as(
        &s,
        &s.admin_token,
        &format!("/api/v1/tokens/{b_id}/disable"),
        None,
    );

    let items = audit(&s, "?action=token.disable");
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(items.iter().all(|e| e["action"] == "token.disable"));
    assert_eq!(items[0]["targetId"], b_id, "newest first");
    assert_eq!(items[1]["targetId"], a_id);

    let items = audit(&s, &format!("?targetId={a_id}"));
    let actions: Vec<_> = items.iter().map(|e| e["action"].clone()).collect();
    assert_eq!(actions, vec![json!("token.disable"), json!("token.create")]);

    let items = audit(&s, &format!("?actorId={actor_id}"));
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(items.iter().all(|e| e["actor"] == actor_id));
    assert!(items.iter().all(|e| e["targetId"] == a_id));

    let items = audit(&s, &format!("?actorId={actor_id}&action=token.create"));
    assert_eq!(items.len(), 1);

    let items = audit(&s, "?action=token.nothing");
    assert!(items.is_empty());
}

both_backends!(audit_pages_with_limit_and_cursor);
fn audit_pages_with_limit_and_cursor(backend: Backend) {
    let s = Server::on(backend).start();
    for i in 0..5 {
        let (id, _) = s.create_token(&format!("t{i}"), &["tokens:read"]);
        post_as(
            &s,
            &s.admin_token,
            &format!("/api/v1/tokens/{id}/disable"),
            None,
        );
    }
    let all = audit(&s, "");
    assert_eq!(all.len(), 11, "bootstrap + 5 creates + 5 disables");
    let (paged, sizes) = collect_pages(&s, &s.admin_token, "/api/v1/audit", 4);
    assert_eq!(sizes, vec![4, 4, 3]);
    assert_eq!(paged, all, "the pages add up to the whole log, in order");
    let unique: HashSet<String> = paged.iter().map(|e| e["id"].to_string()).collect();
    assert_eq!(unique.len(), 11);

    let (paged, sizes) = collect_pages(&s, &s.admin_token, "/api/v1/audit?action=token.create", 2);
    assert_eq!(sizes, vec![2, 2, 1]);
    assert!(paged.iter().all(|e| e["action"] == "token.create"));

    for q in ["limit=0", "limit=1001", "cursor=garbage"] {
        let r = s
            .admin("GET", &format!("/api/v1/audit?{q}"))
            .send()
            .unwrap();
        assert_error(r, 400, "invalid_request");
    }
}

both_backends!(audit_needs_audit_read);
fn audit_needs_audit_read(backend: Backend) {
    let s = Server::on(backend).start();
    let (_, t) = s.create_token("no audit", &["tokens:admin"]);
    assert_forbidden(get_as(&s, &t, "/api/v1/audit"), &["audit:read"]);
    let r = s.anon("GET", "/api/v1/audit").send().unwrap();
    assert_unauthorized(r, "Invalid API token", "missing_token", "no token");
    let (_, auditor) = s.create_token("auditor", &["audit:read"]);
    let (st, v) = get_as(&s, &auditor, "/api/v1/audit");
    assert_eq!(st, 200, "{v}");
    assert!(v["items"].is_array());
}

both_backends!(the_first_audit_entry_is_system_bootstrap);
fn the_first_audit_entry_is_system_bootstrap(backend: Backend) {
    let s = Server::on(backend).start();
    s.create_token("one", &["tokens:read"]);
    let all = audit(&s, "");
    let first = all.last().unwrap();
    assert_eq!(first["action"], "system.bootstrap", "{all:?}");
    assert_eq!(first["targetId"], id_of(&s.admin_token));
    assert_eq!(first["actor"], "system");
    time_of(&first["at"]);
    let only = audit(&s, "?action=system.bootstrap");
    assert_eq!(only.len(), 1);
}

/// `2026-12-01T21:51:28.090Z`: RFC 3339 in UTC with exactly three fraction digits, so that every
/// time keygate writes has one length and sorts as text.
fn assert_fixed_time(v: &Value, what: &str) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{what}: not an RFC 3339 string: {v}"));
    let b = s.as_bytes();
    let shape_ok =
        b.len() == 24 && b[19] == b'.' && b[23] == b'Z' && b[20..23].iter().all(u8::is_ascii_digit);
    assert!(
        shape_ok,
        "{what}: {s:?} is not of the shape 2026-12-01T21:51:28.090Z"
    );
    OffsetDateTime::parse(s, &Rfc3339).unwrap_or_else(|e| panic!("{what}: {s:?}: {e}"));
}

both_backends!(times_are_rfc3339_with_milliseconds_in_the_api_and_the_audit_details);
/// Times in the API and in the audit log's details are RFC 3339 with milliseconds, whatever
/// the time's fraction: a whole second still shows `.000`.
fn times_are_rfc3339_with_milliseconds_in_the_api_and_the_audit_details(backend: Backend) {
    let s = Server::on(backend).start();
    let r = s
        .admin("POST", "/api/v1/tokens")
        .json(&json!({"name": "timed", "scopes": ["tokens:read"],
                      "expiresAt": "2030-01-01T00:00:00Z"}))
        .send()
        .unwrap();
    let (status, created) = status_json(r);
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let r = s
        .admin("PUT", &format!("/api/v1/tokens/{id}"))
        .json(&json!({"name": "timed", "scopes": ["tokens:read"],
                      "expiresAt": "2029-06-01T12:00:00.5Z"}))
        .send()
        .unwrap();
    let (status, updated) = status_json(r);
    assert_eq!(status, 200, "{updated}");
    for field in ["createdAt", "updatedAt", "expiresAt"] {
        assert_fixed_time(&updated[field], field);
    }
    let (_, audit) = status_json(
        s.admin("GET", &format!("/api/v1/audit?targetId={id}"))
            .send()
            .unwrap(),
    );
    let mine: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["targetId"] == id.as_str())
        .collect();
    assert_eq!(mine.len(), 2, "{audit}");
    for e in mine {
        assert_fixed_time(&e["at"], "audit at");
        assert_fixed_time(
            &e["details"]["expiresAt"],
            &format!("{} expiresAt", e["action"]),
        );
    }
}
