//! `token.usage_exceeded`: a token refused for its credits is told to the tenant's webhooks,
//! once an hour (per node) however often it is refused, with the token and never its secret.

mod common;
use common::*;

use serde_json::json;

#[test]
fn a_token_out_of_credits_emits_usage_exceeded_once() {
    let receiver = Recorder::start();
    let s = Server::on(Backend::Sqlite).start();
    let (status, hook) = status_json(
        s.admin("POST", "/api/v1/webhooks")
            .json(&json!({ "url": format!("http://{}/e", receiver.addr),
                           "events": ["token.usage_exceeded"] }))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 201, "{hook}");
    let (_, token) = s.create_token_from(json!({
        "name": "metered", "scopes": ["tokens:read"], "credits": { "remaining": 1 }
    }));
    let code = |t: &str| s.verify(t, &[])["code"].as_str().unwrap().to_owned();
    assert_eq!(code(&token), "VALID");
    for _ in 0..5 {
        assert_eq!(code(&token), "USAGE_EXCEEDED");
    }
    let path = format!(
        "/api/v1/webhooks/{}/deliveries",
        hook["id"].as_str().unwrap()
    );
    let delivered = eventually("the usage_exceeded delivery", || {
        let d = s.all_items(&path);
        (d.len() == 1 && d[0]["state"] == "delivered").then_some(d)
    });
    assert_eq!(delivered[0]["eventType"], "token.usage_exceeded");
    // More refusals within the hour add nothing.
    assert_eq!(code(&token), "USAGE_EXCEEDED");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(s.all_items(&path).len(), 1);
    let seen = receiver.take();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(!format!("{seen:?}").contains(&token));
}
