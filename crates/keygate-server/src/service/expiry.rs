//! The expiry scan: every `--expiry-scan-interval` each node asks the store for the expiry
//! notices due (`keygate_store::expiry` decides which), and builds their events here, so that
//! `token.expiring` and `token.expired` carry the token as the API shows it. Any number of
//! nodes may scan at once: the store hands each due token to one of them.

use std::time::Duration;

use keygate_core::EventType;
use keygate_store::expiry::{DueNotice, Notice};
use keygate_store::{NewEvent, StoreError};
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::service::events;
use crate::state::AppState;

/// Tokens handled per transaction: bounds how long one scan holds its rows (and, on SQLite,
/// the writer).
const BATCH: u32 = 200;

/// The running scan; [`ExpiryScan::stop`] ends it.
pub struct ExpiryScan {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ExpiryScan {
    /// Returns once a batch under way has committed and the scan has ended: the database may
    /// then be closed.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts scanning on the current runtime.
pub fn start(state: AppState) -> ExpiryScan {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.config.expiry_scan_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
            if let Err(e) = send_due(&state, OffsetDateTime::now_utc(), &stopped).await {
                tracing::warn!(error = %e, "the expiry scan failed; trying again later");
            }
        }
    });
    ExpiryScan { stop, task }
}

/// Every notice due at `now`, batch after batch, unless told to stop in between.
async fn send_due(
    state: &AppState,
    now: OffsetDateTime,
    stopped: &watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let thresholds: Vec<u64> = state
        .config
        .expiry_warnings
        .iter()
        .map(Duration::as_secs)
        .collect();
    let build = |due: &DueNotice| notice_event(state, due);
    while !*stopped.borrow() {
        let looked_at = state
            .store
            .send_expiry_notices(now, &thresholds, BATCH, &build)
            .await?;
        if looked_at < BATCH as usize {
            break;
        }
    }
    Ok(())
}

/// `data`: `{token, expiresAt}`, and for a warning `threshold` ("7d") and `thresholdSeconds`.
fn notice_event(state: &AppState, due: &DueNotice) -> NewEvent {
    let expires_at = due.token.expires_at.map(events::instant);
    let (event_type, more) = match due.notice {
        Notice::Expiring { threshold_secs } => (
            EventType::TokenExpiring,
            json!({
                "expiresAt": expires_at,
                "threshold": threshold_label(threshold_secs),
                "thresholdSeconds": threshold_secs,
            }),
        ),
        Notice::Expired => (EventType::TokenExpired, json!({ "expiresAt": expires_at })),
    };
    events::about_token(state, event_type, &due.token, events::fields(more))
}

/// A threshold in its largest whole unit, as an operator writes it: `7d`, `36h`, `90m`, `2s`.
pub fn threshold_label(secs: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let (size, unit) = UNITS
        .into_iter()
        .find(|(size, _)| secs.is_multiple_of(*size))
        .unwrap_or((1, "s"));
    format!("{}{unit}", secs / size)
}

#[cfg(test)]
mod tests {
    use super::threshold_label;

    #[test]
    fn thresholds_are_labelled_in_their_largest_whole_unit() {
        for (secs, label) in [
            (30 * 86_400, "30d"),
            (86_400, "1d"),
            (36 * 3_600, "36h"),
            (90 * 60, "90m"),
            (2, "2s"),
            (86_401, "86401s"),
        ] {
            assert_eq!(threshold_label(secs), label);
        }
    }
}
