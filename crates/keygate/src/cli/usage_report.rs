//! `keygate token usage`: a token's verifications over time as a sparkline, totals by outcome,
//! and a table of the buckets that counted something.

use std::time::Duration;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, ContentArrangement, Table};
use serde_json::Value;

use super::client::CliError;

/// The outcomes as the API names them, with the words the table heads them with.
const OUTCOMES: [(&str, &str); 7] = [
    ("valid", "VALID"),
    ("rateLimited", "RATE LIMITED"),
    ("usageExceeded", "NO CREDITS"),
    ("insufficientScope", "SCOPE"),
    ("disabled", "DISABLED"),
    ("expired", "EXPIRED"),
    ("ipNotAllowed", "IP"),
];

/// The granularity `--since` reads best at: a line per minute for an hour, per hour for two
/// days, per day beyond.
pub fn granularity_for(since: Duration) -> &'static str {
    match since.as_secs() {
        0..=3600 => "minute",
        3601..=172_800 => "hour",
        _ => "day",
    }
}

fn count(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

/// Eight levels of block: the highest bucket is a full block, an empty one a space.
pub fn sparkline(values: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|&v| match v {
            0 => ' ',
            // At least the lowest bar for anything above zero, so one use is visible.
            v => BARS[((v.saturating_mul(8) - 1) / max.max(1)).min(7) as usize],
        })
        .collect()
}

fn bucket_time(at: &Value, granularity: &str) -> String {
    let s = at.as_str().unwrap_or("");
    let len = if granularity == "day" { 10 } else { 16 };
    s.get(..len).unwrap_or(s).replace('T', " ")
}

pub fn print_usage(usage: &Value) -> Result<(), CliError> {
    let granularity = usage["granularity"].as_str().unwrap_or("hour");
    let items = usage["items"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let totals = &usage["totals"];
    say!(
        "{}  {} to {}, by {granularity}",
        usage["tokenId"].as_str().unwrap_or(""),
        bucket_time(&usage["from"], granularity),
        bucket_time(&usage["to"], granularity),
    )?;
    let per_bucket: Vec<u64> = items.iter().map(|i| count(i, "total")).collect();
    let peak = per_bucket.iter().copied().max().unwrap_or(0);
    say!(
        "|{}|  peak {peak} per {granularity}",
        sparkline(&per_bucket)
    )?;
    let mut summary = format!("total {}", count(totals, "total"));
    for (key, _) in OUTCOMES {
        let n = count(totals, key);
        if n > 0 || key == "valid" {
            summary.push_str(&format!("  {key} {n}"));
        }
    }
    say!("{summary}")?;
    let used: Vec<&Value> = items.iter().filter(|i| count(i, "total") > 0).collect();
    if used.is_empty() {
        return say!("No verifications in this range.");
    }
    let mut table = Table::new();
    let mut header = vec!["AT (UTC)"];
    header.extend(OUTCOMES.iter().map(|(_, h)| *h));
    header.push("TOTAL");
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    for i in used {
        let mut row = vec![bucket_time(&i["at"], granularity)];
        row.extend(OUTCOMES.iter().map(|(k, _)| count(i, k).to_string()));
        row.push(count(i, "total").to_string());
        table.add_row(row);
    }
    for c in 1..=OUTCOMES.len() + 1 {
        if let Some(col) = table.column_mut(c) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    say!("\n{table}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_scales_to_the_peak_and_shows_every_use() {
        assert_eq!(sparkline(&[0, 1, 4, 8]), " ▁▄█");
        assert_eq!(sparkline(&[1, 1000]), "▁█");
        assert_eq!(sparkline(&[]), "");
        assert_eq!(sparkline(&[0, 0]), "  ");
    }

    #[test]
    fn granularity_follows_the_range() {
        assert_eq!(granularity_for(Duration::from_secs(3600)), "minute");
        assert_eq!(granularity_for(Duration::from_secs(24 * 3600)), "hour");
        assert_eq!(granularity_for(Duration::from_secs(30 * 24 * 3600)), "day");
    }
}
