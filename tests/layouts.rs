//! Layouts real servers have and simple fixtures lack: lyrics and subtitles beside the images,
//! `_combined` links written inside a Docker container, Windows hard links, pre-ICU DBs. Each
//! is built by the real `fixture` command and cleaned by the real binary, all steps at once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;
use tidyplex::changeset::{Changeset, Op};
use tidyplex::plex::bundle::{bundle_of, content, is_bundle_dir, Content};

/// Everything a user runs at once: every stage, every bundle step, the whole cache.
const ALL: [&str; 6] = ["--stage", "3", "--bundles", "3", "--cache", "all"];

/// The same without column switches: every selected image stays selected, so every one must
/// be protected.
const KEEP_SELECTED: [&str; 6] = ["--stage", "1", "--bundles", "3", "--cache", "all"];

/// Plans into `tmp/name`; returns the file, the changeset and the warnings printed.
fn plan_to(tmp: &Path, dir: &Path, name: &str, args: &[&str]) -> (PathBuf, Changeset, String) {
    let file = tmp.join(name);
    let out = tidyplex()
        .arg("--plex-dir")
        .arg(dir)
        .args(["plan", "-o", file.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success() && !stderr.contains("panicked"), "{stderr}");
    (file.clone(), Changeset::parse(&std::fs::read_to_string(&file).unwrap()).unwrap(), stderr)
}

fn apply(dir: &Path, file: &Path) -> Value {
    serde_json::from_str(&run(dir, &["apply", file.to_str().unwrap(), "--yes", "--json"], 0))
        .unwrap()
}

/// Every path a changeset deletes: its files, and every entry below its folders (on disk now).
fn doomed(dir: &Path, cs: &Changeset) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for c in &cs.changes {
        match c.op() {
            Some(Op::DeleteFile(f)) => {
                out.insert(f.path.clone());
            }
            Some(Op::DeleteDir(d)) => {
                for e in walkdir::WalkDir::new(dir.join(&d.path)).follow_links(false) {
                    let e = e.unwrap();
                    if !e.file_type().is_dir() {
                        let rel = e.path().strip_prefix(dir).unwrap();
                        out.insert(rel.to_string_lossy().into_owned());
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The paths of every entry whose relative path contains `part`.
fn entries_with(dir: &Path, part: &str) -> BTreeSet<String> {
    snapshot(dir)
        .into_iter()
        .filter(|(k, v)| v.0 != 'd' && k.contains(part))
        .map(|(k, _)| k)
        .collect()
}

/// The files the DB's `metadata://` values select, through their `_combined` entries and
/// symlinks, mapped onto `dir` when a link names the plex dir as a container sees it.
fn selected_files(dir: &Path, link_root: Option<&str>) -> BTreeSet<PathBuf> {
    let conn = rusqlite::Connection::open(db_path(dir)).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT hash, metadata_type, user_thumb_url FROM metadata_items
             WHERE user_thumb_url LIKE 'metadata://%' AND metadata_type IN (1, 2, 8, 9)",
        )
        .unwrap();
    let rows: Vec<(String, i64, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let mut out = BTreeSet::new();
    for (hash, kind, url) in rows {
        let folder = match kind {
            1 => "Movies",
            2 => "TV Shows",
            8 => "Artists",
            _ => "Albums",
        };
        let rest = url.trim_start_matches("metadata://");
        let mut path = dir.join(format!(
            "Metadata/{folder}/{}/{}.bundle/Contents/_combined/{rest}",
            &hash[..1],
            &hash[1..]
        ));
        for _ in 0..8 {
            let Ok(target) = std::fs::read_link(&path) else { break };
            path = match (link_root, target.is_absolute()) {
                (Some(root), true) => dir.join(target.strip_prefix(root).unwrap()),
                (None, true) => target,
                (_, false) => path.parent().unwrap().join(target),
            };
        }
        out.insert(path);
    }
    out
}

/// The paths among `paths` that exist (a few selected files are missing on purpose).
fn existing(paths: BTreeSet<PathBuf>) -> BTreeSet<PathBuf> {
    paths.into_iter().filter(|p| p.exists()).collect()
}

#[test]
fn lyrics_and_subtitles_are_never_deleted_and_are_counted_as_unknown() {
    let (tmp, dir, report) = fixture(&[]);
    let lyrics = entries_with(&dir, "/lyrics/");
    let subtitles = entries_with(&dir, "/Subtitle");
    assert!(lyrics.len() >= 4 && subtitles.len() >= 4, "{lyrics:?} {subtitles:?}");
    assert!(report["cases"]["lyrics"].as_array().is_some_and(|c| !c.is_empty()));
    assert!(report["cases"]["subtitle_contribution"].as_array().is_some_and(|c| !c.is_empty()));

    let status = json(&dir, &["status"]);
    let unknown = &status["unknown_kept"];
    assert_eq!(unknown["files"], lyrics.len() as u64, "{unknown}");
    assert!(run(&dir, &["status"], 0).contains("unknown, kept"));

    let (file, cs, _) = plan_to(tmp.path(), &dir, "all.yaml", &ALL);
    let doomed = doomed(&dir, &cs);
    assert!(!doomed.is_empty());
    // Inside live bundles, only images are planned; whole bundles (orphans, seasons) and the
    // cache go whole.
    let whole: Vec<&str> = cs
        .changes
        .iter()
        .filter_map(|c| c.delete_dir.as_ref())
        .map(|d| d.path.as_str())
        .filter(|p| is_bundle_dir(p) || p.starts_with("Cache/"))
        .collect();
    for path in &doomed {
        assert!(!path.contains("/lyrics/") && !path.contains("/Subtitle"), "{path} is planned");
        let cache = path.starts_with("Cache/PhotoTranscoder/");
        if !cache && !whole.iter().any(|w| path.starts_with(&format!("{w}/"))) {
            assert_eq!(content(path), Content::Image, "{path} is not an image");
        }
    }
    let applied = apply(&dir, &file);
    assert!(applied["files_deleted"].as_u64().unwrap() > 0, "{applied}");
    assert_eq!(entries_with(&dir, "/lyrics/"), lyrics);
    assert_eq!(entries_with(&dir, "/Subtitle"), subtitles);
}

#[test]
fn container_links_are_mapped_onto_the_plex_dir() {
    let docker = "/config/Library/Application Support/Plex Media Server";
    let (tmp, dir, _) = fixture(&["--link-root", docker]);
    let (_plain_tmp, plain, _) = fixture(&[]);
    let link = entries_with(&dir, "/_combined/posters/")
        .into_iter()
        .find(|p| std::fs::read_link(dir.join(p)).is_ok_and(|t| t.starts_with(docker)));
    assert!(link.is_some(), "the fixture made no container links");

    // The same library with relative links plans exactly the same deletions.
    let (_, cs, _) = plan_to(tmp.path(), &dir, "docker.yaml", &ALL);
    let (_, plain_cs, _) = plan_to(tmp.path(), &plain, "plain.yaml", &ALL);
    let paths = |cs: &Changeset| -> BTreeSet<String> {
        cs.changes
            .iter()
            .filter_map(|c| c.op())
            .filter_map(|op| match op {
                Op::DeleteFile(f) => Some(f.path.clone()),
                Op::DeleteDir(d) => Some(d.path.clone()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(paths(&cs), paths(&plain_cs));

    let existed = existing(selected_files(&dir, Some(docker)));
    let (file, ..) = plan_to(tmp.path(), &dir, "docker1.yaml", &KEEP_SELECTED);
    apply(&dir, &file);
    // Every image the DB selects is still there, through its container link.
    let selected: Vec<PathBuf> =
        selected_files(&dir, Some(docker)).into_iter().filter(|p| existed.contains(p)).collect();
    assert!(selected.len() > 10, "{selected:?}");
    for file in &selected {
        assert!(file.exists(), "{} is gone", file.display());
    }
}

#[test]
fn bundles_whose_links_cannot_be_followed_are_left_alone() {
    let (tmp, dir, _) = fixture(&["--link-root", "/srv/elsewhere/plex"]);
    let before = snapshot(&dir);
    let (_, cs, warnings) = plan_to(tmp.path(), &dir, "p.yaml", &ALL);
    // Legacy bundles (the ones with symlinks) get no deletion at all.
    let linked: BTreeSet<String> = before
        .iter()
        .filter(|(_, v)| v.0 == 'l' && v.3.as_ref().is_some_and(|t| t.starts_with("/srv")))
        .filter(|(k, _)| k.starts_with("Metadata/"))
        .filter_map(|(k, _)| bundle_of(k).map(str::to_string))
        .collect();
    assert!(linked.len() > 5, "{linked:?}");
    for c in &cs.changes {
        let path = match c.op() {
            Some(Op::DeleteFile(f)) => &f.path,
            Some(Op::DeleteDir(d)) => &d.path,
            _ => continue,
        };
        let bundle = bundle_of(path);
        assert!(!bundle.is_some_and(|b| linked.contains(b)), "{path} is planned");
    }
    assert!(warnings.contains("not inside the plex dir"), "{warnings}");
}

#[test]
fn hard_links_are_one_file_in_use_and_freed_once() {
    let (tmp, dir, report) = fixture(&["--windows"]);
    let shared = snapshot(&dir)
        .into_iter()
        .filter(|(k, v)| v.0 == 'f' && std::fs::metadata(dir.join(k)).is_ok_and(|m| m.nlink() > 1))
        .count();
    assert!(shared > 50, "only {shared} hard-linked names");
    let before = json(&dir, &["status"]);
    let total_bytes = |s: &Value| -> u64 {
        s["usage"].as_object().unwrap().values().map(|u| u["bytes"].as_u64().unwrap()).sum()
    };
    // The fixture's own count (each file once) is what status measures.
    let reported: u64 =
        report["usage"].as_object().unwrap().values().map(|u| u["bytes"].as_u64().unwrap()).sum();
    assert_eq!(total_bytes(&before), reported);

    // Every name of every hard-linked file, before.
    let mut names: BTreeMap<(u64, u64), Vec<PathBuf>> = BTreeMap::new();
    for (k, v) in snapshot(&dir) {
        let m = std::fs::symlink_metadata(dir.join(&k)).unwrap();
        if v.0 == 'f' && m.nlink() > 1 {
            names.entry((m.dev(), m.ino())).or_default().push(dir.join(k));
        }
    }
    let existed = existing(selected_files(&dir, None));
    let (file, cs, _) = plan_to(tmp.path(), &dir, "p.yaml", &KEEP_SELECTED);
    let applied = apply(&dir, &file);
    let after = json(&dir, &["status"]);
    let freed = total_bytes(&before) - total_bytes(&after);
    assert_eq!(applied["bytes_freed"].as_u64().unwrap(), freed, "{applied}");
    assert_eq!(cs.summary.bytes, freed);
    // Every name of a file the DB still selects is still there.
    let selected: Vec<PathBuf> =
        selected_files(&dir, None).into_iter().filter(|p| existed.contains(p)).collect();
    assert!(selected.len() > 10, "{selected:?}");
    let mut partners = 0;
    for p in &selected {
        let m = std::fs::metadata(p).unwrap_or_else(|_| panic!("{} is gone", p.display()));
        for name in names.get(&(m.dev(), m.ino())).into_iter().flatten() {
            assert!(name.exists(), "{} (another name of {}) is gone", name.display(), p.display());
            partners += 1;
        }
    }
    assert!(partners > 10, "{partners}");
}

#[test]
fn a_pre_icu_db_has_broad_triggers_that_stock_sqlite_writes_through() {
    let (tmp, dir, _) = fixture(&["--pre-icu", "--triggers", "broad"]);
    let status = json(&dir, &["status"]);
    assert_eq!(status["trigger_form"], "broad");
    assert_eq!(status["columns_writable"], true);
    let text = run(&dir, &["status"], 0);
    assert!(text.contains("plain FTS tables") && !text.contains("1.43+"), "{text}");
    let (file, cs, _) = plan_to(tmp.path(), &dir, "p.yaml", &["--stage", "2"]);
    assert!(cs.summary.urls > 0);
    let applied = apply(&dir, &file);
    assert_eq!(applied["strategy"], "direct updates", "{applied}");
    assert!(applied["applied"].as_u64().unwrap() >= cs.summary.urls, "{applied}");
    assert_eq!(applied["drifted"], serde_json::json!([]), "{applied}");
}

#[test]
fn a_stripped_db_without_triggers_is_written_directly() {
    let (tmp, dir, _) = fixture(&["--triggers", "absent"]);
    assert_eq!(json(&dir, &["status"])["trigger_form"], "absent");
    let (file, cs, _) = plan_to(tmp.path(), &dir, "p.yaml", &["--stage", "2"]);
    assert!(cs.summary.urls > 0);
    let applied = apply(&dir, &file);
    assert_eq!(applied["strategy"], "direct updates", "{applied}");
    assert_eq!(applied["drifted"], serde_json::json!([]), "{applied}");
}

#[test]
fn photo_bundles_are_left_alone_and_said_to_be_plex_s() {
    let (tmp, dir, _) = fixture(&[]);
    let photo =
        dir.join("Metadata/Photos/a/bcdef0123456789abcdef0123456789abcdef01.bundle/Contents");
    std::fs::create_dir_all(&photo).unwrap();
    std::fs::write(photo.join("thumb.jpg"), "jpeg").unwrap();
    let (_, cs, warnings) = plan_to(tmp.path(), &dir, "p.yaml", &["--bundles", "3"]);
    assert!(!warnings.contains("not a bundle folder Plex makes"), "{warnings}");
    assert!(warnings.contains("Metadata/Photos"), "{warnings}");
    assert!(!doomed(&dir, &cs).iter().any(|p| p.starts_with("Metadata/Photos")));
}
