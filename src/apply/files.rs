//! The file remover: deletes only what is still exactly as planned and referenced by nothing,
//! never follows a symlink, and removes the folders its deletions leave empty.

use std::path::PathBuf;

use rayon::prelude::*;

use super::trash::Trash;
use crate::changeset::{DeleteDir, DeleteFile, Op};
use crate::plex::bundle::{self, Content};
use crate::plex::locate::PlexPaths;
use crate::scan::refs::InUse;
use crate::scan::tree;

/// What became of a deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Deleted: this many files, this many bytes.
    Deleted {
        /// Files removed.
        files: u64,
        /// Bytes freed.
        bytes: u64,
    },
    /// Already gone.
    Already,
    /// Changed since planning (size, mtime or listing); left alone.
    Drifted(String),
    /// A column references it (or something inside) now; left alone.
    Referenced(String),
    /// The filesystem refused.
    Failed(String),
}

/// The absolute path of a changeset path: `Cache/PhotoTranscoder/…` lives in the real
/// PhotoTranscoder folder (elsewhere on macOS), everything else under the plex dir.
pub fn absolute(paths: &PlexPaths, rel: &str) -> PathBuf {
    match rel.strip_prefix("Cache/PhotoTranscoder/") {
        Some(rest) => paths.photo_transcoder.join(rest),
        None => paths.root.join(rel),
    }
}

/// The folder a path's cleanable root is: the PhotoTranscoder folder or `<root>/Metadata|Media`.
fn root_of(paths: &PlexPaths, rel: &str) -> (PathBuf, String) {
    match rel.strip_prefix("Cache/PhotoTranscoder/") {
        Some(rest) => (paths.photo_transcoder.clone(), rest.to_string()),
        None => {
            let (top, rest) = rel.split_once('/').unwrap_or((rel, ""));
            (paths.root.join(top), rest.to_string())
        }
    }
}

/// Refuses a path that passes through a symlinked folder: the cleanable root and every folder
/// from it down to the path's parent must be real folders (or not exist).
pub fn check_no_symlinked_dirs(paths: &PlexPaths, rel: &str) -> Result<(), String> {
    let (mut dir, rest) = root_of(paths, rel);
    let parts: Vec<&str> = rest.split('/').collect();
    for part in std::iter::once(None).chain(parts[..parts.len().saturating_sub(1)].iter().map(Some))
    {
        if let Some(part) = part {
            dir.push(part);
        }
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "{} is a symlink; tidyplex never deletes through symlinked folders",
                    dir.display()
                ))
            }
            Ok(m) if !m.is_dir() => return Err(format!("{} is not a folder", dir.display())),
            Ok(_) => {}
            Err(_) => return Ok(()), // missing: nothing below it to delete
        }
    }
    Ok(())
}

/// Carries out one deletion (a `delete_file` or `delete_dir`); with a `trash`, what goes is
/// moved into it instead of deleted.
pub fn delete(paths: &PlexPaths, op: Op<'_>, in_use: &InUse, trash: Option<&Trash>) -> Outcome {
    delete_checked(paths, op, &[in_use], trash)
}

/// [`delete`], keeping what any of `refs` references.
fn delete_checked(
    paths: &PlexPaths,
    op: Op<'_>,
    refs: &[&InUse],
    trash: Option<&Trash>,
) -> Outcome {
    let outcome = carry_out(paths, op, refs, trash);
    if let (
        Outcome::Deleted { .. },
        Op::DeleteFile(DeleteFile { path, .. }) | Op::DeleteDir(DeleteDir { path, .. }),
    ) = (&outcome, op)
    {
        remove_empty_parents(paths, path);
    }
    outcome
}

/// Carries out many deletions in parallel, in order of the results.
pub fn delete_all(
    paths: &PlexPaths,
    ops: &[Op<'_>],
    in_use: &InUse,
    trash: Option<&Trash>,
    tick: &(dyn Fn() + Sync),
) -> Vec<Outcome> {
    ops.par_iter()
        .map(|op| {
            let o = delete(paths, *op, in_use, trash);
            tick();
            o
        })
        .collect()
}

/// Carries out deletions item by item, in parallel: right before an item's files go, the
/// columns of the item and its descendants are read again (`families`), and what they
/// reference now is kept as well as what `in_use` (read once) references. `ops` are in
/// changeset order, each with its item; the outcomes come back in the same order.
pub fn delete_items(
    paths: &PlexPaths,
    ops: &[(Option<i64>, Op<'_>)],
    in_use: &InUse,
    families: &super::recheck::Families,
    trash: Option<&Trash>,
    tick: &(dyn Fn() + Sync),
) -> Vec<Outcome> {
    let mut groups: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, (item, _)) in ops.iter().enumerate() {
        match groups.last_mut() {
            Some(g) if ops[g.start].0 == *item => g.end = i + 1,
            _ => groups.push(i..i + 1),
        }
    }
    let done: Vec<Vec<Outcome>> = groups
        .par_iter()
        .map_init(
            || super::recheck::open(&paths.db),
            |conn, range| {
                let item = ops[range.start].0;
                let now = match (item, conn.as_ref()) {
                    (Some(id), Ok(conn)) => families.in_use_now(conn, &paths.root, id),
                    (Some(_), Err(e)) => Err(rusqlite::Error::InvalidParameterName(e.to_string())),
                    (None, _) => Ok(None),
                };
                let out: Vec<Outcome> = match now {
                    Ok(local) => {
                        let refs: Vec<&InUse> =
                            std::iter::once(in_use).chain(local.as_ref()).collect();
                        ops[range.clone()].iter().map(|(_, op)| delete_checked(paths, *op, &refs, trash)).collect()
                    }
                    Err(e) => ops[range.clone()]
                        .iter()
                        .map(|_| {
                            Outcome::Failed(format!(
                                "cannot re-read the columns of item {} before deleting its files ({e}); they are kept",
                                item.unwrap_or_default()
                            ))
                        })
                        .collect(),
                };
                out.iter().for_each(|_| tick());
                out
            },
        )
        .collect();
    done.into_iter().flatten().collect()
}

/// What a deletion's precondition finds on disk now.
#[derive(Debug)]
pub enum Found {
    /// Nothing there any more.
    Gone,
    /// Not as planned (size, mtime, listing or kind changed).
    Drifted(String),
    /// Cannot be inspected or is behind a symlinked folder.
    Failed(String),
    /// As planned: these entries (the file, or every entry of the folder) go if none is
    /// referenced.
    AsPlanned(Vec<tree::Entry>),
}

/// Checks a deletion's precondition without changing anything.
pub fn inspect(paths: &PlexPaths, op: Op<'_>) -> Found {
    match op {
        Op::DeleteFile(f) => inspect_file(paths, f),
        Op::DeleteDir(d) => inspect_dir(paths, d),
        _ => Found::Failed("not a deletion".into()),
    }
}

fn inspect_file(paths: &PlexPaths, f: &DeleteFile) -> Found {
    if let Err(e) = check_no_symlinked_dirs(paths, &f.path) {
        return Found::Failed(e);
    }
    let meta = match std::fs::symlink_metadata(absolute(paths, &f.path)) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Found::Gone,
        Err(e) => return Found::Failed(format!("{}: {e}", f.path)),
    };
    if meta.is_dir() {
        return Found::Drifted(format!("{} is a folder now", f.path));
    }
    let size = if meta.is_file() { meta.len() } else { 0 };
    let mtime = tree::mtime(&meta);
    if size != f.size || mtime != f.mtime {
        return Found::Drifted(format!(
            "{} changed since planning (size {} -> {size}, mtime {} -> {mtime})",
            f.path, f.size, f.mtime
        ));
    }
    Found::AsPlanned(vec![tree::Entry {
        path: f.path.clone(),
        is_link: meta.file_type().is_symlink(),
        size,
        mtime,
        shared: tree::shared(&meta),
    }])
}

fn inspect_dir(paths: &PlexPaths, d: &DeleteDir) -> Found {
    if let Err(e) = check_no_symlinked_dirs(paths, &format!("{}/x", d.path)) {
        return Found::Failed(e);
    }
    let abs = absolute(paths, &d.path);
    match std::fs::symlink_metadata(&abs) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Found::Gone,
        Err(e) => return Found::Failed(format!("{}: {e}", d.path)),
        Ok(m) if !m.is_dir() => return Found::Drifted(format!("{} is no longer a folder", d.path)),
        Ok(_) => {}
    }
    let entries = match tree::walk_abs(&abs, &d.path) {
        Ok(entries) => entries,
        Err(e) => return Found::Failed(format!("{e:#}")),
    };
    if tree::listing_digest(&d.path, &entries) != d.digest {
        return Found::Drifted(format!("{}/ changed since planning", d.path));
    }
    Found::AsPlanned(entries)
}

/// Deletes (or moves into `trash`) what `inspect` found as planned, unless a path in it is
/// referenced. `remove_file` removes a symlink itself, `remove_dir_all` never follows links and
/// a rename moves a link as itself: targets are never touched.
fn carry_out(paths: &PlexPaths, op: Op<'_>, refs: &[&InUse], trash: Option<&Trash>) -> Outcome {
    let inside = match inspect(paths, op) {
        Found::Gone => return Outcome::Already,
        Found::Drifted(why) => return Outcome::Drifted(why),
        Found::Failed(why) => return Outcome::Failed(why),
        Found::AsPlanned(inside) => inside,
    };
    let target = match op {
        Op::DeleteFile(f) => &f.path,
        Op::DeleteDir(d) => &d.path,
        _ => return Outcome::Failed("not a deletion".into()),
    };
    if let Some(why) = refs.iter().find_map(|r| r.unresolved(target)) {
        return Outcome::Referenced(why);
    }
    if let Some(used) = inside.iter().find(|e| refs.iter().any(|r| r.contains_entry(e))) {
        return Outcome::Referenced(used.path.clone());
    }
    // Inside a live bundle only images go, whatever the changeset says (whole bundles and
    // cache entries go whole).
    let whole = target.starts_with("Cache/PhotoTranscoder/")
        || matches!(op, Op::DeleteDir(d) if bundle::is_bundle_dir(&d.path));
    if !whole {
        if let Some(e) = inside.iter().find(|e| bundle::content(&e.path) != Content::Image) {
            return Outcome::Referenced(format!("{} (not an image: kept)", e.path));
        }
    }
    let (path, files, bytes, slash) = match op {
        Op::DeleteFile(f) => (&f.path, 1, f.freed(), ""),
        Op::DeleteDir(d) => (&d.path, d.files, d.bytes, "/"),
        _ => return Outcome::Failed("not a deletion".into()),
    };
    let removed = match (trash, op) {
        (Some(trash), _) => trash.keep(paths, path),
        (None, Op::DeleteDir(_)) => std::fs::remove_dir_all(absolute(paths, path)),
        (None, _) => std::fs::remove_file(absolute(paths, path)),
    };
    match removed {
        Ok(()) => Outcome::Deleted { files, bytes },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Outcome::Already,
        Err(e) if trash.is_some() => {
            Outcome::Failed(format!("cannot move {path}{slash} into the trash: {e}"))
        }
        Err(e) => Outcome::Failed(format!("cannot delete {path}{slash}: {e}")),
    }
}

/// Removes the folders a deletion left empty: inside a bundle, those below its `Contents` or
/// `Uploads`; for a whole bundle or a cache entry, the prefix folder it sat in. The cleanable
/// roots and kind folders always stay.
fn remove_empty_parents(paths: &PlexPaths, rel: &str) {
    let parts: Vec<&str> = rel.split('/').collect();
    let shallowest = match parts[..parts.len() - 1].iter().rposition(|p| p.ends_with(".bundle")) {
        Some(bundle) => bundle + 3,
        None => 3,
    };
    for len in (shallowest..parts.len()).rev() {
        if std::fs::remove_dir(absolute(paths, &parts[..len].join("/"))).is_err() {
            break; // not empty (or gone): stop climbing
        }
    }
}
