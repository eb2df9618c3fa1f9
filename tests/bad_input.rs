//! Bad input ends in one clear error line and exit code 1, never a panic.

use std::path::Path;

use assert_cmd::Command;
use rusqlite::Connection;

const DB: &str = "Plug-in Support/Databases/com.plexapp.plugins.library.db";

fn tidyplex() -> Command {
    let mut cmd = Command::cargo_bin("tidyplex").unwrap();
    cmd.env_remove("TIDYPLEX_PLEX_DIR").env("NO_COLOR", "1");
    cmd
}

/// Runs `args` and returns stderr, asserting exit 1, an `error:` first line and no panic.
fn fails(args: &[&str]) -> String {
    let out = tidyplex().args(args).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout");
    stderr
}

fn plex_dir_with_db(root: &Path) -> std::path::PathBuf {
    let db = root.join(DB);
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    db
}

#[test]
fn a_missing_folder_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    let err = fails(&["--plex-dir", missing.to_str().unwrap(), "status"]);
    assert!(err.contains("does not exist"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_folder_that_is_not_plex_says_what_to_name() {
    let tmp = tempfile::tempdir().unwrap();
    let err = fails(&["--plex-dir", tmp.path().to_str().unwrap(), "sections"]);
    assert!(err.contains("is not a Plex data folder"), "{err}");
    assert!(err.contains("--plex-dir"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn without_a_plex_dir_every_tried_place_is_listed() {
    let out = tidyplex().env("HOME", "/nonexistent-home").arg("status").output().unwrap();
    if std::path::Path::new("/config/Plug-in Support/Databases").exists() {
        return; // this machine really runs Plex in a container
    }
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1));
    for place in ["/var/lib/plexmediaserver", "/config", "/var/snap", "/nonexistent-home/Library"] {
        assert!(err.contains(place), "{place} not in {err}");
    }
    assert!(err.contains("TIDYPLEX_PLEX_DIR"), "{err}");
}

#[test]
fn a_missing_db_given_with_db_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let err = fails(&[
        "--plex-dir",
        tmp.path().to_str().unwrap(),
        "--db",
        tmp.path().join("x.db").to_str().unwrap(),
        "status",
    ]);
    assert!(err.contains("x.db does not exist"), "{err}");
}

#[test]
fn a_db_that_is_not_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(plex_dir_with_db(tmp.path()), "definitely not a database, just some text here")
        .unwrap();
    let err = fails(&["--plex-dir", tmp.path().to_str().unwrap(), "status"]);
    assert!(err.contains("not a SQLite database"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn an_empty_db_file_is_not_plex() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(plex_dir_with_db(tmp.path()), "").unwrap();
    let err = fails(&["--plex-dir", tmp.path().to_str().unwrap(), "sections"]);
    assert!(err.contains("no table metadata_items"), "{err}");
}

#[test]
fn an_unknown_schema_names_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let conn = Connection::open(plex_dir_with_db(tmp.path())).unwrap();
    conn.execute_batch(
        "CREATE TABLE metadata_items (id INTEGER PRIMARY KEY, title TEXT);
         CREATE TABLE library_sections (id INTEGER PRIMARY KEY, name TEXT);",
    )
    .unwrap();
    drop(conn);
    let err = fails(&["--plex-dir", tmp.path().to_str().unwrap(), "status"]);
    assert!(err.contains("no column metadata_items.hash"), "{err}");
    assert!(err.contains("no column library_sections.agent"), "{err}");
    assert!(err.contains("no table media_parts"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn usage_errors_exit_1_not_2() {
    let out = tidyplex().arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = tidyplex().args(["status", "--section", "abc"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = tidyplex().args(["--threads", "0", "status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--threads"));
    let out = tidyplex().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
}
