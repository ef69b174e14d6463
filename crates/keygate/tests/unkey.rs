//! Unkey's key API (`POST /v2/keys.*`, `POST /v2/apis.listKeys`) served by keygate: Unkey's own
//! clients run unmodified (unkey-py 3.2.2 through the whole life of keys, @unkey/api 2.5.1
//! through a create and verify), then raw HTTP for what the clients never send: refused fields,
//! which must be named, and the borders between tenants.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{json, Value};

const SCOPES: [&str; 4] = [
    "--scope",
    "documents:read=Read documents",
    "--scope",
    "documents:write=Write documents",
];

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

/// The Python of the venv `target/unkey-py` holding the pinned unkey-py (`.ci/run` makes it
/// before the tests).
fn unkey_python() -> Result<PathBuf, String> {
    requirements_venv(
        "unkey-py",
        &tests_dir().join("unkey-py/requirements.txt"),
        &[("unkey-py", "unkey.py")],
    )
}

/// `target/unkey-js`: the Node test's package, lock file and script, with `npm ci` run there
/// when its `node_modules` lacks the pinned @unkey/api (`.ci/run` does it before the tests).
fn unkey_js() -> Result<PathBuf, String> {
    let source = tests_dir().join("unkey-js");
    let dir = workspace_root().join("target/unkey-js");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    for f in ["package.json", "package-lock.json", "flow.mjs"] {
        std::fs::copy(source.join(f), dir.join(f)).map_err(|e| format!("copying {f}: {e}"))?;
    }
    let wanted: Value =
        serde_json::from_slice(&std::fs::read(source.join("package.json")).unwrap()).unwrap();
    let version = wanted["dependencies"]["@unkey/api"]
        .as_str()
        .unwrap()
        .to_owned();
    let installed = || {
        std::fs::read(dir.join("node_modules/@unkey/api/package.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|p| p["version"] == version.as_str())
    };
    if !installed() {
        if !installed_program("node") || !installed_program("npm") {
            return Err("node and npm are not installed".into());
        }
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
            .current_dir(&dir)
            .output()
            .map_err(|e| format!("npm ci: {e}"))?;
        if !out.status.success() || !installed() {
            return Err(format!(
                "npm ci in {}: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(dir)
}

fn installed_program(p: &str) -> bool {
    installed(p)
}

/// Runs a client's script against `s`; its stdout, or the test fails with everything seen.
fn run_client(s: &Server, mut cmd: Command, done: &str) -> String {
    let out = cmd
        .env("KEYGATE_URL", &s.url)
        .env("KEYGATE_TOKEN", &s.admin_token)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("running the client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(done),
        "the client failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server\n{}",
        last_lines(&s.output(), 40)
    );
    stdout.into_owned()
}

#[test]
fn unkey_py_runs_the_whole_life_of_a_key() {
    let python = match unkey_python() {
        Ok(p) => p,
        Err(e) => {
            skip_outside_ci("unkey_py_runs_the_whole_life_of_a_key", &e);
            return;
        }
    };
    let s = Server::on(Backend::Sqlite).args(&SCOPES).start();
    let mut cmd = Command::new(python);
    cmd.arg(tests_dir().join("unkey-py/flow.py"));
    run_client(&s, cmd, "unkey-py: all steps passed");
    // What the client did is in keygate's audit log, as on every surface.
    let (_, v) = status_json(
        s.admin("GET", "/api/v1/audit?action=token.rotate")
            .send()
            .unwrap(),
    );
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1), "{v}");
    // Its verifications are counted in keygate's metrics, by keygate's codes.
    let metrics = metrics_text(&s);
    for outcome in [
        "valid",
        "usageExceeded",
        "rateLimited",
        "insufficientScope",
        "notFound",
    ] {
        let series = format!("keygate_verifications_total{{outcome=\"{outcome}\"}}");
        assert!(
            metric(&metrics, &series).is_some_and(|n| n > 0.0),
            "{series} counted"
        );
    }
}

#[test]
fn unkey_js_creates_and_verifies_a_key() {
    let dir = match unkey_js() {
        Ok(d) => d,
        Err(e) => {
            skip_outside_ci("unkey_js_creates_and_verifies_a_key", &e);
            return;
        }
    };
    let s = Server::on(Backend::Sqlite).args(&SCOPES).start();
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("flow.mjs")).current_dir(&dir);
    run_client(&s, cmd, "@unkey/api: all steps passed");
}

fn unkey(s: &Server, route: &str, token: &str, body: Value) -> (u16, Value) {
    s.call("POST", &format!("/v2/{route}"), Some(token), Some(body))
}

/// Unkey's error body, with the status, the `type` and a request id; returns `error`.
fn unkey_error(reply: (u16, Value), status: u16) -> Value {
    let (got, v) = reply;
    assert_eq!(got, status, "{v}");
    assert!(
        v["meta"]["requestId"]
            .as_str()
            .is_some_and(|r| r.starts_with("req_")),
        "{v}"
    );
    assert_eq!(v["error"]["status"], status, "{v}");
    assert!(
        v["error"]["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("https://unkey.com/docs/errors/")),
        "{v}"
    );
    v["error"].clone()
}

/// A 400 whose one validation error is at `body.FIELD` and whose text names it.
fn assert_refused(reply: (u16, Value), field: &str) {
    let error = unkey_error(reply, 400);
    assert_eq!(
        error["errors"][0]["location"],
        format!("body.{field}"),
        "{error}"
    );
    let detail = error["detail"].as_str().unwrap();
    let last = field.rsplit('.').next().unwrap();
    assert!(detail.contains(last), "the refusal names {field}: {detail}");
}

fn create_key(s: &Server, token: &str, body: Value) -> (String, String) {
    let (status, v) = unkey(s, "keys.createKey", token, body);
    assert_eq!(status, 200, "{v}");
    (
        v["data"]["keyId"].as_str().unwrap().to_owned(),
        v["data"]["key"].as_str().unwrap().to_owned(),
    )
}

both_backends!(what_keygate_does_not_do_is_refused_by_name);
fn what_keygate_does_not_do_is_refused_by_name(backend: Backend) {
    let s = Server::on(backend).args(&SCOPES).start();
    let root = s.admin_token.clone();
    let (key_id, key) = create_key(&s, &root, json!({ "apiId": "default" }));
    let refused = [
        (
            "keys.createKey",
            json!({ "apiId": "default", "roles": ["admin"] }),
            "roles",
        ),
        (
            "keys.createKey",
            json!({ "apiId": "default", "recoverable": true }),
            "recoverable",
        ),
        (
            "keys.createKey",
            json!({ "apiId": "default", "prefix": "sk" }),
            "prefix",
        ),
        (
            "keys.createKey",
            json!({ "apiId": "default", "byteLength": 64 }),
            "byteLength",
        ),
        (
            "keys.createKey",
            json!({ "apiId": "default", "color": "red" }),
            "color",
        ),
        (
            "keys.createKey",
            json!({ "apiId": "default", "permissions": ["nope:x"] }),
            "permissions",
        ),
        (
            "keys.createKey",
            json!({ "apiId": "default", "ratelimits": [{ "name": "a", "limit": 0, "duration": 1000 }] }),
            "ratelimits[0].limit",
        ),
        (
            "keys.createKey",
            json!({ "apiId": "default", "ratelimits": [{ "name": "a", "limit": 1, "duration": 5 }] }),
            "ratelimits[0].duration",
        ),
        (
            "keys.createKey",
            json!({ "apiId": "default", "expires": 1000 }),
            "expires",
        ),
        (
            "keys.createKey",
            json!({ "apiId": "default", "meta": [1] }),
            "meta",
        ),
        (
            "keys.getKey",
            json!({ "keyId": key_id, "decrypt": true }),
            "decrypt",
        ),
        (
            "apis.listKeys",
            json!({ "apiId": "default", "decrypt": true }),
            "decrypt",
        ),
        (
            "keys.updateKey",
            json!({ "keyId": key_id, "roles": ["admin"] }),
            "roles",
        ),
        (
            "keys.verifyKey",
            json!({ "key": key, "tags": ["a"] }),
            "tags",
        ),
        (
            "keys.verifyKey",
            json!({ "key": key, "ratelimits": [{ "name": "a", "limit": 1, "duration": 1000 }] }),
            "ratelimits[0].limit",
        ),
        (
            "keys.verifyKey",
            json!({ "key": key, "permissions": "a AND (" }),
            "permissions",
        ),
        (
            "keys.migrateKeys",
            json!({ "migrationId": "m", "apiId": "default", "keys": [{ "hash": "abc" }] }),
            "keys[0].hash",
        ),
        (
            "keys.migrateKeys",
            json!({ "migrationId": "m", "apiId": "default",
                    "keys": [{ "hash": { "value": "x", "variant": "bcrypt" } }] }),
            "keys[0].hash.variant",
        ),
        (
            "keys.migrateKeys",
            json!({ "migrationId": "", "apiId": "default",
                    "keys": [{ "hash": "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=" }] }),
            "migrationId",
        ),
        (
            "keys.updateCredits",
            json!({ "keyId": key_id, "operation": "increment" }),
            "value",
        ),
    ];
    for (route, body, field) in refused {
        assert_refused(unkey(&s, route, &root, body.clone()), field);
    }
    // The clients' defaults for those fields are what keygate does anyway: accepted.
    create_key(
        &s,
        &root,
        json!({ "apiId": "default", "byteLength": 16, "enabled": true, "recoverable": false,
                "prefix": "kg", "roles": [] }),
    );
    // A migration refused in part changes nothing.
    let (status, _) = unkey(
        &s,
        "keys.migrateKeys",
        &root,
        json!({ "migrationId": "m", "apiId": "default", "keys": [
            { "hash": "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=" }, { "hash": "abc" } ] }),
    );
    assert_eq!(status, 400);
    let (_, v) = unkey(&s, "apis.listKeys", &root, json!({ "apiId": "default" }));
    assert_eq!(v["data"].as_array().unwrap().len(), 3, "{v}");
}

both_backends!(another_tenants_api_and_keys_are_not_found);
fn another_tenants_api_and_keys_are_not_found(backend: Backend) {
    let s = Server::on(backend).args(&SCOPES).start();
    let root = s.admin_token.clone();
    let (status, v) = status_json(
        s.admin("POST", "/api/v1/tenants")
            .json(&json!({ "name": "acme" }))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 201, "{v}");
    let acme = v["adminToken"].as_str().unwrap().to_owned();
    let (acme_key_id, acme_key) = create_key(
        &s,
        &acme,
        json!({ "apiId": "acme", "credits": { "remaining": 1 },
                "ratelimits": [{ "name": "all", "limit": 1, "duration": 60000, "autoApply": true }] }),
    );

    for (route, body) in [
        ("keys.createKey", json!({ "apiId": "acme" })),
        ("apis.listKeys", json!({ "apiId": "acme" })),
        (
            "keys.migrateKeys",
            json!({ "migrationId": "m", "apiId": "acme",
                                     "keys": [{ "hash": "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=" }] }),
        ),
        ("keys.getKey", json!({ "keyId": acme_key_id })),
        (
            "keys.updateKey",
            json!({ "keyId": acme_key_id, "enabled": false }),
        ),
        ("keys.deleteKey", json!({ "keyId": acme_key_id })),
        (
            "keys.rerollKey",
            json!({ "keyId": acme_key_id, "expiration": 0 }),
        ),
        (
            "keys.updateCredits",
            json!({ "keyId": acme_key_id, "operation": "set", "value": 1 }),
        ),
        (
            "keys.addPermissions",
            json!({ "keyId": acme_key_id, "permissions": ["documents:read"] }),
        ),
        ("keys.whoami", json!({ "key": acme_key })),
    ] {
        let error = unkey_error(unkey(&s, route, &root, body), 404);
        assert!(error["title"] == "Not Found", "{route}: {error}");
    }
    // Verification answers 200, and another tenant's key does not exist for this root key;
    // asking spends none of its credits or rate limit.
    for _ in 0..3 {
        let (status, v) = unkey(&s, "keys.verifyKey", &root, json!({ "key": acme_key }));
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["data"], json!({ "valid": false, "code": "NOT_FOUND" }));
    }
    // Its own tenant's root key sees it, with its one credit and one use still there.
    let (_, v) = unkey(&s, "keys.verifyKey", &acme, json!({ "key": acme_key }));
    assert_eq!(v["data"]["code"], "VALID", "{v}");
    assert_eq!(v["data"]["keyId"], acme_key_id.as_str(), "{v}");
    assert_eq!(v["data"]["credits"], 0, "{v}");
}

both_backends!(root_keys_need_keygate_scopes_and_errors_keep_unkeys_shape);
fn root_keys_need_keygate_scopes_and_errors_keep_unkeys_shape(backend: Backend) {
    let s = Server::on(backend).args(&SCOPES).start();
    let (_, reader) = s.create_token("reader", &["tokens:read"]);
    let (status, v) = s.call(
        "POST",
        "/v2/keys.createKey",
        None,
        Some(json!({ "apiId": "default" })),
    );
    assert_eq!(unkey_error((status, v), 401)["title"], "Unauthorized");
    let error = unkey_error(
        unkey(&s, "keys.createKey", &reader, json!({ "apiId": "default" })),
        403,
    );
    assert!(
        error["detail"].as_str().unwrap().contains("tokens:write"),
        "{error}"
    );
    // A writer may not hand out a scope it lacks (no escalation), as natively.
    let (_, writer) = s.create_token("writer", &["tokens:write"]);
    unkey_error(
        unkey(
            &s,
            "keys.createKey",
            &writer,
            json!({ "apiId": "default", "permissions": ["documents:read"] }),
        ),
        403,
    );
    // A verification of a malformed or unknown key is NOT_FOUND, never an error.
    for key in [
        "short",
        "kg_not_a_real_token_at_all_0000000000000000000000000000000000000",
    ] {
        let (status, v) = unkey(&s, "keys.verifyKey", &reader, json!({ "key": key }));
        assert_eq!(
            (status, &v["data"]["code"]),
            (200, &json!("NOT_FOUND")),
            "{v}"
        );
    }
}

both_backends!(the_surface_can_be_switched_off);
fn the_surface_can_be_switched_off(backend: Backend) {
    let s = Server::on(backend).args(&["--compat", "instana"]).start();
    let root = s.admin_token.clone();
    let (status, _) = unkey(&s, "keys.createKey", &root, json!({ "apiId": "default" }));
    assert_eq!(status, 404);
}

both_backends!(migration_listing_by_holder_and_reroll_without_overlap);
fn migration_listing_by_holder_and_reroll_without_overlap(backend: Backend) {
    let s = Server::on(backend).args(&SCOPES).start();
    let root = s.admin_token.clone();
    // The object form of a hash names its encoding: here hex.
    let legacy = "legacy-key-from-elsewhere-0001";
    let other = sha256_hex("another-legacy-key-0002");
    let (status, v) = unkey(
        &s,
        "keys.migrateKeys",
        &root,
        json!({ "migrationId": "old-system", "apiId": "default", "keys": [
            { "hash": { "value": sha256_hex(legacy), "variant": "sha256_hex" },
              "permissions": ["documents:read"], "enabled": false },
            { "hash": { "value": other, "variant": "sha256_hex" } } ] }),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["failed"], json!([]), "{v}");
    let key_id = v["data"]["migrated"][0]["keyId"]
        .as_str()
        .unwrap()
        .to_owned();
    // Imported disabled, as asked; enabled, it verifies with its permissions.
    let (_, v) = unkey(&s, "keys.verifyKey", &root, json!({ "key": legacy }));
    assert_eq!(v["data"]["code"], "DISABLED", "{v}");
    unkey(
        &s,
        "keys.updateKey",
        &root,
        json!({ "keyId": key_id, "enabled": true }),
    );
    let (_, v) = unkey(
        &s,
        "keys.verifyKey",
        &root,
        json!({ "key": legacy, "permissions": "documents:read" }),
    );
    assert_eq!(v["data"]["code"], "VALID", "{v}");
    assert_eq!(v["data"]["keyId"], key_id.as_str(), "{v}");
    // The audit log says where the key came from, and so does the token's view.
    let (_, audit) = status_json(
        s.admin("GET", &format!("/api/v1/audit?targetId={key_id}"))
            .send()
            .unwrap(),
    );
    let created = audit["items"]
        .as_array()
        .and_then(|items| items.iter().find(|a| a["action"] == "token.create"))
        .unwrap_or_else(|| panic!("no token.create in {audit}"));
    let details = &created["details"];
    assert_eq!(details["importedFrom"], "unkey", "{audit}");
    assert_eq!(details["migrationId"], "old-system", "{audit}");
    let (_, view) = s.call(
        "GET",
        &format!("/api/v1/tokens/{key_id}"),
        Some(&root),
        None,
    );
    assert_eq!(view["importedFrom"], "unkey", "{view}");

    // listKeys by externalId: the keys of that holder only.
    for holder in ["cust_a", "cust_a", "cust_b"] {
        create_key(
            &s,
            &root,
            json!({ "apiId": "default", "externalId": holder }),
        );
    }
    let (_, v) = unkey(
        &s,
        "apis.listKeys",
        &root,
        json!({ "apiId": "default", "externalId": "cust_a" }),
    );
    let holders: Vec<&Value> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["identity"]["externalId"])
        .collect();
    assert_eq!(holders, [&json!("cust_a"), &json!("cust_a")], "{v}");

    // A reroll with no overlap ends the old key at once.
    let (_, key) = create_key(&s, &root, json!({ "apiId": "default" }));
    let old_id = key.split('_').take(2).collect::<Vec<_>>().join("_");
    let (status, v) = unkey(
        &s,
        "keys.rerollKey",
        &root,
        json!({ "keyId": old_id, "expiration": 0 }),
    );
    assert_eq!(status, 200, "{v}");
    let new_key = v["data"]["key"].as_str().unwrap().to_owned();
    let (_, v) = unkey(&s, "keys.verifyKey", &root, json!({ "key": key }));
    assert_eq!(v["data"]["code"], "EXPIRED", "{v}");
    let (_, v) = unkey(&s, "keys.verifyKey", &root, json!({ "key": new_key }));
    assert_eq!(v["data"]["code"], "VALID", "{v}");
}

fn sha256_hex(text: &str) -> String {
    keygate_core::TokenHash::of(text)
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The error bodies Unkey's clients parse, held to snapshots: each status the surface answers.
#[test]
fn error_bodies_keep_unkeys_shape() {
    let s = Server::on(Backend::Sqlite).args(&SCOPES).start();
    let root = s.admin_token.clone();
    let (_, reader) = s.create_token("reader", &["tokens:read"]);
    let (_, key) = create_key(
        &s,
        &root,
        json!({ "apiId": "default",
                "ratelimits": [{ "name": "burst", "limit": 5, "duration": 1000 }] }),
    );
    let cases = [
        (
            "unkey_400_roles",
            Some(&root),
            "keys.createKey",
            json!({ "apiId": "default", "roles": ["a"] }),
        ),
        (
            "unkey_401_without_a_root_key",
            None,
            "keys.createKey",
            json!({ "apiId": "default" }),
        ),
        (
            "unkey_403_without_tokens_write",
            Some(&reader),
            "keys.createKey",
            json!({ "apiId": "default" }),
        ),
        (
            "unkey_404_unknown_key",
            Some(&root),
            "keys.getKey",
            json!({ "keyId": "kg_0000000000000000" }),
        ),
        (
            "unkey_404_other_api",
            Some(&root),
            "apis.listKeys",
            json!({ "apiId": "acme" }),
        ),
        (
            "unkey_412_unknown_ratelimit",
            Some(&root),
            "keys.verifyKey",
            json!({ "key": key, "ratelimits": [{ "name": "nonexistent" }] }),
        ),
    ];
    for (name, token, route, body) in cases {
        let (status, v) = s.call(
            "POST",
            &format!("/v2/{route}"),
            token.map(String::as_str),
            Some(body),
        );
        assert_eq!(
            Some(status),
            v["error"]["status"].as_u64().map(|s| s as u16),
            "{v}"
        );
        assert_error_snapshot!(name, v);
    }
}
