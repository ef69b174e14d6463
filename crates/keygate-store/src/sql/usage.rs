//! The SQL of usage counts: adding a batch of per-minute counts to the minute, hour and day rows,
//! reading a token's series and a tenant's top groups, and pruning past retention. Sums are cast
//! back to BIGINT (PostgreSQL's SUM of a BIGINT is a NUMERIC, which the `Any` driver does not read).

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::AnyPool;

use crate::backend::Backend;
use crate::sql::codec::get;
use crate::sql::errors::map_err;
use crate::store::Result;
use crate::usage::{
    Counted, Counts, Granularity, TopItem, TopQuery, TopUsage, UsageDelta, UsageGroup, UsageOrder,
    UsagePoint, DAY_MS, HOUR_MS, MINUTE_MS,
};

/// Rows per INSERT: ten parameters each, far below either database's limit.
const ROWS_PER_STATEMENT: usize = 400;

fn columns() -> impl Iterator<Item = &'static str> {
    Counted::ALL.iter().map(|c| c.column())
}

/// `SUM(valid) AS valid, …` for every count, then `total` and `refused`.
fn sums(prefix: &str) -> String {
    let mut s: Vec<String> = columns()
        .map(|c| format!("CAST(COALESCE(SUM({prefix}{c}), 0) AS BIGINT) AS {c}"))
        .collect();
    let all: Vec<String> = columns().map(|c| format!("{prefix}{c}")).collect();
    let refused: Vec<String> = columns().skip(1).map(|c| format!("{prefix}{c}")).collect();
    s.push(format!(
        "CAST(COALESCE(SUM({}), 0) AS BIGINT) AS total",
        all.join(" + ")
    ));
    s.push(format!(
        "CAST(COALESCE(SUM({}), 0) AS BIGINT) AS refused",
        refused.join(" + ")
    ));
    s.join(", ")
}

/// `SUM(u.a + u.b …)`: PostgreSQL takes no output alias in HAVING.
fn sum_of(cols: impl Iterator<Item = &'static str>) -> String {
    let cols: Vec<String> = cols.map(|c| format!("u.{c}")).collect();
    format!("SUM({})", cols.join(" + "))
}

fn counts_from_row(row: &AnyRow) -> Result<Counts> {
    let mut counts = Counts::default();
    for (i, c) in columns().enumerate() {
        counts.0[i] = get::<i64>(row, c)?.max(0) as u64;
    }
    Ok(counts)
}

/// The tables a flush adds to, each with the width of its buckets.
const TABLES: [(&str, i64); 3] = [
    ("usage_minute", MINUTE_MS),
    ("usage_hour", HOUR_MS),
    ("usage_day", DAY_MS),
];

/// The table a series or a top list of this granularity reads.
fn table_of(g: Granularity) -> &'static str {
    match g {
        Granularity::Minute => "usage_minute",
        Granularity::Hour => "usage_hour",
        Granularity::Day => "usage_day",
    }
}

/// Adds the batch to the minute, hour and day rows in one transaction: all of it is written,
/// or none (then the caller keeps it for the next attempt, and nothing is counted twice).
pub(crate) async fn record_usage(
    pool: &AnyPool,
    backend: Backend,
    batch: &[UsageDelta],
) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await.map_err(map_err)?;
    for (table, width) in TABLES {
        // One row per token and bucket: PostgreSQL refuses an upsert that touches a row twice.
        let mut buckets: HashMap<(&str, i64), (&str, Counts)> = HashMap::new();
        for d in batch {
            let at = d.minute_ms.div_euclid(width) * width;
            let entry = buckets
                .entry((d.token_id.as_str(), at))
                .or_insert((&d.tenant_id, Counts::default()));
            entry.1.add(&d.counts);
        }
        let mut rows: Vec<(&str, &str, i64, Counts)> = buckets
            .into_iter()
            .map(|((token, at), (tenant, counts))| (token, tenant, at, counts))
            .collect();
        // In key order, so the upserts walk the table's index from one end to the other instead
        // of jumping about it.
        rows.sort_unstable_by_key(|r| (r.0, r.2));
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = upsert_sql(table, chunk.len(), backend);
            let mut q = sqlx::query(&sql);
            for (token, tenant, at, counts) in chunk {
                q = q.bind(*token).bind(*tenant).bind(*at);
                for n in counts.0 {
                    q = q.bind(i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
            q.execute(&mut *tx).await.map_err(map_err)?;
        }
    }
    tx.commit().await.map_err(map_err)
}

/// The upsert of `rows` rows. Its parameters are numbered (`$1`) for PostgreSQL, which takes
/// nothing else, and plain `?` for SQLite: sqlx binds numbered parameters on SQLite by searching
/// the statement's parameters for each one, which made a flush of 100 000 tokens take many
/// times as long (a statement of 400 rows has 4 000 parameters; BENCHMARKS.md).
fn upsert_sql(table: &str, rows: usize, backend: Backend) -> String {
    let cols: Vec<&str> = columns().collect();
    let per_row = 3 + cols.len();
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let ps: Vec<String> = (1..=per_row)
                .map(|i| match backend {
                    Backend::Postgres => format!("${}", r * per_row + i),
                    Backend::Sqlite => "?".to_owned(),
                })
                .collect();
            format!("({})", ps.join(", "))
        })
        .collect();
    let adds: Vec<String> = cols
        .iter()
        .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO {table} (token_id, tenant_id, at, {}) VALUES {} \
         ON CONFLICT (token_id, at) DO UPDATE SET {}",
        cols.join(", "),
        values.join(", "),
        adds.join(", ")
    )
}

/// The token's non-empty buckets in `[from_ms, to_ms)`, oldest first.
pub(crate) async fn usage_series(
    pool: &AnyPool,
    tenant_id: &str,
    token_id: &str,
    granularity: Granularity,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<UsagePoint>> {
    let table = table_of(granularity);
    let sql = format!(
        "SELECT at AS bucket, {} FROM {table} \
         WHERE tenant_id = $1 AND token_id = $2 AND at >= $3 AND at < $4 \
         GROUP BY bucket ORDER BY bucket",
        sums("")
    );
    let rows = sqlx::query(&sql)
        .bind(tenant_id)
        .bind(token_id)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(pool)
        .await
        .map_err(map_err)?;
    rows.iter()
        .map(|row| {
            Ok(UsagePoint {
                at_ms: get(row, "bucket")?,
                counts: counts_from_row(row)?,
            })
        })
        .collect()
}

/// The tenant's totals and its top groups.
pub(crate) async fn usage_top(pool: &AnyPool, tenant_id: &str, q: &TopQuery) -> Result<TopUsage> {
    let table = table_of(q.granularity);
    let totals_sql = format!(
        "SELECT {} FROM {table} WHERE tenant_id = $1 AND at >= $2 AND at < $3",
        sums("")
    );
    let row = sqlx::query(&totals_sql)
        .bind(tenant_id)
        .bind(q.from_ms)
        .bind(q.to_ms)
        .fetch_one(pool)
        .await
        .map_err(map_err)?;
    let totals = counts_from_row(&row)?;
    let (order, having) = match q.order_by {
        UsageOrder::Total => ("total", sum_of(columns())),
        UsageOrder::Refused => ("refused", sum_of(columns().skip(1))),
    };
    // Ties broken by key, so pages of equal counts come out the same every time. Groups with
    // nothing in the order's column are left out: "most refused" lists only the refused.
    let sql = match q.group_by {
        UsageGroup::Token => format!(
            "SELECT u.token_id AS token_id, MAX(t.name) AS name, MAX(t.external_ref) AS external_ref, \
             {} FROM {table} u LEFT JOIN tokens t ON t.id = u.token_id \
             WHERE u.tenant_id = $1 AND u.at >= $2 AND u.at < $3 \
             GROUP BY u.token_id HAVING {having} > 0 ORDER BY {order} DESC, u.token_id LIMIT $4",
            sums("u.")
        ),
        UsageGroup::ExternalId => format!(
            "SELECT t.external_ref AS external_ref, COUNT(DISTINCT u.token_id) AS tokens, {} \
             FROM {table} u JOIN tokens t ON t.id = u.token_id \
             WHERE u.tenant_id = $1 AND u.at >= $2 AND u.at < $3 AND t.external_ref IS NOT NULL \
             GROUP BY t.external_ref HAVING {having} > 0 ORDER BY {order} DESC, t.external_ref LIMIT $4",
            sums("u.")
        ),
    };
    let rows = sqlx::query(&sql)
        .bind(tenant_id)
        .bind(q.from_ms)
        .bind(q.to_ms)
        .bind(i64::from(q.limit))
        .fetch_all(pool)
        .await
        .map_err(map_err)?;
    let items = rows
        .iter()
        .map(|row| {
            Ok(match q.group_by {
                UsageGroup::Token => TopItem {
                    token_id: Some(get(row, "token_id")?),
                    name: get(row, "name")?,
                    external_id: get(row, "external_ref")?,
                    tokens: 1,
                    counts: counts_from_row(row)?,
                },
                UsageGroup::ExternalId => TopItem {
                    token_id: None,
                    name: None,
                    external_id: get(row, "external_ref")?,
                    tokens: get::<i64>(row, "tokens")?.max(0) as u64,
                    counts: counts_from_row(row)?,
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(TopUsage { totals, items })
}

/// Deletes minute and hour rows older than `minute_before_ms`, day rows older than
/// `day_before_ms`.
pub(crate) async fn prune_usage(
    pool: &AnyPool,
    minute_before_ms: i64,
    day_before_ms: i64,
) -> Result<()> {
    for (table, before) in [
        ("usage_minute", minute_before_ms),
        ("usage_hour", minute_before_ms),
        ("usage_day", day_before_ms),
    ] {
        sqlx::query(&format!("DELETE FROM {table} WHERE at < $1"))
            .bind(before)
            .execute(pool)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_numbers_every_row_parameter() {
        let sql = upsert_sql("usage_minute", 2, Backend::Postgres);
        assert!(
            sql.contains("($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"),
            "{sql}"
        );
        assert!(sql.contains("($11, $12,"), "{sql}");
        let sql = upsert_sql("usage_minute", 2, Backend::Sqlite);
        assert!(
            sql.contains("VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?,"),
            "{sql}"
        );
        assert!(
            sql.ends_with("ip_not_allowed = usage_minute.ip_not_allowed + excluded.ip_not_allowed")
        );
    }
}
