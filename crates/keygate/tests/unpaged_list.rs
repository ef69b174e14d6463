//! The bound on Instana's unpaged token list (README "Security"). A test binary of its own, not
//! re-run on PostgreSQL with the other suites: it creates ten thousand tokens, and what it
//! checks is the handler's bound, not the database.

mod common;

use common::*;
use serde_json::json;

#[test]
fn instanas_unpaged_list_is_refused_beyond_ten_thousand_tokens() {
    let s = Server::on(Backend::Sqlite)
        .args(&["--max-tokens-per-owner", "20000"])
        .start();
    let list = || s.admin("GET", "/api/settings/api-tokens").send().unwrap();
    // With the bootstrap token, 10 000 tokens: the most the list returns.
    let created = std::sync::atomic::AtomicUsize::new(1);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                while created.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 10_000 {
                    let r = s
                        .admin("POST", "/api/v1/tokens")
                        .json(&json!({ "name": "many", "scopes": ["tokens:read"] }))
                        .send()
                        .unwrap();
                    assert_eq!(r.status(), 201);
                }
            });
        }
    });
    let r = list();
    assert_eq!(r.status(), 200);
    let all: Vec<serde_json::Value> = r.json().unwrap();
    assert_eq!(all.len(), 10_000);
    s.create_token("one too many", &["tokens:read"]);
    let body = assert_error(list(), 422, "invalid_request");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("GET /api/v1/tokens"),
        "{body}"
    );
}
