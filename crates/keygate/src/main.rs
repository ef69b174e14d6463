//! `keygate`: the service (`keygate serve`) and its command-line client (`keygate token …`),
//! in one binary.

mod cli;
mod config;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Every request allocates a little (headers, extensions, the answer) on whichever worker
/// thread runs it; mimalloc's thread-local free lists make that cheaper than glibc's arenas
/// (BENCHMARKS.md has the before and after).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "keygate",
    version,
    about = "Self-hosted API tokens: mint, verify, scope, rotate and revoke"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve(Box<config::ServeArgs>),
    /// Manage tokens over the REST API (reads KEYGATE_URL and KEYGATE_TOKEN).
    #[command(subcommand)]
    Token(cli::TokenCommand),
    /// Manage the users of your tenant (needs users:read / users:write).
    #[command(subcommand)]
    User(cli::UserCommand),
    /// Create tenants (needs tenants:admin, held by the bootstrap token).
    #[command(subcommand)]
    Tenant(cli::TenantCommand),
    /// Print a fresh token in this deployment's format, e.g. for KEYGATE_BOOTSTRAP_TOKEN.
    GenToken {
        #[arg(long, env = "KEYGATE_TOKEN_PREFIX", default_value = "kg")]
        token_prefix: String,
    },
    /// Print the OpenAPI document of the REST API.
    Openapi,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::main(*args),
        Command::Token(cmd) => cli::run(cli::Command::Token(cmd)),
        Command::User(cmd) => cli::run(cli::Command::User(cmd)),
        Command::Tenant(cmd) => cli::run(cli::Command::Tenant(cmd)),
        Command::GenToken { token_prefix } => {
            match keygate_core::TokenPrefix::parse(&token_prefix) {
                Ok(p) => {
                    println!("{}", keygate_core::PlainToken::mint(&p).1.expose());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: --token-prefix {token_prefix:?}: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Openapi => {
            println!(
                "{}",
                keygate_server::openapi(keygate_server::compat::Compat::all())
                    .to_pretty_json()
                    .expect("the OpenAPI document serialises")
            );
            ExitCode::SUCCESS
        }
    }
}
