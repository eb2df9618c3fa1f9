//! Format 2 where people meet it: the file itself, `show --summary` and its filters, `plan` on
//! a terminal, `plan -o -`, and `diff` grouped by item.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;
use tidyplex::changeset::{Changeset, Op};

/// Everything a user runs at once.
const ALL: [&str; 6] = ["--stage", "3", "--bundles", "3", "--cache", "all"];

fn plan_to(tmp: &Path, dir: &Path, name: &str, args: &[&str]) -> (String, Changeset) {
    let file = tmp.join(name);
    let mut all = vec!["plan", "-o", file.to_str().unwrap()];
    all.extend_from_slice(args);
    run(dir, &all, 0);
    let text = std::fs::read_to_string(&file).unwrap();
    let cs = Changeset::parse(&text).unwrap();
    (text, cs)
}

/// Runs tidyplex under a pseudo-terminal (`script`), so it sees a terminal on stdout.
fn on_terminal(dir: &Path, args: &[&str]) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let bin = assert_cmd::cargo::cargo_bin("tidyplex");
    let mut cmd =
        format!("{} --plex-dir {}", quote(bin.to_str().unwrap()), quote(dir.to_str().unwrap()));
    for a in args {
        cmd.push(' ');
        cmd.push_str(&quote(a));
    }
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("NO_COLOR", "1")
        .env("TIDYPLEX_PLEX_URL", "http://127.0.0.1:1")
        .env_remove("TIDYPLEX_PLEX_DIR")
        .output()
        .expect("`script` (util-linux) runs commands on a pseudo-terminal");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stdout).unwrap().replace("\r\n", "\n")
}

#[test]
fn format_2_has_one_line_per_deletion_and_three_per_url_switch() {
    let (tmp, dir, _) = fixture(&[]);
    let (text, cs) = plan_to(tmp.path(), &dir, "all.yaml", &ALL);
    assert!(text.starts_with("format: tidyplex-changeset/2\n"));
    let deletions = cs
        .changes
        .iter()
        .filter(|c| matches!(c.op(), Some(Op::DeleteFile(_) | Op::DeleteDir(_))))
        .count();
    let lines: Vec<&str> = text.lines().collect();
    let deletion_lines = lines
        .iter()
        .filter(|l| {
            let t = l.trim_start();
            t.starts_with("- ") && !t.starts_with("- id: ") && l.len() - t.len() >= 4
        })
        .count();
    assert_eq!(deletion_lines, deletions, "one line per deleted file or folder");
    assert!(cs.summary.urls > 0 && deletions > 100);
    // Per item: its header (4 lines), `set_url:` and `delete:`, its Metadata and Media bundle
    // once each; then 3 lines per URL switch and one per deletion.
    let items = lines.iter().filter(|l| l.starts_with("- id: ")).count();
    let budget = deletions + 3 * cs.summary.urls as usize + 8 * items + 60;
    assert!(lines.len() <= budget, "{} lines > {budget}", lines.len());
    // The same plan in format 1 is more than twice as long.
    assert!(cs.to_format1_yaml().lines().count() > 2 * lines.len());
    // It applies, and the next plan has nothing to do.
    run(&dir, &["apply", tmp.path().join("all.yaml").to_str().unwrap(), "--yes"], 0);
    let again = run(&dir, &["plan", "--stage", "3", "--bundles", "3", "--cache", "all"], 0);
    assert!(again.starts_with("No changes."), "{again}");
}

#[test]
fn the_summary_fits_on_a_screen_and_filters_select_sections_and_items() {
    let (tmp, dir, _) = fixture(&[]);
    let (_, cs) = plan_to(tmp.path(), &dir, "all.yaml", &ALL);
    let file = tmp.path().join("all.yaml");
    let file = file.to_str().unwrap();
    let summary = run(&dir, &["show", file, "--summary"], 0);
    assert!(summary.lines().count() <= 40, "{summary}");
    for part in ["SECTION", "FREES MOST", "OUTSIDE ANY ITEM", "PhotoTranscoder cache", "Plan: "] {
        assert!(summary.contains(part), "{part}: {summary}");
    }
    assert!(summary.contains(&format!("{} URLs to change", cs.summary.urls)), "{summary}");

    // --section: only that section's items, and its own totals.
    let doc: Value =
        serde_json::from_str(&run(&dir, &["show", file, "--section", "1", "--json"], 0)).unwrap();
    let items = doc["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(items.iter().all(|i| i["section"] == 1), "{doc}");
    assert!(doc.get("areas").is_none(), "changes of no item are not a section's");
    let expected: u64 = cs
        .changes
        .iter()
        .filter(|c| c.item.and_then(|i| cs.items.get(&i)).and_then(|i| i.section) == Some(1))
        .filter(|c| c.set_url.is_some())
        .count() as u64;
    assert_eq!(doc["summary"]["urls"], expected);

    // --item: that item alone.
    let id = items[0]["id"].as_i64().unwrap().to_string();
    let shown = run(&dir, &["show", file, "--item", &id], 0);
    let headers: Vec<&str> = shown.lines().filter(|l| l.starts_with("# ")).collect();
    assert_eq!(headers.len(), 1, "{shown}");
    assert!(headers[0].contains(&format!(" {id} ")), "{shown}");
}

#[test]
fn plan_on_a_terminal_shows_a_short_plan_whole_and_a_long_one_as_its_summary() {
    let (_tmp, dir, _) = fixture(&[]);
    let short = on_terminal(&dir, &["plan", "--stage", "1", "--section", "1"]);
    assert!(short.contains("\n# movie "), "{short}");
    assert!(short.contains("SECTION") && short.contains("Plan: "), "{short}");
    assert!(!short.contains("not shown"), "{short}");

    let (_big_tmp, big, _) = fixture(&["--scale", "120"]);
    let mut args = vec!["plan"];
    args.extend_from_slice(&ALL);
    let long = on_terminal(&big, &args);
    assert!(long.lines().count() <= 60, "{long}");
    assert!(long.contains("lines of changes not shown"), "{long}");
    assert!(long.contains("tidyplex plan -o plan.yaml"), "{long}");
    args.push("--full");
    let full = on_terminal(&big, &args);
    assert!(full.lines().count() > 1000, "--full shows every change");
    assert!(full.contains("\n# movie ") && full.contains("FREES MOST"));
    // Piped, the whole diff as before (scriptable).
    args.pop();
    let piped = run(&big, &args, 0);
    assert!(piped.lines().count() > 1000 && !piped.contains("not shown"));
}

#[test]
fn dash_output_writes_only_the_changeset_to_stdout() {
    let (tmp, dir, _) = fixture(&[]);
    let (text, _) = plan_to(tmp.path(), &dir, "p.yaml", &["--stage", "2"]);
    let stdout = run(&dir, &["plan", "--stage", "2", "-o", "-"], 0);
    let strip = |s: &str| -> String {
        s.lines().filter(|l| !l.starts_with("created_at:")).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(strip(&stdout), strip(&text));
    let json = run(&dir, &["plan", "--stage", "2", "-o", "-", "--json"], 0);
    let doc: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["format"], "tidyplex-changeset/2");
}

#[test]
fn diff_groups_what_changed_by_item() {
    let (tmp, dir, _) = fixture(&[]);
    plan_to(tmp.path(), &dir, "one.yaml", &["--stage", "1"]);
    plan_to(tmp.path(), &dir, "two.yaml", &["--stage", "2"]);
    let (one, two) = (tmp.path().join("one.yaml"), tmp.path().join("two.yaml"));
    let diff = run(&dir, &["diff", one.to_str().unwrap(), two.to_str().unwrap()], 0);
    let lines: Vec<&str> = diff.lines().collect();
    // Every change line sits under the header of its item.
    let mut under_header = false;
    let mut changes = 0;
    for l in &lines[2..] {
        if l.starts_with("# ") {
            under_header = true;
        } else if l.starts_with("+ ") || l.starts_with("- ") {
            assert!(under_header, "{l} has no item header:\n{diff}");
            changes += 1;
        } else if l.is_empty() {
            under_header = false;
        }
    }
    assert!(changes > 10, "{diff}");
    assert!(lines.iter().any(|l| l.starts_with("+ ~ ")), "stage 2 adds URL switches");
    // Identical plans: nothing added or gone.
    let same = run(&dir, &["diff", two.to_str().unwrap(), two.to_str().unwrap()], 0);
    assert!(same.contains("0 changes added, 0 changes gone"), "{same}");
}
