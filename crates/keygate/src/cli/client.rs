//! A small blocking HTTP client for the native API, with errors worth one line each.

use std::fmt;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

pub enum CliError {
    /// The user's setup is wrong (no token, bad URL): exit 2.
    Usage(String),
    /// The server could not be reached: exit 1.
    Connect(String),
    /// The server said no: exit 1.
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The answer is not one keygate gives (not JSON, nested too deeply to read, not the
    /// expected shape): a proxy, a wrong KEYGATE_URL, or a broken server. Exit 1.
    Answer(String),
    /// Standard output could not be written.
    Output(std::io::Error),
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) | CliError::Connect(m) | CliError::Answer(m) => f.write_str(m),
            CliError::Api {
                status,
                code,
                message,
            } => write!(f, "{} (HTTP {status}, {code})", one_line(message)),
            CliError::Output(e) => write!(f, "writing the output: {e}"),
        }
    }
}

/// Text from the server on one line, without control characters (which could also move a
/// terminal's cursor).
fn one_line(text: &str) -> String {
    text.replace(char::is_control, " ")
}

pub struct Client {
    base: String,
    token: String,
    http: reqwest::blocking::Client,
}

/// Percent-encodes one path segment (ids are URL-safe, but input is input).
pub fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The token is the caller's credential: `Debug` shows where the client talks to, not with what.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn from_env() -> Result<Self, CliError> {
        let base = std::env::var("KEYGATE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError::Usage(format!(
                "KEYGATE_URL must start with http:// or https:// (got {base:?})"
            )));
        }
        let token = match std::env::var("KEYGATE_TOKEN") {
            Ok(t) if !t.trim().is_empty() => t.trim().to_owned(),
            _ => {
                return Err(CliError::Usage(
                    "KEYGATE_TOKEN is not set: export KEYGATE_TOKEN=<a token with tokens:read / tokens:write>".into(),
                ))
            }
        };
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| CliError::Connect(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self { base, token, http })
    }

    pub fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, CliError> {
        let req = self.http.get(format!("{}{path}", self.base)).query(query);
        self.execute(req)
    }

    /// Every item of a paged list (`{items, nextCursor}`), following the cursor to the end.
    pub fn get_all(&self, path: &str, query: &[(&str, String)]) -> Result<Vec<Value>, CliError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = query.to_vec();
            q.push(("limit", "1000".to_owned()));
            if let Some(c) = &cursor {
                q.push(("cursor", c.clone()));
            }
            let mut page = self.get(path, &q)?;
            let Some(arr) = page.get_mut("items").and_then(Value::as_array_mut) else {
                return Err(self.unreadable(200, "it has no list of items"));
            };
            items.append(arr);
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(items),
            }
        }
    }

    pub fn send(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, CliError> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a valid method");
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.execute(req)
    }

    fn execute(&self, req: reqwest::blocking::RequestBuilder) -> Result<Value, CliError> {
        let resp = req
            .header("Authorization", format!("Bearer {}", self.token))
            .send()
            .map_err(|e| {
                CliError::Connect(format!(
                    "cannot reach keygate at {}: {}",
                    self.base,
                    root_cause(&e)
                ))
            })?;
        let status = resp.status();
        let text = resp
            .text()
            .map_err(|e| CliError::Connect(format!("reading the response: {e}")))?;
        let parsed = if text.is_empty() {
            Ok(Value::Null)
        } else {
            serde_json::from_str(&text)
        };
        if status.is_success() {
            // Every answer the commands read is an object (or nothing, for a 204): anything
            // else would only be misread further on.
            return match parsed {
                Ok(v @ (Value::Object(_) | Value::Null)) => Ok(v),
                Ok(_) => Err(self.unreadable(status.as_u16(), "it is not a JSON object")),
                Err(e) => Err(self.unreadable(status.as_u16(), &format!("{e}"))),
            };
        }
        let body = parsed.unwrap_or(Value::Null);
        Err(CliError::Api {
            status: status.as_u16(),
            code: body["code"].as_str().unwrap_or("unknown").to_owned(),
            message: body["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
        })
    }
}

impl Client {
    fn unreadable(&self, status: u16, why: &str) -> CliError {
        CliError::Answer(format!(
            "the answer of {} (HTTP {status}) is not one keygate gives, so it was not used: {why}",
            self.base
        ))
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_token() {
        let token = "kg_1A2b3C4d5E6f7G8h_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLM";
        let client = Client {
            base: "http://127.0.0.1:8080".into(),
            token: token.into(),
            http: reqwest::blocking::Client::new(),
        };
        let dbg = format!("{client:?}");
        assert!(!dbg.contains(&token[20..]), "{dbg}");
        assert!(
            dbg.contains("<redacted>") && dbg.contains("127.0.0.1:8080"),
            "{dbg}"
        );
    }
}
