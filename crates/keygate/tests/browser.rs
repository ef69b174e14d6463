//! The web page at `/`, driven by a real Chromium through chromedriver, the way a person uses
//! it: controls are found by their labels and button texts (and their accessible names are
//! checked with chromedriver's computed label), and every change the page makes is checked over
//! plain HTTP against the token API. The page's locators and a person's actions on it are in
//! `browser_support`, shared with the usage charts' suite; Chromium itself (prerequisites,
//! waits, screenshots) in `common/browser.rs`.

mod browser_support;
mod common;
use browser_support::*;
use common::*;

use fantoccini::key::Key;
use fantoccini::Locator;
use serde_json::json;

/// The admin's and a member's whole path through the page, checked over HTTP at every step.
#[test]
fn the_page_manages_tokens_end_to_end() {
    if !browser_installed("the web page's browser tests") {
        return;
    }
    let server = Server::on(Backend::Sqlite).args(SCOPE_ARGS).start();
    let b = Browser::open(&server);

    // 1. Log in with the keyboard: Enter in the Password field.
    b.goto("/");
    b.visible(&field("Username"));
    b.assert_name(&field("Username"), "Username");
    b.assert_name(&field("Password"), "Password");
    b.assert_name(&button("Log in"), "Log in");
    b.screenshot("login");
    b.log_in("admin", ADMIN_PASSWORD, true);
    b.assert_name(&button("Log out"), "Log out");
    b.assert_name(&button("Generate new token"), "Generate new token");
    assert_eq!(
        b.attr(&button("Access tokens"), "aria-current").as_deref(),
        Some("page"),
        "the navigation marks the current view"
    );

    // 2. Generate a token; the form refuses a missing name first.
    b.click(&button("Generate new token"));
    b.visible("//dialog[@open]");
    b.click(&dialog_button("Generate"));
    assert!(
        !b.text("//dialog[@open]//*[@role='alert']").is_empty(),
        "a missing name is reported in an alert"
    );
    b.press_in_focus(Key::Escape);
    b.gone("//dialog[@open]");

    b.open_generate_form("ci-deploy", &["metrics:read", "metrics:write"], "7 days");
    b.assert_name(&field("Name"), "Name");
    b.assert_name(&field("Expires"), "Expires");
    b.assert_name(&field("metrics:read"), "metrics:read");
    b.assert_name(&field("metrics:write"), "metrics:write");
    let collapsed = b.script(
        "const groups = document.querySelectorAll('dialog[open] details'); \
         return groups.length >= 2 && [...groups].every((d) => !d.open);",
    );
    assert_eq!(
        collapsed, true,
        "the compatible surfaces' scopes start collapsed"
    );
    b.screenshot("generate-token");
    b.click(&dialog_button("Generate"));
    let token = b.read_new_token();
    b.assert_name(&button("Copy"), "Copy");
    b.click(&button("Copy"));
    b.visible("//*[@aria-live and normalize-space()='Copied']");
    b.screenshot("new-token");
    b.dismiss_new_token();
    b.visible(&row("ci-deploy"));

    // 3. The token works, with exactly those scopes and a 7-day expiry.
    let v = server.verify(&token, &["metrics:read", "metrics:write"]);
    assert_eq!(v["valid"], true, "{v}");
    let mut scopes: Vec<&str> = v["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    scopes.sort_unstable();
    assert_eq!(scopes, ["metrics:read", "metrics:write"]);
    let expires = time::OffsetDateTime::parse(
        v["expiresAt"].as_str().expect("an expiry"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let in_7_days = time::OffsetDateTime::now_utc() + time::Duration::days(7);
    assert!(
        (expires - in_7_days).abs() < time::Duration::minutes(5),
        "expires in 7 days: {expires}"
    );
    let token_id = v["tokenId"].as_str().unwrap().to_owned();
    assert_eq!(
        b.text(&format!(
            "{}//code[normalize-space()={}]",
            row("ci-deploy"),
            lit(&token_id)
        )),
        token_id,
        "the row shows the token's id"
    );
    let self_status = |t: &str| {
        server
            .with_token("GET", "/api/v1/tokens/self", t)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(self_status(&token), 200);

    // 4. Deactivate, activate, delete (Escape cancels first), rotate.
    b.assert_name(&button("Deactivate ci-deploy"), "Deactivate ci-deploy");
    b.click(&button("Deactivate ci-deploy"));
    b.visible(&button("Activate ci-deploy"));
    let v = server.verify(&token, &[]);
    assert_eq!(
        (v["valid"].as_bool(), v["code"].as_str()),
        (Some(false), Some("DISABLED")),
        "{v}"
    );
    assert_eq!(self_status(&token), 401);

    b.click(&button("Activate ci-deploy"));
    b.visible(&button("Deactivate ci-deploy"));
    assert_eq!(server.verify(&token, &[])["valid"], true);
    assert_eq!(self_status(&token), 200);

    b.click(&button("Delete ci-deploy"));
    b.visible(&dialog_button("Delete"));
    assert_eq!(
        b.focused_name(),
        "Cancel",
        "focus moves into the confirmation"
    );
    b.press_in_focus(Key::Escape);
    b.gone("//dialog[@open]");
    assert_eq!(server.verify(&token, &[])["valid"], true, "Escape cancels");
    b.click(&button("Delete ci-deploy"));
    b.click(&dialog_button("Delete"));
    b.gone(&row("ci-deploy"));
    assert_eq!(server.verify(&token, &[])["code"], "NOT_FOUND");

    let old = b.generate("nightly-backup", &["metrics:read"], "Never");
    b.dismiss_new_token();
    b.click(&button("Rotate nightly-backup"));
    b.click(&dialog_button("Rotate"));
    let rotated = b.read_new_token();
    assert_ne!(rotated, old);
    let v = server.verify(&rotated, &["metrics:read"]);
    assert_eq!(v["valid"], true, "the rotated token works: {v}");
    assert_eq!(v["name"], "nightly-backup");
    b.dismiss_new_token();

    // 5. A member sees only their own tokens, and neither "All users" nor the audit log.
    let (status, body) = status_json(
        server
            .admin("POST", "/api/v1/users")
            .json(&json!({ "username": "mia", "password": "mia-password-123", "role": "member" }))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 201, "creating mia: {body}");
    b.log_out();
    b.log_in("mia", "mia-password-123", false);
    b.assert_name(&button("My tokens"), "My tokens");
    b.click(&button("Generate new token"));
    b.visible(&field("metrics:read"));
    assert!(
        !b.is_shown(&field("tokens:admin")) && !b.is_shown(&field("audit:read")),
        "a member is not offered scopes they do not hold"
    );
    b.press_in_focus(Key::Escape);
    let mias = b.generate("mia-laptop", &["metrics:read"], "30 days");
    b.dismiss_new_token();
    b.visible(&row("mia-laptop"));
    b.visible(TOKENS_LOADED);
    assert_eq!(server.verify(&mias, &["metrics:read"])["valid"], true);
    assert!(
        !b.is_shown(&button("All users")),
        "no All users for a member"
    );
    assert!(
        !b.is_shown(&button("Audit log")),
        "no audit log for a member"
    );
    let list = b.text("//tbody");
    assert!(list.contains("mia-laptop"), "{list}");
    assert!(
        !list.contains("nightly-backup") && !list.contains("ci-deploy"),
        "a member sees none of the admin's tokens: {list}"
    );
    assert_eq!(
        b.text(&format!("{}/td[@data-label='Owner']", row("mia-laptop"))),
        "mia"
    );

    // ... and an admin sees everyone's, with owners by name, and the audit log.
    b.log_out();
    b.log_in("admin", ADMIN_PASSWORD, false);
    assert!(
        !b.is_shown(&row("mia-laptop")),
        "My tokens holds only the admin's"
    );
    b.click(&button("All users"));
    b.visible(&format!(
        "{}/td[@data-label='Owner' and normalize-space()='mia']",
        row("mia-laptop")
    ));
    b.visible(TOKENS_LOADED);
    assert_eq!(
        b.attr(&button("All users"), "aria-pressed").as_deref(),
        Some("true")
    );
    b.screenshot("access-tokens");

    b.click(&button("Audit log"));
    b.visible(&heading("Audit log"));
    assert_eq!(
        b.attr(&button("Audit log"), "aria-current").as_deref(),
        Some("page")
    );
    b.visible("//tbody/tr[td[contains(., 'token.disable')]]");
    b.visible(&format!(
        "//tbody/tr[td[contains(., 'token.delete')] and td[contains(., {})]]",
        lit(&token_id)
    ));
    b.screenshot("audit-log");

    // 6. A phone-sized window: no sideways scrolling of the page.
    b.click(&button("Access tokens"));
    b.visible(&heading("Access tokens"));
    b.resize(390, 844);
    b.visible(TOKENS_LOADED);
    let widths = b.script("return [document.documentElement.scrollWidth, window.innerWidth]");
    let (scroll, inner) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
    assert!(inner <= 400, "the window really is narrow: {inner}px");
    assert!(
        scroll <= inner,
        "no horizontal page scroll at {inner}px: {scroll}px wide"
    );
    b.screenshot("access-tokens-narrow");

    let problems = b.console_problems();
    assert!(problems.is_empty(), "console errors: {problems:#?}");
}

/// The row of the token with this id (rotation gives two tokens one name).
fn row_of(id: &str) -> String {
    format!("//tbody/tr[@data-id={}]", lit(id))
}

/// Rotation on the page: a grace period chosen in the dialog, "replaced by … · stops working
/// at …" on the old token and "replaces …" on the new one, and no Rotate or Deactivate where
/// the server would refuse them; and the "imported" badge on a key imported by its hash.
#[test]
fn the_page_rotates_with_a_grace_period_and_shows_which_token_replaced_which() {
    if !browser_installed("the web page's rotation test") {
        return;
    }
    let server = Server::on(Backend::Sqlite).args(SCOPE_ARGS).start();
    let (first_id, first) = server.create_token("rotating", &["metrics:read"]);
    let (off_id, _) = server.create_token("switched-off", &["metrics:read"]);
    let (status, v) = server.call(
        "POST",
        &format!("/api/v1/tokens/{off_id}/disable"),
        Some(server.admin_token.as_str()),
        None,
    );
    assert_eq!(status, 200, "{v}");
    let (_, short) = server.create_token_from(json!({
        "name": "short-lived", "scopes": ["metrics:read"], "expiresIn": 1
    }));
    let deadline = std::time::Instant::now() + WAIT;
    while code_of(&server, &short) != "EXPIRED" {
        assert!(
            std::time::Instant::now() < deadline,
            "the token never expired"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // A key made elsewhere, imported by its SHA-256: the list marks it, and only it.
    let legacy_hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b"legacy-key-0123456789abcdef"))
    };
    let (status, v) = server.call(
        "POST",
        "/api/v1/tokens/import",
        Some(server.admin_token.as_str()),
        Some(
            json!({ "tokens": [{ "hash": format!("sha256:{legacy_hash}"),
                                  "name": "legacy", "scopes": ["metrics:read"] }] }),
        ),
    );
    assert_eq!(status, 201, "{v}");
    let legacy_id = v["tokens"][0]["id"].as_str().unwrap().to_owned();

    let b = Browser::open(&server);
    b.goto("/");
    b.log_in("admin", ADMIN_PASSWORD, false);
    b.visible(&row("short-lived"));
    b.visible(TOKENS_LOADED);
    b.visible(&button("Activate switched-off"));
    let badge = |id: &str| format!("{}//*[contains(@class, 'imported')]", row_of(id));
    b.visible(&format!(
        "{}[normalize-space()='imported'][@title='imported from import']",
        badge(&legacy_id)
    ));
    assert!(
        !b.is_shown(&badge(&first_id)),
        "a minted token is not imported"
    );
    for absent in [
        "Rotate switched-off",
        "Rotate short-lived",
        "Deactivate short-lived",
        "Activate short-lived",
    ] {
        assert!(!b.is_shown(&button(absent)), "{absent} is offered");
    }

    // A day of grace: the old token keeps working, and the list says until when.
    b.click(&button("Rotate rotating"));
    b.assert_name(
        &field("Grace period for the old token"),
        "Grace period for the old token",
    );
    b.choose(&field("Grace period for the old token"), "1 day");
    b.click(&dialog_button("Rotate"));
    let second = b.read_new_token();
    assert!(
        b.page_text().contains("It keeps working for up to 1 day."),
        "{}",
        b.page_text()
    );
    b.dismiss_new_token();
    assert_eq!(code_of(&server, &first), "VALID", "within its grace period");
    let (_, old) = server.call(
        "GET",
        &format!("/api/v1/tokens/{first_id}"),
        Some(server.admin_token.as_str()),
        None,
    );
    let stops = time_of(&old["expiresAt"]);
    let off = (stops - (time::OffsetDateTime::now_utc() + time::Duration::days(1))).abs();
    assert!(
        off < time::Duration::minutes(5),
        "the old token stops at {stops}"
    );
    let second_id = old["rotatedTo"].as_str().unwrap().to_owned();
    let replaced = b.text(&format!(
        "{}//p[contains(@class, 'replaced-by')]",
        row_of(&first_id)
    ));
    assert!(
        replaced.starts_with(&format!("replaced by {second_id} · stops working at")),
        "{replaced}"
    );
    b.visible(&format!(
        "{}//p[contains(@class, 'replaced-by')]/time[@datetime={}]",
        row_of(&first_id),
        lit(old["expiresAt"].as_str().unwrap())
    ));
    assert_eq!(
        b.text(&format!(
            "{}//p[contains(@class, 'replaces')]",
            row_of(&second_id)
        )),
        format!("replaces {first_id}")
    );
    assert!(
        !b.is_shown(&format!(
            "{}//button[@data-action='rotate']",
            row_of(&first_id)
        )),
        "a rotated-out token is not offered Rotate"
    );

    // No grace (the dialog's first choice): the replaced token stops at once.
    b.click(&format!(
        "{}//button[@data-action='rotate']",
        row_of(&second_id)
    ));
    b.click(&dialog_button("Rotate"));
    let third = b.read_new_token();
    b.dismiss_new_token();
    assert_eq!(code_of(&server, &second), "EXPIRED");
    assert_eq!(code_of(&server, &third), "VALID");
    b.visible(&format!(
        "{}//p[contains(@class, 'replaced-by')]",
        row_of(&second_id)
    ));
    b.screenshot("rotation");

    let problems = b.console_problems();
    assert!(problems.is_empty(), "console errors: {problems:#?}");
}

/// Rate limits, credits and an external id set in "Generate new token" reach the token, and
/// the list shows them with what is left of the credits.
#[test]
fn the_page_sets_rate_limits_and_credits() {
    if !browser_installed("the web page's browser tests") {
        return;
    }
    let server = Server::on(Backend::Sqlite).args(SCOPE_ARGS).start();
    let b = Browser::open(&server);
    b.goto("/");
    b.log_in("admin", ADMIN_PASSWORD, false);

    b.open_generate_form("metered-api", &["metrics:read"], "Never");
    b.click(&button("Add rate limit"));
    assert_eq!(
        b.focused_name(),
        "Limit name",
        "focus moves to the new limit"
    );
    for label in ["Limit name", "Uses", "Per", "Unit", "Auto-apply"] {
        b.assert_name(&in_limit(1, label), label);
    }
    b.assert_name(&button("Remove rate limit 1"), "Remove rate limit 1");
    assert!(
        b.checked(&in_limit(1, "Auto-apply")),
        "auto-applied unless unticked"
    );

    // The page asks for what is missing; the server refuses what is out of range, in its words.
    b.click(&dialog_button("Generate"));
    assert_eq!(b.dialog_alert(), "Rate limit 1 needs a name.");
    assert_eq!(b.focused_name(), "Limit name");
    b.fill(&in_limit(1, "Limit name"), "requests");
    b.fill(&in_limit(1, "Uses"), "100");
    b.fill(&in_limit(1, "Per"), "31");
    b.choose(&in_limit(1, "Unit"), "days");
    b.click(&dialog_button("Generate"));
    let refused = b.wait("the server's refusal", |b| {
        let text = b.dialog_alert();
        Ok(text.contains("ratelimits[0].durationMs").then_some(text))
    });
    assert!(refused.contains("30 days"), "{refused}");
    b.fill(&in_limit(1, "Per"), "1");
    b.choose(&in_limit(1, "Unit"), "minutes");

    // A second limit, only for verifications that name it; a third, removed again.
    b.click(&button("Add rate limit"));
    b.fill(&in_limit(2, "Limit name"), "search");
    b.fill(&in_limit(2, "Uses"), "10");
    b.choose(&in_limit(2, "Unit"), "seconds");
    b.click(&in_limit(2, "Auto-apply"));
    b.click(&button("Add rate limit"));
    b.click(&button("Remove rate limit 3"));
    b.gone(&in_limit(3, "Limit name"));

    assert!(
        !b.is_shown(&field("Refill amount")),
        "no refill amount without a refill"
    );
    b.fill(&field("Remaining"), "1000");
    b.choose(&field("Refill"), "Monthly");
    b.fill(&field("Refill amount"), "1000");
    b.fill(&field("Refill day"), "15");
    b.fill(&field("External ID"), "cust_42");
    // Networks: one the server cannot read is named in its refusal.
    b.fill(&field("Allowed networks"), "10.0.0.300/8");
    b.click(&dialog_button("Generate"));
    let refused = b.wait("the server's refusal of the network", |b| {
        let text = b.dialog_alert();
        Ok(text.contains("allowedCidrs[0]").then_some(text))
    });
    assert!(refused.contains("10.0.0.300/8"), "{refused}");
    // The test's requests come from 127.0.0.1.
    b.fill(&field("Allowed networks"), "127.0.0.1,\n2001:db8::/32");
    b.screenshot("generate-token-usage");
    b.click(&dialog_button("Generate"));
    let token = b.read_new_token();
    b.dismiss_new_token();

    // The token holds exactly what the form said. (A verification of cost 0 names its id
    // without spending a credit.)
    let verify = |cost: u64| {
        let (status, v) = status_json(
            server
                .anon("POST", "/api/v1/verify")
                .json(&json!({"token": token, "credits": {"cost": cost}}))
                .send()
                .unwrap(),
        );
        assert_eq!((status, &v["valid"]), (200, &json!(true)), "{v}");
        v
    };
    let v = verify(0);
    assert_eq!(v["externalId"], "cust_42", "{v}");
    let id = v["tokenId"].as_str().unwrap().to_owned();
    let (status, stored) = status_json(
        server
            .admin("GET", &format!("/api/v1/tokens/{id}"))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{stored}");
    assert_eq!(
        stored["ratelimits"],
        json!([
            {"name": "requests", "limit": 100, "durationMs": 60_000, "autoApply": true},
            {"name": "search", "limit": 10, "durationMs": 1_000, "autoApply": false},
        ]),
        "{stored}"
    );
    assert_eq!(
        stored["credits"],
        json!({"remaining": 1000, "refill": {"interval": "monthly", "amount": 1000, "refillDay": 15}}),
        "{stored}"
    );
    assert_eq!(stored["externalId"], "cust_42");
    assert_eq!(
        stored["allowedCidrs"],
        json!(["127.0.0.1/32", "2001:db8::/32"])
    );

    let usage = |name: &str| b.text(&format!("{}/td[@data-label='Usage']", row(name)));
    let shown = usage("metered-api");
    for line in [
        "requests: 100 per minute",
        "search: 10 per second, when named",
        "Credits: 1000 / refills monthly to 1000 (day 15)",
        "External ID: cust_42",
        "Allowed from: 127.0.0.1/32, 2001:db8::/32",
    ] {
        assert!(shown.lines().any(|l| l == line), "{line:?} in:\n{shown}");
    }

    // What is left, after a verification spent some.
    assert_eq!(verify(258)["credits"]["remaining"], 742);
    b.click(&button("Access tokens"));
    b.visible(TOKENS_LOADED);
    b.wait("the list to show 742 credits", |b| {
        let text = b.run(async {
            b.client
                .find(Locator::XPath(&format!(
                    "{}/td[@data-label='Usage']",
                    row("metered-api")
                )))
                .await?
                .text()
                .await
        })?;
        Ok(text
            .contains("Credits: 742 / refills monthly to 1000 (day 15)")
            .then_some(()))
    });

    // A token without any: unlimited, and no limits.
    b.generate("plain", &["metrics:read"], "Never");
    b.dismiss_new_token();
    assert_eq!(usage("plain"), "Credits: unlimited");
    b.screenshot("access-tokens-usage");

    let problems = b.console_problems();
    assert!(problems.is_empty(), "console errors: {problems:#?}");
}

/// A wrong password shows the server's message in an alert; a reload keeps the session; a
/// session that ends sends the page back to the login form with a message.
#[test]
fn the_page_reports_failed_logins_and_ended_sessions() {
    if !browser_installed("the web page's browser tests") {
        return;
    }
    let server = Server::on(Backend::Sqlite).args(SCOPE_ARGS).start();
    let (status, expected) = status_json(
        server
            .anon("POST", "/api/v1/session")
            .json(&json!({ "username": "admin", "password": "not-the-password" }))
            .send()
            .unwrap(),
    );
    assert_eq!(
        (status, expected["code"].as_str()),
        (401, Some("invalid_credentials"))
    );
    let message = expected["message"].as_str().unwrap();

    let b = Browser::open(&server);
    b.goto("/");
    b.fill(&field("Username"), "admin");
    b.fill(&field("Password"), "not-the-password");
    b.click(&button("Log in"));
    let alert = b.wait("the login alert", |b| {
        let Some(e) = b.displayed("//form//*[@role='alert']")? else {
            return Ok(None);
        };
        let text = b.run(e.text())?;
        Ok((!text.is_empty()).then_some(text))
    });
    assert_eq!(alert, message);

    b.log_in("admin", ADMIN_PASSWORD, false);
    b.run(b.client.refresh()).unwrap();
    b.visible(&heading("Access tokens"));
    b.visible(TOKENS_LOADED);

    // The cookie disappears (as when the session expires): the next call gets a 401.
    b.run(b.client.delete_all_cookies()).unwrap();
    b.click(&button("Audit log"));
    let alert = b.text("//form//*[@role='alert']");
    assert_eq!(alert, "Your session has ended; log in again.");
    b.visible(&field("Username"));
}
