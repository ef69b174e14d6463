//! Several `keygate serve` processes on one PostgreSQL database: a
//! change made on any node is seen by the others (and how fast), several nodes starting at once
//! bootstrap exactly once, last-use times are written behind from every node, and running nodes
//! ride out a database restart (on a throwaway cluster the test owns).
//!
//! PostgreSQL is reached at `KEYGATE_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each test creates its own database and drops
//! it afterwards. An unreachable PostgreSQL fails the test: it is never skipped.
//!
//! Run with `--nocapture` to see the propagation figures.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use time::OffsetDateTime;

/// A correctness bound, not the performance target (which is well under a second): a change
/// not seen on another node within this long was lost. Generous so a loaded machine never flakes.
const PROPAGATION_LIMIT: Duration = Duration::from_secs(5);
const POLL_EVERY: Duration = Duration::from_millis(2);
/// How long a node may take to notice the database is gone or back.
const READY_LIMIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// keygate processes
// ---------------------------------------------------------------------------------------------

/// A node on the shared database at `database_url`. With `bootstrap`, the node is given that
/// token (and a password) through the environment; without, the first node to start generates
/// and prints them.
fn node(name: &str, database_url: &str, bootstrap: Option<&str>) -> ServerBuilder {
    let node = Server::on(Backend::Postgres)
        .name(name)
        .database_url(database_url)
        .default_data_dir()
        .log_filter("info")
        // Per second, not the default minute: the last-use test uses a token again after 1.2 s.
        .env("KEYGATE_LAST_USE_RESOLUTION", "1s");
    match bootstrap {
        Some(token) => node.bootstrap_token(token),
        None => node.secrets_from_test(),
    }
}

/// `POST /api/v1/verify` with no scopes asked for; any answer, also a refusal.
fn verify(node: &Server, token: &str) -> (u16, Value) {
    node.call(
        "POST",
        "/api/v1/verify",
        None,
        Some(json!({ "token": token, "scopes": [] })),
    )
}

fn readyz(node: &Server) -> u16 {
    node.call("GET", "/readyz", None, None).0
}

/// Polls `/readyz` until it answers `want`; how long that took.
fn await_readyz(node: &Server, want: u16, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let st = readyz(node);
        if st == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{}: /readyz still answers {st} after {limit:?}, expected {want}\n{}",
            node.name,
            node.tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// Expected verification answers
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Expect {
    /// `valid: true`, holding exactly these scopes.
    Valid(Vec<&'static str>),
    /// `valid: false` with this code.
    Code(&'static str),
}

impl Expect {
    fn matches(&self, status: u16, v: &Value) -> bool {
        if status != 200 {
            return false;
        }
        match self {
            Expect::Valid(scopes) => {
                let mut want: Vec<&str> = scopes.clone();
                want.sort_unstable();
                let mut got: Vec<&str> = v["scopes"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                got.sort_unstable();
                v["valid"] == true && v["code"] == "VALID" && got == want
            }
            Expect::Code(code) => v["valid"] == false && v["code"] == *code,
        }
    }
}

/// Polls verify on `node` until it shows `want`; the time since `since`, or the last answer.
fn await_state(
    node: &Server,
    token: &str,
    want: &Expect,
    since: Instant,
) -> Result<Duration, String> {
    loop {
        let (st, v) = verify(node, token);
        let elapsed = since.elapsed();
        if want.matches(st, &v) {
            return Ok(elapsed);
        }
        if elapsed > PROPAGATION_LIMIT {
            return Err(format!(
                "{} still answers {st} {v} after {elapsed:?}; expected {want:?}",
                node.name
            ));
        }
        std::thread::sleep(POLL_EVERY);
    }
}

fn assert_shows(node: &Server, token: &str, want: &Expect, context: &str) {
    let (st, v) = verify(node, token);
    assert!(
        want.matches(st, &v),
        "{context}: {} answers {st} {v}, expected {want:?}\n{}",
        node.name,
        node.tail()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(sorted: &[Duration]) -> Duration {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Cache coherence across three nodes
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Change {
    Disable,
    Enable,
    Rescope,
    Rotate,
    Delete,
}

const CHANGES: [Change; 5] = [
    Change::Disable,
    Change::Enable,
    Change::Rescope,
    Change::Rotate,
    Change::Delete,
];

#[test]
fn three_nodes_see_each_others_changes() {
    let db = PgDatabase::create();
    let admin = fresh_token();
    let nodes: Vec<Server> = (0..3)
        .map(|i| node(&format!("node{i}"), &db.url, Some(&admin)).start())
        .collect();

    // (change, made on, seen on, time from the change's acknowledgement)
    let mut seen: Vec<(Change, usize, usize, Duration)> = Vec::new();
    // Three rounds, each starting on the next node: every node makes every kind of change.
    for round in 0..3 {
        let (mut id, mut token) = nodes[round].create_token(
            &format!("coherence-{round}"),
            &["tokens:read", "audit:read"],
        );
        let mut state = Expect::Valid(vec!["tokens:read", "audit:read"]);
        for (step, &change) in CHANGES.iter().enumerate() {
            let maker = (round + step) % 3;
            let others: Vec<usize> = (0..3).filter(|&i| i != maker).collect();
            // The others have the token in cache, in its current state.
            for &o in &others {
                assert_shows(
                    &nodes[o],
                    &token,
                    &state,
                    &format!("round {round}, before {change:?}"),
                );
            }
            let node = &nodes[maker];
            let path = format!("/api/v1/tokens/{id}");
            let (subject, next) = match change {
                Change::Disable => {
                    let (st, v) = node.call("POST", &format!("{path}/disable"), Some(&admin), None);
                    assert_eq!(st, 200, "disable on {}: {v}", node.name);
                    (token.clone(), Expect::Code("DISABLED"))
                }
                Change::Enable => {
                    let (st, v) = node.call("POST", &format!("{path}/enable"), Some(&admin), None);
                    assert_eq!(st, 200, "enable on {}: {v}", node.name);
                    (
                        token.clone(),
                        Expect::Valid(vec!["tokens:read", "audit:read"]),
                    )
                }
                Change::Rescope => {
                    let (st, v) = node.call(
                        "PUT",
                        &path,
                        Some(&admin),
                        Some(json!({ "name": format!("coherence-{round}"), "scopes": ["tokens:read"] })),
                    );
                    assert_eq!(st, 200, "PUT on {}: {v}", node.name);
                    (token.clone(), Expect::Valid(vec!["tokens:read"]))
                }
                Change::Rotate => {
                    let (st, v) = node.call("POST", &format!("{path}/rotate"), Some(&admin), None);
                    assert_eq!(st, 201, "rotate on {}: {v}", node.name);
                    let old = token.clone();
                    id = v["id"].as_str().unwrap().to_owned();
                    token = v["token"].as_str().unwrap().to_owned();
                    // The old token expires at once (no grace period).
                    (old, Expect::Code("EXPIRED"))
                }
                Change::Delete => {
                    let (st, v) = node.call("DELETE", &path, Some(&admin), None);
                    assert_eq!(st, 204, "delete on {}: {v}", node.name);
                    (token.clone(), Expect::Code("NOT_FOUND"))
                }
            };
            let acked = Instant::now();
            let results: Vec<(usize, Result<Duration, String>)> = std::thread::scope(|s| {
                let handles: Vec<_> = others
                    .iter()
                    .map(|&o| {
                        let (n, t, e) = (&nodes[o], &subject, &next);
                        (o, s.spawn(move || await_state(n, t, e, acked)))
                    })
                    .collect();
                // The node that made the change sees it at once.
                assert_shows(
                    node,
                    &subject,
                    &next,
                    &format!("round {round}: {change:?} on the node that made it"),
                );
                handles
                    .into_iter()
                    .map(|(o, h)| (o, h.join().unwrap()))
                    .collect()
            });
            for (o, r) in results {
                match r {
                    Ok(d) => seen.push((change, maker, o, d)),
                    Err(e) => panic!(
                        "round {round}: {change:?} made on {} was not seen on {} within \
                         {PROPAGATION_LIMIT:?}: {e}\n{}\n{}",
                        node.name,
                        nodes[o].name,
                        node.tail(),
                        nodes[o].tail()
                    ),
                }
            }
            state = next;
            if let Change::Rotate = change {
                // The new token works everywhere (and is now cached for the delete).
                let fresh = Expect::Valid(vec!["tokens:read"]);
                for n in &nodes {
                    assert_shows(
                        n,
                        &token,
                        &fresh,
                        &format!("round {round}: the rotated token"),
                    );
                }
                state = fresh;
            }
        }
    }

    assert_eq!(seen.len(), 3 * CHANGES.len() * 2);
    let mut all: Vec<Duration> = seen.iter().map(|s| s.3).collect();
    all.sort_unstable();
    println!(
        "propagation over {} observations: median {:.1} ms, worst {:.1} ms",
        all.len(),
        ms(median(&all)),
        ms(*all.last().unwrap())
    );
    let by_kind: Vec<String> = CHANGES
        .iter()
        .map(|c| {
            let mut d: Vec<Duration> = seen
                .iter()
                .filter(|s| std::mem::discriminant(&s.0) == std::mem::discriminant(c))
                .map(|s| s.3)
                .collect();
            d.sort_unstable();
            format!(
                "{c:?} median {:.1} ms / worst {:.1} ms",
                ms(median(&d)),
                ms(*d.last().unwrap())
            )
        })
        .collect();
    println!("propagation by change: {}", by_kind.join(", "));
}

// ---------------------------------------------------------------------------------------------
// 2. A concurrent first start
// ---------------------------------------------------------------------------------------------

#[test]
fn nodes_started_at_once_bootstrap_exactly_once() {
    let db = PgDatabase::create();
    let mut nodes: Vec<Server> = (0..3)
        .map(|i| node(&format!("node{i}"), &db.url, None).spawn())
        .collect();
    for n in &mut nodes {
        n.wait_until_listening();
    }
    // The secrets go to stdout before the listening line goes to stderr; the two are read by
    // different threads, so give the stdout readers a moment before counting.
    let token_marker = "Admin token (shown once): ";
    let password_marker = "Admin password (shown once): ";
    let deadline = Instant::now() + Duration::from_secs(10);
    while nodes.iter().all(|n| n.lines_after(token_marker).is_empty()) && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let outputs = || {
        nodes
            .iter()
            .map(|n| format!("--- {} ---\n{}", n.name, n.output()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let tokens: Vec<(usize, String)> = nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.lines_after(token_marker).into_iter().map(move |t| (i, t)))
        .collect();
    let passwords: Vec<usize> = nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.lines_after(password_marker).into_iter().map(move |_| i))
        .collect();
    assert_eq!(
        tokens.len(),
        1,
        "exactly one node prints the admin token; outputs:\n{}",
        outputs()
    );
    assert_eq!(
        passwords,
        vec![tokens[0].0],
        "exactly one node, the same, prints the admin password; outputs:\n{}",
        outputs()
    );
    let admin = tokens[0].1.clone();
    for n in &nodes {
        assert_eq!(readyz(n), 200, "{} is ready\n{}", n.name, n.tail());
        let (st, v) = n.call("GET", "/api/v1/tokens/self", Some(&admin), None);
        assert_eq!(st, 200, "the printed token works on {}: {v}", n.name);
        assert_eq!(v["scopes"], json!(["*"]), "on {}", n.name);
        let (st, v) = n.call(
            "GET",
            "/api/v1/audit?action=system.bootstrap",
            Some(&admin),
            None,
        );
        assert_eq!(st, 200, "audit on {}: {v}", n.name);
        let items = v["items"].as_array().expect("items");
        assert_eq!(
            items.len(),
            1,
            "one system.bootstrap entry, seen from {}: {v}",
            n.name
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Last use from every node
// ---------------------------------------------------------------------------------------------

#[test]
fn last_use_from_every_node_is_recorded() {
    let db = PgDatabase::create();
    let admin = fresh_token();
    let a = node("A", &db.url, Some(&admin)).start();
    let b = node("B", &db.url, Some(&admin)).start();
    let c = node("C", &db.url, Some(&admin)).start();
    let (id_a, t_a) = c.create_token("used-on-a", &["tokens:read"]);
    let (id_b, t_b) = c.create_token("used-on-b", &["tokens:read"]);
    let (id_both, t_both) = c.create_token("used-on-both", &["tokens:read"]);
    for id in [&id_a, &id_b, &id_both] {
        let (st, v) = c.call("GET", &format!("/api/v1/tokens/{id}"), Some(&admin), None);
        assert_eq!(st, 200, "{v}");
        assert!(v["lastUsedAt"].is_null(), "not used yet: {v}");
    }
    let valid = Expect::Valid(vec!["tokens:read"]);
    assert_shows(&a, &t_both, &valid, "first use of the shared token, on A");
    assert_shows(&a, &t_a, &valid, "use on A");
    assert_shows(&b, &t_b, &valid, "use on B");
    // Last use is recorded at most once per token per second on a node: let a second pass so
    // the later use is clearly later.
    std::thread::sleep(Duration::from_millis(1200));
    let before_second_use = OffsetDateTime::now_utc();
    assert_shows(&b, &t_both, &valid, "second use of the shared token, on B");
    // Stored to the millisecond.
    let before_second_ms = before_second_use.unix_timestamp_nanos() / 1_000_000;

    let get = |id: &str| {
        let (st, v) = c.call("GET", &format!("/api/v1/tokens/{id}"), Some(&admin), None);
        assert_eq!(st, 200, "{v}");
        v
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let (va, vb, vboth) = loop {
        let (va, vb, vboth) = (get(&id_a), get(&id_b), get(&id_both));
        let both_later = maybe_time_of(&vboth["lastUsedAt"])
            .is_some_and(|t| t.unix_timestamp_nanos() / 1_000_000 >= before_second_ms);
        let done = !va["lastUsedAt"].is_null() && !vb["lastUsedAt"].is_null() && both_later;
        if done || Instant::now() > deadline {
            break (va, vb, vboth);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let context = format!(
        "seen from C after 10 s:\nused on A: {va}\nused on B: {vb}\nused on both: {vboth}\n{}\n{}\n{}",
        a.tail(),
        b.tail(),
        c.tail()
    );
    let last_a =
        maybe_time_of(&va["lastUsedAt"]).unwrap_or_else(|| panic!("use on A recorded; {context}"));
    let last_b =
        maybe_time_of(&vb["lastUsedAt"]).unwrap_or_else(|| panic!("use on B recorded; {context}"));
    let last_both = maybe_time_of(&vboth["lastUsedAt"])
        .unwrap_or_else(|| panic!("shared token's use recorded; {context}"));
    assert!(
        last_both.unix_timestamp_nanos() / 1_000_000 >= before_second_ms,
        "the token used on both nodes keeps the later use (B's, at or after {before_second_use}), \
         not A's; {context}"
    );
    assert!(
        last_a < before_second_use && last_b < before_second_use,
        "the single uses were recorded at their own (earlier) times; {context}"
    );
    assert!(last_both > last_a && last_both > last_b, "{context}");
    for v in [&va, &vb, &vboth] {
        assert_eq!(v["lastUsedIp"], "127.0.0.1", "last-use address; {context}");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. A database restart under running nodes (a throwaway cluster)
// ---------------------------------------------------------------------------------------------

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The newest `/usr/lib/postgresql/N/bin` that holds `initdb`.
fn pg_bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let v: u32 = e.file_name().to_str()?.parse().ok()?;
                    let bin = e.path().join("bin");
                    bin.join("initdb").exists().then_some((v, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .unwrap_or_else(|| panic!("the fault test needs PostgreSQL server binaries (initdb, pg_ctl) in /usr/lib/postgresql/N/bin"))
}

/// A PostgreSQL cluster of its own in a temporary directory, on a free port; stopped on drop.
/// The machine's shared cluster is never touched.
struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl PgCluster {
    fn start() -> PgCluster {
        let bin = pg_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("keygate-pg-")
            .tempdir()
            .expect("temp dir");
        if is_root() {
            // initdb refuses to run as root.
            let st = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(
                st.success(),
                "chown of the throwaway cluster's directory to `postgres` failed (is there a postgres user?)"
            );
        }
        let c = PgCluster {
            dir,
            bin,
            port: free_port(),
        };
        c.run(&format!(
            "'{}' -D '{}' -A trust -U postgres --no-sync",
            c.bin.join("initdb").display(),
            c.data().display()
        ))
        .unwrap_or_else(|e| panic!("initdb of the throwaway cluster failed: {e}"));
        c.start_server();
        c
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs a shell command as `postgres` (or as this user when not root).
    fn run(&self, cmd: &str) -> Result<String, String> {
        let mut c = if is_root() {
            let mut c = Command::new("su");
            c.args(["postgres", "-c", cmd]);
            c
        } else {
            let mut c = Command::new("sh");
            c.args(["-c", cmd]);
            c
        };
        let out = c
            .current_dir(self.path())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{cmd}: {e}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!("{cmd}: {}\n{text}", out.status))
        }
    }

    fn pg_ctl(&self, args: &str) -> Result<String, String> {
        self.run(&format!(
            "'{}' -D '{}' {args}",
            self.bin.join("pg_ctl").display(),
            self.data().display()
        ))
    }

    fn start_server(&self) {
        let dir = self.path().display();
        self.pg_ctl(&format!(
            "-o '-p {} -k {dir} -c listen_addresses=127.0.0.1' -l '{dir}/log' -w -t 60 start",
            self.port
        ))
        .unwrap_or_else(|e| panic!("starting the throwaway cluster failed: {e}\n{}", self.log()));
    }

    /// Stops it the way `pg_ctlcluster … restart` does (fast: connections are cut).
    fn stop_server(&self) {
        self.pg_ctl("-m fast -w -t 60 stop").unwrap_or_else(|e| {
            panic!("stopping the throwaway cluster failed: {e}\n{}", self.log())
        });
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path().join("log")).unwrap_or_default()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl("-m immediate -w stop");
    }
}

#[test]
fn nodes_ride_out_a_database_restart() {
    let cluster = PgCluster::start();
    let db = PgDatabase::create_on(&cluster.url());
    let admin = fresh_token();
    let a = node("A", &db.url, Some(&admin)).start();
    let b = node("B", &db.url, Some(&admin)).start();
    let nodes = [&a, &b];
    let valid = Expect::Valid(vec!["tokens:read"]);

    let (t1_id, t1) = a.create_token("cached", &["tokens:read"]);
    let (_, t2) = a.create_token("never-verified", &["tokens:read"]);
    // Acknowledged changes before the stop: three tokens, one deleted, one disabled.
    let (k1_id, k1) = a.create_token("kept", &["tokens:read"]);
    let (k2_id, k2) = b.create_token("deleted", &["tokens:read"]);
    let (k3_id, k3) = b.create_token("disabled", &["tokens:read"]);
    let (st, v) = a.call(
        "DELETE",
        &format!("/api/v1/tokens/{k2_id}"),
        Some(&admin),
        None,
    );
    assert_eq!(st, 204, "{v}");
    let (st, v) = b.call(
        "POST",
        &format!("/api/v1/tokens/{k3_id}/disable"),
        Some(&admin),
        None,
    );
    assert_eq!(st, 200, "{v}");
    for n in nodes {
        assert_eq!(readyz(n), 200, "{} ready before the stop", n.name);
        assert_shows(n, &t1, &valid, "T1 before the stop (now cached)");
    }

    cluster.stop_server();
    let stopped = Instant::now();
    for n in nodes {
        let took = await_readyz(n, 503, READY_LIMIT);
        println!(
            "{}: /readyz 503 {:.0} ms after the database stopped",
            n.name,
            ms(took)
        );
    }
    for n in nodes {
        // Cached: answered without the database.
        assert_shows(n, &t1, &valid, "T1 (cached) while the database is down");
        // Not cached: must fail closed.
        let (st, v) = verify(n, &t2);
        println!(
            "{}: verify of an uncached token while the database is down: {st} {v}",
            n.name
        );
        assert!(
            !(st == 200 && v["valid"] == true),
            "{}: an uncached token must not verify while the database is down: {st} {v}",
            n.name
        );
        // A write cannot be acknowledged.
        let (st, v) = n.call(
            "POST",
            "/api/v1/tokens",
            Some(&admin),
            Some(json!({ "name": "during-outage", "scopes": ["tokens:read"] })),
        );
        assert_eq!(
            st, 503,
            "{}: a write while the database is down: {v}",
            n.name
        );
        assert_eq!(v["code"], "unavailable", "{}: {v}", n.name);
    }
    println!("database down for {:.1} s", stopped.elapsed().as_secs_f64());

    cluster.start_server();
    // A change on A as soon as A can make it, before B has necessarily reconnected its listener.
    let back = Instant::now();
    loop {
        let (st, v) = a.call(
            "POST",
            &format!("/api/v1/tokens/{t1_id}/disable"),
            Some(&admin),
            None,
        );
        if st == 200 {
            break;
        }
        assert!(
            back.elapsed() < READY_LIMIT,
            "A could not disable T1 within {READY_LIMIT:?} of the database's return: {st} {v}\n{}",
            a.tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let acked = Instant::now();
    println!(
        "A: first write accepted {:.0} ms after the database was back",
        ms(acked - back)
    );
    assert_shows(
        &a,
        &t1,
        &Expect::Code("DISABLED"),
        "T1 on A after A disabled it",
    );
    match await_state(&b, &t1, &Expect::Code("DISABLED"), acked) {
        Ok(d) => println!("B saw the post-restart change after {:.1} ms", ms(d)),
        Err(e) => panic!(
            "a change made on A after the database restart did not reach B within \
             {PROPAGATION_LIMIT:?}: {e}\n{}\n{}",
            a.tail(),
            b.tail()
        ),
    }
    for n in nodes {
        let took = await_readyz(n, 200, READY_LIMIT);
        println!(
            "{}: /readyz 200 again {:.0} ms after the database was back",
            n.name,
            ms(took)
        );
    }

    // Nothing acknowledged before the stop was lost, and the outage left no false answers behind.
    for n in nodes {
        let ctx = format!("after the restart, on {}", n.name);
        assert_shows(n, &t2, &valid, &ctx);
        assert_shows(n, &k1, &valid, &ctx);
        assert_shows(n, &k2, &Expect::Code("NOT_FOUND"), &ctx);
        assert_shows(n, &k3, &Expect::Code("DISABLED"), &ctx);
        let (st, v) = n.call(
            "GET",
            &format!("/api/v1/tokens/{k1_id}"),
            Some(&admin),
            None,
        );
        assert_eq!(st, 200, "{ctx}: {v}");
        assert_eq!(v["enabled"], true, "{ctx}: {v}");
        let (st, v) = n.call(
            "GET",
            &format!("/api/v1/tokens/{k2_id}"),
            Some(&admin),
            None,
        );
        assert_eq!(st, 404, "{ctx}: the deleted token stays deleted: {v}");
        let (st, v) = n.call(
            "GET",
            &format!("/api/v1/tokens/{k3_id}"),
            Some(&admin),
            None,
        );
        assert_eq!(st, 200, "{ctx}: {v}");
        assert_eq!(v["enabled"], false, "{ctx}: {v}");
        let (st, v) = n.call(
            "GET",
            &format!("/api/v1/tokens/{t1_id}"),
            Some(&admin),
            None,
        );
        assert_eq!(st, 200, "{ctx}: {v}");
        assert_eq!(v["enabled"], false, "{ctx}: {v}");
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Listener connections cut (the reconciliation path, on the shared cluster)
// ---------------------------------------------------------------------------------------------

#[test]
fn a_change_made_while_listeners_are_cut_still_arrives() {
    let db = PgDatabase::create();
    let admin = fresh_token();
    let a = node("A", &db.url, Some(&admin)).start();
    let b = node("B", &db.url, Some(&admin)).start();
    let (id, token) = a.create_token("listener-cut", &["tokens:read"]);
    assert_shows(
        &b,
        &token,
        &Expect::Valid(vec!["tokens:read"]),
        "cached on B",
    );
    // Only this test's database's LISTEN connections are cut; nothing else is touched.
    let cut = format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = '{}' AND query LIKE 'LISTEN %' AND pid <> pg_backend_pid()",
        db.name
    );
    let mut times = Vec::new();
    for round in 0..6 {
        // Wait until the listeners are back from the previous cut, then cut them again.
        let deadline = Instant::now() + READY_LIMIT;
        let n = loop {
            let n: u32 = common::psql(&db.admin_url, &cut)
                .unwrap_or_else(|e| panic!("terminating listener connections: {e}"))
                .parse()
                .unwrap();
            if n > 0 || Instant::now() > deadline {
                break n;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            n > 0,
            "round {round}: no node is listening for changes (no LISTEN connection on the \
             database) {READY_LIMIT:?} after the previous cut\n{}\n{}",
            a.tail(),
            b.tail()
        );
        let (action, want) = if round % 2 == 0 {
            ("disable", Expect::Code("DISABLED"))
        } else {
            ("enable", Expect::Valid(vec!["tokens:read"]))
        };
        let (st, v) = a.call(
            "POST",
            &format!("/api/v1/tokens/{id}/{action}"),
            Some(&admin),
            None,
        );
        assert_eq!(st, 200, "{action} on A: {v}");
        let acked = Instant::now();
        match await_state(&b, &token, &want, acked) {
            Ok(d) => times.push(d),
            Err(e) => panic!(
                "round {round}: {action} made on A just after the listeners were cut did not \
                 reach B within {PROPAGATION_LIMIT:?}: {e}\n{}\n{}",
                a.tail(),
                b.tail()
            ),
        }
    }
    times.sort_unstable();
    println!(
        "propagation with listener connections just cut, over {} changes: median {:.1} ms, worst {:.1} ms",
        times.len(),
        ms(median(&times)),
        ms(*times.last().unwrap())
    );
}

// ---------------------------------------------------------------------------------------------
// A tenant's last admin, with one request per node
// ---------------------------------------------------------------------------------------------

fn new_admin(node: &Server, token: &str, username: &str) -> String {
    let (st, v) = node.call(
        "POST",
        "/api/v1/users",
        Some(token),
        Some(json!({ "username": username, "password": "admin-password-1", "role": "admin" })),
    );
    assert_eq!(st, 201, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

/// Demotes (`delete` false) or deletes the user.
fn take_admin_away(node: &Server, token: &str, id: &str, delete: bool) -> (u16, Value) {
    let path = format!("/api/v1/users/{id}");
    if delete {
        node.call("DELETE", &path, Some(token), None)
    } else {
        node.call(
            "PATCH",
            &path,
            Some(token),
            Some(json!({ "role": "member" })),
        )
    }
}

#[test]
fn two_nodes_removing_a_tenants_two_admins_at_once_leave_one() {
    const ROUNDS: usize = 12;
    let db = PgDatabase::create();
    let bootstrap = fresh_token();
    let nodes = [
        node("node0", &db.url, Some(&bootstrap)).start(),
        node("node1", &db.url, Some(&bootstrap)).start(),
    ];
    // A token of the tenant itself, so that deleting any user is not deleting oneself.
    let (st, v) = nodes[0].call(
        "POST",
        "/api/v1/tokens",
        Some(&bootstrap),
        Some(json!({ "name": "service", "scopes": ["*"], "ownerId": "default" })),
    );
    assert_eq!(st, 201, "{v}");
    let svc = v["token"].as_str().unwrap().to_owned();
    let first = admin_ids(&nodes[0], &svc);
    let mut survivor = new_admin(&nodes[0], &svc, "first");
    for id in first {
        assert_eq!(take_admin_away(&nodes[0], &svc, &id, false).0, 200);
    }
    for round in 0..ROUNDS {
        let pair = [
            survivor.clone(),
            new_admin(&nodes[0], &svc, &format!("second-{round}")),
        ];
        let deletes = [round % 3 == 1, round % 3 != 0];
        let start = std::sync::Barrier::new(2);
        let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..2)
                .map(|i| {
                    let (node, id, start, svc) = (&nodes[i], &pair[i], &start, &svc);
                    scope.spawn(move || {
                        start.wait();
                        take_admin_away(node, svc, id, deletes[i])
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let left = admin_ids(&nodes[1], &svc);
        assert!(
            !left.is_empty(),
            "round {round}: no admin left: {answers:?}"
        );
        let won = answers
            .iter()
            .filter(|(st, _)| matches!(st, 200 | 204))
            .count();
        assert_eq!(won, 1, "round {round}: {answers:?}");
        let (_, lost) = answers.iter().find(|(st, _)| *st == 409).expect("a 409");
        assert!(
            lost["message"].as_str().unwrap().contains("last admin"),
            "{lost}"
        );
        survivor = left[0].clone();
    }
}

/// A PostgreSQL that nobody listens for is reported with its cause, "connection refused", and
/// the start fails at once rather than after waiting for a pool that can never fill.
#[test]
fn a_refused_postgres_connection_fails_the_start_with_its_cause() {
    let failed = Server::on(Backend::Postgres)
        .database_url("postgres://postgres@127.0.0.1:1/x")
        .default_data_dir()
        .secrets_from_test()
        .default_log_filter()
        .fail();
    let stderr = failed.stderr;
    assert!(!failed.status.success(), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("connection refused"),
        "the cause is not named:\n{stderr}"
    );
    assert!(!stderr.contains("timed out"), "{stderr}");
}

/// A second node finds the schema in place; PostgreSQL's notices about it (`relation
/// "_sqlx_migrations" already exists, skipping`) are no news to an operator and are not logged.
#[test]
fn a_second_node_logs_no_postgres_notice_at_start() {
    let db = PgDatabase::create();
    let token = fresh_token();
    let first = node("first", &db.url, Some(&token)).start();
    let second = node("second", &db.url, Some(&token)).start();
    for node in [&first, &second] {
        let out = node.output();
        assert!(
            !out.contains("already exists") && !out.contains("sqlx::postgres::notice"),
            "{}:\n{out}",
            node.name
        );
    }
}
