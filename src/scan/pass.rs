//! The one walk a plan makes. The planners first say which folders they need ([`Job`]s: live
//! bundles, Media analysis folders, whole bundles, the cache's folders); the pass then reads
//! each folder once, all of them in parallel over every core, and judges it while its listing
//! is in memory. Only the changes (and the cache's entries, which its policy weighs together)
//! outlive a folder's walk, so memory follows the number of changes, not of files.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::refs::InUse;
use super::tree::{self, Entry, FileId};
use super::usage::Usage;
use super::{cache, library};
use crate::changeset::Change;
use crate::plex::bundle;

/// One folder to read, and what to look for in it.
#[derive(Debug, Clone)]
pub enum Job {
    /// A live Metadata bundle: the images nothing uses (library stages 1–2 and bundle step 3),
    /// and with `empty_dirs` also the folders that hold no file (bundle step 3).
    Live {
        /// The bundle owner (the changes' item).
        owner: i64,
        /// The bundle, relative to the plex dir.
        bundle: String,
        /// Whether empty folders go too.
        empty_dirs: bool,
        /// The tag of its changes (0 for the library stages, 3 for bundle step 3).
        tag: u8,
    },
    /// A Media bundle's analysis images nothing uses (stage 3).
    Analysis {
        /// The item the Media bundle belongs to.
        item: i64,
        /// The Media bundle, relative to the plex dir.
        bundle: String,
    },
    /// A bundle deleted whole (bundle steps 1 and 2).
    Whole {
        /// The bundle, relative to the plex dir.
        path: String,
        /// The bundle step.
        tag: u8,
    },
    /// A folder read only to measure it (`status`), or with `shallow` only the files
    /// directly in it.
    Measure {
        /// Its changeset path.
        rel: String,
        /// Only the folder's own files, not its subfolders.
        shallow: bool,
    },
    /// Part of the cache (boxed: a few hundred of these beside a job per bundle).
    Cache(Box<CacheJob>),
}

/// One folder of the cache, or with `shallow` only the files directly in it.
#[derive(Debug, Clone)]
pub struct CacheJob {
    /// The folder on disk.
    pub dir: PathBuf,
    /// Its changeset path.
    pub rel: String,
    /// Only the folder's own files, not its subfolders.
    pub shallow: bool,
    /// The cache policy's rule (none: only measured).
    pub rule: Option<cache::Rule>,
}

/// What the pass found.
#[derive(Debug, Default)]
pub struct Found {
    /// Changes, in job order.
    pub changes: Vec<Change>,
    /// The tag of each change's job (the bundle step, 0 for the rest), in the same order.
    pub tags: Vec<u8>,
    /// Files in live bundles that are neither images nor XML: always kept.
    pub unknown: Usage,
    /// Folders left alone, and why.
    pub warnings: Vec<String>,
    /// Folders that could not be read where nothing may be left out (measured folders and
    /// the cache), one line each.
    pub errors: Vec<String>,
    /// Every entry of the cache jobs with a budget rule (which weighs them all at once).
    pub cache: Vec<Entry>,
    /// With `measure`: disk use per area (`Metadata/<Kind>`, `Metadata` for files lying
    /// directly in it, `Media`, `PhotoTranscoder`) of every folder the jobs read, each folder
    /// once and a hard-linked file's bytes once per area. Analysis jobs (which read part of a
    /// bundle) are not measured.
    pub usage: BTreeMap<String, Usage>,
}

/// What one job found: its changes, and what few jobs find besides (kept apart, so that the
/// pass's list of parts stays small).
#[derive(Default)]
struct Part {
    tag: u8,
    changes: Vec<Change>,
    more: Option<Box<More>>,
}

#[derive(Default)]
struct More {
    unknown: Usage,
    warning: Option<String>,
    error: Option<String>,
    cache: Vec<Entry>,
    measured: Option<Measured>,
}

impl More {
    fn is_empty(&self) -> bool {
        self.unknown.files == 0
            && self.warning.is_none()
            && self.error.is_none()
            && self.cache.is_empty()
            && self.measured.is_none()
    }
}

/// A folder's disk use, its hard-linked files apart (their bytes count once per area).
struct Measured {
    area: String,
    usage: Usage,
    shared: Vec<(FileId, u64)>,
}

impl Measured {
    fn of(area: String, entries: &[Entry]) -> Measured {
        let mut m = Measured { area, usage: Usage::default(), shared: Vec::new() };
        for e in entries {
            m.usage.files += 1;
            match e.shared {
                Some(s) => m.shared.push((s.id, e.size)),
                None => m.usage.bytes += e.size,
            }
        }
        m
    }
}

/// The area a job's folder (changeset path) is measured in.
fn area_of(rel: &str) -> String {
    if rel.starts_with("Cache/") {
        return "PhotoTranscoder".into();
    }
    let mut parts = rel.splitn(3, '/');
    match (parts.next(), parts.next()) {
        (Some("Metadata"), Some(kind)) => format!("Metadata/{kind}"),
        (Some(top), _) => top.to_string(),
        _ => String::new(),
    }
}

/// Reads every job's folder once, in parallel, judging live bundles by `in_use`; with
/// `measure`, also measures them. `tick` hears the running count of files measured. Each job
/// is dropped once its folder is read, so its paths do not outlive it.
pub fn run(
    root: &Path,
    jobs: Vec<Job>,
    in_use: &InUse,
    measure: bool,
    tick: &(dyn Fn(u64) + Sync),
) -> Found {
    // A folder two jobs read (two items with one bundle) is measured once.
    let mut seen = HashSet::new();
    let measured: Vec<bool> = jobs
        .iter()
        .map(|j| measure && !matches!(j, Job::Analysis { .. }) && seen.insert(j.folder()))
        .collect();
    drop(seen);
    let files = AtomicU64::new(0);
    let parts: Vec<Part> = jobs
        .into_par_iter()
        .zip(measured)
        .map(|(job, measure)| {
            let part = one(root, &job, in_use, measure);
            let n =
                part.more.as_ref().and_then(|m| m.measured.as_ref()).map_or(0, |m| m.usage.files);
            tick(files.fetch_add(n, Ordering::Relaxed) + n);
            part
        })
        .collect();
    let mut found = Found::default();
    let mut shared: HashMap<String, HashSet<FileId>> = HashMap::new();
    // Exact reservations: a growing Vec of a few hundred thousand changes would double.
    let changes = parts.iter().map(|p| p.changes.len()).sum();
    found.changes.reserve_exact(changes);
    found.tags.reserve_exact(changes);
    found
        .cache
        .reserve_exact(parts.iter().filter_map(|p| p.more.as_ref()).map(|m| m.cache.len()).sum());
    for part in parts {
        found.tags.extend(std::iter::repeat_n(part.tag, part.changes.len()));
        found.changes.extend(part.changes);
        let Some(part) = part.more else { continue };
        found.unknown.merge(&part.unknown);
        found.warnings.extend(part.warning);
        found.errors.extend(part.error);
        found.cache.extend(part.cache);
        if let Some(m) = part.measured {
            let area = found.usage.entry(m.area.clone()).or_default();
            area.merge(&m.usage);
            let ids = shared.entry(m.area).or_default();
            for (id, size) in m.shared {
                if ids.insert(id) {
                    area.bytes += size;
                }
            }
        }
    }
    found
}

impl Job {
    /// The folder the job reads (its changeset path).
    pub fn folder(&self) -> &str {
        match self {
            Job::Live { bundle, .. } | Job::Analysis { bundle, .. } => bundle,
            Job::Whole { path, .. } => path,
            Job::Measure { rel, .. } => rel,
            Job::Cache(c) => &c.rel,
        }
    }
}

fn one(root: &Path, job: &Job, in_use: &InUse, measure: bool) -> Part {
    let mut part = Part::default();
    let mut more = More::default();
    let area = || area_of(job.folder());
    match job {
        Job::Live { owner, bundle, empty_dirs, tag } => {
            match library::unused_in_bundle(root, bundle, *owner, in_use, *empty_dirs) {
                Ok(found) => {
                    part.tag = *tag;
                    part.changes = found.changes;
                    more.unknown = found.unknown;
                    if measure {
                        more.measured = Some(Measured::of(area(), &found.entries));
                    }
                }
                Err(warning) => {
                    more.warning = Some(warning);
                    if measure {
                        let entries = tree::walk(root, bundle).unwrap_or_default();
                        more.measured = Some(Measured::of(area(), &entries));
                    }
                }
            }
        }
        Job::Analysis { item, bundle } => {
            if in_use.unresolved(bundle).is_some() {
                return part;
            }
            let mut unused = Vec::new();
            for folder in ["Thumbnails", "Art"] {
                let rel = format!("{bundle}/Contents/{folder}");
                for e in tree::walk(root, &rel).unwrap_or_default() {
                    let image = bundle::content(&e.path) == bundle::Content::Image;
                    if image && !in_use.contains_entry(&e) {
                        unused.push(e);
                    }
                }
            }
            part.changes = tree::changes(bundle, &unused, |_| true, usize::MAX, Some(*item));
        }
        Job::Whole { path, tag } => match tree::walk(root, path) {
            Ok(entries) => {
                part.tag = *tag;
                part.changes.push(Change::delete_dir(None, tree::whole_dir(path, &entries)));
                if measure {
                    more.measured = Some(Measured::of(area(), &entries));
                }
            }
            Err(e) => more.warning = Some(format!("left alone: {path}: {e:#}")),
        },
        Job::Measure { .. } if !measure => {}
        Job::Measure { rel, shallow } => {
            let dir = root.join(rel);
            match read(&dir, rel, *shallow) {
                Ok(entries) => more.measured = Some(Measured::of(area(), &entries)),
                Err(e) => more.error = Some(read_error(e)),
            }
        }
        Job::Cache(c) => match read(&c.dir, &c.rel, c.shallow) {
            Ok(entries) => {
                if measure {
                    more.measured = Some(Measured::of(area(), &entries));
                }
                match c.rule.map(|r| cache::judge_folder(&entries, r)) {
                    Some(Some(changes)) => part.changes = changes,
                    Some(None) => more.cache = entries,
                    None => {}
                }
            }
            Err(e) => more.error = Some(read_error(e)),
        },
    }
    if !more.is_empty() {
        part.more = Some(Box::new(more));
    }
    part
}

/// A read failure as one line, with what to do when it is a permission.
fn read_error(e: anyhow::Error) -> String {
    let denied = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
    });
    let hint = if denied { " (run tidyplex as the user Plex runs as)" } else { "" };
    format!("{e:#}{hint}")
}

/// The non-directory entries of `dir` (changeset path `rel`): all below it, or with
/// `shallow` only those directly in it.
fn read(dir: &Path, rel: &str, shallow: bool) -> anyhow::Result<Vec<Entry>> {
    if shallow {
        shallow_files(dir, rel)
    } else {
        tree::walk_abs(dir, rel)
    }
}

/// The non-directory entries directly in `dir` (changeset path `rel`).
fn shallow_files(dir: &Path, rel: &str) -> anyhow::Result<Vec<Entry>> {
    use anyhow::Context;
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let meta =
            entry.metadata().with_context(|| format!("cannot read {}", entry.path().display()))?;
        if meta.is_dir() {
            continue;
        }
        out.push(Entry {
            path: format!("{rel}/{}", entry.file_name().to_string_lossy()),
            is_link: meta.file_type().is_symlink(),
            size: if meta.is_file() { meta.len() } else { 0 },
            mtime: tree::mtime(&meta),
            shared: tree::shared(&meta),
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn measures_files_and_links_but_file_bytes_once() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let b = root.join("Metadata/Movies/a/b");
        std::fs::create_dir_all(b.join("c")).unwrap();
        std::fs::write(b.join("one"), vec![0u8; 100]).unwrap();
        std::fs::write(b.join("c/two"), vec![0u8; 23]).unwrap();
        std::os::unix::fs::symlink("../one", b.join("c/link")).unwrap();
        std::os::unix::fs::symlink("/nowhere", b.join("dangling")).unwrap();
        std::fs::hard_link(b.join("one"), root.join("Metadata/Movies/a/one-again")).unwrap();
        let jobs = vec![
            Job::Measure { rel: "Metadata/Movies/a".into(), shallow: true },
            Job::Measure { rel: "Metadata/Movies/a/b".into(), shallow: false },
            // Read twice, measured once.
            Job::Measure { rel: "Metadata/Movies/a/b".into(), shallow: false },
            Job::Measure { rel: "Media/missing".into(), shallow: false },
        ];
        let found = run(root, jobs, &InUse::default(), true, &|_| {});
        assert!(found.errors.is_empty(), "{:?}", found.errors);
        assert_eq!(found.usage["Metadata/Movies"], Usage { files: 5, bytes: 123 });
        assert_eq!(found.usage.get("Media").copied().unwrap_or_default(), Usage::default());
    }

    #[test]
    fn areas_are_named_as_status_shows_them() {
        assert_eq!(area_of("Metadata/TV Shows/a/b.bundle"), "Metadata/TV Shows");
        assert_eq!(area_of("Metadata"), "Metadata");
        assert_eq!(area_of("Media/localhost/0"), "Media");
        assert_eq!(area_of("Cache/PhotoTranscoder/ab"), "PhotoTranscoder");
    }
}
