//! Web login (`/api/v1/session`): the cookie's flags, CSRF protection, logout, the limits on
//! failed logins and their audit trail, through the real server.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn set_cookie(r: &reqwest::blocking::Response) -> String {
    session_cookie(r)
        .unwrap_or_else(|| panic!("no session cookie in {:?}", r.headers()))
        .1
}

both_backends!(login_sets_an_httponly_strict_cookie_and_answers_who_is_logged_in);
fn login_sets_an_httponly_strict_cookie_and_answers_who_is_logged_in(backend: Backend) {
    let s = Server::on(backend).start();
    let r = s.try_login("default", "admin", ADMIN_PASSWORD);
    assert_eq!(r.status(), 200);
    let cookie = set_cookie(&r);
    for part in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(part), "{part} in {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP: no Secure flag: {cookie}"
    );
    let body: Value = r.json().unwrap();
    assert_eq!(body["user"]["username"], "admin");
    assert_eq!(body["user"]["role"], "admin");
    assert!(body["csrfToken"].as_str().unwrap().len() >= 32);
    assert!(body["expiresAt"].is_string());
    let scopes = body["scopes"].to_string();
    assert!(
        scopes.contains("tokens:admin") && !scopes.contains("tenants:admin"),
        "{scopes}"
    );

    let session = s.login("admin", ADMIN_PASSWORD);
    let (status, me) = status_json(
        s.as_session(&session, "GET", "/api/v1/session")
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200);
    assert_eq!(me["user"]["id"], session.body["user"]["id"]);
    assert_eq!(me["csrfToken"], session.csrf.as_str());
    // Without a cookie: 401.
    assert_error(
        s.anon("GET", "/api/v1/session").send().unwrap(),
        401,
        "invalid_session",
    );
    assert_error(
        s.anon("GET", "/api/v1/session")
            .header("Cookie", "keygate_session=made-up")
            .send()
            .unwrap(),
        401,
        "invalid_session",
    );
}

both_backends!(the_cookie_is_secure_over_tls);
fn the_cookie_is_secure_over_tls(backend: Backend) {
    let s = Server::on(backend).args(&["--secure-cookies"]).start();
    let r = s.try_login("default", "admin", ADMIN_PASSWORD);
    assert!(set_cookie(&r).contains("; Secure"));

    // Behind a trusted TLS-terminating proxy, the proxy's word decides.
    let s = Server::on(backend).args(&["--trust-forwarded-for"]).start();
    let login = |proto: &str| {
        s.anon("POST", "/api/v1/session")
            .header("X-Forwarded-Proto", proto)
            .json(&json!({ "username": "admin", "password": ADMIN_PASSWORD }))
            .send()
            .unwrap()
    };
    assert!(set_cookie(&login("https")).contains("; Secure"));
    assert!(!set_cookie(&login("http")).contains("Secure"));
    // Without trust in the proxy, a client cannot switch it on or off.
    let s = Server::on(backend).start();
    let r = s
        .anon("POST", "/api/v1/session")
        .header("X-Forwarded-Proto", "https")
        .json(&json!({ "username": "admin", "password": ADMIN_PASSWORD }))
        .send()
        .unwrap();
    assert!(!set_cookie(&r).contains("Secure"));
}

both_backends!(a_member_can_give_a_token_every_scope_of_the_role_and_no_more_than_the_catalogue);
/// The rule on scopes per token holds for every token a role can make: a member holds more
/// than a hundred scopes (every API scope, Instana's flags among them) and can give a token all
/// of them, on the native API as through Interana's copy of the caller's scopes; a list longer
/// than the catalogue is refused.
fn a_member_can_give_a_token_every_scope_of_the_role_and_no_more_than_the_catalogue(
    backend: Backend,
) {
    let s = Server::on(backend).start();
    s.create_user("mia", "mia-password-123", "member");
    let session = s.login("mia", "mia-password-123");
    let scopes: Vec<String> = session.body["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert!(scopes.len() > 100, "{}", scopes.len());
    let r = s
        .as_session(&session, "POST", "/api/v1/tokens")
        .json(&json!({ "name": "all of mine", "scopes": scopes }))
        .send()
        .unwrap();
    let (status, v) = status_json(r);
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["scopes"].as_array().unwrap().len(), scopes.len());
    let (_, catalogue) = status_json(s.admin("GET", "/api/v1/scopes").send().unwrap());
    let too_many = vec!["tokens:read"; catalogue.as_array().unwrap().len() + 1];
    let r = s
        .as_session(&session, "POST", "/api/v1/tokens")
        .json(&json!({ "name": "too many", "scopes": too_many }))
        .send()
        .unwrap();
    assert_error(r, 422, "invalid_request");
}

both_backends!(a_cookie_can_never_create_through_a_get);
/// Interana's `create_token` is also a GET, which a browser sends cross-site for a link or an
/// image with the cookie attached: with only the cookie it must never create anything, with or
/// without the CSRF token, while a token in the header may still use the GET.
fn a_cookie_can_never_create_through_a_get(backend: Backend) {
    let s = Server::on(backend).start();
    let session = s.login("admin", ADMIN_PASSWORD);
    let count = || {
        let (_, list) = status_json(s.admin("GET", "/api/v1/tokens?limit=1000").send().unwrap());
        list["items"].as_array().unwrap().len()
    };
    let before = count();
    for method in ["GET", "HEAD"] {
        let r = s
            .anon(method, "/api/create_token")
            .header("Cookie", &session.cookie)
            .send()
            .unwrap();
        assert_eq!(r.status(), 403, "{method} with the cookie alone");
        let r = s
            .as_session(&session, method, "/api/create_token")
            .send()
            .unwrap();
        assert_eq!(
            r.status(),
            403,
            "{method} with the cookie and the CSRF token"
        );
    }
    let r = s
        .anon("GET", "/api/create_token")
        .header("Cookie", &session.cookie)
        .send()
        .unwrap();
    let body: serde_json::Value = r.json().unwrap();
    assert!(
        body["msg"].as_str().unwrap().contains("X-CSRF-Token"),
        "{body}"
    );
    assert_eq!(count(), before, "a refused GET created a token");
    // The page's own way, a POST with the CSRF token, works; so does a GET with a token.
    let r = s
        .as_session(&session, "POST", "/api/create_token")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s.admin("GET", "/api/create_token").send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(count(), before + 2);
}

both_backends!(changes_made_with_the_cookie_need_the_csrf_token);
fn changes_made_with_the_cookie_need_the_csrf_token(backend: Backend) {
    let s = Server::on(backend).start();
    let session = s.login("admin", ADMIN_PASSWORD);
    let body = json!({ "name": "from the page", "scopes": ["tokens:read"] });
    // What a cross-site form or script could send: the cookie, but not the header.
    let r = s
        .anon("POST", "/api/v1/tokens")
        .header("Cookie", &session.cookie)
        .json(&body)
        .send()
        .unwrap();
    assert_error(r, 403, "csrf_failed");
    let r = s
        .anon("POST", "/api/v1/tokens")
        .header("Cookie", &session.cookie)
        .header("X-CSRF-Token", "guessed-wrong-guessed-wrong-1234")
        .json(&body)
        .send()
        .unwrap();
    assert_error(r, 403, "csrf_failed");
    let r = s
        .anon("DELETE", "/api/v1/session")
        .header("Cookie", &session.cookie)
        .send()
        .unwrap();
    assert_error(r, 403, "csrf_failed");
    // Nothing was created by the refused requests.
    let (_, list) = status_json(
        s.admin("GET", "/api/v1/tokens?q=from%20the%20page")
            .send()
            .unwrap(),
    );
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    // Reads need no CSRF token; a change with it works.
    let r = s
        .anon("GET", "/api/v1/tokens")
        .header("Cookie", &session.cookie)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, created) = status_json(
        s.as_session(&session, "POST", "/api/v1/tokens")
            .json(&body)
            .send()
            .unwrap(),
    );
    assert_eq!(status, 201, "{created}");
}

both_backends!(a_token_in_the_request_wins_over_the_cookie);
fn a_token_in_the_request_wins_over_the_cookie(backend: Backend) {
    let s = Server::on(backend).start();
    let session = s.login("admin", ADMIN_PASSWORD);
    let (_, reader) = s.create_token("reader", &["tokens:read"]);
    // With the reader token, the admin's cookie adds nothing: the scope check is the token's.
    let r = s
        .with_token("GET", "/api/v1/audit", &reader)
        .header("Cookie", &session.cookie)
        .send()
        .unwrap();
    assert_error(r, 403, "insufficient_scope");
    // A route that describes the calling token says a session has none.
    let r = s
        .as_session(&session, "GET", "/api/v1/tokens/self")
        .send()
        .unwrap();
    assert_error(r, 404, "not_found");
}

both_backends!(logout_ends_the_session_and_clears_the_cookie);
fn logout_ends_the_session_and_clears_the_cookie(backend: Backend) {
    let s = Server::on(backend).start();
    let session = s.login("admin", ADMIN_PASSWORD);
    let other = s.login("admin", ADMIN_PASSWORD);
    let r = s
        .as_session(&session, "DELETE", "/api/v1/session")
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    let cleared = set_cookie(&r);
    assert!(
        cleared.starts_with("keygate_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    assert_error(
        s.as_session(&session, "GET", "/api/v1/tokens")
            .send()
            .unwrap(),
        401,
        "invalid_session",
    );
    // Logging out twice is fine; another browser's session lives on.
    assert_eq!(
        s.as_session(&session, "DELETE", "/api/v1/session")
            .send()
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        s.as_session(&other, "GET", "/api/v1/tokens")
            .send()
            .unwrap()
            .status(),
        200
    );
    let (_, audit) = status_json(
        s.admin("GET", "/api/v1/audit?action=session.logout")
            .send()
            .unwrap(),
    );
    assert_eq!(audit["items"].as_array().unwrap().len(), 1);
}

both_backends!(wrong_credentials_get_one_answer_whatever_was_wrong);
fn wrong_credentials_get_one_answer_whatever_was_wrong(backend: Backend) {
    let s = Server::on(backend).start();
    s.create_user("mia", "mia-password-123", "member");
    for (tenant, user, password) in [
        ("default", "admin", "not-the-password"),
        ("default", "nobody", "not-the-password"),
        ("no-such-tenant", "admin", ADMIN_PASSWORD),
        ("default", "Admin", ADMIN_PASSWORD),
    ] {
        let r = s.try_login(tenant, user, password);
        assert!(session_cookie(&r).is_none());
        let v = assert_error(r, 401, "invalid_credentials");
        assert_eq!(v["message"], "Wrong username or password");
    }
    let r = s
        .anon("POST", "/api/v1/session")
        .json(&json!({ "username": "admin" }))
        .send()
        .unwrap();
    assert_error(r, 422, "invalid_request");
}

both_backends!(a_login_must_be_sent_as_json_so_no_other_site_can_post_one);
fn a_login_must_be_sent_as_json_so_no_other_site_can_post_one(backend: Backend) {
    let s = Server::on(backend).start();
    let body = json!({ "username": "admin", "password": ADMIN_PASSWORD }).to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut r = s.anon("POST", "/api/v1/session").body(body.clone());
        if let Some(t) = content_type {
            r = r.header("Content-Type", t);
        }
        let r = r.send().unwrap();
        assert!(session_cookie(&r).is_none());
        assert_error(r, 400, "invalid_request");
    }
}

both_backends!(failed_logins_are_limited_per_account_at_an_address_and_per_address_and_audited);
fn failed_logins_are_limited_per_account_at_an_address_and_per_address_and_audited(
    backend: Backend,
) {
    let s = Server::on(backend)
        .args(&[
            "--login-max-failures",
            "3",
            "--login-failure-delay",
            "1m",
            "--login-max-failures-per-ip",
            "5",
        ])
        .start();
    s.create_user("mia", "mia-password-123", "member");
    for _ in 0..3 {
        assert_error(
            s.try_login("default", "admin", "wrong-password"),
            401,
            "invalid_credentials",
        );
    }
    // The account waits a while at this address, even with the right password…
    let r = s.try_login("default", "admin", ADMIN_PASSWORD);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let v = assert_error(r, 429, "rate_limited");
    assert!(v["message"].as_str().unwrap().contains("try again"), "{v}");
    // …while another account from the same address still may log in.
    s.login("mia", "mia-password-123");
    // Two more failures reach the address's limit of five: now every account is refused.
    for _ in 0..2 {
        assert_error(
            s.try_login("default", "mia", "wrong-password"),
            401,
            "invalid_credentials",
        );
    }
    assert_error(
        s.try_login("default", "mia", "mia-password-123"),
        429,
        "rate_limited",
    );

    // Each checked failure is audited, with the address and the username, never the password.
    let (_, audit) = status_json(
        s.admin("GET", "/api/v1/audit?action=session.login_failed")
            .send()
            .unwrap(),
    );
    let failures = audit["items"].as_array().unwrap();
    assert_eq!(failures.len(), 5, "{audit}");
    assert_eq!(failures[4]["details"]["username"], "admin");
    assert_eq!(failures[4]["ip"], "127.0.0.1");
    assert_eq!(failures[4]["actor"], "anonymous");
    assert!(!audit.to_string().contains("wrong-password"));
    // Logins that worked are audited too.
    let (_, ok) = status_json(
        s.admin("GET", "/api/v1/audit?action=session.login")
            .send()
            .unwrap(),
    );
    assert_eq!(ok["items"].as_array().unwrap().len(), 1);
}

both_backends!(failures_from_one_address_delay_that_address_and_never_lock_the_owner_out);
fn failures_from_one_address_delay_that_address_and_never_lock_the_owner_out(backend: Backend) {
    let s = Server::on(backend)
        .args(&[
            "--trust-forwarded-for",
            "--login-max-failures",
            "2",
            "--login-failure-delay",
            "500ms",
        ])
        .start();
    let (stranger, owner) = ("203.0.113.9", "198.51.100.4");
    let login_from = |ip: &str, password: &str| {
        s.anon("POST", "/api/v1/session")
            .header("X-Forwarded-For", ip)
            .json(&json!({ "username": "admin", "password": password }))
            .send()
            .unwrap()
    };
    let fails = |ip: &str| {
        assert_error(login_from(ip, "wrong-password"), 401, "invalid_credentials");
    };
    fails(stranger);
    fails(stranger);
    // Beyond its free failures, the stranger's address waits 0.5 s, then 1 s, then 2 s: each
    // failure doubles the delay, and an attempt during the delay is refused unchecked.
    let mut waits = Vec::new();
    for _ in 0..2 {
        let r = login_from(stranger, "wrong-password");
        waits.push(retry_after(&r));
        assert_error(r, 429, "rate_limited");
        // The owner, from an address of their own, is never held up by the stranger.
        assert_eq!(login_from(owner, ADMIN_PASSWORD).status(), 200);
        std::thread::sleep(Duration::from_secs(*waits.last().unwrap()));
        fails(stranger);
    }
    // Even the right password from the stranger's address must wait for the delay…
    let r = login_from(stranger, ADMIN_PASSWORD);
    waits.push(retry_after(&r));
    assert_error(r, 429, "rate_limited");
    assert_eq!(waits, [1, 1, 2], "0.5 s, 1 s and 2 s, rounded up");
    assert_eq!(login_from(owner, ADMIN_PASSWORD).status(), 200);
    // …and is let in once it is over.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(login_from(stranger, ADMIN_PASSWORD).status(), 200);
    // A success forgets that address's failures for the account.
    fails(stranger);
    assert_eq!(login_from(stranger, ADMIN_PASSWORD).status(), 200);
}

both_backends!(the_page_is_served_with_a_strict_content_security_policy);
fn the_page_is_served_with_a_strict_content_security_policy(backend: Backend) {
    let s = Server::on(backend).start();
    for (path, kind) in [
        ("/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
        ("/ui/usage.js", "text/javascript"),
    ] {
        let r = s.anon("GET", path).send().unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["x-content-type-options"], "nosniff");
    }
    let html = s.anon("GET", "/").send().unwrap().text().unwrap();
    assert!(html.contains("/ui/app.js") && html.contains("/ui/app.css"));
    assert!(
        !html.contains("<script>"),
        "no inline script: the CSP would block it"
    );
}
