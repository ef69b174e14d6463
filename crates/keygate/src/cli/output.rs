//! Tables for people, JSON for scripts.

use std::fmt;
use std::io::Write;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde_json::Value;

use super::client::CliError;
use super::usage::ratelimit_text;

/// One line on stdout. Unlike `println!`, which panics, a stdout that cannot be written (its
/// reader is gone: `keygate token list --json | head -1`) is an error the command stops at.
pub fn write_line(line: fmt::Arguments) -> Result<(), CliError> {
    writeln!(std::io::stdout().lock(), "{line}").map_err(CliError::Output)
}

pub fn print_json(v: &Value) -> Result<(), CliError> {
    say!(
        "{}",
        serde_json::to_string_pretty(v).expect("a Value serialises")
    )
}

pub(super) fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Date and time to the second, without the RFC 3339 noise.
pub(super) fn when(v: &Value) -> String {
    // `get`, not slicing: a malformed answer may put a multi-byte character at byte 19.
    match v.as_str().and_then(|s| s.get(..19)) {
        Some(s) => s.replace('T', " "),
        None => text(v),
    }
}

pub fn print_tokens(tokens: &[Value]) -> Result<(), CliError> {
    if tokens.is_empty() {
        return say!("No tokens.");
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header([
            "ID",
            "NAME",
            "OWNER",
            "SCOPES",
            "STATUS",
            "CREATED",
            "EXPIRES",
            "LAST USED",
            "EXTERNAL ID",
            "CREDITS",
            "ORIGIN",
        ]);
    for t in tokens {
        let scopes = t["scopes"]
            .as_array()
            .map(|a| a.iter().map(text).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        table.add_row([
            text(&t["id"]),
            text(&t["name"]),
            text(&t["ownerId"]),
            scopes,
            text(&t["status"]),
            when(&t["createdAt"]),
            when(&t["expiresAt"]),
            when(&t["lastUsedAt"]),
            text(&t["externalId"]),
            credits(&t["credits"]),
            origin(t),
        ]);
    }
    say!("{table}")
}

/// One token, a field a line, with everything the list leaves out.
pub fn print_token(t: &Value) -> Result<(), CliError> {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    for (field, value) in [
        ("ID", text(&t["id"])),
        ("NAME", text(&t["name"])),
        ("DESCRIPTION", text(&t["description"])),
        ("OWNER", text(&t["ownerId"])),
        ("EXTERNAL ID", text(&t["externalId"])),
        ("SCOPES", lines(&t["scopes"])),
        ("STATUS", text(&t["status"])),
        ("CREATED", when(&t["createdAt"])),
        ("EXPIRES", when(&t["expiresAt"])),
        ("LAST USED", when(&t["lastUsedAt"])),
        ("RATE LIMITS", ratelimits(&t["ratelimits"])),
        ("CREDITS", credits(&t["credits"])),
        ("ALLOWED FROM", allowed_from(&t["allowedCidrs"])),
        ("REPLACES", text(&t["rotatedFrom"])),
        ("REPLACED BY", text(&t["rotatedTo"])),
        ("IMPORTED FROM", text(&t["importedFrom"])),
    ] {
        table.add_row([field.to_owned(), value]);
    }
    say!("{table}")
}

/// Where the token came from: the system it was imported from, which token it replaced and
/// which replaced it, one a line; `-` for none.
fn origin(t: &Value) -> String {
    let shown: Vec<String> = [
        ("imported from", "importedFrom"),
        ("replaces", "rotatedFrom"),
        ("replaced by", "rotatedTo"),
    ]
    .into_iter()
    .filter_map(|(words, field)| t[field].as_str().map(|id| format!("{words} {id}")))
    .collect();
    if shown.is_empty() {
        "-".into()
    } else {
        shown.join("\n")
    }
}

/// When a rotated-out token stops working, as `keygate token rotate` tells it.
pub fn stops_working(previous: &Value, grace_secs: u64) -> String {
    let id = text(&previous["id"]);
    if grace_secs == 0 {
        return format!("The previous token {id} stops working now.");
    }
    format!(
        "The previous token {id} stops working at {} UTC.",
        when(&previous["expiresAt"])
    )
}

/// The items of an array one a line.
fn lines(v: &Value) -> String {
    v.as_array()
        .map(|a| a.iter().map(text).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

/// The networks one a line, or `anywhere`.
fn allowed_from(v: &Value) -> String {
    match v.as_array() {
        Some(nets) if !nets.is_empty() => lines(v),
        _ => "anywhere".to_owned(),
    }
}

/// Each limit as `--ratelimit` takes it, one a line; `-` for none.
fn ratelimits(v: &Value) -> String {
    let shown: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            match (
                l["name"].as_str(),
                l["limit"].as_u64(),
                l["durationMs"].as_u64(),
            ) {
                (Some(name), Some(limit), Some(ms)) => {
                    ratelimit_text(name, limit, ms, l["autoApply"].as_bool().unwrap_or(false))
                }
                _ => text(l),
            }
        })
        .collect();
    if shown.is_empty() {
        "-".into()
    } else {
        shown.join("\n")
    }
}

/// What is left, and how it refills: `742 (refills monthly to 1000)`; `unlimited` for null.
fn credits(v: &Value) -> String {
    if v.is_null() {
        return "unlimited".into();
    }
    let left = text(&v["remaining"]);
    let refill = &v["refill"];
    if refill.is_null() {
        return left;
    }
    let day = match refill["refillDay"].as_u64() {
        Some(d) => format!(" on day {d}"),
        None => String::new(),
    };
    format!(
        "{left} (refills {} to {}{day})",
        text(&refill["interval"]),
        text(&refill["amount"])
    )
}

pub fn print_users(users: &[Value]) -> Result<(), CliError> {
    if users.is_empty() {
        return say!("No users.");
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(["ID", "USERNAME", "ROLE", "TENANT", "CREATED"]);
    for u in users {
        table.add_row([
            text(&u["id"]),
            text(&u["username"]),
            text(&u["role"]),
            text(&u["tenantId"]),
            when(&u["createdAt"]),
        ]);
    }
    say!("{table}")
}
