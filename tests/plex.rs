//! Talking to Plex, end to end through the real binary against a stand-in Plex server on a
//! loopback port: what needs Plex's attention, `plan --repair` and the calls apply makes (none
//! without a token), `--when-idle`, Plex's own maintenance, error handling, and a token that
//! never shows.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::plex::{activity, PlexStandIn};
use common::*;
use rusqlite::Connection;
use serde_json::Value;
use tidyplex::changeset::{Changeset, Op, PlexAction};

const TOKEN: &str = "stand-in-token-9f2c41";

/// What one run of the binary said.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `tidyplex --plex-dir DIR ARGS…` against `url`, with `token` in TIDYPLEX_PLEX_TOKEN.
/// Every run checks that neither that token nor the one in Preferences.xml is printed.
fn tp(dir: &Path, url: &str, token: Option<&str>, args: &[&str]) -> Out {
    let mut cmd = tidyplex();
    cmd.arg("--plex-dir").arg(dir).env("TIDYPLEX_PLEX_URL", url);
    if let Some(t) = token {
        cmd.env("TIDYPLEX_PLEX_TOKEN", t);
    }
    let out = cmd.args(args).output().unwrap();
    let out = Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    for secret in [Some(TOKEN.to_string()), prefs_token(dir)].into_iter().flatten() {
        assert!(
            !out.stdout.contains(&secret) && !out.stderr.contains(&secret),
            "the token is printed by {args:?}:\n{}\n{}",
            out.stdout,
            out.stderr
        );
    }
    out
}

/// Asserts the exit code, showing the output when it differs.
fn expect(out: Out, code: i32) -> Out {
    assert_eq!(out.code, code, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    out
}

/// The `PlexOnlineToken` of the fixture's Preferences.xml.
fn prefs_token(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("Preferences.xml")).ok()?;
    let rest = text.split("PlexOnlineToken=\"").nth(1)?;
    Some(rest.split('"').next()?.to_string())
}

fn conn(dir: &Path) -> Connection {
    Connection::open(db_path(dir)).unwrap()
}

/// Breaks images only Plex can bring back: every episode's `media://` frame grab goes (analyze),
/// movie 8's poster (a file no provider lists) goes too, and movie 14's (also unlisted) becomes
/// Plex's `None` placeholder (refresh). Returns the expected calls, sorted.
fn break_images(dir: &Path) -> Vec<String> {
    let c = conn(dir);
    let mut expected = Vec::new();
    let mut stmt = c
        .prepare(
            "SELECT id, user_thumb_url FROM metadata_items WHERE metadata_type = 4 \
             AND user_thumb_url LIKE 'media://%' ORDER BY id",
        )
        .unwrap();
    let grabs: Vec<(i64, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(|r| r.unwrap()).collect();
    assert!(grabs.len() >= 6, "{grabs:?}");
    for (id, url) in grabs {
        std::fs::remove_file(dir.join("Media/localhost").join(url.trim_start_matches("media://")))
            .unwrap();
        expected.push(format!("PUT /library/metadata/{id}/analyze"));
    }
    for (id, none) in [(8, false), (14, true)] {
        let (hash, value): (String, String) = c
            .query_row("SELECT hash, user_thumb_url FROM metadata_items WHERE id = ?1", [id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        let path = dir
            .join("Metadata/Movies")
            .join(&hash[..1])
            .join(format!("{}.bundle", &hash[1..]))
            .join("Contents/_combined")
            .join(value.trim_start_matches("metadata://"));
        if none {
            std::fs::write(&path, "None").unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
        expected.push(format!("PUT /library/metadata/{id}/refresh"));
    }
    expected.sort();
    expected
}

/// Plans into `tmp/name`; returns the file and the changeset.
fn plan_to(tmp: &Path, dir: &Path, name: &str, args: &[&str]) -> (PathBuf, Changeset) {
    let file = tmp.join(name);
    let mut all = vec!["plan", "-o", file.to_str().unwrap()];
    all.extend_from_slice(args);
    expect(tp(dir, "http://127.0.0.1:1", None, &all), 0);
    let cs = Changeset::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
    (file, cs)
}

/// The PUTs the stand-in saw, sorted.
fn puts(plex: &PlexStandIn) -> Vec<String> {
    let mut v: Vec<String> = plex.lines().into_iter().filter(|l| l.starts_with("PUT ")).collect();
    v.sort();
    v
}

fn column(dir: &Path, id: i64, column: &str) -> Option<String> {
    conn(dir)
        .query_row(&format!("SELECT {column} FROM metadata_items WHERE id = ?1"), [id], |r| {
            r.get(0)
        })
        .unwrap()
}

fn section_of(dir: &Path, id: i64) -> i64 {
    conn(dir)
        .query_row("SELECT library_section_id FROM metadata_items WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap()
}

/// A port nothing listens on.
fn refused_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

#[test]
fn status_and_plan_list_what_needs_plex_and_repair_plans_the_calls() {
    let (tmp, dir, _) = fixture(&[]);
    let nothing = json(&dir, &["status"]);
    assert_eq!(nothing["attention"], Value::Array(vec![]), "a fresh fixture needs nothing");
    let expected = break_images(&dir);

    let st = json(&dir, &["status"]);
    let list = st["attention"].as_array().unwrap();
    assert_eq!(list.len(), expected.len(), "{list:#?}");
    let movie8 = list.iter().find(|a| a["item"] == 8).unwrap();
    assert_eq!(movie8["problem"], "missing");
    assert_eq!(movie8["action"], "refresh");
    assert_eq!(list.iter().find(|a| a["item"] == 14).unwrap()["problem"], "broken");
    assert!(list.iter().filter(|a| a["action"] == "analyze").all(|a| a["type"] == "episode"));
    let text = run(&dir, &["status"], 0);
    assert!(text.contains("Needs Plex's attention (10)"), "{text}");
    assert!(text.contains("refresh movie 8 \"Movie 8 & Friends\": thumb image file is missing"));

    // Without --repair: a warning, no calls.
    let out = expect(tp(&dir, "http://127.0.0.1:1", None, &["plan", "--stage", "2"]), 0);
    assert!(out.stderr.contains("10 image columns need Plex's attention"), "{}", out.stderr);
    assert!(!out.stdout.contains("! refresh"));

    // With it: one plex_call per item, rendered, counted, in the schema.
    let (file, cs) = plan_to(tmp.path(), &dir, "repair.yaml", &["--stage", "2", "--repair"]);
    assert!(cs.spec.repair);
    assert_eq!(cs.summary.plex_calls, expected.len() as u64);
    let mut calls: Vec<String> = cs
        .changes
        .iter()
        .filter_map(|c| match c.op() {
            Some(Op::PlexCall(p)) => {
                assert_eq!(c.item, Some(p.id));
                Some(format!("PUT /library/metadata/{}/{}", p.id, p.action.as_str()))
            }
            _ => None,
        })
        .collect();
    calls.sort();
    assert_eq!(calls, expected);
    let yaml = std::fs::read_to_string(&file).unwrap();
    // Under item 8's own changes, in format-1 shape.
    let at = yaml.find("- id: 8\n").unwrap();
    let entry = &yaml[at..yaml[at + 1..].find("\n- id: ").map_or(yaml.len(), |n| at + 1 + n)];
    assert!(entry.contains("  - plex_call:\n      action: refresh\n      id: 8\n      column: user_thumb_url\n      from: metadata://posters/"), "{entry}");
    assert!(yaml.contains("repair: true"));
    let shown = run(&dir, &["show", file.to_str().unwrap()], 0);
    assert!(shown.contains("  ! refresh movie 8 \"Movie 8 & Friends\"\n"), "{shown}");
    assert!(
        shown.contains("  ! analyze episode 27 \"Show 24 – S01E02 – Episode 1x2\"\n"),
        "{shown}"
    );
    assert!(shown.contains(", 10 Plex calls (refresh/analyze)."), "{shown}");
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/changeset.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let doc: Value = yaml_serde::from_str(&yaml).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // A plain plan of the same state has no Plex calls and the same other changes.
    let (_, plain) = plan_to(tmp.path(), &dir, "plain.yaml", &["--stage", "2"]);
    let others: Vec<_> = cs.changes.iter().filter(|c| c.plex_call.is_none()).cloned().collect();
    assert_eq!(plain.changes, others);
    assert_eq!(plain.summary.plex_calls, 0);
    assert!(!std::fs::read_to_string(tmp.path().join("plain.yaml")).unwrap().contains("plex_call"));
}

#[test]
fn apply_checks_idle_then_writes_then_calls_plex_a_few_at_a_time() {
    let (tmp, dir, _) = fixture(&[]);
    let expected = break_images(&dir);
    let (file, cs) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "2", "--repair"]);
    let plex = PlexStandIn::start(TOKEN);
    plex.set(|c| c.slow = Some(("/library/metadata/".into(), Duration::from_millis(300))));
    let out = expect(
        tp(&dir, &plex.url(), Some(TOKEN), &["apply", file.to_str().unwrap(), "--yes", "--json"]),
        0,
    );
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["applied"], cs.changes.len() as u64, "{report}");
    assert!(report["plex"].as_str().unwrap().starts_with("idle"), "{report}");
    let lines = plex.lines();
    assert_eq!(lines[..2], ["GET /status/sessions", "GET /activities"], "idle check first");
    assert_eq!(puts(&plex), expected);
    assert_eq!(lines.len(), 2 + expected.len(), "{lines:#?}");
    // One client identifier, made at random once and kept in tidyplex's state folder.
    let id = std::fs::read_to_string(dir.join("Plug-in Support/tidyplex/plex-client-id")).unwrap();
    let id = id.trim();
    assert!(id.starts_with("tidyplex-") && id.len() == 41, "{id}");
    for call in plex.calls() {
        assert_eq!(call.token.as_deref(), Some(TOKEN), "the token goes in the header");
        assert_eq!(call.accept.as_deref(), Some("application/json"));
        assert_eq!(call.client.as_deref(), Some(id));
        assert!(!call.path.contains(TOKEN), "never in the URL: {}", call.path);
    }
    let most = plex.max_in_flight();
    assert!((2..=4).contains(&most), "bounded concurrency, yet concurrent: {most}");
    // The DB writes were made (the calls come after them).
    for s in cs.changes.iter().filter_map(|c| c.set_url.as_deref()) {
        assert_eq!(column(&dir, s.id, &s.column).as_deref(), Some(s.to.as_str()));
    }

    // A call whose column changed since planning is skipped as drifted, not sent.
    conn(&dir)
        .execute(
            "UPDATE metadata_items SET user_thumb_url = 'https://x.example/p.jpg' WHERE id = 8",
            [],
        )
        .unwrap();
    plex.clear();
    let out =
        expect(tp(&dir, &plex.url(), Some(TOKEN), &["apply", file.to_str().unwrap(), "--yes"]), 3);
    assert!(
        out.stdout.contains("refresh movie 8: user_thumb_url is https://x.example/p.jpg now"),
        "{}",
        out.stdout
    );
    assert!(!puts(&plex).contains(&"PUT /library/metadata/8/refresh".to_string()));
    assert_eq!(puts(&plex).len(), expected.len() - 1);
    assert!(plex.calls().iter().all(|c| c.client.as_deref() == Some(id)), "the same one next run");
}

#[test]
fn the_token_comes_from_preferences_and_without_one_nothing_is_called() {
    let (tmp, dir, _) = fixture(&[]);
    let expected = break_images(&dir);
    let (file, _) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "2", "--repair"]);
    let prefs = prefs_token(&dir).expect("the fixture writes a PlexOnlineToken");

    // Preferences.xml's token, when no TIDYPLEX_PLEX_TOKEN.
    let plex = PlexStandIn::start(&prefs);
    expect(tp(&dir, &plex.url(), None, &["apply", file.to_str().unwrap(), "--yes"]), 0);
    assert_eq!(puts(&plex), expected);
    assert!(plex.calls().iter().all(|c| c.token.as_deref() == Some(prefs.as_str())));
    // TIDYPLEX_PLEX_TOKEN wins over it.
    let other = PlexStandIn::start(TOKEN);
    expect(tp(&dir, &other.url(), Some(TOKEN), &["apply", file.to_str().unwrap(), "--yes"]), 0);
    assert!(other.calls().iter().all(|c| c.token.as_deref() == Some(TOKEN)));

    // No token anywhere: not a single request; the rest applies, the calls are deferred (3).
    let (tmp, dir, _) = fixture(&[]);
    break_images(&dir);
    std::fs::remove_file(dir.join("Preferences.xml")).unwrap();
    let (file, cs) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "2", "--repair"]);
    let plex = PlexStandIn::start(TOKEN);
    let out = expect(
        tp(&dir, &plex.url(), None, &["apply", file.to_str().unwrap(), "--yes", "--json"]),
        3,
    );
    assert_eq!(plex.calls(), vec![], "no token, no calls");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let deferred = report["deferred"].as_array().unwrap();
    assert_eq!(deferred.len() as u64, cs.summary.plex_calls);
    assert!(deferred[0].as_str().unwrap().contains("no Plex token: set TIDYPLEX_PLEX_TOKEN"));
    assert_eq!(report["applied"], cs.changes.len() as u64 - cs.summary.plex_calls);
    let out = expect(tp(&dir, &plex.url(), None, &["apply", file.to_str().unwrap(), "--yes"]), 3);
    assert!(out.stdout.contains("Deferred (the next plan has them again) (10):"), "{}", out.stdout);
    // The maintenance commands need a token too, and say so in one line.
    let out = expect(tp(&dir, &plex.url(), None, &["plex", "optimize"]), 1);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.starts_with("error: no Plex token: set TIDYPLEX_PLEX_TOKEN"));
    assert_eq!(plex.calls(), vec![]);
}

#[test]
fn when_idle_defers_everything_while_plex_plays_or_scans() {
    let (tmp, dir, _) = fixture(&[]);
    break_images(&dir);
    let (file, _) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "2", "--repair"]);
    let f = file.to_str().unwrap();
    let plex = PlexStandIn::start(TOKEN);
    let before = without_state(snapshot(&dir));

    plex.set(|c| c.sessions = 1);
    let out = expect(tp(&dir, &plex.url(), Some(TOKEN), &["apply", f, "--yes", "--when-idle"]), 3);
    assert!(
        out.stdout.contains("Plex is busy (1 playing session); nothing was changed"),
        "{}",
        out.stdout
    );
    plex.set(|c| {
        c.sessions = 0;
        c.activities = vec![
            activity("provider.epg.load", "Loading guide"),
            activity("library.update.section", "Scanning Movies"),
        ];
    });
    let out = expect(
        tp(&dir, &plex.url(), Some(TOKEN), &["apply", f, "--yes", "--when-idle", "--json"]),
        3,
    );
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["applied"], 0);
    assert_eq!(report["idle_deferred"], true);
    assert!(report["deferred"][0]
        .as_str()
        .unwrap()
        .contains("Scanning Movies (library.update.section)"));
    assert!(!report["deferred"][0].as_str().unwrap().contains("guide"), "EPG loads do not count");
    // run --when-idle too, from a SPEC.
    let spec = tmp.path().join("spec.yaml");
    std::fs::write(&spec, "stage: 2\nplex:\n  repair: true\n  optimize: true\n").unwrap();
    let out = expect(
        tp(&dir, &plex.url(), Some(TOKEN), &["run", spec.to_str().unwrap(), "--when-idle"]),
        3,
    );
    assert!(out.stdout.contains("Plex is busy"), "{}", out.stdout);
    assert!(
        plex.lines().iter().all(|l| l.starts_with("GET ")),
        "only questions asked: {:?}",
        plex.lines()
    );
    assert_unchanged(&before, &without_state(snapshot(&dir)));

    // Idle again (theme music while someone browses is not playing): it applies.
    plex.set(|c| {
        c.activities = vec![activity("provider.epg.load", "Loading guide")];
        c.theme_sessions = 2;
    });
    expect(tp(&dir, &plex.url(), Some(TOKEN), &["apply", f, "--yes", "--when-idle"]), 0);
    assert!(plex.lines().iter().any(|l| l.starts_with("PUT ")));
}

#[test]
fn refused_tokens_timeouts_and_absent_servers_are_one_clear_line_and_nothing_half_done() {
    let (tmp, dir, _) = fixture(&[]);
    break_images(&dir);
    let (file, cs) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "2", "--repair"]);
    let f = file.to_str().unwrap();
    let before = without_state(snapshot(&dir));

    // 401 with --when-idle: an error before anything changes.
    let plex = PlexStandIn::start("the-right-token");
    let out = expect(tp(&dir, &plex.url(), Some(TOKEN), &["apply", f, "--yes", "--when-idle"]), 1);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.starts_with(&format!(
        "error: --when-idle cannot tell whether Plex is idle: Plex at {} refused the token (HTTP 401); check TIDYPLEX_PLEX_TOKEN",
        plex.url()
    )), "{}", out.stderr);
    assert!(out.stderr.contains("nothing was changed"));
    assert_unchanged(&before, &without_state(snapshot(&dir)));

    // Timeout with --when-idle: deferred, nothing changed.
    let slow = PlexStandIn::start(TOKEN);
    slow.set(|c| c.slow = Some(("/status".into(), Duration::from_secs(5))));
    let started = std::time::Instant::now();
    let out = expect(
        tp(
            &dir,
            &slow.url(),
            Some(TOKEN),
            &["--plex-timeout", "1", "apply", f, "--yes", "--when-idle"],
        ),
        3,
    );
    assert!(started.elapsed() < Duration::from_secs(4), "the timeout holds");
    assert!(
        out.stdout.contains(&format!(
            "Plex at {} did not answer within 1 s; nothing was changed",
            slow.url()
        )),
        "{}",
        out.stdout
    );
    assert_unchanged(&before, &without_state(snapshot(&dir)));

    // Connection refused: Plex is not running, so it is idle; the writes and deletions are
    // made whole, the calls deferred with a clear reason.
    let url = refused_url();
    let out =
        expect(tp(&dir, &url, Some(TOKEN), &["apply", f, "--yes", "--when-idle", "--json"]), 3);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["plex"], format!("not running at {url}: nothing to wait for"));
    assert_eq!(report["applied"], cs.changes.len() as u64 - cs.summary.plex_calls);
    let deferred = report["deferred"].as_array().unwrap();
    assert_eq!(deferred.len() as u64, cs.summary.plex_calls);
    assert!(
        deferred.iter().all(|d| d.as_str().unwrap().contains(&format!(
        "cannot reach Plex at {url} (connection refused; is Plex running? is --plex-url right?)"
    ))),
        "{deferred:#?}"
    );
    for s in cs.changes.iter().filter_map(|c| c.set_url.as_deref()) {
        assert_eq!(column(&dir, s.id, &s.column).as_deref(), Some(s.to.as_str()), "all written");
    }

    // The calls alone now (the rest is in place). 401: they fail (exit 1), and after the
    // refusal no more are sent than were already in flight.
    let out = expect(tp(&dir, &plex.url(), Some(TOKEN), &["apply", f, "--yes"]), 1);
    assert!(out.stdout.contains("Failed (10):"), "{}", out.stdout);
    assert!(out.stdout.contains("refused the token (HTTP 401)"));
    assert!(out.stdout.contains("Some changes failed"));
    let sent = puts(&plex).len();
    assert!((1..=4).contains(&sent), "{sent} calls after a 401");
    // A slow Plex: the calls time out and are deferred.
    slow.set(|c| c.slow = Some(("/library/metadata/".into(), Duration::from_secs(5))));
    let out = expect(
        tp(&dir, &slow.url(), Some(TOKEN), &["--plex-timeout", "1", "apply", f, "--yes"]),
        3,
    );
    assert!(out.stdout.contains("did not answer within 1 s"), "{}", out.stdout);
    // A failing Plex (500): deferred too, it may recover.
    let failing = PlexStandIn::start(TOKEN);
    failing.set(|c| c.fail = Some(("/library/metadata/".into(), 500)));
    let out = expect(tp(&dir, &failing.url(), Some(TOKEN), &["apply", f, "--yes"]), 3);
    assert!(
        out.stdout.contains(&format!(
            "Plex at {} answered HTTP 500 to PUT /library/metadata/",
            failing.url()
        )),
        "{}",
        out.stdout
    );

    // The maintenance commands: one line each.
    for (url, needle) in [
        (refused_url(), "connection refused".to_string()),
        (plex.url(), "refused the token (HTTP 401)".to_string()),
    ] {
        let out = expect(tp(&dir, &url, Some(TOKEN), &["plex", "clean-bundles"]), 1);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(out.stderr.contains(&needle), "{}", out.stderr);
    }
    let out = expect(tp(&dir, "ftp://h", Some(TOKEN), &["plex", "optimize"]), 1);
    assert!(out.stderr.contains("is not an http(s) URL"), "{}", out.stderr);
    let out = expect(
        tp(&dir, &format!("{}/?X-Plex-Token={TOKEN}", plex.url()), None, &["plex", "optimize"]),
        1,
    );
    assert!(out.stderr.contains("without a query"), "{}", out.stderr);
}

#[test]
fn maintenance_runs_in_plex_order_and_waits_for_it() {
    let (tmp, dir, _) = fixture(&[]);
    let plex = PlexStandIn::start(TOKEN);
    // Plex reports a running activity for the first two polls after emptying the trash.
    plex.set(|c| {
        c.activities = vec![activity("library.update.section", "Emptying trash")];
        c.activities_left = Some(2);
        c.sections = vec![1, 2];
    });
    let out = expect(
        tp(&dir, &plex.url(), Some(TOKEN), &["plex", "optimize", "clean-bundles", "empty-trash"]),
        0,
    );
    assert_eq!(
        plex.lines(),
        [
            "GET /library/sections",
            "PUT /library/sections/1/emptyTrash",
            "GET /activities",
            "GET /activities",
            "GET /activities",
            "PUT /library/sections/2/emptyTrash",
            "GET /activities",
            "PUT /library/clean/bundles?async=1",
            "GET /activities",
            "PUT /library/optimize?async=1",
            "GET /activities",
        ]
    );
    assert!(out.stdout.contains("Plex empty-trash (sections 1, 2): done"), "{}", out.stdout);
    assert!(out.stdout.contains("Plex optimize: done"));

    plex.clear();
    expect(tp(&dir, &plex.url(), Some(TOKEN), &["plex", "empty-trash", "--section", "2"]), 0);
    assert_eq!(plex.lines(), ["PUT /library/sections/2/emptyTrash", "GET /activities"]);
    let out =
        expect(tp(&dir, &plex.url(), Some(TOKEN), &["plex", "optimize", "--section", "2"]), 1);
    assert!(out.stderr.contains("--section applies to empty-trash"));

    // A Plex that stays busy past --wait: a clear error, no endless wait.
    plex.set(|c| c.activities_left = None);
    let out = expect(tp(&dir, &plex.url(), Some(TOKEN), &["plex", "optimize", "--wait", "1"]), 1);
    assert!(
        out.stderr.contains("still busy after 1 s (Emptying trash (library.update.section))"),
        "{}",
        out.stderr
    );

    // run: plan + apply with repair calls made once, then the SPEC's maintenance in order.
    plex.set(|c| c.activities = vec![]);
    plex.clear();
    let expected = break_images(&dir);
    let spec = tmp.path().join("spec.yaml");
    std::fs::write(
        &spec,
        "stage: 2\nsections:\n  - section: 1\n  - section: 3\nplex:\n  optimize: true\n  repair: true\n  clean_bundles: true\n  empty_trash: true\n",
    )
    .unwrap();
    let out = expect(tp(&dir, &plex.url(), Some(TOKEN), &["run", spec.to_str().unwrap()]), 0);
    assert!(out.stdout.contains("Round 2: no changes. The library is clean."), "{}", out.stdout);
    let lines = plex.lines();
    let puts: Vec<&String> = lines.iter().filter(|l| l.starts_with("PUT ")).collect();
    // Only items of the SPEC's sections.
    let wanted: Vec<&String> = expected
        .iter()
        .filter(|l| {
            [1, 3].contains(&section_of(&dir, l.split('/').nth(3).unwrap().parse().unwrap()))
        })
        .collect();
    assert!(wanted.len() >= 3 && wanted.len() < expected.len(), "{wanted:?}");
    let n = wanted.len();
    let mut first: Vec<&String> = puts[..n].to_vec();
    first.sort();
    assert_eq!(first, wanted, "each call once");
    assert_eq!(
        puts[n..],
        [
            "PUT /library/sections/1/emptyTrash",
            "PUT /library/sections/3/emptyTrash",
            "PUT /library/clean/bundles?async=1",
            "PUT /library/optimize?async=1",
        ]
    );
}

#[test]
fn maintenance_waits_for_its_own_job_not_for_plex_s_other_work() {
    let (_tmp, dir, _) = fixture(&[]);
    let plex = PlexStandIn::start(TOKEN);
    // Plex generates video previews for hours; our jobs announce themselves and run 2 polls.
    plex.set(|c| {
        c.activities = vec![activity("media.generate.bif", "Generating video preview thumbnails")];
        c.job_polls = 2;
    });
    let out = expect(
        tp(&dir, &plex.url(), Some(TOKEN), &["plex", "clean-bundles", "optimize", "--wait", "30"]),
        0,
    );
    assert!(out.stdout.contains("Plex optimize: done"), "{}", out.stdout);
    assert_eq!(
        plex.lines(),
        [
            "PUT /library/clean/bundles?async=1",
            "GET /activities",
            "GET /activities",
            "GET /activities",
            "PUT /library/optimize?async=1",
            "GET /activities",
            "GET /activities",
            "GET /activities",
        ],
        "each job waited for until it is gone, the preview generation ignored"
    );
    // Without the job id, the old rule: any library or media activity holds it up.
    plex.set(|c| c.job_polls = 0);
    plex.clear();
    let out = expect(tp(&dir, &plex.url(), Some(TOKEN), &["plex", "optimize", "--wait", "1"]), 1);
    assert!(out.stderr.contains("still busy after 1 s"), "{}", out.stderr);
}

#[test]
fn the_token_is_never_written_anywhere() {
    let (tmp, dir, _) = fixture(&[]);
    break_images(&dir);
    let prefs = prefs_token(&dir).unwrap();
    let plex = PlexStandIn::start(&prefs);
    let url = plex.url();
    let (file, _) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "3", "--repair"]);
    let json_plan = tmp.path().join("plan.json");
    // Every command, at the most verbose log level, with both token sources.
    for token in [None, Some(TOKEN)] {
        for args in [
            &[
                "-vvv",
                "plan",
                "--repair",
                "--stage",
                "3",
                "--json",
                "-o",
                json_plan.to_str().unwrap(),
            ][..],
            &["-vvv", "status"],
            &["-vvv", "apply", file.to_str().unwrap(), "--yes", "--when-idle"],
            &["-vvv", "apply", file.to_str().unwrap(), "--yes", "--json"],
            &["-vvv", "plex", "empty-trash", "clean-bundles", "optimize"],
        ] {
            tp(&dir, &url, token, args); // tp checks stdout and stderr
        }
    }
    let spec = tmp.path().join("spec.yaml");
    std::fs::write(&spec, "stage: 3\nplex:\n  repair: true\n  optimize: true\n").unwrap();
    tp(&dir, &url, None, &["-vvv", "run", spec.to_str().unwrap()]);
    tp(&dir, &url, Some(TOKEN), &["-vvv", "run", spec.to_str().unwrap()]);
    assert!(plex.lines().iter().any(|l| l.starts_with("PUT /library/metadata/")));
    // Changesets, the journal, the lock folder, backups' names: nothing holds either token.
    let mut files = vec![file, json_plan];
    for entry in walkdir::WalkDir::new(dir.join("Plug-in Support")) {
        let entry = entry.unwrap();
        let p = entry.path();
        let name = p.to_string_lossy();
        assert!(!name.contains(TOKEN) && !name.contains(&prefs));
        if entry.file_type().is_file() && name.contains("tidyplex") && !name.contains("backups") {
            files.push(p.to_path_buf());
        }
    }
    assert!(files.iter().any(|f| f.extension().is_some_and(|e| e == "jsonl")), "{files:?}");
    for f in files {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        assert!(!text.contains(TOKEN) && !text.contains(&prefs), "{}", f.display());
    }
}

#[test]
fn a_plex_call_is_validated_like_every_change() {
    let (tmp, dir, _) = fixture(&[]);
    break_images(&dir);
    let (file, _) = plan_to(tmp.path(), &dir, "plan.yaml", &["--stage", "1", "--repair"]);
    let yaml = std::fs::read_to_string(&file).unwrap();
    for (from, to, why) in [
        (
            "column: user_thumb_url",
            "column: title",
            "`metadata_items.title` is not an image column",
        ),
        ("action: refresh", "action: delete", "unknown variant `delete`"),
        ("    id: 8\n", "    id: -8\n", "-8 is not an item id"),
        ("      action: refresh\n", "      action: refresh\n      extra: 1\n", "unknown field"),
    ] {
        let bad = tmp.path().join("bad.yaml");
        std::fs::write(&bad, yaml.replacen(from, to, 1)).unwrap();
        let err = fail(&dir, &["show", bad.to_str().unwrap()]);
        assert!(err.contains(why), "{from} -> {to}: {err}");
    }
    let cs = Changeset::parse(&yaml).unwrap();
    let call = cs.changes.iter().find_map(|c| c.plex_call.clone()).unwrap();
    assert_eq!(call.action, PlexAction::Refresh);
}

/// `--strict` refuses the whole changeset when a Plex call's column changed since planning,
/// even to an empty value, and calls nothing.
#[test]
fn strict_refuses_a_changeset_whose_plex_call_drifted() {
    let (tmp, dir, _) = fixture(&[]);
    break_images(&dir);
    let (file, cs) = plan_to(tmp.path(), &dir, "repair.yaml", &["--stage", "1", "--repair"]);
    let call = cs.changes.iter().find_map(|c| c.plex_call.clone()).expect("calls are planned");
    conn(&dir)
        .execute(
            &format!("UPDATE metadata_items SET {} = '' WHERE id = ?1", call.column),
            [call.id],
        )
        .unwrap();
    let plex = PlexStandIn::start(TOKEN);
    let before = without_state(snapshot(&dir));
    let out = expect(
        tp(&dir, &plex.url(), Some(TOKEN), &["apply", file.to_str().unwrap(), "--yes", "--strict"]),
        1,
    );
    assert!(out.stderr.contains("drifted"), "{}", out.stderr);
    assert_unchanged(&before, &without_state(snapshot(&dir)));
    assert!(puts(&plex).is_empty(), "nothing was called");
}
