//! Bulk revoke (`POST /api/v1/tokens/bulk-revoke`, `keygate token revoke --owner …`) against a
//! real server on SQLite and PostgreSQL: what each criterion matches, the dry run, the audit
//! entries and events per token, the calling token kept, who may, the all-or-nothing refusal
//! of a token the caller does not cover, bad input, other tenants' tokens, the 10 000 cap, the
//! CLI, and `GET /api/v1/tokens?createdBefore=`.

mod common;
use common::*;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const PATH: &str = "/api/v1/tokens/bulk-revoke";
const DRY: &str = "/api/v1/tokens/bulk-revoke?dryRun=true";

/// A token made by the admin from this body; returns (id, token).
fn make(s: &Server, name: &str, scopes: &[&str], more: Value) -> (String, String) {
    let mut body = json!({ "name": name, "scopes": scopes });
    body.as_object_mut()
        .unwrap()
        .extend(more.as_object().unwrap().clone());
    s.create_token_from(body)
}

/// POST the bulk revoke as `token`.
fn bulk(s: &Server, token: &str, path: &str, body: Value) -> (u16, Value) {
    s.call("POST", path, Some(token), Some(body))
}

/// POST as the admin, asserting 200.
fn bulk_ok(s: &Server, path: &str, body: Value) -> Value {
    let (st, v) = bulk(s, &s.admin_token, path, body);
    assert_eq!(st, 200, "{v}");
    v
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).clone()).collect()
}

fn ids_in(v: &Value, field: &str) -> BTreeSet<String> {
    v[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} in {v}"))
        .iter()
        .map(|i| i.as_str().unwrap().to_owned())
        .collect()
}

/// Does the token still verify?
fn alive(s: &Server, token: &str) -> bool {
    match code_of(s, token).as_str() {
        "VALID" => true,
        "NOT_FOUND" => false,
        other => panic!("unexpected verify code {other}"),
    }
}

/// The `token.delete` audit entries of this token.
fn revocations(s: &Server, id: &str) -> Vec<Value> {
    s.all_items(&format!("/api/v1/audit?action=token.delete&targetId={id}"))
}

fn admin_id(s: &Server) -> String {
    self_of(s, &s.admin_token).1["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

both_backends!(by_ids_with_not_found_and_the_calling_token_kept);
fn by_ids_with_not_found_and_the_calling_token_kept(backend: Backend) {
    let s = Server::on(backend).start();
    let (a, ta) = s.create_token("a", &["tokens:read"]);
    let (b, tb) = s.create_token("b", &["tokens:read"]);
    let (_, tc) = s.create_token("c", &["tokens:read"]);
    let me = admin_id(&s);
    let v = bulk_ok(
        &s,
        PATH,
        json!({ "ids": [a, b, "kg_0000000000000000", me, a] }),
    );
    assert_eq!(v["revoked"], 2, "{v}");
    assert_eq!(v["dryRun"], false);
    assert_eq!(ids_in(&v, "ids"), set(&[&a, &b]));
    assert_eq!(v["notFound"], json!(["kg_0000000000000000"]));
    assert_eq!(v["callingTokenKept"], true);
    assert!(!alive(&s, &ta) && !alive(&s, &tb));
    assert!(alive(&s, &tc) && alive(&s, &s.admin_token));

    // Revoked ones are not found the second time.
    let v = bulk_ok(&s, PATH, json!({ "ids": [a] }));
    assert_eq!(v["revoked"], 0);
    assert_eq!(v["notFound"], json!([a]));
    assert_eq!(v["callingTokenKept"], false);
}

both_backends!(each_criterion_and_their_combination_match_what_they_say);
fn each_criterion_and_their_combination_match_what_they_say(backend: Backend) {
    let s = Server::on(backend).start();
    let alice = s.create_user("alice", "correct horse battery", "member");
    let (by_scope, _) = make(&s, "s", &["webhooks:read"], json!({}));
    let (by_ext1, _) = make(&s, "e1", &["tokens:read"], json!({"externalId": "cust-1"}));
    let (by_ext2, _) = make(&s, "e2", &["tokens:read"], json!({"externalId": "cust-1"}));
    let (by_owner, _) = make(&s, "o", &["tokens:read"], json!({"ownerId": alice}));
    let (old, _) = make(&s, "old", &["users:read"], json!({"externalId": "cust-2"}));
    std::thread::sleep(Duration::from_millis(20));
    let (cut, _) = make(&s, "cut", &["users:read"], json!({"externalId": "cust-2"}));
    let (keep, tkeep) = make(&s, "keep", &["audit:read"], json!({"externalId": "cust-3"}));
    let cutoff = s
        .call(
            "GET",
            &format!("/api/v1/tokens/{cut}"),
            Some(&s.admin_token),
            None,
        )
        .1["createdAt"]
        .as_str()
        .unwrap()
        .to_owned();

    let v = bulk_ok(&s, PATH, json!({ "scope": "webhooks:read" }));
    assert_eq!(ids_in(&v, "ids"), set(&[&by_scope]), "{v}");
    let v = bulk_ok(&s, PATH, json!({ "externalId": "cust-1" }));
    assert_eq!(ids_in(&v, "ids"), set(&[&by_ext1, &by_ext2]), "{v}");
    let v = bulk_ok(&s, PATH, json!({ "ownerId": alice }));
    assert_eq!(ids_in(&v, "ids"), set(&[&by_owner]), "{v}");
    // Combined with AND: cust-2 and created before `cut` is only `old`; `keep`'s id is given
    // but fails the other criteria, so it is neither revoked nor "not found".
    let v = bulk_ok(
        &s,
        PATH,
        json!({ "ids": [old, cut, keep], "externalId": "cust-2", "scope": "users:read",
                "createdBefore": cutoff }),
    );
    assert_eq!(ids_in(&v, "ids"), set(&[&old]), "{v}");
    assert_eq!(v["notFound"], json!([]), "{v}");
    // createdBefore alone: everything before `cut` (the admin's own token kept).
    let v = bulk_ok(&s, PATH, json!({ "createdBefore": cutoff }));
    assert_eq!(
        v["revoked"], 0,
        "everything before cut is revoked already: {v}"
    );
    assert_eq!(v["callingTokenKept"], true, "{v}");
    let left: BTreeSet<String> = s
        .all_items("/api/v1/tokens")
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left, set(&[&admin_id(&s), &cut, &keep]));
    assert!(alive(&s, &tkeep));
}

both_backends!(a_dry_run_answers_the_same_and_changes_nothing);
fn a_dry_run_answers_the_same_and_changes_nothing(backend: Backend) {
    let s = Server::on(backend).start();
    let (a, ta) = make(&s, "a", &["tokens:read"], json!({"externalId": "dry"}));
    let (b, tb) = make(&s, "b", &["tokens:read"], json!({"externalId": "dry"}));
    let body = json!({ "externalId": "dry", "ids": [a, b, "kg_0000000000000000"] });
    let dry = bulk_ok(&s, DRY, body.clone());
    assert_eq!(dry["dryRun"], true);
    assert!(alive(&s, &ta) && alive(&s, &tb));
    assert!(revocations(&s, &a).is_empty() && revocations(&s, &b).is_empty());
    let real = bulk_ok(&s, PATH, body);
    assert_eq!(real["dryRun"], false);
    for field in ["revoked", "ids", "notFound", "callingTokenKept"] {
        assert_eq!(dry[field], real[field], "{field}: {dry} vs {real}");
    }
    assert!(!alive(&s, &ta) && !alive(&s, &tb));
}

both_backends!(each_revocation_is_audited_and_announced);
fn each_revocation_is_audited_and_announced(backend: Backend) {
    let s = Server::on(backend).start();
    let (st, hook) = s.call(
        "POST",
        "/api/v1/webhooks",
        Some(&s.admin_token),
        Some(json!({ "url": "http://127.0.0.1:9/hook", "events": ["token.revoked"] })),
    );
    assert_eq!(st, 201, "{hook}");
    // Another endpoint that takes only creations gets none of the revocations.
    let (st, other) = s.call(
        "POST",
        "/api/v1/webhooks",
        Some(&s.admin_token),
        Some(json!({ "url": "http://127.0.0.1:9/other", "events": ["token.created"] })),
    );
    assert_eq!(st, 201, "{other}");
    // More than a few events in one batch take the store's path for many events.
    const N: usize = 20;
    let ids: Vec<String> = (0..N)
        .map(|i| {
            make(
                &s,
                &format!("t{i}"),
                &["tokens:read"],
                json!({"externalId": "x"}),
            )
            .0
        })
        .collect();
    let v = bulk_ok(&s, PATH, json!({ "externalId": "x" }));
    assert_eq!(v["revoked"], N);
    let me = admin_id(&s);
    for id in &ids {
        let entries = revocations(&s, id);
        assert_eq!(entries.len(), 1, "one entry for {id}: {entries:?}");
        assert_eq!(entries[0]["actor"], me.as_str());
        assert_eq!(entries[0]["details"]["reason"], "bulk");
        assert!(entries[0]["details"]["name"]
            .as_str()
            .unwrap()
            .starts_with('t'));
    }
    let revoked_events = |endpoint: &Value| {
        s.all_items(&format!(
            "/api/v1/webhooks/{}/deliveries",
            endpoint["id"].as_str().unwrap()
        ))
        .iter()
        .filter(|d| d["eventType"] == "token.revoked")
        .count()
    };
    assert_eq!(revoked_events(&hook), N, "one token.revoked per token");
    assert_eq!(revoked_events(&other), 0);
}

both_backends!(only_tokens_admin_may_and_an_uncovered_token_fails_the_whole_request);
fn only_tokens_admin_may_and_an_uncovered_token_fails_the_whole_request(backend: Backend) {
    let s = Server::on(backend).start();
    let (_, writer) = s.create_token("writer", &["tokens:read", "tokens:write"]);
    let (_, narrow_admin) = s.create_token("narrow admin", &["tokens:admin", "tokens:read"]);
    let (covered, tcovered) = make(&s, "covered", &["tokens:read"], json!({"externalId": "m"}));
    let (wider, twider) = make(&s, "wider", &["audit:read"], json!({"externalId": "m"}));

    let (st, v) = bulk(&s, &writer, PATH, json!({ "externalId": "m" }));
    assert_error_body((st, v.clone()), 403, "insufficient_scope");
    assert_eq!(v["missingScopes"], json!(["tokens:admin"]), "{v}");

    for path in [DRY, PATH] {
        let (st, v) = bulk(&s, &narrow_admin, path, json!({ "externalId": "m" }));
        assert_error_body((st, v.clone()), 403, "insufficient_scope");
        assert_eq!(v["missingScopes"], json!(["audit:read"]), "{v}");
    }
    assert!(
        alive(&s, &tcovered) && alive(&s, &twider),
        "nothing changed"
    );
    assert!(revocations(&s, &covered).is_empty() && revocations(&s, &wider).is_empty());
    // Leaving the uncovered token out, the same caller may.
    let (st, v) = bulk(
        &s,
        &narrow_admin,
        PATH,
        json!({ "externalId": "m", "scope": "tokens:read" }),
    );
    assert_eq!((st, v["revoked"].clone()), (200, json!(1)), "{v}");
    assert!(!alive(&s, &tcovered) && alive(&s, &twider));
}

both_backends!(bad_criteria_are_422_and_nothing_changes);
fn bad_criteria_are_422_and_nothing_changes(backend: Backend) {
    let s = Server::on(backend).start();
    let (_, t) = s.create_token("t", &["tokens:read"]);
    let too_many: Vec<String> = (0..10_001).map(|i| format!("kg_{i:016}")).collect();
    for (body, says) in [
        (json!({}), "at least one criterion"),
        (json!({ "ids": [] }), "at least one token"),
        (json!({ "ids": too_many }), "at most 10000"),
        (json!({ "createdBefore": "yesterday" }), "createdBefore"),
        (json!({ "createdBefore": 5 }), "createdBefore"),
        (json!({ "ownerID": "x" }), "ownerID"),
    ] {
        let (st, v) = bulk(&s, &s.admin_token, PATH, body.clone());
        let v = assert_error_body((st, v), 422, "invalid_request");
        let message = v["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    assert!(alive(&s, &t));
}

both_backends!(other_tenants_tokens_are_neither_matched_nor_found);
fn other_tenants_tokens_are_neither_matched_nor_found(backend: Backend) {
    let s = Server::on(backend).start();
    let (st, acme) = s.call(
        "POST",
        "/api/v1/tenants",
        Some(&s.admin_token),
        Some(json!({ "name": "acme" })),
    );
    assert_eq!(st, 201, "{acme}");
    let acme_admin = acme["adminToken"].as_str().unwrap();
    let (st, theirs) = s.call(
        "POST",
        "/api/v1/tokens",
        Some(acme_admin),
        Some(json!({ "name": "theirs", "scopes": ["tokens:read"], "externalId": "shared" })),
    );
    assert_eq!(st, 201, "{theirs}");
    let (ours, tours) = make(
        &s,
        "ours",
        &["tokens:read"],
        json!({"externalId": "shared"}),
    );
    let theirs_id = theirs["id"].as_str().unwrap().to_owned();

    let v = bulk_ok(&s, PATH, json!({ "externalId": "shared" }));
    assert_eq!(ids_in(&v, "ids"), set(&[&ours]), "{v}");
    let v = bulk_ok(&s, PATH, json!({ "ids": [theirs_id] }));
    assert_eq!(v["revoked"], 0);
    assert_eq!(v["notFound"], json!([theirs_id]));
    assert!(!alive(&s, &tours));
    assert!(alive(&s, theirs["token"].as_str().unwrap()));
}

both_backends!(the_list_filters_by_created_before);
fn the_list_filters_by_created_before(backend: Backend) {
    let s = Server::on(backend).start();
    let (first, _) = s.create_token("first", &["tokens:read"]);
    std::thread::sleep(Duration::from_millis(20));
    let (second, _) = s.create_token("second", &["tokens:read"]);
    let at = |id: &str| {
        s.call(
            "GET",
            &format!("/api/v1/tokens/{id}"),
            Some(&s.admin_token),
            None,
        )
        .1["createdAt"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let listed = |cutoff: &str| -> BTreeSet<String> {
        s.all_items(&format!(
            "/api/v1/tokens?createdBefore={}",
            cutoff.replace('+', "%2B")
        ))
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
    };
    let before_second = listed(&at(&second));
    assert!(before_second.contains(&first) && !before_second.contains(&second));
    assert!(!listed(&at(&first)).contains(&first), "strictly before");
    let (st, v) = s.call(
        "GET",
        "/api/v1/tokens?createdBefore=yesterday",
        Some(&s.admin_token),
        None,
    );
    assert_error_body((st, v), 400, "invalid_request");
}

// 10 001 tokens put in place with SQL (made one by one over HTTP they take minutes in a debug
// build): a bulk revoke matching them all is refused whole, one narrowed to 10 000 revokes
// them in one request.
both_backends!(more_than_ten_thousand_matches_are_refused_and_ten_thousand_revoked);
fn more_than_ten_thousand_matches_are_refused_and_ten_thousand_revoked(backend: Backend) {
    let s = Server::on(backend).start();
    // created_at is the row's number in milliseconds since 1970: the 10 001st is the newest.
    let insert = |series: &str, hash: &str| {
        format!(
            "INSERT INTO tokens (id, tenant_id, hash, name, owner_id, scopes, enabled, \
             created_at, updated_at, external_ref) {series} SELECT 'kg_bulk' || g, 'default', \
             {hash}, 'bulk ' || g, 'default', '[\"tokens:read\"]', 1, g, g, 'cap' FROM g"
        )
    };
    let count = || -> u64 {
        let sql = "SELECT COUNT(*) FROM tokens WHERE external_ref = 'cap'";
        let out = match &s.database {
            Some(db) => psql(&db.url, sql).unwrap(),
            None => sqlite_readonly(&s.db_path(), sql),
        };
        out.trim().parse().unwrap()
    };
    match &s.database {
        Some(db) => {
            psql(
                &db.url,
                &insert(
                    "WITH g AS (SELECT generate_series(1, 10001) AS g)",
                    "sha256(('bulk' || g)::bytea)",
                ),
            )
            .unwrap();
        }
        None => {
            sqlite_write(
                &s.db_path(),
                &insert(
                    "WITH RECURSIVE g(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM g WHERE g < 10001)",
                    "randomblob(32)",
                ),
            );
        }
    }
    assert_eq!(count(), 10_001);

    let (st, v) = bulk(&s, &s.admin_token, PATH, json!({ "externalId": "cap" }));
    let v = assert_error_body((st, v), 422, "invalid_request");
    assert!(v["message"].as_str().unwrap().contains("narrow"), "{v}");
    assert_eq!(count(), 10_001, "nothing changed");

    let started = Instant::now();
    let v = bulk_ok(
        &s,
        PATH,
        json!({ "externalId": "cap", "createdBefore": "1970-01-01T00:00:10.001Z" }),
    );
    eprintln!(
        "{}: 10 000 tokens revoked in one request in {:?}",
        backend.name(),
        started.elapsed()
    );
    assert_eq!(v["revoked"], 10_000);
    assert_eq!(count(), 1);
    assert_eq!(revocations(&s, "kg_bulk1").len(), 1);
}

// ---- the CLI ----

both_backends!(the_cli_previews_refuses_off_a_terminal_and_revokes_with_yes);
fn the_cli_previews_refuses_off_a_terminal_and_revokes_with_yes(backend: Backend) {
    let s = Server::on(backend).start();
    let (a, ta) = make(&s, "a", &["tokens:read"], json!({"externalId": "cli"}));
    let (b, tb) = make(&s, "b", &["tokens:read"], json!({"externalId": "cli"}));
    let admin = s.admin_token.clone();

    // --dry-run --json: the API's answer; nothing changes.
    let out = s.cli(
        &admin,
        &[
            "token",
            "revoke",
            "--external-id",
            "cli",
            "--dry-run",
            "--json",
        ],
    );
    let v: Value = serde_json::from_str(&cli_stdout(&out)).unwrap();
    assert_eq!(v["dryRun"], true);
    assert_eq!(ids_in(&v, "ids"), set(&[&a, &b]));
    assert!(alive(&s, &ta) && alive(&s, &tb));

    // Neither --yes nor --dry-run, off a terminal: the preview, then a refusal.
    let out = s
        .cli_command(&admin, &["token", "revoke", "--external-id", "cli"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("Would revoke 2 token(s)") && stderr.contains(&a),
        "{stderr}"
    );
    assert!(stderr.contains("--yes"), "{stderr}");
    assert!(alive(&s, &ta) && alive(&s, &tb));

    // --yes: revoked, and the table says how many.
    let out = s.cli(
        &admin,
        &[
            "token",
            "revoke",
            "--external-id",
            "cli",
            "--created-before",
            "2999-01-01T00:00:00Z",
            "--yes",
        ],
    );
    let text = cli_stdout(&out);
    assert!(
        text.contains("Revoked 2 token(s)") && text.contains(&b),
        "{text}"
    );
    assert!(!alive(&s, &ta) && !alive(&s, &tb));

    // `token revoke ID` still revokes one token.
    let (c, tc) = s.create_token("c", &["tokens:read"]);
    let out = s.cli(&admin, &["token", "revoke", &c]);
    assert!(cli_stdout(&out).contains(&c));
    assert!(!alive(&s, &tc));
}

// On a terminal the CLI asks, and only a yes revokes; `script` gives it one.
both_backends!(the_cli_asks_on_a_terminal);
fn the_cli_asks_on_a_terminal(backend: Backend) {
    if !installed("script") {
        skip_outside_ci(
            "the_cli_asks_on_a_terminal",
            "util-linux `script` is not installed",
        );
        return;
    }
    let s = Server::on(backend).start();
    let (_, ta) = make(&s, "a", &["tokens:read"], json!({"externalId": "tty"}));
    let on_terminal = |answer: &str| {
        use std::io::Write;
        let keygate = keygate_command()
            .get_program()
            .to_string_lossy()
            .into_owned();
        let mut child = std::process::Command::new("script")
            .args([
                "-qec",
                &format!("{keygate} token revoke --external-id tty"),
                "/dev/null",
            ])
            .env("KEYGATE_URL", &s.url)
            .env("KEYGATE_TOKEN", &s.admin_token)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(answer.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = on_terminal("n\n");
    assert!(said.contains("Revoke these 1 token(s)?"), "{said}");
    assert!(said.contains("nothing revoked"), "{said}");
    assert!(alive(&s, &ta));
    let said = on_terminal("y\n");
    assert!(said.contains("Revoked 1 token(s)"), "{said}");
    assert!(!alive(&s, &ta));
}
