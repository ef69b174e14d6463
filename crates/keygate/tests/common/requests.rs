//! Talking to a [`Server`]: HTTP requests with or without a token, the calls nearly every test
//! makes (create a token, verify one, create a user) and the CLI pointed at the server.

use std::process::{Command, Output, Stdio};

use reqwest::blocking::RequestBuilder;
use serde_json::{json, Value};

use super::{keygate_command, status_json, Server};

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub fn anon(&self, method: &str, path: &str) -> RequestBuilder {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        self.http.request(m, self.url(path))
    }

    pub fn with_token(&self, method: &str, path: &str, token: &str) -> RequestBuilder {
        self.anon(method, path)
            .header("Authorization", format!("Bearer {token}"))
    }

    /// A request with the admin token in `Authorization: Bearer`.
    pub fn admin(&self, method: &str, path: &str) -> RequestBuilder {
        self.with_token(method, path, &self.admin_token)
    }

    /// One request; its status and JSON body (`Null` when empty, a string when not JSON).
    /// Fails the test, with the server's last lines, only if the server does not answer.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = match token {
            Some(t) => self.with_token(method, path, t),
            None => self.anon(method, path),
        };
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().unwrap_or_else(|e| {
            panic!(
                "{} did not answer {method} {path}: {e}\n{}",
                self.name,
                self.tail()
            )
        });
        let status = r.status().as_u16();
        let text = r.text().unwrap_or_default();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    /// Creates a token with these scopes using the admin token; returns (id, token).
    pub fn create_token(&self, name: &str, scopes: &[&str]) -> (String, String) {
        let (status, v) = status_json(
            self.admin("POST", "/api/v1/tokens")
                .json(&json!({ "name": name, "scopes": scopes }))
                .send()
                .unwrap(),
        );
        assert_eq!(status, 201, "creating token {name} on {}: {v}", self.name);
        (
            v["id"].as_str().unwrap().to_owned(),
            v["token"].as_str().unwrap().to_owned(),
        )
    }

    /// Creates a token from this request body using the admin token; returns (id, token).
    pub fn create_token_from(&self, body: Value) -> (String, String) {
        let (status, v) = status_json(
            self.admin("POST", "/api/v1/tokens")
                .json(&body)
                .send()
                .unwrap(),
        );
        assert_eq!(status, 201, "creating a token on {}: {v}", self.name);
        (
            v["id"].as_str().unwrap().to_owned(),
            v["token"].as_str().unwrap().to_owned(),
        )
    }

    /// POST /api/v1/verify, asserting 200; returns the JSON answer.
    pub fn verify(&self, token: &str, scopes: &[&str]) -> Value {
        let r = self
            .anon("POST", "/api/v1/verify")
            .json(&json!({ "token": token, "scopes": scopes }))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().unwrap()
    }

    /// Creates a user with the admin token; returns its id.
    pub fn create_user(&self, username: &str, password: &str, role: &str) -> String {
        let r = self
            .admin("POST", "/api/v1/users")
            .json(&json!({ "username": username, "password": password, "role": role }))
            .send()
            .unwrap();
        let (status, v) = status_json(r);
        assert_eq!(status, 201, "creating user {username}: {v}");
        v["id"].as_str().unwrap().to_owned()
    }

    /// Every item of a paged admin list (`/api/v1/tokens`, `/api/v1/audit?action=…`),
    /// following `nextCursor`.
    pub fn all_items(&self, path: &str) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut page = format!("{path}{sep}limit=1000");
            if let Some(c) = &cursor {
                page.push_str(&format!("&cursor={c}"));
            }
            let (status, v) = status_json(self.admin("GET", &page).send().unwrap());
            assert_eq!(status, 200, "GET {page}: {v}");
            items.extend(v["items"].as_array().unwrap().iter().cloned());
            match v["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return items,
            }
        }
    }

    /// Runs the CLI against this server with `KEYGATE_TOKEN=token`.
    pub fn cli(&self, token: &str, args: &[&str]) -> Output {
        self.cli_command(token, args)
            .output()
            .expect("running the CLI")
    }

    /// [`Server::cli`], with `stdin` written to the CLI's standard input.
    pub fn cli_with_stdin(&self, token: &str, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .cli_command(token, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running the CLI");
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(stdin.as_bytes()).unwrap();
        drop(pipe);
        child.wait_with_output().unwrap()
    }

    /// The CLI pointed at this server, with none of the caller's `KEYGATE_*` variables.
    pub fn cli_command(&self, token: &str, args: &[&str]) -> Command {
        let mut cmd = keygate_command();
        cmd.args(args)
            .env("KEYGATE_URL", &self.url)
            .env("KEYGATE_TOKEN", token);
        cmd
    }
}

/// The stdout of a CLI run that must succeed.
pub fn cli_stdout(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the CLI failed ({}); stdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// What `POST /api/v1/verify` says of `token`: `VALID`, `NOT_FOUND`, `DISABLED`, ….
pub fn code_of(s: &Server, token: &str) -> String {
    s.verify(token, &[])["code"].as_str().unwrap().to_owned()
}

/// The text of `/metrics`.
pub fn metrics_text(s: &Server) -> String {
    let r = s.anon("GET", "/metrics").send().unwrap();
    assert_eq!(r.status(), 200);
    r.text().unwrap()
}

/// The value of one series (name and labels, as printed) in a `/metrics` text, if counted yet.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.split_whitespace().next().unwrap().parse().unwrap())
}

/// `GET /api/v1/tokens/self` with `token`: whether the server takes it, and as what.
pub fn self_of(s: &Server, token: &str) -> (u16, Value) {
    status_json(
        s.with_token("GET", "/api/v1/tokens/self", token)
            .send()
            .unwrap(),
    )
}

/// The ids of the admin users of `token`'s tenant.
pub fn admin_ids(s: &Server, token: &str) -> Vec<String> {
    let (status, list) = s.call("GET", "/api/v1/users?limit=100", Some(token), None);
    assert_eq!(status, 200, "{list}");
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["role"] == "admin")
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect()
}
