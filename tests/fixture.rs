//! The fixture builder: faithfulness to Plex, determinism, and an exact report.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use tidyplex::fixture::{build, Options, Report, SchemaVersion};
use tidyplex::plex::{TriggerForm, DB_PATH};

fn opts(triggers: TriggerForm) -> Options {
    Options { triggers, ..Options::default() }
}

fn built(o: &Options) -> (tempfile::TempDir, Report) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("plex");
    let r = build(&dir, o).unwrap();
    (t, r)
}

fn db(r: &Report) -> Connection {
    Connection::open(r.plex_dir.join(DB_PATH)).unwrap()
}

#[test]
fn stock_sqlite_fails_like_on_a_real_server() {
    for form in [TriggerForm::Broad, TriggerForm::Scoped] {
        let (_t, r) = built(&opts(form));
        let c = db(&r);
        let n: i64 = c.query_row("SELECT count(*) FROM metadata_items", [], |r| r.get(0)).unwrap();
        assert!(n > 50);
        let res = c.execute("UPDATE metadata_items SET user_thumb_url='x' WHERE id=1", []);
        match form {
            TriggerForm::Broad => {
                let e = res.unwrap_err().to_string();
                assert!(e.contains("unknown tokenizer: collating"), "{e}");
            }
            _ => assert_eq!(res.unwrap(), 1),
        }
        let e = c.execute("UPDATE tags SET user_thumb_url='x'", []).unwrap_err().to_string();
        assert!(e.contains("unknown tokenizer: collating"), "{e}");
        c.execute("UPDATE taggings SET thumb_url='x' WHERE id=1", []).unwrap();
        let jm: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(jm, "wal");
        drop(c);

        let uri = format!("file:{}?mode=ro", r.plex_dir.join(DB_PATH).display());
        let ro = Connection::open_with_flags(
            &uri,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
        )
        .unwrap();
        let probe =
            ro.prepare("EXPLAIN UPDATE metadata_items SET user_thumb_url=user_thumb_url WHERE 0");
        assert_eq!(probe.is_ok(), form == TriggerForm::Scoped, "{form:?}");
        let t: String =
            ro.query_row("SELECT title FROM metadata_items WHERE id=1", [], |r| r.get(0)).unwrap();
        assert!(!t.is_empty());
    }
}

#[test]
fn icu_objects_are_declared_as_plex_declares_them() {
    let (_t, r) = built(&opts(TriggerForm::Scoped));
    let c = db(&r);
    let sql = |name: &str| -> String {
        c.query_row("SELECT sql FROM sqlite_master WHERE name=?1", [name], |r| r.get(0)).unwrap()
    };
    assert!(sql("fts4_metadata_titles_icu")
        .contains("tokenize=collating 'root@colStrength=primary;colAlternate=shifted'"));
    assert!(sql("fts4_tag_titles_icu").contains("tokenize=collating"));
    assert!(sql("index_title_sort_icu").contains("COLLATE icu_root"));
    assert!(sql("fts4_metadata_titles_before_update_icu")
        .contains("BEFORE UPDATE OF title, title_sort, original_title ON metadata_items"));
    let docs: i64 = c
        .query_row("SELECT count(*) FROM fts4_metadata_titles_icu_docsize", [], |r| r.get(0))
        .unwrap();
    assert!(docs > 50, "the FTS shadow tables hold real content");
    let triggers: i64 = c
        .query_row("SELECT count(*) FROM sqlite_master WHERE type='trigger'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(triggers, 8);
}

/// Relative path → (kind, size, link target).
fn listing(root: &Path) -> BTreeMap<String, (char, u64, String)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                out.insert(rel, ('d', 0, String::new()));
                stack.push(p);
            } else if m.file_type().is_symlink() {
                let t = fs::read_link(&p).unwrap().to_string_lossy().into_owned();
                let t = if t.starts_with('/') { "<absolute>".to_string() } else { t };
                out.insert(rel, ('l', 0, t));
            } else {
                out.insert(rel, ('f', m.len(), String::new()));
            }
        }
    }
    out
}

fn dump(r: &Report) -> Vec<String> {
    let c = db(r);
    let mut st = c.prepare("SELECT * FROM metadata_items ORDER BY id").unwrap();
    let n = st.column_count();
    st.query_map([], |row| {
        Ok((0..n).map(|i| format!("{:?}", row.get_ref(i).unwrap())).collect::<Vec<_>>().join("|"))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[test]
fn same_seed_same_fixture_other_seed_differs() {
    let (_a, ra) = built(&Options::default());
    let (_b, rb) = built(&Options::default());
    let (_c, rc) = built(&Options { seed: 2, ..Options::default() });
    let la = listing(&ra.plex_dir);
    assert_eq!(la, listing(&rb.plex_dir));
    assert_eq!(dump(&ra), dump(&rb));
    assert_ne!(la, listing(&rc.plex_dir));
    assert_ne!(dump(&ra), dump(&rc));
}

#[test]
fn windows_layout_has_no_links_in_combined() {
    let links = |r: &Report| {
        listing(&r.plex_dir).iter().filter(|(p, v)| v.0 == 'l' && p.contains("/_combined/")).count()
    };
    let (_a, linux) = built(&Options::default());
    let (_b, win) = built(&Options { windows: true, ..Options::default() });
    assert!(links(&linux) > 10);
    assert_eq!(links(&win), 0);
}

#[test]
fn report_usage_equals_a_walk_counting_hard_links_once() {
    for o in [Options::default(), Options { windows: true, seed: 7, ..Options::default() }] {
        let (_t, r) = built(&o);
        let mut walked: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut seen = std::collections::HashSet::new();
        for (p, (k, size, _)) in listing(&r.plex_dir) {
            if k == 'd' {
                continue;
            }
            // A hard-linked file's bytes count once (its names all count as files).
            let meta = std::fs::symlink_metadata(r.plex_dir.join(&p)).unwrap();
            let size = if seen.insert((meta.dev(), meta.ino())) { size } else { 0 };
            let area = if let Some(rest) = p.strip_prefix("Metadata/") {
                format!("Metadata/{}", rest.split('/').next().unwrap())
            } else if p.starts_with("Media/") {
                "Media".into()
            } else if p.starts_with("Cache/PhotoTranscoder/") {
                "PhotoTranscoder".into()
            } else {
                continue;
            };
            let e = walked.entry(area).or_default();
            e.0 += 1;
            e.1 += size;
        }
        let reported: BTreeMap<String, (u64, u64)> =
            r.usage.iter().map(|(k, u)| (k.clone(), (u.files, u.bytes))).collect();
        assert_eq!(reported, walked);
        assert_eq!(reported.len(), 8);
    }
}

#[test]
fn section_report_matches_the_db() {
    let (_t, r) = built(&Options::default());
    let c = db(&r);
    for s in &r.sections {
        let items: u64 = c
            .query_row(
                "SELECT count(*) FROM metadata_items WHERE library_section_id=?1 AND metadata_type IN (1,2,3,4,8,9)",
                [s.id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(items, s.items, "{}", s.name);
        for (col, counts) in &s.columns {
            let q = format!(
                "SELECT {col} FROM metadata_items WHERE library_section_id=?1 AND metadata_type IN (1,2,3,4,8,9)"
            );
            let mut st = c.prepare(&q).unwrap();
            let mut mine = tidyplex::plex::ColumnCounts::default();
            for v in st.query_map([s.id], |r| r.get::<_, Option<String>>(0)).unwrap() {
                mine.add(tidyplex::plex::ImageUrl::parse(v.unwrap().as_deref()).state());
            }
            assert_eq!(&mine, counts, "{} {col}", s.name);
        }
    }
    assert_eq!(r.sections.len(), 7);
    assert_eq!(r.sections[6].items, 0);
    // A fully local column exists, and so do http, media and empty values.
    let all = r.sections.iter().flat_map(|s| s.columns.values()).fold(
        Default::default(),
        |mut a: tidyplex::plex::ColumnCounts, c| {
            a.merge(c);
            a
        },
    );
    assert!(all.http > 0 && all.local > 0 && all.media > 0 && all.empty > 0);
}

#[test]
fn korean_section_name_round_trips() {
    let (_t, r) = built(&Options::default());
    let c = db(&r);
    let name: String =
        c.query_row("SELECT name FROM library_sections WHERE id=2", [], |r| r.get(0)).unwrap();
    assert_eq!(name, "영화");
    assert_eq!(r.sections[1].name, "영화");
}

#[test]
fn refuses_a_non_empty_dir() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("x"), "x").unwrap();
    let e = build(t.path(), &Options::default()).unwrap_err().to_string();
    assert!(e.contains("not empty"), "{e}");
    // An existing empty dir is fine.
    let empty = tempfile::tempdir().unwrap();
    build(empty.path(), &Options::default()).unwrap();
}

#[test]
fn schema_142_has_no_square_art() {
    let (_t, r) = built(&Options { schema: SchemaVersion::V142, ..Options::default() });
    let c = db(&r);
    let cols: Vec<String> = c
        .prepare("SELECT name FROM pragma_table_info('metadata_items')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!cols.iter().any(|c| c == "user_square_art_url" || c == "is_adult"));
    assert!(cols.iter().any(|c| c == "user_clear_logo_url"));
    assert_eq!(cols.len(), 50);
    assert!(!r.sections[0].columns.contains_key("user_square_art_url"));
    let (_t2, r2) = built(&Options::default());
    assert_eq!(
        db(&r2)
            .query_row("SELECT count(*) FROM pragma_table_info('metadata_items')", [], |r| r
                .get::<_, i64>(0))
            .unwrap(),
        53
    );
}

#[test]
fn special_files_exist() {
    let (_t, r) = built(&Options::default());
    let p = &r.plex_dir;
    for f in [
        "Preferences.xml",
        "Plug-in Support/Databases/com.plexapp.plugins.library.blobs.db",
        "Plug-in Support/Databases/com.plexapp.plugins.library.db-2026-11-20",
        "Logs/Plex Media Server.log",
        "Cache/other.dat",
        "Metadata/Movies/x/not-a-hash.bundle/Contents/_combined/Info.xml",
    ] {
        assert!(p.join(f).is_file(), "{f}");
    }
    let none = &r.cases["none_placeholder"][0].path;
    assert_eq!(fs::read(p.join(none)).unwrap(), b"None");
    let dangling = &r.cases["dangling_combined_link"][0].path;
    assert!(fs::symlink_metadata(p.join(dangling)).unwrap().file_type().is_symlink());
    assert!(!p.join(dangling).exists());
    for name in [
        "upload_with_stale",
        "metadata_missing_file",
        "metadata_unlisted",
        "already_http",
        "empty",
        "art_media_frame_grab",
        "poster_media_frame_grab",
        "episode_thumb_media",
        "theme",
        "banner",
        "clear_logo",
        "season_poster",
        "episode_thumb",
        "collection_upload_poster",
        "playlist_upload_poster",
        "season_episode_bundle_empty",
        "season_episode_bundle_stray_file",
        "music_previous_agent_xml",
        "new_agent_selected",
        "new_agent_stale_selection",
        "legacy_selected_stored",
        "absolute_combined_link",
    ] {
        assert!(r.cases.contains_key(name), "{name}");
    }
    assert!(!r.orphans.is_empty());
}

#[test]
fn cli_prints_json() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("plex");
    let out = assert_cmd::Command::cargo_bin("tidyplex")
        .unwrap()
        .args([
            "fixture",
            dir.to_str().unwrap(),
            "--json",
            "--schema",
            "1.42",
            "--triggers",
            "broad",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sections"].as_array().unwrap().len(), 7);
    assert_eq!(v["schema"], "1.42");
    assert!(v["usage"]["Metadata/Movies"]["files"].as_u64().unwrap() > 0);
}
