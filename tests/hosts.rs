//! Stage 4 end to end: the real binary on fixture folders, uploading to stand-in hosts on
//! 127.0.0.1 (a Discord webhook with signed, expiring links and rate limits; a PUT endpoint;
//! a folder published by `tidyplex serve`), with the faults of issue 6.

mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::stand_in::{Discord, PutHost, Script};
use common::*;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use tidyplex::changeset::{Changeset, Upload};

const TOKEN: &str = "s3cr3t-W3bhook-T0ken";

/// One finished command.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `tidyplex --plex-dir DIR ARGS…` with `env`; everything it printed is kept in `seen`.
fn tp(dir: &Path, args: &[&str], env: &[(&str, &str)], seen: &mut String) -> Ran {
    let mut cmd = tidyplex();
    cmd.arg("--plex-dir").arg(dir).args(args).env_remove("TIDYPLEX_DISCORD_WEBHOOK");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let ran = Ran {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
    seen.push_str(&ran.stdout);
    seen.push_str(&ran.stderr);
    ran
}

/// Asserts the exit code; returns stdout.
fn ok(ran: Ran, code: i32) -> String {
    assert_eq!(ran.code, Some(code), "stdout: {}\nstderr: {}", ran.stdout, ran.stderr);
    ran.stdout
}

/// A fixture whose stages 1–3 are already applied: what is left is stage 4 alone.
fn cleaned_to_stage_3() -> (tempfile::TempDir, PathBuf) {
    let (tmp, dir, _) = fixture(&[]);
    let file = tmp.path().join("p3.yaml");
    run(&dir, &["plan", "--stage", "3", "-o", file.to_str().unwrap()], 0);
    run(&dir, &["apply", file.to_str().unwrap(), "--yes"], 0);
    (tmp, dir)
}

fn write_spec(tmp: &Path, host: &str) -> PathBuf {
    let spec = tmp.join("spec.yaml");
    std::fs::write(&spec, format!("stage: 4\nimage_host:\n{host}")).unwrap();
    spec
}

/// `plan ARGS… -o tmp/name`; the changeset.
fn plan(
    tmp: &Path,
    dir: &Path,
    name: &str,
    args: &[&str],
    seen: &mut String,
) -> (PathBuf, Changeset) {
    let file = tmp.join(name);
    let mut all = vec!["plan", "-o", file.to_str().unwrap()];
    all.extend_from_slice(args);
    ok(tp(dir, &all, &[], seen), 0);
    let text = std::fs::read_to_string(&file).unwrap();
    seen.push_str(&text);
    (file.clone(), Changeset::parse(&text).unwrap())
}

/// `apply FILE --yes --json EXTRA…` with `env`, asserting the exit code; the report.
fn apply(
    dir: &Path,
    file: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
    code: i32,
    seen: &mut String,
) -> Value {
    let mut args = vec!["apply", file.to_str().unwrap(), "--yes", "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(tp(dir, &args, env, seen), code)).unwrap()
}

fn uploads(cs: &Changeset) -> Vec<Upload> {
    cs.changes.iter().filter_map(|c| c.upload.as_deref().cloned()).collect()
}

fn column(dir: &Path, id: i64, col: &str) -> Option<String> {
    Connection::open_with_flags(db_path(dir), OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap()
        .query_row(&format!("SELECT {col} FROM metadata_items WHERE id = ?1"), [id], |r| r.get(0))
        .unwrap()
}

fn get(url: &str) -> (u16, Vec<u8>) {
    let r = reqwest::blocking::get(url).unwrap();
    (r.status().as_u16(), r.bytes().unwrap().to_vec())
}

/// Every upload's column serves the bytes its file had, and the file is gone.
fn assert_hosted(dir: &Path, ups: &[Upload], originals: &[Vec<u8>], prefix: &str) {
    for (u, bytes) in ups.iter().zip(originals) {
        let url = column(dir, u.id, &u.column).unwrap();
        assert!(url.starts_with(prefix), "{url}");
        let (status, body) = get(&url);
        assert_eq!(status, 200, "{url}");
        assert!(&body == bytes, "{url} serves the uploaded bytes of {}", u.path);
        assert!(!dir.join(&u.path).exists(), "{} is deleted", u.path);
    }
}

fn read_all(dir: &Path, ups: &[Upload]) -> Vec<Vec<u8>> {
    ups.iter().map(|u| std::fs::read(dir.join(&u.path)).unwrap()).collect()
}

/// Every file tidyplex keeps in its state folder, as text.
fn state_text(dir: &Path) -> String {
    let mut out = String::new();
    for e in walkdir::WalkDir::new(dir.join("Plug-in Support/tidyplex")) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            out.push_str(&String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()));
        }
    }
    out
}

fn distinct(ups: &[Upload]) -> usize {
    ups.iter().map(|u| &u.blake3).collect::<std::collections::BTreeSet<_>>().len()
}

#[test]
fn discord_plan_apply_converges_on_signed_links_and_the_webhook_never_shows() {
    let (tmp, dir, _) = fixture(&[]);
    let discord = Discord::start(TOKEN);
    let hook = discord.webhook();
    let env = [("TIDYPLEX_DISCORD_WEBHOOK", hook.as_str())];
    let mut seen = String::new();
    // The flag alone: Discord's settings are its defaults.
    let (file, cs) =
        plan(tmp.path(), &dir, "p4.yaml", &["--stage", "4", "--image-host", "discord"], &mut seen);
    let ups = uploads(&cs);
    assert!(ups.len() >= 8 && ups.iter().all(|u| u.host == "discord"), "{}", ups.len());
    assert!(cs.summary.urls > 0, "stages 1–3 come along");
    let originals = read_all(&dir, &ups);
    let report = apply(&dir, &file, &[], &env, 0, &mut seen);
    assert_eq!(report["applied"], cs.changes.len() as u64, "{report}");
    assert_eq!(report["uploaded"], distinct(&ups) as u64);
    assert_eq!(discord.posts(), distinct(&ups));
    assert_hosted(&dir, &ups, &originals, &format!("{}/attachments/", discord.server.base()));
    let url = column(&dir, ups[0].id, &ups[0].column).unwrap();
    assert!(url.contains("?ex=") && url.contains("&is=") && url.contains("&hm="), "{url}");
    // The ledger knows each copy's webhook, message and attachment.
    let ledger = state_text(&dir);
    for u in &ups {
        assert!(ledger.contains(&u.blake3), "{}", u.blake3);
    }
    assert!(ledger.contains("\"webhook_id\":\"4242\"") && ledger.contains("\"message_id\""));
    // Converged, until the links near expiry.
    let again =
        ok(tp(&dir, &["plan", "--stage", "4", "--image-host", "discord"], &[], &mut seen), 0);
    assert!(again.starts_with("No changes."), "{again}");
    // The webhook (its token) is nowhere: changesets, output, journal, ledger, DB.
    seen.push_str(&state_text(&dir));
    seen.push_str(&String::from_utf8_lossy(&std::fs::read(db_path(&dir)).unwrap()));
    assert!(!seen.contains(TOKEN), "the webhook token leaked");
    assert!(!seen.contains("webhooks/4242"), "the webhook URL leaked");
}

#[test]
fn uploads_go_a_few_at_a_time_within_the_rate_limit() {
    let (tmp, dir) = cleaned_to_stage_3();
    let discord = Discord::start(TOKEN);
    {
        let mut st = discord.state.lock().unwrap();
        st.limit = 4;
        st.window = Duration::from_millis(800);
        st.delay = Duration::from_millis(150);
    }
    let hook = discord.webhook();
    let env = [("TIDYPLEX_DISCORD_WEBHOOK", hook.as_str())];
    let mut seen = String::new();
    let spec = write_spec(tmp.path(), "  kind: discord\n");
    let (file, cs) = plan(tmp.path(), &dir, "p4.yaml", &[spec.to_str().unwrap()], &mut seen);
    assert_eq!(cs.changes.len(), uploads(&cs).len(), "only uploads are left");
    let report = apply(&dir, &file, &[], &env, 0, &mut seen);
    assert_eq!(report["uploaded"], distinct(&uploads(&cs)) as u64, "{report}");
    let st = discord.state.lock().unwrap();
    assert_eq!(st.violations, 0, "no request broke the rate limit");
    let most = discord.server.max_in_flight.load(std::sync::atomic::Ordering::SeqCst);
    assert!((2..=3).contains(&most), "a few at a time, not {most}");
}

#[test]
fn a_429_is_waited_out_for_its_retry_after() {
    let (tmp, dir) = cleaned_to_stage_3();
    let discord = Discord::start(TOKEN);
    discord.state.lock().unwrap().script.push_back(Script::RateLimited(0.6));
    let hook = discord.webhook();
    let env = [("TIDYPLEX_DISCORD_WEBHOOK", hook.as_str())];
    let mut seen = String::new();
    let (file, cs) =
        plan(tmp.path(), &dir, "p4.yaml", &["--stage", "4", "--image-host", "discord"], &mut seen);
    let report = apply(&dir, &file, &[], &env, 0, &mut seen);
    assert_eq!(report["applied"], cs.changes.len() as u64, "{report}");
    let posts: Vec<_> =
        discord.server.requests().into_iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), distinct(&uploads(&cs)) + 1);
    assert!(posts[1].at - posts[0].at >= Duration::from_millis(550), "retry_after is honoured");
}

#[test]
fn a_file_too_large_for_the_host_is_deferred_alone() {
    let (tmp, dir) = cleaned_to_stage_3();
    let discord = Discord::start(TOKEN);
    discord.state.lock().unwrap().script.push_back(Script::Status(413));
    let hook = discord.webhook();
    let env = [("TIDYPLEX_DISCORD_WEBHOOK", hook.as_str())];
    let mut seen = String::new();
    let (file, cs) =
        plan(tmp.path(), &dir, "p4.yaml", &["--stage", "4", "--image-host", "discord"], &mut seen);
    let ups = uploads(&cs);
    let report = apply(&dir, &file, &[], &env, 3, &mut seen);
    let deferred = report["deferred"].as_array().unwrap();
    assert_eq!(deferred.len(), 1, "{report}");
    assert!(deferred[0].as_str().unwrap().contains("too large"), "{report}");
    assert_eq!(report["applied"], ups.len() as u64 - 1);
    let stayed: Vec<_> = ups
        .iter()
        .filter(|u| column(&dir, u.id, &u.column).is_some_and(|v| v.starts_with("media://")))
        .collect();
    assert_eq!(stayed.len(), 1);
    assert!(dir.join(&stayed[0].path).is_file(), "its file stays");
    assert_eq!(discord.posts(), distinct(&ups), "413 is not retried");
    // Larger than Discord's 10 MiB: not even planned.
    std::fs::write(dir.join(&stayed[0].path), vec![7u8; 11 << 20]).unwrap();
    let out = tp(&dir, &["plan", "--stage", "4", "--image-host", "discord"], &[], &mut seen);
    assert!(out.stderr.contains("larger than Discord's 10 MiB limit"), "{}", out.stderr);
    assert!(!out.stdout.contains(&stayed[0].path), "{}", out.stdout);
}

/// 401 or 404 from the webhook: one request, never retried, nothing changed, exit 3.
fn refused(status: u16) {
    let (tmp, dir) = cleaned_to_stage_3();
    let discord = Discord::start(TOKEN);
    for _ in 0..50 {
        discord.state.lock().unwrap().script.push_back(Script::Status(status));
    }
    let hook = discord.webhook();
    let env = [("TIDYPLEX_DISCORD_WEBHOOK", hook.as_str())];
    let mut seen = String::new();
    let (file, cs) =
        plan(tmp.path(), &dir, "p4.yaml", &["--stage", "4", "--image-host", "discord"], &mut seen);
    let before = without_state(snapshot(&dir));
    let report = apply(&dir, &file, &[], &env, 3, &mut seen);
    assert_eq!(discord.server.requests().len(), 1, "the host is stopped at once, never retried");
    assert_eq!(report["applied"], 0);
    assert_eq!(report["deferred"].as_array().unwrap().len(), cs.changes.len(), "{report}");
    assert!(report["deferred"][0].as_str().unwrap().contains(&status.to_string()), "{report}");
    assert!(report["backup"].is_null(), "no write, no backup");
    assert_unchanged(&before, &without_state(snapshot(&dir)));
    let human = ok(tp(&dir, &["apply", file.to_str().unwrap(), "--yes"], &env, &mut seen), 3);
    assert!(human.contains("Deferred"), "{human}");
    assert!(!seen.contains(TOKEN));
}

#[test]
fn a_401_stops_the_host_and_changes_nothing() {
    refused(401);
}

#[test]
fn a_404_stops_the_host_and_changes_nothing() {
    refused(404);
}

#[test]
fn server_errors_and_dropped_connections_are_retried() {
    let (tmp, dir) = cleaned_to_stage_3();
    let discord = Discord::start(TOKEN);
    {
        let mut st = discord.state.lock().unwrap();
        st.script.push_back(Script::Status(500));
        st.script.push_back(Script::Drop);
        st.script.push_back(Script::Status(502));
    }
    let hook = discord.webhook();
    let env = [("TIDYPLEX_DISCORD_WEBHOOK", hook.as_str())];
    let mut seen = String::new();
    let (file, cs) =
        plan(tmp.path(), &dir, "p4.yaml", &["--stage", "4", "--image-host", "discord"], &mut seen);
    let ups = uploads(&cs);
    let originals = read_all(&dir, &ups);
    let report = apply(&dir, &file, &[], &env, 0, &mut seen);
    assert_eq!(report["applied"], ups.len() as u64, "{report}");
    assert_eq!(discord.posts(), distinct(&ups) + 3);
    assert_hosted(&dir, &ups, &originals, "http://127.0.0.1:");
    assert!(!seen.contains(TOKEN));
}

#[test]
fn an_answer_without_attachments_defers_that_upload_until_the_next_run() {
    let (tmp, dir) = cleaned_to_stage_3();
    let discord = Discord::start(TOKEN);
    discord.state.lock().unwrap().script.push_back(Script::NoAttachments);
    let hook = discord.webhook();
    let env = [("TIDYPLEX_DISCORD_WEBHOOK", hook.as_str())];
    let mut seen = String::new();
    let args = ["--stage", "4", "--image-host", "discord"];
    let (file, cs) = plan(tmp.path(), &dir, "p4.yaml", &args, &mut seen);
    let report = apply(&dir, &file, &[], &env, 3, &mut seen);
    assert_eq!(report["deferred"].as_array().unwrap().len(), 1, "{report}");
    assert!(report["deferred"][0].as_str().unwrap().contains("without the attachment"));
    assert_eq!(report["applied"], cs.changes.len() as u64 - 1);
    let (file, next) = plan(tmp.path(), &dir, "next.yaml", &args, &mut seen);
    assert_eq!(next.changes.len(), 1);
    apply(&dir, &file, &[], &env, 0, &mut seen);
    let last =
        ok(tp(&dir, &["plan", "--stage", "4", "--image-host", "discord"], &[], &mut seen), 0);
    assert!(last.starts_with("No changes."), "{last}");
}

#[test]
fn the_ledger_prevents_a_second_upload_after_a_crash_before_the_db_write() {
    let (tmp, dir) = cleaned_to_stage_3();
    let discord = Discord::start(TOKEN);
    let hook = discord.webhook();
    let env = [("TIDYPLEX_DISCORD_WEBHOOK", hook.as_str())];
    let mut seen = String::new();
    let (file, cs) =
        plan(tmp.path(), &dir, "p4.yaml", &["--stage", "4", "--image-host", "discord"], &mut seen);
    let ups = uploads(&cs);
    let originals = read_all(&dir, &ups);
    let crash = [env[0], ("TIDYPLEX_FAULT", "after-upload")];
    let ran = tp(&dir, &["apply", file.to_str().unwrap(), "--yes"], &crash, &mut seen);
    assert_ne!(ran.code, Some(0), "the process was killed");
    assert_eq!(discord.posts(), distinct(&ups));
    for u in &ups {
        assert_eq!(column(&dir, u.id, &u.column), u.from, "no DB write before the crash");
        assert!(dir.join(&u.path).is_file());
    }
    let report = apply(&dir, &file, &[], &env, 0, &mut seen);
    assert_eq!(discord.posts(), distinct(&ups), "nothing is uploaded twice");
    assert_eq!(report["reused"], distinct(&ups) as u64, "{report}");
    assert_eq!(report["uploaded"], 0);
    assert!(report["previous_interrupted"].is_string());
    assert_hosted(&dir, &ups, &originals, "http://127.0.0.1:");
    // Applying the same changeset again: all done already.
    let report = apply(&dir, &file, &[], &env, 0, &mut seen);
    assert_eq!(
        (report["applied"].as_u64(), report["already"].as_u64()),
        (Some(0), Some(ups.len() as u64))
    );
}

#[test]
fn expiring_discord_links_are_planned_for_refresh_and_refreshed() {
    let (tmp, dir) = cleaned_to_stage_3();
    let discord = Discord::start(TOKEN);
    discord.state.lock().unwrap().ttl = -3600; // issued already expired
    let hook = discord.webhook();
    let env = [("TIDYPLEX_DISCORD_WEBHOOK", hook.as_str())];
    let mut seen = String::new();
    let spec = write_spec(tmp.path(), "  kind: discord\n  refresh_margin: 6h\n");
    let spec = spec.to_str().unwrap();
    let (file, cs) = plan(tmp.path(), &dir, "p4.yaml", &[spec], &mut seen);
    let ups = uploads(&cs);
    let originals = read_all(&dir, &ups);
    apply(&dir, &file, &["--spec", spec], &env, 0, &mut seen);
    let dead = column(&dir, ups[0].id, &ups[0].column).unwrap();
    assert_eq!(get(&dead).0, 404, "an expired link no longer works");
    // Plan says the schedule is too sparse: images are blank already.
    let warned = tp(&dir, &["plan", spec], &env, &mut seen);
    assert!(
        warned.stderr.contains("have expired already") && warned.stderr.contains("every 4 h"),
        "{}",
        warned.stderr
    );
    // The next plan refreshes every link.
    discord.state.lock().unwrap().ttl = 24 * 3600;
    let (file, cs) = plan(tmp.path(), &dir, "refresh.yaml", &[spec], &mut seen);
    assert_eq!(cs.summary.link_refreshes, ups.len() as u64);
    assert_eq!(cs.changes.len(), ups.len());
    let r = cs.changes[0].refresh_link.as_deref().unwrap();
    assert_eq!((r.host.as_str(), r.table.as_str()), ("discord", "metadata_items"));
    assert!(r.from.contains("?ex=") && r.message_id.parse::<u64>().is_ok());
    let yaml = std::fs::read_to_string(&file).unwrap();
    assert!(
        yaml.contains("- refresh_link:\n") && yaml.contains("table: metadata_items\n"),
        "{yaml}"
    );
    assert!(yaml.contains("link_refreshes:"), "{yaml}");
    let shown = ok(tp(&dir, &["show", file.to_str().unwrap()], &[], &mut seen), 0);
    assert!(shown.contains("refresh the discord link (expired"), "{shown}");
    assert!(shown.contains("hosted links to refresh."), "{shown}");
    let posts = discord.posts();
    let report = apply(&dir, &file, &[], &env, 0, &mut seen);
    assert_eq!(report["links_refreshed"], distinct(&ups) as u64, "{report}");
    assert_eq!(report["applied"], ups.len() as u64);
    assert_eq!(discord.posts(), posts, "a refresh uploads nothing");
    assert!(discord.server.count("GET") >= distinct(&ups));
    assert_hosted(&dir, &ups, &originals, "http://127.0.0.1:");
    assert_ne!(column(&dir, ups[0].id, &ups[0].column).unwrap(), dead);
    let last = ok(tp(&dir, &["plan", spec], &[], &mut seen), 0);
    assert!(last.starts_with("No changes."), "{last}");
    // The margin is the SPEC's: links for 24 h are "expiring" within 48 h.
    let wide = write_spec(tmp.path(), "  kind: discord\n  refresh_margin: 48h\n");
    let (_, cs) = plan(tmp.path(), &dir, "wide.yaml", &[wide.to_str().unwrap()], &mut seen);
    assert_eq!(cs.summary.link_refreshes, ups.len() as u64);
    let warned = tp(&dir, &["plan", wide.to_str().unwrap()], &env, &mut seen);
    assert!(warned.stderr.contains("refresh_margin is 48 h"), "{}", warned.stderr);
    assert!(!seen.contains(TOKEN));
}

/// A fixture cleaned to stage 3 whose frame grabs went to a stand-in Discord whose links live
/// 3 h (inside the 6 h margin) and are re-signed every `step` seconds (0: on every fetch).
struct OnDiscord {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    discord: Discord,
    hook: String,
    spec: PathBuf,
    ups: Vec<Upload>,
}

fn on_discord(step: i64, seen: &mut String) -> OnDiscord {
    let (tmp, dir) = cleaned_to_stage_3();
    let discord = Discord::start(TOKEN);
    {
        let mut st = discord.state.lock().unwrap();
        st.ttl = 3 * 3600;
        st.step = step;
    }
    let hook = discord.webhook();
    let spec = write_spec(tmp.path(), "  kind: discord\n  refresh_margin: 6h\n");
    let s = spec.to_str().unwrap();
    let (file, cs) = plan(tmp.path(), &dir, "p4.yaml", &[s], seen);
    let env = [("TIDYPLEX_DISCORD_WEBHOOK", hook.as_str())];
    apply(&dir, &file, &["--spec", s], &env, 0, seen);
    OnDiscord { tmp, dir, discord, hook, spec, ups: uploads(&cs) }
}

#[test]
fn a_link_discord_has_not_re_signed_yet_is_not_a_refresh_and_run_converges() {
    let mut seen = String::new();
    // Discord re-signs only every 36 h.
    let OnDiscord { tmp, dir, discord, hook, spec, ups } = on_discord(36 * 3600, &mut seen);
    let env = [("TIDYPLEX_DISCORD_WEBHOOK", hook.as_str())];
    let spec = spec.to_str().unwrap();
    let links: Vec<Option<String>> = ups.iter().map(|u| column(&dir, u.id, &u.column)).collect();
    // Planned for refresh, and Discord gives the same links back: nothing written, exit 0.
    let (file, cs) = plan(tmp.path(), &dir, "refresh.yaml", &[spec], &mut seen);
    assert_eq!(cs.summary.link_refreshes, ups.len() as u64);
    let report = apply(&dir, &file, &[], &env, 0, &mut seen);
    assert_eq!(report["links_refreshed"], 0, "{report}");
    assert_eq!(report["links_unchanged"].as_array().unwrap().len(), ups.len(), "{report}");
    let now: Vec<Option<String>> = ups.iter().map(|u| column(&dir, u.id, &u.column)).collect();
    assert_eq!(now, links);
    // `run` asks once per link, then is done: no "Not converged", exit 0.
    let gets = discord.server.count("GET");
    let out = ok(tp(&dir, &["run", spec], &env, &mut seen), 0);
    assert!(out.contains("no changes. The library is clean."), "{out}");
    assert!(!out.contains("Not converged"), "{out}");
    assert_eq!(discord.server.count("GET") - gets, distinct(&ups), "one fetch per link");
    assert!(!seen.contains(TOKEN));
}

#[test]
fn a_message_deleted_on_discord_fails_once_and_plex_is_asked_to_make_the_image_again() {
    let mut seen = String::new();
    let OnDiscord { tmp, dir, discord, hook, spec, ups } = on_discord(0, &mut seen);
    let env = [("TIDYPLEX_DISCORD_WEBHOOK", hook.as_str())];
    let spec = spec.to_str().unwrap();
    // Someone deletes the webhook's messages in the Discord channel.
    discord.state.lock().unwrap().messages.clear();
    let (file, cs) = plan(tmp.path(), &dir, "refresh.yaml", &[spec], &mut seen);
    assert_eq!(cs.summary.link_refreshes, ups.len() as u64);
    let report = apply(&dir, &file, &[], &env, 1, &mut seen);
    let failed = report["failed"].as_array().unwrap();
    assert_eq!(failed.len(), ups.len(), "{report}");
    assert!(failed[0].as_str().unwrap().contains("deleted on Discord"), "{report}");
    assert_eq!(report["deferred"], serde_json::json!([]), "not a deferral every run");
    // Reported once: the next plan does not refresh them, it lists them for Plex.
    let again = tp(&dir, &["plan", spec], &env, &mut seen);
    assert_eq!(again.code, Some(0));
    assert!(again.stdout.starts_with("No changes."), "{}", again.stdout);
    assert!(again.stderr.contains("hosted copy is lost"), "{}", again.stderr);
    let status = ok(tp(&dir, &["status", "--json"], &[], &mut seen), 0);
    assert!(status.contains("lost_hosted_copy"), "{status}");
    // --repair asks Plex to analyze each of those items.
    let spec_repair =
        write_spec(tmp.path(), "  kind: discord\n  refresh_margin: 6h\nplex:\n  repair: true\n");
    let (_, cs) =
        plan(tmp.path(), &dir, "repair.yaml", &[spec_repair.to_str().unwrap()], &mut seen);
    let calls: Vec<_> = cs.changes.iter().filter_map(|c| c.plex_call.as_deref()).collect();
    assert!(!calls.is_empty());
    assert!(calls.iter().all(|c| c.action == tidyplex::changeset::PlexAction::Analyze));
    let items: std::collections::BTreeSet<i64> = ups.iter().map(|u| u.id).collect();
    assert!(calls.iter().all(|c| items.contains(&c.id)), "{calls:?}");
    assert!(!seen.contains(TOKEN));
}

#[test]
fn webhook_errors_never_show_the_webhook() {
    let (tmp, dir) = cleaned_to_stage_3();
    let mut seen = String::new();
    let (file, cs) =
        plan(tmp.path(), &dir, "p4.yaml", &["--stage", "4", "--image-host", "discord"], &mut seen);
    // Unset: refused before anything changes, naming the variable.
    let before = without_state(snapshot(&dir));
    let ran = tp(&dir, &["apply", file.to_str().unwrap(), "--yes"], &[], &mut seen);
    assert_eq!(ran.code, Some(1));
    assert!(ran.stderr.contains("TIDYPLEX_DISCORD_WEBHOOK"), "{}", ran.stderr);
    // Not a webhook URL: refused without echoing it.
    let bad = format!("https://discord.example/api/hooks/{TOKEN}");
    let ran = tp(
        &dir,
        &["apply", file.to_str().unwrap(), "--yes"],
        &[("TIDYPLEX_DISCORD_WEBHOOK", &bad)],
        &mut seen,
    );
    assert_eq!(ran.code, Some(1));
    assert_unchanged(&before, &without_state(snapshot(&dir)));
    // Nobody listening: deferred, the error names no URL.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let hook = format!("http://127.0.0.1:{port}/api/webhooks/4242/{TOKEN}");
    let report = apply(&dir, &file, &[], &[("TIDYPLEX_DISCORD_WEBHOOK", &hook)], 3, &mut seen);
    assert_eq!(report["deferred"].as_array().unwrap().len(), cs.changes.len());
    assert!(report["deferred"][0].as_str().unwrap().contains("cannot connect"), "{report}");
    assert!(report["deferred"][1].as_str().unwrap().contains("not sent"), "{report}");
    let ran = tp(
        &dir,
        &["-vv", "apply", file.to_str().unwrap(), "--yes"],
        &[("TIDYPLEX_DISCORD_WEBHOOK", &hook)],
        &mut seen,
    );
    assert_eq!(ran.code, Some(3));
    seen.push_str(&state_text(&dir));
    assert!(!seen.contains(TOKEN), "the webhook token leaked:\n{seen}");
    assert!(!seen.contains("webhooks/4242"), "the webhook URL leaked");
}

#[test]
fn http_put_plan_apply_converges_with_a_bearer_token() {
    let (tmp, dir, _) = fixture(&[]);
    let put = PutHost::start("put-t0ken-xyz");
    let base = put.server.base();
    let spec = write_spec(
        tmp.path(),
        &format!("  kind: http-put\n  url: {base}/upload\n  public_url: {base}/pub\n  token_env: MY_PUT_TOKEN\n"),
    );
    let spec = spec.to_str().unwrap();
    let mut seen = String::new();
    let (file, cs) = plan(tmp.path(), &dir, "p4.yaml", &[spec], &mut seen);
    let ups = uploads(&cs);
    assert!(!ups.is_empty() && ups.iter().all(|u| u.host == "http-put"));
    let originals = read_all(&dir, &ups);
    // The settings are in the SPEC: apply needs it.
    let ran = tp(&dir, &["apply", file.to_str().unwrap(), "--yes"], &[], &mut seen);
    assert!(ran.code == Some(1) && ran.stderr.contains("--spec"), "{}", ran.stderr);
    let env = [("MY_PUT_TOKEN", "put-t0ken-xyz")];
    let report = apply(&dir, &file, &["--spec", spec], &env, 0, &mut seen);
    assert_eq!(report["uploaded"], distinct(&ups) as u64, "{report}");
    assert_eq!(put.server.count("PUT"), distinct(&ups));
    for u in &ups {
        let url = column(&dir, u.id, &u.column).unwrap();
        assert_eq!(url, format!("{base}/pub/{}.jpg", u.blake3));
    }
    assert_hosted(&dir, &ups, &originals, &format!("{base}/pub/"));
    let again = ok(tp(&dir, &["plan", spec], &[], &mut seen), 0);
    assert!(again.starts_with("No changes."), "{again}");
    assert!(!seen.contains("put-t0ken-xyz"));
}

/// `tidyplex serve --dir DIR --bind 127.0.0.1:0`, and the address it serves on.
struct Serve(std::process::Child, String);

impl Serve {
    fn start(folder: &Path) -> Serve {
        Serve::with(&["--dir", folder.to_str().unwrap()])
    }

    /// `tidyplex serve --bind 127.0.0.1:0 ARGS…`, once it says where it listens.
    fn with(args: &[&str]) -> Serve {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("tidyplex"))
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.split("http://").nth(1).unwrap().split('/').next().unwrap().to_string();
        Serve(child, addr)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn dir_plan_apply_converges_and_serve_publishes_the_copies() {
    let (tmp, dir, _) = fixture(&[]);
    let images = tmp.path().join("images");
    std::fs::create_dir(&images).unwrap();
    let serve = Serve::start(&images);
    let public = format!("http://{}/i", serve.1);
    let spec = write_spec(
        tmp.path(),
        &format!("  kind: dir\n  path: {}\n  public_url: {public}\n", images.display()),
    );
    let spec = spec.to_str().unwrap();
    let mut seen = String::new();
    let (file, cs) = plan(tmp.path(), &dir, "p4.yaml", &[spec], &mut seen);
    let ups = uploads(&cs);
    let originals = read_all(&dir, &ups);
    let report = apply(&dir, &file, &["--spec", spec], &[], 0, &mut seen);
    assert_eq!(report["applied"], cs.changes.len() as u64, "{report}");
    assert_hosted(&dir, &ups, &originals, &format!("{public}/"));
    for u in &ups {
        let name = format!("{}.jpg", u.blake3);
        assert!(images.join(&u.blake3[..2]).join(name).is_file());
    }
    let again = ok(tp(&dir, &["plan", spec], &[], &mut seen), 0);
    assert!(again.starts_with("No changes."), "{again}");
    // A second server finds the folder in the SPEC and serves the same bytes.
    let from_spec = Serve::with(&[spec]);
    let u = &ups[0];
    let (status, body) = get(&format!("http://{}/i/{}.jpg", from_spec.1, u.blake3));
    assert_eq!(status, 200);
    assert_eq!(blake3::hash(&body).to_hex().to_string(), u.blake3);
    // serve publishes nothing else.
    assert_eq!(get(&format!("{public}/{}.jpg", "0".repeat(64))).0, 404);
    assert_eq!(get(&format!("http://{}/i/../spec.yaml", serve.1)).0, 404);
    assert_eq!(get(&format!("http://{}/", serve.1)).0, 404);
}

#[test]
fn a_dir_host_inside_the_plex_folder_is_refused() {
    let (tmp, dir) = cleaned_to_stage_3();
    let inside = dir.join("Media/hosted");
    let spec = write_spec(
        tmp.path(),
        &format!("  kind: dir\n  path: {}\n  public_url: http://127.0.0.1:1/i\n", inside.display()),
    );
    let spec = spec.to_str().unwrap();
    let mut seen = String::new();
    let (file, _) = plan(tmp.path(), &dir, "p4.yaml", &[spec], &mut seen);
    let before = without_state(snapshot(&dir));
    let ran = tp(&dir, &["apply", file.to_str().unwrap(), "--yes", "--spec", spec], &[], &mut seen);
    assert_eq!(ran.code, Some(1));
    assert!(ran.stderr.contains("inside the Plex data folder"), "{}", ran.stderr);
    let mut after = without_state(snapshot(&dir));
    after.retain(|k, _| !k.starts_with("Media/hosted"));
    if let Some(e) = after.get_mut("Media") {
        e.2 = before["Media"].2;
    }
    assert_unchanged(&before, &after);
    // A flag cannot carry a folder.
    let ran = tp(&dir, &["plan", "--stage", "4", "--image-host", "dir"], &[], &mut seen);
    assert_eq!(ran.code, Some(1));
    assert!(ran.stderr.contains("needs its settings in a SPEC"), "{}", ran.stderr);
}
