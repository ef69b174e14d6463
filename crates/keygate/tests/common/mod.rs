//! The test harness: every test talks to a real `keygate serve` process on an ephemeral port,
//! over HTTP, with a database of its own: a SQLite file in a temporary directory, or, in the
//! test binaries whose name starts with `postgres`, a fresh PostgreSQL database on the machine's
//! server (`KEYGATE_TEST_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_keygate");

/// Which database the servers of this test binary run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn backend() -> Backend {
    let exe = std::env::current_exe().unwrap();
    let name = exe.file_name().unwrap().to_string_lossy();
    if name.starts_with("postgres") {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

/// The server the PostgreSQL tests use; each test gets a database of its own on it.
pub fn postgres_base_url() -> String {
    std::env::var("KEYGATE_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Splits `scheme://authority/db?query` into (scheme, authority, query).
fn url_parts(url: &str) -> (&str, &str, Option<&str>) {
    let (scheme, rest) = url
        .split_once("://")
        .unwrap_or_else(|| panic!("KEYGATE_TEST_DATABASE_URL must be a postgres:// URL"));
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    (scheme, rest.split('/').next().unwrap_or(rest), query)
}

/// The same server and credentials, naming another database.
fn with_database(url: &str, db: &str) -> String {
    let (scheme, authority, query) = url_parts(url);
    match query {
        Some(q) => format!("{scheme}://{authority}/{db}?{q}"),
        None => format!("{scheme}://{authority}/{db}"),
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    let (scheme, authority, _) = url_parts(url);
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or(user);
            format!("{scheme}://{user}@{host}/…")
        }
        None => format!("{scheme}://{authority}/…"),
    }
}

/// Runs one SQL command with `psql`; the trimmed output, or psql's complaint.
pub fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run psql (is the PostgreSQL client installed?): {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// A fresh database on a PostgreSQL server, dropped when this value is.
pub struct PgDatabase {
    /// The server's maintenance database, from which this one was created.
    pub admin_url: String,
    pub name: String,
    /// The URL keygate is given.
    pub url: String,
}

impl PgDatabase {
    /// On the machine's server (`KEYGATE_TEST_DATABASE_URL`). Unreachable fails the test.
    pub fn create() -> PgDatabase {
        Self::create_on(&postgres_base_url())
    }

    pub fn create_on(admin_url: &str) -> PgDatabase {
        let mut suffix = String::new();
        keygate_core::base62::random(12, &mut suffix);
        let name = format!("kg_test_{}", suffix.to_lowercase());
        if let Err(e) = psql(admin_url, &format!("CREATE DATABASE {name}")) {
            panic!(
                "these tests need PostgreSQL, and it is not reachable at {} (set \
                 KEYGATE_TEST_DATABASE_URL, or start it: pg_ctlcluster --skip-systemctl-redirect \
                 $(ls /etc/postgresql) main start): {e}",
                redact(admin_url)
            );
        }
        PgDatabase {
            admin_url: admin_url.to_owned(),
            url: with_database(admin_url, &name),
            name,
        }
    }

    /// Everything the database holds, as `pg_dump` prints it.
    pub fn dump(&self) -> Vec<u8> {
        let out = Command::new("pg_dump")
            .arg(&self.url)
            .output()
            .expect("running pg_dump");
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// A fresh native token, as the server would mint it.
pub fn fresh_token() -> String {
    let prefix = keygate_core::TokenPrefix::default();
    keygate_core::PlainToken::mint(&prefix)
        .1
        .expose()
        .to_owned()
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct ServerBuilder {
    args: Vec<String>,
    env: Vec<(String, String)>,
    data_dir: Option<tempfile::TempDir>,
    admin_token: Option<String>,
}

impl ServerBuilder {
    /// Extra `keygate serve` arguments, e.g. `["--scope", "metrics:read=Read metrics"]`.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Start without KEYGATE_BOOTSTRAP_TOKEN / KEYGATE_ADMIN_PASSWORD, so the server
    /// generates and prints them; `admin_token` is then read from its output.
    pub fn generated_secrets(mut self) -> Self {
        self.admin_token = None;
        self
    }

    pub fn start(self) -> Server {
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| tempfile::tempdir().expect("temp dir"));
        let database = (backend() == Backend::Postgres).then(PgDatabase::create);
        let mut server = Server {
            database,
            url: String::new(),
            admin_token: self.admin_token.clone().unwrap_or_default(),
            data_dir,
            args: self.args,
            env: self.env,
            given_token: self.admin_token,
            child: None,
            output: Arc::new(Mutex::new(Vec::new())),
            http: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        server.spawn();
        server
    }
}

pub struct Server {
    /// The PostgreSQL database of this server, in the PostgreSQL test binaries.
    pub database: Option<PgDatabase>,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// A token holding `*` (the bootstrap token).
    pub admin_token: String,
    pub data_dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    given_token: Option<String>,
    child: Option<Child>,
    /// Every line the process printed, stdout and stderr, across restarts.
    output: Arc<Mutex<Vec<String>>>,
    pub http: Client,
}

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            args: Vec::new(),
            env: Vec::new(),
            data_dir: None,
            admin_token: Some(fresh_token()),
        }
    }

    /// A server that knows `metrics:read` and `metrics:write` besides the built-in scopes.
    pub fn with_metrics_scopes() -> Server {
        Self::builder()
            .args(&[
                "--scope",
                "metrics:read=Read metrics",
                "--scope",
                "metrics:write=Write metrics",
            ])
            .start()
    }

    /// A server with a known bootstrap token and default settings.
    pub fn start() -> Server {
        Self::builder().start()
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(self.data_dir.path().join("data"))
            .args(
                self.database
                    .iter()
                    .flat_map(|d| ["--database-url".to_owned(), d.url.clone()]),
            )
            .args(&self.args)
            .current_dir(self.data_dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        for (k, _) in std::env::vars() {
            if k.starts_with("KEYGATE_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("KEYGATE_LOG", "debug");
        if let Some(t) = &self.given_token {
            cmd.env("KEYGATE_BOOTSTRAP_TOKEN", t);
            cmd.env("KEYGATE_ADMIN_PASSWORD", "correct-horse-battery-staple");
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("starting keygate");
        let (tx, rx) = mpsc::channel::<String>();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = self.output.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addr) = line.split("keygate listening on ").nth(1) {
                        let _ = tx.send(addr.trim().to_owned());
                    }
                    output.lock().unwrap().push(line);
                }
            });
        }
        self.child = Some(child);
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => self.url = url,
            Err(_) => panic!("keygate did not start; its output:\n{}", self.output()),
        }
        if self.given_token.is_none() && self.admin_token.is_empty() {
            // Printed on stdout before the listening line on stderr, but the two streams are
            // read by different threads: give the stdout reader a moment.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            self.admin_token = loop {
                if let Some(t) = self.output_line_after("Admin token (shown once): ") {
                    break t;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "a generated admin token is printed on first start; output:\n{}",
                    self.output()
                );
                std::thread::sleep(Duration::from_millis(20));
            };
        }
    }

    /// Everything the process has printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    pub fn output_line_after(&self, marker: &str) -> Option<String> {
        self.output
            .lock()
            .unwrap()
            .iter()
            .find_map(|l| l.split(marker).nth(1).map(|s| s.trim().to_owned()))
    }

    /// Stops the process at once, with no chance to flush anything (`kill -9`).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Asks the process to stop (SIGTERM) and waits for it.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("server is running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        c.wait().unwrap()
    }

    /// Starts the process again on the same data directory (a new port).
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.kill9();
        }
        self.spawn();
    }

    /// Every byte the database holds: the SQLite files, or a dump of the PostgreSQL database.
    pub fn database_bytes(&self) -> Vec<u8> {
        if let Some(db) = &self.database {
            return db.dump();
        }
        let mut bytes = Vec::new();
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = self.db_path().into_os_string();
            p.push(suffix);
            if let Ok(b) = std::fs::read(&p) {
                bytes.extend(b);
            }
        }
        assert!(!bytes.is_empty(), "the database file exists");
        bytes
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.path().join("data").join("keygate.db")
    }

    pub fn data_path(&self) -> &Path {
        self.data_dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// A request with the admin token in `Authorization: Bearer`.
    pub fn admin(&self, method: &str, path: &str) -> RequestBuilder {
        self.with_token(method, path, &self.admin_token.clone())
    }

    pub fn with_token(&self, method: &str, path: &str, token: &str) -> RequestBuilder {
        self.anon(method, path)
            .header("Authorization", format!("Bearer {token}"))
    }

    pub fn anon(&self, method: &str, path: &str) -> RequestBuilder {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        self.http.request(m, self.url(path))
    }

    /// Creates a token with these scopes using the admin token; returns (id, token).
    pub fn create_token(&self, name: &str, scopes: &[&str]) -> (String, String) {
        let r = self
            .admin("POST", "/api/v1/tokens")
            .json(&json!({ "name": name, "scopes": scopes }))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201, "creating a token");
        let v: Value = r.json().unwrap();
        (
            v["id"].as_str().unwrap().to_owned(),
            v["token"].as_str().unwrap().to_owned(),
        )
    }

    /// POST /api/v1/verify; returns the JSON answer.
    pub fn verify(&self, token: &str, scopes: &[&str]) -> Value {
        let r = self
            .anon("POST", "/api/v1/verify")
            .json(&json!({ "token": token, "scopes": scopes }))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().unwrap()
    }

    /// Runs the CLI against this server with `KEYGATE_TOKEN=token`.
    pub fn cli(&self, token: &str, args: &[&str]) -> std::process::Output {
        self.cli_command(token, args)
            .output()
            .expect("running the CLI")
    }

    /// [`Server::cli`], with `stdin` written to the CLI's standard input.
    pub fn cli_with_stdin(&self, token: &str, args: &[&str], stdin: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = self
            .cli_command(token, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running the CLI");
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(stdin.as_bytes()).unwrap();
        drop(pipe);
        child.wait_with_output().unwrap()
    }

    /// The CLI with none of the caller's `KEYGATE_*` variables, pointed at this server.
    fn cli_command(&self, token: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars() {
            if k.starts_with("KEYGATE_") {
                cmd.env_remove(k);
            }
        }
        cmd.args(args)
            .env("KEYGATE_URL", &self.url)
            .env("KEYGATE_TOKEN", token);
        cmd
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Status and JSON body of a response, for assertions.
pub fn status_json(r: Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
    };
    (status, v)
}

/// Asserts the §3 error body: `error` reason phrase, `message`, `code`.
pub fn assert_error(r: Response, status: u16, code: &str) -> Value {
    let (s, v) = status_json(r);
    assert_eq!(s, status, "status; body: {v}");
    assert_eq!(v["code"], code, "code; body: {v}");
    assert!(
        v["error"].is_string() && v["message"].is_string(),
        "error body shape: {v}"
    );
    v
}

/// The admin user's password on servers started with a known bootstrap token.
pub const ADMIN_PASSWORD: &str = "correct-horse-battery-staple";

/// A logged-in web session: the cookie's `name=value` and the CSRF token.
#[derive(Debug, Clone)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
    /// The login's answer: `user`, `scopes`, `csrfToken`, `expiresAt`.
    pub body: Value,
}

impl Session {
    pub fn user_id(&self) -> String {
        self.body["user"]["id"].as_str().unwrap().to_owned()
    }
}

/// The `name=value` part of a `Set-Cookie` header, and the whole header.
pub fn session_cookie(r: &Response) -> Option<(String, String)> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("keygate_session="))
        .map(|v| (v.split(';').next().unwrap().to_owned(), v.to_owned()))
}

impl Server {
    /// POST /api/v1/session; the raw answer.
    pub fn try_login(&self, tenant: &str, username: &str, password: &str) -> Response {
        self.anon("POST", "/api/v1/session")
            .json(&json!({ "tenant": tenant, "username": username, "password": password }))
            .send()
            .unwrap()
    }

    /// Logs in to tenant `default`, asserting success.
    pub fn login(&self, username: &str, password: &str) -> Session {
        self.login_to("default", username, password)
    }

    pub fn login_to(&self, tenant: &str, username: &str, password: &str) -> Session {
        let r = self.try_login(tenant, username, password);
        let status = r.status().as_u16();
        let (cookie, _) = session_cookie(&r).unwrap_or_default();
        let body: Value = r.json().unwrap();
        assert_eq!(status, 200, "login as {username}: {body}");
        Session {
            cookie,
            csrf: body["csrfToken"].as_str().unwrap().to_owned(),
            body,
        }
    }

    /// A request as the web page makes it: the cookie and the CSRF header.
    pub fn as_session(&self, s: &Session, method: &str, path: &str) -> RequestBuilder {
        self.anon(method, path)
            .header("Cookie", &s.cookie)
            .header("X-CSRF-Token", &s.csrf)
    }

    /// Creates a user with the admin token; returns its id.
    pub fn create_user(&self, username: &str, password: &str, role: &str) -> String {
        let r = self
            .admin("POST", "/api/v1/users")
            .json(&json!({ "username": username, "password": password, "role": role }))
            .send()
            .unwrap();
        let (status, v) = status_json(r);
        assert_eq!(status, 201, "creating user {username}: {v}");
        v["id"].as_str().unwrap().to_owned()
    }
}
