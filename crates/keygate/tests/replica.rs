//! `keygate-client` in an axum application in front of a real keygate: tokens created in
//! keygate are accepted by the application, and a revoke, disable or scope change made on any
//! node is refused by it (on SQLite, and on two nodes sharing PostgreSQL); with keygate gone the
//! application answers from its replica until `max_staleness`, then fails closed, and recovers
//! when keygate is back; a replica whose cursor was pruned while it was away takes a new
//! snapshot and catches up.
//!
//! Run with `--nocapture` to see the propagation figures (from a change's answer to the
//! application's first refusal). The assertions bound correctness, not speed: a change the
//! application has not refused within `PROPAGATION_LIMIT` was lost. BENCHMARKS.md has the
//! figures of a quiet machine.

mod common;
use common::*;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::{Extension, Json, Router};
use keygate_client::{KeygateLayer, KeygateToken, Options, Replica, Verified};
use serde_json::{json, Value};

const PROPAGATION_LIMIT: Duration = Duration::from_secs(5);
const CHANGES: usize = 100;

keygate_client::scopes!(ReadOrders = "orders:read");

const ORDER_SCOPES: [&str; 6] = [
    "--scope",
    "orders:read=Read orders",
    "--scope",
    "orders:write=Write orders",
    "--scope",
    "orders:admin=Manage orders",
];

/// The protected API: `GET /orders` needs `orders:read` (the extractor), `/admin/report` needs
/// `orders:admin` (the layer). It runs on a runtime of its own, so the test's blocking HTTP
/// calls never stall it.
struct App {
    url: String,
    replica: Replica,
    /// Runs the application and the replica's follower; dropped with the application.
    _rt: tokio::runtime::Runtime,
    http: reqwest::blocking::Client,
}

async fn orders(token: KeygateToken<ReadOrders>) -> Json<Value> {
    Json(json!({ "tokenId": token.id() }))
}

async fn report(Extension(Verified(token)): Extension<Verified>) -> Json<Value> {
    Json(json!({ "tokenId": token.id() }))
}

impl App {
    fn start(keygate_url: &str, replication_token: &str, options: Options) -> App {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (url, replica) = rt.block_on(async {
            let replica = Replica::connect(keygate_url, replication_token, options)
                .await
                .expect("the replica connects and takes its snapshot");
            let admin = Router::new()
                .route("/admin/report", get(report))
                .layer(KeygateLayer::new(replica.clone()).require(&["orders:admin"]));
            let app = Router::new()
                .route("/orders", get(orders))
                .merge(admin)
                .layer(Extension(replica.clone()));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(async move {
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .await
                .unwrap()
            });
            (url, replica)
        });
        App {
            url,
            replica,
            _rt: rt,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    /// The status and body the application answers `GET path` with this token.
    fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .expect("the application answers");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// Polls `GET /orders` until it answers `want`; the time since `since`.
    fn await_status(&self, token: &str, want: u16, since: Instant, what: &str) -> Duration {
        loop {
            let (status, body) = self.get("/orders", token);
            let elapsed = since.elapsed();
            if status == want {
                return elapsed;
            }
            assert!(
                elapsed < PROPAGATION_LIMIT,
                "{what}: the application still answers {status} {body} after {elapsed:?}, \
                 expected {want}; replica: {:?}",
                self.replica.stats()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A node on the shared database, with the bootstrap token `admin`.
fn pg_node(name: &str, db: &PgDatabase, admin: &str, args: &[&str]) -> Server {
    Server::on(Backend::Postgres)
        .name(name)
        .database_url(&db.url)
        .bootstrap_token(admin)
        .args(&ORDER_SCOPES)
        .args(args)
        .start()
}

fn replication_token(kg: &Server) -> String {
    kg.create_token("replica", &["tokens:replicate"]).1
}

#[derive(Debug, Clone, Copy)]
enum Change {
    Revoke,
    Disable,
    Rescope,
}

/// Makes the change on `node` and returns once it has answered.
fn make(node: &Server, change: Change, id: &str) {
    let (status, body) = match change {
        Change::Revoke => node.call(
            "DELETE",
            &format!("/api/v1/tokens/{id}"),
            Some(&node.admin_token),
            None,
        ),
        Change::Disable => node.call(
            "POST",
            &format!("/api/v1/tokens/{id}/disable"),
            Some(&node.admin_token),
            None,
        ),
        Change::Rescope => node.call(
            "PUT",
            &format!("/api/v1/tokens/{id}"),
            Some(&node.admin_token),
            Some(json!({ "name": "rescoped", "scopes": ["orders:write"] })),
        ),
    };
    assert!(
        (200..300).contains(&status),
        "{change:?} on {}: {status} {body}",
        node.name
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// `CHANGES` rounds on the nodes in turn: a token made on one node is accepted by the
/// application, then changed on the next node and refused by it. Prints the figures.
fn changes_reach_the_app(nodes: &[&Server], app: &App, label: &str) {
    let kinds = [Change::Revoke, Change::Disable, Change::Rescope];
    let mut created = Vec::with_capacity(CHANGES);
    let mut refused = Vec::with_capacity(CHANGES);
    for i in 0..CHANGES {
        let maker = nodes[i % nodes.len()];
        let changer = nodes[(i + 1) % nodes.len()];
        let (id, token) = maker.create_token(&format!("round-{i}"), &["orders:read"]);
        let made = Instant::now();
        created.push(app.await_status(&token, 200, made, "a created token"));
        let (status, body) = app.get("/orders", &token);
        assert_eq!((status, body["tokenId"].as_str()), (200, Some(id.as_str())));
        let change = kinds[i % kinds.len()];
        make(changer, change, &id);
        let answered = Instant::now();
        let want = match change {
            Change::Revoke | Change::Disable => 401,
            Change::Rescope => 403,
        };
        refused.push(app.await_status(&token, want, answered, &format!("{change:?}")));
        let (_, body) = app.get("/orders", &token);
        let code = body["code"].as_str().unwrap_or_default();
        let expected = match change {
            Change::Revoke => "invalid_token",
            Change::Disable => "token_disabled",
            Change::Rescope => "insufficient_scope",
        };
        assert_eq!(code, expected, "{change:?}: {body}");
    }
    created.sort();
    refused.sort();
    println!(
        "{label}: {CHANGES} changes; create → accepted p50 {:.1} ms, p99 {:.1} ms; \
         change → refused p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(percentile(&created, 0.5)),
        ms(percentile(&created, 0.99)),
        ms(percentile(&refused, 0.5)),
        ms(percentile(&refused, 0.99)),
        ms(*refused.last().unwrap()),
    );
}

#[test]
fn changes_on_sqlite_reach_the_app() {
    let kg = Server::on(Backend::Sqlite).args(&ORDER_SCOPES).start();
    let app = App::start(&kg.url(""), &replication_token(&kg), Options::default());
    // The layer asks for orders:admin, checked from the replica too.
    let (_, admin) = kg.create_token("admin of orders", &["orders:admin"]);
    let (_, reader) = kg.create_token("reader", &["orders:read"]);
    let since = Instant::now();
    app.await_status(&reader, 200, since, "a created token");
    assert_eq!(app.get("/admin/report", &admin).0, 200);
    let (status, body) = app.get("/admin/report", &reader);
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("insufficient_scope"))
    );
    assert_eq!(app.get("/orders", &fresh_token()).0, 401);
    assert_eq!(app.get("/orders", "not a token").0, 401);
    changes_reach_the_app(&[&kg], &app, "SQLite");
    let stats = app.replica.stats();
    assert_eq!(stats.snapshots, 1, "{stats:?}");
    assert_eq!(stats.delegated, 0, "no token had limits: {stats:?}");
}

#[test]
fn changes_on_either_of_two_postgres_nodes_reach_the_app() {
    let db = PgDatabase::create();
    let admin = fresh_token();
    let a = pg_node("node-a", &db, &admin, &[]);
    let b = pg_node("node-b", &db, &admin, &[]);
    // The replica follows node A; half the changes are made on node B.
    let app = App::start(&a.url(""), &replication_token(&a), Options::default());
    changes_reach_the_app(&[&a, &b], &app, "two PostgreSQL nodes");
}

/// A token with a rate limit is not decided by the replica: keygate counts it.
#[test]
fn a_token_with_a_rate_limit_is_verified_by_keygate() {
    let kg = Server::on(Backend::Sqlite).args(&ORDER_SCOPES).start();
    let app = App::start(&kg.url(""), &replication_token(&kg), Options::default());
    let (_, limited) = kg.create_token_from(json!({
        "name": "limited",
        "scopes": ["orders:read"],
        "ratelimits": [{ "name": "requests", "limit": 2, "durationMs": 60000, "autoApply": true }],
    }));
    // The first use is the one that finds the token replicated.
    app.await_status(&limited, 200, Instant::now(), "a limited token");
    assert_eq!(app.get("/orders", &limited).0, 200, "the second use");
    let (status, body) = app.get("/orders", &limited);
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("rate_limited")),
        "the third use"
    );
    assert!(app.replica.stats().delegated >= 3);
}

#[test]
fn with_keygate_gone_the_app_answers_until_max_staleness_then_fails_closed() {
    // A fixed port: the restarted keygate must be where the replica looks for it.
    let mut kg = Server::on(Backend::Sqlite)
        .args(&ORDER_SCOPES)
        .listen(&format!("127.0.0.1:{}", free_port()))
        .start();
    let max_staleness = Duration::from_secs(3);
    let wait = Duration::from_secs(1);
    let app = App::start(
        &kg.url(""),
        &replication_token(&kg),
        Options::default()
            .with_max_staleness(max_staleness)
            .with_wait(wait),
    );
    let (_, token) = kg.create_token("reader", &["orders:read"]);
    app.await_status(&token, 200, Instant::now(), "a created token");
    kg.kill9();
    let gone = Instant::now();
    // Last contact was at most one long-poll ago: the replica still answers.
    assert_eq!(
        app.get("/orders", &token).0,
        200,
        "right after keygate went"
    );
    let stale_after = app.await_status(&token, 503, gone, "keygate gone");
    let (_, body) = app.get("/orders", &token);
    assert_eq!(body["code"], "unavailable", "{body}");
    // It cannot go stale before max_staleness has passed since its last contact, which was at
    // most one wait (plus the answer's way back) before keygate went.
    assert!(
        stale_after >= max_staleness - wait - Duration::from_millis(500),
        "failed closed after {stale_after:?}, before max_staleness"
    );
    println!("answered from the replica for {stale_after:?} after keygate went");
    kg.restart();
    let back = Instant::now();
    app.await_status(&token, 200, back, "keygate back");
    assert!(app.replica.stats().reconnects >= 1);
}

/// Node A is frozen (SIGSTOP) while node B revokes and creates tokens, and past the retention
/// of the change stream: when A thaws, the replica's cursor is too old (410), it takes a new
/// snapshot and shows B's changes.
#[test]
fn a_replica_whose_cursor_was_pruned_takes_a_new_snapshot() {
    let db = PgDatabase::create();
    let admin = fresh_token();
    let retention = ["--replication-retention", "1s"];
    let a = pg_node("node-a", &db, &admin, &retention);
    let b = pg_node("node-b", &db, &admin, &retention);
    let app = App::start(
        &a.url(""),
        &replication_token(&a),
        Options::default().with_wait(Duration::from_secs(1)),
    );
    let (revoked_id, revoked) = a.create_token("to revoke", &["orders:read"]);
    app.await_status(&revoked, 200, Instant::now(), "a created token");
    let signal = |sig: &str| {
        let st = Command::new("kill")
            .args([sig, &a.pid().to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "kill {sig}");
    };
    signal("-STOP");
    make(&b, Change::Revoke, &revoked_id);
    let (_, created) = b.create_token("made meanwhile", &["orders:read"]);
    // Past the retention and a prune (every tenth of it) on node B.
    std::thread::sleep(Duration::from_secs(3));
    signal("-CONT");
    let thawed = Instant::now();
    app.await_status(&revoked, 401, thawed, "revoked while away");
    app.await_status(&created, 200, thawed, "created while away");
    let stats = app.replica.stats();
    assert!(stats.resyncs >= 1, "a new snapshot was taken: {stats:?}");
}
