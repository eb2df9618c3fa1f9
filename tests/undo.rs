//! `apply --keep`, `history`, `undo` and `purge` end to end through the binary on fixtures:
//! an undo gives back byte-identical image columns and the same file tree, leaves what changed
//! since alone, finishes an interrupted undo, refuses to run beside an apply, and the trash is
//! emptied on request or once its keep has run out.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

/// The plan a user runs: every stage up to 3, bundles and the cache.
const FULL: [&str; 6] = ["--stage", "3", "--bundles", "3", "--cache", "all"];

fn undo(dir: &Path, extra: &[&str], code: i32) -> Value {
    let mut args = vec!["undo", "--yes", "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&run(dir, &args, code)).unwrap()
}

fn ro(dir: &Path) -> Connection {
    Connection::open_with_flags(db_path(dir), OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

/// Every image column of every row (metadata items, tags, sections), as exact text.
fn image_columns(dir: &Path) -> Vec<String> {
    let conn = ro(dir);
    let mut out = Vec::new();
    for table in ["metadata_items", "tags", "library_sections"] {
        let have: Vec<String> = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let cols: Vec<&str> = tidyplex::plex::columns::of_table(table)
            .iter()
            .copied()
            .filter(|c| have.iter().any(|h| h == c))
            .collect();
        if cols.is_empty() {
            continue;
        }
        let sql = format!("SELECT id, {} FROM {table} ORDER BY id", cols.join(", "));
        let mut stmt = conn.prepare(&sql).unwrap();
        let rows = stmt
            .query_map([], |r| {
                let mut line = format!("{table} {}", r.get::<_, i64>(0)?);
                for i in 1..=cols.len() {
                    line.push_str(&format!(" {:?}", r.get::<_, Option<String>>(i)?));
                }
                Ok(line)
            })
            .unwrap();
        out.extend(rows.map(|r| r.unwrap()));
    }
    out
}

/// The plex dir's tree without tidyplex's state, the DB file itself (its pages change; its
/// columns are compared) and folders' own mtimes (a folder made again is a new folder).
fn tree(dir: &Path) -> Snapshot {
    let mut snap = without_state(snapshot(dir));
    snap.retain(|k, _| !k.starts_with("Plug-in Support/Databases/com.plexapp.plugins.library.db"));
    for e in snap.values_mut().filter(|e| e.0 == 'd') {
        e.2 = 0;
    }
    snap
}

fn trash_files(dir: &Path) -> u64 {
    let st = json(dir, &["status"]);
    st["trash"]["files"].as_u64().unwrap()
}

/// plan (everything) → apply --keep → undo gives back the columns and the tree exactly, and a
/// second undo changes nothing.
fn round_trip(extra: &[&str], strategy: &str) {
    let (tmp, dir, _) = fixture(extra);
    let (columns, files) = (image_columns(&dir), tree(&dir));
    let (file, cs) = plan_to(tmp.path(), &dir, "plan.yaml", &FULL);
    assert!(cs.summary.urls > 0 && cs.summary.files > 0);
    let report = apply_json(&dir, &file, &["--keep", "7d"], 0);
    assert_eq!(report["strategy"], strategy);
    assert_eq!(report["id"], 1);
    assert!(report["kept_until"].is_string(), "{report}");
    assert_ne!(image_columns(&dir), columns);
    assert_ne!(tree(&dir), files);
    assert_eq!(trash_files(&dir), report["files_deleted"].as_u64().unwrap());
    let history = json(&dir, &["history"]);
    assert_eq!(history[0]["urls_written"], cs.summary.urls);
    assert_eq!(history[0]["undo"], "undoable");

    let undone = undo(&dir, &[], 0);
    assert_eq!(undone["apply"], 1);
    assert_eq!(undone["restored"], cs.summary.urls, "{undone}");
    assert_eq!(undone["files_restored"], report["files_deleted"], "{undone}");
    assert!(Path::new(undone["backup"].as_str().unwrap()).is_file());
    assert_eq!(image_columns(&dir), columns, "byte-identical image columns");
    assert_unchanged(&files, &tree(&dir));
    assert_eq!(trash_files(&dir), 0);
    assert_eq!(json(&dir, &["history"])[0]["undo"], "undone");

    // A second undo changes nothing.
    let again = undo(&dir, &[], 0);
    assert_eq!((again["restored"].as_u64(), again["files_restored"].as_u64()), (Some(0), Some(0)));
    assert_eq!(again["undone_before"], true);
    assert_eq!(image_columns(&dir), columns);
    assert_unchanged(&files, &tree(&dir));
    // And the library plans as it did before the apply.
    let (_, replanned) = plan_to(tmp.path(), &dir, "again.yaml", &FULL);
    assert_eq!(replanned.summary, cs.summary);
}

#[test]
fn undo_gives_back_columns_and_files_on_a_scoped_db() {
    round_trip(&[], "direct updates");
}

#[test]
fn undo_gives_back_columns_and_files_on_a_broad_db() {
    round_trip(&["--triggers", "broad"], "FTS triggers set aside in each transaction");
}

#[test]
fn undo_leaves_alone_what_changed_since() {
    let (tmp, dir, _) = fixture(&[]);
    let (file, cs) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "2"]);
    apply_json(&dir, &file, &["--keep", "7d"], 0);
    // Since the apply: the user picked another poster for one switched column, and Plex
    // downloaded a file again at the path of one that went.
    let switched = cs.changes.iter().find_map(|c| c.set_url.as_ref()).unwrap();
    let picked = "https://image.example/picked.jpg";
    Connection::open(db_path(&dir))
        .unwrap()
        .execute(
            &format!("UPDATE metadata_items SET {} = ?1 WHERE id = ?2", switched.column),
            rusqlite::params![picked, switched.id],
        )
        .unwrap();
    let trash = dir.join("Plug-in Support/tidyplex/trash/1");
    let gone = walkdir::WalkDir::new(trash.join("Metadata"))
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.unwrap())
        .find(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(&trash).unwrap().to_string_lossy().into_owned())
        .unwrap();
    std::fs::create_dir_all(dir.join(&gone).parent().unwrap()).unwrap();
    std::fs::write(dir.join(&gone), "downloaded again").unwrap();

    let report = undo(&dir, &[], 3);
    assert_eq!(report["restored"], cs.summary.urls - 1);
    let changed = report["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{report}");
    assert!(changed[0].as_str().unwrap().contains(picked), "{report}");
    assert_eq!(report["files_left"][0], gone, "{report}");
    let now: Option<String> = ro(&dir)
        .query_row(
            &format!("SELECT {} FROM metadata_items WHERE id = ?1", switched.column),
            [switched.id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(now.as_deref(), Some(picked), "the user's pick stays");
    assert_eq!(std::fs::read_to_string(dir.join(&gone)).unwrap(), "downloaded again");
    assert_eq!(trash_files(&dir), 1, "the kept copy stays in the trash");
    let text = run(&dir, &["undo", "--yes"], 3);
    assert!(text.contains("Changed since the apply") && text.contains("Left in the trash"));
}

#[test]
fn without_keep_undo_puts_the_columns_back_and_names_the_files_gone() {
    let (tmp, dir, _) = fixture(&[]);
    let columns = image_columns(&dir);
    let (file, cs) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "2"]);
    let report = apply_json(&dir, &file, &[], 0);
    assert!(report["kept_until"].is_null());
    let text = run(&dir, &["undo", "--yes"], 3);
    assert!(text.contains("gone") && text.contains("plan --repair"), "{text}");
    assert_eq!(image_columns(&dir), columns);
    let undone = undo(&dir, &["1"], 3);
    assert_eq!(undone["files_gone"], report["files_deleted"]);
    assert_eq!(undone["already"], cs.summary.urls);
    // Plex is asked to bring the images back.
    let repair = run(&dir, &["plan", "--stage", "1", "--repair"], 0);
    assert!(repair.contains("refresh") || repair.contains("analyze"), "{repair}");
}

#[test]
fn the_trash_is_purged_on_request_and_once_its_keep_has_run_out() {
    let (tmp, dir, _) = fixture(&[]);
    let columns = image_columns(&dir);
    let (file, _) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "2"]);
    let report = apply_json(&dir, &file, &["--keep", "7d"], 0);
    let kept = report["files_deleted"].as_u64().unwrap();
    assert!(kept > 0);
    // Nothing is due yet.
    let purged: Value = serde_json::from_str(&run(&dir, &["purge", "--json"], 0)).unwrap();
    assert!(purged["applies"].as_array().unwrap().is_empty(), "{purged}");
    run(&dir, &["purge", "--older-than", "1h"], 0);
    assert_eq!(trash_files(&dir), kept);
    let status = run(&dir, &["status"], 0);
    assert!(status.contains("Trash"), "{status}");
    // --all empties it; undo still puts the columns back and names the files gone.
    let purged: Value = serde_json::from_str(&run(&dir, &["purge", "--all", "--json"], 0)).unwrap();
    assert_eq!(purged["files"], kept);
    assert_eq!(trash_files(&dir), 0);
    assert!(json(&dir, &["history"])[0]["kept_until"].is_string());
    assert!(json(&dir, &["history"])[0]["purged"].is_string());
    let undone = undo(&dir, &[], 3);
    assert_eq!(undone["files_gone"], kept);
    assert_eq!(image_columns(&dir), columns);

    // A keep that has run out is purged by the next apply, even one with nothing to do.
    let (tmp2, dir2, _) = fixture(&[]);
    let (file2, _) = plan_to(tmp2.path(), &dir2, "plan.yaml", &["--stage", "2"]);
    apply_json(&dir2, &file2, &["--keep", "1s"], 0);
    assert!(trash_files(&dir2) > 0);
    std::thread::sleep(Duration::from_millis(1500));
    let (empty, cs) = plan_to(tmp2.path(), &dir2, "next.yaml", &["--stage", "2"]);
    assert!(cs.changes.is_empty());
    run(&dir2, &["apply", empty.to_str().unwrap(), "--yes"], 0);
    assert_eq!(trash_files(&dir2), 0);
    assert!(json(&dir2, &["history"])[0]["purged"].is_string());
}

#[test]
fn an_interrupted_undo_is_finished_by_the_next() {
    let (tmp, dir, _) = fixture(&[]);
    let (columns, files) = (image_columns(&dir), tree(&dir));
    let (file, _) = plan_to(tmp.path(), &dir, "plan.yaml", &FULL);
    apply_json(&dir, &file, &["--keep", "7d"], 0);
    let out = tidyplex()
        .args(["--plex-dir", dir.to_str().unwrap(), "undo", "--yes"])
        .env("TIDYPLEX_FAULT", "undo-after-files")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the undo was cut short");
    assert_unchanged(&files, &tree(&dir));
    assert_ne!(image_columns(&dir), columns, "the columns were not put back yet");
    assert_eq!(json(&dir, &["history"])[0]["undo"], "undo unfinished");
    let report = undo(&dir, &[], 0);
    assert_eq!(report["finished_interrupted"], true);
    assert_eq!(image_columns(&dir), columns);
    assert_unchanged(&files, &tree(&dir));
}

#[test]
fn undo_is_refused_while_an_apply_runs() {
    let (tmp, dir, _) = fixture(&[]);
    let (file, _) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "2"]);
    apply_json(&dir, &file, &["--keep", "7d"], 0);
    let (file2, _) = plan_to(tmp.path(), &dir, "next.yaml", &FULL);
    let pause = tmp.path().join("paused");
    let child = paused_apply(&dir, &file2, &["--keep", "7d"], &pause);
    let before = (image_columns(&dir), tree(&dir));
    let err = fail(&dir, &["undo", "--yes"]);
    assert!(err.contains("another tidyplex apply is running"), "{err}");
    let err = fail(&dir, &["purge", "--all"]);
    assert!(err.contains("another tidyplex apply is running"), "{err}");
    assert_eq!((image_columns(&dir), tree(&dir)), before, "nothing changed");
    std::fs::remove_file(&pause).unwrap();
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(0));
    // Both applies are listed; the last is undone by default.
    let history = json(&dir, &["history"]);
    assert_eq!(history.as_array().unwrap().len(), 2);
    assert_eq!(undo(&dir, &[], 0)["apply"], 2);
    let text = run(&dir, &["history"], 0);
    assert!(text.contains("undone") && text.contains("undoable"), "{text}");
}

#[test]
fn keep_is_refused_before_anything_changes_when_the_trash_is_on_another_filesystem() {
    let (tmp, dir, _) = fixture(&[]);
    let other = Path::new("/dev/shm");
    let dev = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).map(|m| m.dev()).ok()
    };
    if dev(other).is_none() || dev(other) == dev(&dir) {
        eprintln!("skipped: no second filesystem at /dev/shm");
        return;
    }
    let state = tempfile::tempdir_in(other).unwrap();
    std::os::unix::fs::symlink(state.path(), dir.join("Plug-in Support/tidyplex")).unwrap();
    let (file, _) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "2"]);
    let (columns, files) = (image_columns(&dir), tree(&dir));
    let err = fail(&dir, &["apply", file.to_str().unwrap(), "--yes", "--keep", "7d"]);
    assert!(err.contains("another filesystem") && err.contains("nothing was changed"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(image_columns(&dir), columns);
    assert_unchanged(&files, &tree(&dir));
}

#[test]
fn a_spec_keep_is_used_by_run_and_a_bad_one_is_refused() {
    let (tmp, dir, _) = fixture(&[]);
    let spec = tmp.path().join("spec.yaml");
    std::fs::write(&spec, "stage: 2\nkeep: 3d\n").unwrap();
    run(&dir, &["run", spec.to_str().unwrap()], 0);
    let history = json(&dir, &["history"]);
    assert!(history[0]["kept_until"].is_string(), "{history}");
    assert!(trash_files(&dir) > 0);
    std::fs::write(&spec, "stage: 2\nkeep: soon\n").unwrap();
    let err = fail(&dir, &["run", spec.to_str().unwrap()]);
    assert!(err.contains("keep `soon` is not a duration"), "{err}");
    let err = fail(&dir, &["undo", "9", "--yes"]);
    assert!(err.contains("no apply 9"), "{err}");
}
