//! What the suites assert about answers: the native error body, a 401 with its challenge, a
//! 429's wait, and error bodies held to a committed snapshot.

use reqwest::blocking::Response;
use reqwest::header::WWW_AUTHENTICATE;
use serde_json::{json, Value};

/// Status and JSON body of a response (`Null` when empty); a body that is not JSON fails.
pub fn status_json(r: Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
    };
    (status, v)
}

/// Asserts the native error body: `error` reason phrase, `message`, `code`; returns it.
pub fn assert_error(r: Response, status: u16, code: &str) -> Value {
    assert_error_body(status_json(r), status, code)
}

/// [`assert_error`] on an answer already read.
pub fn assert_error_body((s, v): (u16, Value), status: u16, code: &str) -> Value {
    assert_eq!(s, status, "status; body: {v}");
    assert_eq!(v["code"], code, "code; body: {v}");
    assert!(
        v["error"].is_string() && v["message"].is_string(),
        "error body shape: {v}"
    );
    v
}

/// Asserts a 401 with `WWW-Authenticate` and exactly this body; `what` names the case.
pub fn assert_unauthorized(r: Response, message: &str, code: &str, what: &str) {
    assert!(
        r.headers().get(WWW_AUTHENTICATE).is_some(),
        "{what}: 401 without WWW-Authenticate; headers: {:?}",
        r.headers()
    );
    let (status, body) = status_json(r);
    assert_eq!(status, 401, "{what}: status; body: {body}");
    assert_eq!(
        body,
        json!({"error": "Unauthorized", "message": message, "code": code}),
        "{what}: body"
    );
}

/// `Retry-After` of a 429, in seconds.
pub fn retry_after(r: &Response) -> u64 {
    assert_eq!(r.status(), 429, "{r:?}");
    r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Holds an error body to `tests/snapshots/<suite>__<name>.snap`: its whole shape and wording,
/// which clients parse. Both backends share one snapshot, since they must answer alike; what
/// differs from run to run (ids, times, the order of a set) is redacted. A missing or different
/// snapshot fails the test; in CI (`CI=true`) nothing is written, so only a committed snapshot
/// is ever accepted (`cargo insta review` accepts a new one on a developer's machine).
macro_rules! assert_error_snapshot {
    ($name:expr, $body:expr) => {
        insta::with_settings!({ omit_expression => true }, {
            insta::assert_json_snapshot!($name, $body, {
                ".**.id" => "[id]",
                ".**.tokenId" => "[id]",
                ".**.ownerId" => "[id]",
                ".**.requestId" => "[request id]",
                ".**.createdAt" => "[time]",
                ".**.expiresAt" => "[time]",
                // Sets, in whatever order the server lists them.
                ".**.scopes" => insta::sorted_redaction(),
                ".**.missingScopes" => insta::sorted_redaction(),
            });
        })
    };
}
pub(crate) use assert_error_snapshot;
