//! Fills a keygate SQLite database with many valid tokens, for the scale benchmark only
//! (`bench/run.py --scale`). Going through the API would take hours at 10 M tokens; this writes
//! rows straight into the schema keygate's own migrations created, in large multi-row inserts,
//! with durability off (a benchmark database is thrown away if the machine crashes).
//!
//! ```sh
//! cargo run --release -p keygate-store --example seed -- DB COUNT SAMPLE_FILE SAMPLE_SIZE
//! ```
//!
//! DB must be a database `keygate serve` has already initialised (tenant `default` exists).
//! Every token is a service token of tenant `default` with scope `metrics:read`. SAMPLE_SIZE
//! plaintexts, spread evenly over the whole range, go to SAMPLE_FILE, one per line, for the load
//! generator; the rest are known to nobody.

use std::io::Write;
use std::str::FromStr;
use std::time::Instant;

use keygate_core::{PlainToken, TokenPrefix};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};

const COLUMNS: &str =
    "id, tenant_id, hash, name, owner_id, scopes, enabled, created_at, updated_at, created_by";
const PER_ROW: usize = 10;
/// SQLite allows 32 766 bound values per statement.
const ROWS_PER_STATEMENT: usize = 1_000;
const ROWS_PER_TRANSACTION: usize = 200_000;

struct Row {
    id: String,
    hash: [u8; 32],
    name: String,
}

fn usage() -> ! {
    eprintln!("usage: seed DB_PATH COUNT SAMPLE_FILE SAMPLE_SIZE");
    std::process::exit(2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, count, sample_file, sample_size] = args.as_slice() else {
        usage()
    };
    let count: usize = count.parse().unwrap_or_else(|_| usage());
    let sample_size: usize = sample_size.parse().unwrap_or_else(|_| usage());
    let every = (count / sample_size.max(1)).max(1);

    let mut conn = SqliteConnectOptions::from_str(&format!("sqlite://{db}"))?
        .create_if_missing(false)
        .connect()
        .await?;
    for pragma in [
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = OFF",
        // Room for both random-keyed indexes (hash and id) of 10 M rows, so inserts stay in memory.
        "PRAGMA cache_size = -2000000",
    ] {
        conn.execute(pragma).await?;
    }
    let one_row = format!("({})", ["?"; PER_ROW].join(", "));
    let full_statement = format!(
        "INSERT INTO tokens ({COLUMNS}) VALUES {}",
        vec![one_row.as_str(); ROWS_PER_STATEMENT].join(", ")
    );

    let prefix = TokenPrefix::default();
    let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let mut sample = std::io::BufWriter::new(std::fs::File::create(sample_file)?);
    let started = Instant::now();
    let mut written = 0usize;
    while written < count {
        let mut tx = conn.begin().await?;
        let end = (written + ROWS_PER_TRANSACTION).min(count);
        while written < end {
            let n = ROWS_PER_STATEMENT.min(end - written);
            let rows: Vec<Row> = (written..written + n)
                .map(|i| {
                    let (id, plain) = PlainToken::mint(&prefix);
                    if i % every == 0 {
                        writeln!(sample, "{}", plain.expose()).expect("writing the sample");
                    }
                    Row {
                        id: id.into_string(),
                        hash: *plain.hash().as_bytes(),
                        name: format!("seed-{i}"),
                    }
                })
                .collect();
            let statement = if n == ROWS_PER_STATEMENT {
                full_statement.clone()
            } else {
                format!(
                    "INSERT INTO tokens ({COLUMNS}) VALUES {}",
                    vec![one_row.as_str(); n].join(", ")
                )
            };
            let mut q = sqlx::query(&statement);
            for r in &rows {
                q = q
                    .bind(&r.id)
                    .bind("default")
                    .bind(&r.hash[..])
                    .bind(&r.name)
                    .bind("default")
                    .bind(r#"["metrics:read"]"#)
                    .bind(1i64)
                    .bind(now_ms)
                    .bind(now_ms)
                    .bind("seed");
            }
            tx.execute(q).await?;
            written += n;
        }
        tx.commit().await?;
        eprintln!(
            "seeded {written} tokens in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    sample.flush()?;
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").await?;
    Ok(())
}
