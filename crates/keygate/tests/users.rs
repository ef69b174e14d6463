//! `/api/v1/users` and `keygate user …`: people of a tenant, their roles, and what each role
//! may do with tokens, through the real server.

mod common;

use common::*;
use reqwest::blocking::Response;
use serde_json::{json, Value};

fn send(r: reqwest::blocking::RequestBuilder) -> (u16, Value) {
    status_json(r.send().unwrap())
}

both_backends!(users_are_created_listed_changed_and_deleted);
fn users_are_created_listed_changed_and_deleted(backend: Backend) {
    let s = Server::on(backend).start();
    let (status, mia) = send(s.admin("POST", "/api/v1/users").json(&json!({
        "username": "mia", "password": "mia-password-123", "role": "member"
    })));
    assert_eq!(status, 201, "{mia}");
    assert_eq!(mia["username"], "mia");
    assert_eq!(mia["role"], "member");
    assert_eq!(mia["tenantId"], "default");
    assert!(
        mia.get("password").is_none(),
        "a given password is not echoed: {mia}"
    );
    assert!(mia.get("passwordHash").is_none());
    let mia_id = mia["id"].as_str().unwrap().to_owned();
    assert!(mia_id.starts_with("usr_"));

    // No password given: one is generated and shown once, and it works.
    let (status, bob) = send(
        s.admin("POST", "/api/v1/users")
            .json(&json!({ "username": "bob" })),
    );
    assert_eq!(status, 201, "{bob}");
    assert_eq!(bob["role"], "member", "member is the default role");
    let generated = bob["password"].as_str().unwrap();
    assert!(generated.len() >= 12);
    s.login("bob", generated);

    let (_, list) = send(s.admin("GET", "/api/v1/users"));
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "bob", "mia"], "sorted by username");
    assert!(
        list.to_string().find("argon2").is_none(),
        "no hash in a list"
    );

    // Paging by username.
    let (_, first) = send(s.admin("GET", "/api/v1/users?limit=2"));
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["nextCursor"].as_str().unwrap();
    let (_, rest) = send(s.admin("GET", &format!("/api/v1/users?limit=2&cursor={cursor}")));
    assert_eq!(rest["items"][0]["username"], "mia");
    assert!(rest["nextCursor"].is_null());

    let (status, got) = send(s.admin("GET", &format!("/api/v1/users/{mia_id}")));
    assert_eq!((status, got["username"].as_str()), (200, Some("mia")));

    let (status, changed) = send(
        s.admin("PATCH", &format!("/api/v1/users/{mia_id}"))
            .json(&json!({ "role": "admin" })),
    );
    assert_eq!(
        (status, changed["role"].as_str()),
        (200, Some("admin")),
        "{changed}"
    );

    let (status, _) = send(s.admin("DELETE", &format!("/api/v1/users/{mia_id}")));
    assert_eq!(status, 204);
    assert_error(
        s.admin("GET", &format!("/api/v1/users/{mia_id}"))
            .send()
            .unwrap(),
        404,
        "not_found",
    );
    // Every change is audited.
    let (_, audit) = send(s.admin("GET", &format!("/api/v1/audit?targetId={mia_id}")));
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["user.delete", "user.update", "user.create"]);
    assert!(!audit.to_string().contains("mia-password-123"));
}

both_backends!(bad_user_input_gets_clear_errors);
fn bad_user_input_gets_clear_errors(backend: Backend) {
    let s = Server::on(backend).start();
    s.create_user("mia", "mia-password-123", "member");
    let cases = [
        (
            json!({ "username": "mia", "password": "another-password" }),
            409,
            "conflict",
        ),
        (
            json!({ "username": "has space", "password": "long-enough-pw" }),
            422,
            "invalid_request",
        ),
        (
            json!({ "username": "", "password": "long-enough-pw" }),
            422,
            "invalid_request",
        ),
        (
            json!({ "username": "kim", "password": "short" }),
            422,
            "invalid_request",
        ),
        (
            json!({ "username": "kim", "role": "owner" }),
            422,
            "invalid_request",
        ),
        (
            json!({ "username": "kim", "extra": 1 }),
            422,
            "invalid_request",
        ),
        (
            json!({ "password": "long-enough-pw" }),
            422,
            "invalid_request",
        ),
    ];
    for (body, status, code) in cases {
        let v = assert_error(
            s.admin("POST", "/api/v1/users").json(&body).send().unwrap(),
            status,
            code,
        );
        assert!(!v["message"].as_str().unwrap().is_empty(), "{body}: {v}");
    }
    let r = s
        .admin("POST", "/api/v1/users")
        .body("{not json")
        .send()
        .unwrap();
    assert_error(r, 400, "invalid_request");
    let r = s
        .admin("PATCH", "/api/v1/users/usr_nope")
        .json(&json!({ "role": "member" }))
        .send()
        .unwrap();
    assert_error(r, 404, "not_found");
    let mia = s
        .admin("GET", "/api/v1/users")
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap()["items"][1]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = s
        .admin("PATCH", &format!("/api/v1/users/{mia}"))
        .json(&json!({}))
        .send()
        .unwrap();
    assert_error(r, 422, "invalid_request");
}

both_backends!(users_write_alone_cannot_create_an_admin_or_take_one_over);
fn users_write_alone_cannot_create_an_admin_or_take_one_over(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    let (_, clerk) = s.create_token("clerk", &["users:write"]);
    let admin_id = s
        .admin("GET", "/api/v1/tokens/self")
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap()["ownerId"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = s
        .with_token("POST", "/api/v1/users", &clerk)
        .json(&json!({ "username": "eve", "password": "eve-password-123", "role": "admin" }))
        .send()
        .unwrap();
    let v = assert_error(r, 403, "insufficient_scope");
    assert!(v["missingScopes"]
        .as_array()
        .unwrap()
        .contains(&json!("tokens:admin")));
    // Nor reset an admin's password, nor delete one.
    let r = s
        .with_token("PATCH", &format!("/api/v1/users/{admin_id}"), &clerk)
        .json(&json!({ "password": "taken-over-123" }))
        .send()
        .unwrap();
    assert_error(r, 403, "insufficient_scope");
    let r = s
        .with_token("DELETE", &format!("/api/v1/users/{admin_id}"), &clerk)
        .send()
        .unwrap();
    assert_error(r, 403, "insufficient_scope");
    s.login("admin", ADMIN_PASSWORD);
    // Reading users needs users:read (users:write implies it); tokens:read alone does not.
    let (_, reader) = s.create_token("reader", &["tokens:read"]);
    let r = s
        .with_token("GET", "/api/v1/users", &reader)
        .send()
        .unwrap();
    assert_error(r, 403, "insufficient_scope");
    let r = s.with_token("GET", "/api/v1/users", &clerk).send().unwrap();
    assert_eq!(r.status(), 200);
}

both_backends!(a_member_sees_and_manages_only_own_tokens_and_an_admin_all);
fn a_member_sees_and_manages_only_own_tokens_and_an_admin_all(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    let mia_id = s.create_user("mia", "mia-password-123", "member");
    let (admin_token_id, _) = s.create_token("admin's", &["metrics:read"]);
    let mia = s.login("mia", "mia-password-123");
    let scopes: Vec<&str> = mia.body["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(scopes.contains(&"metrics:read") && scopes.contains(&"tokens:write"));
    for admin_only in [
        "tokens:admin",
        "users:read",
        "users:write",
        "audit:read",
        "tenants:admin",
    ] {
        assert!(!scopes.contains(&admin_only), "{admin_only} in {scopes:?}");
    }

    let (status, own) = send(
        s.as_session(&mia, "POST", "/api/v1/tokens")
            .json(&json!({ "name": "mia's", "scopes": ["metrics:read", "metrics:write"] })),
    );
    assert_eq!(status, 201, "{own}");
    assert_eq!(own["ownerId"], mia_id.as_str());
    assert_eq!(own["createdBy"], mia_id.as_str());
    let own_id = own["id"].as_str().unwrap();

    let (_, list) = send(s.as_session(&mia, "GET", "/api/v1/tokens"));
    assert_eq!(ids(&list["items"]), [own_id]);
    for (method, path) in [
        ("GET", format!("/api/v1/tokens/{admin_token_id}")),
        ("POST", format!("/api/v1/tokens/{admin_token_id}/disable")),
        ("POST", format!("/api/v1/tokens/{admin_token_id}/rotate")),
        ("DELETE", format!("/api/v1/tokens/{admin_token_id}")),
    ] {
        let r = s
            .as_session(&mia, method, &path)
            .json(&json!({}))
            .send()
            .unwrap();
        assert_error(r, 404, "not_found");
    }
    // Nothing beyond the role: no admin scope on a token, no users, no audit.
    let r = s
        .as_session(&mia, "POST", "/api/v1/tokens")
        .json(&json!({ "name": "sneaky", "scopes": ["tokens:admin"] }))
        .send()
        .unwrap();
    assert_error(r, 403, "insufficient_scope");
    for path in ["/api/v1/users", "/api/v1/audit"] {
        assert_error(
            s.as_session(&mia, "GET", path).send().unwrap(),
            403,
            "insufficient_scope",
        );
    }

    // The admin's session sees both and manages mia's.
    let admin = s.login("admin", ADMIN_PASSWORD);
    let (_, all) = send(s.as_session(&admin, "GET", "/api/v1/tokens"));
    let all = ids(&all["items"]);
    assert!(all.contains(&own_id.to_owned()) && all.contains(&admin_token_id));
    let (status, disabled) =
        send(s.as_session(&admin, "POST", &format!("/api/v1/tokens/{own_id}/disable")));
    assert_eq!(
        (status, disabled["status"].as_str()),
        (200, Some("disabled"))
    );
    let (_, only_mia) =
        send(s.as_session(&admin, "GET", &format!("/api/v1/tokens?ownerId={mia_id}")));
    assert_eq!(ids(&only_mia["items"]), [own_id]);
}

both_backends!(a_role_change_applies_to_the_next_request_of_a_live_session);
fn a_role_change_applies_to_the_next_request_of_a_live_session(backend: Backend) {
    let s = Server::on(backend).start();
    let mia_id = s.create_user("mia", "mia-password-123", "member");
    let mia = s.login("mia", "mia-password-123");
    assert_error(
        s.as_session(&mia, "GET", "/api/v1/audit").send().unwrap(),
        403,
        "insufficient_scope",
    );
    let (status, _) = send(
        s.admin("PATCH", &format!("/api/v1/users/{mia_id}"))
            .json(&json!({ "role": "admin" })),
    );
    assert_eq!(status, 200);
    assert_eq!(
        s.as_session(&mia, "GET", "/api/v1/audit")
            .send()
            .unwrap()
            .status(),
        200
    );
}

both_backends!(a_new_password_ends_the_users_sessions);
fn a_new_password_ends_the_users_sessions(backend: Backend) {
    let s = Server::on(backend).start();
    let mia_id = s.create_user("mia", "mia-password-123", "member");
    let mia = s.login("mia", "mia-password-123");
    let (status, _) = send(
        s.admin("PATCH", &format!("/api/v1/users/{mia_id}"))
            .json(&json!({ "password": "new-password-456" })),
    );
    assert_eq!(status, 200);
    assert_error(
        s.as_session(&mia, "GET", "/api/v1/tokens").send().unwrap(),
        401,
        "invalid_session",
    );
    assert_error(
        s.try_login("default", "mia", "mia-password-123"),
        401,
        "invalid_credentials",
    );
    s.login("mia", "new-password-456");
}

both_backends!(deleting_a_user_revokes_every_token_they_own);
fn deleting_a_user_revokes_every_token_they_own(backend: Backend) {
    let s = Server::on(backend).with_metrics_scopes().start();
    let mia_id = s.create_user("mia", "mia-password-123", "member");
    let mia = s.login("mia", "mia-password-123");
    let (_, own) = send(
        s.as_session(&mia, "POST", "/api/v1/tokens")
            .json(&json!({ "name": "own", "scopes": ["metrics:read"] })),
    );
    let own_token = own["token"].as_str().unwrap().to_owned();
    let (_, given) = send(s.admin("POST", "/api/v1/tokens").json(&json!({
        "name": "given", "scopes": ["metrics:read"], "ownerId": mia_id
    })));
    let given_token = given["token"].as_str().unwrap().to_owned();
    // Warm the cache, so revocation must reach it too.
    for t in [&own_token, &given_token] {
        assert_eq!(s.verify(t, &["metrics:read"])["valid"], true);
    }
    let (_, kept) = s.create_token("admin's own", &["metrics:read"]);

    let (status, _) = send(s.admin("DELETE", &format!("/api/v1/users/{mia_id}")));
    assert_eq!(status, 204);
    for t in [&own_token, &given_token] {
        assert_eq!(s.verify(t, &[])["code"], "NOT_FOUND");
    }
    assert_eq!(
        s.verify(&kept, &[])["valid"],
        true,
        "other owners' tokens stay"
    );
    assert_error(
        s.as_session(&mia, "GET", "/api/v1/tokens").send().unwrap(),
        401,
        "invalid_session",
    );

    let (_, audit) = send(s.admin("GET", "/api/v1/audit?action=token.delete"));
    let revoked: Vec<&Value> = audit["items"].as_array().unwrap().iter().collect();
    assert_eq!(revoked.len(), 2, "{audit}");
    for a in revoked {
        assert_eq!(a["details"]["reason"], "owner deleted");
    }
    let (_, audit) = send(s.admin("GET", "/api/v1/audit?action=user.delete"));
    assert_eq!(audit["items"][0]["details"]["revokedTokens"], 2);
}

both_backends!(nobody_deletes_themselves_or_the_last_admin);
fn nobody_deletes_themselves_or_the_last_admin(backend: Backend) {
    let s = Server::on(backend).start();
    let admin = s.login("admin", ADMIN_PASSWORD);
    let admin_id = admin.user_id();
    let r = s
        .as_session(&admin, "DELETE", &format!("/api/v1/users/{admin_id}"))
        .send()
        .unwrap();
    assert_error(r, 409, "conflict");
    let r = s
        .as_session(&admin, "PATCH", &format!("/api/v1/users/{admin_id}"))
        .json(&json!({ "role": "member" }))
        .send()
        .unwrap();
    let v = assert_error(r, 409, "conflict");
    assert!(v["message"].as_str().unwrap().contains("last admin"), "{v}");
    // With a second admin, the first may step down.
    s.create_user("ada", "ada-password-123", "admin");
    let (status, v) = send(
        s.as_session(&admin, "PATCH", &format!("/api/v1/users/{admin_id}"))
            .json(&json!({ "role": "member" })),
    );
    assert_eq!((status, v["role"].as_str()), (200, Some("member")), "{v}");
}

/// Runs `a` and `b` on two threads released at the same moment; their answers.
fn at_once<A, B>(a: A, b: B) -> (Response, Response)
where
    A: FnOnce() -> Response + Send,
    B: FnOnce() -> Response + Send,
{
    let start = std::sync::Barrier::new(2);
    std::thread::scope(|scope| {
        let a = scope.spawn(|| {
            start.wait();
            a()
        });
        let b = scope.spawn(|| {
            start.wait();
            b()
        });
        (a.join().unwrap(), b.join().unwrap())
    })
}

/// How a round takes an admin away.
#[derive(Clone, Copy, Debug)]
enum Removal {
    Demote,
    Delete,
}

fn remove_admin(s: &Server, token: &str, id: &str, how: Removal) -> Response {
    let path = format!("/api/v1/users/{id}");
    let r = match how {
        Removal::Demote => s
            .with_token("PATCH", &path, token)
            .json(&json!({ "role": "member" })),
        Removal::Delete => s.with_token("DELETE", &path, token),
    };
    r.send().unwrap()
}

/// Exactly one of two concurrent removals of a tenant's two admins wins; the other gets 409
/// naming the last admin.
fn one_wins(round: usize, a: Response, b: Response) {
    let statuses = [a.status().as_u16(), b.status().as_u16()];
    let won = statuses.iter().filter(|s| matches!(s, 200 | 204)).count();
    assert_eq!(won, 1, "round {round}: {statuses:?}");
    let loser = if matches!(statuses[0], 200 | 204) {
        b
    } else {
        a
    };
    let v = assert_error(loser, 409, "conflict");
    assert!(v["message"].as_str().unwrap().contains("last admin"), "{v}");
}

both_backends!(concurrent_removals_never_leave_a_tenant_without_an_admin);
fn concurrent_removals_never_leave_a_tenant_without_an_admin(backend: Backend) {
    const ROUNDS: usize = 15;
    let s = Server::on(backend).start();
    // A service token of the tenant itself, so that deleting any user is not deleting oneself.
    let (status, v) = send(s.admin("POST", "/api/v1/tokens").json(&json!({
        "name": "service", "scopes": ["*"], "ownerId": "default"
    })));
    assert_eq!(status, 201, "{v}");
    let svc = v["token"].as_str().unwrap().to_owned();
    let bootstrap_admin = admin_ids(&s, &svc);
    let mut pair = [
        s.create_user("first-0", "first-password-0", "admin"),
        String::new(),
    ];
    for id in bootstrap_admin {
        assert_eq!(remove_admin(&s, &svc, &id, Removal::Demote).status(), 200);
    }
    for round in 0..ROUNDS {
        if pair[1].is_empty() {
            pair[1] = s.create_user(&format!("second-{round}"), "second-password", "admin");
        }
        assert_eq!(
            admin_ids(&s, &svc).len(),
            2,
            "round {round} starts with two admins"
        );
        let hows = match round % 3 {
            0 => [Removal::Demote, Removal::Demote],
            1 => [Removal::Delete, Removal::Delete],
            _ => [Removal::Demote, Removal::Delete],
        };
        let (a, b) = at_once(
            || remove_admin(&s, &svc, &pair[0], hows[0]),
            || remove_admin(&s, &svc, &pair[1], hows[1]),
        );
        let left = admin_ids(&s, &svc);
        assert!(!left.is_empty(), "round {round} ({hows:?}) left no admin");
        one_wins(round, a, b);
        pair = [left[0].clone(), String::new()];
    }
}

// The CLI, as an operator uses it.

both_backends!(the_cli_manages_users);
fn the_cli_manages_users(backend: Backend) {
    let s = Server::on(backend).start();
    let out = cli_stdout(&s.cli(
        &s.admin_token,
        &["user", "create", "mia", "--role", "member"],
    ));
    let password = out
        .lines()
        .find_map(|l| l.strip_prefix("Password (shown once, hand it on now): "))
        .unwrap_or_else(|| panic!("no password line in:\n{out}"))
        .to_owned();
    s.login("mia", &password);

    let listed: Value = serde_json::from_str(&cli_stdout(
        &s.cli(&s.admin_token, &["user", "list", "--json"]),
    ))
    .unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "mia"]);
    let table = cli_stdout(&s.cli(&s.admin_token, &["user", "list"]));
    assert!(table.contains("mia") && table.contains("member"), "{table}");

    cli_stdout(&s.cli_with_stdin(
        &s.admin_token,
        &["user", "set-password", "mia", "--password-stdin"],
        "chosen-password-789\n",
    ));
    s.login("mia", "chosen-password-789");

    cli_stdout(&s.cli(&s.admin_token, &["user", "set-role", "mia", "admin"]));
    let mia = s.login("mia", "chosen-password-789");
    assert_eq!(mia.body["user"]["role"], "admin");

    let out = cli_stdout(&s.cli(&s.admin_token, &["user", "delete", "mia"]));
    assert!(out.contains("Deleted user mia"), "{out}");
    assert_error(
        s.try_login("default", "mia", "chosen-password-789"),
        401,
        "invalid_credentials",
    );

    let out = s.cli(&s.admin_token, &["user", "delete", "nobody"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("nobody"),
        "{err}"
    );
}
