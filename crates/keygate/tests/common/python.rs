//! Python clients of the compatible APIs, run unmodified: each in a venv of its own with its
//! pinned packages, made once and reused by later runs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python of a venv `/tmp/NAME` that holds exactly these `name==version` packages: reused
/// when it has them, else made (or completed) with pip. The error says why pip could not.
pub fn venv_with(name: &str, packages: &[&str]) -> Result<PathBuf, String> {
    // One maker at a time, across threads and processes: a second test that found the venv's
    // python while the first was still making it ran a pip that was not there yet.
    let lock_path = std::env::temp_dir().join(format!("{name}.lock"));
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| format!("cannot create {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    let venv = std::env::temp_dir().join(name);
    let python = venv.join("bin/python");
    let ready = || {
        let check = packages
            .iter()
            .map(|p| {
                let (name, version) = p.split_once("==").expect("a pinned name==version");
                format!("m.version({name:?}) == {version:?}")
            })
            .collect::<Vec<_>>()
            .join(" and ");
        Command::new(&python)
            .args([
                "-c",
                &format!("import importlib.metadata as m, sys; sys.exit(0 if {check} else 1)"),
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ready() {
        return Ok(python);
    }
    // Also over a venv that exists: a run killed while making it left one without pip, and
    // making it again puts pip back.
    {
        let out = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .output()
            .map_err(|e| format!("cannot run python3: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "python3 -m venv {}: {}",
                venv.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--retries",
            "2",
            "--timeout",
            "30",
        ])
        .args(packages)
        .output()
        .map_err(|e| format!("cannot run pip: {e}"))?;
    if !out.status.success() || !ready() {
        return Err(format!(
            "pip install {}: {}",
            packages.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(python)
}

/// The version a requirements file pins `name` to (its `name==version` line).
pub fn pinned(requirements: &Path, name: &str) -> String {
    std::fs::read_to_string(requirements)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}==")).map(str::to_owned))
        .unwrap_or_else(|| panic!("{} pins {name}", requirements.display()))
}

/// The Python of the venv `target/VENV` holding what `requirements` pins, made with pip when
/// missing (`.ci/run` makes it before the tests). `check` pairs each requirement's name with
/// the distribution name Python reports it under (`unkey-py` is `unkey.py`); the venv is ready
/// when each has its pinned version. `Err` says why it could not be made.
pub fn requirements_venv(
    venv: &str,
    requirements: &Path,
    check: &[(&str, &str)],
) -> Result<PathBuf, String> {
    let venv = super::workspace_root().join("target").join(venv);
    let python = venv.join("bin/python");
    let wanted = check
        .iter()
        .map(|(requirement, dist)| {
            format!(
                "m.version({dist:?}) == {:?}",
                pinned(requirements, requirement)
            )
        })
        .collect::<Vec<_>>()
        .join(" and ");
    let script = format!("import importlib.metadata as m, sys; sys.exit(0 if {wanted} else 1)");
    let ready = || {
        Command::new(&python)
            .args(["-c", &script])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ready() {
        return Ok(python);
    }
    eprintln!(
        "installing {} into {} (once)",
        requirements.display(),
        venv.display()
    );
    let run = |cmd: &mut Command| -> Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr)))
        }
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(requirements))?;
    if ready() {
        Ok(python)
    } else {
        Err(format!(
            "{} still lacks what {} pins",
            venv.display(),
            requirements.display()
        ))
    }
}
