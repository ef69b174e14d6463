mod common;
use common::*;

#[test]
fn server_starts_and_answers_with_the_bootstrap_token() {
    let s = Server::on(Backend::Sqlite).start();
    let (status, v) = status_json(s.admin("GET", "/api/v1/tokens/self").send().unwrap());
    assert_eq!(status, 200);
    assert_eq!(v["scopes"], serde_json::json!(["*"]));
}
