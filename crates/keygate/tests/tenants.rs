//! Tenants: creating one (`POST /api/v1/tenants`, `keygate tenant create`), and the promise that
//! nothing crosses tenants, checked route by route with a tenant admin's token against another
//! tenant's tokens, users and audit log.

mod common;

use common::*;
use serde_json::{json, Value};

struct Acme {
    token: String,
    admin_id: String,
    password: String,
}

fn create_acme(s: &Server) -> Acme {
    let (status, v) = status_json(
        s.admin("POST", "/api/v1/tenants")
            .json(&json!({ "name": "acme" }))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["id"], "acme");
    assert_eq!(v["admin"]["username"], "admin");
    assert_eq!(v["admin"]["tenantId"], "acme");
    assert_eq!(v["admin"]["role"], "admin");
    Acme {
        token: v["adminToken"].as_str().unwrap().to_owned(),
        admin_id: v["admin"]["id"].as_str().unwrap().to_owned(),
        password: v["adminPassword"].as_str().unwrap().to_owned(),
    }
}

both_backends!(a_tenant_comes_with_an_admin_who_can_log_in_and_a_working_admin_token);
fn a_tenant_comes_with_an_admin_who_can_log_in_and_a_working_admin_token(backend: Backend) {
    let s = Server::on(backend)
        .args(&["--scope", "metrics:read=Read metrics"])
        .start();
    let acme = create_acme(&s);
    let (status, me) = status_json(
        s.with_token("GET", "/api/v1/tokens/self", &acme.token)
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200);
    assert_eq!(me["tenantId"], "acme");
    assert_eq!(me["ownerId"], acme.admin_id.as_str());
    let scopes = me["scopes"].to_string();
    for s in ["tokens:admin", "users:write", "audit:read", "metrics:read"] {
        assert!(scopes.contains(s), "{s} in {scopes}");
    }
    assert!(
        !scopes.contains("tenants:admin"),
        "a tenant's admin cannot make tenants"
    );
    let session = s.login_to("acme", "admin", &acme.password);
    assert_eq!(session.body["user"]["tenantId"], "acme");
    // The same username in another tenant is another person.
    assert_error(
        s.try_login("default", "admin", &acme.password),
        401,
        "invalid_credentials",
    );

    // The creation is in both audit logs.
    let (_, theirs) = status_json(
        s.with_token("GET", "/api/v1/audit?action=tenant.create", &acme.token)
            .send()
            .unwrap(),
    );
    assert_eq!(theirs["items"].as_array().unwrap().len(), 1);
    let (_, ours) = status_json(
        s.admin("GET", "/api/v1/audit?action=tenant.create")
            .send()
            .unwrap(),
    );
    assert_eq!(ours["items"][0]["targetId"], "acme");
    assert!(!ours.to_string().contains(&acme.token) && !ours.to_string().contains(&acme.password));
}

both_backends!(creating_tenants_needs_tenants_admin_and_a_good_unique_name);
fn creating_tenants_needs_tenants_admin_and_a_good_unique_name(backend: Backend) {
    let s = Server::on(backend).start();
    let acme = create_acme(&s);
    let r = s
        .admin("POST", "/api/v1/tenants")
        .json(&json!({ "name": "acme" }))
        .send()
        .unwrap();
    assert_error(r, 409, "conflict");
    for name in ["", "Acme", "has space", "-x", &"a".repeat(64)] {
        let r = s
            .admin("POST", "/api/v1/tenants")
            .json(&json!({ "name": name }))
            .send()
            .unwrap();
        assert_error(r, 422, "invalid_request");
    }
    let r = s
        .admin("POST", "/api/v1/tenants")
        .json(&json!({ "name": "beta", "adminPassword": "short" }))
        .send()
        .unwrap();
    assert_error(r, 422, "invalid_request");
    // A tenant admin, or the default tenant's admin user, cannot create tenants.
    let r = s
        .with_token("POST", "/api/v1/tenants", &acme.token)
        .json(&json!({ "name": "beta" }))
        .send()
        .unwrap();
    assert_error(r, 403, "insufficient_scope");
    let admin = s.login("admin", ADMIN_PASSWORD);
    let r = s
        .as_session(&admin, "POST", "/api/v1/tenants")
        .json(&json!({ "name": "beta" }))
        .send()
        .unwrap();
    assert_error(r, 403, "insufficient_scope");
    // A chosen admin name and password.
    let (status, v) = status_json(
        s.admin("POST", "/api/v1/tenants")
            .json(&json!({ "name": "beta", "adminUsername": "root", "adminPassword": "beta-password-123" }))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 201, "{v}");
    assert!(
        v.get("adminPassword").is_none(),
        "a chosen password is not echoed"
    );
    s.login_to("beta", "root", "beta-password-123");
}

both_backends!(nothing_crosses_tenants);
fn nothing_crosses_tenants(backend: Backend) {
    let s = Server::on(backend)
        .args(&["--scope", "metrics:read=Read metrics"])
        .start();
    let acme = create_acme(&s);
    let default_admin = s.login("admin", ADMIN_PASSWORD);
    let default_admin_id = default_admin.user_id();
    let (theirs_id, theirs) = s.create_token("default's token", &["metrics:read"]);
    let as_acme = |method: &str, path: &str| s.with_token(method, path, &acme.token);

    // List: nothing of the other tenant, whatever the filter.
    for path in [
        "/api/v1/tokens".to_owned(),
        format!("/api/v1/tokens?ownerId={default_admin_id}"),
        "/api/v1/tokens?ownerId=default".to_owned(),
        "/api/v1/tokens?q=default".to_owned(),
    ] {
        let (status, v) = status_json(as_acme("GET", &path).send().unwrap());
        assert_eq!(status, 200, "{path}: {v}");
        for t in v["items"].as_array().unwrap() {
            assert_eq!(t["tenantId"], "acme", "{path}: {t}");
        }
        assert!(!v.to_string().contains(&theirs_id), "{path}");
    }
    // Read, change, rotate, revoke: 404, as for a token that does not exist.
    for (method, path, body) in [
        ("GET", format!("/api/v1/tokens/{theirs_id}"), None),
        (
            "PUT",
            format!("/api/v1/tokens/{theirs_id}"),
            Some(json!({ "name": "x", "scopes": ["metrics:read"] })),
        ),
        ("POST", format!("/api/v1/tokens/{theirs_id}/disable"), None),
        ("POST", format!("/api/v1/tokens/{theirs_id}/enable"), None),
        (
            "POST",
            format!("/api/v1/tokens/{theirs_id}/rotate"),
            Some(json!({})),
        ),
        ("DELETE", format!("/api/v1/tokens/{theirs_id}"), None),
    ] {
        let mut r = as_acme(method, &path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        assert_error(r.send().unwrap(), 404, "not_found");
    }
    // Looking a token up by its plaintext, as one's own: not found.
    let r = as_acme("POST", "/api/v1/tokens/lookup")
        .json(&json!({ "token": theirs }))
        .send()
        .unwrap();
    assert_error(r, 404, "not_found");
    // Verification names the token's tenant, so a protected API can never take it for acme's.
    let v = s.verify(&theirs, &["metrics:read"]);
    assert_eq!(
        (v["valid"].as_bool(), v["tenantId"].as_str()),
        (Some(true), Some("default"))
    );
    let r = s
        .anon("GET", "/api/v1/auth")
        .header("Authorization", format!("Bearer {theirs}"))
        .send()
        .unwrap();
    assert_eq!(r.headers()["x-keygate-tenant-id"], "default");
    // No token for another tenant's user.
    let r = as_acme("POST", "/api/v1/tokens")
        .json(
            &json!({ "name": "planted", "scopes": ["metrics:read"], "ownerId": default_admin_id }),
        )
        .send()
        .unwrap();
    assert!(matches!(r.status().as_u16(), 404 | 422), "{}", r.status());

    // Users: neither listed nor reachable.
    let (_, users) = status_json(as_acme("GET", "/api/v1/users").send().unwrap());
    let names: Vec<&Value> = users["items"].as_array().unwrap().iter().collect();
    assert_eq!(names.len(), 1);
    assert_eq!(names[0]["id"], acme.admin_id.as_str());
    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(json!({ "role": "member" }))),
        ("DELETE", None),
    ] {
        let mut r = as_acme(method, &format!("/api/v1/users/{default_admin_id}"));
        if let Some(b) = body {
            r = r.json(&b);
        }
        assert_error(r.send().unwrap(), 404, "not_found");
    }

    // Audit: only acme's own entries, even when asking for the other tenant's token.
    let (_, audit) = status_json(as_acme("GET", "/api/v1/audit?limit=1000").send().unwrap());
    assert!(!audit["items"].as_array().unwrap().is_empty());
    assert!(!audit.to_string().contains(&theirs_id));
    assert!(!audit.to_string().contains(&default_admin_id));
    let (_, audit) = status_json(
        as_acme("GET", &format!("/api/v1/audit?targetId={theirs_id}"))
            .send()
            .unwrap(),
    );
    assert_eq!(audit["items"].as_array().unwrap().len(), 0);

    // The compatible surfaces draw the same line.
    let (_, instana) = status_json(as_acme("GET", "/api/settings/api-tokens").send().unwrap());
    assert!(!instana.to_string().contains(&theirs_id), "{instana}");
    let r = as_acme("GET", &format!("/api/v2/apiTokens/{theirs_id}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);

    // And the same from the other side, with a web session of acme's admin.
    let acme_session = s.login_to("acme", "admin", &acme.password);
    let (_, list) = status_json(
        s.as_session(&acme_session, "GET", "/api/v1/tokens")
            .send()
            .unwrap(),
    );
    assert!(!list.to_string().contains(&theirs_id));
    let r = s
        .as_session(
            &acme_session,
            "POST",
            &format!("/api/v1/tokens/{theirs_id}/disable"),
        )
        .send()
        .unwrap();
    assert_error(r, 404, "not_found");
    // Nothing above changed the other tenant's token.
    assert_eq!(s.verify(&theirs, &[])["valid"], true);
}

both_backends!(the_cli_creates_a_tenant);
fn the_cli_creates_a_tenant(backend: Backend) {
    let s = Server::on(backend).start();
    let out = s.cli(&s.admin_token, &["tenant", "create", "acme"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in:\n{stdout}"))
            .to_owned()
    };
    let password = line("Admin password (shown once): ");
    let token = line("Admin token (shown once): ");
    s.login_to("acme", "admin", &password);
    assert_eq!(s.verify(&token, &["tokens:admin"])["tenantId"], "acme");
    // Without tenants:admin, one clear line.
    let (_, reader) = s.create_token("reader", &["tokens:read"]);
    let out = s.cli(&reader, &["tenant", "create", "beta"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: ") && err.contains("403"), "{err}");
}
