//! The command-line client: token management over the REST API, reading `KEYGATE_URL` and
//! `KEYGATE_TOKEN` from the environment (the seeds' advice: tokens belong in environment
//! variables, not in code or in shell history). A table by default, `--json` for scripts; on
//! failure one line on stderr and a non-zero exit.

/// `println!` that returns the error of an unwritable stdout (see [`output::write_line`])
/// instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::output::write_line(format_args!($($arg)*))
    };
}

mod accounts;
mod bulk_revoke;
mod client;
mod output;
mod usage;
mod usage_report;
mod webhooks;

pub use accounts::{TenantCommand, UserCommand};
pub use webhooks::WebhookCommand;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use keygate_core::network::Cidr;
use keygate_core::usage::{Credits, RateLimit, Refill};
use serde_json::{json, Value};

use client::{CliError, Client};
use usage::CreditValue;

#[derive(Args, Clone, Copy)]
pub struct Format {
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once.
    Create {
        /// A name to tell the token apart by, e.g. "ci deploy".
        #[arg(long)]
        name: String,
        /// A scope to grant; repeat for several.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Lifetime, e.g. 30d, 12h, 90m.
        #[arg(long, value_parser = parse_duration)]
        expires_in: Option<Duration>,
        /// Free text kept with the token, e.g. what it is for or who to ask.
        #[arg(long)]
        description: Option<String>,
        /// Owner (a user id, or the tenant id for a service token); needs tokens:admin.
        #[arg(long)]
        owner: Option<String>,
        /// Your own id for whoever holds the token, e.g. a customer id (1-256 characters).
        #[arg(long)]
        external_id: Option<String>,
        /// A rate limit, NAME=LIMIT/DURATION: at most LIMIT uses per DURATION (1s to 30d,
        /// e.g. requests=100/60s). Checked on every verification; with the suffix :named
        /// (search=10/1s:named) only on verifications that name it. Repeat for several.
        #[arg(long = "ratelimit", value_name = "NAME=LIMIT/DURATION[:named]",
              value_parser = usage::parse_ratelimit)]
        ratelimits: Vec<RateLimit>,
        /// Credits: each verification uses one (or its cost) and is refused at 0
        /// [default: unlimited].
        #[arg(long, value_name = "N", value_parser = usage::parse_credits,
              allow_negative_numbers = true)]
        credits: Option<u64>,
        /// Sets the credits back to AMOUNT every day at 00:00 UTC (daily:AMOUNT) or every month
        /// (monthly:AMOUNT, on the 1st; monthly:AMOUNT@DAY on that day).
        #[arg(long, value_name = "INTERVAL:AMOUNT[@DAY]", requires = "credits",
              value_parser = usage::parse_refill)]
        refill: Option<Refill>,
        /// A network the token may be used from, e.g. 10.0.0.0/8, 2001:db8::/32 or one address;
        /// repeat for several (up to 100) [default: anywhere].
        #[arg(long = "allow-cidr", value_name = "CIDR")]
        allowed_cidrs: Vec<Cidr>,
        #[command(flatten)]
        format: Format,
    },
    /// List tokens (every token of the tenant with tokens:admin, else your own).
    List {
        /// Only tokens of this owner (a user id, or the tenant id for service tokens); other
        /// owners than your own need tokens:admin.
        #[arg(long)]
        owner: Option<String>,
        /// Only tokens whose name contains this.
        #[arg(long)]
        name: Option<String>,
        /// Only tokens that hold exactly this scope, e.g. tokens:read.
        #[arg(long)]
        scope: Option<String>,
        /// Only tokens with exactly this external id.
        #[arg(long)]
        external_id: Option<String>,
        #[command(flatten)]
        format: Format,
    },
    /// Show one token, with its rate limits and credits.
    Show {
        /// The token's id, e.g. kg_1A2b3C4d5E6f7G8h (not the token itself).
        id: String,
        #[command(flatten)]
        format: Format,
    },
    /// Deactivate a token.
    Disable {
        /// The token's id, e.g. kg_1A2b3C4d5E6f7G8h (not the token itself).
        id: String,
        #[command(flatten)]
        format: Format,
    },
    /// Activate a token again.
    Enable {
        /// The token's id, e.g. kg_1A2b3C4d5E6f7G8h (not the token itself).
        id: String,
        #[command(flatten)]
        format: Format,
    },
    /// Replace a token by a new one; the old one works for the grace period, e.g. 1h.
    Rotate {
        /// The token's id, e.g. kg_1A2b3C4d5E6f7G8h (not the token itself).
        id: String,
        /// How long the old token keeps working, e.g. 1h or 7d [default: 0, it stops at once].
        #[arg(long, value_parser = parse_duration)]
        grace: Option<Duration>,
        #[command(flatten)]
        format: Format,
    },
    /// Revoke (delete) a token, or with --owner, --external-id, --scope or --created-before
    /// every token that matches all of them (needs tokens:admin).
    ///
    /// A bulk revoke shows what would go and asks first, unless --yes is given; --dry-run only
    /// shows it. The calling token is never revoked.
    Revoke {
        /// The token's id, e.g. kg_1A2b3C4d5E6f7G8h (not the token itself).
        #[arg(required_unless_present_any = bulk_revoke::CRITERIA,
              conflicts_with = "bulk_criteria")]
        id: Option<String>,
        #[command(flatten)]
        bulk: bulk_revoke::BulkRevokeArgs,
        #[command(flatten)]
        format: Format,
    },
    /// A token's verifications over time: a sparkline, totals by outcome and a table.
    ///
    /// `usage ID` covers the last 24 hours by hour; `--since 1h` by minute, `--since 30d` by
    /// day.
    Usage {
        /// The token's id, e.g. kg_1A2b3C4d5E6f7G8h (not the token itself).
        id: String,
        /// How far back, e.g. 1h, 24h, 30d (minute buckets reach back 31 days, day buckets
        /// 400).
        #[arg(long, value_parser = parse_duration, default_value = "24h")]
        since: Duration,
        /// Bucket width [default: minute up to 1h, hour up to 2 days, else day].
        #[arg(long, value_parser = ["minute", "hour", "day"])]
        granularity: Option<String>,
        #[command(flatten)]
        format: Format,
    },
    /// Change what is left of a token's credits.
    ///
    /// `credits ID set 500`, `credits ID increment 100`, `credits ID decrement 10` (stops at 0),
    /// `credits ID set unlimited`.
    Credits {
        /// The token's id, e.g. kg_1A2b3C4d5E6f7G8h (not the token itself).
        id: String,
        /// What to do with VALUE.
        #[arg(value_enum)]
        operation: CreditOperation,
        /// A number of credits, or unlimited (with set only).
        #[arg(value_parser = usage::parse_credit_value, allow_negative_numbers = true)]
        value: CreditValue,
        #[command(flatten)]
        format: Format,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CreditOperation {
    /// Set the credits left to VALUE (a refill keeps its schedule).
    Set,
    /// Add VALUE to the credits left.
    Increment,
    /// Take VALUE from the credits left, down to 0 at most.
    Decrement,
}

impl CreditOperation {
    fn as_str(self) -> &'static str {
        match self {
            CreditOperation::Set => "set",
            CreditOperation::Increment => "increment",
            CreditOperation::Decrement => "decrement",
        }
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30d, 12h, 90m)"))
}

/// A command of the client: tokens, users or tenants.
pub enum Command {
    Token(TokenCommand),
    User(UserCommand),
    Tenant(TenantCommand),
    Webhook(WebhookCommand),
}

pub fn run(cmd: Command) -> ExitCode {
    let result = Client::from_env().and_then(|client| match cmd {
        Command::Token(c) => execute(&client, c),
        Command::User(c) => accounts::execute_user(&client, c),
        Command::Tenant(c) => accounts::execute_tenant(&client, c),
        Command::Webhook(c) => webhooks::execute(&client, c),
    });
    finish(result)
}

/// The exit of a command, with its one error line. A reader that went away (`| head -1`)
/// ends it quietly, with the status a shell reports for a program SIGPIPE stopped (128 + 13):
/// it saw what it wanted, and `set -o pipefail` still notices the cut.
fn finish(result: Result<(), CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::from(141)
        }
        Err(e) => {
            use std::io::Write;
            // Not `eprintln!`, which panics on a closed stderr.
            let _ = writeln!(std::io::stderr().lock(), "error: {e}");
            e.exit_code()
        }
    }
}

/// Prints a document the binary makes itself (`keygate openapi`), with the exit of a command.
pub fn print_document(text: &str) -> ExitCode {
    finish(say!("{text}"))
}

fn execute(client: &Client, cmd: TokenCommand) -> Result<(), CliError> {
    match cmd {
        TokenCommand::Create {
            name,
            scopes,
            expires_in,
            description,
            owner,
            external_id,
            ratelimits,
            credits,
            refill,
            allowed_cidrs,
            format,
        } => {
            ensure_unique_names(&ratelimits)?;
            let mut body = json!({ "name": name, "scopes": scopes });
            if let Some(d) = expires_in {
                // Sub-second lifetimes round down to 0, which the server refuses: say so there.
                body["expiresIn"] = json!(d.as_secs());
            }
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            if let Some(o) = owner {
                body["ownerId"] = json!(o);
            }
            if let Some(e) = external_id {
                body["externalId"] = json!(e);
            }
            if !ratelimits.is_empty() {
                body["ratelimits"] = json!(ratelimits);
            }
            if let Some(remaining) = credits {
                body["credits"] = json!(Credits { remaining, refill });
            }
            if !allowed_cidrs.is_empty() {
                body["allowedCidrs"] = json!(allowed_cidrs);
            }
            let created = client.send("POST", "/api/v1/tokens", Some(body))?;
            print_created(&created, format)
        }
        TokenCommand::List {
            owner,
            name,
            scope,
            external_id,
            format,
        } => {
            let mut query: Vec<(&str, String)> = Vec::new();
            if let Some(o) = &owner {
                query.push(("ownerId", o.clone()));
            }
            if let Some(n) = &name {
                query.push(("q", n.clone()));
            }
            if let Some(s) = &scope {
                query.push(("scope", s.clone()));
            }
            if let Some(e) = &external_id {
                query.push(("externalId", e.clone()));
            }
            let items = client.get_all("/api/v1/tokens", &query)?;
            if format.json {
                output::print_json(&Value::Array(items))
            } else {
                output::print_tokens(&items)
            }
        }
        TokenCommand::Show { id, format } => {
            let t = client.get(&format!("/api/v1/tokens/{}", client::segment(&id)), &[])?;
            print_one(&t, format)
        }
        TokenCommand::Disable { id, format } => {
            let t = client.send(
                "POST",
                &format!("/api/v1/tokens/{}/disable", client::segment(&id)),
                None,
            )?;
            print_one(&t, format)
        }
        TokenCommand::Enable { id, format } => {
            let t = client.send(
                "POST",
                &format!("/api/v1/tokens/{}/enable", client::segment(&id)),
                None,
            )?;
            print_one(&t, format)
        }
        TokenCommand::Rotate { id, grace, format } => {
            let grace = grace.map_or(0, |g| g.as_secs());
            let body = json!({ "gracePeriodSeconds": grace });
            let created = client.send(
                "POST",
                &format!("/api/v1/tokens/{}/rotate", client::segment(&id)),
                Some(body),
            )?;
            if format.json {
                return output::print_json(&created);
            }
            // The end of the grace period, or the old expiry if that came first: the old
            // token's own expiry says which.
            let previous = match created["rotatedFrom"].as_str() {
                Some(old) if grace > 0 => {
                    client.get(&format!("/api/v1/tokens/{}", client::segment(old)), &[])?
                }
                _ => json!({ "id": created["rotatedFrom"] }),
            };
            print_created_with(&created, &output::stops_working(&previous, grace))
        }
        TokenCommand::Revoke {
            id: None,
            bulk,
            format,
        } => bulk_revoke::execute(client, bulk, format),
        TokenCommand::Revoke {
            id: Some(id),
            format,
            ..
        } => {
            client.send(
                "DELETE",
                &format!("/api/v1/tokens/{}", client::segment(&id)),
                None,
            )?;
            if format.json {
                output::print_json(&json!({ "revoked": id }))
            } else {
                say!("Revoked {id}")
            }
        }
        TokenCommand::Usage {
            id,
            since,
            granularity,
            format,
        } => {
            let granularity =
                granularity.unwrap_or_else(|| usage_report::granularity_for(since).to_owned());
            let now = time::OffsetDateTime::now_utc();
            let from = time::Duration::try_from(since)
                .ok()
                .and_then(|d| now.checked_sub(d))
                .ok_or_else(|| CliError::Usage(format!("--since {since:?} is too far back")))?;
            let from = from
                .format(&time::format_description::well_known::Rfc3339)
                .map_err(|e| CliError::Usage(format!("--since: {e}")))?;
            let usage = client.get(
                &format!("/api/v1/tokens/{}/usage", client::segment(&id)),
                &[("granularity", granularity), ("from", from)],
            )?;
            if format.json {
                output::print_json(&usage)
            } else {
                usage_report::print_usage(&usage)
            }
        }
        TokenCommand::Credits {
            id,
            operation,
            value,
            format,
        } => {
            let value = match (operation, value) {
                (_, CreditValue::Count(n)) => json!(n),
                (CreditOperation::Set, CreditValue::Unlimited) => Value::Null,
                (op, CreditValue::Unlimited) => {
                    return Err(CliError::Usage(format!(
                        "{} needs a number of credits, e.g. 100; only set takes unlimited",
                        op.as_str()
                    )))
                }
            };
            let t = client.send(
                "POST",
                &format!("/api/v1/tokens/{}/credits", client::segment(&id)),
                Some(json!({ "operation": operation.as_str(), "value": value })),
            )?;
            print_one(&t, format)
        }
    }
}

/// The server refuses a name given twice too, but by its place in the list; here the flag's
/// own words can say which.
fn ensure_unique_names(limits: &[RateLimit]) -> Result<(), CliError> {
    for (i, l) in limits.iter().enumerate() {
        if limits[..i].iter().any(|earlier| earlier.name == l.name) {
            return Err(CliError::Usage(format!(
                "--ratelimit {} is given twice; each rate limit of a token needs its own name",
                l.name
            )));
        }
    }
    Ok(())
}

fn print_one(t: &Value, format: Format) -> Result<(), CliError> {
    if format.json {
        output::print_json(t)
    } else {
        output::print_token(t)
    }
}

fn print_created(created: &Value, format: Format) -> Result<(), CliError> {
    if format.json {
        return output::print_json(created);
    }
    output::print_token(created)?;
    print_secret(created)
}

/// A created token's table, a line of `note`, then the secret.
fn print_created_with(created: &Value, note: &str) -> Result<(), CliError> {
    output::print_token(created)?;
    say!("{note}")?;
    print_secret(created)
}

fn print_secret(created: &Value) -> Result<(), CliError> {
    say!(
        "\nToken (shown once, store it now): {}",
        created["token"].as_str().unwrap_or("")
    )
}
