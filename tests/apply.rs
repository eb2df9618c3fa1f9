//! `apply` end to end on fixture folders: every invariant of design.md §4 and the faults of
//! issue 4 (drift, locks, crashes, tampering, concurrency, refusing filesystems).

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use tidyplex::changeset::Op;

fn ro(dir: &Path) -> Connection {
    Connection::open_with_flags(db_path(dir), OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

fn rw(dir: &Path) -> Connection {
    Connection::open(db_path(dir)).unwrap()
}

/// Rows of a query as text, for before/after comparisons.
fn dump(conn: &Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        Ok((0..n).map(|i| format!("{:?}", r.get_ref(i).unwrap())).collect::<Vec<_>>().join("|"))
    })
    .unwrap()
    .map(|r| r.unwrap())
    .collect()
}

/// Everything apply must never change in the DB: schema objects (trigger SQL included), FTS
/// shadow tables, and every non-image column of `metadata_items`.
fn untouchable(dir: &Path) -> Vec<String> {
    let conn = ro(dir);
    let mut out = dump(&conn, "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name");
    for shadow in ["segments", "segdir", "docsize", "stat"] {
        for table in ["fts4_metadata_titles_icu", "fts4_tag_titles_icu"] {
            out.extend(dump(&conn, &format!("SELECT * FROM {table}_{shadow}")));
        }
    }
    let cols: Vec<String> = dump(&conn, "SELECT name FROM pragma_table_info('metadata_items')")
        .into_iter()
        .map(|c| c.trim_matches(|ch| ch != '"').trim_matches('"').to_string())
        .filter(|c| !c.starts_with("user_") || !c.ends_with("_url"))
        .collect();
    let list = cols.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
    out.extend(dump(&conn, &format!("SELECT {list} FROM metadata_items ORDER BY id")));
    out
}

/// The DB is sound: every ordinary table passes `quick_check` (stock SQLite cannot check
/// `metadata_items`, whose `icu_root` index needs Plex's collation: it is scanned whole instead).
fn assert_sound(dir: &Path) {
    let conn = ro(dir);
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'fts4%' AND name != 'metadata_items'")
        .unwrap();
    let tables: Vec<String> =
        stmt.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect();
    assert!(tables.len() > 5);
    for name in tables {
        let ok: String =
            conn.query_row(&format!("PRAGMA quick_check('{name}')"), [], |r| r.get(0)).unwrap();
        assert_eq!(ok, "ok", "{name}");
    }
    let n: i64 = conn
        .query_row("SELECT count(*) FROM (SELECT * FROM metadata_items)", [], |r| r.get(0))
        .unwrap();
    assert!(n > 0);
}

fn column(dir: &Path, id: i64, col: &str) -> Option<String> {
    ro(dir)
        .query_row(&format!("SELECT {col} FROM metadata_items WHERE id = ?1"), [id], |r| r.get(0))
        .unwrap()
}

/// The full cycle on one fixture layout: plan → apply → plan finds nothing; URLs written as
/// planned; triggers, FTS tables and other columns untouched; never-touch files intact.
fn full_cycle(extra: &[&str], strategy: &str) {
    cycle(extra, strategy, false)
}

/// plan → show → apply → plan says "No changes.", with the plan saved in format 1 when `format1`.
fn cycle(extra: &[&str], strategy: &str, format1: bool) {
    let (tmp, dir, _) = fixture(extra);
    let keep = [
        "Preferences.xml",
        "Plug-in Support/Databases/com.plexapp.plugins.library.blobs.db",
        "Plug-in Support/Databases/com.plexapp.plugins.library.db-2026-11-20",
        "Logs/Plex Media Server.log",
        "Cache/other.dat",
    ];
    let kept_before: Vec<Vec<u8>> =
        keep.iter().map(|p| std::fs::read(dir.join(p)).unwrap()).collect();
    let before = untouchable(&dir);
    let (file, cs) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "3"]);
    assert!(cs.summary.urls > 0 && cs.summary.files > 0);
    if format1 {
        std::fs::write(&file, cs.to_format1_yaml()).unwrap();
    }
    let shown = run(&dir, &["show", file.to_str().unwrap()], 0);
    assert!(shown.contains(&format!("{} URL", cs.summary.urls)), "{shown}");
    let report = apply_json(&dir, &file, &[], 0);
    assert_eq!(report["strategy"], strategy);
    assert_eq!(report["applied"], cs.changes.len() as u64, "{report}");
    assert_eq!(report["bytes_freed"], cs.summary.bytes);
    assert!(Path::new(report["backup"].as_str().unwrap()).is_file());
    for change in &cs.changes {
        match change.op().unwrap() {
            Op::SetUrl(s) => {
                assert_eq!(column(&dir, s.id, &s.column).as_deref(), Some(s.to.as_str()))
            }
            Op::DeleteFile(f) => {
                assert!(dir.join(&f.path).symlink_metadata().is_err(), "{}", f.path)
            }
            Op::DeleteDir(d) => assert!(!dir.join(&d.path).exists(), "{}", d.path),
            Op::Upload(_) | Op::PlexCall(_) | Op::RefreshLink(_) => unreachable!(),
        }
    }
    assert_eq!(untouchable(&dir), before, "triggers, FTS tables and other columns are unchanged");
    for (p, bytes) in keep.iter().zip(kept_before) {
        assert_eq!(std::fs::read(dir.join(p)).unwrap(), bytes, "{p}");
    }
    let again = run(&dir, &["plan", "--stage", "3"], 0);
    assert!(again.starts_with("No changes. The library is clean."), "{again}");
    // Idempotent: the same changeset again changes nothing.
    let report = apply_json(&dir, &file, &[], 0);
    assert_eq!(report["applied"], 0);
    assert_eq!(report["already"], cs.changes.len() as u64);
}

#[test]
fn a_full_cycle_converges_on_the_scoped_fixture() {
    full_cycle(&["--triggers", "scoped"], "direct updates");
}

#[test]
fn a_full_cycle_converges_on_the_broad_fixture_with_triggers_set_aside() {
    full_cycle(&["--triggers", "broad"], "FTS triggers set aside in each transaction");
}

#[test]
fn a_full_cycle_converges_on_the_windows_layout() {
    full_cycle(&["--windows"], "direct updates");
}

#[test]
fn a_full_cycle_converges_from_a_format_1_file() {
    cycle(&[], "direct updates", true);
}

#[test]
fn a_full_cycle_converges_on_the_1_42_schema() {
    full_cycle(
        &["--schema", "1.42", "--triggers", "broad"],
        "FTS triggers set aside in each transaction",
    );
}

#[test]
fn a_file_referenced_since_planning_is_kept() {
    let (tmp, dir, _) = fixture(&[]);
    let (file, cs) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "1", "--section", "2"]);
    // A stale earlier selection of a new-agent movie is planned for deletion …
    let (item, path) = cs
        .changes
        .iter()
        .find_map(|c| match c.op() {
            Some(Op::DeleteFile(f)) if f.path.contains("/_combined/posters/") => {
                Some((c.item.unwrap(), f.path.clone()))
            }
            _ => None,
        })
        .expect("a single unused poster is planned");
    // … then the user picks it again in Plex.
    let name = path.rsplit('/').next().unwrap();
    rw(&dir)
        .execute(
            "UPDATE metadata_items SET user_thumb_url = ?1 WHERE id = ?2",
            (format!("metadata://posters/{name}"), item),
        )
        .unwrap();
    let report = apply_json(&dir, &file, &[], 3);
    assert!(dir.join(&path).exists(), "a referenced file is never deleted");
    assert_eq!(report["referenced"][0], path.as_str());
}

#[test]
fn drift_is_skipped_and_strict_refuses_everything() {
    let (tmp, dir, _) = fixture(&[]);
    let (file, cs) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "2"]);
    let s = cs.changes.iter().find_map(|c| c.set_url.clone()).unwrap();
    rw(&dir)
        .execute(
            &format!(
                "UPDATE metadata_items SET {} = 'https://example.com/mine.jpg' WHERE id = ?1",
                s.column
            ),
            [s.id],
        )
        .unwrap();
    let deleted = cs.changes.iter().find_map(|c| c.delete_file.clone()).unwrap();
    let abs = dir.join(&deleted.path);
    if abs.symlink_metadata().unwrap().is_file() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(&abs)
            .unwrap()
            .set_len(deleted.size + 10)
            .unwrap();
    } else {
        std::fs::remove_file(&abs).unwrap();
    }
    let before = without_state(snapshot(&dir));
    let db_before =
        dump(&ro(&dir), "SELECT id, user_thumb_url, user_art_url FROM metadata_items ORDER BY id");
    let err = tidyplex()
        .args([
            "--plex-dir",
            dir.to_str().unwrap(),
            "apply",
            file.to_str().unwrap(),
            "--yes",
            "--strict",
        ])
        .output()
        .unwrap();
    assert_eq!(err.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&err.stderr).contains("drifted"));
    assert_unchanged(&before, &without_state(snapshot(&dir)));
    assert_eq!(
        dump(&ro(&dir), "SELECT id, user_thumb_url, user_art_url FROM metadata_items ORDER BY id"),
        db_before
    );

    let report = apply_json(&dir, &file, &[], 3);
    assert_eq!(
        column(&dir, s.id, &s.column).as_deref(),
        Some("https://example.com/mine.jpg"),
        "the user's value stays"
    );
    let drifted = report["drifted"].to_string();
    assert!(drifted.contains(&format!("metadata_items {} {}", s.id, s.column)), "{drifted}");
    if abs.exists() {
        assert!(drifted.contains(&deleted.path), "{drifted}");
    }
}

#[test]
fn a_changeset_for_another_plex_dir_is_refused() {
    let (tmp, dir, _) = fixture(&[]);
    let (_other_tmp, other, _) = fixture(&[]);
    let (file, _) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "2"]);
    let before = snapshot(&other);
    let err = fail(&other, &["apply", file.to_str().unwrap(), "--yes"]);
    assert!(err.contains("was planned for"), "{err}");
    assert_unchanged(&before, &snapshot(&other));
}

/// Applies each tampered variant of `text` and asserts it is refused with `expected`.
fn refused(dir: &Path, tmp: &Path, text: &str, cases: &[(String, String, &str)]) {
    for (from, to, expected) in cases {
        assert!(text.contains(from.as_str()), "{from} not in the changeset");
        let bad = tmp.join("bad.yaml");
        std::fs::write(&bad, text.replacen(from.as_str(), to, 1)).unwrap();
        let err = fail(dir, &["apply", bad.to_str().unwrap(), "--yes"]);
        assert!(err.contains(expected), "{to}: {err}");
    }
}

#[test]
fn tampered_changesets_are_refused_whole() {
    let (tmp, dir, _) = fixture(&[]);
    let (file, cs) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "2"]);
    let text = std::fs::read_to_string(&file).unwrap();
    // A folder inside Metadata that is a symlink to somewhere else.
    let outside = tmp.path().join("precious");
    let hash = "0".repeat(38);
    let inner = format!("{hash}.bundle/Contents/_combined/posters");
    std::fs::create_dir_all(outside.join(&inner)).unwrap();
    std::fs::write(outside.join(&inner).join("photo.jpg"), "keep me").unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("Metadata/Movies/ff")).unwrap();
    let before = snapshot(&dir);
    let db_before = untouchable(&dir);

    // Format 2, as plan writes it: a deletion folder and its first line.
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().position(|l| l.starts_with("    Metadata/") && l.ends_with(':')).unwrap();
    let (folder, first) = (lines[at].to_string(), lines[at + 1].to_string());
    assert!(first.starts_with("    - "), "{first}");
    let first_to = lines.iter().find(|l| l.trim_start().starts_with("to: https://")).unwrap();
    let cases = [
        (folder.clone(), "    /etc:".to_string(), "not a relative path"),
        (first.clone(), "    - ../../../../Preferences.xml 1 2".to_string(), "`..`"),
        (folder.clone(), "    Plug-in Support/Databases:".to_string(), "outside the cleanable"),
        (
            format!("{folder}\n{first}"),
            format!("    Metadata/Movies/ff/{hash}.bundle:\n    - Contents/_combined/posters/photo.jpg 7 1"),
            "symlink",
        ),
        (first_to.to_string(), "      to: ftp://example.com/x.jpg".to_string(), "not an http(s) URL"),
        ("    user_thumb_url:".to_string(), "    title:".to_string(), "not an image column"),
        ("  delete:".to_string(), "  rm_rf:".to_string(), "unknown field"),
    ];
    refused(&dir, tmp.path(), &text, &cases);

    // Format 1, as tidyplex 0.1 wrote it.
    let old = cs.to_format1_yaml();
    let first_path =
        old.lines().find(|l| l.trim_start().starts_with("path: Metadata/")).unwrap().to_string();
    let first_to =
        old.lines().find(|l| l.trim_start().starts_with("to: https://")).unwrap().to_string();
    let cases = [
        (first_path.clone(), "    path: /etc/passwd".to_string(), "not a relative path"),
        (first_path.clone(), "    path: Metadata/../Preferences.xml".to_string(), "`..`"),
        (
            first_path.clone(),
            "    path: Plug-in Support/Databases/com.plexapp.plugins.library.db".to_string(),
            "outside the cleanable",
        ),
        (first_path.clone(), format!("    path: Metadata/Movies/ff/{inner}/photo.jpg"), "symlink"),
        (first_to.clone(), "    to: ftp://example.com/x.jpg".to_string(), "not an http(s) URL"),
        (
            "    column: user_thumb_url".to_string(),
            "    column: title".to_string(),
            "not an image column",
        ),
        ("  delete_dir:".to_string(), "  rm_rf:".to_string(), "unknown field"),
    ];
    refused(&dir, tmp.path(), &old, &cases);

    assert_unchanged(&before, &snapshot(&dir));
    assert_eq!(untouchable(&dir), db_before);
    assert!(outside.join(&inner).join("photo.jpg").exists());
}

#[test]
fn deletion_never_follows_symlinks() {
    let (tmp, dir, _) = fixture(&[]);
    let precious = tmp.path().join("precious.jpg");
    std::fs::write(&precious, "not Plex's").unwrap();
    // An unused link inside a bundle to a file outside the plex dir: the bundle is left alone.
    let db = tidyplex::plex::db::Db::open(&db_path(&dir)).unwrap();
    let lib = tidyplex::plex::model::Library::read(&db).unwrap();
    let bundle = lib.bundle_of(lib.item(1).unwrap()).unwrap();
    let posters = dir.join(&bundle).join("Contents/com.plexapp.agents.imdb/posters");
    std::os::unix::fs::symlink(&precious, posters.join("link-out")).unwrap();
    let (file, cs) = plan_to(tmp.path(), &dir, "out.yaml", &["--stage", "1", "--section", "1"]);
    assert!(!cs.to_yaml().contains(&bundle), "a bundle with a link out of the plex dir is planned");
    apply_json(&dir, &file, &[], 0);
    assert!(posters.join("link-out").symlink_metadata().is_ok());
    assert_eq!(std::fs::read(&precious).unwrap(), b"not Plex's");
    // An unused link to Preferences.xml goes; Preferences.xml stays.
    std::fs::remove_file(posters.join("link-out")).unwrap();
    std::os::unix::fs::symlink(dir.join("Preferences.xml"), posters.join("link-prefs")).unwrap();
    let prefs = std::fs::read(dir.join("Preferences.xml")).unwrap();
    let (file, cs) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "1", "--section", "1"]);
    assert!(cs.to_yaml().contains("com.plexapp.agents.imdb/posters"));
    apply_json(&dir, &file, &[], 0);
    assert!(posters.join("link-prefs").symlink_metadata().is_err(), "the link is gone");
    assert_eq!(std::fs::read(dir.join("Preferences.xml")).unwrap(), prefs, "its target is not");
}

#[test]
fn a_locked_db_defers_and_deletes_nothing_it_frees() {
    let (tmp, dir, _) = fixture(&[]);
    let (file, cs) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "2"]);
    let freed: Vec<String> = cs
        .changes
        .iter()
        .filter_map(|c| c.set_url.as_ref())
        .filter_map(|s| {
            let value = s.from.clone()?;
            let rest = value.strip_prefix("metadata://")?.to_string();
            Some(rest)
        })
        .collect();
    // Another writer holds the lock for longer than apply waits.
    let holder = rw(&dir);
    holder.execute_batch("BEGIN IMMEDIATE; UPDATE taggings SET id = id WHERE 0;").unwrap();
    let started = Instant::now();
    let report = apply_json(&dir, &file, &["--lock-wait", "1"], 3);
    assert!(started.elapsed() < Duration::from_secs(20));
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(report["deferred"].as_array().unwrap().len() as u64, cs.summary.urls);
    for s in cs.changes.iter().filter_map(|c| c.set_url.as_ref()) {
        assert_eq!(column(&dir, s.id, &s.column), s.from, "nothing written");
    }
    // Files that only the deferred switches would have freed are still referenced: kept.
    let referenced = report["referenced"].to_string();
    assert!(!freed.is_empty());
    for change in &cs.changes {
        if let Some(Op::DeleteFile(f)) = change.op() {
            if freed.iter().any(|rest| f.path.ends_with(rest.as_str())) {
                assert!(dir.join(&f.path).symlink_metadata().is_ok(), "{} kept", f.path);
                assert!(referenced.contains(&f.path));
            }
        }
    }
    assert_sound(&dir);
    // Once Plex lets go, a new round finishes the job.
    let (file, _) = plan_to(tmp.path(), &dir, "again.yaml", &["--stage", "2"]);
    apply_json(&dir, &file, &[], 0);
    assert!(run(&dir, &["plan", "--stage", "2"], 0).starts_with("No changes."));
}

#[test]
fn a_crash_between_db_commit_and_deletion_is_finished_by_the_next_run() {
    let (tmp, dir, _) = fixture(&[]);
    let (file, cs) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "2"]);
    let out = tidyplex()
        .args(["--plex-dir", dir.to_str().unwrap(), "apply", file.to_str().unwrap(), "--yes"])
        .env("TIDYPLEX_FAULT", "after-db-commit")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the process died");
    // DB first: the URLs are written, the files are all still there.
    for change in &cs.changes {
        match change.op().unwrap() {
            Op::SetUrl(s) => {
                assert_eq!(column(&dir, s.id, &s.column).as_deref(), Some(s.to.as_str()))
            }
            Op::DeleteFile(f) => assert!(dir.join(&f.path).symlink_metadata().is_ok()),
            Op::DeleteDir(d) => assert!(dir.join(&d.path).exists()),
            Op::Upload(_) | Op::PlexCall(_) | Op::RefreshLink(_) => {}
        }
    }
    // The next plan has exactly the deletions left; the next apply reports and finishes.
    let (_, next) = plan_to(tmp.path(), &dir, "next.yaml", &["--stage", "2"]);
    assert_eq!(next.summary.urls, 0);
    assert_eq!(next.summary.files, cs.summary.files);
    let report = apply_json(&dir, &file, &[], 0);
    assert!(report["previous_interrupted"].as_str().unwrap().contains("after its database writes"));
    assert!(run(&dir, &["plan", "--stage", "2"], 0).starts_with("No changes."));
}

#[test]
fn two_applies_at_once_the_second_fails_fast_naming_the_first() {
    let (tmp, dir, _) = fixture(&[]);
    let (file, _) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "2"]);
    let holder = rw(&dir);
    holder.execute_batch("BEGIN IMMEDIATE; UPDATE taggings SET id = id WHERE 0;").unwrap();
    let bin = assert_cmd::cargo::cargo_bin("tidyplex");
    let mut first = std::process::Command::new(bin)
        .args([
            "--plex-dir",
            dir.to_str().unwrap(),
            "apply",
            file.to_str().unwrap(),
            "--yes",
            "--lock-wait",
            "8",
        ])
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first apply holds the lock (its journal says it started).
    let journal = dir.join("Plug-in Support/tidyplex/journal/1.jsonl");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&journal).unwrap_or_default().contains("started") {
        assert!(Instant::now() < deadline, "the first apply never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    let err = fail(&dir, &["apply", file.to_str().unwrap(), "--yes"]);
    assert!(started.elapsed() < Duration::from_secs(3), "fails fast");
    assert!(err.contains("another tidyplex apply is running"), "{err}");
    assert!(err.contains(&format!("pid {}", first.id())), "{err}");
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(first.wait().unwrap().code(), Some(0));
}

#[test]
fn without_a_terminal_apply_needs_yes() {
    let (tmp, dir, _) = fixture(&[]);
    let (file, _) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "2"]);
    let before = snapshot(&dir);
    let err = fail(&dir, &["apply", file.to_str().unwrap()]);
    assert!(err.contains("--yes"), "{err}");
    assert_unchanged(&before, &snapshot(&dir));
}

#[test]
fn urls_with_quotes_are_written_exactly_through_bound_parameters_and_plex_sqlite() {
    for plex_sqlite in [None, Some("/usr/bin/sqlite3")] {
        if plex_sqlite.is_some_and(|p| !Path::new(p).exists()) {
            panic!("the sqlite3 command line shell is needed (apt-get install sqlite3)");
        }
        let (tmp, dir, _) = fixture(&[]);
        let odd = "https://image.tmdb.org/t/p/original/it's-\"quoted\";DROP_TABLE_tags;--.jpg";
        // Make one new-agent candidate's provider URL awkward.
        let conn = rw(&dir);
        let (item, value): (i64, String) = conn
            .query_row(
                "SELECT m.id, m.user_thumb_url FROM metadata_items m JOIN taggings t \
                 ON t.metadata_item_id = m.id AND t.thumb_url = m.user_thumb_url \
                 WHERE m.library_section_id = 2 AND t.text LIKE 'http%' LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        conn.execute(
            "UPDATE taggings SET text = ?1 WHERE metadata_item_id = ?2 AND thumb_url = ?3",
            (odd, item, &value),
        )
        .unwrap();
        drop(conn);
        let (file, _) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "2", "--section", "2"]);
        let mut args = vec![];
        if let Some(p) = plex_sqlite {
            args.extend(["--plex-sqlite", p]);
        }
        let mut all: Vec<&str> = args.clone();
        all.extend(["apply", file.to_str().unwrap(), "--yes", "--json"]);
        let report: Value = serde_json::from_str(&run(&dir, &all, 0)).unwrap();
        if plex_sqlite.is_some() {
            assert!(report["strategy"].as_str().unwrap().starts_with("through "), "{report}");
        }
        assert_eq!(column(&dir, item, "user_thumb_url").as_deref(), Some(odd));
        let tags: i64 = ro(&dir).query_row("SELECT count(*) FROM tags", [], |r| r.get(0)).unwrap();
        assert!(tags > 0);
    }
}

#[test]
fn a_stock_sqlite_named_as_plex_sqlite_on_a_broad_db_fails_cleanly() {
    let (tmp, dir, _) = fixture(&["--triggers", "broad"]);
    let (file, cs) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "2"]);
    let before = untouchable(&dir);
    let files_before = snapshot(&dir.join("Metadata"));
    let err = fail(
        &dir,
        &["--plex-sqlite", "/usr/bin/sqlite3", "apply", file.to_str().unwrap(), "--yes"],
    );
    assert!(err.contains("unknown tokenizer: collating"), "{err}");
    assert_eq!(untouchable(&dir), before);
    for s in cs.changes.iter().filter_map(|c| c.set_url.as_ref()) {
        assert_eq!(column(&dir, s.id, &s.column), s.from);
    }
    assert_unchanged(&files_before, &snapshot(&dir.join("Metadata")));
}

#[test]
fn a_backup_that_cannot_be_written_stops_apply_before_any_change() {
    let (tmp, dir, _) = fixture(&[]);
    let (file, _) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "2"]);
    let before = snapshot(&dir);
    let db_before = untouchable(&dir);
    let values = dump(&ro(&dir), "SELECT user_thumb_url, user_art_url FROM metadata_items");
    let err = fail(
        &dir,
        &[
            "apply",
            file.to_str().unwrap(),
            "--yes",
            "--backup-dir",
            "/proc/tidyplex-cannot-write-here",
        ],
    );
    assert!(err.contains("backup"), "{err}");
    assert_eq!(untouchable(&dir), db_before);
    assert_eq!(dump(&ro(&dir), "SELECT user_thumb_url, user_art_url FROM metadata_items"), values);
    let after = snapshot(&dir);
    let changed: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert!(changed.iter().all(|k| k.starts_with("Plug-in Support/tidyplex")), "{changed:?}");
}

#[test]
fn a_filesystem_that_refuses_deletion_is_a_clear_error() {
    let (tmp, dir, _) = fixture(&[]);
    let (file, cs) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "1", "--section", "1"]);
    let target =
        cs.changes.iter().find_map(|c| c.delete_file.as_ref().map(|f| f.path.clone())).unwrap();
    let parent = dir.join(&target).parent().unwrap().to_path_buf();
    // Root ignores permissions; the immutable attribute stops even root.
    let protect = |on: bool| -> bool {
        if is_root() {
            std::process::Command::new("chattr")
                .arg(if on { "+i" } else { "-i" })
                .arg(&parent)
                .status()
                .is_ok_and(|s| s.success())
        } else {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                &parent,
                std::fs::Permissions::from_mode(if on { 0o555 } else { 0o755 }),
            )
            .is_ok()
        }
    };
    if !protect(true) {
        eprintln!("skipped: this filesystem cannot make a folder refuse deletions");
        return;
    }
    let out = tidyplex()
        .args(["--plex-dir", dir.to_str().unwrap(), "apply", file.to_str().unwrap(), "--yes"])
        .output()
        .unwrap();
    protect(false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("Failed") && stdout.contains(&target), "{stdout}");
    assert!(stdout.contains("not permitted") || stdout.contains("denied"), "{stdout}");
    assert!(dir.join(&target).symlink_metadata().is_ok());
}

#[test]
fn run_converges_and_demo_walks_the_cycle() {
    let (tmp, dir, _) = fixture(&["--triggers", "broad"]);
    let spec = tmp.path().join("spec.yaml");
    std::fs::write(&spec, "stage: 3\n").unwrap();
    let out = run(&dir, &["run", spec.to_str().unwrap()], 0);
    assert!(out.contains("Round 1: Plan:"), "{out}");
    assert!(out.contains("Round 2: no changes. The library is clean."), "{out}");

    let demo_dir = tmp.path().join("demo");
    let out = tidyplex().args(["demo", demo_dir.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for step in [
        "==> Build",
        "==> Plan stage 3",
        "==> Apply it",
        "==> Plan again",
        "No changes. The library is clean.",
    ] {
        assert!(text.contains(step), "{step} missing from:\n{text}");
    }
}

/// The race with Plex: columns flipped (to files the changeset deletes) after apply read the
/// references but before it deletes. Each item is re-checked right before its files go, so
/// none of those files is deleted.
#[test]
fn a_poster_picked_while_apply_deletes_is_kept() {
    let (tmp, dir, _) = fixture(&[]);
    let (file, cs) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "1"]);
    // For some items, an entry of `_combined/posters` that the plan deletes.
    let mut picks: Vec<(i64, String)> = Vec::new();
    for c in &cs.changes {
        let Some(item) = c.item else { continue };
        if picks.iter().any(|(i, _)| *i == item) || cs.items[&item].kind != "movie" {
            continue;
        }
        let path = match c.op() {
            Some(Op::DeleteFile(f)) if f.path.contains("/_combined/posters/") => {
                Some(f.path.clone())
            }
            Some(Op::DeleteDir(d)) if d.path.ends_with("/_combined/posters") => {
                std::fs::read_dir(dir.join(&d.path))
                    .unwrap()
                    .flatten()
                    .next()
                    .map(|e| format!("{}/{}", d.path, e.file_name().to_string_lossy()))
            }
            _ => None,
        };
        if let Some(p) = path {
            picks.push((item, p));
        }
    }
    assert!(picks.len() >= 3, "{picks:?}");
    let pause = tmp.path().join("paused");
    let child = paused_apply(&dir, &file, &["--json"], &pause);
    // Plex (the user) picks those posters now.
    let conn = rw(&dir);
    for (item, path) in &picks {
        let name = path.rsplit('/').next().unwrap();
        conn.execute(
            "UPDATE metadata_items SET user_thumb_url = ?1 WHERE id = ?2",
            rusqlite::params![format!("metadata://posters/{name}"), item],
        )
        .unwrap();
    }
    drop(conn);
    std::fs::remove_file(&pause).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "something was kept as referenced");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!report["referenced"].as_array().unwrap().is_empty(), "{report}");
    // Referenced and gone: none.
    let gone: Vec<&String> =
        picks.iter().map(|(_, p)| p).filter(|p| std::fs::metadata(dir.join(p)).is_err()).collect();
    assert!(gone.is_empty(), "picked while apply deleted, and deleted: {gone:?}");
    // Everything else the plan deletes is gone.
    assert!(report["files_deleted"].as_u64().unwrap() > 0);
}
