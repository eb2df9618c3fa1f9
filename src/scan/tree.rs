//! Walking one folder (a bundle) and turning the files to delete into changes, whole folders
//! collapsed into one `delete_dir`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result};
use walkdir::WalkDir;

use crate::changeset::{self, Change, DeleteDir, DeleteFile};

/// A non-directory entry found by [`walk`].
#[derive(Debug, Clone)]
pub struct Entry {
    /// Relative to the plex dir.
    pub path: String,
    /// A symlink (never followed).
    pub is_link: bool,
    /// Bytes (0 for a symlink).
    pub size: u64,
    /// Modification time in seconds (of the link itself for a symlink).
    pub mtime: i64,
}

/// Every non-directory entry under `rel` (relative to `root`), without following symlinks.
/// A missing folder has none.
pub fn walk(root: &Path, rel: &str) -> Result<Vec<Entry>> {
    walk_abs(&root.join(rel), rel)
}

/// [`walk`] of the folder `base`, whose changeset path is `rel`.
pub fn walk_abs(base: &Path, rel: &str) -> Result<Vec<Entry>> {
    if !base.is_dir() || base.is_symlink() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in WalkDir::new(base).follow_links(false).sort_by_file_name() {
        let entry = entry.with_context(|| format!("cannot read {}", base.display()))?;
        if entry.file_type().is_dir() {
            continue;
        }
        let meta =
            entry.metadata().with_context(|| format!("cannot read {}", entry.path().display()))?;
        let sub = entry.path().strip_prefix(base).expect("walkdir stays under its root");
        out.push(Entry {
            path: format!("{rel}/{}", sub.to_string_lossy().replace('\\', "/")),
            is_link: entry.path_is_symlink(),
            size: if meta.is_file() { meta.len() } else { 0 },
            mtime: mtime(&meta),
        });
    }
    Ok(out)
}

/// Seconds since the epoch of `meta`'s modification time (negative before 1970).
pub fn mtime(meta: &std::fs::Metadata) -> i64 {
    match meta.modified().map(|t| t.duration_since(UNIX_EPOCH)) {
        Ok(Ok(d)) => d.as_secs() as i64,
        Ok(Err(before)) => -(before.duration().as_secs() as i64),
        Err(_) => 0,
    }
}

/// Turns the `doomed` entries of a folder walked as `all` into changes. A folder at least
/// `min_depth` levels below `base` whose files are all doomed (two or more) becomes one
/// `delete_dir`; other files become `delete_file`s. `item` is the context of every change.
pub fn changes(
    base: &str,
    all: &[Entry],
    doomed: impl Fn(&Entry) -> bool,
    min_depth: usize,
    item: Option<i64>,
) -> Vec<Change> {
    // For every folder below `base`: (files, files kept).
    let mut dirs: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut verdicts = Vec::with_capacity(all.len());
    for e in all {
        let d = doomed(e);
        verdicts.push(d);
        for dir in ancestors(base, &e.path, min_depth) {
            let counts = dirs.entry(dir).or_default();
            counts.0 += 1;
            counts.1 += u64::from(!d);
        }
    }
    let mut collapsed: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    let mut out = Vec::new();
    for (e, d) in all.iter().zip(verdicts) {
        if !d {
            continue;
        }
        // The highest wholly doomed folder with at least two files.
        let whole = ancestors(base, &e.path, min_depth)
            .into_iter()
            .find(|dir| matches!(dirs.get(dir), Some(&(n, 0)) if n >= 2));
        match whole {
            Some(dir) => collapsed.entry(dir).or_default().push(e),
            None => out.push(Change::delete_file(
                item,
                DeleteFile { path: e.path.clone(), size: e.size, mtime: e.mtime },
            )),
        }
    }
    for (dir, entries) in collapsed {
        out.push(Change::delete_dir(item, whole_dir(dir, entries.iter().copied())));
    }
    out
}

/// A `delete_dir` of `dir` (changeset path) whose non-directory entries are `entries`.
pub fn whole_dir<'a, I>(dir: &str, entries: I) -> DeleteDir
where
    I: IntoIterator<Item = &'a Entry>,
    I::IntoIter: Clone,
{
    let entries = entries.into_iter();
    DeleteDir {
        path: dir.to_string(),
        files: entries.clone().count() as u64,
        bytes: entries.clone().map(|e| e.size).sum(),
        digest: listing_digest(dir, entries),
    }
}

/// The digest [`DeleteDir::digest`] records for the entries below `dir`: names relative to it,
/// kinds and sizes (see [`changeset::digest`]).
pub fn listing_digest<'a>(dir: &str, entries: impl IntoIterator<Item = &'a Entry>) -> String {
    changeset::digest(entries.into_iter().map(|e| (&e.path[dir.len() + 1..], e.is_link, e.size)))
}

/// The folders under `rel` (relative to `root`), at least `min_depth` levels below it, that
/// hold no file at all, shallowest only (a wholly empty subtree is one entry).
pub fn empty_dirs(root: &Path, rel: &str, min_depth: usize) -> Result<Vec<String>> {
    let base = root.join(rel);
    if !base.is_dir() || base.is_symlink() {
        return Ok(Vec::new());
    }
    // Folders that hold a file somewhere below them.
    let mut full = std::collections::HashSet::new();
    let mut dirs = Vec::new();
    for entry in WalkDir::new(&base).follow_links(false).sort_by_file_name() {
        let entry = entry.with_context(|| format!("cannot read {}", base.display()))?;
        let sub = entry.path().strip_prefix(&base).expect("walkdir stays under its root");
        let sub = sub.to_string_lossy().replace('\\', "/");
        if entry.file_type().is_dir() {
            if entry.depth() >= min_depth {
                dirs.push(sub);
            }
        } else {
            let mut dir = sub.as_str();
            while let Some((parent, _)) = dir.rsplit_once('/') {
                full.insert(parent.to_string());
                dir = parent;
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    for dir in dirs {
        let inside_empty = out.last().is_some_and(|e: &String| dir.starts_with(&format!("{e}/")));
        if !full.contains(&dir) && !inside_empty {
            out.push(dir);
        }
    }
    Ok(out.into_iter().map(|d| format!("{rel}/{d}")).collect())
}

/// A `delete_dir` of a folder that holds no file.
pub fn empty_dir_change(path: String, item: Option<i64>) -> Change {
    Change::delete_dir(item, whole_dir(&path, []))
}

/// The folders containing `path` that are at least `min_depth` levels below `base`, shallowest
/// first.
fn ancestors<'a>(base: &str, path: &'a str, min_depth: usize) -> Vec<&'a str> {
    let mut out = Vec::new();
    let rest = &path[base.len() + 1..];
    let mut depth = 0;
    for (i, b) in rest.bytes().enumerate() {
        if b == b'/' {
            depth += 1;
            if depth >= min_depth {
                out.push(&path[..base.len() + 1 + i]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changeset::Op;

    fn e(path: &str) -> Entry {
        Entry { path: path.into(), is_link: false, size: 10, mtime: 1 }
    }

    #[test]
    fn whole_folders_collapse_and_kept_files_split_them() {
        let b = "Metadata/Movies/a/b.bundle";
        let all = [
            e("Metadata/Movies/a/b.bundle/Contents/agent/Info.xml"),
            e("Metadata/Movies/a/b.bundle/Contents/agent/posters/1"),
            e("Metadata/Movies/a/b.bundle/Contents/agent/posters/2"),
            e("Metadata/Movies/a/b.bundle/Contents/_stored/posters/3"),
            e("Metadata/Movies/a/b.bundle/Contents/_stored/posters/4"),
            e("Metadata/Movies/a/b.bundle/Contents/_stored/art/5"),
            e("Metadata/Movies/a/b.bundle/Uploads/posters/6"),
            e("Metadata/Movies/a/b.bundle/Uploads/posters/7"),
        ];
        let keep = ["Info.xml", "7"];
        let changes = changes(b, &all, |x| !keep.iter().any(|k| x.path.ends_with(k)), 2, Some(1));
        let got: Vec<String> = changes
            .iter()
            .map(|c| match c.op().unwrap() {
                Op::DeleteDir(d) => format!("dir {} {} {}", d.path, d.files, d.bytes),
                Op::DeleteFile(f) => format!("file {}", f.path),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            got,
            [
                "file Metadata/Movies/a/b.bundle/Uploads/posters/6",
                "dir Metadata/Movies/a/b.bundle/Contents/_stored 3 30",
                "dir Metadata/Movies/a/b.bundle/Contents/agent/posters 2 20",
            ]
        );
    }

    #[test]
    fn nothing_above_min_depth_collapses() {
        let b = "B";
        let all = [e("B/Contents/x"), e("B/Contents/y")];
        let changes = changes(b, &all, |_| true, 2, None);
        assert_eq!(changes.len(), 2);
        assert!(changes.iter().all(|c| c.delete_file.is_some()));
    }
}
