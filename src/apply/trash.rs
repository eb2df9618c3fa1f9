//! `apply --keep`: what apply removes is moved (renamed, never copied) into
//! `<state>/trash/<apply id>/<its changeset path>`, `undo` moves it back, and `purge` (or the
//! next apply, once the keep has run out) empties it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::files::absolute;
use super::journal::{self, Event, Journal};
use crate::changeset::{Changeset, Op};
use crate::plex::locate::PlexPaths;

/// The trash folder of all applies.
pub fn root(state: &Path) -> PathBuf {
    state.join("trash")
}

/// The trash of one apply.
#[derive(Debug, Clone)]
pub struct Trash {
    dir: PathBuf,
}

impl Trash {
    /// The trash of apply `id`, created, after checking that every folder the changeset removes
    /// from is on the trash's filesystem (a move across filesystems would copy every byte).
    pub fn prepare(paths: &PlexPaths, state: &Path, id: u64, cs: &Changeset) -> Result<Trash> {
        let dir = root(state).join(id.to_string());
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the trash folder {}", dir.display()))?;
        let mut tops: Vec<&str> = cs
            .changes
            .iter()
            .filter_map(|c| match c.op()? {
                Op::DeleteFile(f) => Some(top(&f.path)),
                Op::DeleteDir(d) => Some(top(&d.path)),
                Op::Upload(u) => Some(top(&u.path)),
                _ => None,
            })
            .collect();
        tops.sort_unstable();
        tops.dedup();
        for t in tops {
            let folder = absolute(paths, t);
            if let Some(false) = same_filesystem(&dir, &folder) {
                let _ = std::fs::remove_dir(&dir);
                bail!(
                    "--keep moves what apply removes into {}, which is on another filesystem than {}; \
                     nothing was changed: apply without --keep (the DB backup still lets you put the \
                     columns back), or keep the Plex data folder on one filesystem",
                    dir.display(),
                    folder.display()
                );
            }
        }
        Ok(Trash { dir })
    }

    /// The trash of apply `id` (for undo).
    pub fn of(state: &Path, id: u64) -> Trash {
        Trash { dir: root(state).join(id.to_string()) }
    }

    /// Its folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Moves the file or folder at the changeset path `rel` into the trash. A folder that
    /// meets one already there (its emptied parent) is merged into it.
    pub fn keep(&self, paths: &PlexPaths, rel: &str) -> std::io::Result<()> {
        let to = self.dir.join(rel);
        let from = absolute(paths, rel);
        let mut left = Vec::new();
        move_merging(&from, &to, &mut left)?;
        match left.first() {
            None => Ok(()),
            Some(p) => {
                Err(std::io::Error::other(format!("{} is in the trash already", p.display())))
            }
        }
    }
}

/// The cleanable folder a changeset path lies in (`Metadata`, `Media`, the cache).
fn top(rel: &str) -> &str {
    if rel.starts_with("Cache/PhotoTranscoder/") {
        "Cache/PhotoTranscoder"
    } else {
        rel.split('/').next().unwrap_or(rel)
    }
}

/// Whether `a` and `b` (or their nearest existing ancestors) are on one filesystem; `None`
/// where that cannot be told.
fn same_filesystem(a: &Path, b: &Path) -> Option<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let dev = |p: &Path| p.ancestors().find_map(|p| std::fs::metadata(p).ok()).map(|m| m.dev());
        Some(dev(a)? == dev(b)?)
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        None
    }
}

/// Renames `from` to `to`, creating `to`'s parents; when a folder stands at `to` and `from` is
/// a folder too, their contents are merged. What cannot go because something else stands in
/// its place is left where it is and listed in `left`. A symlink is moved as itself.
fn move_merging(from: &Path, to: &Path, left: &mut Vec<PathBuf>) -> std::io::Result<()> {
    match std::fs::symlink_metadata(to) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::rename(from, to) {
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound && from.symlink_metadata().is_ok() =>
            {
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::rename(from, to)
            }
            other => other,
        },
        Err(e) => Err(e),
        Ok(there) => {
            let here = std::fs::symlink_metadata(from)?;
            if !(there.is_dir() && here.is_dir()) {
                left.push(from.to_path_buf());
                return Ok(());
            }
            let mut names: Vec<_> =
                std::fs::read_dir(from)?.flatten().map(|e| e.file_name()).collect();
            names.sort();
            for name in names {
                move_merging(&from.join(&name), &to.join(&name), left)?;
            }
            // Emptied by the merge (else something in it stayed).
            let _ = std::fs::remove_dir(from);
            Ok(())
        }
    }
}

/// What `restore` put back.
#[derive(Debug, Default, Serialize)]
pub struct Restored {
    /// Files (and links) moved back.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Changeset paths left in the trash because something stands there now.
    pub left: Vec<String>,
}

/// Moves everything in `trash` back where it was; what finds something standing at its path
/// stays in the trash. Folders the moves empty in the trash are removed.
pub fn restore(paths: &PlexPaths, trash: &Trash) -> Result<Restored> {
    let mut out = Restored::default();
    if !trash.dir.is_dir() {
        return Ok(out);
    }
    let mut left = Vec::new();
    for (rel, into) in [
        ("Metadata", paths.root.join("Metadata")),
        ("Media", paths.root.join("Media")),
        ("Cache/PhotoTranscoder", paths.photo_transcoder.clone()),
    ] {
        let from = trash.dir.join(rel);
        if !from.exists() {
            continue;
        }
        let (files, bytes) = count(&from);
        let mut here = Vec::new();
        move_merging(&from, &into, &mut here).with_context(|| {
            format!("cannot move {} back to {}", from.display(), into.display())
        })?;
        let (kept_files, kept_bytes) = here.iter().fold((0, 0), |(f, b), p| {
            let (cf, cb) = count(p);
            (f + cf, b + cb)
        });
        out.files += files - kept_files;
        out.bytes += bytes - kept_bytes;
        left.extend(here);
    }
    for p in left {
        let rel = p.strip_prefix(&trash.dir).unwrap_or(&p).to_string_lossy().replace('\\', "/");
        out.left.push(rel);
    }
    out.left.sort();
    remove_empty_dirs(&trash.dir);
    Ok(out)
}

/// Files (and links) under `path` (itself when it is not a folder), and their bytes.
fn count(path: &Path) -> (u64, u64) {
    walkdir::WalkDir::new(path)
        .follow_links(false)
        .into_iter()
        .flatten()
        .filter(|e| !e.file_type().is_dir())
        .fold((0, 0), |(f, b), e| {
            let size = e.metadata().ok().filter(|m| m.is_file()).map_or(0, |m| m.len());
            (f + 1, b + size)
        })
}

/// Removes the empty folders under (and including) `dir`, deepest first.
fn remove_empty_dirs(dir: &Path) {
    let dirs: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .contents_first(true)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_dir())
        .map(|e| e.into_path())
        .collect();
    for d in dirs {
        let _ = std::fs::remove_dir(d);
    }
}

/// What the trash holds.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Usage {
    /// Applies whose trash is not empty.
    pub applies: u64,
    /// Files (and links) in it.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// What the trash of every apply holds.
pub fn usage(state: &Path) -> Usage {
    let mut out = Usage::default();
    for (_, files, bytes) in contents(state) {
        out.applies += u64::from(files > 0);
        out.files += files;
        out.bytes += bytes;
    }
    out
}

/// Per apply with a trash folder: (id, files, bytes), by id.
pub fn contents(state: &Path) -> Vec<(u64, u64, u64)> {
    let Ok(entries) = std::fs::read_dir(root(state)) else { return Vec::new() };
    let mut out: Vec<(u64, u64, u64)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let id = e.file_name().to_str()?.parse().ok()?;
            let (files, bytes) = count(&e.path());
            Some((id, files, bytes))
        })
        .collect();
    out.sort_unstable();
    out
}

/// Which trashes `purge` empties.
#[derive(Debug, Clone, Copy)]
pub enum Purge {
    /// Those whose keep has run out.
    Expired,
    /// Those of applies that started longer ago than this.
    OlderThan(Duration),
    /// All.
    All,
}

/// What a purge emptied.
#[derive(Debug, Default, Serialize)]
pub struct Purged {
    /// The applies whose trash went.
    pub applies: Vec<u64>,
    /// Files removed.
    pub files: u64,
    /// Bytes freed.
    pub bytes: u64,
}

impl Purged {
    /// Nothing was emptied.
    pub fn is_empty(&self) -> bool {
        self.applies.is_empty()
    }
}

/// Empties the trashes `which` selects, recording each in its apply's journal. Call under the
/// apply lock. A trash folder no journal knows (a journal removed by hand) is left alone.
pub fn purge(state: &Path, which: Purge) -> Result<Purged> {
    let now = SystemTime::now();
    let mut out = Purged::default();
    for id in journal::ids(state)? {
        let trash = Trash::of(state, id);
        if !trash.dir.exists() {
            continue;
        }
        let applied = journal::read_head(state, id)?;
        let started = humantime::parse_rfc3339(&applied.at).unwrap_or(now);
        let due = match which {
            Purge::All => true,
            Purge::Expired => applied.keep_until.is_some_and(|t| t <= now),
            Purge::OlderThan(age) => now.duration_since(started).is_ok_and(|d| d >= age),
        };
        if !due {
            continue;
        }
        let (files, bytes) = count(&trash.dir);
        std::fs::remove_dir_all(&trash.dir)
            .with_context(|| format!("cannot empty the trash {}", trash.dir.display()))?;
        Journal::open(state, applied.id).record(&Event::Purged { at: journal::now() })?;
        out.applies.push(applied.id);
        out.files += files;
        out.bytes += bytes;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_merges_into_a_folder_there_and_leaves_what_is_taken() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::create_dir_all(a.join("x/y")).unwrap();
        std::fs::write(a.join("x/y/1.jpg"), "1").unwrap();
        std::fs::write(a.join("x/2.jpg"), "2").unwrap();
        std::fs::create_dir_all(b.join("x")).unwrap();
        std::fs::write(b.join("x/2.jpg"), "taken").unwrap();
        let mut left = Vec::new();
        move_merging(&a, &b, &mut left).unwrap();
        assert_eq!(std::fs::read_to_string(b.join("x/y/1.jpg")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(b.join("x/2.jpg")).unwrap(), "taken");
        assert_eq!(left, vec![a.join("x/2.jpg")]);
        assert!(!a.join("x/y").exists());
    }

    #[test]
    fn a_move_into_missing_parents_creates_them_and_moves_links_as_links() {
        let tmp = tempfile::tempdir().unwrap();
        let link = tmp.path().join("l");
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
        #[cfg(not(unix))]
        std::fs::write(&link, "x").unwrap();
        let to = tmp.path().join("deep/er/l");
        move_merging(&link, &to, &mut Vec::new()).unwrap();
        assert!(to.symlink_metadata().is_ok() && link.symlink_metadata().is_err());
        #[cfg(unix)]
        assert!(to.symlink_metadata().unwrap().file_type().is_symlink());
    }
}
