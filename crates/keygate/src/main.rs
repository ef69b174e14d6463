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
    /// Send events to your systems: webhook endpoints and their deliveries (needs
    /// webhooks:read / webhooks:write).
    #[command(subcommand)]
    Webhook(cli::WebhookCommand),
    /// Print a fresh token in this deployment's format, e.g. for KEYGATE_BOOTSTRAP_TOKEN.
    GenToken {
        #[arg(long, env = "KEYGATE_TOKEN_PREFIX", default_value = "kg")]
        token_prefix: String,
        /// How many, one per line (the flood benchmark asks for many).
        #[arg(long, default_value_t = 1)]
        count: usize,
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
        Command::Webhook(cmd) => cli::run(cli::Command::Webhook(cmd)),
        Command::GenToken {
            token_prefix,
            count,
        } => match keygate_core::TokenPrefix::parse(&token_prefix) {
            Ok(p) => {
                use std::io::Write;
                let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                for _ in 0..count {
                    if writeln!(out, "{}", keygate_core::PlainToken::mint(&p).1.expose()).is_err() {
                        return ExitCode::FAILURE;
                    }
                }
                match out.flush() {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(_) => ExitCode::FAILURE,
                }
            }
            Err(e) => {
                eprintln!("error: --token-prefix {token_prefix:?}: {e}");
                ExitCode::from(2)
            }
        },
        Command::Openapi => cli::print_document(
            &keygate_server::openapi(keygate_server::config::Compat::all())
                .to_pretty_json()
                .expect("the OpenAPI document serialises"),
        ),
    }
}
