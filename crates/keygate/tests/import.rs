//! `POST /api/v1/tokens/import`: keys made and hashed elsewhere, imported by their SHA-256 in
//! every encoding, verified by hash like keygate's own, rotated into keygate's format; a bad
//! batch refused whole with the offending index named; 10 000 in one request; and the
//! migration paths of docs/migrating.md that can run here (a homegrown SQLite table of
//! SHA-256 hashes through contrib/import/sha256_table.py, a djangorestframework-api-key key
//! captured on use, Unkey's migrateKeys through the same service).

mod common;

use std::time::Instant;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use common::*;
use serde_json::{json, Value};

const IMPORT: &str = "/api/v1/tokens/import";

fn sha256(text: &str) -> [u8; 32] {
    *keygate_core::TokenHash::of(text).as_bytes()
}

fn import(s: &Server, token: &str, tokens: Value) -> (u16, Value) {
    s.call(
        "POST",
        IMPORT,
        Some(token),
        Some(json!({ "tokens": tokens })),
    )
}

/// Every token of the tenant, as the admin sees them.
fn token_count(s: &Server) -> usize {
    s.all_items("/api/v1/tokens").len()
}

both_backends!(each_encoding_imports_verifies_and_rotates_into_keygates_format);
fn each_encoding_imports_verifies_and_rotates_into_keygates_format(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    let keys: Vec<String> = (0..5)
        .map(|i| format!("legacy_{i}_{}", hex::encode(sha256(&format!("seed {i}")))))
        .collect();
    let hashes = [
        format!("sha256:{}", hex::encode(sha256(&keys[0]))),
        format!("sha256:{}", STANDARD.encode(sha256(&keys[1]))),
        format!("sha256:{}", URL_SAFE.encode(sha256(&keys[2]))),
        format!("sha256:{}", STANDARD_NO_PAD.encode(sha256(&keys[3]))),
        format!("sha256:{}", URL_SAFE_NO_PAD.encode(sha256(&keys[4]))),
    ];
    // The encodings differ where base64 and base64url do, so each decoder is really used.
    assert!(hashes[1].contains(['+', '/']) || hashes[2].contains(['-', '_']));
    let entries: Vec<Value> = hashes
        .iter()
        .enumerate()
        .map(|(i, h)| {
            json!({ "hash": h, "name": format!("legacy {i}"), "scopes": ["metrics:read"],
                    "externalId": format!("cust_{i}"), "metadata": { "from": "legacy" } })
        })
        .collect();
    let (status, v) = import(&s, &s.admin_token, json!(entries));
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["imported"], 5, "{v}");
    let views = v["tokens"].as_array().unwrap();
    for (i, view) in views.iter().enumerate() {
        assert_eq!(view["name"], format!("legacy {i}"), "in request order: {v}");
        assert_eq!(view["importedFrom"], "import", "{view}");
        assert!(
            view.get("token").is_none(),
            "no secret in an import's answer: {view}"
        );
        assert!(view["id"].as_str().unwrap().starts_with("kg_"), "{view}");
    }
    // Each key verifies as it is, by its hash, with what the import gave it.
    for (i, key) in keys.iter().enumerate() {
        let r = s.verify(key, &["metrics:read"]);
        assert_eq!(r["code"], "VALID", "key {i}: {r}");
        assert_eq!(r["externalId"], format!("cust_{i}"), "{r}");
    }
    let id = views[0]["id"].as_str().unwrap().to_owned();
    let (_, shown) = s.call(
        "GET",
        &format!("/api/v1/tokens/{id}"),
        Some(&s.admin_token),
        None,
    );
    assert_eq!(shown["importedFrom"], "import", "{shown}");

    // Audited as a create that says where the token came from, with the webhook event.
    let audit = s.all_items(&format!("/api/v1/audit?action=token.create&targetId={id}"));
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["details"]["importedFrom"], "import", "{audit:?}");

    // The CLI shows the origin in the list and in `token show`.
    let list = cli_stdout(&s.cli(&s.admin_token, &["token", "list"]));
    assert!(
        list.contains("ORIGIN") && list.contains("imported from"),
        "{list}"
    );
    let show = cli_stdout(&s.cli(&s.admin_token, &["token", "show", &id]));
    let line = show
        .lines()
        .find(|l| l.contains("IMPORTED FROM"))
        .unwrap_or_else(|| panic!("{show}"));
    assert!(line.contains("import"), "{show}");

    // Rotating an imported token gives a token of keygate's own format; the old key stops.
    let (status, new) = s.call(
        "POST",
        &format!("/api/v1/tokens/{id}/rotate"),
        Some(&s.admin_token),
        Some(json!({})),
    );
    assert_eq!(status, 201, "{new}");
    let new_token = new["token"].as_str().unwrap();
    let new_id = new["id"].as_str().unwrap();
    assert!(new_token.starts_with(&format!("{new_id}_")), "{new}");
    assert_eq!(new_token.len(), 69, "{new}");
    assert_eq!(new["importedFrom"], Value::Null, "keygate minted it: {new}");
    assert_eq!(new["rotatedFrom"], id.as_str(), "{new}");
    assert_eq!(s.verify(new_token, &["metrics:read"])["code"], "VALID");
    assert_eq!(s.verify(&keys[0], &[])["code"], "EXPIRED");
}

both_backends!(a_bad_batch_imports_nothing_and_names_the_offending_index);
fn a_bad_batch_imports_nothing_and_names_the_offending_index(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    let entry = |key: &str| {
        json!({ "hash": format!("sha256:{}", hex::encode(sha256(key))), "name": key,
                "scopes": ["metrics:read"] })
    };
    let (_, existing) = s.create_token("minted here", &["metrics:read"]);
    let before = token_count(&s);
    let mut unknown_scope = entry("key-with-an-unknown-scope");
    unknown_scope["scopes"] = json!(["metrics:read", "nope:x"]);
    let mut malformed = entry("malformed");
    malformed["hash"] = json!("sha256:abc");
    let mut sha512 = entry("sha512");
    sha512["hash"] = json!(format!("sha512$${}", "ab".repeat(64)));
    let cases = [
        (
            json!([
                entry("a-legacy-key-0000"),
                entry("another-key-0001"),
                entry("a-legacy-key-0000")
            ]),
            422,
            "tokens[2].hash: duplicate of tokens[0]",
        ),
        (
            json!([
                entry("a-legacy-key-0000"),
                entry("another-key-0001"),
                entry(&existing)
            ]),
            409,
            "tokens[2].hash: a token with this hash exists already",
        ),
        (
            json!([entry("a-legacy-key-0000"), malformed]),
            422,
            "tokens[1].hash: not a SHA-256 (",
        ),
        (
            json!([
                entry("a-legacy-key-0000"),
                entry("b-legacy-key-0000"),
                sha512
            ]),
            422,
            "tokens[2].hash: not a SHA-256 (no \"sha256:\" prefix",
        ),
        (
            json!([entry("a-legacy-key-0000"), unknown_scope]),
            422,
            "tokens[1].scopes: unknown scope \"nope:x\"",
        ),
        (
            json!((0..10_001)
                .map(|i| entry(&format!("key number {i}")))
                .collect::<Vec<_>>()),
            422,
            "tokens must hold 1-10000 tokens, not 10001",
        ),
        (json!([]), 422, "tokens must hold 1-10000 tokens, not 0"),
    ];
    for (tokens, status, message) in cases {
        let (got, v) = import(&s, &s.admin_token, tokens);
        assert_eq!(got, status, "{message}: {v}");
        assert!(
            v["message"].as_str().is_some_and(|m| m.contains(message)),
            "wanted {message:?} in {v}"
        );
        assert_eq!(
            token_count(&s),
            before,
            "nothing imported after {message:?}"
        );
    }
    assert_eq!(s.verify("a-legacy-key-0000", &[])["code"], "NOT_FOUND");

    // tokens:write alone is not enough: an import needs tokens:admin.
    let (_, writer) = s.create_token("writer", &["tokens:write", "metrics:read"]);
    let (status, v) = import(&s, &writer, json!([entry("a-legacy-key-0000")]));
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["missingScopes"], json!(["tokens:admin"]), "{v}");
    // Nor may an admin import a scope it does not hold itself.
    let (_, narrow_admin) = s.create_token("narrow admin", &["tokens:admin", "tokens:write"]);
    let (status, v) = import(&s, &narrow_admin, json!([entry("a-legacy-key-0000")]));
    assert_eq!(status, 403, "{v}");
    assert_eq!(token_count(&s), before + 2);
}

both_backends!(ten_thousand_tokens_import_in_one_request);
fn ten_thousand_tokens_import_in_one_request(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    // A user of its own: an owner holds at most 10 000 tokens, and the admin has one already.
    let owner = s.create_user("bulk", "bulk-password-123", "member");
    let key = |i: usize| format!("bulk-imported-key-{i:05}");
    let tokens: Vec<Value> = (0..10_000)
        .map(|i| {
            json!({ "hash": format!("sha256:{}", hex::encode(sha256(&key(i)))),
                    "name": format!("bulk {i}"), "scopes": ["metrics:read"], "ownerId": owner })
        })
        .collect();
    let body = json!({ "tokens": tokens }).to_string();
    assert!(body.len() > 1 << 20, "over the default body limit");
    let started = Instant::now();
    let r = s
        .admin("POST", IMPORT)
        .header("Content-Type", "application/json")
        .body(body)
        .timeout(std::time::Duration::from_secs(120))
        .send()
        .unwrap();
    let took = started.elapsed();
    let (status, v) = status_json(r);
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["imported"], 10_000);
    eprintln!(
        "imported 10000 tokens on {} in {:.2} s",
        backend.name(),
        took.as_secs_f64()
    );
    for i in [0, 4_999, 9_999] {
        assert_eq!(s.verify(&key(i), &["metrics:read"])["code"], "VALID");
    }
    let audit = s.all_items("/api/v1/audit?action=token.create");
    assert!(audit.len() >= 10_000, "{}", audit.len());
    // Beyond 16 MiB this route answers 413 too.
    let huge = "x".repeat(17 << 20);
    let r = s.admin("POST", IMPORT).body(huge).send().unwrap();
    assert_eq!(r.status(), 413);
}

/// docs/migrating.md, a homegrown table: a SQLite table of hex SHA-256 hashes, exported and
/// posted by contrib/import/sha256_table.py exactly as the guide runs it.
#[test]
fn a_homegrown_table_of_sha256_hashes_moves_with_the_contrib_script() {
    let s = Server::on(Backend::Sqlite).with_metrics_scopes().start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("legacy.db");
    let keys = [
        "sk_live_4f9a1c2e7b3d8f60a5c1",
        "sk_live_9b8c7d6e5f4a3b2c1d0e",
        "sk_live_revoked_000000000",
    ];
    let rows: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            format!(
                "({i}, 'customer {i}', '{}', {})",
                hex::encode(sha256(k)),
                (i == 2) as u8
            )
        })
        .collect();
    sqlite_write(
        &db,
        "CREATE TABLE api_keys (id INTEGER PRIMARY KEY, label TEXT, key_sha256 TEXT, \
         revoked INTEGER)",
    );
    sqlite_write(
        &db,
        &format!("INSERT INTO api_keys VALUES {}", rows.join(", ")),
    );
    let script = workspace_root().join("contrib/import/sha256_table.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(&db)
        .arg("SELECT key_sha256, label, NULL, 'cust_' || id FROM api_keys WHERE NOT revoked ORDER BY id")
        .args(["--scope", "metrics:read"])
        .env("KEYGATE_URL", &s.url)
        .env("KEYGATE_TOKEN", &s.admin_token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("imported 2 keys"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (i, key) in keys[..2].iter().enumerate() {
        let r = s.verify(key, &["metrics:read"]);
        assert_eq!(r["code"], "VALID", "{r}");
        assert_eq!(r["externalId"], format!("cust_{i}"), "{r}");
    }
    assert_eq!(s.verify(keys[2], &[])["code"], "NOT_FOUND");
    // Run again, the batch is refused whole, naming the first key keygate holds already.
    let again = std::process::Command::new("python3")
        .arg(&script)
        .arg(&db)
        .arg("SELECT key_sha256, label FROM api_keys ORDER BY id")
        .args(["--scope", "metrics:read"])
        .env("KEYGATE_URL", &s.url)
        .env("KEYGATE_TOKEN", &s.admin_token)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && stderr.contains("tokens[0].hash"),
        "{stderr}"
    );
    assert_eq!(s.verify(keys[2], &[])["code"], "NOT_FOUND");
}

/// docs/migrating.md, djangorestframework-api-key: its stored hashes are not SHA-256 (3.x keeps
/// `sha512$$<hex>`, 2.x a salted password hash), so a key moves when its holder presents it: the
/// app checks it the old way once and imports the SHA-256 of the key it was shown.
#[test]
fn a_django_api_key_is_captured_on_use_and_its_stored_hash_is_refused() {
    let s = Server::on(Backend::Sqlite).with_metrics_scopes().start();
    // A key as djangorestframework-api-key makes it: an 8-character prefix, a dot, 32 characters.
    let key = "Ab3dEf9h.q1W2e3R4t5Y6u7I8o9P0a1S2d3F4g5H6";
    let stored = format!("sha512$${}", "0f".repeat(64));
    let (status, v) = import(
        &s,
        &s.admin_token,
        json!([{ "hash": stored, "name": "django", "scopes": ["metrics:read"] }]),
    );
    assert_eq!(status, 422, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("tokens[0].hash: not a SHA-256"),
        "{v}"
    );
    let (status, v) = import(
        &s,
        &s.admin_token,
        json!([{ "hash": format!("sha256:{}", hex::encode(sha256(key))), "name": "django",
                 "scopes": ["metrics:read"], "externalId": "Ab3dEf9h" }]),
    );
    assert_eq!(status, 201, "{v}");
    let r = s.verify(key, &["metrics:read"]);
    assert_eq!(r["code"], "VALID", "{r}");
}

/// Unkey's migrateKeys runs on the same service: the key verifies by hash, shows where it came
/// from, and a hash keygate holds already is reported in `failed`, the others imported.
#[test]
fn unkey_migrate_keys_shares_the_import_and_marks_its_origin() {
    let s = Server::on(Backend::Sqlite).with_metrics_scopes().start();
    let (_, minted) = s.create_token("minted", &["metrics:read"]);
    let legacy = "unkey_3ZbXgq7nB4mKc2Vd9Wf1";
    let (status, v) = s.call(
        "POST",
        "/v2/keys.migrateKeys",
        Some(&s.admin_token),
        Some(json!({ "migrationId": "m1", "apiId": "default", "keys": [
            { "hash": STANDARD.encode(sha256(legacy)), "permissions": ["metrics:read"] },
            { "hash": STANDARD.encode(sha256(&minted)) } ] })),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["data"]["failed"],
        json!([STANDARD.encode(sha256(&minted))]),
        "{v}"
    );
    let id = v["data"]["migrated"][0]["keyId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        v["data"]["migrated"][0]["hash"],
        STANDARD.encode(sha256(legacy))
    );
    let (_, view) = s.call(
        "GET",
        &format!("/api/v1/tokens/{id}"),
        Some(&s.admin_token),
        None,
    );
    assert_eq!(view["importedFrom"], "unkey", "{view}");
    assert_eq!(s.verify(legacy, &["metrics:read"])["code"], "VALID");
}
