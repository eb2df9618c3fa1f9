use super::*;

fn sample() -> Changeset {
    let items = BTreeMap::from([
        (
            7,
            ItemInfo {
                kind: "movie".into(),
                title: "Heat & Dust: \"1983\"".into(),
                section: Some(1),
            },
        ),
        (3, ItemInfo { kind: "show".into(), title: "무한도전".into(), section: Some(2) }),
    ]);
    let changes = vec![
        Change::delete_file(
            Some(7),
            DeleteFile {
                path: "Metadata/Movies/a/bcdef0123456789abcdef0123456789abcdef01.bundle/Uploads/posters/ff".into(),
                size: 10,
                mtime: 5,
                shared: false,
            },
        ),
        Change::set_url(
            Some(7),
            SetUrl {
                table: "metadata_items".into(),
                id: 7,
                column: "user_thumb_url".into(),
                from: Some("metadata://posters/x".into()),
                to: "https://image.tmdb.org/t/p/original/x.jpg?a=1&b=2".into(),
            },
        ),
        Change::delete_dir(
            Some(3),
            DeleteDir {
                path: "Metadata/TV Shows/1/23456789abcdef0123456789abcdef012345678.bundle/Contents/com.plexapp.agents.thetvdb".into(),
                files: 4,
                bytes: 1000,
                digest: digest([("a", false, 1), ("b", true, 0)]),
            },
        ),
        Change::delete_file(
            None,
            DeleteFile { path: "Cache/PhotoTranscoder/ab/cd.jpg".into(), size: 3, mtime: 1, shared: false },
        ),
    ];
    let spec = PlanSpec {
        sections: vec![SectionStage { id: 1, name: "Movies".into(), stage: 2 }],
        ..PlanSpec::default()
    };
    Changeset::new("/plex", spec, items, changes, BTreeMap::from([(1, 2)]))
}

#[test]
fn sorts_by_section_then_item_then_urls_before_deletions() {
    let cs = sample();
    let order: Vec<(Option<i64>, bool)> =
        cs.changes.iter().map(|c| (c.item, c.set_url.is_some())).collect();
    assert_eq!(order, [(Some(7), true), (Some(7), false), (Some(3), false), (None, false)]);
    assert_eq!(
        cs.summary,
        Summary {
            files: 6,
            bytes: 1013,
            urls: 1,
            uploads: 0,
            kept_local: 2,
            kept_local_by_section: BTreeMap::from([(1, 2)]),
            plex_calls: 0,
            link_refreshes: 0
        }
    );
}

#[test]
fn yaml_and_json_round_trip() {
    let cs = sample();
    let yaml = cs.to_yaml();
    assert!(yaml.starts_with("format: tidyplex-changeset/2\n"), "{yaml}");
    assert!(yaml.contains("    - Uploads/posters/ff 10 5\n"), "{yaml}");
    assert_eq!(Changeset::parse(&yaml).unwrap(), cs);
    assert_eq!(Changeset::parse(&cs.to_json()).unwrap(), cs);
    // Format 1 files still read, to the same changeset.
    let old = cs.to_format1_yaml();
    assert!(old.starts_with("format: tidyplex-changeset/1\n"), "{old}");
    let read = Changeset::parse(&old).unwrap();
    assert_eq!(read.changes, cs.changes);
    assert_eq!(read.items, cs.items);
}

#[test]
fn same_input_same_bytes_apart_from_created_at() {
    let strip = |s: String| {
        s.lines().filter(|l| !l.starts_with("created_at")).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(strip(sample().to_yaml()), strip(sample().to_yaml()));
}

/// Replaces `from` with `to` in `text` and parses it.
fn tampered_in(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from} not in {text}");
    Changeset::parse(&text.replacen(from, to, 1)).unwrap_err().to_string()
}

#[test]
fn malformed_changesets_are_refused() {
    let cases = [
        ("Cache/PhotoTranscoder:", "/etc:", "not a relative path"),
        ("- ab/cd.jpg 3 1", "- ../../Plug-in Support/x 3 1", "`..`"),
        ("Cache/PhotoTranscoder:", "Plug-in Support/Databases:", "outside the cleanable"),
        ("- ab/cd.jpg 3 1", "- ab//cd.jpg 3 1", "empty"),
        ("    user_thumb_url:", "    title:", "not an image column"),
        ("to: https://image.tmdb.org", "to: file:///etc/passwd#", "not an http(s) URL"),
        ("to: https://image.tmdb.org", "to: javascript:alert(1)//", "not an http(s) URL"),
        ("format: tidyplex-changeset/2", "format: tidyplex-changeset/3", "upgrade tidyplex"),
        ("format: tidyplex-changeset/2", "format: terraform/1", "not a tidyplex changeset"),
        ("  delete:\n    Metadata/TV", "  remove:\n    Metadata/TV", "unknown field"),
        (" 1000 1867f464", " 1000 zz1867f464", "is not `<path> <size> <mtime>`"),
        ("ff 10 5", "ff -10 5", "is not `<path> <size> <mtime>`"),
        ("ff 10 5", "ff 10 5 rm -rf", "is not `<path> <size> <mtime>`"),
        (
            "- Uploads/posters/ff 10 5",
            "- Contents/_combined/Info.xml 10 5",
            "not a file tidyplex deletes",
        ),
        (
            "- Uploads/posters/ff 10 5",
            "- Contents/_combined/tracks/ab/lyrics/com.plexapp.agents.lyricfind_ab 10 5",
            "not a file tidyplex deletes",
        ),
        (
            "Metadata/TV Shows/1/2345",
            "Metadata/TV Shows/1/not-a-hash.bundle/x/2345",
            "not a bundle",
        ),
    ];
    let yaml = sample().to_yaml();
    for (from, to, expected) in cases {
        let err = tampered_in(&yaml, from, to);
        assert!(err.contains(expected), "{to}: {err}");
    }
}

#[test]
fn malformed_format_1_changesets_are_refused() {
    let cases = [
        ("path: Cache/PhotoTranscoder/ab/cd.jpg", "path: /etc/passwd", "not a relative path"),
        ("path: Cache/PhotoTranscoder/ab/cd.jpg", "path: Metadata/../Plug-in Support/x", "`..`"),
        (
            "path: Cache/PhotoTranscoder/ab/cd.jpg",
            "path: Plug-in Support/Databases/x.db",
            "outside the cleanable",
        ),
        ("path: Cache/PhotoTranscoder/ab/cd.jpg", "path: Metadata//x", "empty"),
        ("column: user_thumb_url", "column: title", "not an image column"),
        ("table: metadata_items", "table: sqlite_master", "not an image column"),
        ("to: https://image.tmdb.org", "to: file:///etc/passwd#", "not an http(s) URL"),
        ("format: tidyplex-changeset/1", "format: tidyplex-changeset/3", "upgrade tidyplex"),
        ("  delete_dir:\n", "  delete_tree:\n", "unknown field"),
        ("    digest: ", "    digest: zz", "not 64 hex"),
        ("- item: 3\n", "- item: 99\n", "item 99 is not listed"),
        ("    size: 3\n", "    size: -3\n", "cannot be read"),
        ("Uploads/posters/ff", "Contents/_combined/Info.xml", "not a file tidyplex deletes"),
        (
            "path: Metadata/TV Shows/1/",
            "path: Metadata/TV Shows/1/not-a-hash.bundle/",
            "not a bundle",
        ),
    ];
    let yaml = sample().to_format1_yaml();
    for (from, to, expected) in cases {
        let err = tampered_in(&yaml, from, to);
        assert!(err.contains(expected), "{to}: {err}");
    }
}

#[test]
fn a_change_must_hold_exactly_one_operation() {
    let mut cs = sample();
    cs.changes[0].delete_file = Some(Box::new(DeleteFile {
        path: "Metadata/Movies/x".into(),
        size: 0,
        mtime: 0,
        shared: false,
    }));
    let err = Changeset::parse(&cs.to_format1_yaml()).unwrap_err().to_string();
    assert!(err.contains("exactly one"), "{err}");
    cs.changes[0] = Change {
        item: None,
        set_url: None,
        delete_file: None,
        delete_dir: None,
        upload: None,
        plex_call: None,
        refresh_link: None,
    };
    let err = Changeset::parse(&cs.to_format1_yaml()).unwrap_err().to_string();
    assert!(err.contains("exactly one"), "{err}");
}

#[test]
fn a_later_minor_version_may_add_fields() {
    let yaml = sample()
        .to_yaml()
        .replacen("format: tidyplex-changeset/2", "format: tidyplex-changeset/2.3", 1)
        .replacen("tool: ", "comment: added later\ntool: ", 1);
    assert!(Changeset::parse(&yaml).is_ok());
    let strict = yaml.replacen("tidyplex-changeset/2.3", "tidyplex-changeset/2", 1);
    assert!(Changeset::parse(&strict).unwrap_err().to_string().contains("unknown field `comment`"));
}

#[test]
fn not_a_changeset_at_all() {
    for text in ["", "hello", "[1, 2]", "{\"a\": 1}", "format: 7"] {
        assert!(Changeset::parse(text).is_err(), "{text}");
    }
}

#[test]
fn digests_depend_on_names_kinds_and_sizes_not_order() {
    let a = digest([("x", false, 1), ("y", false, 2)]);
    assert_eq!(a, digest([("y", false, 2), ("x", false, 1)]));
    assert_ne!(a, digest([("x", false, 1), ("y", false, 3)]));
    assert_ne!(a, digest([("x", true, 1), ("y", false, 2)]));
    assert_ne!(a, digest([("x", false, 1), ("z", false, 2)]));
}

#[test]
fn refresh_links_round_trip_and_are_checked() {
    let link = RefreshLink {
        table: "metadata_items".into(),
        id: 7,
        column: "user_art_url".into(),
        from: "https://cdn.discordapp.com/attachments/1/2/a.jpg?ex=65f1a2b3&is=1&hm=2&".into(),
        host: "discord".into(),
        message_id: "1200000000000000001".into(),
        attachment_id: "1200000000000000002".into(),
    };
    let mut cs = sample();
    cs.changes = vec![Change::refresh_link(None, link.clone())];
    let text = cs.to_yaml();
    assert!(
        text.contains("- refresh_link:\n") && text.contains("table: metadata_items\n"),
        "{text}"
    );
    assert_eq!(Changeset::parse(&text).unwrap().changes[0].refresh_link.as_deref(), Some(&link));
    let mut bad = |f: &dyn Fn(&mut RefreshLink)| {
        let mut l = link.clone();
        f(&mut l);
        cs.changes = vec![Change::refresh_link(None, l)];
        Changeset::parse(&cs.to_yaml()).unwrap_err().to_string()
    };
    assert!(bad(&|l| l.message_id = "12a".into()).contains("not a numeric id"));
    assert!(bad(&|l| l.attachment_id = String::new()).contains("not a numeric id"));
    assert!(bad(&|l| l.from = "media://x".into()).contains("not an http(s) URL"));
    assert!(bad(&|l| l.column = "title".into()).contains("not an image column"));
    assert!(bad(&|l| l.host = "https://discord.com/api/webhooks/1/x".into())
        .contains("not an image host name"));
}
