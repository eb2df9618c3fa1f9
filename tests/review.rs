//! `tidyplex review` end to end: the real binary serves a fixture's plan, headless Chromium
//! renders the page (Debian's `chromium`; `.ci/run` installs it), and plain HTTP checks that
//! everything outside what the plan names is refused.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A running `tidyplex review`, stopped when dropped.
struct Review {
    child: Child,
    url: String,
}

impl Review {
    fn start(dir: &Path, plan: &Path) -> Review {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("tidyplex"))
            .args(["--plex-dir", dir.to_str().unwrap(), "review", plan.to_str().unwrap()])
            .args(["--bind", "127.0.0.1:0"])
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_string();
        Review { child, url }
    }

    /// `http://127.0.0.1:PORT`.
    fn base(&self) -> &str {
        self.url.split("/?token=").next().unwrap()
    }

    fn token(&self) -> &str {
        self.url.split("token=").nth(1).unwrap()
    }

    fn get(&self, path_and_query: &str) -> (u16, Vec<u8>) {
        let r = reqwest::blocking::get(format!("{}{path_and_query}", self.base())).unwrap();
        (r.status().as_u16(), r.bytes().unwrap().to_vec())
    }

    fn thumb(&self, path: &str) -> u16 {
        let q =
            path.replace('%', "%25").replace(' ', "%20").replace('&', "%26").replace('#', "%23");
        self.get(&format!("/thumb?token={}&path={q}", self.token())).0
    }
}

impl Drop for Review {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The page after its scripts ran and its images loaded, as Chromium serialises it.
fn rendered(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=8000",
            "--window-size=1280,2000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .stderr(Stdio::null())
        .output()
        .expect("chromium (apt-get install chromium) renders the page");
    assert!(out.status.success(), "chromium failed");
    String::from_utf8(out.stdout).unwrap()
}

/// The `data-section` of every item card in a rendered page.
fn card_sections(dom: &str) -> Vec<String> {
    dom.split("<article")
        .skip(1)
        .map(|a| a.split("data-section=\"").nth(1).unwrap().split('"').next().unwrap().to_string())
        .collect()
}

fn plan(tmp: &Path, dir: &Path) -> std::path::PathBuf {
    let file = tmp.join("plan.yaml");
    let f = file.to_str().unwrap();
    run(dir, &["plan", "--stage", "3", "--bundles", "3", "--cache", "all", "-o", f], 0);
    file
}

#[test]
fn the_page_shows_items_with_thumbnails_and_filters_them() {
    let (tmp, dir, _) = fixture(&[]);
    let file = plan(tmp.path(), &dir);
    let started = Instant::now();
    let review = Review::start(&dir, &file);
    assert!(started.elapsed() < Duration::from_secs(10));

    let dom = rendered(&review.url);
    let cards = card_sections(&dom);
    assert!(cards.len() >= 20, "{} items rendered", cards.len());
    assert!(dom.contains("<table id=\"sections\""), "the summary per section");
    assert!(dom.contains("class=\"bar\""), "the bar chart");
    let loaded = dom.matches("data-loaded=\"1\"").count();
    assert!(loaded > 20, "{loaded} thumbnails loaded");
    // Deleted images are thumbnails served from the plex dir.
    assert!(dom.contains("src=\"/thumb?token="), "thumbnails come from the server");

    // Filters: a section, a title search, sorted by bytes.
    let only3 = card_sections(&rendered(&format!("{}#section=3", review.url)));
    assert!(!only3.is_empty() && only3.iter().all(|s| s == "3"), "{only3:?}");
    let found = rendered(&format!("{}#q=Movie%201%20", review.url));
    let titles: Vec<&str> =
        found.split("<h2>").skip(1).map(|h| h.split('<').next().unwrap()).collect();
    assert!(!titles.is_empty() && titles.iter().all(|t| t.contains("Movie 1 ")), "{titles:?}");
    let by_bytes = rendered(&format!("{}#sort=bytes", review.url));
    assert!(by_bytes.matches("<article").count() >= 20);
}

#[test]
fn requests_without_the_token_or_outside_the_plan_are_refused() {
    let (tmp, dir, _) = fixture(&[]);
    let file = plan(tmp.path(), &dir);
    let cs =
        tidyplex::changeset::Changeset::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let deleted: Vec<String> =
        cs.changes.iter().filter_map(|c| c.delete_file.as_ref().map(|f| f.path.clone())).collect();
    let image = deleted.iter().find(|p| p.ends_with("thumb1.jpg")).unwrap().clone();
    // A link the plan deletes, pointed out of the plex dir after planning.
    let link = deleted
        .iter()
        .find(|p| {
            p.contains("/_combined/")
                && dir.join(p).symlink_metadata().is_ok_and(|m| m.file_type().is_symlink())
        })
        .unwrap()
        .clone();
    std::fs::remove_file(dir.join(&link)).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join(&link)).unwrap();

    let review = Review::start(&dir, &file);
    let t = review.token();
    assert_eq!(review.get("/").0, 403);
    assert_eq!(review.get("/?token=0123").0, 403);
    assert_eq!(review.get(&format!("/?token={t}")).0, 200);
    assert_eq!(review.get(&format!("/api/items?token={}x", t)).0, 403);
    assert_eq!(review.get(&format!("/thumb?path={image}")).0, 403);
    assert_eq!(review.thumb(&image), 200, "{image}");
    for refused in [
        "Preferences.xml".to_string(),
        "Plug-in Support/Databases/com.plexapp.plugins.library.db".to_string(),
        "Metadata/../Preferences.xml".to_string(),
        format!("{image}/../../../../../../../Preferences.xml"),
        "/etc/passwd".to_string(),
        link.clone(),
    ] {
        assert_eq!(review.thumb(&refused), 404, "{refused}");
    }
    // An image the plan does not name is not served either.
    let unnamed = walkdir::WalkDir::new(dir.join("Metadata"))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file() && e.path().to_string_lossy().contains("/posters/"))
        .map(|e| e.path().strip_prefix(&dir).unwrap().to_string_lossy().into_owned())
        .find(|p| {
            !deleted.contains(p)
                && !cs.changes.iter().any(|c| {
                    c.delete_dir.as_ref().is_some_and(|d| p.starts_with(&format!("{}/", d.path)))
                })
        })
        .unwrap();
    assert_eq!(review.thumb(&unnamed), 404, "{unnamed}");
}

#[test]
fn a_plan_for_another_plex_dir_is_refused() {
    let (tmp, dir, _) = fixture(&[]);
    let (_other_tmp, other, _) = fixture(&[]);
    let file = plan(tmp.path(), &dir);
    let err = fail(&other, &["review", file.to_str().unwrap(), "--bind", "127.0.0.1:0"]);
    assert!(err.contains("was planned for"), "{err}");
}
