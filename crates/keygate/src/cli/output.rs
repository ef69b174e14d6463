//! Tables for people, JSON for scripts.

use std::fmt;
use std::io::Write;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde_json::Value;

use super::client::CliError;

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

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Date and time to the second, without the RFC 3339 noise.
fn when(v: &Value) -> String {
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
        ]);
    }
    say!("{table}")
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
