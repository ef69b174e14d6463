//! Secrets never leak: one full run against one real `keygate serve` at the most
//! verbose log level, through every surface that takes or shows a secret, then a search of
//! everything the run left behind for every secret it saw.
//!
//! Every token plaintext issued (native REST, the Instana, Dynatrace and Interana surfaces, the
//! CLI, tenants, rotations), every password (generated or given, right or wrong), the bootstrap
//! token and admin password of the first start, and the session cookies are collected. Then:
//! - no log line holds any of them (the first start's two "shown once" lines excepted), neither
//!   whole nor, for a native token, its secret part alone;
//! - the database (the SQLite file with its `-wal` and `-shm`, while running and after the
//!   stop; or a dump on PostgreSQL) holds none of them as bytes;
//! - no response (status, every header, body) and no CLI output holds one, except the one
//!   response that created it;
//! - no URL the server generates (`Location`, `Link` and `Refresh` headers, `nextCursor`,
//!   `nextPageKey`, the examples of `/openapi.json`) holds one or anything shaped like a token.
//!
//! Then the careless client: a token sent where a scope, a sort key, a date or a role belongs
//! never comes back in an answer, not even in part; and every answer that carries a secret
//! tells caches not to keep it.

mod common;

use std::time::Duration;

use common::*;
use keygate_core::credentials::redact_tokens;
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{json, Value};

const PREFIX: &str = "kg";

/// A secret seen in the run, and the exchanges that may show it (none, for a secret the
/// client chose: only the client ever had it).
struct Secret {
    what: String,
    value: String,
    shown_in: Vec<usize>,
    /// A client-chosen secret that the client itself put in a URL path: it cannot be told
    /// from an id there, so the request log line shows it (the README says so).
    logged_in_path: bool,
}

/// One response, or one run of the CLI, as the text a client receives.
struct Exchange {
    label: String,
    text: String,
    /// URLs and URL parts the server generated in it.
    urls: Vec<(String, String)>,
}

/// A response, read.
struct Answer {
    idx: usize,
    status: u16,
    json: Value,
    set_cookie: Vec<String>,
}

impl Answer {
    fn str(&self, key: &str) -> String {
        self.json[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key:?} in {}", self.json))
            .to_owned()
    }
}

struct Run {
    s: Server,
    /// Follows no redirect, so every `Location` the server sends is seen.
    http: Client,
    exchanges: Vec<Exchange>,
    secrets: Vec<Secret>,
}

/// The secret part (random + checksum) of a native token: a log line that drops the prefix
/// and id still leaks it.
fn secret_part(token: &str) -> Option<&str> {
    let rest = token.strip_prefix("kg_")?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 16 && secret.len() == 49).then_some(secret)
}

fn hex_decode(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    Some(String::from_utf8_lossy(&bytes?).into_owned())
}

impl Run {
    fn start(backend: Backend) -> Run {
        let s = Server::on(backend)
            .generated_secrets()
            .env("KEYGATE_LOG", "trace")
            .args(&["--compat", "instana,dynatrace,interana"])
            .start();
        let http = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut run = Run {
            s,
            http,
            exchanges: Vec::new(),
            secrets: Vec::new(),
        };
        let password = run
            .s
            .output_line_after(SHOWN_PASSWORD)
            .expect("the first start prints a generated admin password");
        let token = run.s.admin_token.clone();
        run.given("the generated admin password", &password);
        run.given("the generated bootstrap token", &token);
        run
    }

    fn req(&self, method: &str, path: &str) -> RequestBuilder {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        self.http.request(m, self.s.url(path))
    }

    fn with(&self, method: &str, path: &str, token: &str) -> RequestBuilder {
        self.req(method, path)
            .header("Authorization", format!("Bearer {token}"))
    }

    fn admin(&self, method: &str, path: &str) -> RequestBuilder {
        self.with(method, path, &self.s.admin_token.clone())
    }

    /// Sends, records the whole answer, and returns it read.
    fn send(&mut self, label: &str, req: RequestBuilder) -> Answer {
        let r = req
            .send()
            .unwrap_or_else(|e| panic!("{label}: request failed: {e}"));
        let status = r.status().as_u16();
        let mut text = format!("HTTP {status}\n");
        let mut urls = Vec::new();
        let mut set_cookie = Vec::new();
        for (name, value) in r.headers() {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            text.push_str(&format!("{name}: {value}\n"));
            if ["location", "content-location", "link", "refresh"].contains(&name.as_str()) {
                urls.push((format!("{name} header"), value.clone()));
            }
            if name == "set-cookie" {
                set_cookie.push(value);
            }
        }
        let body = r.bytes().unwrap();
        let body = String::from_utf8_lossy(&body).into_owned();
        text.push('\n');
        text.push_str(&body);
        let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        for key in ["nextCursor", "nextPageKey"] {
            if let Some(v) = json[key].as_str() {
                urls.push((key.to_owned(), v.to_owned()));
                if let Some(decoded) = hex_decode(v) {
                    urls.push((format!("{key}, hex-decoded"), decoded));
                }
            }
        }
        self.exchanges.push(Exchange {
            label: label.to_owned(),
            text,
            urls,
        });
        Answer {
            idx: self.exchanges.len() - 1,
            status,
            json,
            set_cookie,
        }
    }

    /// Sends and asserts the status.
    fn expect(&mut self, label: &str, status: u16, req: RequestBuilder) -> Answer {
        let a = self.send(label, req);
        assert_eq!(a.status, status, "{label}: status; answer: {}", a.json);
        a
    }

    /// Runs the CLI with this token (and stdin), recording its output as an exchange.
    fn cli(&mut self, token: &str, args: &[&str], stdin: Option<&str>) -> (usize, bool, String) {
        let out = self.s.cli_with_stdin(token, args, stdin.unwrap_or(""));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let text = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        self.exchanges.push(Exchange {
            label: format!("keygate {}", args.join(" ")),
            text,
            urls: Vec::new(),
        });
        (self.exchanges.len() - 1, out.status.success(), stdout)
    }

    /// A secret that this exchange created and may show.
    fn issued(&mut self, what: &str, value: &str, shown_in: usize) {
        self.add(what, value, vec![shown_in]);
    }

    /// A secret no response may show (chosen by the client, or shown outside any response).
    fn given(&mut self, what: &str, value: &str) {
        self.add(what, value, Vec::new());
    }

    fn add(&mut self, what: &str, value: &str, shown_in: Vec<usize>) {
        assert!(!value.is_empty(), "{what} is empty");
        if let Some(secret) = secret_part(value) {
            self.secrets.push(Secret {
                what: format!("the secret part of {what}"),
                value: secret.to_owned(),
                shown_in: shown_in.clone(),
                logged_in_path: false,
            });
        }
        self.secrets.push(Secret {
            what: what.to_owned(),
            value: value.to_owned(),
            shown_in,
            logged_in_path: false,
        });
    }

    /// Creates a native token with the admin token; returns (id, token).
    fn create(&mut self, label: &str, body: Value) -> (String, String) {
        let a = self.expect(label, 201, self.admin("POST", "/api/v1/tokens").json(&body));
        let token = a.str("token");
        self.issued(label, &token, a.idx);
        (a.str("id"), token)
    }
}

/// Lines of the CLI's text output after `marker`.
fn line_after(text: &str, marker: &str) -> String {
    text.lines()
        .find_map(|l| l.split(marker).nth(1))
        .unwrap_or_else(|| panic!("no {marker:?} in the CLI output:\n{text}"))
        .trim()
        .to_owned()
}

/// Every `example`/`examples` value in a JSON document, with its JSON path.
fn examples(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = format!("{path}/{k}");
                if k == "example" || k == "examples" {
                    out.push((format!("openapi.json {p}"), child.to_string()));
                }
                examples(child, &p, out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                examples(child, &format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
}

both_backends!(no_secret_leaks_from_a_full_run);
fn no_secret_leaks_from_a_full_run(backend: Backend) {
    let mut run = Run::start(backend);
    let admin = run.s.admin_token.clone();
    let admin_password = run.s.output_line_after(SHOWN_PASSWORD).unwrap();

    // ---- ops and the page
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/",
        "/ui/app.js",
        "/favicon.ico",
    ] {
        run.send(path, run.req("GET", path));
    }
    let spec = run.expect("openapi", 200, run.req("GET", "/openapi.json"));
    let mut openapi_examples = Vec::new();
    examples(&spec.json, "", &mut openapi_examples);
    assert!(
        !openapi_examples.is_empty(),
        "the OpenAPI document has examples to check"
    );

    // ---- native tokens
    let (id_a, a) = run.create(
        "native token a",
        json!({"name": "a", "scopes": ["tokens:read", "tokens:write"]}),
    );
    let (id_b, b) = run.create(
        "native token b",
        json!({"name": "b", "scopes": ["tokens:read"], "description": "d",
               "metadata": {"k": "v"}, "expiresIn": 3600}),
    );
    let (_, c) = run.create(
        "native token c",
        json!({"name": "c", "scopes": ["tokens:read", "tokens:write"]}),
    );
    // Every Authorization scheme, and the query parameters, on a route that needs a token.
    for scheme in [
        "apiToken",
        "APITOKEN",
        "Api-Token",
        "Token",
        "Bearer",
        "bearer",
    ] {
        run.expect(
            &format!("self with {scheme}"),
            200,
            run.req("GET", "/api/v1/tokens/self")
                .header("Authorization", format!("{scheme} {a}")),
        );
    }
    for param in ["api-token", "apiToken", "api_token"] {
        run.expect(
            &format!("self with ?{param}="),
            200,
            run.req("GET", &format!("/api/v1/tokens/self?{param}={b}&x=1")),
        );
    }
    // Forward-auth: the token in the request's header, query, or the original URI.
    run.expect(
        "forward-auth, header",
        200,
        run.req("GET", "/api/v1/auth?scope=tokens:read")
            .header("Authorization", format!("apiToken {a}")),
    );
    run.expect(
        "forward-auth, query",
        200,
        run.req(
            "GET",
            &format!("/api/v1/auth?scope=tokens:read&api-token={a}"),
        ),
    );
    for header in ["X-Forwarded-Uri", "X-Original-Uri"] {
        for param in ["api-token", "apiToken", "api_token"] {
            run.expect(
                &format!("forward-auth, {header} ?{param}"),
                200,
                run.req("GET", "/api/v1/auth")
                    .header(header, format!("/app/data?{param}={c}&page=2")),
            );
        }
        run.expect(
            &format!("forward-auth, {header}, missing scope"),
            403,
            run.req("GET", "/api/v1/auth?scope=users:write")
                .header(header, format!("/app?api-token={c}")),
        );
    }
    // Verify: valid, missing scope, and tokens that are not good.
    let v = run.expect(
        "verify valid",
        200,
        run.req("POST", "/api/v1/verify")
            .json(&json!({"token": a, "scopes": ["tokens:read"]})),
    );
    assert_eq!(v.json["code"], "VALID");
    run.expect(
        "verify missing scope",
        200,
        run.req("POST", "/api/v1/verify")
            .json(&json!({"token": a, "scopes": ["users:write"]})),
    );
    let mut wrong_checksum = a.clone().into_bytes();
    let i = wrong_checksum.len() - 10;
    wrong_checksum[i] = if wrong_checksum[i] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let wrong_checksum = String::from_utf8(wrong_checksum).unwrap();
    let unknown = fresh_token();
    let foreign = "not-a-keygate-token-but-plausible-0123";
    for (what, t) in [
        ("a token with a wrong checksum", wrong_checksum.as_str()),
        ("an unknown token", unknown.as_str()),
        ("an unknown foreign token", foreign),
    ] {
        run.given(what, t);
        run.expect(
            &format!("verify {what}"),
            200,
            run.req("POST", "/api/v1/verify").json(&json!({"token": t})),
        );
        for scheme in ["apiToken", "Api-Token", "Token", "Bearer"] {
            run.expect(
                &format!("self with {what} ({scheme})"),
                401,
                run.req("GET", "/api/v1/tokens/self")
                    .header("Authorization", format!("{scheme} {t}")),
            );
        }
        run.expect(
            &format!("self with {what} in the query"),
            401,
            run.req("GET", &format!("/api/v1/tokens/self?api-token={t}")),
        );
        run.expect(
            &format!("forward-auth with {what} in X-Forwarded-Uri"),
            401,
            run.req("GET", "/api/v1/auth")
                .header("X-Forwarded-Uri", format!("/x?apiToken={t}")),
        );
    }
    run.expect(
        "lookup",
        200,
        run.admin("POST", "/api/v1/tokens/lookup")
            .json(&json!({"token": b})),
    );
    // Lists, page by page.
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/tokens?limit=1&cursor={c}"),
            None => "/api/v1/tokens?limit=1".to_owned(),
        };
        let page = run.expect("list page", 200, run.admin("GET", &path));
        pages += 1;
        match page.json["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert!(pages >= 3, "the list was paged ({pages} pages)");
    run.expect(
        "get one",
        200,
        run.admin("GET", &format!("/api/v1/tokens/{id_a}")),
    );
    run.expect(
        "update",
        200,
        run.admin("PUT", &format!("/api/v1/tokens/{id_b}"))
            .json(&json!({"name": "b2", "scopes": ["tokens:read"], "description": "new"})),
    );
    run.expect(
        "disable",
        200,
        run.admin("POST", &format!("/api/v1/tokens/{id_b}/disable")),
    );
    run.expect(
        "use a disabled token",
        401,
        run.with("GET", "/api/v1/tokens/self", &b),
    );
    run.expect(
        "enable",
        200,
        run.admin("POST", &format!("/api/v1/tokens/{id_b}/enable")),
    );
    // Rotation with a grace period: both work; without one, the old one stops at once.
    let r = run.expect(
        "rotate with grace",
        201,
        run.admin("POST", &format!("/api/v1/tokens/{id_a}/rotate"))
            .json(&json!({"gracePeriodSeconds": 3600})),
    );
    let a2 = r.str("token");
    let id_a2 = r.str("id");
    run.issued("the token rotated with grace", &a2, r.idx);
    run.expect(
        "old token in grace",
        200,
        run.with("GET", "/api/v1/tokens/self", &a),
    );
    run.expect(
        "new token",
        200,
        run.with("GET", "/api/v1/tokens/self", &a2),
    );
    let r = run.expect(
        "rotate without grace",
        201,
        run.admin("POST", &format!("/api/v1/tokens/{id_a2}/rotate")),
    );
    let a3 = r.str("token");
    run.issued("the token rotated without grace", &a3, r.idx);
    run.expect(
        "rotated-away token",
        401,
        run.with("GET", "/api/v1/tokens/self", &a2),
    );
    // Revoke, and revoke-self.
    run.expect(
        "revoke",
        204,
        run.admin("DELETE", &format!("/api/v1/tokens/{id_b}")),
    );
    run.expect(
        "revoked token",
        401,
        run.with("GET", "/api/v1/tokens/self", &b),
    );
    run.expect(
        "revoke self",
        204,
        run.with("DELETE", "/api/v1/tokens/self", &c),
    );
    run.expect(
        "self-revoked token",
        401,
        run.with("GET", "/api/v1/tokens/self", &c),
    );
    run.expect("scopes", 200, run.with("GET", "/api/v1/scopes", &a3));
    run.expect("audit", 200, run.admin("GET", "/api/v1/audit?limit=1000"));

    // ---- users, passwords and web sessions
    let mia_password = "mia-chose-this-password-1";
    let mia_new_password = "mia-changed-to-this-one-2";
    run.given("a password given for a new user", mia_password);
    run.given("a password given in a change", mia_new_password);
    let mia = run.expect(
        "create user with a password",
        201,
        run.admin("POST", "/api/v1/users")
            .json(&json!({"username": "mia", "password": mia_password, "role": "member"})),
    );
    let mia_id = mia.str("id");
    let noah = run.expect(
        "create user, password generated",
        201,
        run.admin("POST", "/api/v1/users")
            .json(&json!({"username": "noah", "role": "admin"})),
    );
    let noah_password = noah.str("password");
    run.issued("a generated user password", &noah_password, noah.idx);
    run.expect("list users", 200, run.admin("GET", "/api/v1/users?limit=1"));
    run.expect(
        "get user",
        200,
        run.admin("GET", &format!("/api/v1/users/{mia_id}")),
    );
    let login = |run: &mut Run, label: &str, tenant: &str, user: &str, password: &str| {
        run.send(
            label,
            run.req("POST", "/api/v1/session")
                .json(&json!({"tenant": tenant, "username": user, "password": password})),
        )
    };
    let first = login(&mut run, "mia logs in", "default", "mia", mia_password);
    assert_eq!(first.status, 200, "{}", first.json);
    let first_cookie = first
        .set_cookie
        .iter()
        .find_map(|c| c.strip_prefix("keygate_session="))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .expect("a login sets the session cookie");
    run.issued("a session cookie", &first_cookie, first.idx);
    run.expect(
        "change mia's password",
        200,
        run.admin("PATCH", &format!("/api/v1/users/{mia_id}"))
            .json(&json!({"password": mia_new_password})),
    );
    let old = login(&mut run, "old password", "default", "mia", mia_password);
    assert_eq!(old.status, 401, "{}", old.json);
    let wrong_guess = "a-wrong-guess-for-admin-9";
    run.given("a wrong password", wrong_guess);
    let wrong = login(&mut run, "wrong password", "default", "admin", wrong_guess);
    assert_eq!(wrong.status, 401, "{}", wrong.json);
    // A token pasted into the username field (and a password into the tenant field).
    let pasted = login(
        &mut run,
        "token as username",
        "default",
        &a3,
        mia_new_password,
    );
    assert_eq!(pasted.status, 401, "{}", pasted.json);
    let pasted = login(&mut run, "password as tenant", mia_new_password, "mia", "x");
    assert_eq!(pasted.status, 401, "{}", pasted.json);
    let session = login(
        &mut run,
        "mia logs in again",
        "default",
        "mia",
        mia_new_password,
    );
    assert_eq!(session.status, 200, "{}", session.json);
    let cookie = session
        .set_cookie
        .iter()
        .find_map(|c| c.strip_prefix("keygate_session="))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .unwrap();
    run.issued("a session cookie", &cookie, session.idx);
    let csrf = session.str("csrfToken");
    let as_mia = |run: &Run, method: &str, path: &str| {
        run.req(method, path)
            .header("Cookie", format!("keygate_session={cookie}"))
            .header("X-CSRF-Token", &csrf)
    };
    let r = run.expect(
        "session creates a token",
        201,
        as_mia(&run, "POST", "/api/v1/tokens")
            .json(&json!({"name": "from the page", "scopes": ["tokens:read"]})),
    );
    let from_page = r.str("token");
    run.issued("a token created by a web session", &from_page, r.idx);
    run.expect("session lists", 200, as_mia(&run, "GET", "/api/v1/tokens"));
    run.expect(
        "who is logged in",
        200,
        as_mia(&run, "GET", "/api/v1/session"),
    );
    run.expect(
        "a change without the CSRF token",
        403,
        run.req("POST", "/api/v1/tokens")
            .header("Cookie", format!("keygate_session={cookie}"))
            .header("X-CSRF-Token", &a3)
            .json(&json!({"name": "x", "scopes": ["tokens:read"]})),
    );
    run.expect("log out", 204, as_mia(&run, "DELETE", "/api/v1/session"));
    run.expect(
        "a cookie after logout",
        401,
        as_mia(&run, "GET", "/api/v1/session"),
    );
    run.expect(
        "a cookie ended by the password change",
        401,
        run.req("GET", "/api/v1/session")
            .header("Cookie", format!("keygate_session={first_cookie}")),
    );
    run.expect(
        "a token as the cookie",
        401,
        run.req("GET", "/api/v1/session")
            .header("Cookie", format!("keygate_session={a3}")),
    );
    let admin_session = login(
        &mut run,
        "admin logs in",
        "default",
        "admin",
        &admin_password,
    );
    assert_eq!(admin_session.status, 200, "{}", admin_session.json);
    let admin_cookie = admin_session
        .set_cookie
        .iter()
        .find_map(|c| c.strip_prefix("keygate_session="))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .unwrap();
    run.issued(
        "the admin's session cookie",
        &admin_cookie,
        admin_session.idx,
    );

    // ---- tenants
    let acme = run.expect(
        "create tenant, password generated",
        201,
        run.admin("POST", "/api/v1/tenants")
            .json(&json!({"name": "acme"})),
    );
    run.issued(
        "a tenant's generated admin password",
        &acme.str("adminPassword"),
        acme.idx,
    );
    let acme_token = acme.str("adminToken");
    run.issued("a tenant's admin token", &acme_token, acme.idx);
    let beta_password = "beta-admin-chose-this-3";
    run.given("a tenant admin password given", beta_password);
    let beta = run.expect(
        "create tenant with a password",
        201,
        run.admin("POST", "/api/v1/tenants")
            .json(&json!({"name": "beta", "adminPassword": beta_password})),
    );
    run.issued("a tenant's admin token", &beta.str("adminToken"), beta.idx);
    let acme_login = login(
        &mut run,
        "acme's admin logs in",
        "acme",
        "admin",
        &acme.str("adminPassword"),
    );
    assert_eq!(acme_login.status, 200, "{}", acme_login.json);
    let acme_cookie = acme_login
        .set_cookie
        .iter()
        .find_map(|c| c.strip_prefix("keygate_session="))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .unwrap();
    run.issued("acme's admin session cookie", &acme_cookie, acme_login.idx);
    run.expect(
        "acme's admin token",
        200,
        run.with("GET", "/api/v1/tokens/self", &acme_token),
    );

    // ---- Instana: the client chooses the secret
    let instana_secret = "my-own-instana-secret-000111";
    run.given("an Instana client's chosen secret", instana_secret);
    let base = "/api/settings/api-tokens";
    run.expect(
        "instana create",
        200,
        run.admin("POST", base).json(&json!({
            "accessGrantingToken": instana_secret, "internalId": "ext-1", "name": "instana",
            "canConfigureApiTokens": true, "canViewAuditLog": true})),
    );
    run.expect(
        "instana duplicate secret",
        409,
        run.admin("POST", base).json(&json!({
            "accessGrantingToken": instana_secret, "internalId": "ext-2", "name": "dup"})),
    );
    run.expect(
        "instana's secret works",
        200,
        run.req("GET", base)
            .header("Authorization", format!("apiToken {instana_secret}")),
    );
    run.expect("instana list", 200, run.admin("GET", base));
    run.expect(
        "instana get",
        200,
        run.admin("GET", &format!("{base}/ext-1")),
    );
    run.expect(
        "instana put",
        200,
        run.admin("PUT", &format!("{base}/ext-1")).json(&json!({
            "accessGrantingToken": instana_secret, "internalId": "ext-1", "name": "renamed",
            "canConfigureApiTokens": true})),
    );
    run.expect(
        "instana secret in the path",
        404,
        run.admin("GET", &format!("{base}/{instana_secret}")),
    );
    for secret in run.secrets.iter_mut().filter(|s| s.value == instana_secret) {
        secret.logged_in_path = true;
    }
    run.expect(
        "instana delete",
        204,
        run.admin("DELETE", &format!("{base}/ext-1")),
    );

    // ---- Dynatrace: enough tokens for a second page
    let dt = "/api/v2/apiTokens";
    let mut dt_tokens = Vec::new();
    for i in 0..101 {
        let r = run.expect(
            "dynatrace create",
            201,
            run.admin("POST", dt).json(
                &json!({"name": format!("dt-{i}"), "scopes": ["apiTokens.read", "metrics.read"]}),
            ),
        );
        let t = r.str("token");
        run.issued("a Dynatrace-created token", &t, r.idx);
        dt_tokens.push((r.str("id"), t));
    }
    let (dt_id, dt_token) = dt_tokens[0].clone();
    let first_page = run.expect(
        "dynatrace list",
        200,
        run.with("GET", &format!("{dt}?pageSize=100&sort=name"), &dt_token),
    );
    let key = first_page.str("nextPageKey");
    run.expect(
        "dynatrace next page",
        200,
        run.with("GET", &format!("{dt}?nextPageKey={key}"), &dt_token),
    );
    run.expect(
        "dynatrace get",
        200,
        run.admin("GET", &format!("{dt}/{dt_id}")),
    );
    run.expect(
        "dynatrace lookup",
        200,
        run.admin("POST", &format!("{dt}/lookup"))
            .json(&json!({"token": dt_tokens[1].1})),
    );
    run.send(
        "dynatrace token in the path",
        run.admin("GET", &format!("{dt}/{}", dt_tokens[2].1)),
    );
    run.expect(
        "dynatrace put",
        204,
        run.admin("PUT", &format!("{dt}/{dt_id}"))
            .json(&json!({"name": "renamed", "scopes": ["apiTokens.read"]})),
    );
    run.expect(
        "dynatrace delete",
        204,
        run.admin("DELETE", &format!("{dt}/{}", dt_tokens[3].0)),
    );
    run.send(
        "dynatrace bad create",
        run.admin("POST", dt)
            .json(&json!({"name": dt_tokens[4].1, "scopes": dt_tokens[4].1})),
    );

    // ---- Interana: create and revoke by the token itself
    let r = run.expect(
        "interana create",
        200,
        run.req("POST", "/api/create_token")
            .header("Authorization", format!("Token {a3}")),
    );
    let inter = r.str("token");
    run.issued("an Interana-created token", &inter, r.idx);
    let r = run.expect(
        "interana create (GET)",
        200,
        run.req("GET", "/api/create_token")
            .header("Authorization", format!("Token {inter}")),
    );
    let inter2 = r.str("token");
    run.issued("an Interana-created token", &inter2, r.idx);
    run.expect(
        "interana revoke",
        200,
        run.req("POST", "/api/revoke_token")
            .header("Authorization", format!("Token {inter2}"))
            .json(&json!({"token": inter})),
    );
    run.send(
        "interana revoke again",
        run.req("POST", "/api/revoke_token")
            .header("Authorization", format!("Token {inter2}"))
            .json(&json!({"token": inter})),
    );
    run.send(
        "interana create with a revoked token",
        run.req("POST", "/api/create_token")
            .header("Authorization", format!("Token {inter}")),
    );

    // ---- the CLI
    let (idx, ok, out) = run.cli(
        &admin,
        &["token", "create", "--name", "cli", "--scope", "tokens:read"],
        None,
    );
    assert!(ok, "{out}");
    let cli_token = line_after(&out, "Token (shown once, store it now): ");
    run.issued("a CLI-created token", &cli_token, idx);
    let (idx, ok, out) = run.cli(
        &admin,
        &[
            "token",
            "create",
            "--name",
            "cli-json",
            "--scope",
            "tokens:read",
            "--json",
        ],
        None,
    );
    assert!(ok, "{out}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let cli_id = created["id"].as_str().unwrap().to_owned();
    run.issued(
        "a CLI-created token",
        created["token"].as_str().unwrap(),
        idx,
    );
    for args in [
        vec!["token", "list"],
        vec!["token", "list", "--json"],
        vec!["token", "show", &cli_id],
        vec!["token", "disable", &cli_id],
        vec!["token", "enable", &cli_id],
    ] {
        let (_, ok, out) = run.cli(&admin, &args, None);
        assert!(ok, "{args:?}: {out}");
    }
    let (idx, ok, out) = run.cli(&admin, &["token", "rotate", &cli_id, "--grace", "1h"], None);
    assert!(ok, "{out}");
    let cli_rotated = line_after(&out, "Token (shown once, store it now): ");
    run.issued("a CLI-rotated token", &cli_rotated, idx);
    let (_, ok, out) = run.cli(&admin, &["token", "revoke", &cli_id], None);
    assert!(ok, "{out}");
    let (_, ok, out) = run.cli(&cli_token, &["token", "list"], None);
    assert!(ok, "{out}");
    let (_, ok, out) = run.cli(&b, &["token", "list"], None);
    assert!(!ok, "a revoked token is refused: {out}");
    let (idx, ok, out) = run.cli(&admin, &["user", "create", "cli-user"], None);
    assert!(ok, "{out}");
    let cli_user_password = line_after(&out, "Password (shown once, hand it on now): ");
    run.issued("a CLI-generated user password", &cli_user_password, idx);
    let stdin_password = "typed-into-the-cli-stdin-4";
    run.given("a password given to the CLI on stdin", stdin_password);
    let (_, ok, out) = run.cli(
        &admin,
        &["user", "create", "cli-user2", "--password-stdin"],
        Some(stdin_password),
    );
    assert!(ok, "{out}");
    let (idx, ok, out) = run.cli(&admin, &["user", "set-password", "cli-user"], None);
    assert!(ok, "{out}");
    let reset = line_after(&out, "Password (shown once, hand it on now): ");
    run.issued("a CLI-generated new password", &reset, idx);
    let (_, ok, out) = run.cli(&admin, &["user", "list", "--json"], None);
    assert!(ok, "{out}");
    let (idx, ok, out) = run.cli(&admin, &["tenant", "create", "gamma"], None);
    assert!(ok, "{out}");
    run.issued(
        "a CLI-created tenant's admin password",
        &line_after(&out, "Admin password (shown once): "),
        idx,
    );
    run.issued(
        "a CLI-created tenant's admin token",
        &line_after(&out, "Admin token (shown once): "),
        idx,
    );
    let cli_login = login(
        &mut run,
        "the CLI user logs in",
        "default",
        "cli-user",
        &reset,
    );
    assert_eq!(cli_login.status, 200, "{}", cli_login.json);
    let (_, ok, _) = run.cli(&cli_token, &["user", "list"], None);
    assert!(!ok, "a token without users:read is refused");

    // ---- bad requests with tokens in odd places
    for param in [
        "API-TOKEN",
        "ApiToken",
        "apitoken",
        "token",
        "access_token",
        "key",
        "auth",
        "api-token2",
        "x-api-token",
        "password",
    ] {
        run.send(
            &format!("misspelled query parameter {param}"),
            run.req("GET", &format!("/api/v1/tokens/self?{param}={a3}")),
        );
        run.send(
            &format!("forward-auth, misspelled {param} in X-Forwarded-Uri"),
            run.req("GET", "/api/v1/auth")
                .header("X-Forwarded-Uri", format!("/x?{param}={a3}")),
        );
    }
    for path in [
        format!("/api/v1/tokens/{a3}"),
        format!("/api/v1/tokens/{a3}/rotate"),
        format!("/api/v1/users/{a3}"),
        format!("/no/such/route/{a3}"),
        format!("/{a3}"),
        format!("/api/v1/tokens/self/{a3}?{a3}"),
    ] {
        run.send("a token in the path", run.admin("GET", &path));
        run.send(
            "a token in the path",
            run.admin("POST", &path).json(&json!({})),
        );
    }
    run.send(
        "a token as the Authorization value alone",
        run.req("GET", "/api/v1/tokens/self")
            .header("Authorization", &a3),
    );
    for header in [
        format!("Basic {a3}"),
        format!("Bearer {a3} extra"),
        format!("Bearer\t{a3}"),
        format!("Token: {a3}"),
    ] {
        run.send(
            "an odd Authorization header",
            run.req("GET", "/api/v1/tokens/self")
                .header("Authorization", header),
        );
    }
    let bodies = [
        format!(r#"{{"token": 5, "scopes": "{a3}"}}"#),
        format!(r#"{{"token": "{a3}", "scopes": [5]}}"#),
        format!(r#"{{"token": "x", "scopes": "{a3}"}}"#),
        format!(r#"{{"name": "n", "scopes": "{a3}", "username": "u", "role": "{a3}"}}"#),
        format!(r#"{{"username": "u", "password": ["{a3}"]}}"#),
        format!(r#"{{"name": "n", "scopes": ["{a3}"]}}"#),
        format!(r#"{{"name": "n", "scopes": ["tokens:read"], "expiresAt": "{a3}"}}"#),
        format!(r#"{{"{a3}": 1}}"#),
        format!(r#"{{"token": "{a3}""#),
        format!(r#"{{"token": "{a3}", "token": "{a3}"}}"#),
        format!(r#"["{a3}"]"#),
        format!(r#"{{"token": "{a3}\u0000"}}"#),
        a3.clone(),
    ];
    for body in &bodies {
        for path in [
            "/api/v1/verify",
            "/api/v1/tokens/lookup",
            "/api/v1/tokens",
            "/api/v1/session",
            "/api/v1/users",
            "/api/revoke_token",
            "/api/v2/apiTokens/lookup",
            "/api/v2/apiTokens",
            "/api/settings/api-tokens",
        ] {
            run.send(
                &format!("bad body to {path}"),
                run.admin("POST", path)
                    .header("Content-Type", "application/json")
                    .body(body.clone()),
            );
        }
    }
    run.send(
        "a session login with a token as the password",
        run.req("POST", "/api/v1/session")
            .json(&json!({"username": "admin", "password": a3})),
    );
    run.send(
        "a user with a token as the password",
        run.admin("POST", "/api/v1/users")
            .json(&json!({"username": "x", "password": a3, "role": "superuser"})),
    );
    run.send(
        "a user with a token as the name",
        run.admin("POST", "/api/v1/users")
            .json(&json!({"username": a3, "password": "short"})),
    );
    let mut big = format!(r#"{{"token": "{a3}", "pad": ""#);
    big.push_str(&"x".repeat(1 << 21));
    big.push_str(r#""}"#);
    run.send(
        "an oversized body",
        run.req("POST", "/api/v1/verify")
            .header("Content-Type", "application/json")
            .body(big),
    );

    // ---- let the last-use writer run, then look at everything
    std::thread::sleep(Duration::from_millis(1500));
    // As text for the search: a needle is ASCII, and lossy decoding keeps every ASCII byte.
    let as_text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    let db_running = as_text(run.s.database_bytes());
    let status = run.s.stop();
    assert!(status.success(), "keygate stops cleanly: {status}");
    let db_stopped = as_text(run.s.database_bytes());
    let log = run.s.output();

    // Controls: the searches look at real content.
    for (what, bytes) in [("running", &db_running), ("stopped", &db_stopped)] {
        assert!(
            bytes.contains(&id_a),
            "token id {id_a} not found in the database ({what}): the search looks at nothing"
        );
    }
    assert!(
        log.lines().any(|l| l.contains("REDACTED")),
        "a token in a URL is logged as REDACTED"
    );
    assert!(
        log.lines().any(|l| l.contains(" TRACE ")),
        "the server ran at the trace level"
    );
    for secret in &run.secrets {
        for &i in &secret.shown_in {
            assert!(
                run.exchanges[i].text.contains(&secret.value),
                "{} is in the response that created it ({})",
                secret.what,
                run.exchanges[i].label
            );
        }
    }

    let mut leaks = Vec::new();
    let shown_once = |line: &str, secret: &Secret| {
        (secret.what.contains("generated admin password") && line.contains(SHOWN_PASSWORD))
            || (secret.what.contains("generated bootstrap token") && line.contains(SHOWN_TOKEN))
    };
    for secret in &run.secrets {
        let needle = secret.value.as_str();
        let shown_lines = log
            .lines()
            .filter(|l| l.contains(needle) && shown_once(l, secret))
            .count();
        assert!(shown_lines <= 1, "{} is shown more than once", secret.what);
        for line in log.lines() {
            let request_line = line.contains("keygate_server::middleware")
                && line.contains(&format!("path=\"{base}/{needle}\""));
            if line.contains(needle)
                && !shown_once(line, secret)
                && !(secret.logged_in_path && request_line)
            {
                leaks.push(format!("{} in a log line: {line}", secret.what));
            }
        }
        for (what, bytes) in [("running", &db_running), ("stopped", &db_stopped)] {
            if bytes.contains(needle) {
                leaks.push(format!("{} in the database files ({what})", secret.what));
            }
        }
        for (i, ex) in run.exchanges.iter().enumerate() {
            if !secret.shown_in.contains(&i) && ex.text.contains(needle) {
                leaks.push(format!(
                    "{} in the answer to {:?}:\n{}",
                    secret.what, ex.label, ex.text
                ));
            }
        }
    }
    let mut urls: Vec<(String, String)> = run
        .exchanges
        .iter()
        .flat_map(|e| {
            e.urls
                .iter()
                .map(|(k, u)| (format!("{k} of {}", e.label), u.clone()))
        })
        .collect();
    let generated_urls = urls.len();
    urls.extend(openapi_examples.iter().cloned());
    for (what, url) in &urls {
        if redact_tokens(url, PREFIX) != *url {
            leaks.push(format!("a token-shaped value in {what}: {url}"));
        }
        for secret in &run.secrets {
            if url.contains(&secret.value) {
                leaks.push(format!("{} in {what}", secret.what));
            }
        }
    }
    let parts = run
        .secrets
        .iter()
        .filter(|s| s.what.starts_with("the secret part"))
        .count();
    let tokens = run
        .secrets
        .iter()
        .filter(|s| s.what.contains("token") && !s.what.starts_with("the secret part"))
        .count();
    let passwords = run
        .secrets
        .iter()
        .filter(|s| s.what.contains("password"))
        .count();
    println!(
        "searched for {} secrets ({tokens} tokens, {parts} secret parts of them, {passwords} \
         passwords, {} session cookies) in {} log lines ({} bytes), {} + {} bytes of database \
         (running, stopped), {} responses and CLI runs, {generated_urls} generated URLs and {} \
         OpenAPI examples",
        run.secrets.len(),
        run.secrets.len() - tokens - parts - passwords,
        log.lines().count(),
        log.len(),
        db_running.len(),
        db_stopped.len(),
        run.exchanges.len(),
        openapi_examples.len(),
    );
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.join("\n---\n")
    );
}

/// Tokens a careless client may put where a scope, a sort key, a date or a role belongs: a real
/// one of this deployment, and a made-up one of the same shape whose checksum is wrong.
fn misplaced_tokens(s: &Server) -> Vec<(&'static str, String)> {
    let (_, real) = s.create_token("misplaced", &["tokens:read"]);
    vec![
        ("a real token", real),
        ("a made-up token", bad_checksum(&fresh_token())),
    ]
}

/// What is wrong with an answer to a request that carried `token` where it does not belong:
/// a status other than `status`, its secret (or eight characters of it) in the body, or its id gone from the body (the
/// message should still say what was wrong).
fn echo_problem(token: &str, status: u16, r: reqwest::blocking::Response) -> Option<String> {
    let got = r.status().as_u16();
    let body = r.text().unwrap();
    let secret = secret_part(token).expect("a native token");
    let id = &token[..token.len() - secret.len() - 1];
    // A message that cuts the value short still leaks what it keeps of the secret.
    let leaks = secret
        .as_bytes()
        .windows(8)
        .any(|w| body.contains(std::str::from_utf8(w).unwrap()));
    if leaks {
        Some(format!("(part of) the secret is echoed ({got}): {body}"))
    } else if got != status {
        Some(format!("status {got}, not {status}: {body}"))
    } else if !body.contains(id) {
        Some(format!("the id is gone ({got}): {body}"))
    } else {
        None
    }
}

both_backends!(no_error_body_echoes_a_token_sent_in_the_wrong_place);
fn no_error_body_echoes_a_token_sent_in_the_wrong_place(backend: Backend) {
    let s = Server::on(backend)
        .args(&["--compat", "instana,dynatrace,interana"])
        .start();
    let (_, narrow) = s.create_token("narrow", &["tokens:read"]);
    let user = s.create_user("rita", "a-long-enough-password", "member");
    let mut problems = Vec::new();
    for (kind, t) in misplaced_tokens(&s) {
        let enc = |v: &str| form_urlencoded_value(v);
        let q = enc(&t);
        let cases: Vec<(String, u16, RequestBuilder)> = vec![
            (
                "forward-auth scope".into(),
                403,
                s.with_token("GET", &format!("/api/v1/auth?scope={q}"), &narrow),
            ),
            (
                "verify scopes".into(),
                200,
                s.anon("POST", "/api/v1/verify")
                    .json(&json!({"token": narrow, "scopes": [t]})),
            ),
            (
                "native create scopes".into(),
                422,
                s.admin("POST", "/api/v1/tokens")
                    .json(&json!({"name": "x", "scopes": [t]})),
            ),
            (
                "Dynatrace sort".into(),
                400,
                s.admin("GET", &format!("/api/v2/apiTokens?sort={q}")),
            ),
            (
                "Dynatrace fields".into(),
                400,
                s.admin("GET", &format!("/api/v2/apiTokens?fields={q}")),
            ),
            (
                "Dynatrace from".into(),
                400,
                s.admin("GET", &format!("/api/v2/apiTokens?from={q}")),
            ),
            (
                "Dynatrace expirationDate".into(),
                400,
                s.admin("POST", "/api/v2/apiTokens").json(&json!({
                    "name": "x", "scopes": ["apiTokens.read"], "expirationDate": t})),
            ),
            (
                "user role on create".into(),
                422,
                s.admin("POST", "/api/v1/users").json(&json!({
                    "username": "tom", "password": "a-long-enough-password", "role": t})),
            ),
            (
                "user role on update".into(),
                422,
                s.admin("PATCH", &format!("/api/v1/users/{user}"))
                    .json(&json!({"role": t})),
            ),
        ];
        for (what, status, req) in cases {
            if let Some(p) = echo_problem(&t, status, req.send().unwrap()) {
                problems.push(format!("{kind} as the {what}: {p}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `value` percent-encoded for a query string.
fn form_urlencoded_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

both_backends!(answers_that_carry_a_secret_are_never_stored_by_caches);
/// Every answer that carries a secret tells caches (browsers, proxies) not to keep it.
fn answers_that_carry_a_secret_are_never_stored_by_caches(backend: Backend) {
    let s = Server::on(backend)
        .args(&["--compat", "instana,dynatrace,interana"])
        .start();
    let (id, _) = s.create_token("to-rotate", &["tokens:read"]);
    let session = s.login("admin", ADMIN_PASSWORD);
    let cases: Vec<(&str, u16, RequestBuilder)> = vec![
        (
            "native create",
            201,
            s.admin("POST", "/api/v1/tokens")
                .json(&json!({"name": "a", "scopes": ["tokens:read"]})),
        ),
        (
            "rotate",
            201,
            s.admin("POST", &format!("/api/v1/tokens/{id}/rotate")),
        ),
        (
            "Instana create",
            200,
            s.admin("POST", "/api/settings/api-tokens").json(
                &json!({"name": "i", "internalId": "cache-1", "canViewLogs": true,
                              "accessGrantingToken": "an-instana-clients-own-secret"}),
            ),
        ),
        (
            "Dynatrace create",
            201,
            s.admin("POST", "/api/v2/apiTokens")
                .json(&json!({"name": "d", "scopes": ["apiTokens.read"]})),
        ),
        ("Interana create", 200, s.admin("POST", "/api/create_token")),
        (
            "tenant create",
            201,
            s.admin("POST", "/api/v1/tenants")
                .json(&json!({"name": "cachecorp", "adminUsername": "boss"})),
        ),
        (
            "user create with a generated password",
            201,
            s.admin("POST", "/api/v1/users")
                .json(&json!({"username": "gen", "role": "member"})),
        ),
        (
            "login",
            200,
            s.anon("POST", "/api/v1/session").json(&json!({
                "tenant": "default", "username": "admin", "password": ADMIN_PASSWORD})),
        ),
        (
            "the session with its CSRF token",
            200,
            s.as_session(&session, "GET", "/api/v1/session"),
        ),
    ];
    for (what, status, req) in cases {
        let r = req.send().unwrap();
        let cache = r
            .headers()
            .get_all("cache-control")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>();
        let (got, body) = status_json(r);
        assert_eq!(got, status, "{what}: {body}");
        assert!(
            cache.iter().any(|v| v.contains("no-store")),
            "{what}: Cache-Control is {cache:?}"
        );
    }
}
