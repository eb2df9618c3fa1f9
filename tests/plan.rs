//! `plan`, `show` and `diff` end to end on fixture folders: what is planned is justified by the
//! DB and the XML, nothing referenced or XML is deleted, plans are deterministic and read-only.

mod common;

use std::collections::HashSet;
use std::path::Path;

use common::*;
use rusqlite::{Connection, OpenFlags};
use tidyplex::changeset::{Changeset, Op};
use tidyplex::plex::db::Db;
use tidyplex::plex::infoxml::InfoXml;
use tidyplex::plex::model::Library;
use tidyplex::plex::ImageUrl;

/// Plans `args` into a file in `tmp` and reads it back.
fn plan(tmp: &Path, dir: &Path, name: &str, args: &[&str]) -> (Changeset, String) {
    let out = tmp.join(name);
    let mut all = vec!["plan", "-o", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let stdout = run(dir, &all, 0);
    let text = std::fs::read_to_string(&out).unwrap();
    (Changeset::parse(&text).unwrap(), stdout)
}

fn ro(dir: &Path) -> Connection {
    Connection::open_with_flags(db_path(dir), OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

/// Every path a column still points at once the changeset's switches are made, with the
/// targets of symlinks.
fn referenced_after(dir: &Path, cs: &Changeset) -> HashSet<String> {
    let db = Db::open(&db_path(dir)).unwrap();
    let lib = Library::read(&db).unwrap();
    let switched: HashSet<(i64, String)> = cs
        .changes
        .iter()
        .filter_map(|c| c.set_url.as_ref().map(|s| (s.id, s.column.clone())))
        .collect();
    let mut out = HashSet::new();
    for item in &lib.items {
        let bundle = lib.bundle_of(item);
        for (col, value) in db.schema.metadata_items.iter().zip(&item.images) {
            if switched.contains(&(item.id, col.to_string())) {
                continue;
            }
            let Some(mut path) = ImageUrl::parse(value.as_deref()).resolve(bundle.as_deref())
            else {
                continue;
            };
            for _ in 0..8 {
                if dir.join(&path).symlink_metadata().is_err() {
                    break; // a column may name a file that is gone; nothing to protect
                }
                out.insert(path.clone());
                let Ok(target) = std::fs::read_link(dir.join(&path)) else { break };
                let abs = if target.is_absolute() {
                    target
                } else {
                    dir.join(&path).parent().unwrap().join(target)
                };
                let Ok(abs) = abs.canonicalize() else { break };
                let Ok(rel) = abs.strip_prefix(dir.canonicalize().unwrap()) else { break };
                path = rel.to_string_lossy().into_owned();
            }
        }
    }
    out
}

/// The properties every plan must have, whatever the stage.
fn check_plan(dir: &Path, cs: &Changeset) {
    let refs = referenced_after(dir, cs);
    let conn = ro(dir);
    for change in &cs.changes {
        match change.op().unwrap() {
            Op::DeleteFile(f) => {
                assert!(!refs.contains(&f.path), "deletes referenced {}", f.path);
                assert!(!f.path.ends_with(".xml"), "deletes XML {}", f.path);
                let meta = dir.join(&f.path).symlink_metadata().unwrap();
                assert_eq!(if meta.is_file() { meta.len() } else { 0 }, f.size, "{}", f.path);
            }
            Op::DeleteDir(d) => {
                let prefix = format!("{}/", d.path);
                let inside: Vec<&String> = refs.iter().filter(|r| r.starts_with(&prefix)).collect();
                assert!(inside.is_empty(), "{} deletes referenced {inside:?}", d.path);
                let files: Vec<_> = walkdir::WalkDir::new(dir.join(&d.path))
                    .into_iter()
                    .map(|e| e.unwrap())
                    .filter(|e| !e.file_type().is_dir())
                    .collect();
                assert_eq!(files.len() as u64, d.files, "{}", d.path);
                assert!(
                    files.iter().all(|e| !e.path().to_string_lossy().ends_with(".xml")),
                    "{}",
                    d.path
                );
            }
            Op::SetUrl(s) => {
                assert_eq!(s.table, "metadata_items");
                let current: Option<String> = conn
                    .query_row(
                        &format!("SELECT {} FROM metadata_items WHERE id = ?1", s.column),
                        [s.id],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert_eq!(current, s.from, "from is the current value");
                assert!(s.to.starts_with("http://") || s.to.starts_with("https://"), "{}", s.to);
                assert!(justified(dir, &conn, s.id, s.from.as_deref().unwrap(), &s.to), "{s:?}");
            }
            Op::Upload(_) | Op::PlexCall(_) | Op::RefreshLink(_) => {
                panic!("no uploads, Plex calls or link refreshes without asking")
            }
        }
    }
}

/// The provider URL `to` is what taggings or the XML at the value's level say for `from`.
fn justified(dir: &Path, conn: &Connection, id: i64, from: &str, to: &str) -> bool {
    let db = Db::open(&db_path(dir)).unwrap();
    let lib = Library::read(&db).unwrap();
    expected_url(dir, conn, &lib, id, from).as_deref() == Some(to)
}

/// The provider URL known for item `id`'s column value `from`: the http(s) `text` of the
/// tagging whose `thumb_url` is `from`, else the `url` the `Info.xml` at the value's level lists
/// for its file, read straight from the fixture's files.
fn expected_url(
    dir: &Path,
    conn: &Connection,
    lib: &Library,
    id: i64,
    from: &str,
) -> Option<String> {
    let tagged: Option<String> = conn
        .query_row(
            "SELECT text FROM taggings WHERE metadata_item_id = ?1 AND thumb_url = ?2 AND text LIKE 'http%'",
            (id, from),
            |r| r.get(0),
        )
        .ok();
    if tagged.is_some() {
        return tagged;
    }
    let bundle = lib.bundle_of(lib.item(id)?)?;
    let rest = from.strip_prefix("metadata://")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let (xml, list) = match parts.as_slice() {
        [list, _] => ("Info.xml".to_string(), *list),
        ["seasons", n, list, _] => (format!("seasons/{n}.xml"), *list),
        ["seasons", n, "episodes", m, list, _] => (format!("seasons/{n}/episodes/{m}.xml"), *list),
        _ => return None,
    };
    let bytes = std::fs::read(dir.join(&bundle).join("Contents/_combined").join(xml)).ok()?;
    let info = InfoXml::parse(&bytes).ok()?;
    let url = &info.find(list, parts.last()?)?.url;
    url.starts_with("http").then(|| url.clone())
}

#[test]
fn set_url_targets_are_exactly_the_known_provider_urls() {
    for extra in [&["--triggers", "scoped"][..], &["--triggers", "broad"], &["--windows"]] {
        let (tmp, dir, _) = fixture(extra);
        let (cs, _) = plan(tmp.path(), &dir, "p.yaml", &["--stage", "2"]);
        let planned: std::collections::HashMap<(i64, String), String> = cs
            .changes
            .iter()
            .filter_map(|c| c.set_url.as_ref().map(|s| ((s.id, s.column.clone()), s.to.clone())))
            .collect();
        let db = Db::open(&db_path(&dir)).unwrap();
        let lib = Library::read(&db).unwrap();
        let conn = ro(&dir);
        let cleanable: Vec<i64> =
            lib.sections.iter().filter(|s| s.is_cleanable()).map(|s| s.id).collect();
        let mut checked = 0;
        for item in
            lib.items.iter().filter(|i| i.section_id.is_some_and(|s| cleanable.contains(&s)))
        {
            for (col, value) in db.schema.metadata_items.iter().zip(&item.images) {
                let Some(value) = value
                    .as_deref()
                    .filter(|v| v.starts_with("metadata://") || v.starts_with("upload://"))
                else {
                    continue;
                };
                checked += 1;
                let expected = expected_url(&dir, &conn, &lib, item.id, value);
                assert_eq!(
                    planned.get(&(item.id, col.to_string())),
                    expected.as_ref(),
                    "item {} {col} = {value} {extra:?}",
                    item.id
                );
            }
        }
        assert!(checked > 50 && planned.len() > 30, "{checked} {}", planned.len());
    }
}

fn check_all_stages(extra: &[&str]) {
    let (tmp, dir, _) = fixture(extra);
    let before = snapshot(&dir);
    let mut previous_urls = 0;
    for stage in ["1", "2", "3"] {
        let (cs, stdout) = plan(tmp.path(), &dir, &format!("s{stage}.yaml"), &["--stage", stage]);
        assert!(!cs.is_empty(), "stage {stage} finds work on a fresh fixture");
        check_plan(&dir, &cs);
        assert!(stdout.contains("Plan: "), "{stdout}");
        let urls = cs.summary.urls;
        if stage == "1" {
            assert_eq!(urls, 0, "stage 1 changes no URL");
        } else {
            assert!(urls > 0 && urls >= previous_urls);
        }
        let media = cs
            .changes
            .iter()
            .filter(|c| matches!(c.op(), Some(Op::DeleteFile(f)) if f.path.starts_with("Media/")))
            .count();
        assert_eq!(media > 0, stage == "3", "Media analysis images go at stage 3 only");
        previous_urls = urls;
    }
    assert_unchanged(&before, &snapshot(&dir));
}

#[test]
fn plans_are_justified_and_safe_on_the_scoped_fixture() {
    check_all_stages(&["--triggers", "scoped"]);
}

#[test]
fn plans_are_justified_and_safe_on_the_broad_fixture() {
    check_all_stages(&["--triggers", "broad"]);
}

#[test]
fn plans_are_justified_and_safe_on_the_windows_layout() {
    check_all_stages(&["--windows"]);
}

#[test]
fn every_known_new_agent_url_is_used_at_stage_2() {
    let (tmp, dir, _) = fixture(&[]);
    let (cs, _) = plan(tmp.path(), &dir, "p.yaml", &["--stage", "2"]);
    let planned: HashSet<(i64, String)> = cs
        .changes
        .iter()
        .filter_map(|c| c.set_url.as_ref().map(|s| (s.id, s.column.clone())))
        .collect();
    let conn = ro(&dir);
    let mut expected = 0;
    for col in [
        "user_thumb_url",
        "user_art_url",
        "user_banner_url",
        "user_music_url",
        "user_clear_logo_url",
    ] {
        let sql = format!(
            "SELECT DISTINCT m.id FROM metadata_items m JOIN taggings t \
             ON t.metadata_item_id = m.id AND t.thumb_url = m.{col} \
             WHERE m.{col} LIKE 'metadata://%' AND t.text LIKE 'http%'"
        );
        let mut stmt = conn.prepare(&sql).unwrap();
        let ids: Vec<i64> = stmt.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect();
        for id in ids {
            expected += 1;
            assert!(planned.contains(&(id, col.to_string())), "item {id} {col} not switched");
        }
    }
    assert!(expected > 0, "the fixture has new-agent items");
}

/// The pass reads folders in parallel; what it plans does not depend on how many threads.
#[test]
fn plans_are_identical_apart_from_created_at_on_any_number_of_threads() {
    let (tmp, dir, _) = fixture(&[]);
    let strip = |name: &str, threads: &str| -> String {
        let all = ["--stage", "3", "--bundles", "3", "--cache", "all", "--threads", threads];
        let (_, _) = plan(tmp.path(), &dir, name, &all);
        std::fs::read_to_string(tmp.path().join(name))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("created_at:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let one = strip("a.yaml", "1");
    assert!(one.lines().count() > 100, "{one}");
    assert_eq!(one, strip("b.yaml", "16"));
}

#[test]
fn detailed_exitcode_says_whether_there_is_work() {
    let (_tmp, dir, _) = fixture(&[]);
    run(&dir, &["plan", "--detailed-exitcode"], 2);
    run(&dir, &["plan"], 0);
}

#[test]
fn show_and_diff_render_saved_plans() {
    let (tmp, dir, _) = fixture(&[]);
    let (one, _) = plan(tmp.path(), &dir, "one.yaml", &["--stage", "1"]);
    let (_, stdout) = plan(tmp.path(), &dir, "two.json", &["--stage", "2", "--json"]);
    let two = Changeset::parse(&stdout).unwrap();
    assert_eq!(
        Changeset::parse(&std::fs::read_to_string(tmp.path().join("two.json")).unwrap()).unwrap(),
        two
    );
    let shown = run(&dir, &["show", tmp.path().join("one.yaml").to_str().unwrap()], 0);
    assert!(shown.starts_with("# "), "{shown}");
    assert!(shown.contains("Plan: ") && shown.contains("files to delete"), "{shown}");
    let as_json = run(&dir, &["show", tmp.path().join("one.yaml").to_str().unwrap(), "--json"], 0);
    assert_eq!(Changeset::parse(&as_json).unwrap(), one);
    let diff = run(
        &dir,
        &[
            "diff",
            tmp.path().join("one.yaml").to_str().unwrap(),
            tmp.path().join("two.json").to_str().unwrap(),
        ],
        0,
    );
    assert!(diff.lines().any(|l| l.starts_with("+ ~ ")), "stage 2 adds URL changes:\n{diff}");
    assert!(diff.contains("added"), "{diff}");
}

#[test]
fn a_tampered_changeset_is_refused_whole() {
    let (tmp, dir, _) = fixture(&[]);
    plan(tmp.path(), &dir, "p.yaml", &["--stage", "2"]);
    let text = std::fs::read_to_string(tmp.path().join("p.yaml")).unwrap();
    let first = text.lines().find(|l| l.starts_with("    Metadata/") && l.ends_with(':')).unwrap();
    let bad = text.replacen(first, "    Plug-in Support/Databases:", 1);
    std::fs::write(tmp.path().join("bad.yaml"), bad).unwrap();
    let err = fail(&dir, &["show", tmp.path().join("bad.yaml").to_str().unwrap()]);
    assert!(err.contains("outside the cleanable folders"), "{err}");
}

#[test]
fn stage_4_plans_uploads_of_frame_grabs_only_with_a_host() {
    let (tmp, dir, _) = fixture(&[]);
    let spec = tmp.path().join("spec.yaml");
    std::fs::write(
        &spec,
        "stage: 4\nimage_host:\n  kind: dir\n  path: /srv/tidyplex-images\n  public_url: http://127.0.0.1:8080/i\n",
    )
    .unwrap();
    let (cs, _) = plan(tmp.path(), &dir, "p4.yaml", &[spec.to_str().unwrap()]);
    let conn = ro(&dir);
    let uploads: Vec<_> = cs.changes.iter().filter_map(|c| c.upload.as_ref()).collect();
    assert!(!uploads.is_empty(), "the fixture has frame grabs");
    assert_eq!(cs.summary.uploads, uploads.len() as u64);
    for u in &uploads {
        assert_eq!(u.host, "dir");
        let bytes = std::fs::read(dir.join(&u.path)).unwrap();
        assert_eq!(u.blake3, blake3::hash(&bytes).to_hex().to_string(), "{}", u.path);
        assert_eq!(u.size, bytes.len() as u64);
        let current: Option<String> = conn
            .query_row(
                &format!("SELECT {} FROM metadata_items WHERE id = ?1", u.column),
                [u.id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(current, u.from);
        assert!(u.from.as_deref().unwrap().starts_with("media://"));
        assert!(
            !cs.changes.iter().any(|c| c.delete_file.as_ref().is_some_and(|f| f.path == u.path)),
            "the upload itself deletes its file after the DB write, not a separate change"
        );
    }
    assert!(!cs.to_yaml().contains("/srv/tidyplex-images"), "host settings stay out of changesets");
    // Without a host, stage 4 plans what stage 3 plans.
    let (without, _) = plan(tmp.path(), &dir, "p4b.yaml", &["--stage", "4"]);
    assert_eq!(without.summary.uploads, 0);
    let (three, _) = plan(tmp.path(), &dir, "p3.yaml", &["--stage", "3"]);
    assert_eq!(without.changes, three.changes);
}

/// The rendered plan of one legacy and one new-agent section, pinned (the fixture is
/// deterministic for a seed). Review changes with `cargo insta review`.
#[test]
fn the_rendered_plan_reads_like_terraform() {
    let (_tmp, dir, _) = fixture(&[]);
    let shown = run(&dir, &["plan", "--stage", "2", "--section", "1"], 0);
    insta::assert_snapshot!("plan_stage_2_section_1", shown);
    let shown = run(&dir, &["plan", "--stage", "3", "--section", "4"], 0);
    insta::assert_snapshot!("plan_stage_3_section_4", shown);
}
