//! `keygate webhook …`: a tenant's webhook endpoints and what was delivered to them. The
//! signing secret is printed once, when the endpoint is added, as the API shows it once.

use clap::Subcommand;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde_json::{json, Value};

use super::client::{segment, CliError, Client};
use super::output::{self, text, when};
use super::Format;

#[derive(Subcommand)]
pub enum WebhookCommand {
    /// Add an endpoint; its signing secret (whsec_…) is printed once.
    Add {
        /// Where to POST the events: an http(s) URL.
        url: String,
        /// An event to send, e.g. token.revoked (repeatable); `*` (the default) for all.
        #[arg(long = "event", default_value = "*")]
        events: Vec<String>,
        /// What the endpoint is for.
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        format: Format,
    },
    /// List your tenant's endpoints.
    List {
        #[command(flatten)]
        format: Format,
    },
    /// Show what was delivered to an endpoint, newest first: attempts, status, latency, next try.
    Deliveries {
        /// The endpoint's id (whk_…).
        id: String,
        #[command(flatten)]
        format: Format,
    },
    /// Send a delivery again (also one that failed for good).
    Redeliver {
        /// The endpoint's id (whk_…).
        id: String,
        /// The delivery's id, from `keygate webhook deliveries`.
        delivery: String,
        #[command(flatten)]
        format: Format,
    },
    /// Turn an endpoint on again, e.g. after keygate disabled it for failing.
    Enable {
        /// The endpoint's id (whk_…).
        id: String,
        #[command(flatten)]
        format: Format,
    },
    /// Stop sending to an endpoint without removing it.
    Disable {
        /// The endpoint's id (whk_…).
        id: String,
        #[command(flatten)]
        format: Format,
    },
    /// Remove an endpoint and its deliveries.
    Remove {
        /// The endpoint's id (whk_…).
        id: String,
    },
}

pub fn execute(client: &Client, cmd: WebhookCommand) -> Result<(), CliError> {
    match cmd {
        WebhookCommand::Add {
            url,
            events,
            description,
            format,
        } => {
            let mut body = json!({ "url": url, "events": events });
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            let created = client.send("POST", "/api/v1/webhooks", Some(body))?;
            if format.json {
                return output::print_json(&created);
            }
            print_endpoints(std::slice::from_ref(&created))?;
            say!(
                "\nSigning secret (shown once; your receiver verifies each delivery with it):\n{}",
                text(&created["secret"])
            )
        }
        WebhookCommand::List { format } => {
            let items = client.get_all("/api/v1/webhooks", &[])?;
            if format.json {
                output::print_json(&Value::Array(items))
            } else {
                print_endpoints(&items)
            }
        }
        WebhookCommand::Deliveries { id, format } => {
            let items = client.get_all(
                &format!("/api/v1/webhooks/{}/deliveries", segment(&id)),
                &[],
            )?;
            if format.json {
                output::print_json(&Value::Array(items))
            } else {
                print_deliveries(&items)
            }
        }
        WebhookCommand::Redeliver {
            id,
            delivery,
            format,
        } => {
            let d = client.send(
                "POST",
                &format!(
                    "/api/v1/webhooks/{}/deliveries/{}/redeliver",
                    segment(&id),
                    segment(&delivery)
                ),
                None,
            )?;
            if format.json {
                output::print_json(&d)
            } else {
                print_deliveries(std::slice::from_ref(&d))
            }
        }
        WebhookCommand::Enable { id, format } => set_enabled(client, &id, true, format),
        WebhookCommand::Disable { id, format } => set_enabled(client, &id, false, format),
        WebhookCommand::Remove { id } => {
            client.send(
                "DELETE",
                &format!("/api/v1/webhooks/{}", segment(&id)),
                None,
            )?;
            say!("Removed {id}.")
        }
    }
}

fn set_enabled(client: &Client, id: &str, enabled: bool, format: Format) -> Result<(), CliError> {
    let e = client.send(
        "PATCH",
        &format!("/api/v1/webhooks/{}", segment(id)),
        Some(json!({ "enabled": enabled })),
    )?;
    if format.json {
        output::print_json(&e)
    } else {
        print_endpoints(std::slice::from_ref(&e))
    }
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    t
}

fn print_endpoints(endpoints: &[Value]) -> Result<(), CliError> {
    if endpoints.is_empty() {
        return say!("No webhook endpoints.");
    }
    let mut t = table(&["ID", "URL", "EVENTS", "ENABLED", "DESCRIPTION", "CREATED"]);
    for e in endpoints {
        let events = e["events"]
            .as_array()
            .map(|a| a.iter().map(text).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        let enabled = match (&e["enabled"], &e["disabledReason"]) {
            (Value::Bool(true), _) => "yes".to_owned(),
            (_, Value::String(why)) => format!("no: {why}"),
            _ => "no".to_owned(),
        };
        t.add_row([
            text(&e["id"]),
            text(&e["url"]),
            events,
            enabled,
            text(&e["description"]),
            when(&e["createdAt"]),
        ]);
    }
    say!("{t}")
}

fn print_deliveries(deliveries: &[Value]) -> Result<(), CliError> {
    if deliveries.is_empty() {
        return say!("No deliveries.");
    }
    let mut t = table(&[
        "ID", "EVENT", "TYPE", "STATE", "ATTEMPTS", "STATUS", "LATENCY", "NEXT TRY", "ERROR",
    ]);
    for d in deliveries {
        let latency = match d["lastLatencyMs"].as_u64() {
            Some(ms) => format!("{ms} ms"),
            None => "-".into(),
        };
        t.add_row([
            text(&d["id"]),
            text(&d["eventId"]),
            text(&d["eventType"]),
            text(&d["state"]),
            text(&d["attempts"]),
            text(&d["lastStatus"]),
            latency,
            when(&d["nextAttemptAt"]),
            text(&d["lastError"]),
        ]);
    }
    say!("{t}")
}
