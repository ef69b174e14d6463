//! Crash consistency: client threads create, revoke and rotate tokens against a real
//! `keygate serve` while the test kills it with SIGKILL at random moments, restarts it on the
//! same database and checks, after every kill, that
//!
//! - every acknowledged create verifies valid, every acknowledged revoke verifies not found, and
//!   after an acknowledged rotation the new token is valid and the old one valid only until the
//!   end of its grace period;
//! - every change in flight at the kill ended in one of its two states, whole;
//! - the list API, the verify API and the audit log tell the same story, with no token and no
//!   audit entry that nobody asked for;
//! - the database itself is consistent (SQLite: `integrity_check` and `foreign_key_check` on the
//!   file opened read-only after the kill; both backends: the schema's invariants by SQL).
//!
//! The kill moments, the operations and their targets come from one seeded RNG; the seed is
//! printed, and `KEYGATE_CRASH_SEED=<seed>` replays the same choices (thread timing still varies).

mod common;
use common::*;

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::blocking::Client;
use serde_json::{json, Value};

/// Client threads writing at once: more than the machine's cores, so writes queue and the
/// SQLite group committer puts several of them in one transaction.
const WORKERS: usize = 6;
/// Kills per run on each backend: each restart is one more chance to find a torn write.
const ROUNDS: usize = 6;
/// How long the clients run between a restart and the next kill, in milliseconds.
const RUN_MS: std::ops::Range<u64> = 150..1200;
/// Every token this test makes is named so; nothing else in the database is.
const NAME_PREFIX: &str = "crash-";
/// How long a stage (all clients noticing the kill, a restart) may take before the test gives up.
const STAGE_TIMEOUT: Duration = Duration::from_secs(60);

fn parse_ms(v: &Value) -> Option<i64> {
    maybe_time_of(v).map(unix_ms)
}

// ---- what the clients know ----

/// When a token stops being valid: somewhere in `[lo, hi]` (Unix ms), as far as the client can
/// tell from when it sent the rotation and when (if ever) the answer came.
#[derive(Debug, Clone, Copy)]
struct Window {
    lo: i64,
    hi: i64,
}

#[derive(Debug)]
struct Tracked {
    id: String,
    name: String,
    /// The plaintext, when the client saw the answer that carried it.
    plain: Option<String>,
    revoked: bool,
    /// Set by a rotation: the old token expires at the end of its grace period.
    expires: Option<Window>,
}

impl Tracked {
    fn rotatable(&self) -> bool {
        !self.revoked && self.expires.is_none()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        name: String,
    },
    Revoke {
        id: String,
    },
    /// `grace: None` sends no body at all (the default grace period, 0).
    Rotate {
        id: String,
        grace: Option<u64>,
    },
}

/// An operation whose answer never arrived: the kill came first.
#[derive(Debug)]
struct InFlight {
    op: Op,
    sent_ms: i64,
    /// A 2xx status line arrived but its body did not: the change was acknowledged.
    acknowledged: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    creates: usize,
    revokes: usize,
    rotations: usize,
    rotations_with_grace: usize,
    verifies: usize,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.creates += o.creates;
        self.revokes += o.revokes;
        self.rotations += o.rotations;
        self.rotations_with_grace += o.rotations_with_grace;
        self.verifies += o.verifies;
    }
}

/// One client's view of its own tokens. A client only touches tokens it made (or that its
/// rotations made), so the order of changes to any one token is the order the client sent them.
#[derive(Debug)]
struct Model {
    worker: usize,
    tokens: Vec<Tracked>,
    /// (action, target id) of every change that was acknowledged or found to have happened.
    audit: Vec<(&'static str, String)>,
    /// old id → new id, for every rotation that happened.
    successors: HashMap<String, String>,
    in_flight: Option<InFlight>,
    names: usize,
    acked: Counts,
    /// In-flight operations found to have happened / not to have happened after a restart.
    in_flight_applied: usize,
    in_flight_not_applied: usize,
}

impl Model {
    fn new(worker: usize) -> Self {
        Model {
            worker,
            tokens: Vec::new(),
            audit: Vec::new(),
            successors: HashMap::new(),
            in_flight: None,
            names: 0,
            acked: Counts::default(),
            in_flight_applied: 0,
            in_flight_not_applied: 0,
        }
    }

    fn token_mut(&mut self, id: &str) -> &mut Tracked {
        self.tokens.iter_mut().find(|t| t.id == id).unwrap()
    }

    fn choose(&mut self, rng: &mut StdRng) -> Op {
        let live: Vec<usize> = (0..self.tokens.len())
            .filter(|&i| !self.tokens[i].revoked)
            .collect();
        let rotatable: Vec<usize> = (0..self.tokens.len())
            .filter(|&i| self.tokens[i].rotatable())
            .collect();
        let roll: f64 = rng.random();
        if live.len() >= 4 && roll < 0.3 {
            let i = live[rng.random_range(0..live.len())];
            return Op::Revoke {
                id: self.tokens[i].id.clone(),
            };
        }
        if !rotatable.is_empty() && roll < 0.65 && live.len() >= 2 {
            let i = rotatable[rng.random_range(0..rotatable.len())];
            let grace = match rng.random_range(0..4) {
                0 => None,
                1 => Some(0),
                // Short enough to run out while the test goes on, so both sides are checked.
                2 => Some(rng.random_range(1..=3)),
                _ => Some(3600),
            };
            return Op::Rotate {
                id: self.tokens[i].id.clone(),
                grace,
            };
        }
        self.names += 1;
        Op::Create {
            name: format!("{NAME_PREFIX}w{}-{}", self.worker, self.names),
        }
    }

    /// Records an acknowledged operation and its answer.
    fn acknowledge(&mut self, op: Op, sent_ms: i64, answered_ms: i64, body: Value) {
        match op {
            Op::Create { name } => {
                let id = body["id"].as_str().unwrap().to_owned();
                self.audit.push(("token.create", id.clone()));
                self.tokens.push(Tracked {
                    id,
                    name,
                    plain: Some(body["token"].as_str().unwrap().to_owned()),
                    revoked: false,
                    expires: None,
                });
                self.acked.creates += 1;
            }
            Op::Revoke { id } => {
                self.token_mut(&id).revoked = true;
                self.audit.push(("token.delete", id));
                self.acked.revokes += 1;
            }
            Op::Rotate { id, grace } => {
                let new_id = body["id"].as_str().unwrap().to_owned();
                let g = grace.unwrap_or(0) as i64 * 1000;
                let old = self.token_mut(&id);
                old.expires = Some(Window {
                    lo: sent_ms + g,
                    hi: answered_ms + g,
                });
                let name = old.name.clone();
                self.tokens.push(Tracked {
                    id: new_id.clone(),
                    name,
                    plain: Some(body["token"].as_str().unwrap().to_owned()),
                    revoked: false,
                    expires: None,
                });
                self.audit.push(("token.rotate", id.clone()));
                self.successors.insert(id, new_id);
                self.acked.rotations += 1;
                if grace.unwrap_or(0) > 0 {
                    self.acked.rotations_with_grace += 1;
                }
            }
        }
    }
}

// ---- the clients ----

/// What the clients and the test share: where the server is now, and who is waiting for it.
struct Shared {
    url: RwLock<String>,
    admin_token: String,
    gate: Mutex<Gate>,
    wake: Condvar,
}

#[derive(Default)]
struct Gate {
    /// Bumped by each restart; a client that lost the server waits for the next one.
    epoch: u64,
    /// Clients waiting for the next restart.
    parked: usize,
    stop: bool,
    failure: Option<String>,
}

impl Shared {
    /// The gate, even after a failed check panicked while holding it: the clients must still
    /// be told to stop, or the failure would hang instead of being reported.
    fn gate(&self) -> std::sync::MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fail(&self, why: String) {
        let mut g = self.gate();
        g.failure.get_or_insert(why);
        g.stop = true;
        self.wake.notify_all();
    }

    /// Waits until the server this client lost (in `epoch`) has been restarted; false = stop.
    fn park(&self, epoch: u64) -> bool {
        let mut g = self.gate();
        g.parked += 1;
        self.wake.notify_all();
        while g.epoch == epoch && !g.stop {
            g = self.wake.wait(g).unwrap();
        }
        !g.stop
    }
}

enum Answer {
    Status(u16, Value),
    /// No answer, or only part of one: the server died with the request in flight.
    Lost {
        acknowledged: bool,
    },
    /// No connection: the server had died before the request.
    Refused,
}

fn send(req: reqwest::blocking::RequestBuilder) -> Answer {
    let r = match req.send() {
        Ok(r) => r,
        // The server was already gone: the request was never sent.
        Err(e) if e.is_connect() => return Answer::Refused,
        Err(_) => {
            return Answer::Lost {
                acknowledged: false,
            }
        }
    };
    let status = r.status().as_u16();
    match r.text() {
        Ok(text) if text.is_empty() => Answer::Status(status, Value::Null),
        Ok(text) => match serde_json::from_str(&text) {
            Ok(v) => Answer::Status(status, v),
            Err(_) => Answer::Lost {
                acknowledged: (200..300).contains(&status),
            },
        },
        Err(_) => Answer::Lost {
            acknowledged: (200..300).contains(&status),
        },
    }
}

fn request(
    http: &Client,
    url: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
) -> reqwest::blocking::RequestBuilder {
    http.request(method, format!("{url}{path}"))
        .header("Authorization", format!("Bearer {token}"))
}

fn perform(http: &Client, url: &str, admin: &str, op: &Op) -> Answer {
    use reqwest::Method;
    match op {
        Op::Create { name } => send(
            request(http, url, admin, Method::POST, "/api/v1/tokens")
                .json(&json!({ "name": name, "scopes": ["tokens:read"] })),
        ),
        Op::Revoke { id } => send(request(
            http,
            url,
            admin,
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
        )),
        Op::Rotate { id, grace } => {
            let r = request(
                http,
                url,
                admin,
                Method::POST,
                &format!("/api/v1/tokens/{id}/rotate"),
            );
            send(match grace {
                Some(g) => r.json(&json!({ "gracePeriodSeconds": g })),
                None => r,
            })
        }
    }
}

fn expected_status(op: &Op) -> u16 {
    match op {
        Op::Create { .. } | Op::Rotate { .. } => 201,
        Op::Revoke { .. } => 204,
    }
}

/// A client: changes its own tokens until told to stop, and between changes checks that what
/// it was just told holds at once (a revoke is rejected at once, a new token works at once).
fn client(shared: &Shared, model: &Mutex<Model>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let http = Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    loop {
        let epoch = {
            let g = shared.gate();
            if g.stop {
                return;
            }
            g.epoch
        };
        let url = shared.url.read().unwrap().clone();
        let op = model.lock().unwrap().choose(&mut rng);
        let sent_ms = now_ms();
        let answer = perform(&http, &url, &shared.admin_token, &op);
        let answered_ms = now_ms();
        match answer {
            Answer::Status(status, body) if status == expected_status(&op) => {
                let mut m = model.lock().unwrap();
                m.acknowledge(op, sent_ms, answered_ms, body);
            }
            Answer::Status(status, body) => {
                return shared.fail(format!(
                    "client {}: {op:?} answered {status}: {body}",
                    model.lock().unwrap().worker
                ));
            }
            Answer::Refused => {
                if !shared.park(epoch) {
                    return;
                }
                continue;
            }
            Answer::Lost { acknowledged } => {
                model.lock().unwrap().in_flight = Some(InFlight {
                    op,
                    sent_ms,
                    acknowledged,
                });
                if !shared.park(epoch) {
                    return;
                }
                continue;
            }
        }
        if rng.random_bool(0.5) {
            if let Err(why) = spot_check(&http, &url, model, &mut rng) {
                return shared.fail(why);
            }
        }
    }
}

/// Verifies one of the client's tokens whose state does not depend on the clock. A lost answer
/// is not a failure: the kill may come at any moment.
fn spot_check(
    http: &Client,
    url: &str,
    model: &Mutex<Model>,
    rng: &mut StdRng,
) -> Result<(), String> {
    let (plain, want, worker) = {
        let m = model.lock().unwrap();
        let known: Vec<&Tracked> = m
            .tokens
            .iter()
            .filter(|t| t.plain.is_some() && t.expires.is_none())
            .collect();
        if known.is_empty() {
            return Ok(());
        }
        let t = known[rng.random_range(0..known.len())];
        let want = if t.revoked { "NOT_FOUND" } else { "VALID" };
        (t.plain.clone().unwrap(), want, m.worker)
    };
    let answer = send(
        http.post(format!("{url}/api/v1/verify"))
            .json(&json!({ "token": plain })),
    );
    if let Answer::Status(status, v) = answer {
        if status != 200 || v["code"] != want {
            return Err(format!(
                "client {worker}: verify right after the change answered {status} {v}, not {want}"
            ));
        }
        model.lock().unwrap().acked.verifies += 1;
    }
    Ok(())
}

// ---- what the server says after a restart ----

/// Everything the restarted server shows: its tokens by id and its audit log.
struct Seen {
    tokens: HashMap<String, Value>,
    audit: Vec<Value>,
}

impl Seen {
    fn fetch(s: &Server) -> Seen {
        let tokens = s
            .all_items("/api/v1/tokens")
            .into_iter()
            .map(|t| (t["id"].as_str().unwrap().to_owned(), t))
            .collect();
        Seen {
            tokens,
            audit: s.all_items("/api/v1/audit"),
        }
    }

    fn audit_entries<'a>(
        &'a self,
        action: &'a str,
        target: &'a str,
    ) -> impl Iterator<Item = &'a Value> {
        self.audit
            .iter()
            .filter(move |e| e["action"] == action && e["targetId"] == target)
    }

    fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Value> {
        self.tokens.values().filter(move |t| t["name"] == name)
    }
}

/// Decides what became of the change in flight at the kill, and fails unless it is one of the
/// two whole states: not applied at all, or applied with its audit entry.
fn resolve(m: &mut Model, seen: &Seen, killed_ms: i64, when: &str) {
    let Some(f) = m.in_flight.take() else { return };
    let applied = match &f.op {
        Op::Create { name } => {
            let found: Vec<&Value> = seen.named(name).collect();
            let logged = seen
                .audit
                .iter()
                .filter(|e| e["action"] == "token.create" && e["details"]["name"] == **name)
                .count();
            match found.as_slice() {
                [] => {
                    assert_eq!(logged, 0, "{when}: create of {name} not kept, but audited");
                    false
                }
                [t] => {
                    let id = t["id"].as_str().unwrap().to_owned();
                    assert_eq!(logged, 1, "{when}: create of {id} kept, audit entries");
                    m.audit.push(("token.create", id.clone()));
                    m.tokens.push(Tracked {
                        id,
                        name: name.clone(),
                        plain: None,
                        revoked: false,
                        expires: None,
                    });
                    true
                }
                more => panic!("{when}: one create of {name} made {} tokens", more.len()),
            }
        }
        Op::Revoke { id } => {
            let gone = !seen.tokens.contains_key(id);
            let logged = seen.audit_entries("token.delete", id).count();
            assert_eq!(
                logged,
                usize::from(gone),
                "{when}: revoke of {id}: stored {}, audit entries",
                !gone
            );
            if gone {
                m.token_mut(id).revoked = true;
                m.audit.push(("token.delete", id.clone()));
            }
            gone
        }
        Op::Rotate { id, grace } => {
            let entries: Vec<&Value> = seen.audit_entries("token.rotate", id).collect();
            let old = &seen.tokens[id];
            match entries.as_slice() {
                [] => {
                    assert!(
                        old["expiresAt"].is_null(),
                        "{when}: rotation of {id} not audited, but the old token expires: {old}"
                    );
                    false
                }
                [e] => {
                    let new_id = e["details"]["newTokenId"].as_str().unwrap().to_owned();
                    let new = seen.tokens.get(&new_id).unwrap_or_else(|| {
                        panic!("{when}: rotation of {id} audited, its successor {new_id} missing")
                    });
                    let g = grace.unwrap_or(0) as i64 * 1000;
                    let name = old["name"].as_str().unwrap().to_owned();
                    assert_eq!(new["name"], *name, "{when}: the successor keeps the name");
                    let t = m.token_mut(id);
                    t.expires = Some(Window {
                        lo: f.sent_ms + g,
                        hi: killed_ms + g,
                    });
                    m.tokens.push(Tracked {
                        id: new_id.clone(),
                        name,
                        plain: None,
                        revoked: false,
                        expires: None,
                    });
                    m.audit.push(("token.rotate", id.clone()));
                    m.successors.insert(id.clone(), new_id);
                    true
                }
                more => panic!("{when}: one rotation of {id} audited {} times", more.len()),
            }
        }
    };
    assert!(
        applied || !f.acknowledged,
        "{when}: {:?} was acknowledged (2xx) and then lost",
        f.op
    );
    if applied {
        m.in_flight_applied += 1;
    } else {
        m.in_flight_not_applied += 1;
    }
}

/// The verify code a token must get now, given what the list says of it.
fn check_token(s: &Server, t: &Tracked, seen: &Seen, when: &str) {
    let listed = seen.tokens.get(&t.id);
    if t.revoked {
        assert!(listed.is_none(), "{when}: revoked {} is still listed", t.id);
    } else {
        let listed = listed.unwrap_or_else(|| panic!("{when}: {} ({}) was lost", t.id, t.name));
        assert_eq!(listed["name"], *t.name, "{when}: {}", t.id);
        let expires = parse_ms(&listed["expiresAt"]);
        match (t.expires, expires) {
            (None, None) => {}
            (Some(w), Some(at)) => assert!(
                (w.lo..=w.hi).contains(&at),
                "{when}: {} expires at {at}, outside the grace window {w:?}",
                t.id
            ),
            (want, got) => panic!("{when}: {} expires at {got:?}, expected {want:?}", t.id),
        }
    }
    let Some(plain) = &t.plain else { return };
    let before = now_ms();
    let v = s.verify(plain, &[]);
    let after = now_ms();
    let code = v["code"].as_str().unwrap();
    let allowed: &[&str] = match listed.map(|l| parse_ms(&l["expiresAt"])) {
        None => &["NOT_FOUND"],
        Some(None) => &["VALID"],
        Some(Some(at)) if at > after => &["VALID"],
        Some(Some(at)) if at <= before => &["EXPIRED"],
        // It expired while the verify was on its way: either answer is right.
        Some(Some(_)) => &["VALID", "EXPIRED"],
    };
    assert!(
        allowed.contains(&code),
        "{when}: {} ({}) verifies {code}, the list says {allowed:?}: {v}",
        t.id,
        t.name
    );
    if code != "NOT_FOUND" {
        assert_eq!(v["tokenId"], *t.id, "{when}: verify names the token");
    }
}

/// Everything the clients know against everything the restarted server shows.
fn check_against_server(s: &Server, models: &mut [&mut Model], killed_ms: i64, when: &str) {
    let seen = Seen::fetch(s);
    for m in models.iter_mut() {
        resolve(m, &seen, killed_ms, when);
    }
    let mut known: HashMap<&str, &Tracked> = HashMap::new();
    for m in models.iter() {
        for t in &m.tokens {
            check_token(s, t, &seen, when);
            known.insert(&t.id, t);
        }
        for (old, new) in &m.successors {
            let rotated: Vec<&Value> = seen.audit_entries("token.rotate", old).collect();
            assert_eq!(rotated.len(), 1, "{when}: rotation of {old} audited once");
            assert_eq!(rotated[0]["details"]["newTokenId"], **new, "{when}: {old}");
        }
    }
    // Nothing that nobody asked for: no token, and no audit entry of a token change.
    for (id, t) in &seen.tokens {
        if t["name"].as_str().unwrap().starts_with(NAME_PREFIX) {
            assert!(known.contains_key(id.as_str()), "{when}: unknown token {t}");
        }
    }
    let mut want: HashMap<(String, String), usize> = HashMap::new();
    for m in models.iter() {
        for (action, target) in &m.audit {
            *want
                .entry((action.to_string(), target.clone()))
                .or_default() += 1;
        }
    }
    let mut got: HashMap<(String, String), usize> = HashMap::new();
    for e in &seen.audit {
        let action = e["action"].as_str().unwrap();
        if matches!(action, "token.create" | "token.delete" | "token.rotate") {
            let target = e["targetId"].as_str().unwrap().to_owned();
            *got.entry((action.to_owned(), target)).or_default() += 1;
        }
    }
    for (key, n) in &want {
        assert_eq!(got.get(key), Some(n), "{when}: audit entries {key:?}");
    }
    for (key, n) in &got {
        assert_eq!(
            want.get(key),
            Some(n),
            "{when}: unexpected audit entries {key:?}"
        );
    }
}

// ---- the database itself ----

/// The schema's invariants, one row per violation, in SQL both databases accept.
const INVARIANTS: &str = "\
SELECT 'token ' || t.id || ' has no tenant' FROM tokens t \
  WHERE NOT EXISTS (SELECT 1 FROM tenants n WHERE n.id = t.tenant_id) \
UNION ALL SELECT 'token ' || t.id || ' has no owner' FROM tokens t \
  WHERE t.owner_id <> t.tenant_id \
  AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = t.owner_id AND u.tenant_id = t.tenant_id) \
UNION ALL SELECT 'two tokens share the hash of ' || min(id) FROM tokens GROUP BY hash HAVING count(*) > 1 \
UNION ALL SELECT 'two tokens share the id ' || id FROM tokens GROUP BY id HAVING count(*) > 1 \
UNION ALL SELECT 'token ' || t.id || ' has no creation in the audit log' FROM tokens t \
  WHERE t.name LIKE 'crash-%' AND NOT EXISTS (SELECT 1 FROM audit a WHERE \
    (a.action = 'token.create' AND a.target_id = t.id) \
    OR (a.action = 'token.rotate' AND a.details LIKE ('%\"newTokenId\":\"' || t.id || '\"%'))) \
UNION ALL SELECT 'revoked token ' || t.id || ' is still stored' FROM tokens t \
  JOIN audit a ON a.action = 'token.delete' AND a.target_id = t.id \
UNION ALL SELECT 'rotated token ' || t.id || ' never expires' FROM tokens t \
  JOIN audit a ON a.action = 'token.rotate' AND a.target_id = t.id WHERE t.expires_at IS NULL \
UNION ALL SELECT 'audit entry ' || a.seq || ' has no tenant' FROM audit a \
  WHERE NOT EXISTS (SELECT 1 FROM tenants n WHERE n.id = a.tenant_id) \
UNION ALL SELECT 'owner ' || t.owner_id || ' holds ' || count(*) || ' tokens, not as counted' \
  FROM tokens t GROUP BY t.tenant_id, t.owner_id \
  HAVING count(*) <> (SELECT COALESCE(SUM(c.tokens), 0) FROM owner_token_counts c \
    WHERE c.tenant_id = t.tenant_id AND c.owner_id = t.owner_id) \
UNION ALL SELECT 'owner ' || c.owner_id || ' holds no token but is counted' \
  FROM owner_token_counts c GROUP BY c.tenant_id, c.owner_id \
  HAVING SUM(c.tokens) <> 0 AND NOT EXISTS (SELECT 1 FROM tokens t \
    WHERE t.tenant_id = c.tenant_id AND t.owner_id = c.owner_id);";

fn check_database(s: &Server, when: &str) {
    let violations = match &s.database {
        Some(db) => psql(&db.url, INVARIANTS).unwrap_or_else(|e| panic!("{when}: psql: {e}")),
        None => {
            let path = s.db_path();
            assert_eq!(
                sqlite_readonly(&path, "PRAGMA integrity_check;"),
                "ok",
                "{when}: integrity_check"
            );
            assert_eq!(
                sqlite_readonly(&path, "PRAGMA foreign_key_check;"),
                "",
                "{when}: foreign_key_check"
            );
            sqlite_readonly(&path, INVARIANTS)
        }
    };
    assert_eq!(violations, "", "{when}: the database breaks its invariants");
}

// ---- the run ----

fn seed() -> u64 {
    match std::env::var("KEYGATE_CRASH_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("KEYGATE_CRASH_SEED must be a number, not {s:?}")),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

/// Waits until every client has noticed that the server is gone and parked.
fn wait_for_clients(shared: &Shared) -> Result<(), String> {
    let deadline = Instant::now() + STAGE_TIMEOUT;
    let mut g = shared.gate();
    loop {
        if let Some(why) = &g.failure {
            return Err(why.clone());
        }
        if g.parked == WORKERS {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "clients did not notice the kill within {STAGE_TIMEOUT:?}"
            ));
        }
        g = shared.wake.wait_timeout(g, left).unwrap().0;
    }
}

both_backends!(concurrent_changes_survive_repeated_kill_9);
fn concurrent_changes_survive_repeated_kill_9(backend: Backend) {
    let seed = seed();
    eprintln!("crash test seed: {seed} (replay with KEYGATE_CRASH_SEED={seed})");
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    // Last-use writes every second share the one SQLite writer with the clients' changes, as
    // on a busy server. Every revoked token is checked to be rejected, hundreds a minute from
    // one address: the limit on failed authentications (tests/abuse.rs) is lifted.
    let mut server = Server::on(backend)
        .args(&[
            "--last-use-resolution",
            "1s",
            "--auth-max-failures-per-ip",
            "1000000",
        ])
        .start();
    let shared = Shared {
        url: RwLock::new(server.url.clone()),
        admin_token: server.admin_token.clone(),
        gate: Mutex::new(Gate::default()),
        wake: Condvar::new(),
    };
    let models: Vec<Mutex<Model>> = (0..WORKERS).map(|w| Mutex::new(Model::new(w))).collect();
    let mut in_flight_at_kills = Vec::new();
    std::thread::scope(|scope| {
        for (w, model) in models.iter().enumerate() {
            let shared = &shared;
            let client_seed = seed.wrapping_add(1 + w as u64);
            scope.spawn(move || client(shared, model, client_seed));
        }
        // Stops the clients however this scope ends, so that a failed check is reported instead
        // of leaving them waiting for a restart that never comes.
        let _stop = StopOnDrop(&shared);
        for round in 1..=ROUNDS {
            std::thread::sleep(Duration::from_millis(rng.random_range(RUN_MS)));
            server.kill9();
            let killed_ms = now_ms();
            let when = format!("seed {seed}, after kill {round}");
            if let Err(why) = wait_for_clients(&shared) {
                panic!("{when}: {why}");
            }
            check_database(&server, &when);
            server.restart();
            *shared.url.write().unwrap() = server.url.clone();
            let mut guards: Vec<_> = models.iter().map(|m| m.lock().unwrap()).collect();
            in_flight_at_kills.push(guards.iter().filter(|m| m.in_flight.is_some()).count());
            let mut all: Vec<&mut Model> = guards.iter_mut().map(|g| &mut **g).collect();
            check_against_server(&server, &mut all, killed_ms, &when);
            drop(guards);
            if round == ROUNDS {
                break;
            }
            let mut g = shared.gate();
            g.epoch += 1;
            g.parked = 0;
            shared.wake.notify_all();
        }
    });
    if let Some(why) = shared.gate().failure.take() {
        panic!("seed {seed}: {why}");
    }
    let mut acked = Counts::default();
    let (mut applied, mut not_applied, mut tokens) = (0, 0, 0);
    for m in &models {
        let m = m.lock().unwrap();
        acked += m.acked;
        applied += m.in_flight_applied;
        not_applied += m.in_flight_not_applied;
        tokens += m.tokens.len();
    }
    let backend = backend.name();
    eprintln!(
        "crash test ({backend}, seed {seed}): {ROUNDS} kills in {:.1} s; acknowledged: {} creates, \
         {} revokes, {} rotations ({} with a grace period), {} spot verifies; in flight at the \
         kills: {in_flight_at_kills:?} (applied {applied}, not applied {not_applied}); {tokens} \
         tokens checked after the last kill",
        started.elapsed().as_secs_f64(),
        acked.creates,
        acked.revokes,
        acked.rotations,
        acked.rotations_with_grace,
        acked.verifies,
    );
    // A run in which the clients got nothing done would prove nothing.
    assert!(
        acked.creates > 0 && acked.revokes > 0 && acked.rotations > 0,
        "seed {seed}: too few operations acknowledged: {acked:?}"
    );
}

struct StopOnDrop<'a>(&'a Shared);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        let mut g = self.0.gate();
        g.stop = true;
        self.0.wake.notify_all();
    }
}
