//! Abuse limits (README "Security"): failed token authentications per client address, the
//! database queries a flood of made-up tokens causes, bounds on heads, bodies and tokens per
//! owner, and timeouts for slow clients. Against the real server, over HTTP and raw TCP.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// A counter from /metrics, 0 while it has not been counted yet.
fn counter(s: &Server, series: &str) -> u64 {
    metric(&metrics_text(s), series).map_or(0, |v| v as u64)
}

/// `keygate_token_lookups_total`: verifications that reached the database.
fn lookups(s: &Server) -> u64 {
    counter(s, "keygate_token_lookups_total")
}

/// `keygate_verifications_total` of the outcome a verify answer's `code` is counted under.
fn verifications(s: &Server, code: &str) -> u64 {
    let outcome = match code {
        "VALID" => "valid",
        "MALFORMED" => "malformed",
        "NOT_FOUND" => "notFound",
        "RATE_LIMITED" => "rateLimited",
        other => panic!("no outcome for {other} here"),
    };
    counter(
        s,
        &format!("keygate_verifications_total{{outcome=\"{outcome}\"}}"),
    )
}

/// `POST /api/v1/verify` with `token` is refused: 429 `rate_limited`.
fn verify_refused(s: &Server, token: &str) {
    let r = s
        .anon("POST", "/api/v1/verify")
        .json(&json!({ "token": token }))
        .send()
        .unwrap();
    assert_error(r, 429, "rate_limited");
}

both_backends!(failed_authentications_from_an_address_are_refused_while_valid_tokens_pass);
fn failed_authentications_from_an_address_are_refused_while_valid_tokens_pass(backend: Backend) {
    let s = Server::on(backend)
        .args(&[
            "--auth-max-failures-per-ip",
            "5",
            "--auth-failure-window",
            "4s",
        ])
        .start();
    let (_, valid) = s.create_token("valid", &["tokens:read"]);
    let (_, unseen) = s.create_token("unseen", &["tokens:read"]);
    let (_, unseen_too) = s.create_token("unseen too", &["tokens:read"]);
    if backend == Backend::Postgres {
        // The change feed brings this node's own create back within its poll interval (a
        // second) and drops the cached entry; let it pass, so the token stays in memory below.
        std::thread::sleep(Duration::from_millis(1500));
    }
    assert_eq!(
        s.verify(&valid, &[])["code"],
        "VALID",
        "in memory from now on"
    );
    for _ in 0..5 {
        let r = s
            .with_token("GET", "/api/v1/tokens/self", &fresh_token())
            .send()
            .unwrap();
        assert_error(r, 401, "invalid_token");
    }
    let r = s
        .with_token("GET", "/api/v1/tokens/self", &fresh_token())
        .send()
        .unwrap();
    let retry = retry_after(&r);
    assert!((1..=4).contains(&retry), "Retry-After {retry}");
    let body = assert_error(r, 429, "rate_limited");
    assert_eq!(body["error"], "Too Many Requests");

    // Every surface that takes a token refuses the address now: verify, forward-auth, an
    // unreadable Authorization header, a bad checksum.
    verify_refused(&s, &fresh_token());
    let (malformed, refused) = (
        verifications(&s, "MALFORMED"),
        verifications(&s, "RATE_LIMITED"),
    );
    let r = s
        .anon("GET", "/api/v1/auth")
        .header("Authorization", "Bearer")
        .send()
        .unwrap();
    assert_error(r, 429, "rate_limited");
    assert_eq!(
        (
            verifications(&s, "MALFORMED"),
            verifications(&s, "RATE_LIMITED")
        ),
        (malformed, refused + 1),
        "a refusal is counted as one, not as a malformed token"
    );
    let r = s
        .with_token("GET", "/api/v1/auth", &bad_checksum(&valid))
        .send()
        .unwrap();
    assert_eq!(r.status(), 429);

    // A valid token in memory is answered as always, on every route.
    assert_eq!(s.verify(&valid, &[])["code"], "VALID");
    let r = s
        .with_token("GET", "/api/v1/tokens/self", &valid)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s.with_token("GET", "/api/v1/auth", &valid).send().unwrap();
    assert_eq!(r.status(), 200);
    // Of the tokens not in memory, one a second is still looked up for this address: a valid
    // one works at its first use, a flood costs the database at most a query a second.
    std::thread::sleep(Duration::from_millis(1100));
    let before = lookups(&s);
    assert_eq!(
        s.verify(&unseen, &[])["code"],
        "VALID",
        "this second's lookup"
    );
    assert_eq!(lookups(&s), before + 1);
    verify_refused(&s, &unseen_too);
    assert_eq!(
        lookups(&s),
        before + 1,
        "no second lookup in the same second"
    );
    assert_eq!(
        s.verify(&unseen, &[])["code"],
        "VALID",
        "the looked-up token is in memory now"
    );
    std::thread::sleep(Duration::from_millis(1100));
    verify_refused(&s, &fresh_token());
    assert_eq!(
        lookups(&s),
        before + 2,
        "a made-up token may use the next second's lookup"
    );
    std::thread::sleep(Duration::from_secs(retry));
    assert_eq!(
        s.verify(&unseen_too, &[])["code"],
        "VALID",
        "the window is over"
    );
    assert_eq!(s.verify(&fresh_token(), &[])["code"], "NOT_FOUND");
}

/// Sets the flag when dropped, also while a panic unwinds.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Presents `token` every 100 ms, as a client that retries does, until it is answered VALID;
/// how long that took. Every other answer must be 429.
fn retry_until_valid(s: &Server, token: &str, started: Instant) -> Duration {
    loop {
        let r = s
            .anon("POST", "/api/v1/verify")
            .json(&json!({ "token": token }))
            .send()
            .unwrap();
        if r.status() == 200 {
            assert_eq!(r.json::<serde_json::Value>().unwrap()["code"], "VALID");
            return started.elapsed();
        }
        assert_error(r, 429, "rate_limited");
        assert!(
            started.elapsed() < THROUGH_A_FLOOD_WITHIN,
            "a valid token refused for {:?} while its address floods",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A correctness bound, not a speed target: a valid token that a flood from its own address
/// keeps out longer than this is locked out. Generous, so that a loaded machine never flakes.
const THROUGH_A_FLOOD_WITHIN: Duration = Duration::from_secs(5);

both_backends!(a_valid_token_behind_an_address_that_floods_gets_through_within_seconds);
fn a_valid_token_behind_an_address_that_floods_gets_through_within_seconds(backend: Backend) {
    let s = Server::on(backend)
        .args(&["--auth-max-failures-per-ip", "5"])
        .start();
    let (_, valid) = s.create_token("behind the same NAT", &["tokens:read"]);
    let stop = AtomicBool::new(false);
    let (waited, flood_lookups, flood_for) = std::thread::scope(|scope| {
        // Made-up tokens from the same address (127.0.0.1), as fast as four clients go.
        for _ in 0..4 {
            let (s, stop) = (&s, &stop);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = s
                        .anon("POST", "/api/v1/verify")
                        .json(&json!({ "token": fresh_token() }))
                        .send();
                }
            });
        }
        // Whatever happens below, the flood ends with the scope.
        let _stop = StopOnDrop(&stop);
        while verifications(&s, "RATE_LIMITED") == 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
        let (started, before) = (Instant::now(), lookups(&s));
        let waited = retry_until_valid(&s, &valid, started);
        // The flood goes on a while longer, to count what it costs the database.
        std::thread::sleep(Duration::from_secs(2));
        (waited, lookups(&s) - before, started.elapsed())
    });
    eprintln!("through the flood after {waited:?}; {flood_lookups} lookups in {flood_for:?}");
    // A trial and a retrial a second at most, plus one for each second that has started.
    let bound = 2 * (flood_for.as_secs() + 1);
    assert!(
        flood_lookups <= bound,
        "{flood_lookups} lookups in {flood_for:?} (at most {bound})"
    );
}

both_backends!(made_up_tokens_with_a_bad_checksum_cost_no_query_and_unknown_ones_one_each);
fn made_up_tokens_with_a_bad_checksum_cost_no_query_and_unknown_ones_one_each(backend: Backend) {
    // A limit high enough that the flood is not refused: this counts what it costs unrefused.
    let s = Server::on(backend)
        .args(&["--auth-max-failures-per-ip", "1000000"])
        .start();
    let start = lookups(&s);
    for _ in 0..500 {
        let v = s.verify(&bad_checksum(&fresh_token()), &[]);
        assert_eq!(v["code"], "MALFORMED");
    }
    for bad in ["kg_", "kg_short_x", "too-short", &"x".repeat(300)] {
        assert_eq!(s.verify(bad, &[])["code"], "MALFORMED", "{bad}");
    }
    assert_eq!(
        lookups(&s),
        start,
        "bad checksums are rejected without a query"
    );

    let unknown: Vec<String> = (0..50).map(|_| fresh_token()).collect();
    for t in &unknown {
        assert_eq!(s.verify(t, &[])["code"], "NOT_FOUND");
    }
    assert_eq!(lookups(&s), start + 50, "one query per unknown token");
    for t in &unknown {
        assert_eq!(s.verify(t, &[])["code"], "NOT_FOUND");
    }
    assert_eq!(
        lookups(&s),
        start + 50,
        "the second time they are known to be unknown"
    );
}

both_backends!(an_owner_holds_at_most_the_configured_number_of_tokens);
fn an_owner_holds_at_most_the_configured_number_of_tokens(backend: Backend) {
    let s = Server::on(backend)
        .args(&["--max-tokens-per-owner", "3"])
        .start();
    // The bootstrap token is the tenant's first.
    let (a, _) = s.create_token("a", &["tokens:read"]);
    let (_, b) = s.create_token("b", &["tokens:write"]);
    let r = s
        .admin("POST", "/api/v1/tokens")
        .json(&json!({ "name": "c", "scopes": ["tokens:read"] }))
        .send()
        .unwrap();
    let body = assert_error(r, 409, "conflict");
    assert!(
        body["message"].as_str().unwrap().contains("3 tokens"),
        "{body}"
    );
    // A rotation is never refused: it is how a leaked token is replaced.
    let list: serde_json::Value = s
        .admin("GET", "/api/v1/tokens?q=b")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let b_id = list["items"][0]["id"].as_str().unwrap().to_owned();
    let r = s
        .with_token("POST", &format!("/api/v1/tokens/{b_id}/rotate"), &b)
        .json(&json!({ "gracePeriodSeconds": 60 }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "rotation at the limit");
    let r = s
        .admin("DELETE", &format!("/api/v1/tokens/{a}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    // Still full: the rotated token's predecessor lives out its grace period.
    let r = s
        .admin("POST", "/api/v1/tokens")
        .json(&json!({ "name": "c", "scopes": ["tokens:read"] }))
        .send()
        .unwrap();
    assert_error(r, 409, "conflict");
}

both_backends!(concurrent_creates_of_one_owner_stay_within_the_documented_bound);
fn concurrent_creates_of_one_owner_stay_within_the_documented_bound(backend: Backend) {
    const MAX: usize = 20;
    const CLIENTS: usize = 8;
    let s = Server::on(backend)
        .args(&["--max-tokens-per-owner", &MAX.to_string()])
        .start();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let s = &s;
                scope.spawn(move || {
                    (0..MAX)
                        .map(|i| {
                            s.admin("POST", "/api/v1/tokens")
                                .json(&json!({ "name": format!("c{c}-{i}"), "scopes": ["tokens:read"] }))
                                .send()
                                .unwrap()
                                .status()
                                .as_u16()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });
    let created = statuses.iter().filter(|&&st| st == 201).count();
    assert!(
        statuses.iter().all(|&st| st == 201 || st == 409),
        "{statuses:?}"
    );
    // The bootstrap token is the owner's first.
    let held = created + 1;
    match backend {
        // One writer: exact.
        Backend::Sqlite => assert_eq!(held, MAX),
        // Creates committing at the same moment on different connections do not see each
        // other (migration 0005): at most one extra per other client in flight.
        Backend::Postgres => assert!(
            (MAX..MAX + CLIENTS).contains(&held),
            "{held} tokens held with a bound of {MAX} and {CLIENTS} clients"
        ),
    }
    let r = s
        .admin("POST", "/api/v1/tokens")
        .json(&json!({ "name": "one more", "scopes": ["tokens:read"] }))
        .send()
        .unwrap();
    assert_error(r, 409, "conflict");
}

fn raw(s: &Server) -> TcpStream {
    let addr = s.url.trim_start_matches("http://");
    let c = TcpStream::connect(addr).unwrap();
    // Bounds the test, not the server: far longer than the server's timeout under test.
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

/// Reads until the server closes the connection; what it sent before closing.
fn until_closed(c: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server kept the connection open: {e}"),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

both_backends!(slow_and_idle_clients_are_disconnected);
fn slow_and_idle_clients_are_disconnected(backend: Backend) {
    let s = Server::on(backend)
        .args(&["--client-timeout", "1s"])
        .start();

    // Connected, nothing sent.
    let mut silent = raw(&s);
    assert_eq!(until_closed(&mut silent), "", "closed without an answer");

    // Half a head, then nothing: slowloris.
    let mut slow = raw(&s);
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    until_closed(&mut slow);

    // A head, then a body that never finishes: 408 with the API's error body.
    let mut trickle = raw(&s);
    trickle
        .write_all(
            b"POST /api/v1/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"token\":",
        )
        .unwrap();
    let answer = until_closed(&mut trickle);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"invalid_request\""), "{answer}");

    // One request answered, then an idle kept-alive connection.
    let mut idle = raw(&s);
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let answer = until_closed(&mut idle);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

both_backends!(a_client_that_does_not_read_its_answers_is_disconnected);
fn a_client_that_does_not_read_its_answers_is_disconnected(backend: Backend) {
    let s = Server::on(backend)
        .args(&["--client-timeout", "1s"])
        .start();
    // 300 pipelined requests for the 130 KiB OpenAPI document: about 40 MiB of answers, far
    // more than the socket buffers of loopback hold, so the server's writes stall.
    const ASKED: usize = 300;
    let mut c = raw(&s);
    let one = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n";
    c.write_all(&one.repeat(ASKED)).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let got = until_closed(&mut c);
    let answers = got.matches("HTTP/1.1 200").count();
    assert!(
        answers < ASKED,
        "the server kept writing to a client that did not read: {answers} answers"
    );
}

both_backends!(request_heads_and_bodies_are_bounded);
fn request_heads_and_bodies_are_bounded(backend: Backend) {
    let s = Server::on(backend)
        .args(&["--max-header-bytes", "8192", "--max-body-bytes", "2048"])
        .start();
    let r = s
        .admin("GET", "/api/v1/tokens/self")
        .header("X-Padding", "p".repeat(10_000))
        .send()
        .unwrap();
    assert_eq!(r.status(), 431, "a head over the limit");
    let r = s
        .admin("GET", "/api/v1/tokens/self")
        .header("X-Padding", "p".repeat(4_000))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "a head within the limit");

    let r = s
        .anon("POST", "/api/v1/verify")
        .json(&json!({ "token": "x".repeat(4000) }))
        .send()
        .unwrap();
    assert_error(r, 413, "payload_too_large");
    // A body larger than the head limit but within the body limit is read whole.
    let r = s
        .admin("POST", "/api/v1/tokens")
        .json(&json!({ "name": "big", "scopes": ["tokens:read"], "description": "d".repeat(900) }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);

    let r = s.admin("GET", "/api/v1/tokens?limit=1001").send().unwrap();
    assert_error(r, 400, "invalid_request");
}

#[test]
fn limits_that_would_not_work_are_refused_at_start() {
    for (args, says) in [
        (
            &["--auth-max-failures-per-ip", "0"][..],
            "--auth-max-failures-per-ip",
        ),
        (
            &["--auth-failure-window", "10ms"][..],
            "--auth-failure-window",
        ),
        (&["--client-timeout", "0s"][..], "--client-timeout"),
        (&["--max-header-bytes", "100"][..], "--max-header-bytes"),
        (
            &["--max-tokens-per-owner", "0"][..],
            "--max-tokens-per-owner",
        ),
    ] {
        let failed = Server::on(Backend::Sqlite)
            .args(args)
            .secrets_from_test()
            .default_log_filter()
            .fail();
        assert_eq!(failed.status.code(), Some(2), "{args:?}");
        assert!(failed.stderr.contains(says), "{args:?}: {}", failed.stderr);
    }
}
