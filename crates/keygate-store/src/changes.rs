//! Cache coherence across nodes sharing one PostgreSQL.
//!
//! Every token write adds the token's hash to `token_changes` in its own transaction and sends
//! `NOTIFY keygate_token_changes`. Each node runs [`follow`]: on a notification, and at the
//! latest every `poll` interval, it reads the change rows of the recent past (by the database's
//! clock, with an overlap that covers transactions committing out of order) and drops those
//! tokens from its cache. So a change is seen elsewhere in milliseconds when notifications flow,
//! and within one poll interval when they do not (a dropped listener connection, a restart).
//! After an outage longer than the change rows are kept, the node clears its whole cache.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use keygate_core::TokenHash;
use sqlx::postgres::PgListener;

use crate::backend::CHANGES_CHANNEL;
use crate::sql::SqlStore;
use crate::verifier::Verifier;

/// Change rows older than this are deleted; a node that has not polled for longer clears its
/// cache instead of trusting it.
const RETENTION_MS: i64 = 3_600_000;
/// Re-read window: longer than any token-write transaction takes to commit.
const OVERLAP_MS: i64 = 10_000;
const PRUNE_EVERY: Duration = Duration::from_secs(60);

impl SqlStore {
    /// Starts following other nodes' changes, if this store is shared (PostgreSQL). `poll` bounds
    /// how late a change is seen when notifications are lost.
    pub fn follow_changes(
        &self,
        verifier: Arc<Verifier>,
        poll: Duration,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let url = self.feed_url.clone()?;
        Some(tokio::spawn(follow(self.clone(), url, verifier, poll)))
    }
}

struct Follower {
    store: SqlStore,
    verifier: Arc<Verifier>,
    /// Database time of the last successful poll.
    last_ok: Option<i64>,
    /// Change rows already applied, with their time, so the overlap does not re-apply them.
    seen: HashMap<i64, i64>,
}

async fn follow(store: SqlStore, url: String, verifier: Arc<Verifier>, poll: Duration) {
    let mut f = Follower {
        store,
        verifier,
        last_ok: None,
        seen: HashMap::new(),
    };
    let mut listener: Option<PgListener> = None;
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    loop {
        if listener.is_none() {
            listener = listen(&url).await;
            if listener.is_some() {
                // Whatever happened while we were not listening.
                f.poll().await;
            }
        }
        tokio::select! {
            n = async { listener.as_mut().expect("checked above").try_recv().await }, if listener.is_some() => {
                match n {
                    Ok(Some(_)) => {
                        // A burst of writes is one poll, not one per notification.
                        let l = listener.as_mut().expect("it just answered");
                        while l.next_buffered().is_some() {}
                        // Also the word that change rows were numbered (sql/replication.rs):
                        // readers of the replicas' stream look again.
                        f.store.wake_replication_readers();
                        f.poll().await
                    }
                    // The connection dropped; sqlx reconnects and listens again on the next
                    // call. Poll, since notifications may have been lost meanwhile.
                    Ok(None) => f.poll().await,
                    Err(e) => {
                        tracing::warn!(error = %e, "change listener lost its connection; polling until it is back");
                        listener = None;
                        tick.tick().await;
                    }
                }
            }
            _ = tick.tick() => f.poll().await,
            _ = prune.tick() => f.prune().await,
        }
    }
}

async fn listen(url: &str) -> Option<PgListener> {
    let mut l = PgListener::connect(url).await.ok()?;
    l.listen(CHANGES_CHANNEL).await.ok()?;
    Some(l)
}

impl Follower {
    async fn poll(&mut self) {
        let now: i64 = match sqlx::query_scalar(
            "SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint",
        )
        .fetch_one(&self.store.reader)
        .await
        {
            Ok(t) => t,
            Err(_) => return, // Unreachable: keep last_ok, catch up when it is back.
        };
        if self.last_ok.is_some_and(|t| now - t > RETENTION_MS) {
            tracing::warn!("out of touch with the database for longer than changes are kept: clearing the token cache");
            self.verifier.clear_cache();
            self.seen.clear();
        }
        let since = self.last_ok.unwrap_or(now).min(now) - OVERLAP_MS;
        let rows: Vec<(i64, i64, Vec<u8>)> =
            match sqlx::query_as("SELECT id, at, hash FROM token_changes WHERE at > $1")
                .bind(since)
                .fetch_all(&self.store.reader)
                .await
            {
                Ok(r) => r,
                Err(_) => return,
            };
        let mut fresh = Vec::new();
        for (id, at, hash) in rows {
            if self.seen.insert(id, at).is_none() {
                fresh.extend(TokenHash::from_slice(&hash));
            }
        }
        if !fresh.is_empty() {
            self.verifier.invalidate(&fresh);
            self.store.wake_replication_readers();
        }
        self.seen.retain(|_, at| *at > since);
        self.last_ok = Some(now);
    }

    async fn prune(&self) {
        let _ = sqlx::query(
            "DELETE FROM token_changes \
             WHERE at < (extract(epoch from clock_timestamp()) * 1000)::bigint - $1",
        )
        .bind(RETENTION_MS)
        .execute(&self.store.writer)
        .await;
    }
}
