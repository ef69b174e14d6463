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

use std::net::SocketAddr;
use std::thread::JoinHandle;

use anyhow::Context;
use axum::Router;
use tokio::sync::{mpsc, oneshot, watch};

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
        let mut stopped = stopped.clone();
        let outcome_tx = outcome_tx.clone();
        let (release_tx, release_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("keygate-http-{i}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let served = async {
                        let listener = tokio::net::TcpListener::from_std(socket)?;
                        let graceful = async move {
                            let _ = stopped.wait_for(|stop| *stop).await;
                        };
                        axum::serve(
                            listener,
                            app.into_make_service_with_connect_info::<SocketAddr>(),
                        )
                        .with_graceful_shutdown(graceful)
                        .await
                    }
                    .await;
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
