//! The write transaction every statement writes through, and what each one owes the other
//! nodes and the replicas before it commits: word of the tokens it changed.

use keygate_core::TokenHash;
use sqlx::Any;

use crate::backend::{Backend, CHANGES_CHANNEL};
use crate::model::{now, unix_ms};
use crate::sql::errors::map_err;
use crate::sql::listing::Sql;
use crate::store::Result;

pub(crate) type Tx = sqlx::Transaction<'static, Any>;

/// Rows per statement of a many-row insert (here and in `sql::bulk`): seven parameters per audit row stay far below both databases' bound on
/// the parameters of one statement (SQLite 32 766, PostgreSQL 65 535).
pub(crate) const CHUNK: usize = 500;

/// A token a batch changed, and its tenant (whose replicas must hear of it).
pub(crate) type Changed<'a> = (&'a str, TokenHash);

/// Within a write transaction: add the changed tokens to the replicas' change stream and tell
/// the other nodes which tokens changed (a single SQLite node has no one to tell).
pub(crate) async fn record_changes(
    tx: &mut Tx,
    backend: Backend,
    changed: &[Changed<'_>],
) -> Result<()> {
    if changed.is_empty() {
        return Ok(());
    }
    append_replication_log(tx, backend, changed).await?;
    if backend != Backend::Postgres {
        return Ok(());
    }
    let hashes: Vec<TokenHash> = changed.iter().map(|(_, h)| *h).collect();
    insert_token_changes(tx, &hashes).await?;
    // Delivered when (and only if) the transaction commits.
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANGES_CHANNEL)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// One row per changed token in the replicas' change stream (migration 0012). SQLite, with its
/// one writer, numbers them here: the transaction takes the next numbers from
/// `replication_head`. On PostgreSQL that would make every token write of every node wait for
/// the previous one's commit, so the rows go in unnumbered, and a reader numbers them once they
/// are committed (`sql::replication::number_committed`).
async fn append_replication_log(
    tx: &mut Tx,
    backend: Backend,
    changed: &[Changed<'_>],
) -> Result<()> {
    let at = unix_ms(now());
    let first = match backend {
        Backend::Sqlite => {
            let n = changed.len() as i64;
            let last: i64 = sqlx::query_scalar(
                "UPDATE replication_head SET seq = seq + $1 WHERE id = 1 RETURNING seq",
            )
            .bind(n)
            .fetch_one(&mut **tx)
            .await
            .map_err(map_err)?;
            Some(last - n + 1)
        }
        Backend::Postgres => None,
    };
    let rows: Vec<_> = changed
        .iter()
        .enumerate()
        .map(|(i, (tenant_id, hash))| (first.map(|f| f + i as i64), *tenant_id, *hash))
        .collect();
    insert_replication_rows(tx, &rows, at).await
}

/// Rows `(seq, tenant_id, hash, at)` of the replicas' change stream, in order.
pub(crate) async fn insert_replication_rows(
    tx: &mut Tx,
    rows: &[(Option<i64>, &str, TokenHash)],
    at: i64,
) -> Result<()> {
    for chunk in rows.chunks(CHUNK) {
        let mut q = Sql::new("INSERT INTO replication_log (seq, tenant_id, hash, at) VALUES ");
        for (i, (seq, tenant_id, hash)) in chunk.iter().enumerate() {
            q.push(if i > 0 { ", (" } else { "(" });
            q.bind(*seq).push(", ");
            q.bind((*tenant_id).to_owned()).push(", ");
            q.bind(hash.as_bytes().to_vec()).push(", ");
            q.bind(at).push(")");
        }
        q.query().execute(&mut **tx).await.map_err(map_err)?;
    }
    Ok(())
}

/// PostgreSQL's `token_changes` rows, which tell the other nodes which hashes to forget.
pub(crate) async fn insert_token_changes(tx: &mut Tx, hashes: &[TokenHash]) -> Result<()> {
    for chunk in hashes.chunks(CHUNK) {
        let mut q = Sql::new("INSERT INTO token_changes (at, hash) VALUES ");
        for (i, hash) in chunk.iter().enumerate() {
            q.push(if i > 0 { ", (" } else { "(" });
            q.push("(extract(epoch from clock_timestamp()) * 1000)::bigint, ");
            q.bind(hash.as_bytes().to_vec()).push(")");
        }
        q.query().execute(&mut **tx).await.map_err(map_err)?;
    }
    Ok(())
}
