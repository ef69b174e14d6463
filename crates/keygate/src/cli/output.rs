//! Tables for people, JSON for scripts.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde_json::Value;

pub fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("a Value serialises")
    );
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
    match v.as_str() {
        Some(s) if s.len() >= 19 => s[..19].replace('T', " "),
        _ => text(v),
    }
}

pub fn print_tokens(tokens: &[Value]) {
    if tokens.is_empty() {
        println!("No tokens.");
        return;
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
    println!("{table}");
}

pub fn print_users(users: &[Value]) {
    if users.is_empty() {
        println!("No users.");
        return;
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
    println!("{table}");
}
