//! The web page's Webhooks and Policy views, driven by a real Chromium: an admin adds an
//! endpoint and copies its secret (shown once), sees a delivery arrive and sends it again, and
//! sets the tenant's policy; every step is checked over HTTP against the API and the receiver.

mod browser_support;
mod common;
use browser_support::*;
use common::*;

use serde_json::json;

fn webhook_id_count(recorder: &Recorder, id: &str) -> usize {
    recorder
        .take()
        .iter()
        .filter(|s| s.header("webhook-id") == Some(id))
        .count()
}

#[test]
fn the_page_adds_a_webhook_shows_its_deliveries_and_redelivers() {
    if !browser_installed("the web page's webhook test") {
        return;
    }
    let receiver = Recorder::start();
    let server = Server::on(Backend::Sqlite).args(SCOPE_ARGS).start();
    let b = Browser::open(&server);
    b.goto("/");
    b.log_in("admin", ADMIN_PASSWORD, true);

    // 1. Add an endpoint for token.created only; the secret is shown once.
    b.click(&button("Webhooks"));
    b.visible(&heading("Webhooks"));
    b.visible("//*[normalize-space()='No endpoints yet.']");
    b.click(&button("Add endpoint"));
    b.visible("//dialog[@open]");
    assert_eq!(b.focused_name(), "URL", "focus moves to the URL");
    b.fill(&field("URL"), "ftp://example.com/");
    b.click(&dialog_button("Add"));
    let refused = b.dialog_alert();
    assert!(
        refused.contains("url"),
        "a non-http URL is refused: {refused}"
    );
    let url = format!("http://{}/hooks/keygate", receiver.addr);
    b.fill(&field("URL"), &url);
    b.fill(&field("Description"), "audit pipeline");
    b.click(&field("All events"));
    b.click(&field("token.created"));
    b.click(&dialog_button("Add"));
    b.gone("//dialog[@open]");
    let secret = b.wait("the signing secret", |b| {
        let Some(e) = b.displayed(&field("Signing secret"))? else {
            return Ok(None);
        };
        let v = b.run(e.prop("value"))?.unwrap_or_default();
        Ok((!v.is_empty()).then_some(v))
    });
    assert!(secret.starts_with("whsec_"), "{secret}");
    let hooks = server.all_items("/api/v1/webhooks");
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0]["url"], url.as_str());
    assert_eq!(hooks[0]["events"], json!(["token.created"]));
    assert!(
        hooks[0].get("secret").is_none_or(|s| s.is_null()),
        "the list never shows the secret: {}",
        hooks[0]
    );
    b.click(&button("Done"));
    b.gone(&field("Signing secret"));
    b.visible(&format!("//td//code[normalize-space()={}]", lit(&url)));

    // 2. A token created over the API is delivered; the page shows the delivery.
    server.create_token("from-api", &["metrics:read"]);
    let delivered = eventually("the token.created delivery", || {
        let d = server.all_items(&format!(
            "/api/v1/webhooks/{}/deliveries",
            hooks[0]["id"].as_str().unwrap()
        ));
        (d.len() == 1 && d[0]["state"] == "delivered").then(|| d[0].clone())
    });
    let event_id = delivered["eventId"].as_str().unwrap().to_owned();
    assert_eq!(webhook_id_count(&receiver, &event_id), 1);
    b.click(&button(&format!("Deliveries {url}")));
    b.visible("//h2[normalize-space()='Deliveries']");
    b.visible("//td//code[normalize-space()='token.created']");
    b.visible("//td[normalize-space()='Delivered']");
    b.visible("//td[contains(normalize-space(), 'HTTP 200')]");
    b.screenshot("webhook-deliveries");

    // 3. Redeliver: the same message arrives again.
    b.click("//button[starts-with(@aria-label, 'Redeliver token.created')]");
    eventually("the redelivery", || {
        (webhook_id_count(&receiver, &event_id) == 1).then_some(())
    });

    // 4. Disable, then remove.
    b.click(&button(&format!("Disable {url}")));
    b.visible(&button(&format!("Enable {url}")));
    assert_eq!(server.all_items("/api/v1/webhooks")[0]["enabled"], false);
    b.click(&button(&format!("Remove {url}")));
    b.click(&dialog_button("Remove"));
    b.visible("//*[normalize-space()='No endpoints yet.']");
    assert!(server.all_items("/api/v1/webhooks").is_empty());
    assert!(
        b.console_problems().is_empty(),
        "{:?}",
        b.console_problems()
    );
}

#[test]
fn the_page_sets_the_tenants_policy() {
    if !browser_installed("the web page's policy test") {
        return;
    }
    let server = Server::on(Backend::Sqlite).args(SCOPE_ARGS).start();
    // A token that will break the policy: it never expires.
    server.create_token("forever", &["metrics:read"]);
    let b = Browser::open(&server);
    b.goto("/");
    b.log_in("admin", ADMIN_PASSWORD, true);
    b.click(&button("Policy"));
    b.visible(&heading("Token policy"));
    b.fill(&field("Maximum lifetime (days)"), "soon");
    b.click(&button("Save policy"));
    b.visible("//*[@role='alert' and contains(normalize-space(), 'whole number of days')]");
    b.fill(&field("Maximum lifetime (days)"), "90");
    b.click(&field("Every token must have an expiry"));
    let reuse = b.visible(&field("When a rotated-out token is used again"));
    b.run(reuse.select_by_value("revoke")).unwrap();
    b.click(&button("Save policy"));
    b.visible("//*[@role='status' and contains(normalize-space(), 'break')]");
    b.screenshot("policy");
    let (status, policy) = status_json(
        server
            .admin("GET", "/api/v1/tenants/default/policy")
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{policy}");
    assert_eq!(policy["maxLifetimeSeconds"], 90 * 86400);
    assert_eq!(policy["requireExpiry"], true);
    assert_eq!(policy["onReuse"], "revoke");
    // The page's Generate form now needs an expiry of at most 90 days.
    b.click(&button("Access tokens"));
    b.visible(TOKENS_LOADED);
    b.open_generate_form("no-expiry", &["metrics:read"], "Never");
    b.click(&dialog_button("Generate"));
    let refused = b.dialog_alert();
    assert!(
        refused.contains("requireExpiry") || refused.contains("maxLifetimeSeconds"),
        "the refusal names the rule: {refused}"
    );
    assert!(
        b.console_problems().is_empty(),
        "{:?}",
        b.console_problems()
    );
}
