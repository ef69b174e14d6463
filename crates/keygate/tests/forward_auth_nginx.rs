//! The README's nginx `auth_request` configuration, run by a real nginx in front of a real
//! keygate: the forward-auth contract as a protected API's proxy sees it.
//!
//! Needs `nginx` on the PATH (`.ci/run` installs Debian's). Outside CI a missing nginx skips
//! these tests with a loud message; in CI (`CI=true`) it fails them.

mod common;
use common::*;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn nginx_binary() -> Option<String> {
    for candidate in ["nginx", "/usr/sbin/nginx"] {
        let ok = Command::new(candidate)
            .arg("-v")
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return Some(candidate.to_owned());
        }
    }
    skip_outside_ci(
        "nginx_auth_request_lets_good_tokens_through_and_stops_the_rest",
        "nginx is not installed (.ci/run installs it); forward-auth behind nginx was NOT tested",
    );
    None
}

struct Nginx {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    /// SIGTERM, not SIGKILL: the master then stops its workers, where a killed master would
    /// leave them running.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// nginx with the README's two locations in front of `keygate`, and an upstream that echoes the
/// owner header it was given.
fn nginx(bin: &str, keygate_url: &str) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let (front, upstream) = (free_port(), free_port());
    let root = dir.path().display();
    let conf = format!(
        r#"daemon off;
worker_processes 1;
error_log {root}/error.log;
pid {root}/nginx.pid;
events {{}}
http {{
  access_log off;
  client_body_temp_path {root}; proxy_temp_path {root}; fastcgi_temp_path {root};
  uwsgi_temp_path {root}; scgi_temp_path {root};
  server {{
    listen 127.0.0.1:{front};
    location = /_keygate {{
        internal;
        proxy_pass {keygate_url}/api/v1/auth?scope=metrics:read;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header X-Original-URI $request_uri;
    }}
    location /api/ {{
        auth_request /_keygate;
        auth_request_set $keygate_owner $upstream_http_x_keygate_owner_id;
        proxy_set_header X-Keygate-Owner-Id $keygate_owner;
        proxy_pass http://127.0.0.1:{upstream};
    }}
  }}
  server {{
    listen 127.0.0.1:{upstream};
    location / {{ return 200 "owner=$http_x_keygate_owner_id"; }}
  }}
}}
"#
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new(bin)
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(dir.path())
        // No inherited stdio: nothing nginx leaves behind may hold the test runner's pipes.
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting nginx");
    let url = format!("http://127.0.0.1:{front}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", front)).is_err() {
        assert!(Instant::now() < deadline, "nginx did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Nginx {
        child,
        url,
        _dir: dir,
    }
}

both_backends!(nginx_auth_request_lets_good_tokens_through_and_stops_the_rest);
fn nginx_auth_request_lets_good_tokens_through_and_stops_the_rest(backend: Backend) {
    let Some(bin) = nginx_binary() else { return };
    let s = Server::on(backend)
        .args(&["--scope", "metrics:read=Read metrics"])
        .start();
    let (_, metrics) = s.create_token("grafana", &["metrics:read"]);
    let (_, narrow) = s.create_token("read-only", &["tokens:read"]);
    let (disabled_id, disabled) = s.create_token("off", &["metrics:read"]);
    s.admin("POST", &format!("/api/v1/tokens/{disabled_id}/disable"))
        .send()
        .unwrap();
    let self_owner = status_json(
        s.with_token("GET", "/api/v1/tokens/self", &metrics)
            .send()
            .unwrap(),
    )
    .1["ownerId"]
        .as_str()
        .unwrap()
        .to_owned();
    let n = nginx(&bin, &s.url);
    let http = reqwest::blocking::Client::new();
    let get = |path: &str, auth: Option<&str>| {
        let mut r = http.get(format!("{}{path}", n.url));
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        let r = r.send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };

    let (status, body) = get("/api/data", Some(&format!("apiToken {metrics}")));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        format!("owner={self_owner}"),
        "the upstream learns the owner"
    );

    let (status, body) = get(&format!("/api/data?api-token={metrics}"), None);
    assert_eq!(
        (status, body.as_str()),
        (200, format!("owner={self_owner}").as_str()),
        "query token via X-Original-URI"
    );

    assert_eq!(get("/api/data", None).0, 401, "no token");
    assert_eq!(
        get("/api/data", Some("apiToken kg_made_up_token_value")).0,
        401,
        "garbage token"
    );
    assert_eq!(
        get("/api/data", Some(&format!("Bearer {disabled}"))).0,
        401,
        "disabled token"
    );
    assert_eq!(
        get("/api/data", Some(&format!("Bearer {narrow}"))).0,
        403,
        "missing scope"
    );
}
