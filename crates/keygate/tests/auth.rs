//! Authentication, verification and the hot path, over HTTP against a real `keygate serve`
//! covering every vendor's way of presenting a token, the exact error bodies,
//! `POST /api/v1/verify` and forward-auth, cache invalidation, bad input, ops endpoints, and
//! that no secret is ever logged or stored in plaintext.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use serde_json::{json, Value};

const SELF: &str = "/api/v1/tokens/self";

// ---------------------------------------------------------------------------------------------
// helpers

/// GET /api/v1/tokens/self with this exact `Authorization` header value.
fn self_with_header(s: &Server, value: HeaderValue) -> reqwest::blocking::Response {
    s.anon("GET", SELF)
        .header(AUTHORIZATION, value)
        .send()
        .unwrap()
}

/// Creates a token from a full JSON request with the admin token; returns the 201 body.
fn create(s: &Server, req: Value) -> Value {
    let (status, v) = status_json(s.admin("POST", "/api/v1/tokens").json(&req).send().unwrap());
    assert_eq!(status, 201, "creating {req}: {v}");
    v
}

fn metric_value(text: &str, series: &str) -> f64 {
    metric(text, series).unwrap_or_else(|| panic!("no series {series} in /metrics:\n{text}"))
}

fn assert_no_5xx(s: &Server, r: reqwest::blocking::Response, what: &str) -> u16 {
    let status = r.status().as_u16();
    let body = r.text().unwrap_or_default();
    assert!(
        status < 500,
        "{what}: expected no 5xx, got {status}: {body}"
    );
    assert!(
        !s.output().contains("panicked"),
        "{what}: the server panicked:\n{}",
        s.output()
    );
    status
}

fn assert_still_healthy(s: &Server) {
    let (status, v) = status_json(s.anon("GET", "/healthz").send().unwrap());
    assert_eq!(status, 200);
    assert_eq!(v, json!({"status": "ok"}));
}

// ---------------------------------------------------------------------------------------------
// 1. every seed's way of presenting a token

both_backends!(every_seed_authorization_scheme_is_accepted_in_any_letter_case);
fn every_seed_authorization_scheme_is_accepted_in_any_letter_case(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, t) = s.create_token("schemes", &["tokens:read"]);
    for scheme in [
        "apiToken",
        "APITOKEN",
        "apitoken",
        "Api-Token",
        "api-token",
        "API-TOKEN",
        "Token",
        "token",
        "TOKEN",
        "Bearer",
        "bearer",
        "BEARER",
    ] {
        let r = s
            .anon("GET", SELF)
            .header(AUTHORIZATION, format!("{scheme} {t}"))
            .send()
            .unwrap();
        let (status, v) = status_json(r);
        assert_eq!(status, 200, "Authorization: {scheme} <t>: {v}");
        assert_eq!(v["id"], id.as_str(), "Authorization: {scheme} <t>");
        assert!(v.get("token").is_none(), "self never shows the secret: {v}");
    }
}

both_backends!(every_seed_query_parameter_is_accepted);
fn every_seed_query_parameter_is_accepted(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, t) = s.create_token("query", &["tokens:read"]);
    for param in ["api-token", "apiToken", "api_token"] {
        let (status, v) = status_json(
            s.anon("GET", &format!("{SELF}?{param}={t}"))
                .send()
                .unwrap(),
        );
        assert_eq!(status, 200, "?{param}=<t>: {v}");
        assert_eq!(v["id"], id.as_str(), "?{param}=<t>");
    }
}

both_backends!(no_query_token_refuses_query_parameters_but_not_headers);
fn no_query_token_refuses_query_parameters_but_not_headers(backend: Backend) {
    let s = Server::on(backend).args(&["--no-query-token"]).start();
    let (id, t) = s.create_token("no-query", &["tokens:read"]);
    for param in ["api-token", "apiToken", "api_token"] {
        let r = s
            .anon("GET", &format!("{SELF}?{param}={t}"))
            .send()
            .unwrap();
        let (status, v) = status_json(r);
        assert_eq!(status, 401, "?{param}=<t> with --no-query-token: {v}");
        assert_eq!(v["error"], "Unauthorized");
    }
    let (status, v) = status_json(s.with_token("GET", SELF, &t).send().unwrap());
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["id"], id.as_str());
    // Forward-auth does not take it from the original URI either.
    for header in ["X-Forwarded-Uri", "X-Original-URI"] {
        let r = s
            .anon("GET", "/api/v1/auth")
            .header(header, format!("/some/path?api-token={t}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 401, "{header} with --no-query-token");
    }
    // Refused, the token in the URL is still not logged.
    let out = s.output();
    assert!(
        !out.contains(&t),
        "a refused query token was logged:\n{out}"
    );
    assert!(out.contains("REDACTED"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// 2. a request without a usable token

both_backends!(missing_token_is_401_with_the_exact_body_and_www_authenticate);
fn missing_token_is_401_with_the_exact_body_and_www_authenticate(backend: Backend) {
    let s = Server::on(backend).start();
    let r = s.anon("GET", SELF).send().unwrap();
    assert_unauthorized(r, "Invalid API token", "missing_token", "no token");
    // A query string without a token parameter is still "no token".
    let r = s.anon("GET", &format!("{SELF}?foo=bar")).send().unwrap();
    assert_unauthorized(r, "Invalid API token", "missing_token", "?foo=bar");
}

both_backends!(unknown_well_formed_token_is_401_invalid_token);
fn unknown_well_formed_token_is_401_invalid_token(backend: Backend) {
    let s = Server::on(backend).start();
    let r = s.with_token("GET", SELF, &fresh_token()).send().unwrap();
    assert_unauthorized(r, "Invalid API token", "invalid_token", "unknown token");
    // Asked twice (the second time from the negative cache), the answer is the same.
    let t = fresh_token();
    for _ in 0..2 {
        let r = s.with_token("GET", SELF, &t).send().unwrap();
        assert_unauthorized(
            r,
            "Invalid API token",
            "invalid_token",
            "unknown token again",
        );
    }
}

both_backends!(unusable_authorization_headers_are_401_invalid_token_never_500);
fn unusable_authorization_headers_are_401_invalid_token_never_500(backend: Backend) {
    let s = Server::on(backend).start();
    let (_, t) = s.create_token("good", &["tokens:read"]);
    let garbage_5k: String = "x".repeat(5 * 1024);
    let cases: Vec<(&str, HeaderValue)> = vec![
        (
            "bad checksum",
            HeaderValue::from_str(&format!("Bearer {}", bad_checksum(&t))).unwrap(),
        ),
        (
            "random string",
            HeaderValue::from_static("Bearer 8as7bf9a8s7498svaps8dfabsf"),
        ),
        ("short string", HeaderValue::from_static("apiToken abc")),
        ("Basic auth", HeaderValue::from_static("Basic dXNlcjpwYXNz")),
        ("Basic with a real token", {
            HeaderValue::from_str(&format!("Basic {t}")).unwrap()
        }),
        ("scheme without a token", HeaderValue::from_static("Bearer")),
        (
            "apiToken without a token",
            HeaderValue::from_static("apiToken"),
        ),
        ("token without a scheme", HeaderValue::from_str(&t).unwrap()),
        ("two tokens", {
            HeaderValue::from_str(&format!("Bearer {t} {t}")).unwrap()
        }),
        (
            "5 KB of garbage",
            HeaderValue::from_str(&format!("Bearer {garbage_5k}")).unwrap(),
        ),
        (
            "5 KB of garbage, no scheme",
            HeaderValue::from_str(&garbage_5k).unwrap(),
        ),
        (
            "non-UTF-8 token",
            HeaderValue::from_bytes(b"Bearer \xff\xfe\xc3\x28abcdefghijklmnop").unwrap(),
        ),
        (
            "non-UTF-8 scheme",
            HeaderValue::from_bytes(b"\xffearer abcdefghijklmnopq").unwrap(),
        ),
    ];
    for (what, value) in cases {
        let r = self_with_header(&s, value);
        assert_unauthorized(r, "Invalid API token", "invalid_token", what);
    }
    assert_still_healthy(&s);
}

both_backends!(bad_tokens_in_the_query_string_are_401_invalid_token);
fn bad_tokens_in_the_query_string_are_401_invalid_token(backend: Backend) {
    let s = Server::on(backend).start();
    let (_, t) = s.create_token("good", &["tokens:read"]);
    for q in [
        format!("api-token={}", bad_checksum(&t)),
        "api-token=kg_short".to_owned(),
        format!("apiToken={}", fresh_token()),
        "api_token=".to_owned(),
        "api-token=%FF%FE%00".to_owned(),
    ] {
        let r = s.anon("GET", &format!("{SELF}?{q}")).send().unwrap();
        assert_unauthorized(r, "Invalid API token", "invalid_token", &q);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. disabled, expired, insufficient scope

both_backends!(disabled_token_is_401_token_disabled);
fn disabled_token_is_401_token_disabled(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, t) = s.create_token("to-disable", &["tokens:read"]);
    let r = s
        .admin("POST", &format!("/api/v1/tokens/{id}/disable"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s.with_token("GET", SELF, &t).send().unwrap();
    assert_unauthorized(r, "API token disabled", "token_disabled", "disabled token");
    // Enabled again, it works again at once.
    let r = s
        .admin("POST", &format!("/api/v1/tokens/{id}/enable"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.with_token("GET", SELF, &t).send().unwrap().status(), 200);
}

both_backends!(expired_token_is_401_token_expired);
fn expired_token_is_401_token_expired(backend: Backend) {
    let s = Server::on(backend).start();
    let v = create(
        &s,
        json!({"name": "short-lived", "scopes": ["tokens:read"], "expiresIn": 1}),
    );
    let t = v["token"].as_str().unwrap();
    assert_eq!(s.with_token("GET", SELF, t).send().unwrap().status(), 200);
    std::thread::sleep(Duration::from_millis(1500));
    let r = s.with_token("GET", SELF, t).send().unwrap();
    assert_unauthorized(r, "API token expired", "token_expired", "expired token");
}

both_backends!(missing_scope_is_403_with_missing_scopes);
fn missing_scope_is_403_with_missing_scopes(backend: Backend) {
    let s = Server::on(backend).start();
    let (_, t) = s.create_token("read-only", &["tokens:read"]);
    let r = s
        .with_token("POST", "/api/v1/tokens", &t)
        .json(&json!({"name": "x", "scopes": ["tokens:read"]}))
        .send()
        .unwrap();
    let (status, v) = status_json(r);
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["error"], "Forbidden", "{v}");
    assert_eq!(v["code"], "insufficient_scope", "{v}");
    assert_eq!(v["missingScopes"], json!(["tokens:write"]), "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert_error_snapshot!("native_403_missing_scope", v);
    // The refused request created nothing.
    let (_, list) = status_json(s.admin("GET", "/api/v1/tokens?q=x").send().unwrap());
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["name"] != "x"),
        "{list}"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. POST /api/v1/verify

both_backends!(verify_valid_returns_the_token_metadata);
fn verify_valid_returns_the_token_metadata(backend: Backend) {
    let s = Server::on(backend).start();
    let v = create(
        &s,
        json!({"name": "ci-job", "scopes": ["tokens:read", "audit:read"], "expiresIn": 3600,
               "metadata": {"team": "payments", "n": 7}}),
    );
    let t = v["token"].as_str().unwrap();
    let r = s.verify(t, &["tokens:read"]);
    assert_eq!(r["valid"], true, "{r}");
    assert_eq!(r["code"], "VALID", "{r}");
    assert_eq!(r["tokenId"], v["id"], "{r}");
    assert_eq!(r["name"], "ci-job", "{r}");
    assert_eq!(r["ownerId"], v["ownerId"], "{r}");
    assert!(r["ownerId"].as_str().is_some_and(|o| !o.is_empty()), "{r}");
    assert_eq!(r["tenantId"], v["tenantId"], "{r}");
    assert!(r["tenantId"].as_str().is_some_and(|o| !o.is_empty()), "{r}");
    let mut scopes: Vec<&str> = r["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    scopes.sort();
    assert_eq!(scopes, ["audit:read", "tokens:read"], "{r}");
    assert_eq!(r["expiresAt"], v["expiresAt"], "{r}");
    assert!(r["expiresAt"].is_string(), "{r}");
    assert_eq!(r["metadata"], json!({"team": "payments", "n": 7}), "{r}");
    assert!(r.get("missingScopes").is_none(), "{r}");
    assert!(
        r.get("token").is_none(),
        "verify never echoes the token: {r}"
    );

    // No scopes asked: still VALID.
    let r = s.verify(t, &[]);
    assert_eq!(
        (r["valid"].clone(), r["code"].clone()),
        (json!(true), json!("VALID"))
    );
}

both_backends!(verify_without_expiry_omits_expires_at);
fn verify_without_expiry_omits_expires_at(backend: Backend) {
    let s = Server::on(backend).start();
    let (_, t) = s.create_token("forever", &["tokens:read"]);
    let r = s.verify(&t, &[]);
    assert_eq!(r["code"], "VALID", "{r}");
    assert!(
        r.get("expiresAt").is_none() || r["expiresAt"].is_null(),
        "{r}"
    );
}

both_backends!(verify_needs_no_authentication);
fn verify_needs_no_authentication(backend: Backend) {
    let s = Server::on(backend).start();
    let (_, t) = s.create_token("anon-verify", &["tokens:read"]);
    // `verify` sends no Authorization header at all.
    let r = s
        .anon("POST", "/api/v1/verify")
        .json(&json!({"token": t}))
        .send()
        .unwrap();
    let (status, v) = status_json(r);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["code"], "VALID");
}

both_backends!(verify_malformed_tokens);
fn verify_malformed_tokens(backend: Backend) {
    let s = Server::on(backend).start();
    let (_, t) = s.create_token("real", &["tokens:read"]);
    for (what, bad) in [
        ("bad checksum", bad_checksum(&t)),
        ("too short", "abc".to_owned()),
        ("empty", String::new()),
        ("kg_ with the wrong shape", "kg_short_token_here".to_owned()),
        ("kg_ with one character too many", format!("{t}A")),
        ("kg_ with a bad character", {
            let mut b = t.clone().into_bytes();
            b[5] = b'-';
            String::from_utf8(b).unwrap()
        }),
        ("kg_ only", "kg_".to_owned()),
        ("whitespace inside", "abcdefgh ijklmnopqrst".to_owned()),
        ("over 256 characters", "x".repeat(300)),
    ] {
        let r = s.verify(&bad, &[]);
        assert_eq!(r["code"], "MALFORMED", "{what}: {r}");
        assert_eq!(r["valid"], false, "{what}: {r}");
        assert!(r.get("tokenId").is_none(), "{what}: {r}");
    }
}

both_backends!(verify_not_found_for_an_unknown_well_formed_token);
fn verify_not_found_for_an_unknown_well_formed_token(backend: Backend) {
    let s = Server::on(backend).start();
    let t = fresh_token();
    for _ in 0..2 {
        let r = s.verify(&t, &[]);
        assert_eq!(r["code"], "NOT_FOUND", "{r}");
        assert_eq!(r["valid"], false, "{r}");
        assert!(r.get("tokenId").is_none(), "{r}");
    }
    // A plausible foreign token (16–256 visible ASCII, not our prefix) is looked up too.
    let r = s.verify("8as7bf9a8s7498svaps8dfabsf", &[]);
    assert_eq!(r["code"], "NOT_FOUND", "{r}");
}

both_backends!(verify_disabled_and_expired);
fn verify_disabled_and_expired(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, t) = s.create_token("d", &["tokens:read"]);
    s.admin("POST", &format!("/api/v1/tokens/{id}/disable"))
        .send()
        .unwrap();
    let r = s.verify(&t, &[]);
    assert_eq!(r["code"], "DISABLED", "{r}");
    assert_eq!(r["valid"], false, "{r}");
    assert_eq!(r["tokenId"], id.as_str(), "{r}");

    let v = create(
        &s,
        json!({"name": "e", "scopes": ["tokens:read"], "expiresIn": 1}),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let r = s.verify(v["token"].as_str().unwrap(), &[]);
    assert_eq!(r["code"], "EXPIRED", "{r}");
    assert_eq!(r["valid"], false, "{r}");
    assert_eq!(r["tokenId"], v["id"], "{r}");
}

both_backends!(verify_insufficient_scope_lists_the_missing_scopes);
fn verify_insufficient_scope_lists_the_missing_scopes(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, t) = s.create_token("narrow", &["tokens:read"]);
    let r = s.verify(&t, &["tokens:read", "tokens:write", "audit:read"]);
    assert_eq!(r["code"], "INSUFFICIENT_SCOPE", "{r}");
    assert_eq!(r["valid"], false, "{r}");
    assert_eq!(r["tokenId"], id.as_str(), "{r}");
    let mut missing: Vec<&str> = r["missingScopes"]
        .as_array()
        .unwrap_or_else(|| panic!("missingScopes: {r}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    missing.sort();
    assert_eq!(missing, ["audit:read", "tokens:write"], "{r}");
    assert_error_snapshot!("verify_insufficient_scope", r);
}

both_backends!(verify_wildcard_scopes);
fn verify_wildcard_scopes(backend: Backend) {
    let s = Server::on(backend)
        .args(&[
            "--scope",
            "metrics:read=Read metrics",
            "--scope",
            "metrics:write=Write metrics",
        ])
        .start();
    let (_, t) = s.create_token("metrics", &["metrics:*"]);
    let r = s.verify(&t, &["metrics:read"]);
    assert_eq!(r["code"], "VALID", "{r}");
    assert_eq!(r["valid"], true, "{r}");
    let r = s.verify(&t, &["metrics:read", "metrics:write"]);
    assert_eq!(r["code"], "VALID", "{r}");
    let r = s.verify(&t, &["tokens:read"]);
    assert_eq!(
        r["code"], "INSUFFICIENT_SCOPE",
        "metrics:* is not tokens:read: {r}"
    );
    assert_eq!(r["missingScopes"], json!(["tokens:read"]), "{r}");
    // `*` (the bootstrap token) covers every scope.
    let r = s.verify(
        &s.admin_token,
        &["metrics:read", "tokens:admin", "audit:read"],
    );
    assert_eq!(r["code"], "VALID", "{r}");
}

both_backends!(verify_rejects_bad_request_bodies);
fn verify_rejects_bad_request_bodies(backend: Backend) {
    let s = Server::on(backend).start();
    for body in [
        "{not json",
        "",
        "{\"token\": \"abc\"",
        "[",
        "{\"token\": \"abc\",}",
    ] {
        let r = s
            .anon("POST", "/api/v1/verify")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
        assert_error(r, 400, "invalid_request");
    }
    for body in [
        json!({"token": 5}),
        json!({"token": "abc", "scopes": "tokens:read"}),
        json!({}),
        json!({"token": "abc", "extra": true}),
        json!([]),
    ] {
        let r = s.anon("POST", "/api/v1/verify").json(&body).send().unwrap();
        assert_error(r, 422, "invalid_request");
    }
    assert_still_healthy(&s);
}

// ---------------------------------------------------------------------------------------------
// 5. GET /api/v1/auth (forward-auth)

both_backends!(forward_auth_answers_200_with_identity_headers);
fn forward_auth_answers_200_with_identity_headers(backend: Backend) {
    let s = Server::on(backend).start();
    let v = create(
        &s,
        json!({"name": "fa", "scopes": ["tokens:read", "audit:read"]}),
    );
    let t = v["token"].as_str().unwrap();
    let r = s.with_token("GET", "/api/v1/auth", t).send().unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    let get = |n: &str| {
        h.get(n)
            .unwrap_or_else(|| panic!("{n} missing; headers: {h:?}"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(get("x-keygate-token-id"), v["id"].as_str().unwrap());
    assert_eq!(get("x-keygate-owner-id"), v["ownerId"].as_str().unwrap());
    assert_eq!(get("x-keygate-tenant-id"), v["tenantId"].as_str().unwrap());
    let mut scopes: Vec<String> = get("x-keygate-scopes")
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect();
    scopes.sort();
    assert_eq!(scopes, ["audit:read", "tokens:read"]);

    // Every seed scheme works here too.
    let r = s
        .anon("GET", "/api/v1/auth")
        .header(AUTHORIZATION, format!("apiToken {t}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .anon("GET", &format!("/api/v1/auth?api-token={t}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

both_backends!(forward_auth_checks_required_scopes_in_both_forms);
fn forward_auth_checks_required_scopes_in_both_forms(backend: Backend) {
    let s = Server::on(backend).start();
    let (_, t) = s.create_token("fa-scopes", &["tokens:read", "audit:read"]);
    for q in [
        "scope=tokens:read",
        "scope=tokens:read&scope=audit:read",
        "scope=tokens:read,audit:read",
        "scope=tokens%3Aread%2Caudit%3Aread",
    ] {
        let r = s
            .with_token("GET", &format!("/api/v1/auth?{q}"), &t)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "?{q}");
    }
    for (q, missing) in [
        ("scope=tokens:write", json!(["tokens:write"])),
        (
            "scope=tokens:read&scope=tokens:write",
            json!(["tokens:write"]),
        ),
        ("scope=audit:read,users:read", json!(["users:read"])),
    ] {
        let r = s
            .with_token("GET", &format!("/api/v1/auth?{q}"), &t)
            .send()
            .unwrap();
        assert!(r.headers().get("x-keygate-token-id").is_none(), "?{q}");
        let v = assert_error(r, 403, "insufficient_scope");
        assert_eq!(v["missingScopes"], missing, "?{q}: {v}");
    }
}

both_backends!(forward_auth_without_a_token_is_401);
fn forward_auth_without_a_token_is_401(backend: Backend) {
    let s = Server::on(backend).start();
    let r = s.anon("GET", "/api/v1/auth").send().unwrap();
    assert!(r.headers().get("x-keygate-token-id").is_none());
    assert_unauthorized(
        r,
        "Invalid API token",
        "missing_token",
        "forward-auth, no token",
    );
    let r = s
        .with_token("GET", "/api/v1/auth", &fresh_token())
        .send()
        .unwrap();
    assert_unauthorized(
        r,
        "Invalid API token",
        "invalid_token",
        "forward-auth, unknown",
    );
    let (id, t) = s.create_token("fa-disabled", &["tokens:read"]);
    s.admin("POST", &format!("/api/v1/tokens/{id}/disable"))
        .send()
        .unwrap();
    let r = s.with_token("GET", "/api/v1/auth", &t).send().unwrap();
    assert_unauthorized(
        r,
        "API token disabled",
        "token_disabled",
        "forward-auth, disabled",
    );
}

both_backends!(forward_auth_takes_the_token_from_the_original_uri);
fn forward_auth_takes_the_token_from_the_original_uri(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, t) = s.create_token("fa-uri", &["tokens:read"]);
    for header in ["X-Forwarded-Uri", "X-Original-URI"] {
        let r = s
            .anon("GET", "/api/v1/auth")
            .header(header, format!("/some/path?x=1&api-token={t}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{header}");
        assert_eq!(
            r.headers()["x-keygate-token-id"].to_str().unwrap(),
            id,
            "{header}"
        );
        // The other parameter names are understood there too.
        let r = s
            .anon("GET", "/api/v1/auth?scope=tokens:read")
            .header(header, format!("/some/path?apiToken={t}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{header} with apiToken");
        // And a scope the token lacks is still refused.
        let r = s
            .anon("GET", "/api/v1/auth?scope=tokens:write")
            .header(header, format!("/some/path?api_token={t}"))
            .send()
            .unwrap();
        assert_error(r, 403, "insufficient_scope");
    }
    // An original URI without a token is no token.
    let r = s
        .anon("GET", "/api/v1/auth")
        .header("X-Forwarded-Uri", "/some/path?x=1")
        .send()
        .unwrap();
    assert_unauthorized(r, "Invalid API token", "missing_token", "uri without token");
}

// ---------------------------------------------------------------------------------------------
// 6. changes are seen at once; last use is written behind

both_backends!(disable_is_seen_at_once_by_the_cache);
fn disable_is_seen_at_once_by_the_cache(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, t) = s.create_token("cache-disable", &["tokens:read"]);
    assert_eq!(s.verify(&t, &[])["code"], "VALID");
    assert_eq!(s.verify(&t, &[])["code"], "VALID");
    let r = s
        .admin("POST", &format!("/api/v1/tokens/{id}/disable"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.verify(&t, &[])["code"], "DISABLED");
    let r = s
        .admin("POST", &format!("/api/v1/tokens/{id}/enable"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.verify(&t, &[])["code"], "VALID");
}

both_backends!(delete_is_seen_at_once_by_the_cache);
fn delete_is_seen_at_once_by_the_cache(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, t) = s.create_token("cache-delete", &["tokens:read"]);
    assert_eq!(s.verify(&t, &[])["code"], "VALID");
    let r = s
        .admin("DELETE", &format!("/api/v1/tokens/{id}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(s.verify(&t, &[])["code"], "NOT_FOUND");
    let r = s.with_token("GET", SELF, &t).send().unwrap();
    assert_unauthorized(r, "Invalid API token", "invalid_token", "deleted token");
    let r = s
        .admin("GET", &format!("/api/v1/tokens/{id}"))
        .send()
        .unwrap();
    assert_error(r, 404, "not_found");
}

both_backends!(scope_change_is_seen_at_once_by_the_cache);
fn scope_change_is_seen_at_once_by_the_cache(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, t) = s.create_token("cache-scopes", &["tokens:read", "audit:read"]);
    assert_eq!(s.verify(&t, &["audit:read"])["code"], "VALID");
    let (status, v) = status_json(
        s.admin("PUT", &format!("/api/v1/tokens/{id}"))
            .json(&json!({"name": "cache-scopes", "scopes": ["tokens:read"]}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{v}");
    let r = s.verify(&t, &["audit:read"]);
    assert_eq!(r["code"], "INSUFFICIENT_SCOPE", "{r}");
    assert_eq!(r["missingScopes"], json!(["audit:read"]), "{r}");
    assert_eq!(s.verify(&t, &["tokens:read"])["code"], "VALID");
}

both_backends!(put_enabled_false_is_seen_at_once_by_the_cache);
fn put_enabled_false_is_seen_at_once_by_the_cache(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, t) = s.create_token("cache-put-disable", &["tokens:read"]);
    assert_eq!(s.verify(&t, &[])["code"], "VALID");
    let (status, v) = status_json(
        s.admin("PUT", &format!("/api/v1/tokens/{id}"))
            .json(
                &json!({"name": "cache-put-disable", "scopes": ["tokens:read"],
                          "enabled": false}),
            )
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(s.verify(&t, &[])["code"], "DISABLED");
}

both_backends!(revoking_self_is_seen_at_once_by_the_cache);
fn revoking_self_is_seen_at_once_by_the_cache(backend: Backend) {
    let s = Server::on(backend).start();
    let (_, t) = s.create_token("cache-self", &["tokens:read"]);
    assert_eq!(s.verify(&t, &[])["code"], "VALID");
    assert_eq!(s.with_token("GET", SELF, &t).send().unwrap().status(), 200);
    let r = s.with_token("DELETE", SELF, &t).send().unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(s.verify(&t, &[])["code"], "NOT_FOUND");
    let r = s.with_token("GET", SELF, &t).send().unwrap();
    assert_unauthorized(r, "Invalid API token", "invalid_token", "revoked self");
}

both_backends!(rotation_is_seen_at_once_by_the_cache);
fn rotation_is_seen_at_once_by_the_cache(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, old) = s.create_token("cache-rotate", &["tokens:read"]);
    assert_eq!(s.verify(&old, &[])["code"], "VALID");
    let (status, v) = status_json(
        s.admin("POST", &format!("/api/v1/tokens/{id}/rotate"))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 201, "{v}");
    let new = v["token"].as_str().unwrap();
    assert_ne!(new, old);
    let r = s.verify(&old, &[]);
    assert_ne!(r["code"], "VALID", "rotated with no grace period: {r}");
    assert_eq!(r["valid"], false, "{r}");
    assert_eq!(s.verify(new, &[])["code"], "VALID");
}

both_backends!(last_used_at_and_ip_are_written_behind);
fn last_used_at_and_ip_are_written_behind(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, t) = s.create_token("used", &["tokens:read"]);
    let (_, before) = status_json(
        s.admin("GET", &format!("/api/v1/tokens/{id}"))
            .send()
            .unwrap(),
    );
    assert!(before["lastUsedAt"].is_null(), "{before}");
    assert!(before["lastUsedIp"].is_null(), "{before}");

    assert_eq!(s.with_token("GET", SELF, &t).send().unwrap().status(), 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        let (_, v) = status_json(
            s.admin("GET", &format!("/api/v1/tokens/{id}"))
                .send()
                .unwrap(),
        );
        if !v["lastUsedAt"].is_null() || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        after["lastUsedAt"].is_string(),
        "lastUsedAt still unset 5 s after use: {after}"
    );
    assert_eq!(after["lastUsedIp"], "127.0.0.1", "{after}");
    let used = after["lastUsedAt"].as_str().unwrap();
    let created = after["createdAt"].as_str().unwrap();
    assert!(used.ends_with('Z'), "RFC 3339 UTC: {used}");
    assert!(
        used >= &created[..19],
        "used {used} before created {created}"
    );
}

both_backends!(last_use_through_verify_is_recorded_too);
fn last_use_through_verify_is_recorded_too(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, t) = s.create_token("used-by-verify", &["tokens:read"]);
    assert_eq!(s.verify(&t, &[])["code"], "VALID");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, v) = status_json(
            s.admin("GET", &format!("/api/v1/tokens/{id}"))
                .send()
                .unwrap(),
        );
        if v["lastUsedAt"].is_string() {
            assert_eq!(v["lastUsedIp"], "127.0.0.1", "{v}");
            break;
        }
        assert!(Instant::now() < deadline, "lastUsedAt never set: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------------------------
// 7. bad input never 500s

both_backends!(malformed_json_on_create_is_400);
fn malformed_json_on_create_is_400(backend: Backend) {
    let s = Server::on(backend).start();
    for body in [
        "{",
        "{\"name\": \"x\", \"scopes\": [",
        "not json at all",
        "\u{0}\u{1}",
    ] {
        let r = s
            .admin("POST", "/api/v1/tokens")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
        assert_error(r, 400, "invalid_request");
    }
    assert_still_healthy(&s);
}

both_backends!(wrong_types_and_unknown_fields_on_create_are_422);
fn wrong_types_and_unknown_fields_on_create_are_422(backend: Backend) {
    let s = Server::on(backend).start();
    for body in [
        json!({"name": 123, "scopes": ["tokens:read"]}),
        json!({"name": "x", "scopes": "x"}),
        json!({"name": "x", "scopes": [1, 2]}),
        json!({"name": "x"}),
        json!({"name": "x", "scopes": ["tokens:read"], "expiresIn": "soon"}),
        json!({"name": "x", "scopes": ["tokens:read"], "expiresIn": -1}),
        json!({"name": "x", "scopes": ["tokens:read"], "expiresAt": "yesterday"}),
        json!({"name": "x", "scopes": ["tokens:read"], "unknownField": true}),
        json!({"name": "x", "scopes": ["tokens:read"], "metadata": [1]}),
        json!({"name": "x", "scopes": ["no:such-scope"]}),
        json!({"name": "", "scopes": ["tokens:read"]}),
        json!([1, 2, 3]),
        json!("a string"),
    ] {
        let r = s
            .admin("POST", "/api/v1/tokens")
            .json(&body)
            .send()
            .unwrap();
        let (status, v) = status_json(r);
        assert_eq!(status, 422, "{body} → {v}");
        assert_eq!(v["code"], "invalid_request", "{body} → {v}");
        assert_eq!(v["error"], "Unprocessable Entity", "{body} → {v}");
        assert!(v["message"].is_string(), "{body} → {v}");
    }
    assert_still_healthy(&s);
}

both_backends!(names_over_200_characters_are_422);
fn names_over_200_characters_are_422(backend: Backend) {
    let s = Server::on(backend).start();
    for n in [201, 10_000] {
        let r = s
            .admin("POST", "/api/v1/tokens")
            .json(&json!({"name": "n".repeat(n), "scopes": ["tokens:read"]}))
            .send()
            .unwrap();
        let v = assert_error(r, 422, "invalid_request");
        if n == 201 {
            assert_error_snapshot!("native_422_name_too_long", v);
        }
    }
    // 200 is allowed.
    create(
        &s,
        json!({"name": "n".repeat(200), "scopes": ["tokens:read"]}),
    );
}

/// Sends `POST path` with a JSON body of `size` bytes over a raw connection, writing the body
/// from another thread so that an early answer (the server refusing before reading it all) is
/// read rather than lost to a broken pipe. Returns the status and the response body.
fn post_huge_body(s: &Server, path: &str, token: Option<&str>, size: usize) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = s.url.trim_start_matches("http://").to_owned();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {size}\r\n\r\n"
    );
    let mut writer = conn.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(head.as_bytes());
        let _ = writer.write_all(b"{\"name\": \"");
        let chunk = vec![b'a'; 64 * 1024];
        let mut sent = 0;
        while sent + chunk.len() < size {
            if writer.write_all(&chunk).is_err() {
                return;
            }
            sent += chunk.len();
        }
    });
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                // Stop once the whole response (head + Content-Length body) is in.
                let text = String::from_utf8_lossy(&raw);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head.lines().find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    });
                    if len.is_some_and(|len| body.len() >= len) {
                        break;
                    }
                }
            }
            Err(e) => {
                assert!(!raw.is_empty(), "no answer to a {size}-byte body: {e}");
                break;
            }
        }
    }
    let _ = conn.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response: {text}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status: {head}"));
    (status, body.to_owned())
}

both_backends!(an_8_mib_body_is_413_payload_too_large);
fn an_8_mib_body_is_413_payload_too_large(backend: Backend) {
    let s = Server::on(backend).start();
    let size = 8 * 1024 * 1024;
    for (path, token) in [
        ("/api/v1/tokens", Some(s.admin_token.as_str())),
        ("/api/v1/verify", None),
        ("/api/v1/tokens/lookup", Some(s.admin_token.as_str())),
    ] {
        let (status, body) = post_huge_body(&s, path, token, size);
        assert_eq!(status, 413, "POST {path} with 8 MiB: {body}");
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|_| panic!("POST {path}: not a JSON body: {body}"));
        assert_eq!(v["code"], "payload_too_large", "{v}");
        assert_eq!(v["error"], "Payload Too Large", "{v}");
        assert!(v["message"].is_string(), "{v}");
    }
    assert_still_healthy(&s);
}

both_backends!(unknown_route_is_404_json_not_found);
fn unknown_route_is_404_json_not_found(backend: Backend) {
    let s = Server::on(backend).start();
    for path in [
        "/nope",
        "/api/v1/nope",
        "/api/v2/tokens/x/y/z",
        "/api/v1/tokens/a/b/c",
    ] {
        let r = s.admin("GET", path).send().unwrap();
        assert_error(r, 404, "not_found");
    }
    // Without a token too: an unknown route is not found, whoever asks.
    let r = s.anon("GET", "/api/v1/nope").send().unwrap();
    let v = assert_error(r, 404, "not_found");
    assert_error_snapshot!("native_404_unknown_route", v);
}

both_backends!(unknown_token_id_is_404_json_not_found);
fn unknown_token_id_is_404_json_not_found(backend: Backend) {
    let s = Server::on(backend).start();
    for method in ["GET", "PUT", "DELETE"] {
        let mut r = s.admin(method, "/api/v1/tokens/kg_0000000000000000");
        if method == "PUT" {
            r = r.json(&json!({"name": "x", "scopes": ["tokens:read"]}));
        }
        assert_error(r.send().unwrap(), 404, "not_found");
    }
    for action in ["disable", "enable", "rotate"] {
        let r = s
            .admin(
                "POST",
                &format!("/api/v1/tokens/kg_0000000000000000/{action}"),
            )
            .send()
            .unwrap();
        assert_error(r, 404, "not_found");
    }
}

both_backends!(wrong_method_is_405_with_a_json_body);
fn wrong_method_is_405_with_a_json_body(backend: Backend) {
    let s = Server::on(backend).start();
    for (method, path) in [
        ("PATCH", "/api/v1/tokens"),
        ("DELETE", "/api/v1/tokens"),
        ("GET", "/api/v1/verify"),
        ("PUT", "/healthz"),
        ("POST", "/api/v1/tokens/self"),
    ] {
        let r = s.admin(method, path).send().unwrap();
        let (status, v) = status_json(r);
        assert_eq!(status, 405, "{method} {path}: {v}");
        assert!(
            v["error"].is_string() && v["message"].is_string() && v["code"].is_string(),
            "{method} {path}: {v}"
        );
    }
}

both_backends!(long_garbage_paths_and_ids_never_5xx);
fn long_garbage_paths_and_ids_never_5xx(backend: Backend) {
    let s = Server::on(backend).start();
    let garbage: String = "%00%ff".repeat(500); // 3000 characters
    let paths = [
        format!("/api/v1/tokens/{garbage}"),
        format!("/api/v1/tokens/{garbage}/disable"),
        format!("/api/v1/tokens/{}", "a".repeat(3000)),
        format!("/api/v1/tokens/{}", "%F0%9F%92%A9".repeat(250)),
        format!("/{garbage}"),
        format!("/api/v1/tokens?cursor={garbage}&limit=99999999999999"),
        "/api/v1/tokens?limit=-1".to_owned(),
        "/api/v1/tokens?enabled=maybe".to_owned(),
        "/api/v1/audit?cursor=abc".to_owned(),
        format!("/api/v1/auth?scope={garbage}"),
    ];
    for p in &paths {
        let r = s.admin("GET", p).send().unwrap();
        assert_no_5xx(&s, r, p);
        let r = s.anon("GET", p).send().unwrap();
        assert_no_5xx(&s, r, p);
    }
    for p in &paths[..2] {
        let r = s.admin("POST", p).send().unwrap();
        assert_no_5xx(&s, r, p);
        let r = s.admin("DELETE", p).send().unwrap();
        assert_no_5xx(&s, r, p);
    }
    assert_still_healthy(&s);
}

both_backends!(garbage_in_a_token_id_path_gets_a_json_error_body);
fn garbage_in_a_token_id_path_gets_a_json_error_body(backend: Backend) {
    // Bad input gets 400/413/422 (or here 404) with the native error body.
    let s = Server::on(backend).start();
    let garbage: String = "%00%ff".repeat(500);
    let r = s
        .admin("GET", &format!("/api/v1/tokens/{garbage}"))
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    assert!((400..500).contains(&status), "{status}: {text}");
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("not a JSON error body ({status}): {text}"));
    assert!(
        v["error"].is_string() && v["message"].is_string() && v["code"].is_string(),
        "{v}"
    );
}

// ---------------------------------------------------------------------------------------------
// 8. ops

both_backends!(healthz_and_readyz);
fn healthz_and_readyz(backend: Backend) {
    let s = Server::on(backend).start();
    assert_still_healthy(&s);
    let (status, v) = status_json(s.anon("GET", "/readyz").send().unwrap());
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "ok", "{v}");
}

both_backends!(metrics_count_verifications_and_requests);
fn metrics_count_verifications_and_requests(backend: Backend) {
    let s = Server::on(backend).start();
    let (_, t) = s.create_token("metered", &["tokens:read"]);
    let before = metrics_text(&s);
    let valid_before = metric_value(&before, "keygate_verifications_total{outcome=\"valid\"}");
    for _ in 0..3 {
        assert_eq!(s.verify(&t, &[])["code"], "VALID");
    }
    s.verify(&fresh_token(), &[]);
    let after = metrics_text(&s);
    let valid_after = metric_value(&after, "keygate_verifications_total{outcome=\"valid\"}");
    assert!(
        valid_after >= valid_before + 3.0,
        "VALID went from {valid_before} to {valid_after}"
    );
    assert!(
        metric_value(&after, "keygate_verifications_total{outcome=\"notFound\"}") >= 1.0,
        "{after}"
    );
    assert!(
        after
            .lines()
            .any(|l| l.starts_with("keygate_http_requests_total{")),
        "{after}"
    );
    assert!(
        after
            .lines()
            .any(|l| l.starts_with("keygate_http_requests_total{") && l.contains("/api/v1/verify")),
        "requests are labelled by route: {after}"
    );
    for series in [
        "keygate_verify_duration_seconds_bucket{le=",
        "keygate_verify_duration_seconds_sum",
        "keygate_verify_duration_seconds_count",
    ] {
        assert!(after.contains(series), "{series} missing:\n{after}");
    }
    assert!(
        metric_value(&after, "keygate_verify_duration_seconds_count")
            >= metric_value(&before, "keygate_verify_duration_seconds_count") + 4.0
    );
    assert!(after.contains("# TYPE keygate_verifications"), "{after}");
}

both_backends!(openapi_describes_every_route);
fn openapi_describes_every_route(backend: Backend) {
    let s = Server::on(backend).start();
    let (status, v) = status_json(s.anon("GET", "/openapi.json").send().unwrap());
    assert_eq!(status, 200);
    assert!(
        v["openapi"].as_str().is_some_and(|o| o.starts_with("3.1")),
        "openapi: {}",
        v["openapi"]
    );
    let paths = v["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/api/v1/tokens", "post"),
        ("/api/v1/tokens", "get"),
        ("/api/v1/tokens/{id}", "get"),
        ("/api/v1/tokens/{id}", "put"),
        ("/api/v1/tokens/{id}", "delete"),
        ("/api/v1/tokens/{id}/disable", "post"),
        ("/api/v1/tokens/{id}/enable", "post"),
        ("/api/v1/tokens/{id}/rotate", "post"),
        ("/api/v1/tokens/lookup", "post"),
        ("/api/v1/tokens/import", "post"),
        ("/api/v1/tokens/self", "get"),
        ("/api/v1/tokens/self", "delete"),
        ("/api/v1/verify", "post"),
        ("/api/v1/auth", "get"),
        ("/api/v1/scopes", "get"),
        ("/api/v1/audit", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from /openapi.json; paths: {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 9. no secret anywhere but the creating response

both_backends!(no_secret_in_logs_or_database_files);
fn no_secret_in_logs_or_database_files(backend: Backend) {
    let s = Server::on(backend).start();
    let mut secrets = vec![s.admin_token.clone()];
    let (id_a, a) = s.create_token("header-user", &["tokens:read"]);
    let (_, b) = s.create_token("query-user", &["tokens:read"]);
    let (_, c) = s.create_token("verify-user", &["tokens:read"]);
    let v = create(
        &s,
        json!({"name": "with-meta", "scopes": ["tokens:read"], "description": "d",
               "metadata": {"k": "v"}, "expiresIn": 3600}),
    );
    let d = v["token"].as_str().unwrap().to_owned();
    secrets.extend([a.clone(), b.clone(), c.clone(), d.clone()]);

    // Headers, every scheme.
    for scheme in ["apiToken", "Api-Token", "Token", "Bearer"] {
        let r = s
            .anon("GET", SELF)
            .header(AUTHORIZATION, format!("{scheme} {a}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Query strings, on a good route, on an unknown route and on forward-auth.
    for param in ["api-token", "apiToken", "api_token"] {
        let r = s
            .anon("GET", &format!("{SELF}?{param}={b}&other=1"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    s.anon("GET", &format!("/no/such/route?api-token={b}"))
        .send()
        .unwrap();
    s.anon("GET", &format!("/api/v1/auth?api-token={d}"))
        .send()
        .unwrap();
    s.anon("GET", "/api/v1/auth")
        .header("X-Forwarded-Uri", format!("/x?api-token={d}"))
        .send()
        .unwrap();
    // A bad-checksum and an unknown token in the query are not logged either.
    let wrong = bad_checksum(&c);
    let unknown = fresh_token();
    s.anon("GET", &format!("{SELF}?api-token={wrong}"))
        .send()
        .unwrap();
    s.anon("GET", &format!("{SELF}?api_token={unknown}"))
        .send()
        .unwrap();
    // Verify, lookup, rotate.
    assert_eq!(s.verify(&c, &["tokens:read"])["code"], "VALID");
    s.verify(&c, &["tokens:write"]);
    let r = s
        .admin("POST", "/api/v1/tokens/lookup")
        .json(&json!({"token": c}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, rotated) = status_json(
        s.admin("POST", &format!("/api/v1/tokens/{id_a}/rotate"))
            .json(&json!({"gracePeriodSeconds": 60}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 201, "{rotated}");
    let e = rotated["token"].as_str().unwrap().to_owned();
    assert_eq!(s.with_token("GET", SELF, &e).send().unwrap().status(), 200);
    secrets.push(e);
    // Bad input carrying a token in the body.
    s.admin("POST", "/api/v1/tokens")
        .header("content-type", "application/json")
        .body(format!("{{\"name\": \"{a}\", \"scopes\": 5}}"))
        .send()
        .unwrap();
    // Let the last-use writer run.
    std::thread::sleep(Duration::from_millis(2000));

    let out = s.output();
    assert!(
        out.contains("REDACTED"),
        "a token in a query string is logged as REDACTED:\n{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("/api/v1/tokens/self") && l.contains("REDACTED")),
        "the query-string request is logged with its path and the token REDACTED:\n{out}"
    );
    let contents = [("the database".to_owned(), s.database_bytes())];
    // A control: the public id of a token is stored as it is, so the search does find text.
    assert!(
        contents
            .iter()
            .any(|(_, b)| b.windows(id_a.len()).any(|w| w == id_a.as_bytes())),
        "token id {id_a} not found in the database files: the search is not looking at them"
    );
    let mut needles: Vec<(String, String)> = secrets
        .iter()
        .map(|t| ("an issued token".to_owned(), t.clone()))
        .collect();
    needles.push((
        "the secret part of an issued token".to_owned(),
        a.rsplit('_').next().unwrap().to_owned(),
    ));
    needles.push((
        "the admin password".to_owned(),
        "correct-horse-battery-staple".to_owned(),
    ));
    needles.push(("a bad-checksum token".to_owned(), wrong));
    needles.push(("an unknown token".to_owned(), unknown));
    for (what, needle) in &needles {
        assert!(
            !out.contains(needle.as_str()),
            "{what} appears in the log output:\n{out}"
        );
        for (file, bytes) in &contents {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{what} appears in {file}"
            );
        }
    }
}

both_backends!(a_token_under_another_query_parameter_name_is_not_logged);
fn a_token_under_another_query_parameter_name_is_not_logged(backend: Backend) {
    // A token in a URL is redacted from every log line. A client that misspells
    // the parameter (or uses another product's name for it) still puts a live token in the URL.
    let s = Server::on(backend).start();
    let (_, t) = s.create_token("misnamed", &["tokens:read"]);
    for param in ["API-TOKEN", "ApiToken", "token", "access_token"] {
        s.anon("GET", &format!("{SELF}?{param}={t}"))
            .send()
            .unwrap();
    }
    let out = s.output();
    assert!(
        !out.contains(&t),
        "a live token in the query string was logged in plaintext:\n{}",
        out.lines()
            .filter(|l| l.contains(&t))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

both_backends!(a_token_pasted_into_the_path_is_not_logged);
fn a_token_pasted_into_the_path_is_not_logged(backend: Backend) {
    // A user who pastes the token where the id belongs (`/api/v1/tokens/<token>`) has put a
    // token in a URL; the rule is that it is redacted from every log line.
    let s = Server::on(backend).start();
    let (_, t) = s.create_token("in-path", &["tokens:read"]);
    let r = s
        .admin("GET", &format!("/api/v1/tokens/{t}"))
        .send()
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let out = s.output();
    assert!(
        !out.contains(&t),
        "a live token in the path was logged in plaintext:\n{}",
        out.lines()
            .filter(|l| l.contains(&t))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// 10. token prefix

both_backends!(token_prefix_is_used_for_minted_tokens);
fn token_prefix_is_used_for_minted_tokens(backend: Backend) {
    let s = Server::on(backend)
        .args(&["--token-prefix", "acme"])
        .start();
    let v = create(&s, json!({"name": "acme", "scopes": ["tokens:read"]}));
    let t = v["token"].as_str().unwrap();
    let id = v["id"].as_str().unwrap();
    assert!(t.starts_with("acme_"), "{t}");
    assert!(id.starts_with("acme_"), "{id}");
    assert!(
        t.starts_with(&format!("{id}_")),
        "the id is a prefix of the token"
    );
    assert_eq!(t.len(), "acme_".len() + 16 + 1 + 43 + 6, "{t}");
    let r = s.verify(t, &[]);
    assert_eq!(r["code"], "VALID", "{r}");
    assert_eq!(r["tokenId"], id, "{r}");
    assert_eq!(s.verify(&bad_checksum(t), &[])["code"], "MALFORMED");
    assert_eq!(s.with_token("GET", SELF, t).send().unwrap().status(), 200);
    // Rotation keeps the deployment's prefix.
    let (status, r) = status_json(
        s.admin("POST", &format!("/api/v1/tokens/{id}/rotate"))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 201, "{r}");
    assert!(r["token"].as_str().unwrap().starts_with("acme_"), "{r}");
}

#[test]
fn bad_token_prefix_fails_the_start_with_one_line() {
    for bad in ["Bad_Prefix", "a", "1abc", "abcdefghijklmnopq", "kg-x"] {
        let dir = tempfile::tempdir().unwrap();
        let failed = Server::on(Backend::Sqlite)
            .args(&["--token-prefix", bad])
            .working_dir(dir.path())
            .default_data_dir()
            .secrets_from_test()
            .default_log_filter()
            .fail();
        let (status, output, stderr) = (failed.status, failed.output, failed.stderr);
        assert!(!status.success(), "--token-prefix {bad}: exit {status}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "--token-prefix {bad}: one line of error expected; stderr:\n{stderr}"
        );
        assert!(
            lines[0].contains("prefix") && lines[0].contains(bad),
            "--token-prefix {bad}: the error names the flag and value: {}",
            lines[0]
        );
        assert!(!output.contains("listening"), "{output}");
        assert!(
            !dir.path().join("keygate-data").join("keygate.db").exists(),
            "--token-prefix {bad}: no database is created"
        );
    }
}

/// Polls GET /api/v1/tokens/{id} until last use is recorded; returns the recorded IP.
fn recorded_ips(s: &Server, id: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, v) = status_json(
            s.admin("GET", &format!("/api/v1/tokens/{id}"))
                .send()
                .unwrap(),
        );
        if v["lastUsedAt"].is_string() {
            return v["lastUsedIp"].clone();
        }
        assert!(Instant::now() < deadline, "lastUsedAt never set: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

both_backends!(forwarded_for_is_ignored_unless_trusted);
fn forwarded_for_is_ignored_unless_trusted(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, t) = s.create_token("behind-proxy", &["tokens:read"]);
    let r = s
        .with_token("GET", "/api/v1/auth", &t)
        .header("X-Forwarded-For", "203.0.113.7, 10.0.0.1")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(recorded_ips(&s, &id), "127.0.0.1");
    // The audit log is not forgeable either.
    let r = s
        .admin("POST", &format!("/api/v1/tokens/{id}/disable"))
        .header("X-Forwarded-For", "203.0.113.7")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, audit) = status_json(
        s.admin("GET", "/api/v1/audit?action=token.disable")
            .send()
            .unwrap(),
    );
    assert_eq!(audit["items"][0]["ip"], "127.0.0.1", "{audit}");
}

both_backends!(forwarded_for_is_used_when_trusted);
fn forwarded_for_is_used_when_trusted(backend: Backend) {
    let s = Server::on(backend).args(&["--trust-forwarded-for"]).start();
    let (id, t) = s.create_token("behind-proxy", &["tokens:read"]);
    let r = s
        .with_token("GET", "/api/v1/auth", &t)
        .header("X-Forwarded-For", "203.0.113.7, 10.0.0.1")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(recorded_ips(&s, &id), "203.0.113.7");
    let r = s
        .admin("POST", &format!("/api/v1/tokens/{id}/disable"))
        .header("X-Real-IP", "198.51.100.9")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, audit) = status_json(
        s.admin("GET", "/api/v1/audit?action=token.disable")
            .send()
            .unwrap(),
    );
    assert_eq!(audit["items"][0]["ip"], "198.51.100.9", "{audit}");
}
