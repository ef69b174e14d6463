//! The command-line client, `keygate token …`, run as a user would: the real binary against a
//! real server, reading KEYGATE_URL and KEYGATE_TOKEN from the environment.

mod common;

use std::process::{Command, Output};

use common::*;
use serde_json::{json, Value};
use time::OffsetDateTime;

/// The JSON printed by a run that must succeed.
fn ok_json(out: &Output) -> Value {
    let stdout = cli_stdout(out);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

/// A failed run: non-zero exit, nothing on stdout, exactly one line on stderr starting with
/// `error:`. Returns that line.
fn failed(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "the CLI should have failed; stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.is_empty(),
        "nothing on stdout on failure, got:\n{stdout}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got:\n{stderr}");
    assert!(
        lines[0].starts_with("error:"),
        "the line starts with `error:`: {stderr}"
    );
    lines[0].to_owned()
}

// ---- create ----

both_backends!(create_json_prints_the_token_and_id_and_the_token_verifies);
fn create_json_prints_the_token_and_id_and_the_token_verifies(backend: Backend) {
    let s = Server::on(backend).start();
    let v = ok_json(&s.cli(
        &s.admin_token,
        &[
            "token",
            "create",
            "--name",
            "ci-deploy",
            "--scope",
            "tokens:read",
            "--scope",
            "audit:read",
            "--json",
        ],
    ));
    let token = v["token"].as_str().expect("token in the JSON");
    let id = v["id"].as_str().expect("id in the JSON");
    assert!(
        token.starts_with(&format!("{id}_")),
        "the id prefixes the token: {v}"
    );
    assert_eq!(v["name"], "ci-deploy");
    let verified = s.verify(token, &["tokens:read", "audit:read"]);
    assert_eq!(verified["code"], "VALID", "{verified}");
    assert_eq!(verified["tokenId"], id);
    let mut scopes: Vec<String> = serde_json::from_value(verified["scopes"].clone()).unwrap();
    scopes.sort();
    assert_eq!(scopes, ["audit:read", "tokens:read"]);
}

both_backends!(create_without_json_prints_a_table_and_the_token_once);
fn create_without_json_prints_a_table_and_the_token_once(backend: Backend) {
    let s = Server::on(backend).start();
    let out = cli_stdout(&s.cli(
        &s.admin_token,
        &[
            "token",
            "create",
            "--name",
            "laptop",
            "--scope",
            "tokens:read",
        ],
    ));
    let marker = "Token (shown once, store it now): ";
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with(marker)).collect();
    assert_eq!(lines.len(), 1, "one token line:\n{out}");
    let token = lines[0].strip_prefix(marker).unwrap().trim();
    assert_eq!(code_of(&s, token), "VALID");
    // The table names the token and shows its id, and the secret appears only on its line.
    let id = s.verify(token, &[])["tokenId"].as_str().unwrap().to_owned();
    assert!(out.contains("laptop"), "name in the table:\n{out}");
    assert!(out.contains(&id), "id in the table:\n{out}");
    assert_eq!(out.matches(token).count(), 1, "the secret once:\n{out}");
}

both_backends!(create_with_expires_in_30d_sets_expiry_about_30_days_away);
fn create_with_expires_in_30d_sets_expiry_about_30_days_away(backend: Backend) {
    let s = Server::on(backend).start();
    let v = ok_json(&s.cli(
        &s.admin_token,
        &[
            "token",
            "create",
            "--name",
            "monthly",
            "--scope",
            "tokens:read",
            "--expires-in",
            "30d",
            "--json",
        ],
    ));
    let expires = time_of(&v["expiresAt"]);
    let expected = OffsetDateTime::now_utc() + time::Duration::days(30);
    let off = (expires - expected).abs();
    assert!(
        off < time::Duration::minutes(5),
        "expiresAt {expires} is not about 30 days away (expected ~{expected})"
    );
    assert_eq!(code_of(&s, v["token"].as_str().unwrap()), "VALID");
}

// ---- list / show ----

both_backends!(list_shows_every_token_of_the_tenant_to_an_admin);
fn list_shows_every_token_of_the_tenant_to_an_admin(backend: Backend) {
    let s = Server::on(backend).start();
    let (id_a, _) = s.create_token("alpha-token", &["tokens:read"]);
    // A service token owned by the tenant, not by the admin user.
    let r = s
        .admin("POST", "/api/v1/tokens")
        .json(&json!({ "name": "service-beta", "scopes": ["tokens:read"], "ownerId": "default" }))
        .send()
        .unwrap();
    let (status, svc) = status_json(r);
    assert_eq!(status, 201, "{svc}");
    let id_b = svc["id"].as_str().unwrap().to_owned();

    let table = cli_stdout(&s.cli(&s.admin_token, &["token", "list"]));
    for needle in ["alpha-token", "service-beta", "bootstrap", &id_a, &id_b] {
        assert!(table.contains(needle), "{needle} in the table:\n{table}");
    }

    let arr = ok_json(&s.cli(&s.admin_token, &["token", "list", "--json"]));
    let items = arr.as_array().expect("--json prints an array");
    let ids: Vec<&str> = items.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert!(
        ids.contains(&id_a.as_str()) && ids.contains(&id_b.as_str()),
        "{arr}"
    );
    assert_eq!(items.len(), 3, "bootstrap + 2: {arr}");
    assert!(
        items.iter().all(|t| t.get("token").is_none()),
        "a list never shows a secret: {arr}"
    );
}

both_backends!(list_without_tokens_admin_shows_only_own_tokens);
fn list_without_tokens_admin_shows_only_own_tokens(backend: Backend) {
    let s = Server::on(backend).start();
    s.create_token("admins-own", &["tokens:read"]);
    // A service token (owner: the tenant) that may read its owner's tokens only.
    let r = s
        .admin("POST", "/api/v1/tokens")
        .json(&json!({ "name": "svc", "scopes": ["tokens:read", "tokens:write"], "ownerId": "default" }))
        .send()
        .unwrap();
    let (status, svc) = status_json(r);
    assert_eq!(status, 201, "{svc}");
    let svc_token = svc["token"].as_str().unwrap();
    cli_stdout(&s.cli(
        svc_token,
        &[
            "token",
            "create",
            "--name",
            "svc-child",
            "--scope",
            "tokens:read",
        ],
    ));
    let arr = ok_json(&s.cli(svc_token, &["token", "list", "--json"]));
    let mut names: Vec<&str> = arr
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["svc", "svc-child"], "{arr}");
}

both_backends!(list_name_filter_narrows_the_list);
fn list_name_filter_narrows_the_list(backend: Backend) {
    let s = Server::on(backend).start();
    s.create_token("deploy-prod", &["tokens:read"]);
    s.create_token("deploy-staging", &["tokens:read"]);
    s.create_token("laptop", &["tokens:read"]);
    let arr = ok_json(&s.cli(
        &s.admin_token,
        &["token", "list", "--name", "deploy", "--json"],
    ));
    let mut names: Vec<&str> = arr
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["deploy-prod", "deploy-staging"]);
}

both_backends!(show_prints_one_token_as_table_or_json);
fn show_prints_one_token_as_table_or_json(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, _) = s.create_token("shown", &["tokens:read"]);
    let table = cli_stdout(&s.cli(&s.admin_token, &["token", "show", &id]));
    assert!(table.contains(&id) && table.contains("shown"), "{table}");

    let v = ok_json(&s.cli(&s.admin_token, &["token", "show", &id, "--json"]));
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["name"], "shown");
    assert_eq!(v["scopes"], json!(["tokens:read"]));
    assert_eq!(v["enabled"], true);
    assert!(
        v.get("token").is_none(),
        "show never prints the secret: {v}"
    );
}

// ---- disable / enable / rotate / revoke ----

both_backends!(disable_then_enable_switches_verification);
fn disable_then_enable_switches_verification(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, token) = s.create_token("switch", &["tokens:read"]);
    let v = ok_json(&s.cli(&s.admin_token, &["token", "disable", &id, "--json"]));
    assert_eq!(v["enabled"], false, "{v}");
    assert_eq!(code_of(&s, &token), "DISABLED");

    let table = cli_stdout(&s.cli(&s.admin_token, &["token", "enable", &id]));
    assert!(table.contains(&id), "{table}");
    assert_eq!(code_of(&s, &token), "VALID");

    let table = cli_stdout(&s.cli(&s.admin_token, &["token", "disable", &id]));
    assert!(table.contains(&id), "{table}");
    assert_eq!(code_of(&s, &token), "DISABLED");
    let v = ok_json(&s.cli(&s.admin_token, &["token", "enable", &id, "--json"]));
    assert_eq!(v["enabled"], true, "{v}");
    assert_eq!(code_of(&s, &token), "VALID");
}

both_backends!(rotate_with_grace_prints_a_new_token_and_keeps_the_old_one_valid);
fn rotate_with_grace_prints_a_new_token_and_keeps_the_old_one_valid(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, old) = s.create_token("rotating", &["tokens:read", "audit:read"]);
    let v = ok_json(&s.cli(
        &s.admin_token,
        &["token", "rotate", &id, "--grace", "1h", "--json"],
    ));
    let new = v["token"].as_str().expect("the new token in the JSON");
    assert_ne!(new, old);
    assert_ne!(v["id"], id.as_str(), "a new id: {v}");
    assert_eq!(v["name"], "rotating");
    let verified = s.verify(new, &["tokens:read", "audit:read"]);
    assert_eq!(verified["code"], "VALID", "{verified}");
    assert_eq!(
        code_of(&s, &old),
        "VALID",
        "the old token works during the grace"
    );
    // The old token now expires about an hour from now.
    let old_meta = s.verify(&old, &[]);
    let expires = time_of(&old_meta["expiresAt"]);
    let off = (expires - (OffsetDateTime::now_utc() + time::Duration::hours(1))).abs();
    assert!(off < time::Duration::minutes(5), "old expires at {expires}");
}

both_backends!(rotate_table_output_prints_the_new_token_once);
fn rotate_table_output_prints_the_new_token_once(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, old) = s.create_token("rotating", &["tokens:read"]);
    let out = cli_stdout(&s.cli(&s.admin_token, &["token", "rotate", &id, "--grace", "1h"]));
    let new = out
        .lines()
        .find_map(|l| l.strip_prefix("Token (shown once, store it now): "))
        .unwrap_or_else(|| panic!("a token line:\n{out}"))
        .trim();
    assert_eq!(code_of(&s, new), "VALID");
    assert_eq!(code_of(&s, &old), "VALID");
}

both_backends!(rotate_without_grace_expires_the_old_token_at_once);
fn rotate_without_grace_expires_the_old_token_at_once(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, old) = s.create_token("rotating", &["tokens:read"]);
    let v = ok_json(&s.cli(&s.admin_token, &["token", "rotate", &id, "--json"]));
    let new = v["token"].as_str().unwrap();
    assert_eq!(code_of(&s, new), "VALID");
    assert_eq!(code_of(&s, &old), "EXPIRED");
}

both_backends!(rotate_says_when_the_old_token_stops_and_list_and_show_tell_which_replaced_which);
fn rotate_says_when_the_old_token_stops_and_list_and_show_tell_which_replaced_which(
    backend: Backend,
) {
    let s = Server::on(backend).start();
    let (first, _) = s.create_token("rotating", &["tokens:read"]);
    let out = cli_stdout(&s.cli(
        &s.admin_token,
        &["token", "rotate", &first, "--grace", "1h"],
    ));
    let (_, old) = s.call(
        "GET",
        &format!("/api/v1/tokens/{first}"),
        Some(s.admin_token.as_str()),
        None,
    );
    let stops = old["expiresAt"].as_str().unwrap()[..19].replace('T', " ");
    assert!(
        out.contains(&format!(
            "The previous token {first} stops working at {stops} UTC."
        )),
        "{out}"
    );
    let second = old["rotatedTo"].as_str().unwrap().to_owned();

    let out = cli_stdout(&s.cli(&s.admin_token, &["token", "rotate", &second]));
    assert!(
        out.contains(&format!("The previous token {second} stops working now.")),
        "{out}"
    );
    let third = ok_json(&s.cli(&s.admin_token, &["token", "show", &second, "--json"]))["rotatedTo"]
        .as_str()
        .unwrap()
        .to_owned();

    // The middle token replaced the first and was replaced by the third.
    let shown = cli_stdout(&s.cli(&s.admin_token, &["token", "show", &second]));
    let line = |field: &str| {
        shown
            .lines()
            .find(|l| l.contains(field))
            .unwrap_or_else(|| panic!("no {field} in\n{shown}"))
            .to_owned()
    };
    assert!(line("REPLACES ").contains(&first), "{shown}");
    assert!(line("REPLACED BY").contains(&third), "{shown}");
    let v = ok_json(&s.cli(&s.admin_token, &["token", "show", &third, "--json"]));
    assert_eq!(v["rotatedFrom"], second.as_str());
    assert_eq!(v["rotatedTo"], Value::Null);

    let list = cli_stdout(&s.cli(&s.admin_token, &["token", "list"]));
    assert!(list.contains("ORIGIN"), "{list}");
    for words in [
        format!("replaces {first}"),
        format!("replaced by {second}"),
        format!("replaces {second}"),
        format!("replaced by {third}"),
    ] {
        assert!(list.contains(&words), "{words:?} in\n{list}");
    }
}

both_backends!(revoke_makes_the_token_unknown);
fn revoke_makes_the_token_unknown(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, token) = s.create_token("doomed", &["tokens:read"]);
    let out = cli_stdout(&s.cli(&s.admin_token, &["token", "revoke", &id]));
    assert!(out.contains(&id), "the output names the revoked id:\n{out}");
    assert_eq!(code_of(&s, &token), "NOT_FOUND");
    let line = failed(&s.cli(&s.admin_token, &["token", "show", &id]));
    assert!(line.contains("404"), "{line}");
}

both_backends!(revoke_json_names_the_revoked_id);
fn revoke_json_names_the_revoked_id(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, token) = s.create_token("doomed", &["tokens:read"]);
    let v = ok_json(&s.cli(&s.admin_token, &["token", "revoke", &id, "--json"]));
    assert_eq!(v["revoked"], id.as_str(), "{v}");
    assert_eq!(code_of(&s, &token), "NOT_FOUND");
}

// ---- failures ----

both_backends!(show_unknown_id_fails_with_one_error_line);
fn show_unknown_id_fails_with_one_error_line(backend: Backend) {
    let s = Server::on(backend).start();
    let out = s.cli(&s.admin_token, &["token", "show", "kg_doesnotexist0000"]);
    let line = failed(&out);
    assert!(
        line.contains("404") || line.to_lowercase().contains("not found"),
        "{line}"
    );
    assert_eq!(out.status.code(), Some(1));
}

both_backends!(token_without_the_scope_gets_403_naming_the_missing_scope);
fn token_without_the_scope_gets_403_naming_the_missing_scope(backend: Backend) {
    let s = Server::on(backend).start();
    let (_, reader) = s.create_token("reader", &["tokens:read"]);
    let out = s.cli(
        &reader,
        &["token", "create", "--name", "x", "--scope", "tokens:read"],
    );
    let line = failed(&out);
    assert!(line.contains("403"), "{line}");
    assert!(
        line.contains("tokens:write"),
        "names the missing scope: {line}"
    );
}

both_backends!(bad_keygate_token_gets_401);
fn bad_keygate_token_gets_401(backend: Backend) {
    let s = Server::on(backend).start();
    let line = failed(&s.cli(&fresh_token(), &["token", "list"]));
    assert!(line.contains("401"), "{line}");
    let line = failed(&s.cli("not-a-token", &["token", "list"]));
    assert!(line.contains("401"), "{line}");
}

both_backends!(unset_keygate_token_exits_2_and_says_so);
fn unset_keygate_token_exits_2_and_says_so(backend: Backend) {
    let s = Server::on(backend).start();
    let out = keygate_command()
        .args(["token", "list"])
        .env("KEYGATE_URL", &s.url)
        .output()
        .unwrap();
    let line = failed(&out);
    assert_eq!(out.status.code(), Some(2), "{line}");
    assert!(line.contains("KEYGATE_TOKEN"), "{line}");
}

#[test]
fn unreachable_server_says_it_cannot_reach_keygate() {
    // A port that was free a moment ago and nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = keygate_command()
        .args(["token", "list"])
        .env("KEYGATE_URL", format!("http://127.0.0.1:{port}"))
        .env("KEYGATE_TOKEN", fresh_token())
        .output()
        .unwrap();
    let line = failed(&out);
    assert!(line.contains("cannot reach keygate"), "{line}");
    assert!(line.contains(&port.to_string()), "names the URL: {line}");
}

#[test]
fn keygate_url_without_scheme_is_a_usage_error() {
    let out = keygate_command()
        .args(["token", "list"])
        .env("KEYGATE_URL", "127.0.0.1:8080")
        .env("KEYGATE_TOKEN", fresh_token())
        .output()
        .unwrap();
    let line = failed(&out);
    assert_eq!(out.status.code(), Some(2), "{line}");
    assert!(line.contains("KEYGATE_URL"), "{line}");
}

both_backends!(keygate_url_with_trailing_slash_works);
fn keygate_url_with_trailing_slash_works(backend: Backend) {
    let s = Server::on(backend).start();
    let out = keygate_command()
        .args(["token", "list", "--json"])
        .env("KEYGATE_URL", format!("{}/", s.url))
        .env("KEYGATE_TOKEN", &s.admin_token)
        .output()
        .unwrap();
    assert!(ok_json(&out).is_array());
}

both_backends!(unknown_scope_on_create_fails_with_the_422_message);
fn unknown_scope_on_create_fails_with_the_422_message(backend: Backend) {
    let s = Server::on(backend).start();
    let line = failed(&s.cli(
        &s.admin_token,
        &["token", "create", "--name", "x", "--scope", "nosuch:scope"],
    ));
    assert!(line.contains("422"), "{line}");
    assert!(
        line.contains("nosuch:scope"),
        "names the unknown scope: {line}"
    );
}

both_backends!(expires_in_banana_is_rejected_by_the_argument_parser);
fn expires_in_banana_is_rejected_by_the_argument_parser(backend: Backend) {
    let s = Server::on(backend).start();
    let out = s.cli(
        &s.admin_token,
        &[
            "token",
            "create",
            "--name",
            "x",
            "--scope",
            "tokens:read",
            "--expires-in",
            "banana",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(stderr.starts_with("error:"), "{stderr}");
    assert!(stderr.contains("banana"), "{stderr}");
    // Nothing was created.
    let arr = ok_json(&s.cli(&s.admin_token, &["token", "list", "--json"]));
    assert_eq!(
        arr.as_array().unwrap().len(),
        1,
        "only the bootstrap token: {arr}"
    );
}

both_backends!(expires_in_zero_is_refused_not_rounded_up);
fn expires_in_zero_is_refused_not_rounded_up(backend: Backend) {
    let s = Server::on(backend).start();
    for lifetime in ["0s", "500ms"] {
        let line = failed(&s.cli(
            &s.admin_token,
            &[
                "token",
                "create",
                "--name",
                "x",
                "--scope",
                "tokens:read",
                "--expires-in",
                lifetime,
            ],
        ));
        assert!(line.contains("expiresIn") && line.contains("422"), "{line}");
    }
    let arr = ok_json(&s.cli(&s.admin_token, &["token", "list", "--json"]));
    assert_eq!(arr.as_array().unwrap().len(), 1, "nothing created: {arr}");
}

// ---- usage control: rate limits, credits, external id ----

both_backends!(create_with_ratelimits_and_credits_sets_them_on_the_token);
/// `--ratelimit requests=100/60s --credits 1000 --refill monthly:1000`: an auto-applied limit
/// and credits that refill monthly, as the server keeps them.
fn create_with_ratelimits_and_credits_sets_them_on_the_token(backend: Backend) {
    let s = Server::on(backend).start();
    let v = ok_json(&s.cli(
        &s.admin_token,
        &[
            "token",
            "create",
            "--name",
            "metered",
            "--scope",
            "tokens:read",
            "--ratelimit",
            "requests=100/60s",
            "--credits",
            "1000",
            "--refill",
            "monthly:1000",
            "--json",
        ],
    ));
    assert_eq!(
        v["ratelimits"],
        json!([{"name": "requests", "limit": 100, "durationMs": 60_000, "autoApply": true}]),
        "a --ratelimit is auto-applied: {v}"
    );
    assert_eq!(
        v["credits"],
        json!({"remaining": 1000, "refill": {"interval": "monthly", "amount": 1000}}),
        "{v}"
    );
    assert_eq!(v["externalId"], Value::Null, "{v}");

    // What the server keeps, read back over HTTP.
    let id = v["id"].as_str().unwrap();
    let (status, stored) = status_json(
        s.admin("GET", &format!("/api/v1/tokens/{id}"))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["ratelimits"], v["ratelimits"]);
    assert_eq!(stored["credits"], v["credits"]);
}

both_backends!(named_limits_refill_days_and_external_ids_reach_the_server_and_show);
fn named_limits_refill_days_and_external_ids_reach_the_server_and_show(backend: Backend) {
    let s = Server::on(backend).start();
    let v = ok_json(&s.cli(
        &s.admin_token,
        &[
            "token",
            "create",
            "--name",
            "customer-42",
            "--scope",
            "tokens:read",
            "--external-id",
            "cust_42",
            "--ratelimit",
            "requests=100/1m",
            "--ratelimit",
            "search=10/1s:named",
            "--ratelimit",
            "daily=5000/1d",
            "--credits",
            "250",
            "--refill",
            "monthly:1000@15",
            "--json",
        ],
    ));
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(v["externalId"], "cust_42", "{v}");
    assert_eq!(
        v["ratelimits"],
        json!([
            {"name": "requests", "limit": 100, "durationMs": 60_000, "autoApply": true},
            {"name": "search", "limit": 10, "durationMs": 1_000, "autoApply": false},
            {"name": "daily", "limit": 5000, "durationMs": 86_400_000, "autoApply": true},
        ]),
        "{v}"
    );
    assert_eq!(
        v["credits"],
        json!({"remaining": 250, "refill": {"interval": "monthly", "amount": 1000, "refillDay": 15}}),
        "{v}"
    );

    // `show` prints each limit as --ratelimit takes it, and the credits with their refill.
    let table = cli_stdout(&s.cli(&s.admin_token, &["token", "show", &id]));
    for needle in [
        "cust_42",
        "requests=100/1m",
        "search=10/1s:named",
        "daily=5000/1day",
        "250 (refills monthly to 1000 on day 15)",
    ] {
        assert!(table.contains(needle), "{needle} in:\n{table}");
    }
    // ... and what it prints goes back in.
    let again = ok_json(&s.cli(
        &s.admin_token,
        &[
            "token",
            "create",
            "--name",
            "copy",
            "--scope",
            "tokens:read",
            "--ratelimit",
            "daily=5000/1day",
            "--json",
        ],
    ));
    assert_eq!(again["ratelimits"][0]["durationMs"], 86_400_000, "{again}");

    // A token without any shows none, and unlimited credits.
    let (plain, _) = s.create_token("plain", &["tokens:read"]);
    let table = cli_stdout(&s.cli(&s.admin_token, &["token", "show", &plain]));
    let credits_line = table.lines().find(|l| l.contains("CREDITS")).unwrap();
    assert!(credits_line.contains("unlimited"), "{table}");
}

both_backends!(list_shows_external_ids_and_credits_and_filters_by_external_id);
fn list_shows_external_ids_and_credits_and_filters_by_external_id(backend: Backend) {
    let s = Server::on(backend).start();
    for (name, external_id, credits) in [
        (
            "acme-ci",
            "acme",
            json!({"remaining": 742, "refill": {"interval": "daily", "amount": 1000}}),
        ),
        ("acme-laptop", "acme", Value::Null),
        ("globex-ci", "globex", json!({"remaining": 5})),
    ] {
        let (status, v) = status_json(
            s.admin("POST", "/api/v1/tokens")
                .json(&json!({"name": name, "scopes": ["tokens:read"],
                              "externalId": external_id, "credits": credits}))
                .send()
                .unwrap(),
        );
        assert_eq!(status, 201, "{v}");
    }
    let arr = ok_json(&s.cli(
        &s.admin_token,
        &["token", "list", "--external-id", "acme", "--json"],
    ));
    let mut names: Vec<&str> = arr
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["acme-ci", "acme-laptop"], "{arr}");

    let table = cli_stdout(&s.cli(&s.admin_token, &["token", "list"]));
    let line_of = |name: &str| {
        table
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} in:\n{table}"))
            .to_owned()
    };
    assert!(
        table.contains("EXTERNAL ID") && table.contains("CREDITS"),
        "{table}"
    );
    let acme_ci = line_of("acme-ci");
    assert!(
        acme_ci.contains("acme") && acme_ci.contains("742"),
        "{acme_ci}\n{table}"
    );
    assert!(line_of("acme-laptop").contains("unlimited"), "{table}");
    let globex = line_of("globex-ci");
    assert!(globex.contains("globex") && globex.contains('5'), "{table}");
}

both_backends!(credits_command_sets_increments_decrements_and_unlimits);
fn credits_command_sets_increments_decrements_and_unlimits(backend: Backend) {
    let s = Server::on(backend).start();
    let v = ok_json(&s.cli(
        &s.admin_token,
        &[
            "token",
            "create",
            "--name",
            "paid",
            "--scope",
            "tokens:read",
            "--credits",
            "10",
            "--refill",
            "daily:10",
            "--json",
        ],
    ));
    let id = v["id"].as_str().unwrap().to_owned();
    let credits = |args: &[&str]| {
        let mut all = vec!["token", "credits", id.as_str()];
        all.extend_from_slice(args);
        all.push("--json");
        ok_json(&s.cli(&s.admin_token, &all))["credits"].clone()
    };
    assert_eq!(credits(&["increment", "5"])["remaining"], 15);
    assert_eq!(credits(&["decrement", "3"])["remaining"], 12);
    let set = credits(&["set", "500"]);
    assert_eq!(
        set,
        json!({"remaining": 500, "refill": {"interval": "daily", "amount": 10}}),
        "set keeps the refill"
    );
    let table = cli_stdout(&s.cli(&s.admin_token, &["token", "credits", &id, "decrement", "8"]));
    assert!(table.contains("492 (refills daily to 10)"), "{table}");
    assert_eq!(credits(&["set", "unlimited"]), Value::Null);

    // The server's refusal, in one line.
    let line = failed(&s.cli(&s.admin_token, &["token", "credits", &id, "increment", "1"]));
    assert!(line.contains("409"), "{line}");
    let (_, stored) = status_json(
        s.admin("GET", &format!("/api/v1/tokens/{id}"))
            .send()
            .unwrap(),
    );
    assert_eq!(stored["credits"], Value::Null, "still unlimited: {stored}");
}

both_backends!(what_the_cli_sets_is_what_verification_enforces);
/// An auto-applied limit refuses the third use of two a minute, a `:named` one counts only
/// verifications that name it, and credits changed with `token credits` take effect at once.
fn what_the_cli_sets_is_what_verification_enforces(backend: Backend) {
    let s = Server::on(backend).start();
    let v = ok_json(&s.cli(
        &s.admin_token,
        &[
            "token",
            "create",
            "--name",
            "enforced",
            "--scope",
            "tokens:read",
            "--ratelimit",
            "requests=2/1m",
            "--ratelimit",
            "search=1/1m:named",
            "--json",
        ],
    ));
    let token = v["token"].as_str().unwrap();
    let code = |body: Value| {
        let (status, v) = status_json(s.anon("POST", "/api/v1/verify").json(&body).send().unwrap());
        assert_eq!(status, 200, "{v}");
        v["code"].as_str().unwrap().to_owned()
    };
    let search = json!({"token": token, "ratelimits": [{"name": "search"}]});
    assert_eq!(code(search.clone()), "VALID");
    assert_eq!(
        code(json!({"token": token})),
        "VALID",
        "search is not auto-applied"
    );
    assert_eq!(code(json!({"token": token})), "RATE_LIMITED", "2 a minute");
    assert_eq!(code(search), "RATE_LIMITED");

    let (id2, paid) = s.create_token("paid", &["tokens:read"]);
    ok_json(&s.cli(
        &s.admin_token,
        &["token", "credits", &id2, "set", "0", "--json"],
    ));
    assert_eq!(code(json!({"token": paid})), "USAGE_EXCEEDED");
    ok_json(&s.cli(
        &s.admin_token,
        &["token", "credits", &id2, "increment", "1", "--json"],
    ));
    assert_eq!(code(json!({"token": paid})), "VALID");
    assert_eq!(code(json!({"token": paid})), "USAGE_EXCEEDED");
    ok_json(&s.cli(
        &s.admin_token,
        &["token", "credits", &id2, "set", "unlimited", "--json"],
    ));
    assert_eq!(code(json!({"token": paid})), "VALID");
}

/// Usage flags that cannot be right are refused by the CLI itself: the URL points where
/// nothing listens, so any request would fail with "cannot reach keygate" instead.
#[test]
fn bad_usage_flags_are_refused_before_any_request() {
    let nowhere = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let create = ["token", "create", "--name", "x", "--scope", "tokens:read"];
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["--ratelimit", "requests=100"],
            "--ratelimit",
            "NAME=LIMIT/DURATION",
        ),
        (
            &["--ratelimit", "requests100/60s"],
            "--ratelimit",
            "NAME=LIMIT/DURATION",
        ),
        (
            &["--ratelimit", "requests=0/60s"],
            "--ratelimit",
            "between 1 and",
        ),
        (&["--ratelimit", "requests=100/banana"], "--ratelimit", "1m"),
        (
            &["--ratelimit", "requests=100/31d"],
            "--ratelimit",
            "between 1s and 30d",
        ),
        (
            &["--ratelimit", "requests=100/60s:sometimes"],
            "--ratelimit",
            "60s:sometimes",
        ),
        (
            &["--ratelimit", "a=1/1s", "--ratelimit", "a=2/1m"],
            "--ratelimit a",
            "given twice",
        ),
        (&["--credits", "-5"], "--credits", "whole number"),
        (&["--credits", "lots"], "--credits", "whole number"),
        (&["--refill", "monthly:1000"], "--credits", "required"),
        (
            &["--credits", "5", "--refill", "weekly:5"],
            "--refill",
            "daily:AMOUNT",
        ),
        (
            &["--credits", "5", "--refill", "monthly:5@32"],
            "--refill",
            "1 to 31",
        ),
        (
            &["--credits", "5", "--refill", "daily:5@3"],
            "--refill",
            "monthly",
        ),
    ];
    let mut runs: Vec<(Vec<&str>, &str, &str)> = cases
        .iter()
        .map(|(extra, flag, says)| ([&create[..], extra].concat(), *flag, *says))
        .collect();
    runs.push((
        vec!["token", "credits", "kg_x", "increment", "unlimited"],
        "increment",
        "only set takes unlimited",
    ));
    runs.push((vec!["token", "credits", "kg_x", "add", "5"], "add", "set"));
    runs.push((
        vec!["token", "credits", "kg_x", "set", "-1"],
        "<VALUE>",
        "unlimited",
    ));
    for (args, flag, says) in runs {
        let out = cli_at(&nowhere, &args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let what = args.join(" ");
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert!(out.stdout.is_empty(), "{what}");
        assert!(stderr.starts_with("error:"), "{what}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains(says),
            "{what}: names {flag} and says {says}: {stderr}"
        );
        assert!(
            !stderr.contains("cannot reach"),
            "{what}: a request was sent: {stderr}"
        );
    }
}

both_backends!(the_servers_refusal_of_a_usage_field_is_one_line_naming_it);
fn the_servers_refusal_of_a_usage_field_is_one_line_naming_it(backend: Backend) {
    let s = Server::on(backend).start();
    let long = "x".repeat(257);
    let line = failed(&s.cli(
        &s.admin_token,
        &[
            "token",
            "create",
            "--name",
            "x",
            "--scope",
            "tokens:read",
            "--external-id",
            &long,
        ],
    ));
    assert!(
        line.contains("422") && line.contains("externalId"),
        "{line}"
    );
    let many: Vec<String> = (0..51).map(|i| format!("l{i}=1/1s")).collect();
    let mut args = vec!["token", "create", "--name", "x", "--scope", "tokens:read"];
    for l in &many {
        args.extend(["--ratelimit", l.as_str()]);
    }
    let line = failed(&s.cli(&s.admin_token, &args));
    assert!(
        line.contains("422") && line.contains("ratelimits"),
        "{line}"
    );
    let arr = ok_json(&s.cli(&s.admin_token, &["token", "list", "--json"]));
    assert_eq!(arr.as_array().unwrap().len(), 1, "nothing created: {arr}");
}

// ---- gen-token ----

#[test]
fn gen_token_prints_one_valid_default_token() {
    let out = keygate_command().arg("gen-token").output().unwrap();
    let stdout = cli_stdout(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let t = lines[0];
    assert_eq!(t.len(), 69, "{t}");
    assert!(t.starts_with("kg_"), "{t}");
    let prefix = keygate_core::TokenPrefix::default();
    assert!(
        matches!(
            keygate_core::token::parse(t, &prefix),
            Ok(keygate_core::token::ParsedToken::Native { .. })
        ),
        "a native token with a good checksum: {t}"
    );
    let again = cli_stdout(&keygate_command().arg("gen-token").output().unwrap());
    assert_ne!(again.trim(), t, "each call is random");
}

#[test]
fn gen_token_with_prefix_uses_it() {
    let out = keygate_command()
        .args(["gen-token", "--token-prefix", "acme"])
        .output()
        .unwrap();
    let stdout = cli_stdout(&out);
    let t = stdout.trim();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(t.starts_with("acme_"), "{t}");
    assert_eq!(t.len(), 71, "{t}");
    let prefix = keygate_core::TokenPrefix::parse("acme").unwrap();
    assert!(matches!(
        keygate_core::token::parse(t, &prefix),
        Ok(keygate_core::token::ParsedToken::Native { .. })
    ));
}

both_backends!(gen_token_makes_a_usable_bootstrap_token);
fn gen_token_makes_a_usable_bootstrap_token(backend: Backend) {
    let t = cli_stdout(&keygate_command().arg("gen-token").output().unwrap())
        .trim()
        .to_owned();
    let s = Server::on(backend).bootstrap_token(&t).start();
    let (status, v) = status_json(
        s.with_token("GET", "/api/v1/tokens/self", &t)
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["scopes"], json!(["*"]));
}

#[test]
fn gen_token_rejects_a_bad_prefix() {
    let out = keygate_command()
        .args(["gen-token", "--token-prefix", "Bad-Prefix"])
        .output()
        .unwrap();
    let line = failed(&out);
    assert!(line.contains("token-prefix"), "{line}");
}

// ---- answers that break readers ----

/// `{"l":{"l":…{"l":1}}}`: `depth` objects, each inside the one before.
fn nested(depth: usize) -> Value {
    (1..depth).fold(json!({"l": 1}), |inner, _| json!({ "l": inner }))
}

both_backends!(list_and_show_read_metadata_16_levels_deep);
fn list_and_show_read_metadata_16_levels_deep(backend: Backend) {
    let s = Server::on(backend).start();
    let meta = nested(16);
    let r = s
        .admin("POST", "/api/v1/tokens")
        .json(&json!({"name": "deep", "scopes": ["tokens:read"], "metadata": meta}))
        .send()
        .unwrap();
    let (status, created) = status_json(r);
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let listed = ok_json(&s.cli(&s.admin_token, &["token", "list", "--json"]));
    let mine = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(mine["metadata"], meta);
    assert_eq!(
        ok_json(&s.cli(&s.admin_token, &["token", "show", id, "--json"]))["metadata"],
        meta
    );
    assert!(cli_stdout(&s.cli(&s.admin_token, &["token", "list"])).contains(id));
}

/// A stand-in for a server (a proxy, a wrong `KEYGATE_URL`, a broken or hostile server): it
/// answers every request with `status` and `body`. Its address, `http://127.0.0.1:PORT`.
fn fake_server(status: u16, body: String) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let mut reader = BufReader::new(conn);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut request_body = vec![0; length];
            let _ = reader.read_exact(&mut request_body);
            let head = format!(
                "HTTP/1.1 {status} Whatever\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let mut conn = reader.into_inner();
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(body.as_bytes());
        }
    });
    url
}

/// The CLI pointed at `url`, with its stdout and stderr captured.
fn cli_at(url: &str, args: &[&str]) -> Command {
    let mut cmd = keygate_command();
    cmd.args(args)
        .env("KEYGATE_URL", url)
        .env("KEYGATE_TOKEN", fresh_token())
        .stdin(std::process::Stdio::null());
    cmd
}

fn deep_json(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

#[test]
fn no_command_panics_on_a_malformed_or_too_deep_answer() {
    let deep = deep_json(200);
    let answers = [
        (200, deep.clone()),
        (
            200,
            format!(r#"{{"items":[{{"id":"kg_x","metadata":{deep}}}],"nextCursor":null}}"#),
        ),
        (200, "this is not JSON".to_owned()),
        (200, r#"{"items":"not a list"}"#.to_owned()),
        (200, r#"["a","list"]"#.to_owned()),
        (200, r#""a string""#.to_owned()),
        (
            200,
            r#"{"items":[{"id":"kg_x","createdAt":"2026-01-01T00:00:0éé"}],"nextCursor":null}"#
                .to_owned(),
        ),
        (201, deep.clone()),
        (400, deep.clone()),
        (500, "<html>oops</html>".to_owned()),
    ];
    let commands: &[&[&str]] = &[
        &["token", "list"],
        &["token", "list", "--json"],
        &["token", "show", "kg_x"],
        &["token", "create", "--name", "n", "--scope", "tokens:read"],
        &["token", "rotate", "kg_x"],
        &["token", "disable", "kg_x"],
        &["token", "revoke", "kg_x"],
        &["token", "credits", "kg_x", "set", "5"],
        &["user", "list"],
        &["user", "create", "mia"],
        &["user", "set-role", "mia", "admin"],
        &["tenant", "create", "acme"],
    ];
    let mut problems = Vec::new();
    for (status, body) in answers {
        let url = fake_server(status, body.clone());
        let shown: String = body.chars().take(60).collect();
        for args in commands {
            let out = cli_at(&url, args).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let what = format!("keygate {} given {status} {shown}", args.join(" "));
            let code = out.status.code();
            if stderr.contains("panicked") || !matches!(code, Some(0 | 1)) {
                problems.push(format!("{what}: exit {code:?}, stderr: {stderr}"));
            } else if code == Some(1)
                && !(stderr.starts_with("error: ") && stderr.trim_end().lines().count() == 1)
            {
                problems.push(format!("{what}: not one error line: {stderr}"));
            } else if body.starts_with("[[[") && code != Some(1) {
                problems.push(format!("{what}: an unreadable answer is not a success"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `keygate … | head -1`: the reader goes away before the output is written.
fn run_with_stdout_closed(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

#[test]
fn a_closed_stdout_ends_the_output_quietly() {
    // More than a pipe's buffer, so the write fails even if it began before the close.
    let items: Vec<Value> = (0..2000)
        .map(|i| json!({"id": format!("kg_{i:016}"), "name": "n", "scopes": ["tokens:read"]}))
        .collect();
    let url = fake_server(200, json!({"items": items, "nextCursor": null}).to_string());
    for cmd in [
        cli_at(&url, &["token", "list", "--json"]),
        cli_at(&url, &["token", "list"]),
        cli_at(&url, &["user", "list", "--json"]),
        {
            let mut c = keygate_command();
            c.arg("openapi");
            c
        },
    ] {
        let what = format!("{:?}", cmd.get_args().collect::<Vec<_>>());
        let out = run_with_stdout_closed(cmd);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && out.status.code() != Some(101),
            "{what}: {} {stderr}",
            out.status
        );
        assert!(stderr.is_empty(), "{what}: quiet: {stderr}");
    }
}

/// The subcommands listed under `Commands:` in a help text (without `help` itself).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

/// `-h` of a command path, e.g. `["token", "create"]`.
fn short_help(path: &[String]) -> String {
    let out = keygate_command().args(path).arg("-h").output().unwrap();
    cli_stdout(&out)
}

/// A line of a help text that names an option (`-h, --help`, `--name <NAME>`) or an argument.
fn is_item(line: &str) -> bool {
    let t = line.trim_start();
    line.starts_with("  ") && (t.starts_with('-') || t.starts_with('<'))
}

/// Every option and argument of every command says what it is for: in `-h` each one is a
/// line `  --name <NAME>  What it does`, so a line with nothing after its names lacks a help.
#[test]
fn every_option_of_every_command_has_a_help_text() {
    let mut undocumented = Vec::new();
    let mut paths: Vec<Vec<String>> = vec![vec![]];
    while let Some(path) = paths.pop() {
        let help = short_help(&path);
        for sub in subcommands(&help) {
            paths.push([path.clone(), vec![sub]].concat());
        }
        let lines: Vec<&str> = help
            .lines()
            .skip_while(|l| !(l.starts_with("Arguments:") || l.starts_with("Options:")))
            .collect();
        for (i, line) in lines.iter().enumerate() {
            if !is_item(line) {
                continue;
            }
            // Two spaces or more separate the names from the description; when the names are
            // long, clap puts the description on the next line instead.
            let inline = line
                .trim()
                .split_once("  ")
                .is_some_and(|(_, d)| !d.trim().is_empty());
            let below = lines
                .get(i + 1)
                .is_some_and(|n| n.starts_with("  ") && !n.trim().is_empty() && !is_item(n));
            if !(inline || below) {
                undocumented.push(format!("keygate {}: {}", path.join(" "), line.trim()));
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "no help text:\n{}",
        undocumented.join("\n")
    );
}

/// `serve --help` shows how to name a PostgreSQL database.
#[test]
fn serve_help_shows_a_postgres_url() {
    let out = keygate_command()
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = cli_stdout(&out);
    let line = help
        .lines()
        .skip_while(|l| !l.contains("--database-url"))
        .take(3)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(line.contains("postgres://"), "{line}");
}
