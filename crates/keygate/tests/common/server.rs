//! The one way the suites start `keygate serve`: a [`ServerBuilder`] with the options a test
//! needs, a [`Server`] that captures every line the process prints and can be stopped, killed
//! and restarted on the same data.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;

use super::{fresh_token, last_lines, Backend, PgDatabase};

pub const BIN: &str = env!("CARGO_BIN_EXE_keygate");

/// The admin user's password on servers started with a known bootstrap token.
pub const ADMIN_PASSWORD: &str = "correct-horse-battery-staple";

/// What keygate prints, once, on the first start that had to generate the admin's secrets.
pub const SHOWN_TOKEN: &str = "Admin token (shown once): ";
pub const SHOWN_PASSWORD: &str = "Admin password (shown once): ";

/// How long a start may take before the test gives up: generous, for a loaded machine.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How long a graceful stop may take.
const STOP_LIMIT: Duration = Duration::from_secs(20);
/// How long a line may take to arrive after the event that prints it: stdout and stderr are
/// read by different threads, so a line can lag the one it was printed before.
const LINE_LIMIT: Duration = Duration::from_secs(10);

/// The keygate binary with none of the caller's `KEYGATE_*` variables, so that a developer's
/// own settings never leak into a test.
pub fn keygate_command() -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("KEYGATE_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// How the admin's first secrets reach the server.
#[derive(Debug, Clone)]
enum Secrets {
    /// This bootstrap token and [`ADMIN_PASSWORD`], through the environment.
    Given(String),
    /// None: the server generates both and prints them; the printed token is read as
    /// `admin_token`.
    Generated,
    /// None from the harness: only what the test passes with [`ServerBuilder::env`].
    FromTest,
}

#[derive(Debug, Clone)]
struct Launch {
    args: Vec<String>,
    env: Vec<(String, String)>,
    listen: String,
    data_dir_flag: bool,
    database_url: Option<String>,
    secrets: Secrets,
    log_filter: Option<String>,
}

#[must_use]
pub struct ServerBuilder {
    backend: Backend,
    name: String,
    working_dir: Option<PathBuf>,
    launch: Launch,
}

impl ServerBuilder {
    /// Shown in failure messages, to tell several servers of one test apart.
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// Extra `keygate serve` arguments, e.g. `["--scope", "metrics:read=Read metrics"]`.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.launch.args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// An environment variable, set after (so over) the harness's own.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.launch.env.push((k.into(), v.into()));
        self
    }

    /// `metrics:read` and `metrics:write` besides the built-in scopes.
    pub fn with_metrics_scopes(self) -> Self {
        self.args(&[
            "--scope",
            "metrics:read=Read metrics",
            "--scope",
            "metrics:write=Write metrics",
        ])
    }

    /// `--listen` (default `127.0.0.1:0`, an ephemeral port).
    pub fn listen(mut self, addr: &str) -> Self {
        self.launch.listen = addr.to_owned();
        self
    }

    /// Runs the process in `dir` (where it looks for `keygate.toml`) instead of a temporary
    /// directory of its own.
    pub fn working_dir(mut self, dir: &Path) -> Self {
        self.working_dir = Some(dir.to_owned());
        self
    }

    /// No `--data-dir`: keygate's default, `keygate-data` in the working directory.
    pub fn default_data_dir(mut self) -> Self {
        self.launch.data_dir_flag = false;
        self
    }

    /// A database other servers share, instead of a fresh one of this server's own.
    pub fn database_url(mut self, url: &str) -> Self {
        self.launch.database_url = Some(url.to_owned());
        self
    }

    /// This bootstrap token (and [`ADMIN_PASSWORD`]) rather than a fresh one, e.g. the same for
    /// several nodes on one database.
    pub fn bootstrap_token(mut self, token: &str) -> Self {
        self.launch.secrets = Secrets::Given(token.to_owned());
        self
    }

    /// Start without KEYGATE_BOOTSTRAP_TOKEN / KEYGATE_ADMIN_PASSWORD, so that the server
    /// generates and prints them; `admin_token` is then read from its output.
    pub fn generated_secrets(mut self) -> Self {
        self.launch.secrets = Secrets::Generated;
        self
    }

    /// Neither secret from the harness: the test gives what it wants with [`Self::env`], or
    /// nothing; `admin_token` stays empty.
    pub fn secrets_from_test(mut self) -> Self {
        self.launch.secrets = Secrets::FromTest;
        self
    }

    /// `KEYGATE_LOG` (default `debug`, so that the tests also search the most talkative log).
    pub fn log_filter(mut self, filter: &str) -> Self {
        self.launch.log_filter = Some(filter.to_owned());
        self
    }

    /// No `KEYGATE_LOG`: keygate's own default, as an operator who sets nothing gets.
    pub fn default_log_filter(mut self) -> Self {
        self.launch.log_filter = None;
        self
    }

    /// Starts the process without waiting for it to listen: see [`Server::wait_listening`].
    pub fn spawn(self) -> Server {
        let home = tempfile::tempdir().expect("temp dir");
        let working_dir = self.working_dir.unwrap_or_else(|| home.path().to_owned());
        let database = (self.backend == Backend::Postgres && self.launch.database_url.is_none())
            .then(PgDatabase::create);
        let admin_token = match &self.launch.secrets {
            Secrets::Given(t) => t.clone(),
            Secrets::Generated | Secrets::FromTest => String::new(),
        };
        let mut server = Server {
            name: self.name,
            backend: self.backend,
            database,
            url: String::new(),
            admin_token,
            _home: home,
            working_dir,
            launch: self.launch,
            child: None,
            readers: Vec::new(),
            listening: Mutex::new(None),
            output: Arc::new(Mutex::new(Vec::new())),
            http: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        server.spawn();
        server
    }

    /// Starts the process and waits until it listens, or until it ends: a start that is meant
    /// to fail.
    pub fn try_start(self) -> Result<Server, FailedStart> {
        let mut server = self.spawn();
        match server.wait_listening() {
            Ok(()) => Ok(server),
            Err(status) => Err(FailedStart {
                status,
                output: server.output(),
                stderr: server.stderr(),
            }),
        }
    }

    /// Starts the process and waits until it listens; a process that ends first fails the test.
    pub fn start(self) -> Server {
        match self.try_start() {
            Ok(server) => server,
            Err(failed) => panic!(
                "keygate ended ({}) instead of listening; its output:\n{}",
                failed.status, failed.output
            ),
        }
    }

    /// Starts a process that must end without listening; how it ended.
    pub fn fail(self) -> FailedStart {
        match self.try_start() {
            Ok(server) => panic!(
                "keygate should have refused to start; its output:\n{}",
                server.output()
            ),
            Err(failed) => failed,
        }
    }
}

/// A `keygate serve` that ended before it listened.
#[derive(Debug)]
pub struct FailedStart {
    pub status: ExitStatus,
    /// stdout and stderr, as the lines arrived.
    pub output: String,
    pub stderr: String,
}

/// One line the process printed.
struct Line {
    stderr: bool,
    text: String,
}

pub struct Server {
    pub name: String,
    pub backend: Backend,
    /// The fresh PostgreSQL database of this server, when it has one.
    pub database: Option<PgDatabase>,
    /// `http://127.0.0.1:PORT`, once listening.
    pub url: String,
    /// A token holding `*` (the bootstrap token), when the harness knows it.
    pub admin_token: String,
    /// The server's own temporary directory, removed with it.
    _home: tempfile::TempDir,
    working_dir: PathBuf,
    launch: Launch,
    child: Option<Child>,
    readers: Vec<JoinHandle<()>>,
    /// The addresses the process says it listens on, until one has arrived. In a mutex only so
    /// that a `Server` can be shared by the threads of a test.
    listening: Mutex<Option<mpsc::Receiver<String>>>,
    /// Every line the process printed, stdout and stderr, across restarts.
    output: Arc<Mutex<Vec<Line>>>,
    pub http: Client,
}

impl Server {
    /// A server on `backend`, with a fresh bootstrap token, [`ADMIN_PASSWORD`] and a temporary
    /// directory of its own; the options are the builder's.
    pub fn on(backend: Backend) -> ServerBuilder {
        ServerBuilder {
            backend,
            name: "keygate".to_owned(),
            working_dir: None,
            launch: Launch {
                args: Vec::new(),
                env: Vec::new(),
                listen: "127.0.0.1:0".to_owned(),
                data_dir_flag: true,
                database_url: None,
                secrets: Secrets::Given(fresh_token()),
                log_filter: Some("debug".to_owned()),
            },
        }
    }

    fn spawn(&mut self) {
        let launch = &self.launch;
        let mut cmd = keygate_command();
        cmd.arg("serve").arg("--listen").arg(&launch.listen);
        if launch.data_dir_flag {
            cmd.arg("--data-dir").arg(self.working_dir.join("data"));
        }
        let database_url = launch
            .database_url
            .clone()
            .or_else(|| self.database.as_ref().map(|d| d.url.clone()));
        if let Some(url) = database_url {
            cmd.arg("--database-url").arg(url);
        }
        cmd.args(&launch.args)
            .current_dir(&self.working_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(filter) = &launch.log_filter {
            cmd.env("KEYGATE_LOG", filter);
        }
        if let Secrets::Given(token) = &launch.secrets {
            cmd.env("KEYGATE_BOOTSTRAP_TOKEN", token);
            cmd.env("KEYGATE_ADMIN_PASSWORD", ADMIN_PASSWORD);
        }
        for (k, v) in &launch.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("starting keygate serve");
        let (tx, rx) = mpsc::channel::<String>();
        let streams = [
            (
                false,
                Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            ),
            (true, Box::new(child.stderr.take().unwrap())),
        ];
        self.readers = streams
            .into_iter()
            .map(|(stderr, stream)| {
                let output = self.output.clone();
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for text in BufReader::new(stream).lines() {
                        let Ok(text) = text else { break };
                        if let Some(addr) = text.split("keygate listening on ").nth(1) {
                            let _ = tx.send(addr.trim().to_owned());
                        }
                        output.lock().unwrap().push(Line { stderr, text });
                    }
                })
            })
            .collect();
        self.child = Some(child);
        *self.listening.lock().unwrap() = Some(rx);
    }

    /// Waits until the process says it listens; `Err` with its exit status if it ended first.
    /// With generated secrets, the first start also waits for the printed admin token.
    pub fn wait_listening(&mut self) -> Result<(), ExitStatus> {
        let rx = self
            .listening
            .lock()
            .unwrap()
            .take()
            .expect("a process that was just spawned");
        let deadline = Instant::now() + START_LIMIT;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(url) => {
                    self.url = url;
                    break;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            let child = self.child.as_mut().expect("a running process");
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                // Everything the process wrote, before anyone reads its output.
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return Err(status);
            }
            if Instant::now() > deadline {
                self.kill9();
                panic!(
                    "{} neither listened nor ended within {START_LIMIT:?}; its output:\n{}",
                    self.name,
                    self.output()
                );
            }
        }
        if matches!(self.launch.secrets, Secrets::Generated) && self.admin_token.is_empty() {
            self.admin_token = self.line_after(SHOWN_TOKEN);
        }
        Ok(())
    }

    /// [`Server::wait_listening`] for a process that must start.
    pub fn wait_until_listening(&mut self) {
        if let Err(status) = self.wait_listening() {
            panic!(
                "{} ended ({status}) instead of listening; its output:\n{}",
                self.name,
                self.output()
            );
        }
    }

    /// Everything the process has printed so far, stdout and stderr.
    pub fn output(&self) -> String {
        self.joined(|_| true)
    }

    /// What the process has printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.joined(|l| l.stderr)
    }

    fn joined(&self, keep: impl Fn(&Line) -> bool) -> String {
        let lines = self.output.lock().unwrap();
        let kept: Vec<&str> = lines
            .iter()
            .filter(|l| keep(l))
            .map(|l| l.text.as_str())
            .collect();
        kept.join("\n")
    }

    /// The rest of every line containing `marker`, in the order printed.
    pub fn lines_after(&self, marker: &str) -> Vec<String> {
        self.output
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.text.split(marker).nth(1).map(|s| s.trim().to_owned()))
            .collect()
    }

    /// The rest of the first line containing `marker`, if printed yet.
    pub fn output_line_after(&self, marker: &str) -> Option<String> {
        self.lines_after(marker).into_iter().next()
    }

    /// The rest of the first line containing `marker`, waiting for it a while.
    pub fn line_after(&self, marker: &str) -> String {
        let deadline = Instant::now() + LINE_LIMIT;
        loop {
            if let Some(rest) = self.output_line_after(marker) {
                return rest;
            }
            assert!(
                Instant::now() < deadline,
                "{}: no line with {marker:?}; its output:\n{}",
                self.name,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last lines printed, named, for failure messages.
    pub fn tail(&self) -> String {
        format!(
            "--- last output of {} ---\n{}",
            self.name,
            last_lines(&self.output(), 30)
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("a running process").id()
    }

    /// Stops the process at once, with no chance to flush anything (`kill -9`).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Asks the process to stop (SIGTERM) and waits for it.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal_and_wait("-TERM")
    }

    /// Sends `signal` (as `kill` takes it, e.g. `-INT`) and waits for the process to end.
    pub fn signal_and_wait(&mut self, signal: &str) -> ExitStatus {
        let mut child = self.child.take().expect("a running process");
        let sent = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success(), "kill {signal}");
        let deadline = Instant::now() + STOP_LIMIT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not stop within {STOP_LIMIT:?} of {signal}:\n{}",
                    self.name,
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the process again on the same data (a new port), killing it first if it runs.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
        self.wait_until_listening();
    }

    /// The directory the process runs in, which holds its data.
    pub fn data_path(&self) -> &Path {
        &self.working_dir
    }

    pub fn db_path(&self) -> PathBuf {
        let data = if self.launch.data_dir_flag {
            "data"
        } else {
            "keygate-data"
        };
        self.working_dir.join(data).join("keygate.db")
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
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}
