//! Usage analytics against a real `keygate serve`: every verification of a known token counted
//! per minute by outcome, read back through `GET /api/v1/tokens/{id}/usage`, `GET
//! /api/v1/usage`, the CLI and Prometheus; counts kept exactly over a graceful restart, lost
//! for at most one flush interval on `kill -9`, and added up over two nodes.

mod common;
use common::*;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

const SCOPES: [&str; 4] = [
    "--scope",
    "documents.read=Read documents",
    "--scope",
    "documents.write=Write documents",
];
/// Short, so the tests see counts soon after they are made.
const QUICK_FLUSH: [&str; 2] = ["--usage-flush-interval", "100ms"];

fn server(backend: Backend) -> Server {
    Server::on(backend).args(&SCOPES).args(&QUICK_FLUSH).start()
}

fn get(s: &Server, path: &str) -> Value {
    let (status, v) = status_json(s.admin("GET", path).send().unwrap());
    assert_eq!(status, 200, "GET {path}: {v}");
    v
}

fn usage(s: &Server, id: &str, query: &str) -> Value {
    get(s, &format!("/api/v1/tokens/{id}/usage?{query}"))
}

/// Polls the token's usage (today, by day) until its total is `want`; panics after 10 s.
fn await_total(s: &Server, id: &str, want: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = usage(s, id, "granularity=minute");
        if v["totals"]["total"] == want {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "usage of {id} never reached {want}: {}",
            v["totals"]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `n` verifications of `token` asking for `scopes`, each answered `code`.
fn verify_n(s: &Server, token: &str, scopes: &[&str], n: usize, code: &str) {
    for _ in 0..n {
        assert_eq!(s.verify(token, scopes)["code"], code);
    }
}

both_backends!(a_tokens_verifications_are_counted_by_outcome);
fn a_tokens_verifications_are_counted_by_outcome(backend: Backend) {
    let s = server(backend);
    let (id, token) = s.create_token("counted", &["documents.read"]);
    verify_n(&s, &token, &["documents.read"], 7, "VALID");
    verify_n(&s, &token, &["documents.write"], 3, "INSUFFICIENT_SCOPE");
    // Forward-auth counts too.
    let r = s
        .with_token("GET", "/api/v1/auth?scopes=documents.read", &token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    // A disabled token's attempts are counted as such.
    let (st, _) = status_json(
        s.admin("POST", &format!("/api/v1/tokens/{id}/disable"))
            .send()
            .unwrap(),
    );
    assert_eq!(st, 200);
    verify_n(&s, &token, &[], 2, "DISABLED");
    // Not a known token: nobody's usage.
    s.verify(&fresh_token(), &[]);

    let v = await_total(&s, &id, 13);
    assert_eq!(v["tokenId"], id.as_str());
    assert_eq!(v["granularity"], "minute");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 60, "an hour by minute, every minute: {v}");
    let totals = &v["totals"];
    assert_eq!(totals["valid"], 8);
    assert_eq!(totals["insufficientScope"], 3);
    assert_eq!(totals["disabled"], 2);
    assert_eq!(totals["refused"], 5);
    for k in ["rateLimited", "usageExceeded", "expired", "ipNotAllowed"] {
        assert_eq!(totals[k], 0, "{k}");
    }
    let summed: u64 = items.iter().map(|i| i["total"].as_u64().unwrap()).sum();
    assert_eq!(summed, 13, "the buckets add up to the totals");
    // Buckets are the minutes of the range, oldest first, on the minute.
    let first = items[0]["at"].as_str().unwrap();
    assert!(first.ends_with(":00.000Z"), "{first}");
    assert!(items
        .windows(2)
        .all(|w| w[0]["at"].as_str() < w[1]["at"].as_str()));

    // The same counts by hour and by day.
    for g in ["hour", "day"] {
        let v = usage(&s, &id, &format!("granularity={g}"));
        assert_eq!(v["totals"]["total"], 13, "{g}: {v}");
        assert_eq!(
            v["items"].as_array().unwrap().len(),
            if g == "hour" { 24 } else { 30 }
        );
    }
}

both_backends!(the_tenant_overview_ranks_tokens_and_customers);
fn the_tenant_overview_ranks_tokens_and_customers(backend: Backend) {
    let s = server(backend);
    let create = |name: &str, external: Option<&str>| {
        let (st, v) = status_json(
            s.admin("POST", "/api/v1/tokens")
                .json(&json!({"name": name, "scopes": ["documents.read"], "externalId": external}))
                .send()
                .unwrap(),
        );
        assert_eq!(st, 201, "{v}");
        (
            v["id"].as_str().unwrap().to_owned(),
            v["token"].as_str().unwrap().to_owned(),
        )
    };
    let (busy, busy_t) = create("busy", Some("cus_1"));
    let (refused, refused_t) = create("refused", Some("cus_1"));
    let (quiet, quiet_t) = create("quiet", None);
    verify_n(&s, &busy_t, &["documents.read"], 6, "VALID");
    verify_n(
        &s,
        &refused_t,
        &["documents.write"],
        4,
        "INSUFFICIENT_SCOPE",
    );
    verify_n(&s, &quiet_t, &[], 1, "VALID");
    await_total(&s, &busy, 6);
    await_total(&s, &refused, 4);
    await_total(&s, &quiet, 1);

    let v = get(&s, "/api/v1/usage");
    assert_eq!(v["groupBy"], "token");
    assert_eq!(v["orderBy"], "total");
    // A day is counted from the hour rows, in whole hours; up to two hours to the minute.
    assert_eq!(v["granularity"], "hour");
    assert!(v["from"].as_str().unwrap().ends_with(":00:00.000Z"), "{v}");
    let an_hour_ago = (time::OffsetDateTime::now_utc() - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let recent = get(&s, &format!("/api/v1/usage?from={an_hour_ago}"));
    assert_eq!(recent["granularity"], "minute");
    assert_eq!(recent["totals"]["insufficientScope"], 4, "{recent}");
    // The admin's own calls to the API are verifications of its token too: left out here.
    let ours = [busy.as_str(), refused.as_str(), quiet.as_str()];
    let listed: Vec<(&str, u64)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| ours.contains(&i["tokenId"].as_str().unwrap()))
        .map(|i| (i["tokenId"].as_str().unwrap(), i["total"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        listed,
        vec![
            (busy.as_str(), 6),
            (refused.as_str(), 4),
            (quiet.as_str(), 1)
        ],
        "{v}"
    );
    assert!(v["totals"]["total"].as_u64().unwrap() >= 11);
    assert_eq!(v["totals"]["insufficientScope"], 4);

    let v = get(&s, "/api/v1/usage?orderBy=refused");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "only the token that was refused: {v}");
    assert_eq!(items[0]["tokenId"], refused.as_str());
    assert_eq!(items[0]["name"], "refused");
    assert_eq!(items[0]["externalId"], "cus_1");
    assert_eq!(items[0]["refused"], 4);

    let v = get(&s, "/api/v1/usage?groupBy=externalId");
    assert_eq!(
        v["items"],
        json!([{
            "externalId": "cus_1", "tokens": 2, "valid": 6, "rateLimited": 0,
            "usageExceeded": 0, "insufficientScope": 4, "disabled": 0, "expired": 0,
            "ipNotAllowed": 0, "total": 10, "refused": 4
        }])
    );

    // A long range is counted from the day rows, in whole days.
    let v = get(&s, "/api/v1/usage?from=2026-01-01T00:00:00Z&limit=100");
    assert_eq!(v["granularity"], "day");
    assert!(v["from"].as_str().unwrap().ends_with("T00:00:00.000Z"));
    let busy_row = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["tokenId"] == busy.as_str())
        .cloned();
    assert_eq!(busy_row.map(|r| r["total"].clone()), Some(json!(6)));

    // The tenant's usage needs tokens:admin; a token's usage, tokens:read and a token the
    // caller may see (another owner's is not found).
    let mia = s.create_user("mia", "correct horse battery", "member");
    let (st, v) = status_json(
        s.admin("POST", "/api/v1/tokens")
            .json(&json!({"name": "reader", "scopes": ["tokens:read"], "ownerId": mia}))
            .send()
            .unwrap(),
    );
    assert_eq!(st, 201, "{v}");
    let reader = v["token"].as_str().unwrap().to_owned();
    let (st, v) = status_json(
        s.with_token("GET", "/api/v1/usage", &reader)
            .send()
            .unwrap(),
    );
    assert_eq!(st, 403, "{v}");
    let (st, _) = status_json(
        s.with_token("GET", &format!("/api/v1/tokens/{busy}/usage"), &reader)
            .send()
            .unwrap(),
    );
    assert_eq!(st, 404, "another owner's token is not found");
}

both_backends!(bad_usage_queries_are_refused_with_reasons);
fn bad_usage_queries_are_refused_with_reasons(backend: Backend) {
    let s = server(backend);
    let (id, _) = s.create_token("t", &["documents.read"]);
    let refused = |path: &str, status: u16, says: &str| {
        let (st, v) = status_json(s.admin("GET", path).send().unwrap());
        assert_eq!(st, status, "GET {path}: {v}");
        let message = v["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "GET {path}: {message}");
    };
    let u = |q: &str| format!("/api/v1/tokens/{id}/usage?{q}");
    refused(&u("granularity=week"), 400, "granularity");
    refused(&u("from=yesterday"), 400, "from must be an RFC 3339 time");
    refused(
        &u("to=2026-13-01T00:00:00Z"),
        400,
        "to must be an RFC 3339 time",
    );
    refused(
        &u("from=2026-12-01T10:00:00Z&to=2026-12-01T09:00:00Z"),
        400,
        "from must be before to",
    );
    refused(
        &u("granularity=minute&from=2026-11-01T00:00:00Z&to=2026-11-03T00:00:00Z"),
        400,
        "at most 1500",
    );
    refused(
        &u("granularity=hour&from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z"),
        400,
        "use granularity=day",
    );
    refused("/api/v1/tokens/kg_0000000000000000/usage", 404, "");
    refused(
        "/api/v1/usage?limit=0",
        400,
        "limit must be between 1 and 100",
    );
    refused(
        "/api/v1/usage?limit=101",
        400,
        "limit must be between 1 and 100",
    );
    refused("/api/v1/usage?groupBy=owner", 400, "groupBy");
    refused("/api/v1/usage?orderBy=valid", 400, "orderBy");
    refused(
        "/api/v1/usage?from=2000-01-01T00:00:00Z",
        400,
        "kept for 400 days",
    );
}

/// `keygate token usage` prints the sparkline, the totals and the minutes that counted.
#[test]
fn the_cli_shows_a_tokens_usage() {
    let s = server(Backend::Sqlite);
    let (id, token) = s.create_token("cli", &["documents.read"]);
    verify_n(&s, &token, &["documents.read"], 5, "VALID");
    verify_n(&s, &token, &["documents.write"], 2, "INSUFFICIENT_SCOPE");
    await_total(&s, &id, 7);
    let out = cli_stdout(&s.cli(&s.admin_token, &["token", "usage", &id, "--since", "1h"]));
    assert!(out.contains(&format!("{id}  ")), "{out}");
    assert!(out.contains("by minute"), "{out}");
    assert!(
        out.contains("total 7  valid 5  insufficientScope 2"),
        "{out}"
    );
    assert!(out.contains('█'), "the sparkline's peak: {out}");
    let row = out
        .lines()
        .find(|l| l.starts_with('│') && l.contains(" 5 ") && l.contains(" 7 "))
        .unwrap_or_else(|| panic!("a row with 5 valid of 7: {out}"));
    assert!(row.contains(" 2 "), "{row}");

    let json_out = cli_stdout(&s.cli(
        &s.admin_token,
        &["token", "usage", &id, "--since", "30d", "--json"],
    ));
    let v: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(v["granularity"], "day");
    assert_eq!(v["totals"]["total"], 7);
}

/// Prometheus counts by outcome, with no per-token label.
#[test]
fn prometheus_counts_verifications_by_outcome_only() {
    let s = Server::on(Backend::Sqlite)
        .with_metrics_scopes()
        .args(&QUICK_FLUSH)
        .start();
    let (_, token) = s.create_token("m", &["tokens:read"]);
    verify_n(&s, &token, &["tokens:read"], 2, "VALID");
    verify_n(&s, &token, &["tokens:write"], 1, "INSUFFICIENT_SCOPE");
    let text = metrics_text(&s);
    assert!(metric(&text, "keygate_verifications_total{outcome=\"valid\"}").unwrap() >= 2.0);
    assert!(
        metric(
            &text,
            "keygate_verifications_total{outcome=\"insufficientScope\"}"
        )
        .unwrap()
            >= 1.0
    );
    for line in text
        .lines()
        .filter(|l| l.starts_with("keygate_verifications_total"))
    {
        assert!(
            line.starts_with("keygate_verifications_total{outcome=\""),
            "{line}"
        );
        assert!(!line.contains("kg_"), "no token in a label: {line}");
    }
}

both_backends!(counts_survive_a_graceful_restart_exactly);
fn counts_survive_a_graceful_restart_exactly(backend: Backend) {
    // Never flushed on a timer within the test: only the stop writes.
    let mut s = Server::on(backend)
        .args(&SCOPES)
        .args(&["--usage-flush-interval", "1h"])
        .start();
    let (id, token) = s.create_token("kept", &["documents.read"]);
    verify_n(&s, &token, &["documents.read"], 25, "VALID");
    verify_n(&s, &token, &["documents.write"], 5, "INSUFFICIENT_SCOPE");
    assert_eq!(
        usage(&s, &id, "granularity=minute")["totals"]["total"],
        0,
        "not written yet"
    );
    assert!(s.stop().success());
    s.restart();
    let v = usage(&s, &id, "granularity=minute");
    assert_eq!(v["totals"]["valid"], 25, "{}", v["totals"]);
    assert_eq!(v["totals"]["insufficientScope"], 5);
}

both_backends!(kill_9_loses_at_most_the_last_flush_interval);
fn kill_9_loses_at_most_the_last_flush_interval(backend: Backend) {
    let mut s = Server::on(backend)
        .args(&SCOPES)
        .args(&["--usage-flush-interval", "300ms"])
        .start();
    let (id, token) = s.create_token("killed", &["documents.read"]);
    verify_n(&s, &token, &["documents.read"], 20, "VALID");
    await_total(&s, &id, 20);
    // These were counted, but may not be written before the kill.
    verify_n(&s, &token, &["documents.read"], 10, "VALID");
    s.kill9();
    s.restart();
    let total = usage(&s, &id, "granularity=minute")["totals"]["total"]
        .as_u64()
        .unwrap();
    assert!(
        (20..=30).contains(&total),
        "what was flushed before the kill is kept, nothing is counted twice: {total}"
    );
}

/// Two nodes on one PostgreSQL each count what they verify; the database holds the sum.
#[test]
fn two_nodes_counts_add_up() {
    let db = PgDatabase::create();
    let admin = fresh_token();
    let node = |name: &str| {
        db.node(name, &admin)
            .args(&SCOPES)
            .args(&QUICK_FLUSH)
            .start()
    };
    let a = node("node-a");
    let b = node("node-b");
    let (id, token) = a.create_token("shared", &["documents.read"]);
    let threads: Vec<_> = [(&a, 40usize), (&b, 35usize)]
        .into_iter()
        .map(|(s, n)| {
            let url = s.url.clone();
            let token = token.clone();
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                for _ in 0..n {
                    let v: Value = client
                        .post(format!("{url}/api/v1/verify"))
                        .json(&json!({"token": token, "scopes": ["documents.read"]}))
                        .send()
                        .unwrap()
                        .json()
                        .unwrap();
                    assert_eq!(v["code"], "VALID");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Either node answers for both.
    let v = await_total(&a, &id, 75);
    assert_eq!(v["totals"]["valid"], 75);
    assert_eq!(await_total(&b, &id, 75)["totals"]["valid"], 75);
}

/// The server prunes by itself: minute rows older than 31 days and day rows older than 400
/// go, younger ones stay. (Rows put in with psql while it is stopped, as if written long ago:
/// it prunes one flush interval after start, then hourly.)
#[test]
fn the_server_prunes_what_is_past_retention() {
    prunes_with(&[]);
}

/// A node that counts nothing itself still prunes what others (or it, earlier) wrote.
#[test]
fn a_node_that_does_not_count_still_prunes() {
    prunes_with(&["--no-usage-counts"]);
}

fn prunes_with(args: &[&str]) {
    let db = PgDatabase::create();
    let mut s = Server::on(Backend::Postgres)
        .args(&QUICK_FLUSH)
        .args(args)
        .database_url(&db.url)
        .start();
    let day_ms: i64 = 24 * 3600 * 1000;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let today = now_ms - now_ms % day_ms;
    assert!(s.stop().success());
    let rows = [
        ("usage_minute", "old-minute", today - 32 * day_ms),
        ("usage_minute", "kept-minute", today - 30 * day_ms),
        ("usage_day", "old-day", today - 401 * day_ms),
        ("usage_day", "kept-day", today - 399 * day_ms),
    ];
    for (table, token, at) in rows {
        psql(
            &db.url,
            &format!(
                "INSERT INTO {table} (token_id, tenant_id, at, valid) VALUES ('{token}', 'default', {at}, 1)"
            ),
        )
        .unwrap();
    }
    s.restart();
    let left = || {
        psql(&db.url, "SELECT string_agg(token_id, ',' ORDER BY token_id) FROM (SELECT token_id FROM usage_minute UNION ALL SELECT token_id FROM usage_day) r").unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while left() != "kept-day,kept-minute" {
        assert!(Instant::now() < deadline, "rows left: {}", left());
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(s);
}
