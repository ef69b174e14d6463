//! Per-token IP allow-lists (`allowedCidrs`) against a real `keygate serve`, with requests sent
//! from different loopback addresses (127.0.0.2, 127.0.0.3, ::1): a token bound to networks
//! works only from them, on every surface, and each refusal is counted and audited with the
//! address. Behind proxies, the client is the right-most `X-Forwarded-For` address that is not
//! a trusted proxy.

mod common;
use common::*;

use reqwest::blocking::Client;
use serde_json::{json, Value};

const QUICK_FLUSH: [&str; 2] = ["--usage-flush-interval", "100ms"];

fn port_of(s: &Server) -> u16 {
    s.url.rsplit(':').next().unwrap().parse().unwrap()
}

/// Creates a token bound to `cidrs`; returns (id, token, the view the API answered).
fn create_bound(
    s: &Server,
    name: &str,
    scopes: &[&str],
    cidrs: &[&str],
) -> (String, String, Value) {
    let (status, v) = s.call(
        "POST",
        "/api/v1/tokens",
        Some(&s.admin_token),
        Some(json!({ "name": name, "scopes": scopes, "allowedCidrs": cidrs })),
    );
    assert_eq!(status, 201, "{v}");
    (
        v["id"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
        v,
    )
}

/// Forward-auth from `client` to `base`: the status and the body's `code`.
fn forward_auth(client: &Client, base: &str, token: &str) -> (u16, Value) {
    status_json(
        client
            .get(format!("{base}/api/v1/auth"))
            .bearer_auth(token)
            .send()
            .unwrap(),
    )
}

fn verify_from(client: &Client, base: &str, body: Value) -> (u16, Value) {
    status_json(
        client
            .post(format!("{base}/api/v1/verify"))
            .json(&body)
            .send()
            .unwrap(),
    )
}

fn ip_refusals(s: &Server, id: &str) -> Vec<Value> {
    let (status, v) = s.call(
        "GET",
        &format!("/api/v1/audit?action=token.ip_refused&targetId={id}"),
        Some(&s.admin_token),
        None,
    );
    assert_eq!(status, 200, "{v}");
    v["items"].as_array().unwrap().clone()
}

both_backends!(a_bound_token_works_only_from_its_networks_on_every_surface);
fn a_bound_token_works_only_from_its_networks_on_every_surface(backend: Backend) {
    let s = Server::on(backend).args(&QUICK_FLUSH).start();
    let (id, token, view) = create_bound(
        &s,
        "office-only",
        &["tokens:read"],
        &["127.0.0.2", "2001:db8::1/32"],
    );
    assert_eq!(
        view["allowedCidrs"],
        json!(["127.0.0.2/32", "2001:db8::/32"])
    );
    let inside = client_from("127.0.0.2");
    let outside = client_from("127.0.0.3");
    let base = &s.url;

    // Forward-auth: the connection's address.
    let (status, _) = forward_auth(&inside, base, &token);
    assert_eq!(status, 200);
    let (status, body) = forward_auth(&outside, base, &token);
    assert_error_body((status, body.clone()), 403, "ip_not_allowed");
    assert!(
        !body.to_string().contains("tokens:read"),
        "nothing of what the token may do is told to the wrong network: {body}"
    );

    // Verify: the body's `ip`, or else the caller's address.
    let code = |client: &Client, body: Value| {
        let (status, v) = verify_from(client, base, body);
        assert_eq!(status, 200, "{v}");
        v["code"].as_str().unwrap().to_owned()
    };
    assert_eq!(code(&outside, json!({ "token": token })), "IP_NOT_ALLOWED");
    assert_eq!(code(&inside, json!({ "token": token })), "VALID");
    assert_eq!(
        code(&outside, json!({ "token": token, "ip": "127.0.0.2" })),
        "VALID"
    );
    assert_eq!(
        code(
            &outside,
            json!({ "token": token, "ip": "::ffff:127.0.0.2" })
        ),
        "VALID"
    );
    assert_eq!(
        code(&outside, json!({ "token": token, "ip": "2001:db8:7::9" })),
        "VALID"
    );
    assert_eq!(
        code(&inside, json!({ "token": token, "ip": "2001:db9::1" })),
        "IP_NOT_ALLOWED"
    );
    let (status, v) = verify_from(
        &outside,
        base,
        json!({ "token": token, "ip": "10.0.0.300" }),
    );
    let v = assert_error_body((status, v), 422, "invalid_request");
    assert!(v["message"].as_str().unwrap().contains("10.0.0.300"), "{v}");
    let (status, v) = verify_from(&outside, base, json!({ "token": token, "ip": token }));
    let v = assert_error_body((status, v), 422, "invalid_request");
    assert!(
        !v.to_string().contains(&token[10..]),
        "a token in `ip` is not echoed: {v}"
    );

    // keygate's own API: the token is refused there too from the wrong network.
    let (status, _) = status_json(
        outside
            .get(format!("{base}/api/v1/tokens"))
            .bearer_auth(&token)
            .send()
            .unwrap(),
    );
    assert_eq!(status, 403);
    let (status, _) = status_json(
        inside
            .get(format!("{base}/api/v1/tokens"))
            .bearer_auth(&token)
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200);

    // Four refusals: forward-auth, verify twice, the API. Counted, and audited with the
    // address: once per address and minute, so 127.0.0.3 and 2001:db9::1 once each.
    let usage = eventually("the refusals are counted", || {
        let (_, v) = s.call(
            "GET",
            &format!("/api/v1/tokens/{id}/usage?granularity=minute"),
            Some(&s.admin_token),
            None,
        );
        (v["totals"]["ipNotAllowed"] == 4).then_some(v)
    });
    assert_eq!(usage["totals"]["valid"], 6, "{}", usage["totals"]);
    let audited = eventually("the refusals are audited", || {
        let items = ip_refusals(&s, &id);
        (items.len() == 2).then_some(items)
    });
    let mut addresses: Vec<&str> = audited.iter().map(|e| e["ip"].as_str().unwrap()).collect();
    addresses.sort();
    assert_eq!(addresses, ["127.0.0.3", "2001:db9::1"]);
    assert_eq!(audited[0]["actor"], json!(id));
    let metrics = metrics_text(&s);
    assert!(
        metric(
            &metrics,
            "keygate_verifications_total{outcome=\"ipNotAllowed\"}"
        )
        .unwrap_or(0.0)
            >= 3.0,
        "{metrics}"
    );

    // Unkey's verifyKey: the caller's address, refused with Unkey's code for it.
    let unkey_code = |client: &Client| {
        let (status, v) = status_json(
            client
                .post(format!("{base}/v2/keys.verifyKey"))
                .bearer_auth(&s.admin_token)
                .json(&json!({ "key": token }))
                .send()
                .unwrap(),
        );
        assert_eq!(status, 200, "{v}");
        v["data"]["code"].as_str().unwrap().to_owned()
    };
    assert_eq!(unkey_code(&outside), "FORBIDDEN");
    assert_eq!(unkey_code(&inside), "VALID");

    // Lifting the list takes effect at once.
    let (status, v) = s.call(
        "PUT",
        &format!("/api/v1/tokens/{id}"),
        Some(&s.admin_token),
        Some(json!({ "name": "office-only", "scopes": ["tokens:read"], "allowedCidrs": [] })),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["allowedCidrs"], json!([]));
    assert_eq!(forward_auth(&outside, base, &token).0, 200);
}

both_backends!(malformed_or_too_many_networks_are_refused_by_name);
fn malformed_or_too_many_networks_are_refused_by_name(backend: Backend) {
    let s = Server::on(backend).start();
    let create = |cidrs: Value| {
        s.call(
            "POST",
            "/api/v1/tokens",
            Some(&s.admin_token),
            Some(json!({ "name": "t", "scopes": ["tokens:read"], "allowedCidrs": cidrs })),
        )
    };
    let v = assert_error_body(
        create(json!(["10.0.0.0/8", "10.0.0.300/8"])),
        422,
        "invalid_request",
    );
    let message = v["message"].as_str().unwrap();
    assert!(message.contains("allowedCidrs[1]"), "{message}");
    assert!(message.contains("10.0.0.300/8"), "{message}");
    let too_many: Vec<String> = (0..101).map(|i| format!("10.{i}.0.0/16")).collect();
    let v = assert_error_body(create(json!(too_many)), 422, "invalid_request");
    assert!(
        v["message"].as_str().unwrap().contains("at most 100"),
        "{v}"
    );
    let v = assert_error_body(create(json!("10.0.0.0/8")), 422, "invalid_request");
    assert!(
        v["message"].as_str().unwrap().contains("allowedCidrs"),
        "{v}"
    );
    // The same 100 networks twice are 100: duplicates are dropped, not counted.
    let mut hundred: Vec<String> = (0..100).map(|i| format!("10.{i}.0.0/16")).collect();
    hundred.extend(hundred.clone());
    let (status, v) = create(json!(hundred));
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["allowedCidrs"].as_array().unwrap().len(), 100);
    let id = v["id"].as_str().unwrap();
    let (status, v) = s.call(
        "PUT",
        &format!("/api/v1/tokens/{id}"),
        Some(&s.admin_token),
        Some(json!({ "name": "t", "scopes": ["tokens:read"], "allowedCidrs": ["fe80::/129"] })),
    );
    let v = assert_error_body((status, v), 422, "invalid_request");
    assert!(v["message"].as_str().unwrap().contains("fe80::/129"), "{v}");
    // Nothing was changed by the refused update.
    let (_, v) = s.call(
        "GET",
        &format!("/api/v1/tokens/{id}"),
        Some(&s.admin_token),
        None,
    );
    assert_eq!(v["allowedCidrs"].as_array().unwrap().len(), 100);
}

/// `keygate token create --allow-cidr`: set, shown, enforced; a bad one refused before any
/// request.
#[test]
fn the_cli_binds_a_token_to_networks() {
    let s = Server::on(Backend::Sqlite).start();
    let out = s.cli(
        &s.admin_token,
        &[
            "token",
            "create",
            "--name",
            "ci",
            "--scope",
            "tokens:read",
            "--allow-cidr",
            "127.0.0.2",
            "--allow-cidr",
            "2001:db8::/32",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        created["allowedCidrs"],
        json!(["127.0.0.2/32", "2001:db8::/32"])
    );
    let token = created["token"].as_str().unwrap();
    assert_eq!(
        forward_auth(&client_from("127.0.0.2"), &s.url, token).0,
        200
    );
    assert_eq!(
        forward_auth(&client_from("127.0.0.3"), &s.url, token).0,
        403
    );

    let out = s.cli(
        &s.admin_token,
        &["token", "show", created["id"].as_str().unwrap()],
    );
    let shown = cli_stdout(&out);
    assert!(shown.contains("ALLOWED FROM"), "{shown}");
    assert!(shown.contains("2001:db8::/32"), "{shown}");

    let out = s.cli(
        &s.admin_token,
        &[
            "token",
            "create",
            "--name",
            "x",
            "--scope",
            "tokens:read",
            "--allow-cidr",
            "10.0.0.0/33",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("10.0.0.0/33"), "{err}");
}

/// On a dual-stack socket an IPv4 client arrives as `::ffff:127.0.0.2`: it is still the
/// network 127.0.0.2/32's. An IPv6 client (::1) is matched against IPv6 networks.
#[test]
fn ipv6_clients_and_ipv4_mapped_addresses() {
    let s = Server::on(Backend::Sqlite).listen("[::]:0").start();
    let port = port_of(&s);
    let v4 = format!("http://127.0.0.1:{port}");
    let v6 = format!("http://[::1]:{port}");
    let (v4_id, by_v4, _) = create_bound(&s, "v4", &["tokens:read"], &["127.0.0.2/32"]);
    let (_, by_v6, _) = create_bound(&s, "v6", &["tokens:read"], &["::1"]);
    let (from2, from3, from6) = (
        client_from("127.0.0.2"),
        client_from("127.0.0.3"),
        client_from("::1"),
    );
    assert_eq!(forward_auth(&from2, &v4, &by_v4).0, 200);
    assert_eq!(forward_auth(&from3, &v4, &by_v4).0, 403);
    assert_eq!(forward_auth(&from6, &v6, &by_v4).0, 403);
    assert_eq!(forward_auth(&from6, &v6, &by_v6).0, 200);
    assert_eq!(forward_auth(&from2, &v4, &by_v6).0, 403);
    // The last-use address is the client's in its IPv4 form, as the allow-list read it.
    eventually("the last use is written", || {
        let (_, v) = s.call(
            "GET",
            &format!("/api/v1/tokens/{v4_id}"),
            Some(&s.admin_token),
            None,
        );
        (v["lastUsedIp"] == "127.0.0.2").then_some(())
    });
}

/// Behind proxies: only a trusted proxy's `X-Forwarded-For` is read, from the right, and only
/// so far; what a client writes into the header itself is never taken for its address.
#[test]
fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
    let s = Server::on(Backend::Sqlite)
        .args(&["--trust-forwarded-for", "--trusted-proxies", "127.0.0.2/32"])
        .start();
    let (id, token, _) = create_bound(&s, "partner", &["tokens:read"], &["203.0.113.0/24"]);
    let proxy = client_from("127.0.0.2");
    let stranger = client_from("127.0.0.3");
    let auth = |client: &Client, xff: &str| {
        client
            .get(format!("{}/api/v1/auth", s.url))
            .bearer_auth(&token)
            .header("X-Forwarded-For", xff)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    // The proxy appended the address it saw; the left part is the client's own writing.
    assert_eq!(auth(&proxy, "198.51.100.1, 203.0.113.9"), 200);
    assert_eq!(auth(&proxy, "203.0.113.9, 198.51.100.1"), 403);
    // Proxies behind the trusted one are skipped only when they too are trusted.
    assert_eq!(auth(&proxy, "203.0.113.9, 127.0.0.2"), 200);
    // A connection that is not a trusted proxy cannot claim any address.
    assert_eq!(auth(&stranger, "203.0.113.9"), 403);
    // A chain of hundreds of trusted hops is read only 32 deep: the client at its far end is
    // never reached. A header of thousands is refused before it is read at all.
    let chain = |hops: usize| format!("203.0.113.9,{}", vec!["127.0.0.2"; hops].join(","));
    assert_eq!(auth(&proxy, &chain(31)), 200);
    assert_eq!(auth(&proxy, &chain(500)), 403);
    assert_eq!(auth(&proxy, &chain(5000)), 431);
    // Several headers are one list, the last one nearest.
    let status = proxy
        .get(format!("{}/api/v1/auth", s.url))
        .bearer_auth(&token)
        .header("X-Forwarded-For", "198.51.100.7")
        .header("X-Forwarded-For", "203.0.113.4")
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let audited = eventually("the refusals are audited", || {
        let items = ip_refusals(&s, &id);
        (items.len() == 3).then_some(items)
    });
    let mut addresses: Vec<&str> = audited.iter().map(|e| e["ip"].as_str().unwrap()).collect();
    addresses.sort();
    assert_eq!(addresses, ["127.0.0.2", "127.0.0.3", "198.51.100.1"]);
}
