//! A secret scanner written by others finds keygate tokens: Yelp's `detect-secrets` (pinned in
//! tests/scanning/requirements.txt, installed by `.ci/run` into target/scanning) with the plugin
//! users get in contrib/scanners/detect_secrets_keygate.py, run over files holding tokens a real
//! server minted, in the places tokens end up (a shell line, a header, JSON, YAML, a .env file, a
//! URL), beside near misses: a changed character, a truncated or extended token, a token glued
//! to a longer word, the public id alone, another deployment's prefix, random strings.
//!
//! The scanner must report every real token (no false negatives) and no near miss; the checksum
//! is what lets both the plugin and keygate drop a look-alike without a lookup (`MALFORMED`
//! from verify), while a well-formed token that was never issued is `NOT_FOUND`.

mod common;
use common::*;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const PLUGIN: &str = "contrib/scanners/detect_secrets_keygate.py";

/// The venv's Python with the pinned detect-secrets, or `None` after a loud skip outside CI.
fn scanner_python(test: &str) -> Option<PathBuf> {
    let requirements =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scanning/requirements.txt");
    match requirements_venv(
        "scanning",
        &requirements,
        &[("detect-secrets", "detect-secrets")],
    ) {
        Ok(p) => Some(p),
        Err(e) => {
            skip_outside_ci(test, &e);
            None
        }
    }
}

/// SHA-1 in hex, as detect-secrets names what it found (`hashed_secret`).
fn sha1_hex(python: &Path, secrets: &[String]) -> BTreeSet<String> {
    let out = Command::new(python)
        .args([
            "-c",
            "import hashlib, sys\n\
             for line in sys.stdin.read().split():\n    print(hashlib.sha1(line.encode()).hexdigest())",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(secrets.join("\n").as_bytes())?;
            child.wait_with_output()
        })
        .expect("running python");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// What `detect-secrets scan --plugin <ours> --all-files dir` reports as keygate tokens, by file:
/// (file name, line number, hashed secret). Its other plugins stay on, as a user would run it.
fn scan(python: &Path, dir: &Path, prefixes: &str) -> BTreeSet<(String, u64, String)> {
    let out = Command::new(python)
        .args(["-m", "detect_secrets", "scan", "--all-files", "--plugin"])
        .arg(workspace_root().join(PLUGIN))
        .arg(".")
        .current_dir(dir)
        .env("KEYGATE_TOKEN_PREFIXES", prefixes)
        .output()
        .expect("running detect-secrets");
    assert!(
        out.status.success(),
        "detect-secrets failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut found = BTreeSet::new();
    for (file, items) in report["results"].as_object().unwrap() {
        for item in items.as_array().unwrap() {
            if item["type"] == "keygate API token" {
                found.insert((
                    file.clone(),
                    item["line_number"].as_u64().unwrap(),
                    item["hashed_secret"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    found
}

/// The plugin's regex alone (no checksum): every string of a token's shape in `text`.
fn regex_candidates(python: &Path, text: &str, prefixes: &str) -> Vec<String> {
    let out = Command::new(python)
        .args([
            "-c",
            "import sys, json\n\
             sys.path.insert(0, sys.argv[1])\n\
             import detect_secrets_keygate as k\n\
             print(json.dumps(k.candidates(sys.stdin.read())))",
        ])
        .arg(workspace_root().join("contrib/scanners"))
        .env("KEYGATE_TOKEN_PREFIXES", prefixes)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .expect("running python");
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

struct Files {
    /// (file, line, token) of every real token written.
    placed: Vec<(String, u64, String)>,
    /// All the text written, for the regex-only pass.
    text: String,
}

/// Whether `token` is in `line` as a whole word, not as part of a longer one: where a scanner
/// should find it.
fn stands_alone(line: &str, token: &str) -> bool {
    let glue = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    line.match_indices(token).any(|(at, _)| {
        !glue(line[..at].chars().next_back()) && !glue(line[at + token.len()..].chars().next())
    })
}

/// Writes `files` (name → lines) into `dir`, noting where each of `tokens` landed.
fn write_files(dir: &Path, files: &[(&str, Vec<String>)], tokens: &[String]) -> Files {
    let mut placed = Vec::new();
    let mut text = String::new();
    for (name, lines) in files {
        for (i, line) in lines.iter().enumerate() {
            for t in tokens.iter().filter(|t| stands_alone(line, t)) {
                placed.push((name.to_string(), i as u64 + 1, t.clone()));
            }
        }
        let body = lines.join("\n") + "\n";
        std::fs::write(dir.join(name), &body).unwrap();
        text.push_str(&body);
    }
    Files { placed, text }
}

#[test]
fn detect_secrets_finds_every_real_token_and_no_near_miss() {
    let test = "detect_secrets_finds_every_real_token_and_no_near_miss";
    let Some(python) = scanner_python(test) else {
        return;
    };
    let s = Server::on(Backend::Sqlite).start();
    let real: Vec<String> = (0..8)
        .map(|i| s.create_token(&format!("scanned-{i}"), &["tokens:read"]).1)
        .collect();
    let (first_id, _) = s.create_token("id-only", &["tokens:read"]);
    // Well-formed and checksummed, of this deployment, but never issued.
    let unissued = fresh_token();
    let other_deployment = token_with_prefix("acme");
    let changed = bad_checksum(&real[0]);
    let truncated = real[1][..real[1].len() - 1].to_owned();
    let extended = format!("{}x", real[2]);
    let glued = format!("my{}", real[3]);
    let random_shape = format!("kg_{}_{}", "A".repeat(16), "b".repeat(49));

    let files = [
        (
            "deploy.sh",
            vec![
                "#!/bin/sh".to_owned(),
                format!("export KEYGATE_TOKEN={}", real[0]),
                format!(
                    "curl -H 'Authorization: Bearer {}' https://api.example.com/v1/things",
                    real[1]
                ),
                format!("echo {changed}"),
                format!("echo {truncated} {extended}"),
            ],
        ),
        (
            "settings.json",
            vec![
                "{".to_owned(),
                format!("  \"token\": \"{}\",", real[2]),
                format!("  \"id\": \"{first_id}\","),
                format!("  \"other\": \"{other_deployment}\","),
                format!("  \"glued\": \"{glued}\""),
                "}".to_owned(),
            ],
        ),
        (
            "config.yaml",
            vec![
                "service:".to_owned(),
                format!("  api_key: {}", real[3]),
                format!("  backup_key: \"{}\"", real[4]),
                format!("  shape_only: {random_shape}"),
            ],
        ),
        (
            ".env",
            vec![
                format!("PAYMENTS_API_TOKEN={}", real[5]),
                format!("UNUSED={unissued}"),
            ],
        ),
        (
            "notes.md",
            vec![
                format!(
                    "Call https://api.example.com/v1/x?token={}&page=2 to test.",
                    real[6]
                ),
                format!("Two on one line: {} and {}.", real[7], real[0]),
            ],
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut well_formed = real.clone();
    well_formed.push(unissued.clone());
    let written = write_files(dir.path(), &files, &well_formed);

    // The scanner reports exactly the tokens of this deployment's shape with a right checksum,
    // each on every line it is on: every real token, and the never-issued one (which only keygate
    // can tell apart), nothing else.
    let found = scan(&python, dir.path(), "kg");
    let expected: BTreeSet<(String, u64, String)> = written
        .placed
        .iter()
        .map(|(file, line, token)| {
            let hash = sha1_hex(&python, std::slice::from_ref(token));
            (file.clone(), *line, hash.into_iter().next().unwrap())
        })
        .collect();
    assert_eq!(
        written.placed.len(),
        10,
        "9 tokens placed, one of them twice"
    );
    // detect-secrets names files as found under the scanned directory (`./deploy.sh`).
    let found_relative: BTreeSet<(String, u64, String)> = found
        .iter()
        .map(|(f, l, h)| (f.trim_start_matches("./").to_owned(), *l, h.clone()))
        .collect();
    assert_eq!(
        found_relative, expected,
        "detect-secrets found exactly the real tokens, where they are"
    );
    let real_hashes = sha1_hex(&python, &real);
    let found_hashes: BTreeSet<String> = found.iter().map(|(_, _, h)| h.clone()).collect();
    assert!(
        real_hashes.is_subset(&found_hashes),
        "no real token was missed"
    );

    // Under another deployment's prefix the same files hold one token, and only that one.
    let acme = scan(&python, dir.path(), "acme");
    let acme_hashes: BTreeSet<String> = acme.iter().map(|(_, _, h)| h.clone()).collect();
    assert_eq!(
        acme_hashes,
        sha1_hex(&python, std::slice::from_ref(&other_deployment))
    );

    // The regex alone also matches the look-alike with a broken checksum; keygate refuses that
    // one without a lookup (MALFORMED), knows the real ones, and finds no never-issued token.
    let candidates: BTreeSet<String> = regex_candidates(&python, &written.text, "kg")
        .into_iter()
        .collect();
    assert!(candidates.contains(&changed), "{candidates:?}");
    assert!(candidates.contains(&random_shape), "{candidates:?}");
    for t in [&truncated, &extended, &glued, &first_id, &other_deployment] {
        assert!(!candidates.contains(t), "the regex matched {t}");
    }
    for c in &candidates {
        let code = code_of(&s, c);
        let want = if real.contains(c) {
            "VALID"
        } else if *c == unissued {
            "NOT_FOUND"
        } else {
            "MALFORMED"
        };
        assert_eq!(code, want, "verify of candidate {c}");
    }
}
