//! `keygate serve`: open the database, bootstrap on first start, serve HTTP until SIGINT or
//! SIGTERM, then write pending last-use times and close.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use keygate_server::service::bootstrap;
use keygate_store::{SqlStore, Store};

use crate::config::{secret_from_env, Config, ServeArgs};

/// How late another node's change may be seen when PostgreSQL notifications are lost: the
/// follower polls recent changes this often in any case.
const CHANGE_POLL: std::time::Duration = std::time::Duration::from_secs(1);

pub fn main(args: ServeArgs) -> ExitCode {
    let config = match args.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = init_tracing(&config.process.log) {
        eprintln!("error: --log {:?}: {e}", config.process.log);
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)?;
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    Ok(())
}

async fn run(config: Config) -> anyhow::Result<()> {
    let process = &config.process;
    // Signals first: once keygate says it is listening, SIGTERM must mean a graceful stop.
    let shutdown = shutdown_signal().context("installing signal handlers")?;
    // The port next: a start that cannot listen must fail before the first-start bootstrap,
    // whose secrets are shown only once.
    let listener = tokio::net::TcpListener::bind(process.listen)
        .await
        .with_context(|| format!("cannot listen on {}", process.listen))?;
    let grpc_listener = match process.grpc_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--grpc-listen: cannot listen on {addr}"))?,
        ),
        None => None,
    };
    if process.default_database {
        create_private_dir(&process.data_dir)?;
    }
    let db = &process.database;
    let sql = SqlStore::open(db.expose())
        .await
        .with_context(|| format!("opening the database {db}"))?;
    tracing::info!(database = %db, "database ready");
    let store: Arc<dyn Store> = Arc::new(sql.clone());

    let given = bootstrap::Given {
        token: secret_from_env("KEYGATE_BOOTSTRAP_TOKEN")?
            .map(keygate_core::PlainToken::from_client),
        admin_password: secret_from_env("KEYGATE_ADMIN_PASSWORD")?.map(Into::into),
    };
    let given_token = given.token.clone();
    match bootstrap::run(store.as_ref(), &config.server.prefix, given).await? {
        Some(generated) => {
            let mut out = std::io::stdout().lock();
            if let Some(p) = &generated.admin_password {
                writeln!(out, "Admin password (shown once): {p}")?;
            }
            if let Some(t) = &generated.token {
                writeln!(out, "Admin token (shown once): {}", t.expose())?;
            }
            out.flush()?;
            tracing::info!(
                "first start: created tenant `default`, user `admin` and the bootstrap token"
            );
        }
        None => {
            let hash = given_token.map(|t| t.hash());
            if let Some(hash) = hash {
                if store.token_by_hash(&hash).await?.is_none() {
                    tracing::warn!(
                        "KEYGATE_BOOTSTRAP_TOKEN is not a token of this database (it was initialised \
                         earlier, with another token); it is ignored"
                    );
                }
            }
        }
    }

    let limiter = match &process.redis {
        Some(url) => {
            let limiter = keygate_store::ratelimit::RateLimiter::redis(url.expose())
                .await
                .with_context(|| format!("--redis-url {url}"))?;
            tracing::info!(redis = %url, "rate limits are counted in Redis");
            limiter
        }
        None => keygate_store::ratelimit::RateLimiter::local(),
    };
    let state = keygate_server::state(store, config.server, config.verifier, limiter);
    // Several nodes on one PostgreSQL: learn of the others' changes (no-op on SQLite).
    let _follower = sql.follow_changes(state.verifier.clone(), CHANGE_POLL);
    let _pruner = keygate_server::service::replication::start_pruning(
        state.store.clone(),
        state.config.replication_retention,
    );
    let expiry_scan = keygate_server::service::expiry::start(state.clone());
    let webhooks = keygate_server::webhooks::start(state.store.clone(), state.config.webhooks)
        .context("starting the webhook dispatcher")?;
    let addr = listener.local_addr()?;
    let app = keygate_server::router(state.clone());
    let limits = state.config.connection_limits;
    let mut workers = keygate_server::workers::start(listener, app, process.http_workers, limits)?;
    tracing::info!(count = process.http_workers, "HTTP workers started");
    let (stop_grpc, grpc_stopped) = tokio::sync::watch::channel(false);
    let grpc = match grpc_listener {
        Some(listener) => {
            let addr = listener.local_addr()?;
            let mut stopped = grpc_stopped;
            let stop = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            let served = keygate_server::ext_authz::serve(
                listener,
                state.clone(),
                limits.client_timeout,
                stop,
            );
            tracing::info!("ext_authz gRPC listening on {addr}");
            Some(tokio::spawn(served))
        }
        None => None,
    };
    // The last word on the line is the address: supervisors and the tests read it.
    tracing::info!("keygate listening on http://{addr}");
    let served = tokio::select! {
        _ = shutdown => {
            state.begin_stopping();
            workers.drain().await
        }
        e = workers.failed() => {
            let _ = workers.drain().await;
            Err(e)
        }
    };
    // The gRPC calls under way finish before the verifier's pending writes are flushed.
    let _ = stop_grpc.send(true);
    if let Some(grpc) = grpc {
        match grpc.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "ext_authz gRPC server failed"),
            Err(e) => tracing::error!(error = %e, "ext_authz gRPC server panicked"),
        }
    }
    // An attempt in flight ends within --webhook-timeout; what is pending stays in the outbox.
    webhooks.stop().await;
    tracing::info!(
        "shutting down: writing pending last-use times and usage counts, returning unspent credits"
    );
    state.verifier.shutdown().await;
    expiry_scan.stop().await;
    sql.close().await;
    workers.join().await;
    served
}

/// The data directory holds token hashes and password hashes: readable by its owner only.
fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting permissions of {}", dir.display()))?;
    }
    Ok(())
}

/// Registers SIGINT and SIGTERM handlers now (registration happens on creation, not on first
/// poll) and returns the future that resolves on either.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
