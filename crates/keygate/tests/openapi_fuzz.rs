//! Generated API testing: schemathesis (PyPI) reads keygate's own `/openapi.json` and calls every
//! operation of every surface with generated requests, checking that no answer is a 5xx, that
//! every status is one the spec documents for that operation, and that every body matches the
//! documented schema. The hooks (`schemathesis/hooks.py`) give each test case a fresh token holding
//! every scope, so that destructive calls (revoking the calling token, deleting its user) cannot
//! lock the run out; this test then checks that every operation got 2xx answers, not only 401s.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Test cases per operation and phase. 20 covers every operation in a few minutes on CI's two
/// cores; `KEYGATE_FUZZ_EXAMPLES` asks for more on a longer run.
const DEFAULT_EXAMPLES: &str = "20";
/// A fixed seed, so a CI failure can be replayed; `KEYGATE_FUZZ_SEED` explores others.
const DEFAULT_SEED: &str = "20261201";
/// The whole schemathesis run is stopped (and the test fails) after this long.
const RUN_BOUND: Duration = Duration::from_secs(15 * 60);
/// No server error, only documented statuses, only documented content types, bodies as
/// documented.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance";

fn hooks_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis")
}

/// The `st` executable: `KEYGATE_SCHEMATHESIS` if set, else the venv `target/schemathesis`,
/// which this test makes itself from the pinned requirements when it is missing (`.ci/run`
/// makes it beforehand), so that a test that did not run is never counted as passed. Not the
/// pinned version fails the test with the fix. Only when the venv cannot be made (no python3,
/// no package registry) is the test skipped, loudly, outside CI, and failed in CI.
fn schemathesis() -> Option<PathBuf> {
    let given = std::env::var_os("KEYGATE_SCHEMATHESIS").map(PathBuf::from);
    let venv = workspace_root().join("target/schemathesis");
    let st = given.clone().unwrap_or_else(|| venv.join("bin/st"));
    let requirements = hooks_dir().join("requirements.txt");
    let install = format!(
        "python3 -m venv target/schemathesis && target/schemathesis/bin/pip install -r {}",
        requirements.display()
    );
    let pinned = std::fs::read_to_string(&requirements)
        .expect("reading the requirements file")
        .lines()
        .find_map(|l| l.strip_prefix("schemathesis==").map(str::to_owned))
        .expect("the requirements file pins schemathesis");
    if given.is_none() && Command::new(&st).arg("--version").output().is_err() {
        if let Err(why) = make_venv(&venv, &requirements) {
            skip_outside_ci(
                "schemathesis_finds_no_failure_on_any_operation",
                &format!(
                    "could not install schemathesis into {}: {why}",
                    venv.display()
                ),
            );
            return None;
        }
    }
    match Command::new(&st).arg("--version").output() {
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains(&pinned) => Some(st),
        Ok(out) => panic!(
            "{} is not schemathesis {pinned} (it says {:?}); reinstall: {install}",
            st.display(),
            String::from_utf8_lossy(&out.stdout).trim()
        ),
        Err(e) => panic!(
            "cannot run {} ({e}); install it with: {install}",
            st.display()
        ),
    }
}

/// `python3 -m venv VENV` and the pinned requirements installed into it.
fn make_venv(venv: &Path, requirements: &Path) -> Result<(), String> {
    eprintln!("installing schemathesis into {} (once)", venv.display());
    let run = |cmd: &mut Command| -> Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
    run(Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--timeout",
            "30",
            "-r",
        ])
        .arg(requirements))
}

/// Runs `cmd` to its end or to `bound`; (exit success, stdout and stderr interleaved by stream).
fn run_bounded(mut cmd: Command, bound: Duration) -> (bool, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting schemathesis");
    let readers: Vec<_> = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|mut stream| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stream.read_to_string(&mut text);
            text
        })
    })
    .collect();
    let deadline = Instant::now() + bound;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for schemathesis") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output: String = readers.into_iter().map(|r| r.join().unwrap()).collect();
    match status {
        Some(s) => (s.success(), output),
        None => (
            false,
            format!("{output}\n### schemathesis was stopped after {bound:?} ###"),
        ),
    }
}

/// Every operation of the served spec, as `METHOD /path`.
fn operations(spec: &Value) -> Vec<String> {
    let methods = ["get", "put", "post", "delete", "patch", "head", "options"];
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("the spec has paths") {
        for m in methods {
            if item.get(m).is_some() {
                ops.push(format!("{} {path}", m.to_uppercase()));
            }
        }
    }
    ops
}

/// The leak intakes, configured so that schemathesis reaches their 2xx answers: a GitLab token
/// the hooks send, and GitHub reports signed here (Python's standard library has no ECDSA) with
/// a key the key file lists. Each report's body is written exactly as Python's `json.dumps`
/// writes it back, which is how the hooks send it: the signature covers those bytes.
struct LeakIntakes {
    keys: PathBuf,
    gitlab: PathBuf,
    reports: PathBuf,
}

impl LeakIntakes {
    const GITLAB_TOKEN: &'static str = "schemathesis-gitlab-revocation-token";

    fn write(dir: &Path) -> Self {
        use base64::Engine;
        use p256::ecdsa::signature::Signer;
        use p256::pkcs8::EncodePublicKey;
        let key = loop {
            let bytes: [u8; 32] = rand::random();
            if let Ok(k) = p256::ecdsa::SigningKey::from_bytes(&bytes.into()) {
                break k;
            }
        };
        let pem = key
            .verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap();
        let keys = dir.join("github-keys.json");
        let file = serde_json::json!({ "public_keys": [
            { "key_identifier": "schemathesis", "key": pem, "is_current": true }] });
        std::fs::write(&keys, file.to_string()).unwrap();
        // More than the run sends, so that none is a replay (which is refused).
        let reports: Vec<Value> = (0..200)
            .map(|_| {
                let body = format!(
                    "[{{\"token\": \"{}\", \"type\": \"keygate_api_token\", \"url\": \
                     \"https://github.com/o/r/blob/x/.env\", \"source\": \"content\"}}]",
                    fresh_token()
                );
                let sig: p256::ecdsa::Signature = key.sign(body.as_bytes());
                let sig = base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes());
                serde_json::json!({ "body": body, "keyId": "schemathesis", "signature": sig })
            })
            .collect();
        let reports_path = dir.join("github-reports.json");
        std::fs::write(&reports_path, Value::Array(reports).to_string()).unwrap();
        let gitlab = dir.join("gitlab-token");
        std::fs::write(&gitlab, Self::GITLAB_TOKEN).unwrap();
        Self {
            keys,
            gitlab,
            reports: reports_path,
        }
    }

    fn args(&self) -> Vec<&str> {
        vec![
            "--github-scanning-keys",
            self.keys.to_str().unwrap(),
            "--gitlab-revocation-token-file",
            self.gitlab.to_str().unwrap(),
            // Schemathesis calls from one address far more than GitLab would.
            "--gitlab-revocation-rate-limit",
            "1000000",
        ]
    }
}

#[test]
fn schemathesis_finds_no_failure_on_any_operation() {
    let Some(st) = schemathesis() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let leaks = LeakIntakes::write(work.path());
    let s = Server::on(Backend::Sqlite)
        // Every surface, so every route is in the spec.
        .args(&["--compat", "instana,dynatrace,interana"])
        .args(&leaks.args())
        .args(&["--scope", "metrics:read=Read metrics"])
        // Schemathesis sends thousands of wrong logins from 127.0.0.1; the limiter (tested in
        // session.rs) would soon answer every login, the hooks' own included, with 429.
        .args(&["--login-max-failures", "1000000"])
        .args(&["--login-max-failures-per-ip", "1000000"])
        .start();
    let spec: Value = s
        .anon("GET", "/openapi.json")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let ops = operations(&spec);
    let stats_path = work.path().join("statuses.json");
    let examples = std::env::var("KEYGATE_FUZZ_EXAMPLES").unwrap_or(DEFAULT_EXAMPLES.into());
    let seed = std::env::var("KEYGATE_FUZZ_SEED").unwrap_or(DEFAULT_SEED.into());

    let mut cmd = Command::new(&st);
    cmd.arg("run")
        .arg(s.url("/openapi.json"))
        .args(["--checks", CHECKS])
        .args(["--max-examples", &examples])
        .args(["--seed", &seed])
        // One worker thread: with two, CPython 3.11 (this machine's Python, 3.11.7) raced in
        // the interpreter-wide recursion counter of its AST constructor when both threads had
        // hypothesis parse a lambda's source at once, and the run failed on "AST constructor
        // recursion depth mismatch" (cpython gh-106905) instead of on anything keygate did.
        .args(["--workers", "1"])
        .args(["--request-timeout", "30"])
        .arg("--no-color")
        // Its report directory and its cache go to the temporary directory, not the worktree.
        .current_dir(work.path())
        .env("SCHEMATHESIS_HOOKS", hooks_dir().join("hooks.py"))
        .env("KEYGATE_FUZZ_URL", &s.url)
        .env("KEYGATE_FUZZ_ROOT_TOKEN", &s.admin_token)
        .env("KEYGATE_FUZZ_STATS", &stats_path)
        .env("KEYGATE_FUZZ_GITLAB_TOKEN", LeakIntakes::GITLAB_TOKEN)
        .env("KEYGATE_FUZZ_GITHUB_REPORTS", &leaks.reports);
    let started = Instant::now();
    let (ok, output) = run_bounded(cmd, RUN_BOUND);
    let took = started.elapsed();
    println!("{output}");
    println!(
        "schemathesis: {} operations, --max-examples {examples}, seed {seed}, {took:.0?}",
        ops.len()
    );
    assert!(
        ok,
        "schemathesis found failures (its output is above; each has a curl line to \
         reproduce it). The server's last lines:\n{}",
        last_lines(&s.output(), 40)
    );

    let stats: Value = serde_json::from_str(
        &std::fs::read_to_string(&stats_path).expect("the hooks wrote their statistics"),
    )
    .unwrap();
    let statuses = stats["statuses"]
        .as_object()
        .expect("statuses per operation");
    let mut table = BTreeMap::new();
    let mut without_2xx = Vec::new();
    for op in &ops {
        let counts = statuses.get(op).and_then(Value::as_object);
        let ok_answers: u64 = counts
            .into_iter()
            .flatten()
            .filter(|(status, _)| status.starts_with('2'))
            .map(|(_, n)| n.as_u64().unwrap())
            .sum();
        if ok_answers == 0 {
            without_2xx.push(op.clone());
        }
        table.insert(op.clone(), counts.cloned().unwrap_or_default());
    }
    for (op, counts) in &table {
        println!("{op:55} {}", Value::Object(counts.clone()));
    }
    println!(
        "tenants made: {}, tokens minted: {}, cases given real ids or credentials: {}",
        stats["tenantsMade"],
        stats["tokensMinted"],
        stats["substituted"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum::<u64>())
            .unwrap_or(0)
    );
    assert!(
        without_2xx.is_empty(),
        "these operations never got a 2xx answer, so schemathesis tested only their errors: \
         {without_2xx:?}"
    );
}

/// Found by schemathesis: the spec allows a rotate body of `null` ("may be left out"), and the
/// server answered it 422. `null` now means what no body means: no grace period.
#[test]
fn rotate_takes_the_null_body_the_spec_allows() {
    let s = Server::on(Backend::Sqlite).start();
    let (id, old) = s.create_token("to-rotate", &["tokens:read"]);
    let r = s
        .admin("POST", &format!("/api/v1/tokens/{id}/rotate"))
        .header("content-type", "application/json")
        .body("null")
        .send()
        .unwrap();
    let (status, v) = status_json(r);
    assert_eq!(status, 201, "{v}");
    assert_ne!(v["id"], id.as_str(), "a new token: {v}");
    assert_eq!(
        s.verify(&old, &[])["valid"],
        false,
        "no grace period by default"
    );
}

/// The media type of a `Content-Type` value, without its parameters.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap()
        .trim()
        .to_ascii_lowercase()
}

/// Every operation without parameters or credentials that answers 200 to anyone: what it
/// serves is the content type its spec names.
#[test]
fn ops_answers_have_the_content_type_the_spec_names() {
    let s = Server::on(Backend::Sqlite).start();
    let spec: Value = s
        .anon("GET", "/openapi.json")
        .send()
        .unwrap()
        .json()
        .unwrap();
    for path in ["/metrics", "/healthz", "/readyz"] {
        let r = s.anon("GET", path).send().unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let served = media_type(r.headers()["content-type"].to_str().unwrap());
        let documented: Vec<String> = spec["paths"][path]["get"]["responses"]["200"]["content"]
            .as_object()
            .unwrap_or_else(|| panic!("{path} documents its 200 content"))
            .keys()
            .map(|k| media_type(k))
            .collect();
        assert!(
            documented.contains(&served),
            "{path} serves {served}; its spec says {documented:?}"
        );
    }
}
