//! Writing counts behind: every flush interval the counter's slots are taken out and added to
//! the database's rows in one batch; a batch that fails goes back into the counter and is
//! retried with the next. A graceful stop writes everything; a crash loses at most one
//! interval's counts. The same task prunes rows past retention, once an hour.

use std::sync::{Arc, Weak};
use std::time::Duration;

use keygate_core::TokenId;
use tokio::sync::Mutex;

use crate::store::Store;
use crate::usage::{Counted, UsageCounter, DAY_MS, DAY_RETENTION_DAYS, MINUTE_RETENTION_DAYS};

const PRUNE_EVERY: Duration = Duration::from_secs(3600);

pub struct UsageWriter {
    counter: UsageCounter,
    store: Arc<dyn Store>,
    /// One write at a time: a flush asked for (shutdown, tests) waits for the periodic one.
    writing: Mutex<()>,
    enabled: bool,
}

impl UsageWriter {
    /// Starts the writer on the current runtime. With `enabled` false nothing is counted (for
    /// deployments that want no analytics, and the benchmark that measures what counting costs),
    /// and the task still prunes: rows other nodes or earlier runs wrote age out all the same.
    pub fn start(store: Arc<dyn Store>, interval: Duration, enabled: bool) -> Arc<Self> {
        let writer = Arc::new(Self {
            counter: UsageCounter::default(),
            store,
            writing: Mutex::new(()),
            enabled,
        });
        tokio::spawn(run(Arc::downgrade(&writer), interval));
        writer
    }

    pub fn add(&self, token_id: &TokenId, tenant_id: &Arc<str>, now_ms: i64, outcome: Counted) {
        if self.enabled {
            self.counter.add(token_id, tenant_id, now_ms, outcome);
        }
    }

    /// Writes what has been counted so far. On failure the counts stay for the next attempt.
    pub async fn flush(&self) -> crate::store::Result<()> {
        let _one = self.writing.lock().await;
        let batch = self.counter.take();
        if batch.is_empty() {
            return Ok(());
        }
        match self.store.record_usage(&batch).await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.counter.put_back(batch);
                Err(e)
            }
        }
    }

    /// Token-minutes counted and not yet written.
    pub fn pending(&self) -> usize {
        self.counter.pending()
    }

    /// Deletes rows past retention, as of `now_ms`.
    pub async fn prune(&self, now_ms: i64) -> crate::store::Result<()> {
        self.store
            .prune_usage(
                now_ms - MINUTE_RETENTION_DAYS * DAY_MS,
                now_ms - DAY_RETENTION_DAYS * DAY_MS,
            )
            .await
    }
}

async fn run(writer: Weak<UsageWriter>, interval: Duration) {
    // The first write one interval after start, not at once: nothing is counted yet.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune: Option<tokio::time::Instant> = None;
    loop {
        tick.tick().await;
        // The verifier is gone: its last flush was its own (shutdown).
        let Some(writer) = writer.upgrade() else {
            return;
        };
        if let Err(e) = writer.flush().await {
            tracing::warn!(error = %e, pending = writer.pending(), "writing usage counts failed; will retry");
        }
        if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(tokio::time::Instant::now());
            let now_ms = crate::model::unix_ms(time::OffsetDateTime::now_utc());
            if let Err(e) = writer.prune(now_ms).await {
                tracing::warn!(error = %e, "pruning old usage counts failed; will retry in an hour");
            }
        }
    }
}
