//! Configurations read from the user documentation, so that a test runs exactly what a reader
//! copies and the page cannot drift from what is tested.

use super::workspace_root;

/// The fenced block that follows `<!-- gateway-config: NAME -->` in `docs/gateways.md`.
pub fn gateway_config(name: &str) -> String {
    let path = workspace_root().join("docs/gateways.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let marker = format!("<!-- gateway-config: {name} -->");
    let mut found = doc.match_indices(&marker);
    let (at, _) = found
        .next()
        .unwrap_or_else(|| panic!("{marker} is not in {}", path.display()));
    assert!(found.next().is_none(), "{marker} is there twice");
    let rest = &doc[at + marker.len()..];
    let fence = rest
        .find("```")
        .unwrap_or_else(|| panic!("no block after {marker}"));
    assert!(
        rest[..fence].trim().is_empty(),
        "the block must follow {marker} directly"
    );
    let body = &rest[fence..];
    let start = body.find('\n').unwrap() + 1;
    let end = body[start..]
        .find("\n```")
        .unwrap_or_else(|| panic!("the block after {marker} does not end"));
    body[start..start + end + 1].to_owned()
}

/// `text` with each `from` replaced by its `to`. A `from` that is not there fails the test: the
/// page's example changed, and the test must follow it.
pub fn substitute(text: &str, pairs: &[(&str, String)]) -> String {
    let mut out = text.to_owned();
    for (from, to) in pairs {
        assert!(
            out.contains(from),
            "{from:?} is not in the documented configuration:\n{text}"
        );
        out = out.replace(from, to);
    }
    out
}
