//! HTTP serving on one single-threaded Tokio runtime per worker thread, every worker accepting
//! from the same listening socket, as nginx's worker processes do.
//!
//! Why not one multi-threaded runtime: hyper hands a request body to its handler through a
//! channel, and the connection's task wakes itself while it is running. Tokio's multi-threaded
//! scheduler treats such a wake as a yield and wakes a parked worker to steal it, so every
//! `POST /api/v1/verify` cost a futex wake and a context switch on the other core: on the
//! 2-core benchmark machine a third of the CPU per request (BENCHMARKS.md). On a runtime of its
//! own, a connection's request is read, verified and answered on one thread.
//!
//! The database pools, the last-use writer, the group committer and the change feed live on the
//! caller's runtime; the workers' runtimes stay alive until [`Workers::join`], which `keygate
//! serve` calls after closing the database, so a connection a pool opened from a worker stays
//! usable until then.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_io_timeout::TimeoutStream;
use tower::ServiceExt;

use crate::config::ConnectionLimits;

/// The running workers; [`Workers::drain`] stops them.
pub struct Workers {
    stop: watch::Sender<bool>,
    /// Each worker's outcome, sent when it stops serving.
    outcomes: mpsc::Receiver<std::io::Result<()>>,
    running: usize,
    release: Vec<oneshot::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

/// Starts `count` workers (at least one) serving `app` on `listener`.
pub fn start(
    listener: tokio::net::TcpListener,
    app: Router,
    count: usize,
    limits: ConnectionLimits,
) -> anyhow::Result<Workers> {
    let count = count.max(1);
    let listener = listener
        .into_std()
        .context("taking the listening socket for the HTTP workers")?;
    let (stop, stopped) = watch::channel(false);
    let (outcome_tx, outcomes) = mpsc::channel(count);
    let mut workers = Workers {
        stop,
        outcomes,
        running: 0,
        release: Vec::with_capacity(count),
        threads: Vec::with_capacity(count),
    };
    for i in 0..count {
        let socket = listener
            .try_clone()
            .context("sharing the listening socket")?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting an HTTP worker's runtime")?;
        let app = app.clone();
        let stopped = stopped.clone();
        let outcome_tx = outcome_tx.clone();
        let (release_tx, release_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("keygate-http-{i}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let served = serve(socket, app, limits, stopped).await;
                    let _ = outcome_tx.send(served).await;
                    // Kept running until the main runtime has closed the database: see the
                    // module's comment.
                    let _ = release_rx.await;
                })
            })
            .context("starting an HTTP worker thread")?;
        workers.running += 1;
        workers.release.push(release_tx);
        workers.threads.push(thread);
    }
    Ok(workers)
}

/// One worker's accept loop: every connection served by hyper with the limits, until `stopped`;
/// then the connections are closed once their requests in flight are answered.
///
/// hyper's own builder, not `axum::serve`: that sets no timer, so a client could take as long
/// as it liked to send its headers or keep an idle connection open, and it takes no limits.
async fn serve(
    socket: std::net::TcpListener,
    app: Router,
    limits: ConnectionLimits,
    mut stopped: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(socket)?;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.client_timeout)
        .max_buf_size(limits.max_header_bytes);
    // Each connection holds a receiver of `closing`; when all are dropped, all are closed.
    let (closing, connections) = watch::channel(());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            _ = stopped.wait_for(|stop| *stop) => break,
        };
        tracing::trace!(%peer, "connection accepted");
        let conn = http.serve_connection(io(stream, limits), service(&app, peer));
        let mut shutdown = connections.clone();
        tokio::spawn(async move {
            let mut conn = pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = shutdown.changed() => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    drop(listener);
    drop(connections);
    let _ = closing.send(());
    closing.closed().await;
    Ok(())
}

/// The connection with a write timeout: hyper has none, and a client that never reads its
/// answer would otherwise hold the connection for as long as it lives.
fn io(
    stream: TcpStream,
    limits: ConnectionLimits,
) -> TokioIo<std::pin::Pin<Box<TimeoutStream<TcpStream>>>> {
    let mut stream = TimeoutStream::new(stream);
    stream.set_write_timeout(Some(limits.client_timeout));
    TokioIo::new(Box::pin(stream))
}

/// The router, with the peer's address where `ConnectInfo` extractors find it.
fn service(
    app: &Router,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<axum::response::Response, Infallible>>
                 + Send
                 + 'static,
> + Clone {
    let app = app.clone();
    hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(req)
    })
}

/// A failed accept: a connection that went away before it was accepted is nothing; running
/// out of file descriptors is, and retrying at once would spin.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

impl Workers {
    /// Resolves only if a worker stops serving before it was told to: that is an error.
    pub async fn failed(&mut self) -> anyhow::Error {
        let outcome = self.outcomes.recv().await;
        self.running = self.running.saturating_sub(1);
        match outcome {
            Some(Err(e)) => anyhow::Error::from(e).context("serving HTTP"),
            Some(Ok(())) => anyhow::anyhow!("an HTTP worker stopped serving"),
            None => anyhow::anyhow!("the HTTP workers stopped unexpectedly"),
        }
    }

    /// Stops accepting and waits for the requests in flight to be answered; the first error a
    /// worker met, if any. The workers' runtimes keep running until [`Workers::join`].
    pub async fn drain(&mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        let mut first_error = None;
        while self.running > 0 {
            let outcome = self.outcomes.recv().await;
            self.running = self.running.saturating_sub(1);
            let error = match outcome {
                Some(Ok(())) => continue,
                Some(Err(e)) => anyhow::Error::from(e).context("serving HTTP"),
                None => anyhow::anyhow!("the HTTP workers stopped unexpectedly"),
            };
            first_error.get_or_insert(error);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Ends the workers' runtimes and threads.
    pub async fn join(self) {
        drop(self.release);
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}
