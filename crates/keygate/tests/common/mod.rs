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
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh, empty PostgreSQL database, dropped when this value is.
pub struct PgDatabase {
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub fn create() -> Self {
        let base = postgres_base_url();
        let mut suffix = String::new();
        keygate_core::base62::random(12, &mut suffix);
        let name = format!("kg_test_{}", suffix.to_lowercase());
        psql(&base, &format!("CREATE DATABASE {name}"));
        let (server, _) = base
            .rsplit_once('/')
            .expect("a database URL ends in /<database>");
        Self {
            url: format!("{server}/{name}"),
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
        let _ = Command::new("psql")
            .arg(postgres_base_url())
            .args([
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// Runs one statement with `psql`; PostgreSQL being unreachable fails the test, it never
/// skips it.
pub fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .arg(url)
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("running psql (install PostgreSQL's client)");
    assert!(
        out.status.success(),
        "PostgreSQL at {url} refused `{sql}`: {}\nStart it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh native token, as the server would mint it.
pub fn fresh_token() -> String {
    let prefix = keygate_core::TokenPrefix::default();
    keygate_core::PlainToken::mint(&prefix)
        .1
        .expose()
        .to_owned()
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
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars() {
            if k.starts_with("KEYGATE_") {
                cmd.env_remove(k);
            }
        }
        cmd.args(args)
            .env("KEYGATE_URL", &self.url)
            .env("KEYGATE_TOKEN", token)
            .output()
            .expect("running the CLI")
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
