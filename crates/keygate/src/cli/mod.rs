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
mod client;
mod output;

pub use accounts::{TenantCommand, UserCommand};

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use client::{CliError, Client};

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
        #[command(flatten)]
        format: Format,
    },
    /// Show one token.
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
    /// Revoke (delete) a token.
    Revoke {
        /// The token's id, e.g. kg_1A2b3C4d5E6f7G8h (not the token itself).
        id: String,
        #[command(flatten)]
        format: Format,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30d, 12h, 90m)"))
}

/// A command of the client: tokens, users or tenants.
pub enum Command {
    Token(TokenCommand),
    User(UserCommand),
    Tenant(TenantCommand),
}

pub fn run(cmd: Command) -> ExitCode {
    let result = Client::from_env().and_then(|client| match cmd {
        Command::Token(c) => execute(&client, c),
        Command::User(c) => accounts::execute_user(&client, c),
        Command::Tenant(c) => accounts::execute_tenant(&client, c),
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
            format,
        } => {
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
            let created = client.send("POST", "/api/v1/tokens", Some(body))?;
            print_created(&created, format)
        }
        TokenCommand::List {
            owner,
            name,
            scope,
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
            let body = json!({ "gracePeriodSeconds": grace.map_or(0, |g| g.as_secs()) });
            let created = client.send(
                "POST",
                &format!("/api/v1/tokens/{}/rotate", client::segment(&id)),
                Some(body),
            )?;
            print_created(&created, format)
        }
        TokenCommand::Revoke { id, format } => {
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
    }
}

fn print_one(t: &Value, format: Format) -> Result<(), CliError> {
    if format.json {
        output::print_json(t)
    } else {
        output::print_tokens(std::slice::from_ref(t))
    }
}

fn print_created(created: &Value, format: Format) -> Result<(), CliError> {
    if format.json {
        return output::print_json(created);
    }
    output::print_tokens(std::slice::from_ref(created))?;
    say!(
        "\nToken (shown once, store it now): {}",
        created["token"].as_str().unwrap_or("")
    )
}
