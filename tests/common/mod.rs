//! Helpers shared by the integration tests: run the real binary on real fixture folders.
#![allow(dead_code)]

pub mod plex;
pub mod stand_in;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use assert_cmd::Command;
use serde_json::Value;

/// One entry of a [`snapshot`]: kind (`d`, `f`, `l`), size, mtime in ns, link target.
pub type Entry = (char, u64, u128, Option<PathBuf>);

/// A tree's entries by relative path.
pub type Snapshot = BTreeMap<String, Entry>;

/// `tidyplex` with a clean environment (no colour, no plex dir from the caller's shell).
pub fn tidyplex() -> Command {
    Command::from_std(tidyplex_std())
}

/// [`tidyplex`] as a plain `std::process::Command`, for a child that runs beside the test.
pub fn tidyplex_std() -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("tidyplex"));
    // No token from the caller's shell, and no real Plex: port 1 refuses connections.
    cmd.env_remove("TIDYPLEX_PLEX_DIR")
        .env_remove("TIDYPLEX_PLEX_TOKEN")
        .env_remove("TIDYPLEX_PLEX_TIMEOUT")
        .env("TIDYPLEX_PLEX_URL", "http://127.0.0.1:1")
        .env("NO_COLOR", "1");
    cmd
}

/// Runs `tidyplex --plex-dir DIR ARGS…`, asserts exit code `code`, returns stdout.
pub fn run(dir: &Path, args: &[&str], code: i32) -> String {
    let out = tidyplex().arg("--plex-dir").arg(dir).args(args).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(code), "{args:?}\nstdout: {stdout}\nstderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stdout
}

/// Runs `tidyplex --plex-dir DIR ARGS…` expecting failure; returns stderr.
pub fn fail(dir: &Path, args: &[&str]) -> String {
    let out = tidyplex().arg("--plex-dir").arg(dir).args(args).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// A fixture built by the real `fixture` command in a fresh temp dir; returns the temp dir
/// (keep it alive), the plex dir and the report.
pub fn fixture(extra: &[&str]) -> (tempfile::TempDir, PathBuf, Value) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("Plex Media Server");
    let out = tidyplex().arg("fixture").arg(&dir).arg("--json").args(extra).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = serde_json::from_slice(&out.stdout).unwrap();
    (tmp, dir, report)
}

/// Plans `args` into `tmp/name`; returns the file and the changeset.
pub fn plan_to(
    tmp: &Path,
    dir: &Path,
    name: &str,
    args: &[&str],
) -> (PathBuf, tidyplex::changeset::Changeset) {
    let file = tmp.join(name);
    let mut all = vec!["plan", "-o", file.to_str().unwrap()];
    all.extend_from_slice(args);
    run(dir, &all, 0);
    let text = std::fs::read_to_string(&file).unwrap();
    (file, tidyplex::changeset::Changeset::parse(&text).unwrap())
}

/// `apply FILE --yes --json EXTRA…`, asserting the exit code; returns the report.
pub fn apply_json(dir: &Path, file: &Path, extra: &[&str], code: i32) -> Value {
    let mut args = vec!["apply", file.to_str().unwrap(), "--yes", "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&run(dir, &args, code)).unwrap()
}

/// Runs a command with `--json` and parses stdout.
pub fn json(dir: &Path, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&run(dir, &args, 0)).unwrap()
}

/// Everything under `root`: relative path → (kind, size, mtime, link target), for proving
/// a command changed nothing. SQLite's `-wal`/`-shm` companions are left out.
pub fn snapshot(root: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
        if rel.ends_with("-wal") || rel.ends_with("-shm") {
            continue;
        }
        let meta = entry.path().symlink_metadata().unwrap();
        let kind = if meta.is_dir() {
            'd'
        } else if meta.file_type().is_symlink() {
            'l'
        } else {
            'f'
        };
        let mtime = meta.modified().unwrap().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let size = if kind == 'd' { 0 } else { meta.len() };
        out.insert(rel, (kind, size, mtime, std::fs::read_link(entry.path()).ok()));
    }
    out
}

/// Asserts two snapshots are equal, naming only the entries that differ. The DB folder's own
/// mtime may change: a read-only open of a WAL database creates and removes `-wal`/`-shm`.
pub fn assert_unchanged(before: &Snapshot, after: &Snapshot) {
    let mut diffs = Vec::new();
    for key in before.keys().chain(after.keys().filter(|k| !before.contains_key(*k))) {
        let (a, b) = (before.get(key), after.get(key));
        let same = match (a, b) {
            (Some(a), Some(b)) if key == "Plug-in Support/Databases" => (a.0, a.1) == (b.0, b.1),
            (a, b) => a == b,
        };
        if !same {
            diffs.push(format!("{key}: {a:?} -> {b:?}"));
        }
    }
    assert!(diffs.is_empty(), "changed on disk:\n{}", diffs.join("\n"));
}

/// A snapshot without tidyplex's own state folder (lock, journal) and its parent's mtime.
pub fn without_state(mut snap: Snapshot) -> Snapshot {
    snap.retain(|k, _| !k.starts_with("Plug-in Support/tidyplex"));
    if let Some(e) = snap.get_mut("Plug-in Support") {
        e.2 = 0;
    }
    snap
}

/// The DB of a plex dir.
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("Plug-in Support/Databases/com.plexapp.plugins.library.db")
}

/// Whether the tests run as root (who can read anything, so permission tests say nothing).
pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Starts `apply FILE --yes ARGS…` and returns once it waits before its deletions (it goes on
/// when `pause` is removed); stdout is piped, for `wait_with_output`.
pub fn paused_apply(dir: &Path, file: &Path, args: &[&str], pause: &Path) -> std::process::Child {
    use std::time::{Duration, Instant};
    let child = tidyplex_std()
        .args(["--plex-dir", dir.to_str().unwrap(), "apply", file.to_str().unwrap(), "--yes"])
        .args(args)
        .env("TIDYPLEX_PAUSE", format!("before-deletions:{}", pause.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !pause.exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "apply never reached its deletions");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}
