//! Usage control over the native API, against a real `keygate serve`: rate limits, credits,
//! permission queries and `externalId` on tokens, in `POST /api/v1/verify` and in forward-auth
//! (`GET /api/v1/auth`), the credits endpoint, the audit log, and refusals of bad input. The
//! never-overspent promise across two nodes on one PostgreSQL is at the end.

mod common;
use common::*;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

const SCOPES: [&str; 10] = [
    "--scope",
    "documents.read=Read documents",
    "--scope",
    "documents.write=Write documents",
    "--scope",
    "users.view=See users",
    "--scope",
    "files:read=Read files",
    "--scope",
    "files:write=Write files",
];

fn server(backend: Backend) -> Server {
    Server::on(backend).args(&SCOPES).start()
}

/// Creates a token as the admin with this body (name and scopes added when missing).
fn create(s: &Server, mut body: Value) -> (String, String) {
    let obj = body.as_object_mut().unwrap();
    obj.entry("name").or_insert(json!("usage"));
    obj.entry("scopes").or_insert(json!(["documents.read"]));
    let (st, v) = status_json(
        s.admin("POST", "/api/v1/tokens")
            .json(&body)
            .send()
            .unwrap(),
    );
    assert_eq!(st, 201, "create {body}: {v}");
    (
        v["id"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    )
}

/// A GET as the admin, asserting 200.
fn admin_json(s: &Server, path: &str) -> Value {
    let (st, v) = s.call("GET", path, Some(&s.admin_token), None);
    assert_eq!(st, 200, "GET {path}: {v}");
    v
}

fn refused_create(s: &Server, body: Value) -> Value {
    let (st, v) = status_json(
        s.admin("POST", "/api/v1/tokens")
            .json(&body)
            .send()
            .unwrap(),
    );
    assert_eq!(st, 422, "{body}: {v}");
    assert_eq!(v["code"], "invalid_request", "{v}");
    v
}

fn verify(s: &Server, body: Value) -> (u16, Value) {
    status_json(s.anon("POST", "/api/v1/verify").json(&body).send().unwrap())
}

fn verify_ok(s: &Server, body: Value) -> Value {
    let (st, v) = verify(s, body.clone());
    assert_eq!(st, 200, "{body}: {v}");
    v
}

fn credits(s: &Server, id: &str, body: Value) -> (u16, Value) {
    status_json(
        s.admin("POST", &format!("/api/v1/tokens/{id}/credits"))
            .json(&body)
            .send()
            .unwrap(),
    )
}

fn forward(s: &Server, token: &str, query: &str) -> reqwest::blocking::Response {
    s.with_token("GET", &format!("/api/v1/auth{query}"), token)
        .send()
        .unwrap()
}

fn header(r: &reqwest::blocking::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

both_backends!(a_token_shows_its_limits_credits_and_external_id);
fn a_token_shows_its_limits_credits_and_external_id(backend: Backend) {
    let s = server(backend);
    let limits = json!([
        {"name": "requests", "limit": 100, "durationMs": 60000, "autoApply": true},
        {"name": "search", "limit": 5, "durationMs": 1000, "autoApply": false}
    ]);
    let refill = json!({"interval": "monthly", "amount": 1000, "refillDay": 15});
    let (id, _) = create(
        &s,
        json!({"externalId": "customer-7", "ratelimits": limits,
               "credits": {"remaining": 750, "refill": refill}}),
    );
    let (other, _) = create(&s, json!({"externalId": "customer-8"}));
    let (plain, _) = create(&s, json!({}));
    let v = admin_json(&s, &format!("/api/v1/tokens/{id}"));
    assert_eq!(v["externalId"], "customer-7");
    assert_eq!(v["ratelimits"], limits);
    assert_eq!(v["credits"]["remaining"], 750);
    assert_eq!(v["credits"]["refill"], refill);
    let v = admin_json(&s, &format!("/api/v1/tokens/{plain}"));
    assert_eq!(v["credits"], Value::Null, "unlimited: {v}");
    assert_eq!(v["ratelimits"], json!([]));
    assert_eq!(v["externalId"], Value::Null);

    let listed = admin_json(&s, "/api/v1/tokens?externalId=customer-7");
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()], "{listed}");
    assert!(!ids.contains(&other.as_str()));

    // A replace changes them; left out, they stay.
    let (st, v) = status_json(
        s.admin("PUT", &format!("/api/v1/tokens/{id}"))
            .json(&json!({"name": "usage", "scopes": ["documents.read"],
                          "ratelimits": [{"name": "requests", "limit": 10, "durationMs": 1000}],
                          "credits": {"remaining": 3}, "externalId": null}))
            .send()
            .unwrap(),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["externalId"], Value::Null);
    assert_eq!(v["ratelimits"][0]["limit"], 10);
    assert_eq!(v["ratelimits"][0]["autoApply"], false);
    assert_eq!(v["credits"], json!({"remaining": 3, "refill": null}));
    let (st, v) = status_json(
        s.admin("PUT", &format!("/api/v1/tokens/{id}"))
            .json(&json!({"name": "renamed", "scopes": ["documents.read"]}))
            .send()
            .unwrap(),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["credits"]["remaining"], 3, "kept: {v}");
    assert_eq!(v["ratelimits"][0]["name"], "requests", "kept: {v}");
}

both_backends!(credits_run_out_exactly_and_are_charged_last);
fn credits_run_out_exactly_and_are_charged_last(backend: Backend) {
    let s = server(backend);
    let (id, token) = create(
        &s,
        json!({"credits": {"remaining": 3}, "externalId": "acme"}),
    );
    for left in [2, 1, 0] {
        let v = verify_ok(&s, json!({"token": token}));
        assert_eq!(v["code"], "VALID", "{v}");
        assert_eq!(v["credits"]["remaining"], left, "{v}");
        assert_eq!(v["externalId"], "acme", "{v}");
    }
    let v = verify_ok(&s, json!({"token": token}));
    assert_eq!(v["code"], "USAGE_EXCEEDED", "{v}");
    assert_eq!(v["valid"], false);
    assert_eq!(v["credits"]["remaining"], 0);
    // A cost of 0 checks without charging.
    let v = verify_ok(&s, json!({"token": token, "credits": {"cost": 0}}));
    assert_eq!(v["code"], "VALID", "{v}");

    // Refused for a scope: nothing charged.
    let (st, v) = credits(&s, &id, json!({"operation": "set", "value": 2}));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["credits"]["remaining"], 2);
    let v = verify_ok(&s, json!({"token": token, "scopes": ["users.view"]}));
    assert_eq!(v["code"], "INSUFFICIENT_SCOPE", "{v}");
    let v = verify_ok(&s, json!({"token": token, "credits": {"cost": 2}}));
    assert_eq!(v["code"], "VALID", "{v}");
    assert_eq!(v["credits"]["remaining"], 0, "{v}");

    // A token without credits is never charged, and says nothing of credits.
    let (_, plain) = create(&s, json!({}));
    let v = verify_ok(&s, json!({"token": plain, "credits": {"cost": 5}}));
    assert_eq!(v["code"], "VALID", "{v}");
    assert!(v.get("credits").is_none(), "{v}");
}

both_backends!(the_credits_endpoint_sets_adds_and_takes_and_is_audited);
fn the_credits_endpoint_sets_adds_and_takes_and_is_audited(backend: Backend) {
    let s = server(backend);
    let (id, token) = create(&s, json!({"credits": {"remaining": 5}}));
    let (st, v) = credits(&s, &id, json!({"operation": "increment", "value": 10}));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["credits"]["remaining"], 15);
    let (st, v) = credits(&s, &id, json!({"operation": "decrement", "value": 4}));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["credits"]["remaining"], 11);
    let v = verify_ok(&s, json!({"token": token}));
    assert_eq!(v["credits"]["remaining"], 10, "{v}");
    // Taking more than is left leaves none, and the token is refused.
    let (st, v) = credits(&s, &id, json!({"operation": "decrement", "value": 1000}));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["credits"]["remaining"], 0);
    let v = verify_ok(&s, json!({"token": token}));
    assert_eq!(v["code"], "USAGE_EXCEEDED", "{v}");
    // Unlimited again.
    let (st, v) = credits(&s, &id, json!({"operation": "set", "value": null}));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["credits"], Value::Null);
    let v = verify_ok(&s, json!({"token": token}));
    assert_eq!(v["code"], "VALID", "{v}");
    // Nothing to add to.
    let (st, v) = credits(&s, &id, json!({"operation": "increment", "value": 1}));
    assert_eq!(st, 409, "{v}");
    assert!(v["message"].as_str().unwrap().contains("unlimited"), "{v}");
    for (body, field) in [
        (json!({"operation": "increment", "value": -1}), "value"),
        (json!({"operation": "decrement"}), "value"),
        (json!({"operation": "double", "value": 1}), "operation"),
    ] {
        let (st, v) = credits(&s, &id, body.clone());
        assert!(st == 422 || st == 400, "{body}: {st} {v}");
        assert!(
            v["message"].as_str().unwrap().contains(field),
            "{body}: {v}"
        );
    }
    let audit = admin_json(
        &s,
        &format!("/api/v1/audit?action=token.credits&targetId={id}"),
    );
    let ops: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["details"]["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        ["set", "decrement", "decrement", "increment"],
        "{audit}"
    );
}

both_backends!(an_auto_limit_refuses_with_its_reset_and_charges_no_credit);
fn an_auto_limit_refuses_with_its_reset_and_charges_no_credit(backend: Backend) {
    let s = server(backend);
    let (_, token) = create(
        &s,
        json!({"ratelimits": [{"name": "requests", "limit": 2, "durationMs": 60000, "autoApply": true}],
               "credits": {"remaining": 10}}),
    );
    for left in [1, 0] {
        let v = verify_ok(&s, json!({"token": token}));
        assert_eq!(v["code"], "VALID", "{v}");
        assert_eq!(v["ratelimits"][0]["remaining"], left, "{v}");
        assert_eq!(v["ratelimits"][0]["exceeded"], false, "{v}");
    }
    let before = now_ms();
    let v = verify_ok(&s, json!({"token": token}));
    assert_eq!(v["code"], "RATE_LIMITED", "{v}");
    let l = &v["ratelimits"][0];
    assert_eq!(l["exceeded"], true, "{v}");
    assert_eq!(l["name"], "requests");
    assert_eq!(l["limit"], 2);
    assert_eq!(l["durationMs"], 60000);
    assert_eq!(l["autoApply"], true);
    let reset = l["reset"].as_i64().unwrap();
    assert!(
        reset > before && reset <= before + 61_000,
        "reset {reset}, now {before}"
    );
    // Only the two that passed were charged.
    let v = verify_ok(&s, json!({"token": token, "credits": {"cost": 0}}));
    assert_eq!(v["code"], "RATE_LIMITED", "{v}");
    let id = v["tokenId"].as_str().unwrap();
    let t = admin_json(&s, &format!("/api/v1/tokens/{id}"));
    assert_eq!(t["credits"]["remaining"], 8, "{t}");
}

both_backends!(a_named_limit_applies_only_when_named);
fn a_named_limit_applies_only_when_named(backend: Backend) {
    let s = server(backend);
    let (_, token) = create(
        &s,
        json!({"ratelimits": [{"name": "search", "limit": 1, "durationMs": 60000}]}),
    );
    for _ in 0..3 {
        let v = verify_ok(&s, json!({"token": token}));
        assert_eq!(v["code"], "VALID", "{v}");
        assert!(v.get("ratelimits").is_none(), "not checked: {v}");
    }
    let named = json!({"token": token, "ratelimits": [{"name": "search"}]});
    let v = verify_ok(&s, named.clone());
    assert_eq!(v["code"], "VALID", "{v}");
    assert_eq!(v["ratelimits"][0]["autoApply"], false, "{v}");
    let v = verify_ok(&s, named);
    assert_eq!(v["code"], "RATE_LIMITED", "{v}");
    // A cost of 0 looks without using.
    let v = verify_ok(
        &s,
        json!({"token": token, "ratelimits": [{"name": "search", "cost": 0}]}),
    );
    assert_eq!(v["code"], "VALID", "{v}");
    assert_eq!(v["ratelimits"][0]["remaining"], 0, "{v}");
    // A name the token does not have is the request's mistake.
    let (st, v) = verify(
        &s,
        json!({"token": token, "ratelimits": [{"name": "uploads"}]}),
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["code"], "invalid_request");
    assert!(
        v["message"].as_str().unwrap().contains("\"uploads\""),
        "{v}"
    );
}

both_backends!(permission_queries_decide_with_precedence_and_wildcards);
fn permission_queries_decide_with_precedence_and_wildcards(backend: Backend) {
    let s = server(backend);
    let (_, reader) = create(&s, json!({"scopes": ["documents.read", "users.view"]}));
    let (_, writer) = create(&s, json!({"scopes": ["documents.write"]}));
    let (_, wild) = create(&s, json!({"scopes": ["files:*"]}));
    let code = |token: &str, q: &str| {
        let v = verify_ok(&s, json!({"token": token, "permissions": q}));
        v["code"].as_str().unwrap().to_owned()
    };
    let q = "(documents.read OR documents.write) AND users.view";
    assert_eq!(code(&reader, q), "VALID");
    assert_eq!(code(&writer, q), "INSUFFICIENT_SCOPE");
    // AND binds tighter: a OR (b AND c).
    let q = "documents.write OR documents.read AND users.view";
    assert_eq!(code(&writer, q), "VALID");
    assert_eq!(code(&reader, q), "VALID");
    assert_eq!(code(&wild, "files:read AND files:write"), "VALID");
    assert_eq!(
        code(&wild, "files:read AND users.view"),
        "INSUFFICIENT_SCOPE"
    );

    // A plain conjunction names what is missing.
    let v = verify_ok(
        &s,
        json!({"token": writer, "permissions": "documents.write AND users.view"}),
    );
    assert_eq!(v["missingScopes"], json!(["users.view"]), "{v}");

    for bad in [
        "",
        "documents.read AND",
        "(documents.read",
        "a OR OR b",
        "a and b",
    ] {
        let (st, v) = verify(&s, json!({"token": reader, "permissions": bad}));
        assert_eq!(st, 400, "{bad:?}: {v}");
        assert_eq!(v["code"], "invalid_request");
        assert!(
            v["message"].as_str().unwrap().starts_with("permissions"),
            "{v}"
        );
    }

    // Forward-auth takes the same query.
    let q = "?permissions=(documents.read%20OR%20documents.write)%20AND%20users.view";
    assert_eq!(forward(&s, &reader, q).status(), 200);
    assert_eq!(forward(&s, &writer, q).status(), 403);
    assert_eq!(forward(&s, &reader, "?permissions=(").status(), 400);
}

both_backends!(forward_auth_answers_429_with_retry_after_and_ratelimit_headers);
fn forward_auth_answers_429_with_retry_after_and_ratelimit_headers(backend: Backend) {
    let s = server(backend);
    let (_, token) = create(
        &s,
        json!({"ratelimits": [{"name": "requests", "limit": 2, "durationMs": 30000, "autoApply": true}],
               "externalId": "customer-1"}),
    );
    let r = forward(&s, &token, "");
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-keygate-external-id").as_deref(),
        Some("customer-1")
    );
    assert_eq!(header(&r, "ratelimit-limit").as_deref(), Some("2"));
    assert_eq!(header(&r, "ratelimit-remaining").as_deref(), Some("1"));
    let reset: u64 = header(&r, "ratelimit-reset").unwrap().parse().unwrap();
    assert!((1..=30).contains(&reset), "reset {reset}");
    assert_eq!(forward(&s, &token, "").status(), 200);
    let r = forward(&s, &token, "");
    assert_eq!(r.status(), 429);
    let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!(
        (1..=15).contains(&retry),
        "one of two back after 15 s: {retry}"
    );
    assert_eq!(header(&r, "ratelimit-remaining").as_deref(), Some("0"));
    assert!(header(&r, "ratelimit-limit").is_some());
    let v: Value = r.json().unwrap();
    assert_eq!(v["code"], "rate_limited", "{v}");

    // Credits: `?cost=` overrides the 1 a request costs; used up is 429 `usage_exceeded`.
    let (_, metered) = create(
        &s,
        json!({"credits": {"remaining": 5, "refill": {"interval": "daily", "amount": 5}}}),
    );
    let r = forward(&s, &metered, "?cost=4");
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-keygate-credits-remaining").as_deref(),
        Some("1")
    );
    let r = forward(&s, &metered, "?cost=2");
    assert_eq!(r.status(), 429);
    let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!(retry <= 86_400, "until tomorrow's refill: {retry}");
    let v: Value = r.json().unwrap();
    assert_eq!(v["code"], "usage_exceeded", "{v}");
    assert_eq!(forward(&s, &metered, "?cost=1").status(), 200);
    assert_eq!(forward(&s, &metered, "?cost=-1").status(), 400);
}

both_backends!(bad_usage_input_is_refused_naming_the_field);
fn bad_usage_input_is_refused_naming_the_field(backend: Backend) {
    let s = server(backend);
    let limit = |l: Value| json!({"name": "x", "scopes": ["documents.read"], "ratelimits": [l]});
    for (body, field) in [
        (
            limit(json!({"name": "r", "limit": 0, "durationMs": 1000})),
            "ratelimits[0].limit",
        ),
        (
            limit(json!({"name": "r", "limit": 1, "durationMs": 999})),
            "ratelimits[0].durationMs",
        ),
        (
            limit(json!({"name": "r", "limit": 1, "durationMs": 2_592_000_001_u64})),
            "ratelimits[0].durationMs",
        ),
        (
            limit(json!({"name": "", "limit": 1, "durationMs": 1000})),
            "ratelimits[0].name",
        ),
        (
            json!({"name": "x", "scopes": ["documents.read"],
                   "credits": {"remaining": 1, "refill": {"interval": "daily", "amount": 1, "refillDay": 3}}}),
            "credits.refill.refillDay",
        ),
        (
            json!({"name": "x", "scopes": ["documents.read"], "externalId": "a".repeat(257)}),
            "externalId",
        ),
    ] {
        let v = refused_create(&s, body.clone());
        assert!(
            v["message"].as_str().unwrap().contains(field),
            "{body}: {v}"
        );
    }
    let many: Vec<Value> = (0..51)
        .map(|i| json!({"name": format!("l{i}"), "limit": 1, "durationMs": 1000}))
        .collect();
    refused_create(
        &s,
        json!({"name": "x", "scopes": ["documents.read"], "ratelimits": many}),
    );
    let v = refused_create(
        &s,
        json!({"name": "x", "scopes": ["documents.read"], "credits": {"remaining": -1}}),
    );
    assert!(v["message"].as_str().unwrap().contains("remaining"), "{v}");

    let (_, token) = create(&s, json!({}));
    for (body, field) in [
        (
            json!({"token": token, "credits": {"cost": -1}}),
            "credits.cost",
        ),
        (
            json!({"token": token, "ratelimits": [{"name": "x", "cost": -2}]}),
            "ratelimits[0].cost",
        ),
    ] {
        let (st, v) = verify(&s, body.clone());
        assert_eq!(st, 422, "{body}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains(field),
            "{body}: {v}"
        );
    }
}

/// `threads` clients verify `token` on `nodes` as fast as they can until each has been refused
/// `USAGE_EXCEEDED` a few times in a row; returns how many answers were `VALID`.
fn spend_all(nodes: &[&Server], token: &str, threads: usize) -> u64 {
    let valid = Arc::new(AtomicU64::new(0));
    std::thread::scope(|scope| {
        for i in 0..threads {
            let node = nodes[i % nodes.len()];
            let valid = valid.clone();
            scope.spawn(move || {
                let mut refused_in_a_row = 0;
                while refused_in_a_row < 5 {
                    let (st, v) = verify(node, json!({"token": token}));
                    assert_eq!(st, 200, "{v}");
                    match v["code"].as_str().unwrap() {
                        "VALID" => {
                            valid.fetch_add(1, Ordering::Relaxed);
                            refused_in_a_row = 0;
                        }
                        "USAGE_EXCEEDED" => refused_in_a_row += 1,
                        other => panic!("unexpected {other}: {v}"),
                    }
                }
            });
        }
    });
    valid.load(Ordering::Relaxed)
}

/// Every credit is spendable exactly once: concurrent clients on the given nodes get exactly
/// as many VALID answers as credits were granted, no more (never overspent) and, once the
/// nodes have given back what they held unspent, no fewer.
fn credits_are_spent_exactly(nodes: &[&Server]) {
    const GRANTED: u64 = 500;
    let (_, token) = create(nodes[0], json!({"credits": {"remaining": GRANTED}}));
    let mut valid = spend_all(nodes, &token, 8);
    assert!(
        valid <= GRANTED,
        "overspent: {valid} VALID for {GRANTED} credits"
    );
    // A node gives back credits it holds but did not spend after a quiet second; spending
    // resumes on any node until nothing is left anywhere.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while valid < GRANTED && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        valid += spend_all(nodes, &token, 2);
    }
    assert_eq!(valid, GRANTED, "VALID answers for {GRANTED} credits");
}

#[test]
fn credits_are_spent_exactly_on_one_sqlite_node() {
    let s = server(Backend::Sqlite);
    credits_are_spent_exactly(&[&s]);
}

#[test]
fn credits_are_spent_exactly_on_two_nodes_sharing_postgres() {
    let db = PgDatabase::create();
    let admin = fresh_token();
    let node = |name: &str| db.node(name, &admin).args(&SCOPES).start();
    let a = node("node-a");
    let b = node("node-b");
    credits_are_spent_exactly(&[&a, &b]);
}

/// The Redis every node names with `--redis-url` (`KEYGATE_TEST_REDIS_URL`, default the
/// machine's). Without one the test is skipped loudly outside CI, and fails in CI.
fn redis_url(test: &str) -> Option<String> {
    let url = std::env::var("KEYGATE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let addr = url.trim_start_matches("redis://").trim_end_matches('/');
    match std::net::TcpStream::connect(addr) {
        Ok(_) => Some(url),
        Err(e) => {
            skip_outside_ci(test, &format!("no Redis at {url}: {e}"));
            None
        }
    }
}

/// With `--redis-url`, two nodes count one token's rate limit together: concurrent clients on
/// both get exactly `limit` requests through, not `limit` on each.
#[test]
fn a_rate_limit_is_exact_across_two_nodes_sharing_redis() {
    let Some(redis) = redis_url("a_rate_limit_is_exact_across_two_nodes_sharing_redis") else {
        return;
    };
    let db = PgDatabase::create();
    let admin = fresh_token();
    let node = |name: &str| {
        db.node(name, &admin)
            .args(&SCOPES)
            .args(&["--redis-url", &redis])
            .start()
    };
    let a = node("node-a");
    let b = node("node-b");
    // 40 a day: nothing refills during the test.
    let (_, token) = create(
        &a,
        json!({"ratelimits": [{"name": "daily", "limit": 40, "durationMs": 86_400_000, "autoApply": true}]}),
    );
    let valid = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for i in 0..8 {
            let node = if i % 2 == 0 { &a } else { &b };
            let (valid, token) = (&valid, &token);
            scope.spawn(move || {
                for _ in 0..25 {
                    let v = verify_ok(node, json!({"token": token}));
                    match v["code"].as_str().unwrap() {
                        "VALID" => {
                            valid.fetch_add(1, Ordering::Relaxed);
                        }
                        "RATE_LIMITED" => {}
                        other => panic!("unexpected {other}: {v}"),
                    }
                }
            });
        }
    });
    assert_eq!(
        valid.load(Ordering::Relaxed),
        40,
        "200 tries, 40 allowed on both nodes together"
    );
}

#[test]
fn a_redis_url_that_is_not_one_stops_the_start() {
    let failed = Server::on(Backend::Sqlite)
        .args(&["--redis-url", "http://127.0.0.1:6379"])
        .fail();
    assert!(!failed.status.success());
    assert!(
        failed
            .stderr
            .contains("--redis-url must start with redis://"),
        "{}",
        failed.output
    );
}

both_backends!(a_rotated_token_passes_on_what_is_left_of_its_credits);
fn a_rotated_token_passes_on_what_is_left_of_its_credits(backend: Backend) {
    let s = server(backend);
    let (id, token) = create(&s, json!({"credits": {"remaining": 10}}));
    // This node now holds a lease of the token's credits, perhaps all of them.
    let v = verify_ok(&s, json!({"token": token}));
    assert_eq!(v["credits"]["remaining"], 9, "{v}");
    let (st, v) = status_json(
        s.admin("POST", &format!("/api/v1/tokens/{id}/rotate"))
            .send()
            .unwrap(),
    );
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["credits"]["remaining"], 9, "the successor's credits: {v}");
    let new = v["token"].as_str().unwrap();
    let v = verify_ok(&s, json!({"token": new}));
    assert_eq!(v["code"], "VALID", "{v}");
    assert_eq!(v["credits"]["remaining"], 8, "{v}");
}
