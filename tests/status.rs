//! `sections` and `status` on real fixture folders: the figures match what the fixture built,
//! nothing on disk changes, and broken or locked databases end in one clear error.

mod common;

use common::*;
use serde_json::Value;

/// `status --json` reports exactly the disk use and column states the fixture built.
fn status_matches_report(extra: &[&str], form: &str) {
    let (_tmp, dir, report) = fixture(extra);
    let status = json(&dir, &["status"]);
    assert_eq!(status["trigger_form"], form);
    let usage = report["usage"].as_object().unwrap();
    assert!(usage.len() >= 3, "{usage:?}");
    for (area, expected) in usage {
        assert_eq!(&status["usage"][area], expected, "disk use of {area}");
    }
    for (area, got) in status["usage"].as_object().unwrap() {
        if !usage.contains_key(area) {
            assert_eq!(got["files"], 0, "{area} is not in the fixture's report");
        }
    }
    let sections = report["sections"].as_array().unwrap();
    assert_eq!(status["sections"].as_array().unwrap().len(), sections.len());
    for (expected, got) in sections.iter().zip(status["sections"].as_array().unwrap()) {
        assert_eq!(got["id"], expected["id"]);
        assert_eq!(got["name"], expected["name"]);
        assert_eq!(got["items"], expected["items"], "items of section {}", expected["name"]);
        assert_eq!(got["columns"], expected["columns"], "columns of section {}", expected["name"]);
    }
}

#[test]
fn status_figures_match_the_scoped_fixture() {
    status_matches_report(&["--triggers", "scoped"], "scoped");
}

#[test]
fn status_figures_match_the_broad_fixture() {
    status_matches_report(&["--triggers", "broad"], "broad");
}

#[test]
fn status_figures_match_the_windows_layout() {
    status_matches_report(&["--windows"], "scoped");
}

#[test]
fn sections_lists_every_section_with_what_is_still_local() {
    let (_tmp, dir, report) = fixture(&[]);
    let list = json(&dir, &["sections"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), report["sections"].as_array().unwrap().len());
    for (s, expected) in list.iter().zip(report["sections"].as_array().unwrap()) {
        let columns = expected["columns"].as_object().unwrap();
        let local: u64 = columns
            .values()
            .map(|c| c["local"].as_u64().unwrap() + c["media"].as_u64().unwrap())
            .sum();
        assert_eq!(s["still_local"], local, "{}", s["name"]);
    }
    let table = run(&dir, &["sections"], 0);
    let korean = table.lines().find(|l| l.contains("영화")).expect("the Korean section is listed");
    let movies = table.lines().find(|l| l.contains(" Movies ")).unwrap();
    // Wide characters take two columns: the TYPE column starts at the same display width.
    let width =
        |l: &str, col: &str| unicode_width::UnicodeWidthStr::width(&l[..l.find(col).unwrap()]);
    assert_eq!(width(korean, "movie"), width(movies, "movie"), "{table}");
}

#[test]
fn status_can_be_limited_to_sections() {
    let (_tmp, dir, _) = fixture(&[]);
    let status = json(&dir, &["status", "--section", "1", "--section", "3"]);
    let ids: Vec<&Value> =
        status["sections"].as_array().unwrap().iter().map(|s| &s["id"]).collect();
    assert_eq!(ids, [1, 3]);
    let err = fail(&dir, &["status", "--section", "99"]);
    assert!(err.contains("no section 99"), "{err}");
}

#[test]
fn the_human_status_is_a_small_table() {
    let (_tmp, dir, _) = fixture(&["--triggers", "broad"]);
    let text = run(&dir, &["status"], 0);
    for expected in [
        "DISK USE",
        "Metadata/Movies",
        "PhotoTranscoder",
        "FTS triggers      broad",
        "COLUMN",
        "HTTP",
    ] {
        assert!(text.contains(expected), "{expected} missing:\n{text}");
    }
    assert!(!text.contains('\u{1b}'), "no colour without a terminal");
}

#[test]
fn sections_and_status_change_nothing_on_disk() {
    let (_tmp, dir, _) = fixture(&[]);
    let before = snapshot(&dir);
    let db_before = std::fs::read(db_path(&dir)).unwrap();
    run(&dir, &["sections"], 0);
    run(&dir, &["status"], 0);
    run(&dir, &["status", "--json"], 0);
    assert_unchanged(&before, &snapshot(&dir));
    assert_eq!(std::fs::read(db_path(&dir)).unwrap(), db_before);
}

#[test]
fn a_locked_db_is_a_clear_error() {
    let (_tmp, dir, _) = fixture(&[]);
    let conn = rusqlite::Connection::open(db_path(&dir)).unwrap();
    // Exclusive locking mode in WAL keeps every other connection out, as a Plex write storm can.
    conn.execute_batch(
        "PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE; UPDATE taggings SET id=id WHERE 0;",
    )
    .unwrap();
    let err = fail(&dir, &["status"]);
    assert!(err.contains("locked"), "{err}");
    assert!(err.contains("when Plex is idle"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    drop(conn);
}

#[test]
fn a_corrupt_db_is_a_clear_error() {
    let (_tmp, dir, _) = fixture(&[]);
    let db = db_path(&dir);
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 64 * 1024, "the fixture DB has real pages");
    let end = bytes.len() - 4096;
    for b in &mut bytes[4096..end] {
        *b ^= 0x5a;
    }
    std::fs::write(&db, bytes).unwrap();
    for companion in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{companion}", db.display()));
    }
    let err = fail(&dir, &["status"]);
    assert!(err.contains("malformed") || err.contains("not a database"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn unreadable_folders_are_named() {
    if is_root() {
        eprintln!("skipped: root reads everything, so an unreadable folder cannot be made");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let (_tmp, dir, _) = fixture(&[]);
    let locked = dir.join("Metadata/Movies");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let err = fail(&dir, &["status"]);
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(err.contains("Metadata/Movies"), "{err}");
}
