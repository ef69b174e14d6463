//! The SQL of the replicas' change stream (migration 0012): where it stands, a tenant's tokens
//! page by page for a snapshot, the changes after a cursor, and pruning.

use std::collections::HashMap;

use keygate_core::TokenHash;
use sqlx::AnyPool;

use crate::backend::{Backend, CHANGES_CHANNEL};
use crate::model::{ChangeRead, ReplicatedChange, ReplicationHead, SnapshotPage, TokenRecord};
use crate::sql::errors::map_err;
use crate::sql::listing::page;
use crate::sql::tokens::{token_from_row, TOKEN_COLUMNS};
use crate::store::{Result, StoreError};

pub(crate) async fn head(pool: &AnyPool) -> Result<ReplicationHead> {
    let (log_id, seq, pruned_through): (String, i64, i64) =
        sqlx::query_as("SELECT log_id, seq, pruned_through FROM replication_head WHERE id = 1")
            .fetch_one(pool)
            .await
            .map_err(map_err)?;
    Ok(ReplicationHead {
        log_id,
        seq,
        pruned_through,
    })
}

/// PostgreSQL: numbers the change rows that committed unnumbered (migration 0012), after the
/// head, and tells every node. The row of `replication_head` is held while numbering, so
/// numberings run one at a time and each sees every row the previous one numbered; a reader that
/// finds it held goes on without waiting, and the numbering's notification wakes it again. Rows
/// still uncommitted are invisible here and get later numbers, so numbers follow commit order
/// with no gaps.
pub(crate) async fn number_committed(pool: &AnyPool, backend: Backend) -> Result<()> {
    if backend != Backend::Postgres {
        return Ok(());
    }
    let pending: Option<i64> =
        sqlx::query_scalar("SELECT id FROM replication_log WHERE seq IS NULL LIMIT 1")
            .fetch_optional(pool)
            .await
            .map_err(map_err)?;
    if pending.is_none() {
        return Ok(());
    }
    let mut tx = pool.begin().await.map_err(map_err)?;
    let head: Option<i64> =
        sqlx::query_scalar("SELECT seq FROM replication_head WHERE id = 1 FOR UPDATE SKIP LOCKED")
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
    let Some(head) = head else {
        return Ok(());
    };
    let numbered = sqlx::query(
        "UPDATE replication_log l SET seq = $1 + p.n \
         FROM (SELECT id, row_number() OVER (ORDER BY id) AS n \
               FROM replication_log WHERE seq IS NULL) p \
         WHERE l.id = p.id",
    )
    .bind(head)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?
    .rows_affected() as i64;
    if numbered > 0 {
        sqlx::query("UPDATE replication_head SET seq = seq + $1 WHERE id = 1")
            .bind(numbered)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANGES_CHANNEL)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    tx.commit().await.map_err(map_err)
}

pub(crate) async fn snapshot(
    pool: &AnyPool,
    tenant_id: &str,
    after: Option<i64>,
    limit: u32,
) -> Result<SnapshotPage> {
    // The head first: a change committed while the page is read has a higher number, so the
    // change stream from this head replays it.
    let head = head(pool).await?;
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens WHERE tenant_id = $1 AND seq > $2 \
         ORDER BY seq LIMIT $3"
    );
    let rows = sqlx::query(&sql)
        .bind(tenant_id)
        .bind(after.unwrap_or(0))
        .bind(i64::from(limit) + 1)
        .fetch_all(pool)
        .await
        .map_err(map_err)?;
    let rows = rows
        .iter()
        .map(token_from_row)
        .collect::<Result<Vec<_>>>()?;
    let p = page(rows, limit);
    Ok(SnapshotPage {
        head,
        tokens: p.items,
        next: p.next,
    })
}

pub(crate) async fn changes(
    pool: &AnyPool,
    tenant_id: &str,
    log_id: &str,
    after: i64,
    limit: u32,
) -> Result<ChangeRead> {
    let head = head(pool).await?;
    if head.log_id != log_id || after < head.pruned_through || after > head.seq {
        return Ok(ChangeRead::TooOld);
    }
    // Every number up to the head is committed (numbers follow commit order), so reading up
    // to it never skips a change that commits later with a lower number.
    let mut rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT seq, hash FROM replication_log WHERE tenant_id = $1 AND seq > $2 AND seq <= $3 \
         ORDER BY seq LIMIT $4",
    )
    .bind(tenant_id)
    .bind(after)
    .bind(head.seq)
    .bind(i64::from(limit) + 1)
    .fetch_all(pool)
    .await
    .map_err(map_err)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let through = if more {
        rows.last().map_or(head.seq, |(seq, _)| *seq)
    } else {
        head.seq
    };
    let mut current: HashMap<TokenHash, TokenRecord> = HashMap::new();
    if !rows.is_empty() {
        // By hash alone, which is unique, so its index finds each row. Beside `tenant_id = $1`,
        // SQLite chose an index on the tenant and read every token of it (0.2 s per read at 1 M
        // tokens in one tenant). The tenant is checked on the rows instead.
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash IN \
             (SELECT hash FROM replication_log WHERE tenant_id = $1 AND seq > $2 AND seq <= $3)"
        );
        for row in sqlx::query(&sql)
            .bind(tenant_id)
            .bind(after)
            .bind(through)
            .fetch_all(pool)
            .await
            .map_err(map_err)?
        {
            let (_, t) = token_from_row(&row)?;
            if t.tenant_id == tenant_id {
                current.insert(t.hash, t);
            }
        }
    }
    // A prune that ran meanwhile may have deleted change rows the token query then missed,
    // which would read as deletions: such a read is refused instead.
    let pruned: i64 =
        sqlx::query_scalar("SELECT pruned_through FROM replication_head WHERE id = 1")
            .fetch_one(pool)
            .await
            .map_err(map_err)?;
    if after < pruned {
        return Ok(ChangeRead::TooOld);
    }
    Ok(ChangeRead::Changes {
        log_id: head.log_id,
        through,
        changes: last_change_per_token(&rows, current)?,
        more,
    })
}

/// One change per token, in the order of each token's last change row.
fn last_change_per_token(
    rows: &[(i64, Vec<u8>)],
    mut current: HashMap<TokenHash, TokenRecord>,
) -> Result<Vec<ReplicatedChange>> {
    let hashes = rows
        .iter()
        .map(|(_, h)| {
            TokenHash::from_slice(h)
                .ok_or_else(|| StoreError::Corrupt("replication_log: hash is not 32 bytes".into()))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut last: HashMap<TokenHash, usize> = HashMap::with_capacity(hashes.len());
    for (i, h) in hashes.iter().enumerate() {
        last.insert(*h, i);
    }
    Ok(hashes
        .iter()
        .enumerate()
        .filter(|(i, h)| last[*h] == *i)
        .map(|(_, h)| match current.remove(h) {
            Some(t) => ReplicatedChange::Upsert(Box::new(t)),
            None => ReplicatedChange::Delete(*h),
        })
        .collect())
}

pub(crate) async fn prune(pool: &AnyPool, before_ms: i64) -> Result<()> {
    let mut tx = pool.begin().await.map_err(map_err)?;
    let through: Option<i64> =
        sqlx::query_scalar("SELECT MAX(seq) FROM replication_log WHERE at < $1")
            .bind(before_ms)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
    if let Some(through) = through {
        sqlx::query(
            "UPDATE replication_head SET pruned_through = $1 WHERE id = 1 AND pruned_through < $1",
        )
        .bind(through)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query("DELETE FROM replication_log WHERE seq <= $1")
            .bind(through)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    tx.commit().await.map_err(map_err)
}
