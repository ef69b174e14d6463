//! Snapshot pages as keygate sends them, for tokens minted here: what the bench and the memory
//! example feed a replica with (included with `#[path]`: examples and benches cannot share a
//! module otherwise).

use keygate_core::{PlainToken, TokenPrefix};

/// Mints `n` tokens and returns the snapshot pages holding them (`page_size` tokens each), and
/// the plaintext of the tokens whose index `keep` selects.
pub fn minted_pages(
    n: usize,
    page_size: usize,
    keep: impl Fn(usize) -> bool,
) -> (Vec<String>, Vec<String>) {
    let prefix = TokenPrefix::default();
    let mut pages = Vec::new();
    let mut kept = Vec::new();
    let mut records = Vec::with_capacity(page_size);
    for i in 0..n {
        let (id, plain) = PlainToken::mint(&prefix);
        let hash: String = plain.hash().0.iter().map(|b| format!("{b:02x}")).collect();
        records.push(serde_json::json!({
            "hash": hash, "id": id.as_str(), "name": format!("seed-{i}"),
            "tenantId": "default", "ownerId": "default", "scopes": ["metrics:read"],
            "enabled": true, "expiresAt": null, "allowedCidrs": [], "metadata": null,
            "externalId": null, "usageControlled": false
        }));
        if keep(i) {
            kept.push(plain.expose().to_owned());
        }
        if records.len() == page_size || i + 1 == n {
            let page = serde_json::json!({
                "cursor": format!("c{i}"), "prefix": prefix.as_str(), "tokens": records,
                "next": (i + 1 < n).then_some(i + 1),
            });
            pages.push(page.to_string());
            records = Vec::with_capacity(page_size);
        }
    }
    (pages, kept)
}
