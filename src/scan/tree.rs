//! Walking one folder (a bundle) and turning the files to delete into changes, whole folders
//! collapsed into one `delete_dir`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result};

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
    /// Identity and name count of a file with more than one name (a hard link), else `None`.
    pub shared: Option<Shared>,
}

/// A file's identity on disk: (device, inode).
pub type FileId = (u64, u64);

/// A regular file with several names (hard links).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shared {
    /// Its identity.
    pub id: FileId,
    /// How many names it has.
    pub links: u64,
}

/// The identity of the file `meta` describes when it has other names (hard links).
pub fn shared_id(meta: &std::fs::Metadata) -> Option<FileId> {
    shared(meta).map(|s| s.id)
}

/// [`Shared`] for the file `meta` describes, when it has other names.
pub fn shared(meta: &std::fs::Metadata) -> Option<Shared> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (meta.is_file() && meta.nlink() > 1)
            .then(|| Shared { id: (meta.dev(), meta.ino()), links: meta.nlink() })
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// Which deletions free their file's bytes, asked in order: a file with one name always; a
/// file with several names once, on its first name, and only when all its names go.
struct Freed {
    doomed: HashMap<FileId, u64>,
    counted: HashSet<FileId>,
}

impl Freed {
    /// Over every entry that will be deleted.
    fn new<'a>(doomed: impl IntoIterator<Item = &'a Entry>) -> Freed {
        let mut names = HashMap::new();
        for s in doomed.into_iter().filter_map(|e| e.shared) {
            *names.entry(s.id).or_default() += 1;
        }
        Freed { doomed: names, counted: HashSet::new() }
    }

    /// Whether deleting `e` frees its bytes.
    fn frees(&mut self, e: &Entry) -> bool {
        match e.shared {
            None => true,
            Some(s) => self.doomed.get(&s.id) >= Some(&s.links) && self.counted.insert(s.id),
        }
    }
}

/// Every non-directory entry under `rel` (relative to `root`), without following symlinks.
/// A missing folder has none.
pub fn walk(root: &Path, rel: &str) -> Result<Vec<Entry>> {
    Ok(list(&root.join(rel), rel)?.entries)
}

/// [`walk`] of the folder `base`, whose changeset path is `rel`.
pub fn walk_abs(base: &Path, rel: &str) -> Result<Vec<Entry>> {
    Ok(list(base, rel)?.entries)
}

/// What one walk of a folder found: its non-directory entries and its folders.
#[derive(Debug, Default)]
pub struct Listing {
    /// Non-directory entries, in walk order (sorted by name at every level).
    pub entries: Vec<Entry>,
    /// Every folder below the walked one (changeset paths) with its depth (1 = a child).
    pub dirs: Vec<(String, usize)>,
}

impl Listing {
    /// The folders at least `min_depth` levels down that hold no file at all, shallowest
    /// only (a wholly empty subtree is one entry).
    pub fn empty_dirs(&self, min_depth: usize) -> Vec<String> {
        // Folders that hold a file somewhere below them.
        let mut full = HashSet::new();
        for e in &self.entries {
            let mut dir = e.path.as_str();
            while let Some((parent, _)) = dir.rsplit_once('/') {
                if !full.insert(parent) {
                    break;
                }
                dir = parent;
            }
        }
        let mut out: Vec<String> = Vec::new();
        for (dir, depth) in &self.dirs {
            let inside_empty = out.last().is_some_and(|e| {
                dir.strip_prefix(e.as_str()).is_some_and(|rest| rest.starts_with('/'))
            });
            if *depth >= min_depth && !full.contains(dir.as_str()) && !inside_empty {
                out.push(dir.clone());
            }
        }
        out
    }
}

/// One walk of the folder `base` (changeset path `rel`), without following symlinks. A
/// missing folder, or one that is a symlink, lists as empty.
pub fn list(base: &Path, rel: &str) -> Result<Listing> {
    let mut out = Listing::default();
    if !base.is_dir() || base.is_symlink() {
        return Ok(out);
    }
    read_into(base, rel, 1, &mut out)?;
    Ok(out)
}

/// Adds what is below `dir` (changeset path `rel`, `depth` levels below the walked folder) to
/// `out`, names sorted at every level. Each entry is examined relative to its open folder
/// (`fstatat`), not by its whole path: on a deep tree that is most of a walk's cost.
fn read_into(dir: &Path, rel: &str, depth: usize, out: &mut Listing) -> Result<()> {
    let cannot = || format!("cannot read {}", dir.display());
    let mut children = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(cannot)? {
        let entry = entry.with_context(cannot)?;
        children.push((entry.file_name(), entry));
    }
    children.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (name, entry) in children {
        let path = format!("{rel}/{}", name.to_string_lossy());
        let kind =
            entry.file_type().with_context(|| format!("cannot read {}", entry.path().display()))?;
        if kind.is_dir() {
            // Parents before their children: `empty_dirs` relies on it.
            out.dirs.push((path.clone(), depth));
            read_into(&entry.path(), &path, depth + 1, out)?;
            continue;
        }
        let meta =
            entry.metadata().with_context(|| format!("cannot read {}", entry.path().display()))?;
        out.entries.push(Entry {
            path,
            is_link: kind.is_symlink(),
            size: if meta.is_file() { meta.len() } else { 0 },
            mtime: mtime(&meta),
            shared: shared(&meta),
        });
    }
    Ok(())
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
    let verdicts: Vec<bool> = all.iter().map(doomed).collect();
    changes_of(base, all, &verdicts, min_depth, item)
}

/// [`changes`] with the verdict of each entry of `all` given, in the same order.
pub fn changes_of(
    base: &str,
    all: &[Entry],
    verdicts: &[bool],
    min_depth: usize,
    item: Option<i64>,
) -> Vec<Change> {
    // For every folder below `base`: (files, files kept).
    let mut dirs: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (e, &d) in all.iter().zip(verdicts) {
        for dir in ancestors(base, &e.path, min_depth) {
            let counts = dirs.entry(dir).or_default();
            counts.0 += 1;
            counts.1 += u64::from(!d);
        }
    }
    let mut collapsed: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    let mut files = Vec::new();
    for (e, &d) in all.iter().zip(verdicts) {
        if !d {
            continue;
        }
        // The highest wholly doomed folder with at least two files.
        let whole = ancestors(base, &e.path, min_depth)
            .into_iter()
            .find(|dir| matches!(dirs.get(dir), Some(&(n, 0)) if n >= 2));
        match whole {
            Some(dir) => collapsed.entry(dir).or_default().push(e),
            None => files.push(e),
        }
    }
    let mut freed = Freed::new(files.iter().chain(collapsed.values().flatten()).copied());
    let mut out = Vec::with_capacity(files.len() + collapsed.len());
    for e in files {
        let shared = !freed.frees(e);
        out.push(Change::delete_file(
            item,
            DeleteFile { path: e.path.clone(), size: e.size, mtime: e.mtime, shared },
        ));
    }
    for (dir, entries) in collapsed {
        let mut d = whole_dir(dir, entries.iter().copied());
        d.bytes = entries.iter().filter(|e| freed.frees(e)).map(|e| e.size).sum();
        out.push(Change::delete_dir(item, d));
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
    let mut freed = Freed::new(entries.clone());
    DeleteDir {
        path: dir.to_string(),
        files: entries.clone().count() as u64,
        bytes: entries.clone().filter(|e| freed.frees(e)).map(|e| e.size).sum(),
        digest: listing_digest(dir, entries),
    }
}

/// The digest [`DeleteDir::digest`] records for the entries below `dir`: names relative to it,
/// kinds and sizes (see [`changeset::digest`]).
pub fn listing_digest<'a>(dir: &str, entries: impl IntoIterator<Item = &'a Entry>) -> String {
    changeset::digest(entries.into_iter().map(|e| (&e.path[dir.len() + 1..], e.is_link, e.size)))
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
        Entry { path: path.into(), is_link: false, size: 10, mtime: 1, shared: None }
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
    fn hard_linked_names_free_their_bytes_once() {
        let b = "B";
        let s = |n| Some(Shared { id: (1, n), links: 2 });
        let all = [
            Entry { shared: s(7), ..e("B/Contents/a/posters/1") },
            Entry { shared: s(7), ..e("B/Contents/_combined/posters/1") },
            Entry { shared: s(8), ..e("B/Contents/a/posters/2") },
            Entry { shared: s(8), ..e("B/Contents/_combined/art/2") },
        ];
        // Both names of file 7 go (counted on the first); of file 8 only one, which frees nothing.
        let changes = changes(b, &all, |x| !x.path.ends_with("art/2"), 2, None);
        let freed: Vec<(String, u64)> = changes
            .iter()
            .map(|c| match c.op().unwrap() {
                Op::DeleteDir(d) => (d.path.clone(), d.bytes),
                Op::DeleteFile(f) => (f.path.clone(), f.freed()),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            freed,
            [("B/Contents/_combined/posters/1".to_string(), 10), ("B/Contents/a".to_string(), 0),]
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
