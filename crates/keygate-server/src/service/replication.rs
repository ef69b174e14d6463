//! Replication for `keygate-client` replicas: a tenant's tokens page by page, and the changes
//! after a cursor, waited for (long-poll) when there are none yet. Pruning of old changes runs
//! here too.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use keygate_store::{unix_ms, ChangeRead, ReplicatedChange, SnapshotPage, Store};
use time::OffsetDateTime;

use crate::auth::{Authorized, TokensReplicate};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub const DEFAULT_SNAPSHOT_PAGE: u32 = 5_000;
pub const DEFAULT_CHANGES_PAGE: u32 = 1_000;
pub const MAX_PAGE: u32 = 10_000;
/// Below the minute after which proxies commonly cut an idle request.
pub const MAX_WAIT: Duration = Duration::from_secs(55);

/// A position in the change stream of one database: `<log id>.<number>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub log_id: String,
    pub seq: i64,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.log_id, self.seq)
    }
}

impl FromStr for Cursor {
    type Err = ApiError;

    fn from_str(s: &str) -> Result<Self, ApiError> {
        let bad = || {
            ApiError::BadRequest(
                "after must be the cursor of a snapshot or of a change answer".into(),
            )
        };
        let (log_id, seq) = s.rsplit_once('.').ok_or_else(bad)?;
        let log_ok = !log_id.is_empty()
            && log_id.len() <= 32
            && log_id.bytes().all(|b| b.is_ascii_alphanumeric());
        let seq = seq.parse::<i64>().ok().filter(|n| *n >= 0);
        match seq {
            Some(seq) if log_ok => Ok(Cursor {
                log_id: log_id.to_owned(),
                seq,
            }),
            _ => Err(bad()),
        }
    }
}

pub fn page_limit(limit: Option<u32>, default: u32) -> ApiResult<u32> {
    match limit.unwrap_or(default) {
        n @ 1..=MAX_PAGE => Ok(n),
        _ => Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE}"
        ))),
    }
}

pub async fn snapshot(
    state: &AppState,
    caller: &Authorized<TokensReplicate>,
    after: Option<i64>,
    limit: u32,
) -> ApiResult<(Cursor, SnapshotPage)> {
    let page = state
        .store
        .replication_snapshot(caller.tenant_id(), after, limit)
        .await?;
    let cursor = Cursor {
        log_id: page.head.log_id.clone(),
        seq: page.head.seq,
    };
    Ok((cursor, page))
}

/// What a change-stream answer carries.
pub struct Changes {
    pub cursor: Cursor,
    pub changes: Vec<ReplicatedChange>,
    pub more: bool,
}

/// The tenant's changes after `after`; when there are none, waits up to `wait` for some. Other
/// tenants' changes move the cursor on without ending the wait, so a quiet tenant's replica on
/// a busy deployment is not woken for nothing. A stopping server answers at once.
pub async fn changes(
    state: &AppState,
    caller: &Authorized<TokensReplicate>,
    after: Cursor,
    wait: Duration,
    limit: u32,
) -> ApiResult<Changes> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut stopping = state.stopping.subscribe();
    let mut cursor = after;
    loop {
        // Subscribed before the read: a commit after it wakes the wait below.
        let mut signal = state.store.replication_signal();
        let read = state
            .store
            .replication_changes(caller.tenant_id(), &cursor.log_id, cursor.seq, limit)
            .await?;
        let ChangeRead::Changes {
            log_id,
            through,
            changes,
            more,
        } = read
        else {
            return Err(ApiError::CursorTooOld);
        };
        cursor = Cursor {
            log_id,
            seq: through,
        };
        if !changes.is_empty() || more || *stopping.borrow() {
            return Ok(Changes {
                cursor,
                changes,
                more,
            });
        }
        tokio::select! {
            woken = signal.changed() => {
                if woken.is_err() {
                    // The store is gone: the server is stopping.
                    return Ok(Changes { cursor, changes, more });
                }
            }
            _ = stopping.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {
                return Ok(Changes { cursor, changes, more });
            }
        }
    }
}

/// Deletes changes older than `retention`, every tenth of it (at most once a minute).
/// Replicas that were away longer take a new snapshot.
pub fn start_pruning(store: Arc<dyn Store>, retention: Duration) -> tokio::task::JoinHandle<()> {
    let every = (retention / 10).clamp(Duration::from_millis(100), Duration::from_secs(60));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let before = unix_ms(OffsetDateTime::now_utc()) - retention.as_millis() as i64;
            if let Err(e) = store.prune_replication(before).await {
                tracing::warn!(error = %e, "pruning the replication log failed; trying again later");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_written() {
        let c = Cursor {
            log_id: "0a1b2c3d4e5f".into(),
            seq: 42,
        };
        assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
    }

    #[test]
    fn malformed_cursors_are_refused() {
        for bad in [
            "", "42", ".42", "abc.", "abc.-1", "abc.x", "a-b.1", "abc.1.2x",
        ] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad:?}");
        }
    }
}
