//! The service's life: first start and its secrets, configuration sources, where data lives,
//! durability across `kill -9`, graceful stop, and the ways a start can fail.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const PASSWORD_LINE: &str = "Admin password (shown once): ";
const TOKEN_LINE: &str = "Admin token (shown once): ";

/// A `keygate serve` started by the test itself (for what the harness does not cover: its own
/// working directory, no `--data-dir`, a start that must fail).
struct Proc {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    /// `http://…` once listening.
    url: Option<String>,
    /// The exit status, if the process ended before it listened.
    exited: Option<ExitStatus>,
    http: reqwest::blocking::Client,
}

impl Proc {
    /// Runs `keygate serve ARGS` in `cwd` with only `env` among KEYGATE_* variables, and waits
    /// until it listens or exits.
    fn start(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, _) in std::env::vars() {
            if k.starts_with("KEYGATE_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("starting keygate");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let mut readers = Vec::new();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            let tx = tx.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addr) = line.split("keygate listening on ").nth(1) {
                        let _ = tx.send(addr.trim().to_owned());
                    }
                    lines.lock().unwrap().push(line);
                }
            }));
        }
        let mut p = Proc {
            child: None,
            lines,
            url: None,
            exited: None,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(url) = rx.recv_timeout(Duration::from_millis(50)) {
                p.url = Some(url);
                p.child = Some(child);
                return p;
            }
            if let Some(status) = child.try_wait().unwrap() {
                // Let the readers collect everything the process wrote.
                for r in readers {
                    let _ = r.join();
                }
                p.exited = Some(status);
                return p;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "keygate neither listened nor exited; its output:\n{}",
                    p.output()
                );
            }
        }
    }

    /// Starts a process that must fail; returns its output.
    fn must_fail(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String) {
        let p = Proc::start(cwd, args, env);
        assert!(
            p.url.is_none(),
            "keygate should have refused to start; its output:\n{}",
            p.output()
        );
        (p.exited.unwrap(), p.output())
    }

    fn must_listen(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let p = Proc::start(cwd, args, env);
        assert!(
            p.url.is_some(),
            "keygate did not start ({:?}); its output:\n{}",
            p.exited,
            p.output()
        );
        p
    }

    fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// The rest of the first line containing `marker`, waiting for it up to 10 s.
    fn line_after(&self, marker: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find_map(|l| l.split(marker).nth(1).map(|s| s.trim().to_owned()));
            if let Some(v) = found {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no line with {marker:?}; output:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn req(&self, method: &str, path: &str, token: &str) -> reqwest::blocking::RequestBuilder {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        self.http
            .request(m, format!("{}{path}", self.url.as_ref().unwrap()))
            .header("Authorization", format!("Bearer {token}"))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
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

fn self_of(s: &Server, token: &str) -> (u16, Value) {
    status_json(
        s.with_token("GET", "/api/v1/tokens/self", token)
            .send()
            .unwrap(),
    )
}

fn code_of(s: &Server, token: &str) -> String {
    s.verify(token, &[])["code"].as_str().unwrap().to_owned()
}

/// A native token of another prefix, as `keygate gen-token --token-prefix P` prints.
fn token_with_prefix(p: &str) -> String {
    let prefix = keygate_core::TokenPrefix::parse(p).unwrap();
    keygate_core::PlainToken::mint(&prefix)
        .1
        .expose()
        .to_owned()
}

// ---- first start ----

// The harness's `generated_secrets()` reads the token line as soon as the "listening" line
// (stderr) arrives, racing the reader of stdout, where the secrets are printed; these tests
// start the process themselves and wait for the lines.

const FIRST_START: &[&str] = &["--listen", "127.0.0.1:0", "--data-dir", "data"];

#[test]
fn first_start_prints_generated_secrets_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let p = Proc::must_listen(dir.path(), FIRST_START, &[]);
    let token = p.line_after(TOKEN_LINE);
    p.line_after(PASSWORD_LINE);
    settle();
    let first = p.output();
    let count = |out: &str, marker: &str| out.lines().filter(|l| l.contains(marker)).count();
    assert_eq!(count(&first, PASSWORD_LINE), 1, "{first}");
    assert_eq!(count(&first, TOKEN_LINE), 1, "{first}");
    assert!(token.starts_with("kg_") && token.len() == 69, "{token}");
    let (status, v) = status_json(p.req("GET", "/api/v1/tokens/self", &token).send().unwrap());
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["scopes"], json!(["*"]));
    drop(p);

    // Restart on the same data directory: nothing is printed again, the token still works.
    let p = Proc::must_listen(dir.path(), FIRST_START, &[]);
    settle();
    let whole = format!("{first}\n{}", p.output());
    assert_eq!(
        count(&whole, PASSWORD_LINE),
        1,
        "not printed again:\n{whole}"
    );
    assert_eq!(count(&whole, TOKEN_LINE), 1, "not printed again:\n{whole}");
    let (status, v) = status_json(p.req("GET", "/api/v1/tokens/self", &token).send().unwrap());
    assert_eq!(
        status, 200,
        "the printed token still works after a restart: {v}"
    );
}

#[test]
fn only_the_secret_not_given_is_generated_and_printed() {
    let dir = tempfile::tempdir().unwrap();
    let p = Proc::must_listen(
        dir.path(),
        FIRST_START,
        &[("KEYGATE_ADMIN_PASSWORD", "correct-horse-battery-staple")],
    );
    let token = p.line_after(TOKEN_LINE);
    settle();
    let out = p.output();
    assert!(!out.contains(PASSWORD_LINE), "{out}");
    assert!(!out.contains("correct-horse-battery-staple"), "{out}");
    let r = p.req("GET", "/api/v1/tokens/self", &token).send().unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn generated_secrets_are_not_stored_in_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let p = Proc::must_listen(dir.path(), FIRST_START, &[]);
    let token = p.line_after(TOKEN_LINE);
    let password = p.line_after(PASSWORD_LINE);
    assert!(password.len() >= 12, "{password}");
    // Something written after the bootstrap; the files (database, WAL) are read while running.
    let r = p
        .req("POST", "/api/v1/tokens", &token)
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
        .filter(|l| !l.starts_with(PASSWORD_LINE) && !l.starts_with(TOKEN_LINE))
        .filter(|l| l.contains(&token) || l.contains(&password))
        .collect();
    assert!(leaks.is_empty(), "secrets in log lines: {leaks:?}");
}

#[test]
fn given_bootstrap_token_is_used_and_never_printed() {
    let s = Server::start();
    settle();
    let out = s.output();
    assert_eq!(count_lines(&s, TOKEN_LINE), 0, "{out}");
    assert_eq!(count_lines(&s, PASSWORD_LINE), 0, "{out}");
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
    let (status, out) = Proc::must_fail(
        dir.path(),
        &["--listen", "127.0.0.1:0", "--data-dir", "data"],
        &[("KEYGATE_BOOTSTRAP_TOKEN", "kg_bad")],
    );
    assert!(!status.success());
    assert!(out.contains("KEYGATE_BOOTSTRAP_TOKEN"), "{out}");
    assert!(
        !out.contains("kg_bad"),
        "the given secret is not echoed:\n{out}"
    );

    // Nothing half-made: a later start with a good token bootstraps with that token.
    let good = fresh_token();
    let p = Proc::must_listen(
        dir.path(),
        &["--listen", "127.0.0.1:0", "--data-dir", "data"],
        &[("KEYGATE_BOOTSTRAP_TOKEN", &good)],
    );
    let r = p.req("GET", "/api/v1/tokens/self", &good).send().unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn too_short_admin_password_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (status, out) = Proc::must_fail(
        dir.path(),
        &["--listen", "127.0.0.1:0", "--data-dir", "data"],
        &[
            ("KEYGATE_BOOTSTRAP_TOKEN", &fresh_token()),
            ("KEYGATE_ADMIN_PASSWORD", "short"),
        ],
    );
    assert!(!status.success());
    assert!(out.contains("KEYGATE_ADMIN_PASSWORD"), "{out}");
}

#[test]
fn foreign_style_bootstrap_token_works() {
    let own = "my-own-bootstrap-secret-1234";
    let s = Server::builder()
        .env("KEYGATE_BOOTSTRAP_TOKEN", own)
        .start();
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
    let (status, out) = Proc::must_fail(
        dir.path(),
        FIRST_START,
        &[("KEYGATE_BOOTSTRAP_TOKEN_FILE", missing.to_str().unwrap())],
    );
    assert!(!status.success());
    assert!(out.contains("KEYGATE_BOOTSTRAP_TOKEN_FILE"), "{out}");
    assert!(!out.contains(PASSWORD_LINE), "nothing bootstrapped:\n{out}");
}

#[test]
fn bootstrap_token_file_works() {
    let dir = tempfile::tempdir().unwrap();
    let token = fresh_token();
    let file = dir.path().join("bootstrap-token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let p = Proc::must_listen(
        dir.path(),
        &["--listen", "127.0.0.1:0", "--data-dir", "data"],
        &[("KEYGATE_BOOTSTRAP_TOKEN_FILE", file.to_str().unwrap())],
    );
    settle();
    assert!(!p.output().contains(TOKEN_LINE), "{}", p.output());
    let (status, v) = status_json(p.req("GET", "/api/v1/tokens/self", &token).send().unwrap());
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["scopes"], json!(["*"]));
}

// ---- where data lives ----

#[test]
fn data_dir_holds_keygate_db_and_is_private() {
    let s = Server::start();
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
    let p = Proc::must_listen(
        dir.path(),
        &["--listen", "127.0.0.1:0"],
        &[("KEYGATE_BOOTSTRAP_TOKEN", &token)],
    );
    assert!(dir.path().join("keygate-data").join("keygate.db").is_file());
    let r = p.req("GET", "/api/v1/tokens/self", &token).send().unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn unreachable_postgres_fails_clearly_without_leaking_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let (status, out) = Proc::must_fail(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            // Port 1: nothing listens there.
            "postgres://u:pgsecret@127.0.0.1:1/x",
        ],
        &[("KEYGATE_BOOTSTRAP_TOKEN", &fresh_token())],
    );
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
    let (status, out) = Proc::must_fail(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "mysql://user:hunter2@host/db",
        ],
        &[("KEYGATE_BOOTSTRAP_TOKEN", &fresh_token())],
    );
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
    let mut s = Server::builder().args(&["--database-url", &url]).start();
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
    let p = Proc::start(
        dir.path(),
        &["--listen", "127.0.0.1:0", "--database-url", &url],
        &[("KEYGATE_BOOTSTRAP_TOKEN", &fresh_token())],
    );
    if p.url.is_some() {
        assert!(db.is_file(), "{} created", db.display());
    } else {
        // A failure must say which file could not be opened.
        let out = p.output();
        let errors = error_lines(&out);
        assert!(
            errors.iter().any(|l| l.contains("missing-dir")),
            "the error names the database file:\n{out}"
        );
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

fn create_via(p: &Proc, admin: &str, scopes: &[&str]) -> (u16, Value) {
    status_json(
        p.req("POST", "/api/v1/tokens", admin)
            .json(&json!({ "name": "from-config", "scopes": scopes }))
            .send()
            .unwrap(),
    )
}

#[test]
fn keygate_toml_in_the_working_directory_is_honoured() {
    let dir = dir_with_toml(TOML);
    let admin = token_with_prefix("acme");
    let p = Proc::must_listen(
        dir.path(),
        &["--listen", "127.0.0.1:0"],
        &[("KEYGATE_BOOTSTRAP_TOKEN", &admin)],
    );
    let (status, v) = create_via(&p, &admin, &["metrics:read"]);
    assert_eq!(status, 201, "metrics:read is a known scope: {v}");
    assert!(v["token"].as_str().unwrap().starts_with("acme_"), "{v}");
    assert!(v["id"].as_str().unwrap().starts_with("acme_"), "{v}");

    let (status, scopes) = status_json(p.req("GET", "/api/v1/scopes", &admin).send().unwrap());
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
        let p = Proc::must_listen(
            dir.path(),
            &["--listen", "127.0.0.1:0", "--token-prefix", "beta"],
            &[("KEYGATE_BOOTSTRAP_TOKEN", &admin)],
        );
        let (status, v) = create_via(&p, &admin, &["metrics:read"]);
        assert_eq!(status, 201, "{v}");
        assert!(v["token"].as_str().unwrap().starts_with("beta_"), "{v}");
    }
    {
        let p = Proc::must_listen(
            dir.path(),
            &["--listen", "127.0.0.1:0"],
            &[
                ("KEYGATE_BOOTSTRAP_TOKEN", &admin),
                ("KEYGATE_TOKEN_PREFIX", "gamma"),
            ],
        );
        let (status, v) = create_via(&p, &admin, &["tokens:read"]);
        assert_eq!(status, 201, "{v}");
        assert!(v["token"].as_str().unwrap().starts_with("gamma_"), "{v}");
    }
}

#[test]
fn keygate_scope_variable_adds_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let admin = fresh_token();
    let p = Proc::must_listen(
        dir.path(),
        FIRST_START,
        &[
            ("KEYGATE_BOOTSTRAP_TOKEN", &admin),
            (
                "KEYGATE_SCOPE",
                "metrics:read=Read metrics;metrics:write=Write metrics",
            ),
        ],
    );
    let (status, scopes) = status_json(p.req("GET", "/api/v1/scopes", &admin).send().unwrap());
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
    let (status, out) = Proc::must_fail(
        dir.path(),
        &["--listen", "127.0.0.1:0"],
        &[("KEYGATE_BOOTSTRAP_TOKEN", &fresh_token())],
    );
    assert!(!status.success());
    assert!(out.contains("keygate.toml"), "{out}");
    assert!(out.contains("frobnicate"), "names the key:\n{out}");
}

// ---- durability ----

/// Every audit entry of the tenant, newest first.
fn audit_log(s: &Server) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/api/v1/audit?limit=1000".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, v) = status_json(s.admin("GET", &path).send().unwrap());
        assert_eq!(status, 200, "{v}");
        items.extend(v["items"].as_array().unwrap().iter().cloned());
        match v["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
}

/// (action, targetId) of every audit entry, counted.
fn audit_counts(s: &Server) -> HashMap<(String, String), usize> {
    let mut m = HashMap::new();
    for e in audit_log(s) {
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
    let mut s = Server::start();
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
    let mut s = Server::start();
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
    let mut s = Server::start();
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
    let mut s = Server::start();
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

/// Sends `signal` (e.g. "-INT") to a process started by `Proc` and waits for its exit.
fn signal_and_wait(p: &mut Proc, signal: &str) -> ExitStatus {
    let mut child = p.child.take().expect("running");
    let sent = Command::new("kill")
        .arg(signal)
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("keygate did not stop on {signal}:\n{}", p.output());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigint_also_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let token = fresh_token();
    let mut p = Proc::must_listen(
        dir.path(),
        FIRST_START,
        &[("KEYGATE_BOOTSTRAP_TOKEN", &token)],
    );
    let r = p.req("GET", "/api/v1/tokens/self", &token).send().unwrap();
    assert_eq!(r.status(), 200);
    let status = signal_and_wait(&mut p, "-INT");
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
    let args = [FIRST_START, &["--http-workers", "3"]].concat();
    let mut p = Proc::must_listen(dir.path(), &args, &[("KEYGATE_BOOTSTRAP_TOKEN", &token)]);
    let pid = p.child.as_ref().unwrap().id();
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
    let url = p.url.clone().unwrap();
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
    let status = signal_and_wait(&mut p, "-TERM");
    assert!(status.success(), "SIGTERM ends with status 0, got {status}");
}

#[test]
fn last_use_resolution_under_a_second_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let args = [FIRST_START, &["--last-use-resolution", "500ms"]].concat();
    let (status, out) = Proc::must_fail(dir.path(), &args, &[]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(
        out.contains("--last-use-resolution must be at least one second"),
        "{out}"
    );
}

#[test]
fn zero_http_workers_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let args = [FIRST_START, &["--http-workers", "0"]].concat();
    let (status, out) = Proc::must_fail(dir.path(), &args, &[]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("--http-workers must be at least 1"), "{out}");
}

#[test]
fn sigterm_right_after_the_listening_line_stops_cleanly() {
    // "keygate listening on" is what a supervisor waits for; from then on SIGTERM must be
    // a graceful stop, not the default action of the signal.
    let dir = tempfile::tempdir().unwrap();
    let mut p = Proc::must_listen(
        dir.path(),
        FIRST_START,
        &[("KEYGATE_BOOTSTRAP_TOKEN", &fresh_token())],
    );
    let status = signal_and_wait(&mut p, "-TERM");
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
    let (status, out) = Proc::must_fail(
        dir.path(),
        &["--listen", &addr, "--data-dir", "data"],
        &[("KEYGATE_BOOTSTRAP_TOKEN", &fresh_token())],
    );
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
    let (status, out) =
        Proc::must_fail(dir.path(), &["--listen", &addr, "--data-dir", "data"], &[]);
    drop(taken);
    assert!(!status.success());
    assert!(out.contains("cannot listen"), "{out}");
    assert!(
        !out.contains(TOKEN_LINE) && !out.contains(PASSWORD_LINE),
        "the failed start bootstrapped and printed the one-time secrets:\n{out}"
    );

    let p = Proc::must_listen(dir.path(), FIRST_START, &[]);
    let token = p.line_after(TOKEN_LINE);
    let r = p.req("GET", "/api/v1/tokens/self", &token).send().unwrap();
    assert_eq!(r.status(), 200);
}
