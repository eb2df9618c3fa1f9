//! The files the DB references: every local image column of every row, resolved to a path,
//! with the targets of symlinks followed (both the link and its target are in use).

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use super::tree::{self, Entry, FileId};
use crate::plex::db::Db;
use crate::plex::model::{Library, Tag};
use crate::plex::ImageUrl;

/// One column value that points at something local.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ColumnRef {
    /// `metadata_items`, `tags` or `library_sections`.
    pub table: &'static str,
    /// Row id.
    pub id: i64,
    /// Column.
    pub column: &'static str,
    /// The file, relative to the plex dir, when the value can be resolved.
    pub path: Option<String>,
    /// The value's file name (protects files by name when the path cannot be resolved).
    pub name: Option<String>,
}

/// Every local image column value in the DB.
pub fn collect(db: &Db, lib: &Library, tags: &[Tag]) -> Vec<ColumnRef> {
    let mut out = Vec::new();
    let mut push = |table, id, column, value: &Option<String>, bundle: Option<&str>| {
        let url = ImageUrl::parse(value.as_deref());
        if let Some(name) = url.file_name() {
            out.push(ColumnRef {
                table,
                id,
                column,
                path: url.resolve(bundle),
                name: Some(name.to_string()),
            });
        }
    };
    for item in &lib.items {
        let bundle = lib.bundle_of(item);
        for (col, value) in db.schema.metadata_items.iter().zip(&item.images) {
            push("metadata_items", item.id, *col, value, bundle.as_deref());
        }
    }
    for tag in tags {
        let bundle =
            tag.metadata_item_id.and_then(|id| lib.item(id)).and_then(|i| lib.bundle_of(i));
        for (col, value) in db.schema.tags.iter().zip(&tag.images) {
            push("tags", tag.id, *col, value, bundle.as_deref());
        }
    }
    for section in &lib.sections {
        for (col, value) in db.schema.library_sections.iter().zip(&section.images) {
            push("library_sections", section.id, *col, value, None);
        }
    }
    out
}

/// The set of paths in use. Paths are kept as 64-bit digests, which keeps a million-file
/// library's set small; a collision could only make an unused file look used (kept), never the
/// reverse. Files with several names (hard links) are also kept by identity, so every name of
/// a file in use is in use.
#[derive(Debug, Default)]
pub struct InUse {
    paths: HashSet<u64>,
    names: HashSet<u64>,
    files: HashSet<FileId>,
    /// Bundles holding an in-use link whose target cannot be found inside the plex dir, with
    /// one such link and its target: nothing in them may be deleted.
    unresolved: std::collections::HashMap<String, (String, PathBuf)>,
}

/// A fixed-key digest of a path or name (the same in every run).
fn digest(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

impl InUse {
    /// The files `refs` point at (and, through symlinks, their targets) under `root`, leaving
    /// out the refs `skip` says are about to change. A ref whose path cannot be resolved
    /// protects every file with its name.
    pub fn build<'a>(
        root: &Path,
        refs: impl IntoIterator<Item = &'a ColumnRef>,
        skip: impl Fn(&ColumnRef) -> bool,
    ) -> InUse {
        use rayon::prelude::*;
        let mut in_use = InUse::default();
        let mut paths: Vec<&str> = Vec::new();
        for r in refs.into_iter().filter(|r| !skip(r)) {
            match &r.path {
                Some(path) => paths.push(path),
                None => {
                    in_use.names.extend(r.name.as_deref().map(digest));
                }
            }
        }
        paths.sort_unstable();
        paths.dedup();
        // Each path's chain of links is followed on every core; the sets are filled after.
        let chains: Vec<Chain> = paths.par_iter().map(|p| Chain::follow(root, p)).collect();
        in_use.paths.reserve(paths.len());
        for chain in chains {
            in_use.paths.extend(chain.paths);
            in_use.files.extend(chain.file);
            if let Some((bundle, link, target)) = chain.unresolved {
                in_use.unresolved.entry(bundle).or_insert((link, target));
            }
        }
        in_use
    }

    /// Whether the file at `path` (relative to the plex dir) is in use.
    pub fn contains(&self, path: &str) -> bool {
        self.paths.contains(&digest(path))
            || (!self.names.is_empty()
                && path.rsplit('/').next().is_some_and(|name| self.names.contains(&digest(name))))
    }

    /// Whether the walked entry is in use: by its path, or as another name of a file in use.
    pub fn contains_entry(&self, entry: &Entry) -> bool {
        self.contains(&entry.path) || entry.shared.is_some_and(|s| self.files.contains(&s.id))
    }

    /// Why nothing in the bundle holding `path` may be deleted: an in-use link there whose
    /// target lies outside the plex dir (a path seen from inside a container, say).
    pub fn unresolved(&self, path: &str) -> Option<String> {
        let bundle = crate::plex::bundle::bundle_of(path)?;
        let (link, target) = self.unresolved.get(bundle)?;
        Some(unresolved_message(bundle, link, target))
    }

    /// How many paths are in use.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether nothing is in use.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty() && self.names.is_empty()
    }
}

/// Where one path in use leads: itself and the symlink targets after it (at most 8 hops),
/// the identity of a hard-linked file at the end, or the bundle whose link leaves the plex dir.
struct Chain {
    paths: Vec<u64>,
    file: Option<FileId>,
    unresolved: Option<(String, String, PathBuf)>,
}

impl Chain {
    fn follow(root: &Path, path: &str) -> Chain {
        let mut chain = Chain { paths: Vec::with_capacity(1), file: None, unresolved: None };
        let mut current = path.to_string();
        for _ in 0..8 {
            let d = digest(&current);
            if chain.paths.contains(&d) {
                break; // a loop of links
            }
            chain.paths.push(d);
            let Ok(meta) = std::fs::symlink_metadata(root.join(&current)) else { break };
            if !meta.file_type().is_symlink() {
                chain.file = tree::shared_id(&meta);
                break;
            }
            let Ok(target) = std::fs::read_link(root.join(&current)) else { break };
            match link_target(root, &current, &target) {
                Some(next) => current = next,
                None => {
                    if let Some(bundle) = crate::plex::bundle::bundle_of(&current) {
                        chain.unresolved = Some((bundle.to_string(), current, target));
                    }
                    break;
                }
            }
        }
        chain
    }
}

/// Where a symlink at `link` (relative to `root`) with `target` points, relative to `root`;
/// `None` when it leaves `root`. An absolute target outside `root` whose tail is
/// `…/Plex Media Server/Metadata/…` or `…/Media/…` (the plex dir as a container or another
/// machine sees it) is mapped onto `root`.
pub fn link_target(root: &Path, link: &str, target: &Path) -> Option<String> {
    let joined: PathBuf = if target.is_absolute() {
        let canonical = root.canonicalize().ok();
        let rel = target
            .strip_prefix(root)
            .ok()
            .or_else(|| canonical.as_deref().and_then(|c| target.strip_prefix(c).ok()))
            .map(Path::to_path_buf)
            .or_else(|| plex_tail(target))?;
        rel
    } else {
        Path::new(link).parent().unwrap_or(Path::new("")).join(target)
    };
    let mut parts: Vec<String> = Vec::new();
    for c in joined.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Why a bundle is left alone when its `link` points to `target`, outside the plex dir.
pub fn unresolved_message(bundle: &str, link: &str, target: &Path) -> String {
    format!(
        "left alone: {bundle}: the link {link} points to {}, which is not inside the plex dir; \
         run tidyplex where that path exists (inside the container, say)",
        target.display()
    )
}

/// The part of an absolute path after its last `Plex Media Server` folder, when it goes on
/// into `Metadata` or `Media`.
fn plex_tail(target: &Path) -> Option<PathBuf> {
    let parts: Vec<Component> = target.components().collect();
    let at = parts.windows(2).rposition(|w| {
        w[0].as_os_str() == "Plex Media Server"
            && (w[1].as_os_str() == "Metadata" || w[1].as_os_str() == "Media")
    })?;
    Some(parts[at + 1..].iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_absolute_targets_resolve_inside_the_root() {
        let root = Path::new("/pms");
        let link = "Metadata/Movies/a/b.bundle/Contents/_combined/posters/x";
        assert_eq!(
            link_target(root, link, Path::new("../../_stored/posters/x")).unwrap(),
            "Metadata/Movies/a/b.bundle/Contents/_stored/posters/x"
        );
        assert_eq!(
            link_target(root, link, Path::new("/pms/Metadata/Movies/a/b.bundle/Contents/y/z"))
                .unwrap(),
            "Metadata/Movies/a/b.bundle/Contents/y/z"
        );
        assert_eq!(link_target(root, link, Path::new("/etc/passwd")), None);
        assert_eq!(
            link_target(
                root,
                link,
                Path::new("/config/Library/Application Support/Plex Media Server/Metadata/Movies/a/b.bundle/Contents/y/z")
            )
            .unwrap(),
            "Metadata/Movies/a/b.bundle/Contents/y/z"
        );
        assert_eq!(
            link_target(root, link, Path::new("/srv/Plex Media Server/Metadata/../../etc")),
            None
        );
        assert_eq!(link_target(root, link, Path::new("/srv/plex/Metadata/Movies/a/y")), None);
        assert_eq!(link_target(root, "a/b", Path::new("../../../etc")), None);
    }

    #[cfg(unix)]
    #[test]
    fn links_and_their_targets_are_both_in_use() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("M/c/_stored")).unwrap();
        std::fs::create_dir_all(root.join("M/c/_combined")).unwrap();
        std::fs::write(root.join("M/c/_stored/x"), "img").unwrap();
        std::os::unix::fs::symlink("../_stored/x", root.join("M/c/_combined/x")).unwrap();
        std::os::unix::fs::symlink("x", root.join("M/c/_combined/loop")).unwrap();
        let refs = [
            ColumnRef {
                table: "metadata_items",
                id: 1,
                column: "user_thumb_url",
                path: Some("M/c/_combined/x".into()),
                name: None,
            },
            ColumnRef {
                table: "tags",
                id: 2,
                column: "user_thumb_url",
                path: None,
                name: Some("unresolved".into()),
            },
            ColumnRef {
                table: "metadata_items",
                id: 3,
                column: "user_art_url",
                path: Some("M/c/_combined/loop".into()),
                name: None,
            },
        ];
        let in_use = InUse::build(root, &refs, |r| r.id == 3);
        assert!(in_use.contains("M/c/_combined/x"));
        assert!(in_use.contains("M/c/_stored/x"));
        assert!(in_use.contains("Metadata/Anything/unresolved"));
        assert!(!in_use.contains("M/c/_combined/loop"), "skipped refs protect nothing");
    }
}
