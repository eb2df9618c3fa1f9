//! Disk use of the folders tidyplex cleans.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use ignore::{WalkBuilder, WalkState};
use serde::{Deserialize, Serialize};

/// Files and bytes under a folder. `files` counts every entry that is not a directory
/// (regular files, symlinks and every name of a hard-linked file); `bytes` sums the apparent
/// size of regular files, a hard-linked file once (a symlink adds 0).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Non-directory entries.
    pub files: u64,
    /// Apparent bytes of the regular files.
    pub bytes: u64,
}

impl Usage {
    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Usage) {
        self.files += other.files;
        self.bytes += other.bytes;
    }
}

/// Measures everything under `root` without following symlinks, walking in parallel.
/// A missing `root` measures as empty; an unreadable entry is an error naming it.
/// `tick` is called with the number of entries seen so far, now and then (for progress).
pub fn measure(root: &Path, tick: &(dyn Fn(u64) + Sync)) -> Result<Usage> {
    match std::fs::symlink_metadata(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Usage::default()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", root.display())),
        Ok(m) if !m.is_dir() => bail!("{} is not a folder", root.display()),
        Ok(_) => {}
    }
    let files = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let shared: Mutex<std::collections::HashSet<super::tree::FileId>> = Mutex::default();
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    WalkBuilder::new(root)
        .standard_filters(false)
        .hidden(false)
        .follow_links(false)
        .threads(std::thread::available_parallelism().map_or(2, |n| n.get()).min(8))
        .build_parallel()
        .run(|| {
            Box::new(|entry| {
                let fail = |e: anyhow::Error| {
                    failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                    WalkState::Quit
                };
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(e) => return fail(walk_error(e)),
                };
                let Some(kind) = entry.file_type() else { return WalkState::Continue };
                if kind.is_dir() {
                    return WalkState::Continue;
                }
                let size = if kind.is_file() {
                    match entry.metadata() {
                        Ok(m) => match super::tree::shared_id(&m) {
                            Some(id)
                                if !shared.lock().unwrap_or_else(|p| p.into_inner()).insert(id) =>
                            {
                                0
                            }
                            _ => m.len(),
                        },
                        Err(e) => return fail(walk_error(e)),
                    }
                } else {
                    0
                };
                let seen = files.fetch_add(1, Ordering::Relaxed) + 1;
                bytes.fetch_add(size, Ordering::Relaxed);
                if seen.is_multiple_of(4096) {
                    tick(seen);
                }
                WalkState::Continue
            })
        });
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(Usage { files: files.into_inner(), bytes: bytes.into_inner() })
}

/// An `ignore` walk error as one line naming the path and the cause.
fn walk_error(e: ignore::Error) -> anyhow::Error {
    let text = e.to_string();
    let hint = if e.io_error().map(|io| io.kind()) == Some(std::io::ErrorKind::PermissionDenied) {
        " (run tidyplex as the user Plex runs as)"
    } else {
        ""
    };
    anyhow::anyhow!("cannot read {text}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn counts_files_and_links_but_only_file_bytes_once() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/one"), vec![0u8; 100]).unwrap();
        std::fs::write(root.join("a/b/two"), vec![0u8; 23]).unwrap();
        std::os::unix::fs::symlink("../one", root.join("a/b/link")).unwrap();
        std::os::unix::fs::symlink("/nowhere", root.join("a/dangling")).unwrap();
        std::fs::hard_link(root.join("a/one"), root.join("a/b/one-again")).unwrap();
        let u = measure(root, &|_| {}).unwrap();
        assert_eq!(u, Usage { files: 5, bytes: 123 });
        assert_eq!(measure(&root.join("missing"), &|_| {}).unwrap(), Usage::default());
    }
}
