//! `keygate user …` and `keygate tenant …`. Passwords never come from flags (a flag shows in
//! `ps` and in shell history): they are generated and printed once, or read from stdin.

use std::io::Read;

use clap::Subcommand;
use serde_json::{json, Value};

use super::client::{segment, CliError, Client};
use super::output;
use super::Format;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user; a generated password is printed once.
    Create {
        /// The name the user logs in with.
        username: String,
        /// admin or member.
        #[arg(long, default_value = "member")]
        role: String,
        /// Read the password from stdin instead of generating one.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        format: Format,
    },
    /// List the users of your tenant.
    List {
        #[command(flatten)]
        format: Format,
    },
    /// Set a user's password (generated and printed once, or read from stdin); ends their web
    /// sessions.
    SetPassword {
        /// Username or user id.
        user: String,
        /// Read the new password from stdin instead of generating one.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        format: Format,
    },
    /// Make a user an admin or a member.
    SetRole {
        /// Username or user id.
        user: String,
        /// admin or member.
        role: String,
        #[command(flatten)]
        format: Format,
    },
    /// Delete a user and revoke every token they own.
    Delete {
        /// Username or user id.
        user: String,
        #[command(flatten)]
        format: Format,
    },
}

#[derive(Subcommand)]
pub enum TenantCommand {
    /// Create a tenant with its first admin (needs tenants:admin, held by the bootstrap token).
    /// The admin's password and an admin token are printed once.
    Create {
        /// The tenant's name, which is also its id.
        name: String,
        /// The first admin's username.
        #[arg(long, default_value = "admin")]
        admin_username: String,
        /// Read the first admin's password from stdin instead of generating one.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        format: Format,
    },
}

fn read_password_from_stdin() -> Result<String, CliError> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| CliError::Usage(format!("reading the password from stdin: {e}")))?;
    let p = s.trim_end_matches(['\r', '\n']).to_owned();
    if p.is_empty() {
        return Err(CliError::Usage("no password on stdin".into()));
    }
    Ok(p)
}

fn generate_password() -> String {
    let mut p = String::new();
    keygate_core::base62::random(24, &mut p);
    p
}

/// The id of a user named by id (`usr_…`) or by username.
fn resolve_user(client: &Client, user: &str) -> Result<String, CliError> {
    if user.starts_with("usr_") {
        return Ok(user.to_owned());
    }
    client
        .get_all("/api/v1/users", &[])?
        .into_iter()
        .find(|u| u["username"] == user)
        .and_then(|u| u["id"].as_str().map(str::to_owned))
        .ok_or_else(|| CliError::Api {
            status: 404,
            code: "not_found".into(),
            message: format!("No user named {user:?}"),
        })
}

fn print_users(users: &[Value], format: Format) -> Result<(), CliError> {
    if format.json {
        match users {
            [one] => output::print_json(one),
            many => output::print_json(&Value::Array(many.to_vec())),
        }
    } else {
        output::print_users(users)
    }
}

pub fn execute_user(client: &Client, cmd: UserCommand) -> Result<(), CliError> {
    match cmd {
        UserCommand::Create {
            username,
            role,
            password_stdin,
            format,
        } => {
            let mut body = json!({ "username": username, "role": role });
            if password_stdin {
                body["password"] = json!(read_password_from_stdin()?);
            }
            let created = client.send("POST", "/api/v1/users", Some(body))?;
            print_users(std::slice::from_ref(&created), format)?;
            if let (false, Some(p)) = (format.json, created["password"].as_str()) {
                say!("\nPassword (shown once, hand it on now): {p}")?;
            }
            Ok(())
        }
        UserCommand::List { format } => {
            let items = client.get_all("/api/v1/users", &[])?;
            if format.json {
                output::print_json(&Value::Array(items))
            } else {
                output::print_users(&items)
            }
        }
        UserCommand::SetPassword {
            user,
            password_stdin,
            format,
        } => {
            let id = resolve_user(client, &user)?;
            let (password, generated) = if password_stdin {
                (read_password_from_stdin()?, false)
            } else {
                (generate_password(), true)
            };
            let updated = client.send(
                "PATCH",
                &format!("/api/v1/users/{}", segment(&id)),
                Some(json!({ "password": password })),
            )?;
            if format.json {
                let mut out = updated;
                if generated {
                    out["password"] = json!(password);
                }
                output::print_json(&out)?;
            } else {
                say!(
                    "Password of {} changed; their web sessions have ended.",
                    updated["username"].as_str().unwrap_or(&user)
                )?;
                if generated {
                    say!("Password (shown once, hand it on now): {password}")?;
                }
            }
            Ok(())
        }
        UserCommand::SetRole { user, role, format } => {
            let id = resolve_user(client, &user)?;
            let updated = client.send(
                "PATCH",
                &format!("/api/v1/users/{}", segment(&id)),
                Some(json!({ "role": role })),
            )?;
            print_users(std::slice::from_ref(&updated), format)
        }
        UserCommand::Delete { user, format } => {
            let id = resolve_user(client, &user)?;
            client.send("DELETE", &format!("/api/v1/users/{}", segment(&id)), None)?;
            if format.json {
                output::print_json(&json!({ "deleted": id }))
            } else {
                say!("Deleted user {user} and revoked their tokens")
            }
        }
    }
}

pub fn execute_tenant(client: &Client, cmd: TenantCommand) -> Result<(), CliError> {
    match cmd {
        TenantCommand::Create {
            name,
            admin_username,
            password_stdin,
            format,
        } => {
            let mut body = json!({ "name": name, "adminUsername": admin_username });
            if password_stdin {
                body["adminPassword"] = json!(read_password_from_stdin()?);
            }
            let created = client.send("POST", "/api/v1/tenants", Some(body))?;
            if format.json {
                return output::print_json(&created);
            }
            say!("Created tenant {name}")?;
            output::print_users(std::slice::from_ref(&created["admin"]))?;
            if let Some(p) = created["adminPassword"].as_str() {
                say!("Admin password (shown once): {p}")?;
            }
            say!(
                "Admin token (shown once): {}",
                created["adminToken"].as_str().unwrap_or_default()
            )
        }
    }
}
