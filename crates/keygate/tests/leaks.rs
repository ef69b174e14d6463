//! The leak intake end to end: a real `keygate serve` receives GitHub secret-scanning reports
//! signed with a P-256 key the test makes (written to the key file as GitHub publishes its
//! own), and GitLab Token Revocation API calls with a bearer token. Reported tokens are handled
//! by their tenant's `onLeak`, audited with where they were found and told to webhooks; made-up
//! tokens cost nothing; unsigned, tampered, unknown-key and replayed reports change nothing.

mod common;
use common::*;

use std::path::{Path, PathBuf};

use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A key like GitHub's, with its identifier.
struct GithubKey {
    id: String,
    key: SigningKey,
}

impl GithubKey {
    fn new(id: &str) -> Self {
        let key = loop {
            let bytes: [u8; 32] = rand::random();
            if let Ok(k) = SigningKey::from_bytes(&bytes.into()) {
                break k;
            }
        };
        Self {
            id: id.to_owned(),
            key,
        }
    }

    fn pem(&self) -> String {
        self.key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    }

    fn sign(&self, body: &[u8]) -> Signature {
        self.key.sign(body)
    }
}

/// GitHub's key JSON listing these keys.
fn write_keys(path: &Path, keys: &[&GithubKey]) {
    let listed: Vec<Value> = keys
        .iter()
        .map(|k| json!({ "key_identifier": k.id, "key": k.pem(), "is_current": true }))
        .collect();
    let text = json!({ "public_keys": listed }).to_string();
    // Written beside and renamed, as a cron job should: the server never sees half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn b64_der(sig: &Signature) -> String {
    base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
}

/// The same signature with s replaced by n − s: as valid, and a different encoding.
fn other_s(sig: &Signature) -> Signature {
    let (r, s) = sig.split_scalars();
    Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap()
}

fn sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

struct Setup {
    server: Server,
    key: GithubKey,
    key_file: PathBuf,
    _dir: tempfile::TempDir,
}

fn start(backend: Backend, more: &[&str]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let key = GithubKey::new("test-key-1");
    let key_file = dir.path().join("github-keys.json");
    write_keys(&key_file, &[&key]);
    let mut args = vec!["--github-scanning-keys", key_file.to_str().unwrap()];
    args.extend_from_slice(more);
    let server = Server::on(backend).args(&args).start();
    Setup {
        server,
        key,
        key_file,
        _dir: dir,
    }
}

/// Sends a raw body with the given signature headers; status and JSON.
fn post_github(s: &Server, body: &str, key_id: Option<&str>, sig: Option<&str>) -> (u16, Value) {
    let mut rb = s
        .anon("POST", "/api/v1/leaks/github")
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(k) = key_id {
        rb = rb.header("Github-Public-Key-Identifier", k);
    }
    if let Some(sig) = sig {
        rb = rb.header("Github-Public-Key-Signature", sig);
    }
    status_json(rb.send().unwrap())
}

fn report_body(tokens: &[&str]) -> String {
    let items: Vec<Value> = tokens
        .iter()
        .map(|t| {
            json!({ "token": t, "type": "keygate_api_token",
                    "url": "https://github.com/octo/repo/blob/abc/.env#L3", "source": "content" })
        })
        .collect();
    Value::Array(items).to_string()
}

/// A signed report of these tokens; the answer's labels, in order.
fn report(st: &Setup, tokens: &[&str]) -> Vec<String> {
    let body = report_body(tokens);
    let sig = b64_der(&st.key.sign(body.as_bytes()));
    let (status, v) = post_github(&st.server, &body, Some(&st.key.id), Some(&sig));
    assert_eq!(status, 200, "{v}");
    let answers = v.as_array().unwrap();
    assert_eq!(answers.len(), tokens.len(), "{v}");
    for (a, t) in answers.iter().zip(tokens) {
        assert_eq!(a["token_hash"], sha256_hex(t), "{v}");
        assert_eq!(a["token_type"], "keygate_api_token", "{v}");
    }
    answers
        .iter()
        .map(|a| a["label"].as_str().unwrap().to_owned())
        .collect()
}

fn audit(s: &Server, action: &str, target: &str) -> Vec<Value> {
    let (status, v) = s.call(
        "GET",
        &format!("/api/v1/audit?action={action}&targetId={target}"),
        Some(&s.admin_token),
        None,
    );
    assert_eq!(status, 200, "{v}");
    v["items"].as_array().unwrap().clone()
}

fn set_on_leak(s: &Server, on_leak: &str) {
    let (status, v) = s.call(
        "PUT",
        "/api/v1/tenants/default/policy",
        Some(&s.admin_token),
        Some(json!({ "onLeak": on_leak })),
    );
    assert_eq!(status, 200, "{v}");
}

/// A webhook endpoint at a recorder, subscribed to every event: its id.
fn webhook(s: &Server, recorder: &Recorder) -> String {
    let (status, v) = s.call(
        "POST",
        "/api/v1/webhooks",
        Some(&s.admin_token),
        Some(json!({ "url": format!("http://{}/leaks", recorder.addr), "events": ["*"] })),
    );
    assert_eq!(status, 201, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

/// The payload of the first delivery of this event about this token the recorder received.
fn delivered(recorder: &Recorder, kept: &mut Vec<Value>, event: &str, token_id: &str) -> Value {
    eventually(&format!("{event} of {token_id} delivered"), || {
        kept.extend(
            recorder
                .take()
                .into_iter()
                .filter_map(|seen| serde_json::from_str::<Value>(&seen.body).ok()),
        );
        kept.iter()
            .find(|p| p["type"] == event && p["data"]["token"]["id"] == token_id)
            .cloned()
    })
}

fn emitted(s: &Server, endpoint: &str) -> Vec<String> {
    let (status, v) = s.call(
        "GET",
        &format!("/api/v1/webhooks/{endpoint}/deliveries?limit=100"),
        Some(&s.admin_token),
        None,
    );
    assert_eq!(status, 200, "{v}");
    let mut types: Vec<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["eventType"].as_str().unwrap().to_owned())
        .collect();
    types.sort();
    types
}

both_backends!(a_reported_token_is_handled_by_its_tenants_policy_once);
fn a_reported_token_is_handled_by_its_tenants_policy_once(backend: Backend) {
    let st = start(backend, &[]);
    let s = &st.server;
    let recorder = Recorder::start();
    let mut payloads = Vec::new();
    let endpoint = webhook(s, &recorder);
    let (id, token) = s.create_token("ci", &["tokens:read"]);
    let other_prefix = token_with_prefix("ghp");
    let broken = bad_checksum(&fresh_token());
    let unknown = fresh_token();

    // Revoke, the default.
    let labels = report(&st, &[&token, &other_prefix, &broken, &unknown]);
    assert_eq!(
        labels,
        [
            "true_positive",
            "false_positive",
            "false_positive",
            "false_positive"
        ]
    );
    assert_eq!(s.verify(&token, &[])["code"], "NOT_FOUND");
    // Another prefix and a bad checksum were judged by their format alone, with no lookup;
    // only the well-formed unknown token was looked for.
    let counts = metrics_text(s);
    let count = |outcome: &str| {
        metric(
            &counts,
            &format!("keygate_leak_reports_total{{reporter=\"github\",outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(count("true_positive"), Some(1.0), "{counts}");
    assert_eq!(count("false_positive_format"), Some(2.0), "{counts}");
    assert_eq!(count("false_positive_not_found"), Some(1.0), "{counts}");
    let leaked = audit(s, "token.leaked", &id);
    assert_eq!(leaked.len(), 1, "{leaked:?}");
    let d = &leaked[0]["details"];
    assert_eq!(
        d["url"], "https://github.com/octo/repo/blob/abc/.env#L3",
        "{d}"
    );
    assert_eq!(
        (&d["source"], &d["onLeak"]),
        (&json!("content"), &json!("revoke"))
    );
    assert_eq!(leaked[0]["actor"], "secret-scanning:github");
    assert_eq!(d["type"], "keygate_api_token", "{d}");
    let revoked = audit(s, "token.delete", &id);
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0]["details"]["reason"], "leaked");
    assert!(
        !format!("{leaked:?}{revoked:?}").contains(&token),
        "no secret in the audit log"
    );
    let events = emitted(s, &endpoint);
    assert!(events.contains(&"token.leaked".to_owned()), "{events:?}");
    assert!(events.contains(&"token.revoked".to_owned()), "{events:?}");
    let told = delivered(&recorder, &mut payloads, "token.leaked", &id);
    let data = &told["data"];
    assert_eq!(
        (&data["reporter"], &data["source"], &data["onLeak"]),
        (&json!("github"), &json!("content"), &json!("revoke")),
        "{told}"
    );
    assert_eq!(
        data["url"], "https://github.com/octo/repo/blob/abc/.env#L3",
        "{told}"
    );
    let revoked = delivered(&recorder, &mut payloads, "token.revoked", &id);
    assert_eq!(revoked["data"]["reason"], "leaked", "{revoked}");
    assert!(
        !format!("{payloads:?}").contains(&token),
        "no secret in an event"
    );

    // Reported again in a new report: still known (true positive), nothing more happens.
    assert_eq!(report(&st, &[&token]), ["true_positive"]);
    assert_eq!(audit(s, "token.leaked", &id).len(), 1);
    assert_eq!(audit(s, "token.delete", &id).len(), 1);
    assert_eq!(emitted(s, &endpoint), events);

    // Disable.
    set_on_leak(s, "disable");
    let (id, token) = s.create_token("ci2", &["tokens:read"]);
    assert_eq!(
        report(&st, &[&token, &token]),
        ["true_positive", "true_positive"]
    );
    assert_eq!(s.verify(&token, &[])["code"], "DISABLED");
    assert_eq!(
        audit(s, "token.disable", &id)[0]["details"]["reason"],
        "leaked"
    );
    assert_eq!(
        audit(s, "token.leaked", &id)[0]["details"]["onLeak"],
        "disable"
    );
    assert_eq!(
        audit(s, "token.leaked", &id).len(),
        1,
        "one entry for a token reported twice"
    );
    assert!(emitted(s, &endpoint).contains(&"token.disabled".to_owned()));

    // Notify: the token keeps working; the leak is audited and told.
    set_on_leak(s, "notify");
    let (id, token) = s.create_token("ci3", &["tokens:read"]);
    let before = emitted(s, &endpoint).len();
    assert_eq!(report(&st, &[&token]), ["true_positive"]);
    assert_eq!(s.verify(&token, &[])["code"], "VALID");
    assert_eq!(
        audit(s, "token.leaked", &id)[0]["details"]["onLeak"],
        "notify"
    );
    assert_eq!(emitted(s, &endpoint).len(), before + 1);
}

both_backends!(unsigned_tampered_unknown_and_replayed_reports_change_nothing);
fn unsigned_tampered_unknown_and_replayed_reports_change_nothing(backend: Backend) {
    let st = start(backend, &[]);
    let s = &st.server;
    let (id, token) = s.create_token("ci", &["tokens:read"]);
    let body = report_body(&[&token]);
    let sig = st.key.sign(body.as_bytes());
    let good = b64_der(&sig);
    let unchanged = |what: &str| {
        assert_eq!(s.verify(&token, &[])["code"], "VALID", "after {what}");
        assert!(audit(s, "token.leaked", &id).is_empty(), "after {what}");
    };

    let refused = |(status, v): (u16, Value), what: &str| {
        assert_error_body((status, v), 401, "invalid_signature");
        unchanged(what);
    };
    refused(post_github(s, &body, None, None), "no headers");
    refused(
        post_github(s, &body, Some(&st.key.id), None),
        "no signature",
    );
    refused(post_github(s, &body, None, Some(&good)), "no key id");
    refused(
        post_github(s, &body, Some("another-key"), Some(&good)),
        "an unknown key",
    );
    let tampered = body.replace(".env#L3", ".env#L4");
    refused(
        post_github(s, &tampered, Some(&st.key.id), Some(&good)),
        "a tampered body",
    );
    let stranger = GithubKey::new(&st.key.id);
    let theirs = b64_der(&stranger.sign(body.as_bytes()));
    refused(
        post_github(s, &body, Some(&st.key.id), Some(&theirs)),
        "another key's signature",
    );
    refused(
        post_github(s, &body, Some(&st.key.id), Some("bm90IGEgc2lnbmF0dXJl")),
        "garbage",
    );

    // Accepted once; a replay, in either encoding of the signature, is refused and acts no
    // more.
    let first = post_github(s, &body, Some(&st.key.id), Some(&good));
    assert_eq!(first.0, 200, "{first:?}");
    assert_eq!(first.1[0]["label"], "true_positive");
    let flipped = b64_der(&other_s(&sig));
    assert_ne!(flipped, good);
    for replay in [&good, &flipped] {
        let v = assert_error_body(
            post_github(s, &body, Some(&st.key.id), Some(replay)),
            401,
            "invalid_signature",
        );
        assert!(v["message"].as_str().unwrap().contains("replay"), "{v}");
    }
    assert_eq!(audit(s, "token.leaked", &id).len(), 1);
    assert_eq!(audit(s, "token.delete", &id).len(), 1);

    // More than 1000 tokens: refused as a whole, signed or not.
    let many: Vec<String> = (0..1001).map(|_| fresh_token()).collect();
    let body = report_body(&many.iter().map(String::as_str).collect::<Vec<_>>());
    let sig = b64_der(&st.key.sign(body.as_bytes()));
    let v = assert_error_body(
        post_github(s, &body, Some(&st.key.id), Some(&sig)),
        422,
        "invalid_request",
    );
    assert!(
        v["message"].as_str().unwrap().contains("at most 1000"),
        "{v}"
    );
}

#[test]
fn the_key_file_is_read_again_when_it_changes() {
    let st = start(Backend::Sqlite, &[]);
    let s = &st.server;
    let rotated = GithubKey::new("test-key-2");
    write_keys(&st.key_file, &[&rotated]);
    let body = report_body(&[&fresh_token()]);
    let sig = b64_der(&rotated.sign(body.as_bytes()));
    let (status, v) = post_github(s, &body, Some(&rotated.id), Some(&sig));
    assert_eq!(
        (status, &v[0]["label"]),
        (200, &json!("false_positive")),
        "{v}"
    );
    // The old key is gone with the file's old content.
    let sig = b64_der(&st.key.sign(body.as_bytes()));
    assert_error_body(
        post_github(s, &body, Some(&st.key.id), Some(&sig)),
        401,
        "invalid_signature",
    );
    // A broken file keeps the keys read before.
    std::fs::write(&st.key_file, "{not json").unwrap();
    // A new report: p256 signs deterministically (RFC 6979), and a signature seen is a replay.
    let body = report_body(&[&fresh_token()]);
    let sig = b64_der(&rotated.sign(body.as_bytes()));
    assert_eq!(post_github(s, &body, Some(&rotated.id), Some(&sig)).0, 200);
}

#[test]
fn the_intakes_are_not_found_unless_configured() {
    let s = Server::on(Backend::Sqlite).start();
    let body = report_body(&[&fresh_token()]);
    assert_error_body(
        post_github(&s, &body, Some("k"), Some("c2ln")),
        404,
        "not_found",
    );
    let (status, v) = status_json(
        s.anon("GET", "/api/v1/leaks/gitlab/revocable_token_types")
            .bearer_auth("0123456789abcdef0123")
            .send()
            .unwrap(),
    );
    assert_error_body((status, v), 404, "not_found");
    let (status, v) = status_json(
        s.anon("POST", "/api/v1/leaks/gitlab/revoke_tokens")
            .bearer_auth("0123456789abcdef0123")
            .json(&json!([]))
            .send()
            .unwrap(),
    );
    assert_error_body((status, v), 404, "not_found");
}

const GITLAB_TOKEN: &str = "gitlab-revocation-0123456789";

fn gitlab_server(backend: Backend, more: &[&str]) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gitlab-token");
    std::fs::write(&file, format!("{GITLAB_TOKEN}\n")).unwrap();
    let mut args = vec!["--gitlab-revocation-token-file", file.to_str().unwrap()];
    args.extend_from_slice(more);
    (Server::on(backend).args(&args).start(), dir)
}

fn gitlab(
    s: &Server,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rb = s.anon(method, &format!("/api/v1/leaks/gitlab/{path}"));
    if let Some(b) = bearer {
        rb = rb.bearer_auth(b);
    }
    if let Some(body) = body {
        rb = rb.json(&body);
    }
    status_json(rb.send().unwrap())
}

both_backends!(gitlab_revokes_reported_tokens_with_its_bearer_token);
fn gitlab_revokes_reported_tokens_with_its_bearer_token(backend: Backend) {
    let (s, _dir) = gitlab_server(backend, &[]);
    let (status, v) = gitlab(&s, "GET", "revocable_token_types", Some(GITLAB_TOKEN), None);
    assert_eq!(
        (status, v),
        (200, json!({ "types": ["keygate_api_token"] }))
    );
    // GitLab itself sends its setting as the whole header, without a scheme.
    let (status, _) = status_json(
        s.anon("GET", "/api/v1/leaks/gitlab/revocable_token_types")
            .header("Authorization", GITLAB_TOKEN)
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200);
    assert_error_body(
        gitlab(&s, "GET", "revocable_token_types", None, None),
        401,
        "missing_token",
    );
    assert_error_body(
        gitlab(
            &s,
            "GET",
            "revocable_token_types",
            Some("gitlab-revocation-0123456780"),
            None,
        ),
        401,
        "invalid_token",
    );

    let (id, token) = s.create_token("ci", &["tokens:read"]);
    let body = json!([
        { "type": "keygate_api_token", "token": token, "location": "https://gitlab.example/g/p/-/blob/main/ci.yml#L9" },
        { "type": "keygate_api_token", "token": fresh_token(), "location": null },
        { "type": "keygate_api_token", "token": "not a token at all", "location": "x" },
    ]);
    assert_error_body(
        gitlab(
            &s,
            "POST",
            "revoke_tokens",
            Some("wrong-token-0123456789"),
            Some(body.clone()),
        ),
        401,
        "invalid_token",
    );
    assert_eq!(s.verify(&token, &[])["code"], "VALID");

    assert_eq!(
        gitlab(
            &s,
            "POST",
            "revoke_tokens",
            Some(GITLAB_TOKEN),
            Some(body.clone())
        ),
        (204, Value::Null)
    );
    assert_eq!(s.verify(&token, &[])["code"], "NOT_FOUND");
    let leaked = audit(&s, "token.leaked", &id);
    assert_eq!(leaked.len(), 1, "{leaked:?}");
    assert_eq!(
        leaked[0]["details"]["location"],
        "https://gitlab.example/g/p/-/blob/main/ci.yml#L9"
    );
    assert_eq!(leaked[0]["actor"], "secret-scanning:gitlab");
    assert_eq!(
        audit(&s, "token.delete", &id)[0]["details"]["reason"],
        "leaked"
    );

    // Idempotent.
    assert_eq!(
        gitlab(&s, "POST", "revoke_tokens", Some(GITLAB_TOKEN), Some(body)),
        (204, Value::Null)
    );
    assert_eq!(audit(&s, "token.leaked", &id).len(), 1);
    assert_eq!(audit(&s, "token.delete", &id).len(), 1);
}

#[test]
fn gitlab_requests_are_rate_limited_per_address() {
    let (s, _dir) = gitlab_server(Backend::Sqlite, &["--gitlab-revocation-rate-limit", "3"]);
    for _ in 0..3 {
        assert_eq!(
            gitlab(&s, "GET", "revocable_token_types", Some(GITLAB_TOKEN), None).0,
            200
        );
    }
    let r = s
        .anon("GET", "/api/v1/leaks/gitlab/revocable_token_types")
        .bearer_auth(GITLAB_TOKEN)
        .send()
        .unwrap();
    assert!(retry_after(&r) >= 1);
    assert_error_body(status_json(r), 429, "rate_limited");
}

#[test]
fn an_unusable_key_or_token_file_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    std::fs::write(
        &keys,
        r#"{"public_keys":[{"key_identifier":"k","key":"not a key"}]}"#,
    )
    .unwrap();
    let short = dir.path().join("short-token");
    std::fs::write(&short, "tooshort\n").unwrap();
    let missing = dir.path().join("nothing-here");
    for (flag, path, says) in [
        (
            "--github-scanning-keys",
            &keys,
            "not a PEM P-256 public key",
        ),
        ("--github-scanning-keys", &missing, "cannot read"),
        (
            "--gitlab-revocation-token-file",
            &short,
            "at least 16 characters",
        ),
        ("--gitlab-revocation-token-file", &missing, "nothing-here"),
    ] {
        let failed = Server::on(Backend::Sqlite)
            .args(&[flag, path.to_str().unwrap()])
            .fail();
        assert!(
            failed.stderr.contains(flag) && failed.stderr.contains(says),
            "{flag} {}: {}",
            path.display(),
            failed.stderr
        );
    }
}
