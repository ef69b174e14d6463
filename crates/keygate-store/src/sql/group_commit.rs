//! Group commit for SQLite: concurrent [`Store::apply`](crate::Store::apply) calls share one
//! transaction, and so one fsync.
//!
//! With `synchronous=FULL` every commit waits for the disk, and SQLite has a single writer, so
//! one transaction per call would cap writes at the disk's flush rate however many clients
//! wait. Instead `apply` hands its batch to one task that owns the writing. That task takes the
//! first waiting batch and whatever else is queued at that moment (it never waits for company,
//! so a lone write goes at once), runs each batch inside its own savepoint, commits once, and
//! only then answers. A failing batch is rolled back to its savepoint, so it leaves nothing of
//! itself behind while the others commit, and its error reaches its own caller alone.
//!
//! PostgreSQL does not need this: its WAL writer already flushes concurrent commits together.

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use crate::backend::Backend;
use crate::model::{NewAudit, Write};
use crate::sql::batch::execute_batch;
use crate::sql::tx::Tx;
use crate::store::{Result, StoreError};

/// Bounds a transaction, so one group never holds its callers' answers for too long.
const MAX_GROUP: usize = 128;
/// Beyond this many waiting batches `apply` waits to enqueue, instead of memory growing.
const QUEUE_CAPACITY: usize = 1024;

struct Batch {
    writes: Vec<Write>,
    audit: Vec<NewAudit>,
    reply: oneshot::Sender<Result<()>>,
}

enum Msg {
    Batch(Batch),
    /// Take no more batches, commit the ones already queued, then say so.
    Close(oneshot::Sender<()>),
}

/// The sending side; every clone of a store shares the one task behind it.
#[derive(Clone)]
pub(crate) struct GroupCommitter {
    queue: mpsc::Sender<Msg>,
}

impl GroupCommitter {
    /// Starts the committing task on the current runtime. It ends after [`close`](Self::close),
    /// or when every clone of this handle is gone.
    pub(crate) fn start(pool: AnyPool) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run(pool, rx));
        Self { queue }
    }

    /// Once the batch is queued it is the task's: a caller that stops waiting afterwards does
    /// not undo it halfway. It is then committed whole or not at all, like any other.
    pub(crate) async fn apply(&self, writes: Vec<Write>, audit: Vec<NewAudit>) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Msg::Batch(Batch {
                writes,
                audit,
                reply,
            }))
            .await
            .map_err(|_| StoreError::Unavailable("the database is closed".into()))?;
        // Dropped unanswered only when its group panicked before committing (nothing of the
        // group was kept), or when the runtime is shutting down, this caller with it.
        answer.await.map_err(|_| {
            StoreError::Unavailable("the database writer stopped before committing".into())
        })?
    }

    /// Returns once every batch queued before it has been committed (or failed) and answered;
    /// later ones are refused.
    pub(crate) async fn close(&self) {
        let (ack, done) = oneshot::channel();
        if self.queue.send(Msg::Close(ack)).await.is_ok() {
            let _ = done.await;
        }
    }
}

async fn run(pool: AnyPool, mut queue: mpsc::Receiver<Msg>) {
    let mut closers = Vec::new();
    while let Some(first) = queue.recv().await {
        let mut group = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Batch(b) => group.push(b),
                Msg::Close(ack) => {
                    // Whatever is already queued is still taken; `recv` ends after it.
                    queue.close();
                    closers.push(ack);
                }
            }
            next = if group.len() < MAX_GROUP {
                queue.try_recv().ok()
            } else {
                None
            };
        }
        if group.is_empty() {
            continue;
        }
        // Its own task, so that a panic inside costs only this group: its replies are dropped
        // unanswered (their callers get `Unavailable`), its transaction is rolled back when
        // dropped, and the next group starts afresh.
        if let Err(e) = tokio::spawn(commit_group(pool.clone(), group)).await {
            tracing::error!(error = %e, "a group commit failed unexpectedly; nothing of it was kept");
        }
    }
    for ack in closers {
        let _ = ack.send(());
    }
}

async fn commit_group(pool: AnyPool, group: Vec<Batch>) {
    // A caller that went away before its batch started is not written: nobody would hear of
    // it, and what the caller does after a write (dropping changed tokens from the cache)
    // would not run either.
    let group: Vec<Batch> = group.into_iter().filter(|b| !b.reply.is_closed()).collect();
    if group.is_empty() {
        return;
    }
    let outcomes = write_group(&pool, &group).await;
    for (b, outcome) in group.into_iter().zip(outcomes) {
        let _ = b.reply.send(outcome);
    }
}

/// Each batch's outcome, in order; all of them `Unavailable` if the transaction as a whole
/// could not be committed.
async fn write_group(pool: &AnyPool, group: &[Batch]) -> Vec<Result<()>> {
    let all_failed = |why: String| {
        group
            .iter()
            .map(|_| Err(StoreError::Unavailable(why.clone())))
            .collect()
    };
    let mut tx = match pool.begin().await {
        Ok(tx) => tx,
        Err(e) => return all_failed(e.to_string()),
    };
    if let [only] = group {
        // Alone, a batch needs no savepoint: the transaction is its own, as without grouping.
        // That spares two statements on each write of a quiet server.
        return vec![alone(tx, only).await];
    }
    let mut outcomes = Vec::with_capacity(group.len());
    for b in group {
        match in_savepoint(&mut tx, b).await {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => {
                // Without a working savepoint the transaction's state is unknown (SQLite rolls
                // back the whole transaction on some errors, a full disk for one): keep nothing.
                let _ = tx.rollback().await;
                return all_failed(e.to_string());
            }
        }
    }
    match tx.commit().await {
        Ok(()) => outcomes,
        Err(e) => all_failed(e.to_string()),
    }
}

async fn alone(mut tx: Tx, b: &Batch) -> Result<()> {
    if let Err(e) = run_batch(&mut tx, b).await {
        let _ = tx.rollback().await;
        return Err(e);
    }
    tx.commit()
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))
}

/// Runs one batch inside a savepoint of its own. The outer error means the savepoint itself
/// failed, and with it the whole group; the inner result is the batch's own outcome.
async fn in_savepoint(tx: &mut Tx, b: &Batch) -> Result<Result<()>, sqlx::Error> {
    // Each batch releases its savepoint before the next one starts, so one name serves all.
    sqlx::query("SAVEPOINT batch").execute(&mut **tx).await?;
    let outcome = run_batch(tx, b).await;
    if outcome.is_err() {
        sqlx::query("ROLLBACK TO batch").execute(&mut **tx).await?;
    }
    sqlx::query("RELEASE batch").execute(&mut **tx).await?;
    Ok(outcome)
}

/// Both ways a batch is written go through here, so the test hook covers both.
async fn run_batch(tx: &mut Tx, b: &Batch) -> Result<()> {
    let outcome = execute_batch(tx, Backend::Sqlite, &b.writes, &b.audit).await;
    #[cfg(test)]
    tests::maybe_panic(&b.audit);
    outcome
}

#[cfg(test)]
mod tests {
    //! What only the SQLite group committer has: a panic inside a group, and `close` with
    //! batches still queued. The contract every backend shares is tested in `tests/verifier.rs`.

    use std::time::Duration;

    use keygate_core::{PlainToken, ScopeSet, TokenId, TokenPrefix};

    use crate::model::*;
    use crate::{SqlStore, Store, StoreError};

    /// An audit action that makes the group committer panic after the batch's writes, before
    /// its group commits.
    const PANIC: &str = "test.panic";

    pub(super) fn maybe_panic(audit: &[NewAudit]) {
        if audit.iter().any(|a| a.action == PANIC) {
            panic!("a panic injected in the middle of a group commit");
        }
    }

    async fn open(dir: &tempfile::TempDir) -> SqlStore {
        let store = SqlStore::open(&crate::sqlite_url_in_dir(dir.path()))
            .await
            .unwrap();
        store
            .apply(
                &[Write::InsertTenant {
                    id: DEFAULT_TENANT.into(),
                    created_at: now(),
                }],
                &[],
            )
            .await
            .ok();
        store
    }

    fn token() -> TokenRecord {
        let (_, plain) = PlainToken::mint(&TokenPrefix::default());
        let now = now();
        TokenRecord::minted(
            TokenId::from_stored(plain.expose()[..19].to_owned()),
            DEFAULT_TENANT.into(),
            plain.hash(),
            "t".into(),
            DEFAULT_TENANT.into(),
            ScopeSet::parse(["tokens:read"]).unwrap(),
            now,
        )
    }

    fn audit(action: &str, target: &TokenRecord) -> NewAudit {
        NewAudit {
            tenant_id: DEFAULT_TENANT.into(),
            at: now(),
            actor: "test".into(),
            action: action.into(),
            target_id: Some(target.id.to_string()),
            ip: None,
            details: None,
        }
    }

    async fn exists(store: &SqlStore, t: &TokenRecord) -> bool {
        store
            .token_by_id(DEFAULT_TENANT, t.id.as_str())
            .await
            .unwrap()
            .is_some()
    }

    /// Bounds every wait: a caller left hanging is the failure these tests look for.
    async fn within<F: std::future::Future>(f: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(20), f)
            .await
            .expect("a write was left waiting")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_fails_its_group_and_the_writer_carries_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        let doomed = token();
        let err = within(store.apply(
            &[Write::InsertToken(doomed.clone())],
            &[audit(PANIC, &doomed)],
        ))
        .await
        .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(
            !exists(&store, &doomed).await,
            "the panicked group was kept"
        );

        // Company for a panicking batch: each of them is answered (with an error or not), and
        // nothing of a group that panicked is kept.
        let mut tasks = Vec::new();
        for i in 0..32 {
            let store = store.clone();
            let t = token();
            let action = if i == 16 { PANIC } else { "token.create" };
            let a = audit(action, &t);
            tasks.push(tokio::spawn(async move {
                let r = store.apply(&[Write::InsertToken(t.clone())], &[a]).await;
                (t, r)
            }));
        }
        for task in tasks {
            let (t, r) = within(task).await.unwrap();
            assert_eq!(r.is_ok(), exists(&store, &t).await, "{r:?}");
        }

        let after = token();
        within(store.apply(&[Write::InsertToken(after.clone())], &[]))
            .await
            .unwrap();
        assert!(exists(&store, &after).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_commits_what_is_queued_and_refuses_what_comes_after() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let store = store.clone();
            let t = token();
            tasks.push(tokio::spawn(async move {
                let r = store
                    .apply(
                        &[Write::InsertToken(t.clone())],
                        &[audit("token.create", &t)],
                    )
                    .await;
                (t, r)
            }));
        }
        tokio::task::yield_now().await;
        within(store.close()).await;
        let late = token();
        let err = within(store.apply(&[Write::InsertToken(late.clone())], &[]))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");

        let results: Vec<_> = within(async {
            let mut out = Vec::new();
            for task in tasks {
                out.push(task.await.unwrap());
            }
            out
        })
        .await;
        let reopened = open(&dir).await;
        for (t, r) in &results {
            match r {
                Ok(()) => assert!(exists(&reopened, t).await, "an acknowledged write was lost"),
                Err(StoreError::Unavailable(_)) => assert!(!exists(&reopened, t).await),
                Err(e) => panic!("{e:?}"),
            }
        }
        assert!(!exists(&reopened, &late).await);
    }
}
