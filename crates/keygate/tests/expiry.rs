//! Expiry warnings end to end: a real server scanning every second with short thresholds,
//! short-lived tokens, and the events it writes to the webhook outbox, read from the SQLite
//! file. (The endpoint is put in place with SQL: these tests look at the outbox, not at
//! delivery.)

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Scans every second; warns an hour and two seconds before an expiry.
fn scanning_server() -> Server {
    let s = Server::on(Backend::Sqlite)
        .args(&["--expiry-scan-interval", "1s", "--expiry-warnings", "2s,1h"])
        .start();
    sqlite_write(
        &s.db_path(),
        "INSERT INTO webhook_endpoints (id, tenant_id, url, events, secret, enabled, \
         created_at, updated_at) VALUES ('wh_e2e', 'default', 'http://127.0.0.1:9/', ',*,', \
         'whsec_e2e', 1, 0, 0)",
    );
    s
}

/// The expiry events of the outbox, oldest first, as their payloads.
fn expiry_events(s: &Server) -> Vec<Value> {
    sqlite_readonly(
        &s.db_path(),
        "SELECT payload FROM webhook_deliveries \
         WHERE event_type IN ('token.expiring', 'token.expired') ORDER BY id",
    )
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect()
}

fn of_token<'a>(events: &'a [Value], id: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["data"]["token"]["id"] == id)
        .collect()
}

/// Waits until the outbox holds `token.expired` for `id`; the scan runs every second, so a
/// minute is only a bound on a stuck server, not a measure of speed.
fn wait_expired(s: &Server, id: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events = expiry_events(s);
        if of_token(&events, id)
            .iter()
            .any(|e| e["type"] == "token.expired")
        {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "no token.expired for {id}: {events:?}\n{}",
            s.tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn create(s: &Server, name: &str, expires_in: u64) -> Value {
    let (status, v) = s.call(
        "POST",
        "/api/v1/tokens",
        Some(s.admin_token.as_str()),
        Some(json!({ "name": name, "scopes": ["tokens:read"], "expiresIn": expires_in })),
    );
    assert_eq!(status, 201, "{v}");
    v
}

#[test]
fn each_warning_and_the_expiry_reach_the_outbox_once() {
    let s = scanning_server();
    let long = create(&s, "long", 600);
    let short = create(&s, "short", 2);
    let short_id = short["id"].as_str().unwrap();
    wait_expired(&s, short_id);
    // A token created after the short one expired, and seen expired in turn: every scan that
    // could repeat a notice of the short one has run by then.
    let marker = create(&s, "marker", 1);
    let events = wait_expired(&s, marker["id"].as_str().unwrap());

    // Ten minutes ahead: within the hour's threshold at the first look, not within 2s.
    let long_events = of_token(&events, long["id"].as_str().unwrap());
    assert_eq!(long_events.len(), 1, "{long_events:?}");
    let warning = long_events[0];
    assert_eq!(warning["type"], "token.expiring");
    assert_eq!(warning["data"]["threshold"], "1h");
    assert_eq!(warning["data"]["thresholdSeconds"], 3600);
    assert_eq!(warning["data"]["expiresAt"], long["expiresAt"]);
    assert_eq!(warning["data"]["token"]["expiresAt"], long["expiresAt"]);
    assert!(warning["timestamp"].is_string(), "{warning}");

    // Two seconds ahead: told 2s (if a scan came before the expiry) and then expired, once.
    let kinds: Vec<(&str, &str)> = of_token(&events, short_id)
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["data"]["threshold"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert!(
        kinds == [("token.expired", "-")]
            || kinds == [("token.expiring", "2s"), ("token.expired", "-")],
        "{kinds:?}"
    );
    // Never the secret, in any event.
    let outbox = sqlite_readonly(&s.db_path(), "SELECT payload FROM webhook_deliveries");
    for created in [&long, &short, &marker] {
        assert!(!outbox.contains(created["token"].as_str().unwrap()));
    }
}

#[test]
fn a_rotated_out_token_is_not_told_it_expired_and_its_successor_is_warned() {
    let s = scanning_server();
    let old = create(&s, "old", 600);
    let old_id = old["id"].as_str().unwrap();
    let (status, new) = s.call(
        "POST",
        &format!("/api/v1/tokens/{old_id}/rotate"),
        Some(s.admin_token.as_str()),
        Some(json!({ "gracePeriodSeconds": 1 })),
    );
    assert_eq!(status, 201, "{new}");
    assert_eq!(new["rotatedFrom"], old_id);
    // The old token's grace period ends; then a marker expires after it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while s
        .call(
            "GET",
            &format!("/api/v1/tokens/{old_id}"),
            Some(s.admin_token.as_str()),
            None,
        )
        .1["status"]
        != "expired"
    {
        assert!(Instant::now() < deadline, "the grace period never ended");
        std::thread::sleep(Duration::from_millis(200));
    }
    let marker = create(&s, "marker", 1);
    let events = wait_expired(&s, marker["id"].as_str().unwrap());
    assert!(
        of_token(&events, old_id)
            .iter()
            .all(|e| e["type"] != "token.expired"),
        "{events:?}"
    );
    let successor = of_token(&events, new["id"].as_str().unwrap());
    assert_eq!(successor.len(), 1, "{successor:?}");
    assert_eq!(successor[0]["data"]["threshold"], "1h");
}

#[test]
fn a_bad_warning_list_stops_the_start_naming_it() {
    let failed = Server::on(Backend::Sqlite)
        .args(&["--expiry-warnings", "7d,soon"])
        .fail();
    assert!(
        failed.stderr.contains("--expiry-warnings") && failed.stderr.contains("\"soon\""),
        "{}",
        failed.output
    );
}
