//! Last use written behind: verification queues at most one message per token per
//! `--last-use-resolution` (a minute by default); a background task folds them and writes one batch
//! per interval. A verify never waits for a write. A crash loses at most one interval of last-use
//! times, never a token change.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::model::LastUse;
use crate::store::Store;

enum Msg {
    Used(LastUse),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct LastUseQueue {
    tx: mpsc::UnboundedSender<Msg>,
}

impl LastUseQueue {
    /// Starts the writer task on the current runtime.
    pub fn start(store: Arc<dyn Store>, interval: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, rx, interval));
        Self { tx }
    }

    pub fn push(&self, u: LastUse) {
        // Only fails when the writer has stopped (shutdown): then there is nothing to do.
        let _ = self.tx.send(Msg::Used(u));
    }

    /// Writes everything queued so far; used at shutdown and by tests.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::UnboundedReceiver<Msg>, interval: Duration) {
    let mut pending: HashMap<String, LastUse> = HashMap::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut flush_ack = None;
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(Msg::Used(u)) => { fold(&mut pending, u); continue; }
                Some(Msg::Flush(ack)) => flush_ack = Some(ack),
                None => {}
            },
            _ = tick.tick() => {}
        }
        // Drain what is already queued so the batch is as complete as it can be.
        while let Ok(msg) = rx.try_recv() {
            match msg {
                Msg::Used(u) => fold(&mut pending, u),
                Msg::Flush(ack) => {
                    if let Some(prev) = flush_ack.replace(ack) {
                        let _ = prev.send(());
                    }
                }
            }
        }
        if !pending.is_empty() {
            let batch: Vec<LastUse> = pending.values().cloned().collect();
            match store.record_last_use(&batch).await {
                Ok(()) => {
                    pending.clear();
                    // A burst of first uses (a cold start under load) must not leave its
                    // high-water mark allocated for good.
                    pending.shrink_to(1024);
                }
                // Keep the batch and retry next tick: the database may be back by then.
                Err(e) => {
                    tracing::warn!(error = %e, batch = batch.len(), "writing last-use times failed; will retry")
                }
            }
        }
        if let Some(ack) = flush_ack {
            let _ = ack.send(());
        }
        if rx.is_closed() && rx.is_empty() {
            return;
        }
    }
}

fn fold(pending: &mut HashMap<String, LastUse>, u: LastUse) {
    match pending.get_mut(u.id.as_str()) {
        Some(prev) if prev.at >= u.at => {}
        Some(prev) => *prev = u,
        None => {
            pending.insert(u.id.as_str().to_owned(), u);
        }
    }
}
