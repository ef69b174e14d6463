//! The background task: takes snapshots, follows the change stream with long-polls, and
//! reconnects with backoff. A change is applied as soon as its answer arrives and the next
//! long-poll leaves at once, so a revoke reaches the replica one round trip after keygate
//! commits it.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use crate::error::Error;
use crate::held::Held;
use crate::http::Keygate;
use crate::options::Options;
use crate::shared::Shared;
use crate::wire::{ChangesPage, PageKey};

pub(crate) struct Snapshot {
    /// The first page's cursor: the change stream replays whatever changed while paging.
    pub cursor: String,
    pub prefix: String,
    pub unreadable: u64,
}

/// Pages through a snapshot into `held`, then forgets every token it did not name.
pub(crate) async fn snapshot_into(
    keygate: &Keygate,
    held: &Held,
    page_size: u32,
) -> Result<Snapshot, Error> {
    let mut seen = HashSet::with_capacity(held.len());
    let mut after: Option<PageKey> = None;
    let mut first: Option<(String, String)> = None;
    let mut unreadable = 0;
    loop {
        let page = keygate.snapshot_page(after.as_ref(), page_size).await?;
        if first.is_none() {
            first = Some((page.cursor, page.prefix));
        }
        for token in page.tokens {
            match held.upsert(token) {
                Ok(hash) => {
                    seen.insert(hash);
                }
                Err(e) => {
                    unreadable += 1;
                    tracing::warn!(error = %e, "keygate-client: a token could not be held; it is refused");
                }
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    held.keep_only(&seen);
    let (cursor, prefix) = first.expect("at least one page");
    Ok(Snapshot {
        cursor,
        prefix,
        unreadable,
    })
}

/// Exponential backoff with jitter: each wait is drawn from the upper half of a ceiling that
/// doubles per failure, so replicas that lost keygate together do not return together.
struct Backoff {
    min: Duration,
    max: Duration,
    ceiling: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            ceiling: min,
        }
    }

    fn next(&mut self) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = (self.ceiling * 2).min(self.max);
        let ms = ceiling.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(ms / 2..=ms)).max(self.min)
    }

    fn reset(&mut self) {
        self.ceiling = self.min;
    }
}

/// Applies one answer of the change stream; returns its cursor.
pub(crate) fn apply_page(shared: &Shared, page: ChangesPage) -> String {
    let c = &shared.counters;
    let n = page.changes.len() as u64;
    for change in page.changes {
        if let Err(e) = shared.held.apply(change) {
            c.unreadable.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "keygate-client: a token could not be held; it is refused");
        }
    }
    c.changes_applied.fetch_add(n, Ordering::Relaxed);
    shared.heard(&page.cursor);
    page.cursor
}

/// Runs until the replica is dropped (the task is aborted then).
pub(crate) async fn follow(shared: Arc<Shared>, options: Options) {
    let keygate = shared.keygate.as_ref().expect("a connected replica");
    let c = &shared.counters;
    let mut backoff = Backoff::new(options.min_backoff, options.max_backoff);
    let mut cursor = shared.cursor();
    loop {
        match keygate
            .changes(&cursor, options.wait, options.changes_limit)
            .await
        {
            Ok(page) => {
                cursor = apply_page(&shared, page);
                backoff.reset();
            }
            Err(Error::CursorTooOld) => {
                tracing::warn!("keygate-client: the cursor is too old; taking a fresh snapshot");
                cursor = resync(&shared, keygate, &options, &mut backoff).await;
            }
            Err(e) => {
                c.errors.fetch_add(1, Ordering::Relaxed);
                c.reconnects.fetch_add(1, Ordering::Relaxed);
                let wait = backoff.next();
                tracing::warn!(error = %e, retry_in = ?wait, "keygate-client: the change stream failed");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Takes snapshots until one succeeds; returns its cursor.
async fn resync(
    shared: &Shared,
    keygate: &Keygate,
    options: &Options,
    backoff: &mut Backoff,
) -> String {
    let c = &shared.counters;
    loop {
        match snapshot_into(keygate, &shared.held, options.page_size).await {
            Ok(snap) => {
                if snap.prefix != shared.prefix.as_str() {
                    // Tokens are parsed with the prefix of the first snapshot; a deployment that
                    // changed its prefix needs a restart of the application.
                    tracing::error!(
                        was = shared.prefix.as_str(),
                        now = snap.prefix,
                        "keygate-client: keygate's token prefix changed"
                    );
                }
                c.snapshots.fetch_add(1, Ordering::Relaxed);
                c.resyncs.fetch_add(1, Ordering::Relaxed);
                c.unreadable.fetch_add(snap.unreadable, Ordering::Relaxed);
                shared.heard(&snap.cursor);
                backoff.reset();
                return snap.cursor;
            }
            Err(e) => {
                c.errors.fetch_add(1, Ordering::Relaxed);
                let wait = backoff.next();
                tracing::warn!(error = %e, retry_in = ?wait, "keygate-client: a snapshot failed");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_its_bounds_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let waits: Vec<Duration> = (0..10).map(|_| b.next()).collect();
        assert!(waits[0] >= Duration::from_millis(100) && waits[0] <= Duration::from_millis(100));
        assert!(waits[1] >= Duration::from_millis(100) && waits[1] <= Duration::from_millis(200));
        assert!(waits[3] >= Duration::from_millis(400) && waits[3] <= Duration::from_millis(800));
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(5)));
        assert!(waits[9] >= Duration::from_millis(2500));
        b.reset();
        assert_eq!(b.next(), Duration::from_millis(100));
    }
}
