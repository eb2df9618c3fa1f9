//! Bundle cleanup (steps 1–3) and PhotoTranscoder cache policies, end to end on fixtures.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use tidyplex::changeset::{Changeset, Op};

fn apply(dir: &Path, file: &Path) -> Value {
    serde_json::from_str(&run(dir, &["apply", file.to_str().unwrap(), "--yes", "--json"], 0))
        .unwrap()
}

fn dirs_deleted(cs: &Changeset) -> BTreeSet<String> {
    cs.changes.iter().filter_map(|c| c.delete_dir.as_ref().map(|d| d.path.clone())).collect()
}

/// Files outside the cleanable folders and tidyplex's own state: they must survive every step.
fn outside(dir: &Path) -> Vec<(String, Entry)> {
    snapshot(dir)
        .into_iter()
        .filter(|(k, v)| {
            v.0 != 'd'
                && !k.starts_with("Metadata/")
                && !k.starts_with("Media/")
                && !k.starts_with("Cache/PhotoTranscoder/")
                && !k.starts_with("Plug-in Support/tidyplex")
                && !k.starts_with("Plug-in Support/Databases/com.plexapp.plugins.library.db")
        })
        .collect()
}

/// The bundle folders of rows of these metadata types that exist on disk.
fn bundles_of_types(dir: &Path, types: &str) -> BTreeSet<String> {
    let conn = Connection::open_with_flags(db_path(dir), OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT hash FROM metadata_items WHERE metadata_type IN ({types}) AND hash IS NOT NULL"
        ))
        .unwrap();
    let hashes: Vec<String> =
        stmt.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect();
    hashes
        .into_iter()
        .map(|h| format!("Metadata/TV Shows/{}/{}.bundle", &h[..1], &h[1..]))
        .filter(|p| dir.join(p).is_dir())
        .collect()
}

#[test]
fn step_1_removes_exactly_the_orphans_and_step_2_adds_exactly_season_and_episode_bundles() {
    let (tmp, dir, report) = fixture(&[]);
    let orphans: BTreeSet<String> = report["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap().to_string())
        .collect();
    assert!(orphans.len() >= 5, "{orphans:?}");
    let out = tidyplex()
        .args(["--plex-dir", dir.to_str().unwrap(), "plan", "--bundles", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not-a-hash.bundle is not a folder named after a hash"), "{stderr}");

    let (one, cs1) = plan_to(tmp.path(), &dir, "b1.yaml", &["--bundles", "1"]);
    assert_eq!(dirs_deleted(&cs1), orphans, "step 1 is the orphans");
    assert_eq!(cs1.summary.urls, 0, "no library stage without --stage");
    let (_, cs2) = plan_to(tmp.path(), &dir, "b2.yaml", &["--bundles", "2"]);
    let added: BTreeSet<String> = dirs_deleted(&cs2).difference(&orphans).cloned().collect();
    assert_eq!(added, bundles_of_types(&dir, "3, 4"), "step 2 adds the season and episode bundles");
    assert!(!added.is_empty());

    // status says what each step frees, as plan does.
    let status = json(&dir, &["status"]);
    assert_eq!(status["bundles"][0]["bytes"], cs1.summary.bytes);
    assert_eq!(status["bundles"][0]["entries"], cs1.changes.len() as u64);

    let before = outside(&dir);
    apply(&dir, &one);
    for o in &orphans {
        assert!(!dir.join(o).exists(), "{o}");
        let prefix = dir.join(o).parent().unwrap().to_path_buf();
        assert!(
            !prefix.exists() || std::fs::read_dir(&prefix).unwrap().next().is_some(),
            "empty prefix {prefix:?} removed"
        );
    }
    assert!(
        dir.join("Metadata/Movies/x/not-a-hash.bundle").exists(),
        "non-hash folders are left alone"
    );
    assert_eq!(outside(&dir), before);
    for kind in ["Movies", "TV Shows", "Artists", "Albums"] {
        assert!(dir.join("Metadata").join(kind).is_dir(), "kind folders stay");
    }
    assert!(run(&dir, &["plan", "--bundles", "1"], 0).starts_with("No changes."));
}

#[test]
fn step_3_leaves_live_bundles_with_referenced_images_only() {
    for extra in [&[][..], &["--windows"]] {
        let (tmp, dir, _) = fixture(extra);
        let before = outside(&dir);
        let (file, cs) = plan_to(tmp.path(), &dir, "b3.yaml", &["--bundles", "3"]);
        assert!(cs.summary.files > 0);
        apply(&dir, &file);
        assert_eq!(outside(&dir), before);
        // Every image left in a live bundle is referenced (XML, lyrics and the like stay).
        let db = tidyplex::plex::db::Db::open(&db_path(&dir)).unwrap();
        let lib = tidyplex::plex::model::Library::read(&db).unwrap();
        let tags = tidyplex::plex::model::read_tags(&db).unwrap();
        let refs = tidyplex::scan::refs::collect(&db, &lib, &tags);
        let in_use = tidyplex::scan::refs::InUse::build(&dir, &refs, |_| false);
        let mut checked = 0;
        for item in &lib.items {
            if lib.bundle_owner(item).map(|o| o.id) != Some(item.id) {
                continue;
            }
            let Some(bundle) = lib.bundle_of(item) else { continue };
            for e in walkdir::WalkDir::new(dir.join(&bundle)).into_iter().map(|e| e.unwrap()) {
                let rel = e.path().strip_prefix(&dir).unwrap().to_string_lossy().into_owned();
                if e.file_type().is_dir() {
                    if e.depth() >= 2 {
                        assert!(
                            std::fs::read_dir(e.path()).unwrap().next().is_some(),
                            "empty folder {rel}"
                        );
                    }
                    continue;
                }
                checked += 1;
                let image =
                    tidyplex::plex::bundle::content(&rel) == tidyplex::plex::bundle::Content::Image;
                // By path, or (a hard link) as another name of a referenced file.
                let walked = tidyplex::scan::tree::walk(&dir, &bundle).unwrap();
                let entry = walked.iter().find(|w| w.path == rel).unwrap();
                assert!(
                    !image || in_use.contains_entry(entry),
                    "{rel} is an image nothing references"
                );
            }
        }
        assert!(checked > 20);
        assert!(run(&dir, &["plan", "--bundles", "3"], 0).starts_with("No changes."), "{extra:?}");
    }
}

/// Cache files (relative path → (mtime, size)).
fn cache_files(dir: &Path) -> Vec<(String, i64, u64)> {
    let root = dir.join("Cache/PhotoTranscoder");
    walkdir::WalkDir::new(&root)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let m = e.metadata().unwrap();
            let mtime = m.modified().unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
            (e.path().strip_prefix(&root).unwrap().to_string_lossy().into_owned(), mtime, m.len())
        })
        .collect()
}

#[test]
fn older_than_keeps_exactly_the_younger_files() {
    let (tmp, dir, _) = fixture(&[]);
    let files = cache_files(&dir);
    let cutoff = (SystemTime::now() - Duration::from_secs(30 * 86400))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let younger: BTreeSet<String> =
        files.iter().filter(|f| f.1 >= cutoff + 60).map(|f| f.0.clone()).collect();
    let older = files.iter().filter(|f| f.1 < cutoff - 60).count();
    assert!(!younger.is_empty() && older > 0, "the fixture spreads ages");
    let (file, _) = plan_to(tmp.path(), &dir, "c.yaml", &["--cache", "older-than=30d"]);
    apply(&dir, &file);
    let left: BTreeSet<String> = cache_files(&dir).into_iter().map(|f| f.0).collect();
    assert_eq!(left, younger);
}

#[test]
fn max_size_keeps_the_newest_files_within_the_budget() {
    let (tmp, dir, _) = fixture(&[]);
    let mut files = cache_files(&dir);
    let total: u64 = files.iter().map(|f| f.2).sum();
    let budget = total / 2;
    // Nothing to do when the cache already fits.
    let (_, fits) =
        plan_to(tmp.path(), &dir, "fits.yaml", &["--cache", &format!("max-size={total}")]);
    assert!(fits.is_empty());
    let (file, _) =
        plan_to(tmp.path(), &dir, "c.yaml", &["--cache", &format!("max-size={budget}")]);
    apply(&dir, &file);
    let left: BTreeSet<String> = cache_files(&dir).into_iter().map(|f| f.0).collect();
    let kept: u64 = files.iter().filter(|f| left.contains(&f.0)).map(|f| f.2).sum();
    assert!(kept <= budget, "{kept} > {budget}");
    // The kept files are the newest: every deleted file is older than every kept one, and
    // keeping the youngest deleted file too would break the budget.
    files.sort_by_key(|f| std::cmp::Reverse(f.1));
    let youngest_deleted = files.iter().find(|f| !left.contains(&f.0)).unwrap();
    let oldest_kept = files.iter().rev().find(|f| left.contains(&f.0)).unwrap();
    assert!(youngest_deleted.1 <= oldest_kept.1);
    assert!(kept + youngest_deleted.2 > budget);
}

#[test]
fn all_empties_the_cache_and_keeps_the_folder() {
    let (tmp, dir, _) = fixture(&[]);
    let before = outside(&dir);
    let (file, cs) = plan_to(tmp.path(), &dir, "c.yaml", &["--cache", "all"]);
    assert!(
        cs.changes.iter().any(|c| matches!(c.op(), Some(Op::DeleteDir(_)))),
        "subfolders go whole"
    );
    apply(&dir, &file);
    let cache = dir.join("Cache/PhotoTranscoder");
    assert!(cache.is_dir());
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0);
    assert_eq!(outside(&dir), before, "Cache/other.dat and the rest survive");
}

#[test]
fn bad_cache_input_is_a_clear_error() {
    let (tmp, dir, _) = fixture(&[]);
    for bad in ["max-size=lots", "older-than=30", "everything", "max-size=20XB"] {
        let err = fail(&dir, &["plan", "--cache", bad]);
        assert!(err.contains("--cache"), "{bad}: {err}");
    }
    // A cache folder that is a symlink to somewhere else is never deleted through.
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::rename(dir.join("Cache/PhotoTranscoder"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.join("Cache/PhotoTranscoder")).unwrap();
    let err = fail(&dir, &["plan", "--cache", "all"]);
    assert!(err.contains("is a symlink"), "{err}");
    assert!(std::fs::read_dir(&elsewhere).unwrap().count() > 0);
}
