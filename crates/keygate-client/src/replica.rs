//! The handle applications hold: connecting, verifying, and the replica's figures.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keygate_core::permission::{Query, QueryError};
use keygate_core::{TokenHash, TokenPrefix};
use secrecy::SecretString;

use crate::error::Error;
use crate::held::Held;
use crate::http::Keygate;
use crate::options::Options;
use crate::shared::Shared;
use crate::verification::{Request, Verification};
use crate::wire::{ChangesPage, SnapshotPage};

/// A replica's figures at one moment.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Stats {
    /// Tokens held.
    pub tokens: usize,
    /// Where the replica is in keygate's change stream (opaque).
    pub cursor: String,
    /// Time since the last answer from keygate.
    pub since_contact: Duration,
    /// Whether that is longer than `max_staleness` (the replica then answers `UNAVAILABLE` or
    /// asks keygate).
    pub stale: bool,
    /// Snapshots taken: the first one, and one after each `CURSOR_TOO_OLD`.
    pub snapshots: u64,
    /// Snapshots taken because keygate no longer had the changes after the cursor.
    pub resyncs: u64,
    /// Changes applied from the stream (upserts and deletes).
    pub changes_applied: u64,
    /// Failed requests to keygate (replication and delegated verifications).
    pub errors: u64,
    /// Reconnections of the change stream after an error.
    pub reconnects: u64,
    /// Verifications sent to keygate.
    pub delegated: u64,
    /// Tokens keygate sent that this replica could not read (held as unknown: refused).
    pub unreadable: u64,
}

/// What [`Replica::check_local`] could decide without keygate.
#[derive(Debug, Clone)]
pub enum LocalAnswer {
    /// The replica's answer.
    Answered(Verification),
    /// Only keygate may answer: the token has rate limits or credits, or the replica is stale and
    /// set to ask keygate. [`Replica::check`] asks it.
    NeedsKeygate,
}

/// Stops the follower task when the last clone of a [`Replica`] is dropped.
struct Follower(tokio::task::AbortHandle);

impl Drop for Follower {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An in-memory replica of a keygate tenant's verifiable tokens, kept current by a background
/// task. Cheap to clone; the task stops when the last clone is dropped.
#[derive(Clone)]
pub struct Replica {
    shared: Arc<Shared>,
    _follower: Option<Arc<Follower>>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("tokens", &self.shared.held.len())
            .field("prefix", &self.shared.prefix.as_str())
            .finish_non_exhaustive()
    }
}

impl Replica {
    /// Connects to keygate at `url` (e.g. `https://keygate.internal:8080`) with a token holding
    /// the scope `tokens:replicate`, takes a full snapshot of the token's tenant, and starts
    /// following the change stream in a Tokio task.
    ///
    /// Returns once the snapshot is held, so an application starts with every token. Fails at
    /// once if keygate refuses the token (401, 403) or cannot be reached; it does not retry.
    /// Afterwards the follower retries by itself, whatever keygate answers: a replication token
    /// revoked later makes the replica stale, and so fail closed. Call it within a Tokio runtime.
    pub async fn connect(
        url: &str,
        token: impl Into<String>,
        options: Options,
    ) -> Result<Replica, Error> {
        options.check().map_err(Error::Options)?;
        let keygate = Keygate::new(
            url,
            SecretString::from(token.into()),
            options.client.clone(),
            options.http_timeout,
        )?;
        let held = Held::default();
        let snap = crate::follower::snapshot_into(&keygate, &held, options.page_size).await?;
        let prefix = TokenPrefix::parse(&snap.prefix)
            .map_err(|e| Error::Protocol(format!("the deployment's prefix: {e}")))?;
        let mut shared = Shared::new(held, prefix, snap.cursor.clone(), &options);
        shared.keygate = Some(keygate);
        shared.counters.snapshots.store(1, Ordering::Relaxed);
        shared
            .counters
            .unreadable
            .store(snap.unreadable, Ordering::Relaxed);
        shared.heard(&snap.cursor);
        let shared = Arc::new(shared);
        let task = tokio::spawn(crate::follower::follow(shared.clone(), options));
        Ok(Replica {
            shared,
            _follower: Some(Arc::new(Follower(task.abort_handle()))),
        })
    }

    /// A replica that does not follow keygate, fed with [`Replica::apply_snapshot_page`] and
    /// [`Replica::apply_changes`]: for your application's tests without a keygate, and for
    /// measurements. `prefix` is the deployment's token prefix (keygate's default: `kg`). It
    /// goes stale like any replica, `max_staleness` after it was last fed.
    pub fn offline(prefix: &str, options: &Options) -> Result<Replica, Error> {
        options.check().map_err(Error::Options)?;
        let prefix = TokenPrefix::parse(prefix)
            .map_err(|e| Error::Protocol(format!("the deployment's prefix: {e}")))?;
        let shared = Shared::new(Held::default(), prefix, String::new(), options);
        shared.touch();
        Ok(Replica {
            shared: Arc::new(shared),
            _follower: None,
        })
    }

    /// Holds the tokens of one page of `GET /api/v1/replication/snapshot` (its JSON), as the
    /// follower does. Tokens already held and not on the page are kept.
    pub fn apply_snapshot_page(&self, json: &str) -> Result<(), Error> {
        let page: SnapshotPage =
            serde_json::from_str(json).map_err(|e| Error::Protocol(e.to_string()))?;
        for token in page.tokens {
            if let Err(e) = self.shared.held.upsert(token) {
                self.shared
                    .counters
                    .unreadable
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "keygate-client: a token could not be held; it is refused");
            }
        }
        self.shared.heard(&page.cursor);
        Ok(())
    }

    /// Applies one answer of `GET /api/v1/replication/changes` (its JSON), as the follower does.
    pub fn apply_changes(&self, json: &str) -> Result<(), Error> {
        let page: ChangesPage =
            serde_json::from_str(json).map_err(|e| Error::Protocol(e.to_string()))?;
        crate::follower::apply_page(&self.shared, page);
        Ok(())
    }

    /// A replica fed by hand, with no follower and nothing to delegate to: for the tests.
    #[cfg(test)]
    pub(crate) fn from_shared(shared: Shared) -> Replica {
        Replica {
            shared: Arc::new(shared),
            _follower: None,
        }
    }

    #[cfg(test)]
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Checks `token` and that it holds every scope in `scopes`, with no client address (a
    /// token with an allow-list is refused; use [`Replica::check`] to pass one).
    pub async fn verify(&self, token: &str, scopes: &[&str]) -> Verification {
        self.check(&Request {
            token,
            scopes,
            ..Request::default()
        })
        .await
    }

    /// Checks `token` against a permission query such as `orders:read AND (orders:write OR
    /// admin)`. A query that does not parse is the caller's mistake, not the token's: it is an
    /// `Err`, and nothing is verified. Parse a fixed query once with
    /// [`Query::parse`] and pass it in a [`Request`] to save the parsing per call.
    pub async fn verify_query(
        &self,
        token: &str,
        permissions: &str,
    ) -> Result<Verification, QueryError> {
        let q = Query::parse(permissions)?;
        Ok(self
            .check(&Request {
                token,
                permissions: Some(&q),
                ..Request::default()
            })
            .await)
    }

    /// The general verification. Answered in memory, without awaiting anything, unless the
    /// token has rate limits or credits (or the replica is stale and set to ask keygate): then
    /// keygate's `POST /api/v1/verify` decides, and a failure to reach it is `UNAVAILABLE`.
    pub async fn check(&self, req: &Request<'_>) -> Verification {
        match self.check_local(req) {
            LocalAnswer::Answered(v) => v,
            LocalAnswer::NeedsKeygate => self.shared.ask_keygate(req).await,
        }
    }

    /// The replica's own answer, synchronous and without I/O: what [`Replica::check`] answers
    /// unless only keygate may decide.
    pub fn check_local(&self, req: &Request<'_>) -> LocalAnswer {
        match self.shared.decide(req, Instant::now()) {
            Some(v) => LocalAnswer::Answered(v),
            None => LocalAnswer::NeedsKeygate,
        }
    }

    /// The deployment's token prefix (e.g. `kg`).
    pub fn prefix(&self) -> &TokenPrefix {
        &self.shared.prefix
    }

    /// The replica's figures now.
    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        let c = &s.counters;
        let since_contact = s.since_contact(Instant::now());
        Stats {
            tokens: s.held.len(),
            cursor: s.cursor(),
            since_contact,
            stale: since_contact > s.max_staleness,
            snapshots: c.snapshots.load(Ordering::Relaxed),
            resyncs: c.resyncs.load(Ordering::Relaxed),
            changes_applied: c.changes_applied.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            delegated: c.delegated.load(Ordering::Relaxed),
            unreadable: c.unreadable.load(Ordering::Relaxed),
        }
    }

    /// Waits until `done` holds for the replica's [`Stats`], re-checking each time keygate
    /// answers; `false` if `timeout` passes first. For tests and for measuring propagation,
    /// e.g. `replica.wait_until(|s| s.changes_applied > before, Duration::from_secs(1))`.
    pub async fn wait_until(
        &self,
        mut done: impl FnMut(&Stats) -> bool,
        timeout: Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Created before the check, so an answer between the check and the wait is not lost.
            let answered = self.shared.changed.notified();
            if done(&self.stats()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, answered).await.is_err() {
                return done(&self.stats());
            }
        }
    }

    /// Whether the replica answers `token` as known right now (any state), for tests that wait
    /// for a token to arrive or to go. Hashes the token: it is never kept.
    pub fn holds(&self, token: &str) -> bool {
        self.shared.held.get(&TokenHash::of(token)).is_some()
    }
}
