//! The service's life: first start and its secrets, configuration sources, where data lives,
//! durability across `kill -9`, graceful stop, and the ways a start can fail.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// `keygate serve` in `dir`, as an operator starts it there: no secret and no log filter from
/// the harness, only the variables the test sets; the data in `dir/data`.
fn operator_start(dir: &Path) -> ServerBuilder {
    Server::on(Backend::Sqlite)
        .working_dir(dir)
        .secrets_from_test()
        .default_log_filter()
}

/// The error lines a failed start printed (ignoring log lines).
fn error_lines(output: &str) -> Vec<&str> {
    output.lines().filter(|l| l.starts_with("error:")).collect()
}

/// Lets the output readers catch up before checking that something was *not* printed: stdout
/// and stderr are read by separate threads.
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

fn count_lines(s: &Server, marker: &str) -> usize {
    s.output().lines().filter(|l| l.contains(marker)).count()
}

// ---- first start ----

#[test]
fn first_start_prints_generated_secrets_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let p = operator_start(dir.path()).start();
    let token = p.line_after(SHOWN_TOKEN);
    p.line_after(SHOWN_PASSWORD);
    settle();
    let first = p.output();
    let count = |out: &str, marker: &str| out.lines().filter(|l| l.contains(marker)).count();
    assert_eq!(count(&first, SHOWN_PASSWORD), 1, "{first}");
    assert_eq!(count(&first, SHOWN_TOKEN), 1, "{first}");
    assert!(token.starts_with("kg_") && token.len() == 69, "{token}");
    let (status, v) = status_json(
        p.with_token("GET", "/api/v1/tokens/self", &token)
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["scopes"], json!(["*"]));
    drop(p);

    // Restart on the same data directory: nothing is printed again, the token still works.
    let p = operator_start(dir.path()).start();
    settle();
    let whole = format!("{first}\n{}", p.output());
    assert_eq!(
        count(&whole, SHOWN_PASSWORD),
        1,
        "not printed again:\n{whole}"
    );
    assert_eq!(count(&whole, SHOWN_TOKEN), 1, "not printed again:\n{whole}");
    let (status, v) = status_json(
        p.with_token("GET", "/api/v1/tokens/self", &token)
            .send()
            .unwrap(),
    );
    assert_eq!(
        status, 200,
        "the printed token still works after a restart: {v}"
    );
}

#[test]
fn only_the_secret_not_given_is_generated_and_printed() {
    let dir = tempfile::tempdir().unwrap();
    let p = operator_start(dir.path())
        .env("KEYGATE_ADMIN_PASSWORD", "correct-horse-battery-staple")
        .start();
    let token = p.line_after(SHOWN_TOKEN);
    settle();
    let out = p.output();
    assert!(!out.contains(SHOWN_PASSWORD), "{out}");
    assert!(!out.contains("correct-horse-battery-staple"), "{out}");
    let r = p
        .with_token("GET", "/api/v1/tokens/self", &token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn generated_secrets_are_not_stored_in_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let p = operator_start(dir.path()).start();
    let token = p.line_after(SHOWN_TOKEN);
    let password = p.line_after(SHOWN_PASSWORD);
    assert!(password.len() >= 12, "{password}");
    // Something written after the bootstrap; the files (database, WAL) are read while running.
    let r = p
        .with_token("POST", "/api/v1/tokens", &token)
        .json(&json!({ "name": "n", "scopes": ["tokens:read"] }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    for entry in std::fs::read_dir(dir.path().join("data")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&token), "the token in {}", path.display());
        assert!(
            !text.contains(&password),
            "the password in {}",
            path.display()
        );
    }
    // Nor in any log line.
    settle();
    let out = p.output();
    let leaks: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with(SHOWN_PASSWORD) && !l.starts_with(SHOWN_TOKEN))
        .filter(|l| l.contains(&token) || l.contains(&password))
        .collect();
    assert!(leaks.is_empty(), "secrets in log lines: {leaks:?}");
}

#[test]
fn given_bootstrap_token_is_used_and_never_printed() {
    let s = Server::on(Backend::Sqlite).start();
    settle();
    let out = s.output();
    assert_eq!(count_lines(&s, SHOWN_TOKEN), 0, "{out}");
    assert_eq!(count_lines(&s, SHOWN_PASSWORD), 0, "{out}");
    assert!(
        !out.contains(&s.admin_token),
        "the token is printed:\n{out}"
    );
    assert!(!out.contains("correct-horse-battery-staple"), "{out}");
    let (status, v) = self_of(&s, &s.admin_token);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["scopes"], json!(["*"]));
}

#[test]
fn unusable_bootstrap_token_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let FailedStart {
        status,
        output: out,
        ..
    } = operator_start(dir.path())
        .env("KEYGATE_BOOTSTRAP_TOKEN", "kg_bad")
        .fail();
    assert!(!status.success());
    assert!(out.contains("KEYGATE_BOOTSTRAP_TOKEN"), "{out}");
    assert!(
        !out.contains("kg_bad"),
        "the given secret is not echoed:\n{out}"
    );

    // Nothing half-made: a later start with a good token bootstraps with that token.
    let good = fresh_token();
    let p = operator_start(dir.path())
        .env("KEYGATE_BOOTSTRAP_TOKEN", &good)
        .start();
    let r = p
        .with_token("GET", "/api/v1/tokens/self", &good)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn too_short_admin_password_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let FailedStart {
        status,
        output: out,
        ..
    } = operator_start(dir.path())
        .env("KEYGATE_BOOTSTRAP_TOKEN", &fresh_token())
        .env("KEYGATE_ADMIN_PASSWORD", "short")
        .fail();
    assert!(!status.success());
    assert!(out.contains("KEYGATE_ADMIN_PASSWORD"), "{out}");
}

#[test]
fn foreign_style_bootstrap_token_works() {
    let own = "my-own-bootstrap-secret-1234";
    let s = Server::on(Backend::Sqlite).bootstrap_token(own).start();
    let (status, v) = self_of(&s, own);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["scopes"], json!(["*"]));
    assert!(
        v["id"].as_str().unwrap().starts_with("kg_"),
        "an id of keygate's own format: {v}"
    );
    settle();
    assert!(!s.output().contains(own), "{}", s.output());
}

#[test]
fn missing_bootstrap_token_file_fails_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-file");
    let FailedStart {
        status,
        output: out,
        ..
    } = operator_start(dir.path())
        .env("KEYGATE_BOOTSTRAP_TOKEN_FILE", missing.to_str().unwrap())
        .fail();
    assert!(!status.success());
    assert!(out.contains("KEYGATE_BOOTSTRAP_TOKEN_FILE"), "{out}");
    assert!(
        !out.contains(SHOWN_PASSWORD),
        "nothing bootstrapped:\n{out}"
    );
}

#[test]
fn bootstrap_token_file_works() {
    let dir = tempfile::tempdir().unwrap();
    let token = fresh_token();
    let file = dir.path().join("bootstrap-token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let p = operator_start(dir.path())
        .env("KEYGATE_BOOTSTRAP_TOKEN_FILE", file.to_str().unwrap())
        .start();
    settle();
    assert!(!p.output().contains(SHOWN_TOKEN), "{}", p.output());
    let (status, v) = status_json(
        p.with_token("GET", "/api/v1/tokens/self", &token)
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["scopes"], json!(["*"]));
}

// ---- where data lives ----

#[test]
fn data_dir_holds_keygate_db_and_is_private() {
    let s = Server::on(Backend::Sqlite).start();
    assert!(s.db_path().is_file(), "{} exists", s.db_path().display());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.data_path().join("data"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "mode {:o}", mode & 0o777);
    }
}

#[test]
fn default_data_dir_is_keygate_data_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let token = fresh_token();
    let p = operator_start(dir.path())
        .default_data_dir()
        .env("KEYGATE_BOOTSTRAP_TOKEN", &token)
        .start();
    assert!(dir.path().join("keygate-data").join("keygate.db").is_file());
    let r = p
        .with_token("GET", "/api/v1/tokens/self", &token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn unreachable_postgres_fails_clearly_without_leaking_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let FailedStart {
        status,
        output: out,
        ..
    } = operator_start(dir.path())
        .default_data_dir()
        // Port 1: nothing listens there.
        .args(&["--database-url", "postgres://u:pgsecret@127.0.0.1:1/x"])
        .env("KEYGATE_BOOTSTRAP_TOKEN", &fresh_token())
        .fail();
    assert!(!status.success());
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "one error line:\n{out}");
    assert!(errors[0].contains("PostgreSQL"), "{out}");
    assert!(errors[0].contains("127.0.0.1:1"), "names the server: {out}");
    assert!(!out.contains("pgsecret"), "the password leaked:\n{out}");
}

#[test]
fn mysql_database_url_is_refused_without_leaking_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let FailedStart {
        status,
        output: out,
        ..
    } = operator_start(dir.path())
        .default_data_dir()
        .args(&["--database-url", "mysql://user:hunter2@host/db"])
        .env("KEYGATE_BOOTSTRAP_TOKEN", &fresh_token())
        .fail();
    assert!(!status.success());
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "one error line:\n{out}");
    assert!(errors[0].contains("database-url"), "{out}");
    assert!(errors[0].contains("not supported"), "{out}");
    assert!(!out.contains("hunter2"), "the password leaked:\n{out}");
}

#[test]
fn sqlite_database_url_creates_and_uses_that_file() {
    let other = tempfile::tempdir().unwrap();
    let db = other.path().join("other.db");
    let url = format!("sqlite://{}", db.display());
    let mut s = Server::on(Backend::Sqlite)
        .args(&["--database-url", &url])
        .start();
    assert!(db.is_file(), "{} created", db.display());
    assert!(
        !s.db_path().exists(),
        "the default database is not created when a URL is given"
    );
    let (id, token) = s.create_token("kept", &["tokens:read"]);
    s.restart();
    let v = s.verify(&token, &[]);
    assert_eq!(v["code"], "VALID", "{v}");
    assert_eq!(v["tokenId"], id.as_str());
}

#[test]
fn sqlite_url_in_a_missing_directory_starts_or_names_the_file() {
    let other = tempfile::tempdir().unwrap();
    let db = other.path().join("missing-dir").join("other.db");
    let url = format!("sqlite://{}", db.display());
    let dir = tempfile::tempdir().unwrap();
    let p = operator_start(dir.path())
        .default_data_dir()
        .args(&["--database-url", &url])
        .env("KEYGATE_BOOTSTRAP_TOKEN", &fresh_token())
        .try_start();
    match p {
        Ok(_running) => assert!(db.is_file(), "{} created", db.display()),
        Err(failed) => {
            // A failure must say which file could not be opened.
            let errors = error_lines(&failed.output);
            assert!(
                errors.iter().any(|l| l.contains("missing-dir")),
                "the error names the database file:\n{}",
                failed.output
            );
        }
    }
}

// ---- keygate.toml ----

const TOML: &str = "token-prefix = \"acme\"\n\n[scopes]\n\"metrics:read\" = \"Read metrics\"\n";

/// A temp dir holding `keygate.toml` with `contents`.
fn dir_with_toml(contents: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keygate.toml"), contents).unwrap();
    dir
}

fn create_via(p: &Server, admin: &str, scopes: &[&str]) -> (u16, Value) {
    status_json(
        p.with_token("POST", "/api/v1/tokens", admin)
            .json(&json!({ "name": "from-config", "scopes": scopes }))
            .send()
            .unwrap(),
    )
}

#[test]
fn keygate_toml_in_the_working_directory_is_honoured() {
    let dir = dir_with_toml(TOML);
    let admin = token_with_prefix("acme");
    let p = operator_start(dir.path())
        .default_data_dir()
        .env("KEYGATE_BOOTSTRAP_TOKEN", &admin)
        .start();
    let (status, v) = create_via(&p, &admin, &["metrics:read"]);
    assert_eq!(status, 201, "metrics:read is a known scope: {v}");
    assert!(v["token"].as_str().unwrap().starts_with("acme_"), "{v}");
    assert!(v["id"].as_str().unwrap().starts_with("acme_"), "{v}");

    let (status, scopes) = status_json(
        p.with_token("GET", "/api/v1/scopes", &admin)
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200);
    let found = scopes
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "metrics:read")
        .unwrap_or_else(|| panic!("metrics:read in {scopes}"));
    assert_eq!(found["description"], "Read metrics");
}

#[test]
fn flag_and_environment_win_over_keygate_toml() {
    let dir = dir_with_toml(TOML);
    let admin = fresh_token();
    {
        let p = operator_start(dir.path())
            .default_data_dir()
            .args(&["--token-prefix", "beta"])
            .env("KEYGATE_BOOTSTRAP_TOKEN", &admin)
            .start();
        let (status, v) = create_via(&p, &admin, &["metrics:read"]);
        assert_eq!(status, 201, "{v}");
        assert!(v["token"].as_str().unwrap().starts_with("beta_"), "{v}");
    }
    {
        let p = operator_start(dir.path())
            .default_data_dir()
            .env("KEYGATE_BOOTSTRAP_TOKEN", &admin)
            .env("KEYGATE_TOKEN_PREFIX", "gamma")
            .start();
        let (status, v) = create_via(&p, &admin, &["tokens:read"]);
        assert_eq!(status, 201, "{v}");
        assert!(v["token"].as_str().unwrap().starts_with("gamma_"), "{v}");
    }
}

#[test]
fn keygate_scope_variable_adds_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let admin = fresh_token();
    let p = operator_start(dir.path())
        .env("KEYGATE_BOOTSTRAP_TOKEN", &admin)
        .env(
            "KEYGATE_SCOPE",
            "metrics:read=Read metrics;metrics:write=Write metrics",
        )
        .start();
    let (status, scopes) = status_json(
        p.with_token("GET", "/api/v1/scopes", &admin)
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200);
    for name in ["metrics:read", "metrics:write"] {
        assert!(
            scopes.as_array().unwrap().iter().any(|s| s["name"] == name),
            "{name} in {scopes}"
        );
    }
}

#[test]
fn unknown_key_in_keygate_toml_fails_naming_the_file() {
    let dir = dir_with_toml("token-prefix = \"acme\"\nfrobnicate = true\n");
    let FailedStart {
        status,
        output: out,
        ..
    } = operator_start(dir.path())
        .default_data_dir()
        .env("KEYGATE_BOOTSTRAP_TOKEN", &fresh_token())
        .fail();
    assert!(!status.success());
    assert!(out.contains("keygate.toml"), "{out}");
    assert!(out.contains("frobnicate"), "names the key:\n{out}");
}

// ---- durability ----

/// (action, targetId) of every audit entry, counted.
fn audit_counts(s: &Server) -> HashMap<(String, String), usize> {
    let mut m = HashMap::new();
    for e in s.all_items("/api/v1/audit") {
        let key = (
            e["action"].as_str().unwrap().to_owned(),
            e["targetId"].as_str().unwrap_or("").to_owned(),
        );
        *m.entry(key).or_insert(0) += 1;
    }
    m
}

#[derive(Default)]
struct Expected {
    /// id → (token, code that verify must answer)
    tokens: HashMap<String, (String, &'static str)>,
    /// (action, target) → count
    audit: HashMap<(String, String), usize>,
}

impl Expected {
    fn audit(&mut self, action: &str, target: &str) {
        *self
            .audit
            .entry((action.to_owned(), target.to_owned()))
            .or_insert(0) += 1;
    }

    fn check(&self, s: &Server, when: &str) {
        for (id, (token, code)) in &self.tokens {
            let v = s.verify(token, &[]);
            assert_eq!(v["code"], *code, "{when}: token {id}: {v}");
        }
        let got = audit_counts(s);
        for (key, n) in &self.audit {
            assert_eq!(got.get(key), Some(n), "{when}: audit entries {key:?}");
        }
    }
}

fn create(s: &Server, exp: &mut Expected, name: &str) -> String {
    let (id, token) = s.create_token(name, &["tokens:read"]);
    exp.tokens.insert(id.clone(), (token, "VALID"));
    exp.audit("token.create", &id);
    id
}

fn delete(s: &Server, exp: &mut Expected, id: &str) {
    let r = s
        .admin("DELETE", &format!("/api/v1/tokens/{id}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204, "deleting {id}");
    exp.tokens.get_mut(id).unwrap().1 = "NOT_FOUND";
    exp.audit("token.delete", id);
}

fn set_enabled(s: &Server, exp: &mut Expected, id: &str, enabled: bool) {
    let verb = if enabled { "enable" } else { "disable" };
    let r = s
        .admin("POST", &format!("/api/v1/tokens/{id}/{verb}"))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{verb} {id}: {}", r.status());
    exp.tokens.get_mut(id).unwrap().1 = if enabled { "VALID" } else { "DISABLED" };
    exp.audit(&format!("token.{verb}"), id);
}

#[test]
fn acknowledged_changes_survive_kill_9() {
    let mut s = Server::on(Backend::Sqlite).start();
    let mut exp = Expected::default();
    let ids: Vec<String> = (0..20)
        .map(|i| create(&s, &mut exp, &format!("durable-{i}")))
        .collect();
    for id in &ids[3..6] {
        delete(&s, &mut exp, id);
    }
    set_enabled(&s, &mut exp, &ids[10], false);
    // The last acknowledged change is the disable: kill at once, no chance to flush.
    s.kill9();
    s.restart();
    exp.check(&s, "after the first kill -9");
}

#[test]
fn repeated_kill_9_cycles_lose_nothing() {
    let mut s = Server::on(Backend::Sqlite).start();
    let mut exp = Expected::default();
    let mut ids: Vec<String> = (0..10)
        .map(|i| create(&s, &mut exp, &format!("cycle0-{i}")))
        .collect();
    delete(&s, &mut exp, &ids[0].clone());
    let mut disabled = ids[1].clone();
    set_enabled(&s, &mut exp, &disabled, false);
    s.kill9();
    s.restart();
    exp.check(&s, "cycle 1");

    for cycle in 1..=3 {
        let fresh: Vec<String> = (0..5)
            .map(|i| create(&s, &mut exp, &format!("cycle{cycle}-{i}")))
            .collect();
        // Re-enable what the previous cycle disabled, disable and delete something else.
        set_enabled(&s, &mut exp, &disabled, true);
        disabled = fresh[0].clone();
        set_enabled(&s, &mut exp, &disabled, false);
        delete(&s, &mut exp, &fresh[1]);
        delete(&s, &mut exp, &ids[cycle + 3].clone());
        // A scope change, acknowledged last.
        let target = fresh[2].clone();
        let r = s
            .admin("PUT", &format!("/api/v1/tokens/{target}"))
            .json(&json!({ "name": format!("renamed-{cycle}"), "scopes": ["audit:read"] }))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "PUT {target}");
        exp.audit("token.update", &target);
        ids.extend(fresh);
        s.kill9();
        s.restart();
        exp.check(&s, &format!("cycle {}", cycle + 1));
        let (status, v) = status_json(
            s.admin("GET", &format!("/api/v1/tokens/{target}"))
                .send()
                .unwrap(),
        );
        assert_eq!(status, 200);
        assert_eq!(v["name"], format!("renamed-{cycle}"));
        assert_eq!(v["scopes"], json!(["audit:read"]));
    }
}

#[test]
fn rotation_survives_kill_9() {
    let mut s = Server::on(Backend::Sqlite).start();
    let (id, old) = s.create_token("rot", &["tokens:read"]);
    let (status, v) = status_json(
        s.admin("POST", &format!("/api/v1/tokens/{id}/rotate"))
            .json(&json!({ "gracePeriodSeconds": 3600 }))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 201, "{v}");
    let new = v["token"].as_str().unwrap().to_owned();
    s.kill9();
    s.restart();
    assert_eq!(code_of(&s, &new), "VALID");
    assert_eq!(code_of(&s, &old), "VALID", "still in its grace period");
    let counts = audit_counts(&s);
    assert_eq!(counts.get(&("token.rotate".into(), id)), Some(&1));
}

// ---- graceful stop ----

#[test]
fn sigterm_exits_0_and_writes_pending_last_use_times() {
    let mut s = Server::on(Backend::Sqlite).start();
    let (id_a, token_a) = s.create_token("used-by-auth", &["tokens:read"]);
    let (id_b, token_b) = s.create_token("used-by-verify", &["tokens:read"]);
    let (status, _) = self_of(&s, &token_a);
    assert_eq!(status, 200);
    assert_eq!(code_of(&s, &token_b), "VALID");
    let status = s.stop();
    assert!(status.success(), "SIGTERM ends with status 0, got {status}");
    s.restart();
    for id in [&id_a, &id_b] {
        let (status, v) = status_json(
            s.admin("GET", &format!("/api/v1/tokens/{id}"))
                .send()
                .unwrap(),
        );
        assert_eq!(status, 200);
        assert!(v["lastUsedAt"].is_string(), "lastUsedAt of {id} kept: {v}");
    }
}

#[test]
fn sigint_also_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let token = fresh_token();
    let mut p = operator_start(dir.path())
        .env("KEYGATE_BOOTSTRAP_TOKEN", &token)
        .start();
    let r = p
        .with_token("GET", "/api/v1/tokens/self", &token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let status = p.signal_and_wait("-INT");
    assert!(status.success(), "SIGINT ends with status 0, got {status}");
}

/// The names of the process's HTTP worker threads (Linux: from /proc).
#[cfg(target_os = "linux")]
fn http_worker_threads(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .filter(|n| n.starts_with("keygate-http-"))
        .collect();
    names.sort();
    names
}

#[cfg(target_os = "linux")]
#[test]
fn http_workers_serve_side_by_side_and_stop_together() {
    let dir = tempfile::tempdir().unwrap();
    let token = fresh_token();
    let mut p = operator_start(dir.path())
        .args(&["--http-workers", "3"])
        .env("KEYGATE_BOOTSTRAP_TOKEN", &token)
        .start();
    let pid = p.pid();
    // A thread names itself as it starts, so the names may lag the listening line a little.
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_worker_threads(pid).len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        http_worker_threads(pid),
        ["keygate-http-0", "keygate-http-1", "keygate-http-2"]
    );
    // Many connections at once, each its own client: the kernel hands them to whichever worker
    // accepts, and every one is answered.
    let url = p.url.clone();
    let answered: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..24)
            .map(|_| {
                let (url, token) = (&url, &token);
                scope.spawn(move || {
                    let client = reqwest::blocking::Client::new();
                    let r = client
                        .get(format!("{url}/api/v1/tokens/self"))
                        .header("Authorization", format!("Bearer {token}"))
                        .send()
                        .unwrap();
                    r.status().as_u16()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(answered.iter().all(|&s| s == 200), "{answered:?}");
    let status = p.signal_and_wait("-TERM");
    assert!(status.success(), "SIGTERM ends with status 0, got {status}");
}

#[test]
fn last_use_resolution_under_a_second_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let FailedStart {
        status,
        output: out,
        ..
    } = operator_start(dir.path())
        .args(&["--last-use-resolution", "500ms"])
        .fail();
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(
        out.contains("--last-use-resolution must be at least one second"),
        "{out}"
    );
}

#[test]
fn zero_http_workers_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let FailedStart {
        status,
        output: out,
        ..
    } = operator_start(dir.path())
        .args(&["--http-workers", "0"])
        .fail();
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("--http-workers must be at least 1"), "{out}");
}

#[test]
fn sigterm_right_after_the_listening_line_stops_cleanly() {
    // "keygate listening on" is what a supervisor waits for; from then on SIGTERM must be
    // a graceful stop, not the default action of the signal.
    let dir = tempfile::tempdir().unwrap();
    let mut p = operator_start(dir.path())
        .env("KEYGATE_BOOTSTRAP_TOKEN", &fresh_token())
        .start();
    let status = p.signal_and_wait("-TERM");
    assert!(
        status.success(),
        "SIGTERM just after the listening line ends with status 0, got {status}"
    );
}

// ---- failing starts ----

#[test]
fn port_in_use_fails_saying_it_cannot_listen() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let FailedStart {
        status,
        output: out,
        ..
    } = operator_start(dir.path())
        .listen(&addr)
        .env("KEYGATE_BOOTSTRAP_TOKEN", &fresh_token())
        .fail();
    assert!(!status.success());
    assert!(out.contains("cannot listen"), "{out}");
    assert!(out.contains(&addr), "names the address:\n{out}");
    drop(taken);
}

#[test]
fn port_in_use_fails_before_consuming_the_first_start() {
    // A first start that cannot listen must not bootstrap and print the one-time secrets
    // into the output of a failed start: the next, successful start prints nothing and the
    // generated admin token is lost (e.g. under a supervisor that restarts until the port
    // is free).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let FailedStart {
        status,
        output: out,
        ..
    } = operator_start(dir.path()).listen(&addr).fail();
    drop(taken);
    assert!(!status.success());
    assert!(out.contains("cannot listen"), "{out}");
    assert!(
        !out.contains(SHOWN_TOKEN) && !out.contains(SHOWN_PASSWORD),
        "the failed start bootstrapped and printed the one-time secrets:\n{out}"
    );

    let p = operator_start(dir.path()).start();
    let token = p.line_after(SHOWN_TOKEN);
    let r = p
        .with_token("GET", "/api/v1/tokens/self", &token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}
