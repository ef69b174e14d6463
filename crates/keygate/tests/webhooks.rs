//! Webhooks end to end: a real server delivers to a receiver written in Python that checks
//! every delivery with the Standard Webhooks reference library (`standardwebhooks`, pinned in
//! tests/webhooks-py/requirements.txt, installed by `.ci/run` into target/webhooks-py), using the
//! secret the API returned. Retries, order, redelivery, a receiver that hangs, kill -9, two
//! PostgreSQL nodes sharing an endpoint, disabling after the retry window, bad input, scopes.
//!
//! The waits below are bounds on "it happens at all", never measurements: each polls until
//! what it waits for is there, and fails only after a minute.

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

/// Fast retries, so that a test sees several attempts without waiting long.
const QUICK_RETRIES: &[&str] = &[
    "--webhook-retry-initial",
    "100ms",
    "--webhook-timeout",
    "2s",
];

/// The Python receiver (tests/webhooks-py/receiver.py), ended with the test.
struct Receiver {
    child: Child,
    port: u16,
    http: reqwest::blocking::Client,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    /// `None` (after a loud skip outside CI) when the pinned library cannot be installed.
    fn start(test: &str) -> Option<Receiver> {
        let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
        let python = match requirements_venv(
            "webhooks-py",
            &tests.join("webhooks-py/requirements.txt"),
            &[("standardwebhooks", "standardwebhooks")],
        ) {
            Ok(p) => p,
            Err(e) => {
                skip_outside_ci(test, &e);
                return None;
            }
        };
        let mut child = Command::new(python)
            .arg(tests.join("webhooks-py/receiver.py"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the Python receiver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the receiver said {line:?}"));
        Some(Receiver {
            child,
            port,
            http: reqwest::blocking::Client::new(),
        })
    }

    fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/hook/{name}", self.port)
    }

    fn control(&self, body: Value) {
        let r = self
            .http
            .put(format!("http://127.0.0.1:{}/_control", self.port))
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 204);
    }

    fn mode(&self, name: &str, mode: &str) {
        self.control(json!({ "modes": { name: mode } }));
    }

    fn log(&self) -> Value {
        self.http
            .get(format!("http://127.0.0.1:{}/_log", self.port))
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    /// Every request that reached endpoint `name`, in arrival order.
    fn arrived(&self, name: &str) -> Vec<Value> {
        self.log()["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["name"] == name)
            .cloned()
            .collect()
    }

    /// The deliveries `name` answered 2xx, once each `n` have arrived.
    fn wait_delivered(&self, name: &str, n: usize) -> Vec<Value> {
        eventually(&format!("{n} deliveries to {name}"), || {
            let ok: Vec<Value> = self
                .arrived(name)
                .into_iter()
                .filter(|d| d["answered"] == 200)
                .collect();
            (ok.len() >= n).then_some(ok)
        })
    }
}

/// Adds an endpoint for `name` at the receiver and hands the receiver its secret.
fn add_endpoint(s: &Server, r: &Receiver, name: &str, events: Value) -> Value {
    let (status, v) = s.call(
        "POST",
        "/api/v1/webhooks",
        Some(&s.admin_token),
        Some(json!({ "url": r.url(name), "events": events, "description": name })),
    );
    assert_eq!(status, 201, "{v}");
    let secret = v["secret"].as_str().expect("the create shows the secret");
    assert!(secret.starts_with("whsec_"), "{v}");
    r.control(json!({ "secrets": { name: secret } }));
    v
}

fn deliveries(s: &Server, endpoint: &str) -> Vec<Value> {
    let (status, v) = s.call(
        "GET",
        &format!("/api/v1/webhooks/{endpoint}/deliveries"),
        Some(&s.admin_token),
        None,
    );
    assert_eq!(status, 200, "{v}");
    v["items"].as_array().unwrap().clone()
}

fn assert_all_verified(arrived: &[Value]) {
    for d in arrived {
        assert_eq!(d["verified"], true, "a delivery failed verification: {d}");
    }
}

fn event_types(delivered: &[Value]) -> Vec<String> {
    delivered
        .iter()
        .map(|d| d["event"]["type"].as_str().unwrap().to_owned())
        .collect()
}

both_backends!(token_changes_arrive_signed_and_hold_no_secret);
fn token_changes_arrive_signed_and_hold_no_secret(backend: Backend) {
    let Some(r) = Receiver::start("token_changes_arrive_signed_and_hold_no_secret") else {
        return;
    };
    let s = Server::on(backend).start();
    let created = add_endpoint(&s, &r, "all", json!(["*"]));
    let endpoint = created["id"].as_str().unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    // Only revocations: it must hear of nothing else.
    add_endpoint(&s, &r, "revoked", json!(["token.revoked"]));

    let (id, token) = s.create_token("hooked", &["tokens:read"]);
    let (status, _) = s.call(
        "PUT",
        &format!("/api/v1/tokens/{id}"),
        Some(&s.admin_token),
        Some(json!({ "name": "hooked-2", "scopes": ["tokens:read"] })),
    );
    assert_eq!(status, 200);
    let (status, rotated) = s.call(
        "POST",
        &format!("/api/v1/tokens/{id}/rotate"),
        Some(&s.admin_token),
        Some(json!({})),
    );
    assert_eq!(status, 201, "{rotated}");
    let new_id = rotated["id"].as_str().unwrap();
    let new_token = rotated["token"].as_str().unwrap();
    let (status, _) = s.call(
        "DELETE",
        &format!("/api/v1/tokens/{new_id}"),
        Some(&s.admin_token),
        None,
    );
    assert_eq!(status, 204);

    let delivered = r.wait_delivered("all", 4);
    assert_all_verified(&r.arrived("all"));
    assert_eq!(
        event_types(&delivered),
        [
            "token.created",
            "token.updated",
            "token.rotated",
            "token.revoked"
        ]
    );
    let data = |i: usize| &delivered[i]["event"]["data"];
    assert_eq!(data(0)["token"]["id"], id.as_str());
    assert_eq!(data(1)["token"]["name"], "hooked-2");
    assert_eq!(data(2)["token"]["id"], new_id);
    assert_eq!(data(2)["previous"]["id"], id.as_str());
    assert_eq!(data(3)["token"]["id"], new_id);
    let ids: Vec<&str> = delivered
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert!(ids.iter().all(|i| i.starts_with("msg_")), "{ids:?}");

    let revoked = r.wait_delivered("revoked", 1);
    assert_eq!(event_types(&revoked), ["token.revoked"]);

    // No secret in any body, nor in the delivery log, nor in the endpoint as read back.
    let log = deliveries(&s, endpoint);
    assert_eq!(log.len(), 4, "{log:?}");
    assert!(log
        .iter()
        .all(|d| d["state"] == "delivered" && d["lastStatus"] == 200));
    let (_, listed) = s.call("GET", "/api/v1/webhooks", Some(&s.admin_token), None);
    let (_, one) = s.call(
        "GET",
        &format!("/api/v1/webhooks/{endpoint}"),
        Some(&s.admin_token),
        None,
    );
    assert!(one.get("secret").is_none(), "{one}");
    let everything = format!("{:?} {log:?} {listed} {one}", r.log());
    for secret in [
        token.as_str(),
        new_token,
        secret.as_str(),
        &secret["whsec_".len()..],
    ] {
        assert!(!everything.contains(secret), "a secret was sent or shown");
    }
}

/// An import sends `token.created` for each token, as a create does, saying where it came from.
#[test]
fn imported_tokens_send_token_created() {
    let Some(r) = Receiver::start("imported_tokens_send_token_created") else {
        return;
    };
    let s = Server::on(Backend::Sqlite).start();
    add_endpoint(&s, &r, "imports", json!(["token.created"]));
    let hash = |k: &str| {
        format!(
            "sha256:{}",
            hex::encode(keygate_core::TokenHash::of(k).as_bytes())
        )
    };
    let (status, v) = s.call(
        "POST",
        "/api/v1/tokens/import",
        Some(&s.admin_token),
        Some(json!({ "tokens": [
            { "hash": hash("imported-key-number-one"), "name": "one", "scopes": ["tokens:read"] },
            { "hash": hash("imported-key-number-two"), "name": "two", "scopes": ["tokens:read"] } ] })),
    );
    assert_eq!(status, 201, "{v}");
    let delivered = r.wait_delivered("imports", 2);
    assert_all_verified(&r.arrived("imports"));
    assert_eq!(event_types(&delivered), ["token.created", "token.created"]);
    for (d, name) in delivered.iter().zip(["one", "two"]) {
        let token = &d["event"]["data"]["token"];
        assert_eq!(token["name"], name, "{d}");
        assert_eq!(token["importedFrom"], "import", "{d}");
    }
}

#[test]
fn a_failing_receiver_gets_retries_in_order_and_a_redelivery() {
    let Some(r) = Receiver::start("a_failing_receiver_gets_retries_in_order_and_a_redelivery")
    else {
        return;
    };
    let s = Server::on(Backend::Sqlite).args(QUICK_RETRIES).start();
    let endpoint = add_endpoint(&s, &r, "flaky", json!(["token.created"]));
    let endpoint = endpoint["id"].as_str().unwrap();
    r.mode("flaky", "fail_first:2");
    let ids: Vec<String> = (0..3)
        .map(|i| s.create_token(&format!("t{i}"), &["tokens:read"]).0)
        .collect();

    let delivered = r.wait_delivered("flaky", 3);
    let arrived = r.arrived("flaky");
    assert_all_verified(&arrived);
    // The head was refused twice and nothing overtook it: the first three requests are the
    // same message, then the other two follow in order.
    let first = arrived[0]["id"].clone();
    assert!(arrived[..3].iter().all(|d| d["id"] == first), "{arrived:?}");
    let order: Vec<&str> = delivered
        .iter()
        .map(|d| d["event"]["data"]["token"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(order, ids);

    let log = deliveries(&s, endpoint);
    let oldest = log.last().unwrap();
    assert_eq!(oldest["attempts"], 3, "{oldest}");
    assert_eq!(oldest["state"], "delivered");
    assert_eq!(oldest["lastStatus"], 200);
    assert!(oldest["deliveredAt"].is_string(), "{oldest}");
    assert!(log[..2].iter().all(|d| d["attempts"] == 1), "{log:?}");

    let (status, again) = s.call(
        "POST",
        &format!(
            "/api/v1/webhooks/{endpoint}/deliveries/{}/redeliver",
            oldest["id"]
        ),
        Some(&s.admin_token),
        None,
    );
    assert_eq!(status, 202, "{again}");
    let delivered = r.wait_delivered("flaky", 4);
    assert_eq!(
        delivered[3]["id"], first,
        "the redelivery keeps the message id"
    );
    assert_eq!(delivered[3]["verified"], true);
    let (_, audit) = s.call(
        "GET",
        "/api/v1/audit?action=webhook.redeliver",
        Some(&s.admin_token),
        None,
    );
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");
}

#[test]
fn a_hanging_receiver_slows_neither_verification_nor_writes() {
    let Some(r) = Receiver::start("a_hanging_receiver_slows_neither_verification_nor_writes")
    else {
        return;
    };
    let s = Server::on(Backend::Sqlite)
        .args(&["--webhook-timeout", "1s", "--webhook-retry-initial", "30s"])
        .start();
    let endpoint = add_endpoint(&s, &r, "stuck", json!(["*"]));
    let endpoint = endpoint["id"].as_str().unwrap();
    r.mode("stuck", "hang");
    let (_, token) = s.create_token("first", &["tokens:read"]);
    eventually("the receiver to hold a delivery", || {
        (r.log()["inFlight"]["stuck"] == 1).then_some(())
    });
    // While the delivery hangs: verifications and writes answer.
    assert_eq!(s.verify(&token, &["tokens:read"])["valid"], true);
    let (_, second) = s.create_token("second", &["tokens:read"]);
    assert_eq!(s.verify(&second, &[])["valid"], true);

    let timed_out = eventually("the delivery log to show the timeout", || {
        deliveries(&s, endpoint).into_iter().find(|d| {
            d["lastError"]
                .as_str()
                .is_some_and(|e| e.contains("timed out"))
        })
    });
    assert_eq!(timed_out["state"], "pending", "{timed_out}");
    assert!(timed_out["nextAttemptAt"].is_string(), "{timed_out}");
    assert!(timed_out["lastStatus"].is_null(), "{timed_out}");
    r.mode("stuck", "ok");
}

#[test]
fn kill_9_with_deliveries_pending_loses_no_event() {
    let Some(r) = Receiver::start("kill_9_with_deliveries_pending_loses_no_event") else {
        return;
    };
    let mut s = Server::on(Backend::Sqlite).args(QUICK_RETRIES).start();
    add_endpoint(&s, &r, "down", json!(["token.created"]));
    r.mode("down", "status:503");
    let ids: Vec<String> = (0..5)
        .map(|i| s.create_token(&format!("k{i}"), &["tokens:read"]).0)
        .collect();
    eventually("a refused attempt", || {
        (!r.arrived("down").is_empty()).then_some(())
    });
    s.kill9();
    s.restart();
    r.mode("down", "ok");
    let delivered = r.wait_delivered("down", 5);
    assert_all_verified(&r.arrived("down"));
    let order: Vec<&str> = delivered
        .iter()
        .map(|d| d["event"]["data"]["token"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(order, ids, "every event arrives, in order");
}

#[test]
fn two_postgres_nodes_deliver_one_at_a_time_and_lose_nothing() {
    let Some(r) = Receiver::start("two_postgres_nodes_deliver_one_at_a_time_and_lose_nothing")
    else {
        return;
    };
    let db = PgDatabase::create();
    let admin = fresh_token();
    let a = db.node("a", &admin).args(QUICK_RETRIES).start();
    let b = db.node("b", &admin).args(QUICK_RETRIES).start();
    add_endpoint(&a, &r, "shared", json!(["token.created"]));
    // Slow answers, so that a second delivery in flight at once would overlap the first.
    r.mode("shared", "slow:50");
    let mut ids = Vec::new();
    for i in 0..20 {
        let node = if i % 2 == 0 { &a } else { &b };
        ids.push(node.create_token(&format!("n{i}"), &["tokens:read"]).0);
    }
    let delivered = r.wait_delivered("shared", 20);
    assert_all_verified(&r.arrived("shared"));
    let mut got: Vec<&str> = delivered
        .iter()
        .map(|d| d["event"]["data"]["token"]["id"].as_str().unwrap())
        .collect();
    got.sort();
    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(got, want, "every event delivered once");
    assert_eq!(
        r.log()["maxInFlight"]["shared"],
        1,
        "two deliveries to one endpoint were in flight at once"
    );
}

#[test]
fn an_endpoint_failing_for_the_whole_window_is_disabled_and_can_be_re_enabled() {
    let Some(r) = Receiver::start("an_endpoint_failing_for_the_whole_window_is_disabled") else {
        return;
    };
    let s = Server::on(Backend::Sqlite)
        .args(QUICK_RETRIES)
        .args(&["--webhook-retry-for", "2s"])
        .start();
    let endpoint = add_endpoint(&s, &r, "broken", json!(["token.created"]));
    let endpoint = endpoint["id"].as_str().unwrap().to_owned();
    r.mode("broken", "status:500");
    s.create_token("doomed", &["tokens:read"]);
    let path = format!("/api/v1/webhooks/{endpoint}");
    let disabled = eventually("the endpoint to be disabled", || {
        let (_, v) = s.call("GET", &path, Some(&s.admin_token), None);
        (v["enabled"] == false).then_some(v)
    });
    assert!(disabled["disabledReason"].is_string(), "{disabled}");
    let (_, audit) = s.call(
        "GET",
        "/api/v1/audit?action=webhook.disabled",
        Some(&s.admin_token),
        None,
    );
    let entries = audit["items"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["targetId"], endpoint.as_str());
    assert!(r.arrived("broken").len() >= 2, "it was retried first");

    r.mode("broken", "ok");
    let (status, v) = s.call(
        "PATCH",
        &path,
        Some(&s.admin_token),
        Some(json!({ "enabled": true })),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["enabled"], true);
    assert!(
        v["disabledReason"].is_null() && v["failingSince"].is_null(),
        "{v}"
    );
    let (id, _) = s.create_token("after", &["tokens:read"]);
    eventually("a delivery after re-enabling", || {
        r.arrived("broken")
            .into_iter()
            .find(|d| d["answered"] == 200 && d["event"]["data"]["token"]["id"] == id.as_str())
    });
}

#[test]
fn bad_input_is_422_naming_the_field_and_scopes_are_enforced() {
    let s = Server::on(Backend::Sqlite).start();
    let create = |body: Value| s.call("POST", "/api/v1/webhooks", Some(&s.admin_token), Some(body));
    let good = "http://127.0.0.1:9/hook";
    for (body, field) in [
        (
            json!({ "url": "ftp://example.com/x", "events": ["*"] }),
            "url",
        ),
        (json!({ "url": "not a url", "events": ["*"] }), "url"),
        (
            json!({ "url": "http://169.254.169.254/latest", "events": ["*"] }),
            "url",
        ),
        (
            json!({ "url": "http://[fd00:ec2::254]/", "events": ["*"] }),
            "url",
        ),
        (
            json!({ "url": "http://[fe80::1]/", "events": ["*"] }),
            "url",
        ),
        (json!({ "url": good, "events": ["token.create"] }), "events"),
        (json!({ "url": good, "events": [] }), "events"),
        (
            json!({ "url": good, "events": ["*"], "description": "d".repeat(1001) }),
            "description",
        ),
    ] {
        let (status, v) = create(body.clone());
        assert_eq!(status, 422, "{body}: {v}");
        let message = v["message"].as_str().unwrap();
        assert!(message.contains(field), "{body}: {message}");
    }
    let (status, created) = create(json!({ "url": good, "events": ["token.created"] }));
    assert_eq!(status, 201, "{created}");
    let path = format!("/api/v1/webhooks/{}", created["id"].as_str().unwrap());
    let (status, v) = s.call(
        "PATCH",
        &path,
        Some(&s.admin_token),
        Some(json!({ "events": ["nope"] })),
    );
    assert_eq!(status, 422, "{v}");

    // The flag lets the metadata address through.
    let lax = Server::on(Backend::Sqlite)
        .args(&["--webhook-allow-link-local"])
        .start();
    let (status, v) = lax.call(
        "POST",
        "/api/v1/webhooks",
        Some(&lax.admin_token),
        Some(json!({ "url": "http://169.254.169.254/x", "events": ["*"] })),
    );
    assert_eq!(status, 201, "{v}");

    let (_, reader) = s.create_token("reader", &["webhooks:read"]);
    let (_, tokens_only) = s.create_token("tokens-only", &["tokens:read"]);
    let (status, v) = s.call("GET", "/api/v1/webhooks", Some(&tokens_only), None);
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["missingScopes"], json!(["webhooks:read"]), "{v}");
    let (status, v) = s.call("GET", "/api/v1/webhooks", Some(&reader), None);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    let (status, _) = s.call(
        "POST",
        "/api/v1/webhooks",
        Some(&reader),
        Some(json!({ "url": good, "events": ["*"] })),
    );
    assert_eq!(status, 403);
    let (status, _) = s.call("DELETE", &path, Some(&reader), None);
    assert_eq!(status, 403);
    let (status, _) = s.call("DELETE", &path, Some(&s.admin_token), None);
    assert_eq!(status, 204);
    let (status, _) = s.call("GET", &path, Some(&reader), None);
    assert_eq!(status, 404);
}
