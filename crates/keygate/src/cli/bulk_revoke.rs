//! `keygate token revoke --owner … / --external-id … / --scope … / --created-before …`: many
//! tokens revoked at once (`POST /api/v1/tokens/bulk-revoke`). A revoke cannot be undone, so
//! unless `--yes` is given the command first asks the server what would go, shows it, and asks
//! on a terminal; elsewhere it refuses rather than guess.

use std::io::{BufRead, IsTerminal, Write};

use clap::Args;
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::client::{CliError, Client};
use super::Format;

/// The criteria of a bulk revoke (each given must hold) and how to confirm it.
#[derive(Args, Clone, Default)]
pub struct BulkRevokeArgs {
    #[command(flatten)]
    pub criteria: Criteria,
    /// Only show which tokens would be revoked; change nothing.
    #[arg(long, requires = "bulk_criteria")]
    pub dry_run: bool,
    /// Revoke without showing the tokens first and asking (needed when not on a terminal).
    #[arg(long, requires = "bulk_criteria", conflicts_with = "dry_run")]
    pub yes: bool,
}

/// Which tokens a bulk revoke matches: those that meet every criterion given.
#[derive(Args, Clone, Default)]
#[group(id = "bulk_criteria", multiple = true)]
pub struct Criteria {
    /// Revoke every token of this owner (a user id, or the tenant id for service tokens).
    #[arg(long)]
    pub owner: Option<String>,
    /// Revoke every token with exactly this external id.
    #[arg(long)]
    pub external_id: Option<String>,
    /// Revoke every token that holds exactly this scope, e.g. metrics:read.
    #[arg(long)]
    pub scope: Option<String>,
    /// Revoke every token created before this instant (RFC 3339, e.g. 2026-01-01T00:00:00Z).
    #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
    pub created_before: Option<OffsetDateTime>,
}

/// The names of the criteria's args, for an arg that stands in for them (`token revoke ID`).
pub const CRITERIA: [&str; 4] = ["owner", "external_id", "scope", "created_before"];

impl Criteria {
    /// The request body: the criteria, and the ids of a confirmed dry run if given.
    fn body(&self, ids: Option<&Value>) -> Value {
        let mut body = Map::new();
        if let Some(o) = &self.owner {
            body.insert("ownerId".into(), json!(o));
        }
        if let Some(e) = &self.external_id {
            body.insert("externalId".into(), json!(e));
        }
        if let Some(s) = &self.scope {
            body.insert("scope".into(), json!(s));
        }
        if let Some(t) = self.created_before {
            let t = t.format(&Rfc3339).expect("a parsed RFC 3339 time formats");
            body.insert("createdBefore".into(), json!(t));
        }
        if let Some(ids) = ids {
            body.insert("ids".into(), ids.clone());
        }
        Value::Object(body)
    }
}

fn parse_rfc3339(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("{e}: expected RFC 3339, e.g. 2026-01-01T00:00:00Z"))
}

fn post(client: &Client, body: Value, dry_run: bool) -> Result<Value, CliError> {
    let path = if dry_run {
        "/api/v1/tokens/bulk-revoke?dryRun=true"
    } else {
        "/api/v1/tokens/bulk-revoke"
    };
    client.send("POST", path, Some(body))
}

pub fn execute(client: &Client, args: BulkRevokeArgs, format: Format) -> Result<(), CliError> {
    if args.dry_run || args.yes {
        let answer = post(client, args.criteria.body(None), args.dry_run)?;
        return print(&answer, format);
    }
    let preview = post(client, args.criteria.body(None), true)?;
    let ids = preview["ids"].clone();
    let count = ids.as_array().map_or(0, Vec::len);
    if count == 0 {
        return print(&preview, format);
    }
    // The preview goes to stderr, so that stdout holds only the result (`--json`).
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}", summary(&preview, true));
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(format!(
            "{count} token(s) would be revoked; not on a terminal, so nothing was asked and \
             nothing revoked: add --yes to revoke them (or --dry-run to only list them)"
        )));
    }
    let _ = write!(
        err,
        "Revoke these {count} token(s)? This cannot be undone. [y/N] "
    );
    let _ = err.flush();
    let mut reply = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut reply)
        .map_err(|e| CliError::Usage(format!("reading the answer: {e}")))?;
    if !matches!(reply.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        return Err(CliError::Usage("nothing revoked".into()));
    }
    // Only the tokens shown: one created since the preview is left alone.
    let answer = post(client, args.criteria.body(Some(&ids)), false)?;
    print(&answer, format)
}

fn print(answer: &Value, format: Format) -> Result<(), CliError> {
    if format.json {
        return super::output::print_json(answer);
    }
    say!("{}", summary(answer, answer["dryRun"] == true))
}

/// What a bulk revoke did or would do, for people: the count, then the ids one per line.
fn summary(answer: &Value, dry_run: bool) -> String {
    let ids: Vec<&str> = answer["ids"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut text = if dry_run {
        format!("Would revoke {} token(s)", ids.len())
    } else {
        format!(
            "Revoked {} token(s)",
            answer["revoked"].as_u64().unwrap_or(0)
        )
    };
    for id in &ids {
        text.push_str(&format!("\n  {id}"));
    }
    if answer["callingTokenKept"] == true {
        text.push_str("\nThe calling token matches too and is kept (revoke it with DELETE /api/v1/tokens/self).");
    }
    text
}
