//! Envoy's external authorization over gRPC (`--grpc-listen`), driven by the gRPC team's own
//! Python client and Envoy's stubs as they publish them (grpcio, xds-protos): the contract a
//! proxy configured with `failure_mode_allow: false` relies on. Every refusal is a denied
//! `CheckResponse` with forward-auth's status and body, never a gRPC error.
//!
//! Needs the venv `target/grpc-py` (`.ci/run` makes it from `grpc-py/requirements.txt`; the
//! test makes it when missing). Without it the tests skip loudly, and fail in CI.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const SCOPES: [&str; 4] = [
    "--scope",
    "documents:read=Read documents",
    "--scope",
    "documents:write=Write documents",
];

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grpc-py")
}

/// The gRPC client, or `None` after a loud skip (a failure in CI).
fn client(test: &str) -> Option<PathBuf> {
    let grpc_python = requirements_venv(
        "grpc-py",
        &client_dir().join("requirements.txt"),
        &[("grpcio", "grpcio"), ("xds-protos", "xds-protos")],
    );
    match grpc_python {
        Ok(p) => Some(p),
        Err(e) => {
            skip_outside_ci(test, &format!("no gRPC client: {e}"));
            None
        }
    }
}

/// The address `keygate serve` says it serves ext_authz on.
fn grpc_address(s: &Server) -> String {
    s.line_after("ext_authz gRPC listening on ")
}

/// Sends these `Check` calls in order, on one channel; one `CheckResponse` (as JSON) per call.
fn check(python: &Path, s: &Server, calls: &[Value]) -> Vec<Value> {
    let out = Command::new(python)
        .arg(client_dir().join("check.py"))
        .arg(grpc_address(s))
        .arg(Value::from(calls.to_vec()).to_string())
        .output()
        .expect("running check.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check.py failed\n--- stdout\n{stdout}\n--- stderr\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.tail()
    );
    let answers: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), calls.len(), "{stdout}");
    for (call, answer) in calls.iter().zip(&answers) {
        assert!(
            answer.get("rpcError").is_none(),
            "a gRPC error instead of a CheckResponse for {call}: {answer}"
        );
    }
    answers
}

fn bearer(token: &str) -> Value {
    json!({ "authorization": format!("Bearer {token}") })
}

/// The headers of an OK or denied answer, by name.
fn header(answer: &Value, name: &str) -> Option<String> {
    let http = answer
        .get("okResponse")
        .or_else(|| answer.get("deniedResponse"))?;
    http["headers"].as_array()?.iter().find_map(|h| {
        (h["header"]["key"] == name).then(|| h["header"]["value"].as_str().unwrap().to_owned())
    })
}

fn removed(answer: &Value) -> Vec<String> {
    answer["okResponse"]["headersToRemove"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[track_caller]
fn assert_ok(answer: &Value) {
    assert!(
        answer["status"].get("code").is_none() && answer.get("okResponse").is_some(),
        "not OK: {answer}"
    );
}

/// A denied answer with this HTTP status and gRPC code; its JSON body, which must carry `code`.
#[track_caller]
fn assert_denied(answer: &Value, http: u16, grpc: u16, code: &str) -> Value {
    let denied = &answer["deniedResponse"];
    assert_eq!(denied["status"]["code"], http, "{answer}");
    assert_eq!(answer["status"]["code"], grpc, "{answer}");
    assert_eq!(
        header(answer, "content-type").as_deref(),
        Some("application/json")
    );
    let body: Value = serde_json::from_str(denied["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["code"], code, "{answer}");
    if http == 401 {
        let challenge = header(answer, "www-authenticate").unwrap_or_default();
        assert!(challenge.contains("Bearer realm=\"keygate\""), "{answer}");
    }
    body
}

fn get(s: &Server, path: &str) -> Value {
    let (status, v) = status_json(s.admin("GET", path).send().unwrap());
    assert_eq!(status, 200, "GET {path}: {v}");
    v
}

/// Polls a token until `field` of it (or of its usage) becomes `want`; panics after 10 s.
fn await_value(s: &Server, path: &str, pointer: &str, want: Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = get(s, path);
        if v.pointer(pointer) == Some(&want) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{path} {pointer} never became {want}: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

both_backends!(ext_authz_answers_as_forward_auth_does);
fn ext_authz_answers_as_forward_auth_does(backend: Backend) {
    let Some(python) = client("ext_authz_answers_as_forward_auth_does") else {
        return;
    };
    let mut s = Server::on(backend)
        .args(&SCOPES)
        .args(&["--grpc-listen", "127.0.0.1:0"])
        .args(&["--usage-flush-interval", "100ms"])
        .args(&["--auth-max-failures-per-ip", "2"])
        .start();
    let (reader_id, reader) = s.create_token_from(
        json!({"name": "reader", "scopes": ["documents:read"], "externalId": "customer-7"}),
    );
    let (off_id, disabled) =
        s.create_token_from(json!({"name": "off", "scopes": ["documents:read"]}));
    let (status, v) = status_json(
        s.admin("PUT", &format!("/api/v1/tokens/{off_id}"))
            .json(&json!({"name": "off", "scopes": ["documents:read"], "enabled": false}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{v}");
    let (_, limited) = s.create_token_from(json!({"name": "limited", "scopes": ["documents:read"],
               "ratelimits": [{"name": "requests", "limit": 2, "durationMs": 60000, "autoApply": true}]}),
    );
    let (remote_id, remote) =
        s.create_token_from(json!({"name": "remote", "scopes": ["documents:read"]}));
    let read = json!({"scopes": "documents:read"});

    let a = check(
        &python,
        &s,
        &[
            json!({"headers": bearer(&reader), "ext": {"scopes": "documents:read", "strip_token": "true"}}),
            json!({"headers": bearer(&reader), "ext": read}),
            json!({"path": "/documents"}),
            json!({"headers": bearer(&format!("{reader}x"))}),
            json!({"headers": {"authorization": "Basic dXNlcjpwYXNz"}}),
            json!({"headers": bearer(&disabled), "ext": read}),
            json!({"headers": bearer(&reader), "ext": {"scopes": "documents:read, documents:write"}}),
            json!({"headers": bearer(&reader), "ext": {"permissions": "documents:read AND documents:write"}}),
            json!({"headers": bearer(&reader), "ext": {"permissions": "documents:read OR documents:write"}}),
            json!({"headers": bearer(&reader), "ext": {"permissions": "documents:read AND ("}}),
            json!({"headers": bearer(&limited), "ext": read}),
            json!({"headers": bearer(&limited), "ext": read}),
            json!({"headers": bearer(&limited), "ext": read}),
            json!({"path": format!("/documents?apiToken={reader}"), "ext": read}),
            json!({"headers": bearer(&remote), "ext": read, "source": "198.51.100.7"}),
        ],
    );

    // Valid: the token's identity for the upstream, which does not see the token when the
    // route says so, nor an x-keygate-* header that the client made up.
    assert_ok(&a[0]);
    assert_eq!(header(&a[0], "x-keygate-token-id"), Some(reader_id.clone()));
    assert_eq!(
        header(&a[0], "x-keygate-tenant-id").as_deref(),
        Some("default")
    );
    assert!(
        header(&a[0], "x-keygate-owner-id").is_some_and(|o| o.starts_with("usr_")),
        "{}",
        a[0]
    );
    assert_eq!(
        header(&a[0], "x-keygate-scopes").as_deref(),
        Some("documents:read")
    );
    assert_eq!(
        header(&a[0], "x-keygate-external-id").as_deref(),
        Some("customer-7")
    );
    assert!(
        removed(&a[0]).contains(&"authorization".to_owned()),
        "{}",
        a[0]
    );
    assert!(
        removed(&a[0]).contains(&"x-keygate-credits-remaining".to_owned()),
        "{}",
        a[0]
    );
    assert_ok(&a[1]);
    assert!(
        !removed(&a[1]).contains(&"authorization".to_owned()),
        "{}",
        a[1]
    );

    // No token, a wrong one, an unreadable header, a disabled token: 401, UNAUTHENTICATED.
    assert_denied(&a[2], 401, 16, "missing_token");
    assert_denied(&a[3], 401, 16, "invalid_token");
    assert_denied(&a[4], 401, 16, "invalid_token");
    assert_denied(&a[5], 401, 16, "token_disabled");

    // Not allowed: 403, PERMISSION_DENIED, with the scopes it lacks.
    let body = assert_denied(&a[6], 403, 7, "insufficient_scope");
    assert_eq!(body["missingScopes"], json!(["documents:write"]), "{body}");
    assert_denied(&a[7], 403, 7, "insufficient_scope");
    assert_ok(&a[8]);
    // A malformed query is the route's fault: 400 with the native body, still denied.
    let body = assert_denied(&a[9], 400, 3, "invalid_request");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("permissions:"),
        "{body}"
    );

    // The token's rate limit: two pass, the third is refused with Retry-After.
    assert_ok(&a[10]);
    assert_eq!(header(&a[10], "ratelimit-remaining").as_deref(), None);
    assert_eq!(
        a[11]["okResponse"]["responseHeadersToAdd"][1]["header"],
        json!({"key": "ratelimit-remaining", "value": "0"}),
        "{}",
        a[11]
    );
    assert_denied(&a[12], 429, 8, "rate_limited");
    let wait: u64 = header(&a[12], "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{}", a[12]);
    assert_eq!(header(&a[12], "ratelimit-remaining").as_deref(), Some("0"));

    // The token in the query string of the original path, which keygate allows by default.
    assert_ok(&a[13]);
    assert_eq!(
        header(&a[13], "x-keygate-token-id"),
        Some(reader_id.clone())
    );

    // The client's address as Envoy saw it: the token's last use records it...
    await_value(
        &s,
        &format!("/api/v1/tokens/{remote_id}"),
        "/lastUsedIp",
        json!("198.51.100.7"),
    );
    // ...and the failed-attempt limiter counts it, by itself: two wrong tokens from it are
    // answered 401, the third 429, while another address still gets 401.
    let wrong = bearer(&bad_checksum(&reader));
    let b = check(
        &python,
        &s,
        &[
            json!({"headers": wrong, "source": "203.0.113.9"}),
            json!({"headers": wrong, "source": "203.0.113.9"}),
            json!({"headers": wrong, "source": "203.0.113.9"}),
            json!({"headers": wrong, "source": "203.0.113.10"}),
        ],
    );
    assert_denied(&b[0], 401, 16, "invalid_token");
    assert_denied(&b[1], 401, 16, "invalid_token");
    assert_denied(&b[2], 429, 8, "rate_limited");
    assert!(header(&b[2], "retry-after").is_some(), "{}", b[2]);
    assert_denied(&b[3], 401, 16, "invalid_token");

    // Counted as every verification is: per token in the usage API, by outcome in metrics.
    // The reader's checks: 0, 1, 6, 7, 8 and 13 (the malformed query, 9, never reached it).
    let usage = await_value(
        &s,
        &format!("/api/v1/tokens/{reader_id}/usage?granularity=minute"),
        "/totals/total",
        json!(6),
    );
    assert_eq!(usage["totals"]["valid"], 4, "{usage}");
    assert_eq!(usage["totals"]["insufficientScope"], 2, "{usage}");
    let text = metrics_text(&s);
    for (outcome, at_least) in [
        ("valid", 6.0),
        ("insufficientScope", 2.0),
        ("rateLimited", 1.0),
    ] {
        let series = format!("keygate_verifications_total{{outcome=\"{outcome}\"}}");
        let n = metric(&text, &series).unwrap_or(0.0);
        assert!(n >= at_least, "{series} = {n}");
    }

    // No token in the log, and the gRPC server stops with the HTTP one.
    let output = s.output();
    for t in [&reader, &disabled, &limited, &remote] {
        assert!(
            !output.contains(t.as_str()),
            "a token in the log:\n{output}"
        );
    }
    assert!(s.stop().success(), "{}", s.tail());
}

/// `KEYGATE_GRPC_LISTEN` does what the flag does; a server that refuses tokens in the query
/// string refuses them in the original path too.
#[test]
fn the_variable_serves_it_and_query_tokens_can_be_refused() {
    let Some(python) = client("the_variable_serves_it_and_query_tokens_can_be_refused") else {
        return;
    };
    let s = Server::on(Backend::Sqlite)
        .env("KEYGATE_GRPC_LISTEN", "127.0.0.1:0")
        .args(&["--no-query-token"])
        .start();
    let (_, t) = s.create_token("q", &["tokens:read"]);
    let a = check(
        &python,
        &s,
        &[
            json!({"path": format!("/x?api_token={t}")}),
            json!({"headers": bearer(&t), "path": "/x"}),
        ],
    );
    assert_denied(&a[0], 401, 16, "missing_token");
    assert_ok(&a[1]);
}

/// A token bound to networks is checked against the Check's source address: IPv4, IPv6 and
/// IPv4-mapped; a call that names no source is refused, as a bound token fails closed.
#[test]
fn the_source_address_meets_the_allow_list() {
    let Some(python) = client("the_source_address_meets_the_allow_list") else {
        return;
    };
    let s = Server::on(Backend::Sqlite)
        .args(&["--grpc-listen", "127.0.0.1:0"])
        .start();
    let (id, t) = s.create_token_from(json!({"name": "office", "scopes": ["tokens:read"],
               "allowedCidrs": ["198.51.100.0/24", "2001:db8::/32"]}));
    let a = check(
        &python,
        &s,
        &[
            json!({"headers": bearer(&t), "source": "::ffff:198.51.100.8"}),
            json!({"headers": bearer(&t), "source": "198.51.100.7"}),
            json!({"headers": bearer(&t), "source": "2001:db8::5"}),
            json!({"headers": bearer(&t), "source": "203.0.113.9"}),
            json!({"headers": bearer(&t)}),
        ],
    );
    assert_ok(&a[0]);
    assert_ok(&a[1]);
    assert_ok(&a[2]);
    let body = assert_denied(&a[3], 403, 7, "ip_not_allowed");
    assert!(body.get("missingScopes").is_none(), "{body}");
    assert_denied(&a[4], 403, 7, "ip_not_allowed");
    // The first use (the one recorded within the minute) came from `::ffff:198.51.100.8`:
    // recorded in its IPv4 form.
    await_value(
        &s,
        &format!("/api/v1/tokens/{id}"),
        "/lastUsedIp",
        json!("198.51.100.8"),
    );
    // Audited with the address, and without one when the call named none.
    let path = format!("/api/v1/audit?action=token.ip_refused&targetId={id}");
    let audited = await_value(&s, &path, "/items/1/action", json!("token.ip_refused"));
    let mut addresses: Vec<Value> = audited["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["ip"].clone())
        .collect();
    addresses.sort_by_key(|v| v.to_string());
    assert_eq!(addresses, [json!("203.0.113.9"), Value::Null]);
}

/// A port that cannot be had stops the start, before anything is written.
#[test]
fn a_grpc_port_in_use_fails_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let failed = Server::on(Backend::Sqlite)
        .args(&["--grpc-listen", &addr])
        .fail();
    assert!(
        failed
            .stderr
            .contains(&format!("--grpc-listen: cannot listen on {addr}")),
        "{}",
        failed.output
    );
}

/// With the database gone, a token keygate must look up is denied 503 `unavailable`: a denied
/// answer, not a gRPC error that Envoy could be configured to let through.
#[test]
fn a_database_that_is_gone_is_a_denial_not_an_error() {
    let Some(python) = client("a_database_that_is_gone_is_a_denial_not_an_error") else {
        return;
    };
    let db = PgDatabase::create();
    let s = Server::on(Backend::Postgres)
        .database_url(&db.url)
        .args(&["--grpc-listen", "127.0.0.1:0"])
        .start();
    // Only this test's database is closed to new connections and cut off; nothing else.
    let cut = |allow: bool| {
        let sql = format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}; \
             SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = '{name}' AND pid <> pg_backend_pid()",
            name = db.name
        );
        psql(&db.admin_url, &sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    };
    cut(false);
    let a = check(&python, &s, &[json!({"headers": bearer(&fresh_token())})]);
    cut(true);
    assert_denied(&a[0], 503, 14, "unavailable");
}
