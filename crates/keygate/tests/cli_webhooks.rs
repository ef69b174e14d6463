//! `keygate webhook …` against a real server and a real receiver: an endpoint added from the CLI
//! gets the events, and its deliveries, redelivery and switches work from the CLI too.

mod common;
use common::*;

use serde_json::Value;

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_str(&cli_stdout(out)).expect("the CLI printed JSON")
}

#[test]
fn webhook_add_list_deliveries_redeliver_and_remove() {
    let receiver = Recorder::start();
    let s = Server::on(Backend::Sqlite).start();
    let url = format!("http://{}/events", receiver.addr);

    // add: the table and the secret, once.
    let out = cli_stdout(&s.cli(
        &s.admin_token,
        &[
            "webhook",
            "add",
            &url,
            "--event",
            "token.created",
            "--description",
            "ci",
        ],
    ));
    assert!(out.contains(&url), "{out}");
    let secret_line = out
        .lines()
        .find(|l| l.starts_with("whsec_"))
        .unwrap_or_else(|| panic!("no secret printed:\n{out}"));
    assert!(secret_line.len() > 20, "{secret_line}");
    let listed = cli_stdout(&s.cli(&s.admin_token, &["webhook", "list"]));
    assert!(
        listed.contains(&url) && listed.contains("token.created"),
        "{listed}"
    );
    assert!(
        !listed.contains("whsec_"),
        "the list never shows the secret:\n{listed}"
    );
    let hooks = json_of(&s.cli(&s.admin_token, &["webhook", "list", "--json"]));
    let id = hooks[0]["id"].as_str().unwrap().to_owned();

    // An event, delivered, in the delivery log.
    s.create_token("watched", &["tokens:read"]);
    let delivered = eventually("the delivery", || {
        let d = json_of(&s.cli(&s.admin_token, &["webhook", "deliveries", &id, "--json"]));
        (d.as_array().unwrap().len() == 1 && d[0]["state"] == "delivered").then_some(d)
    });
    let msg = delivered[0]["eventId"].as_str().unwrap().to_owned();
    let table = cli_stdout(&s.cli(&s.admin_token, &["webhook", "deliveries", &id]));
    assert!(
        table.contains("token.created") && table.contains("delivered"),
        "{table}"
    );
    assert_eq!(
        receiver
            .take()
            .iter()
            .filter(|r| r.header("webhook-id") == Some(msg.as_str()))
            .count(),
        1
    );

    // redeliver: the same message again.
    let delivery = delivered[0]["id"].to_string().trim_matches('"').to_owned();
    cli_stdout(&s.cli(&s.admin_token, &["webhook", "redeliver", &id, &delivery]));
    eventually("the redelivery", || {
        receiver
            .take()
            .iter()
            .any(|r| r.header("webhook-id") == Some(msg.as_str()))
            .then_some(())
    });

    // disable / enable / remove.
    let off = json_of(&s.cli(&s.admin_token, &["webhook", "disable", &id, "--json"]));
    assert_eq!(off["enabled"], false, "{off}");
    let on = json_of(&s.cli(&s.admin_token, &["webhook", "enable", &id, "--json"]));
    assert_eq!(on["enabled"], true, "{on}");
    let gone = cli_stdout(&s.cli(&s.admin_token, &["webhook", "remove", &id]));
    assert!(gone.contains(&id), "{gone}");
    let empty = cli_stdout(&s.cli(&s.admin_token, &["webhook", "list"]));
    assert!(empty.contains("No webhook endpoints."), "{empty}");

    // Bad input is the server's 422, said on stderr with a failing exit.
    let bad = s.cli(
        &s.admin_token,
        &["webhook", "add", &url, "--event", "token.nope"],
    );
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("token.nope"), "{err}");
}
