//! Format 2 on disk: changes grouped by item, one line per deletion.
//!
//! Each item carries its header (id, type, title, section) once, its URL switches as
//! `column: {from, to}` and its deletions under the folder they lie in (its Metadata or Media
//! bundle, declared once), one line each: `<path> <size> <mtime>[ shared]` for a file and
//! `<path>/ <files> <bytes> <digest>` for a folder, the path relative to that folder. Changes of
//! no item (orphan and season/episode bundles, the cache) are grouped the same way by area.
//! Anything else (uploads, link refreshes, Plex calls) keeps its format-1 shape under `changes`.
//!
//! [`Document`] converts to and from the in-memory [`Changeset`], which everything else uses;
//! reading converts first and then validates the result exactly as format 1 is validated.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Change, Changeset, DeleteDir, DeleteFile, ItemInfo, Op, PlanSpec, SetUrl, Summary};
use crate::plex::bundle;

/// A format-2 changeset as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Document {
    /// `tidyplex-changeset/2`; a newer major version is refused, minor additions are ignored.
    pub format: String,
    /// The tidyplex that wrote it.
    pub tool: String,
    /// When it was planned (RFC 3339, UTC).
    pub created_at: String,
    /// The Plex data folder it was planned for; apply refuses another one.
    pub plex_dir: String,
    /// What was asked for.
    pub spec: PlanSpec,
    /// Totals over every change.
    pub summary: Summary,
    /// The items, by section then id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ItemEntry>,
    /// Changes of no item, by area (`Metadata/<Kind>`, `Media`, `PhotoTranscoder`, `other`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub areas: BTreeMap<String, Group>,
}

/// One item and its changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ItemEntry {
    /// `metadata_items.id`.
    pub id: i64,
    /// movie, show, season, episode, artist, album, collection, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Title as shown.
    pub title: String,
    /// Section id, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<i64>,
    /// URL columns of this item's `metadata_items` row: column → `{from, to}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set_url: BTreeMap<String, Switch>,
    /// Deletions: folder (relative to the plex dir) → one line per file or folder in it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub delete: BTreeMap<String, Vec<String>>,
    /// Other changes of this item, in format-1 shape (uploads, link refreshes, Plex calls).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
}

/// Changes of no item in one area.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Group {
    /// Deletions: folder → one line per file or folder in it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub delete: BTreeMap<String, Vec<String>>,
    /// Other changes, in format-1 shape.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
}

/// A URL column switch: `UPDATE … SET column = to WHERE column = from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Switch {
    /// The value when planned (precondition).
    pub from: Option<String>,
    /// The new value: an http(s) URL.
    #[schemars(regex(pattern = r"^[hH][tT][tT][pP][sS]?://[^/?#\s]+"))]
    pub to: String,
}

/// The folder a deletion is listed under and its path relative to it: inside a bundle, the
/// bundle; in the cache, `Cache/PhotoTranscoder`; otherwise (a whole bundle) its parent.
pub fn folder_of(path: &str) -> (&str, &str) {
    const CACHE: &str = "Cache/PhotoTranscoder";
    if let Some(rest) = path.strip_prefix(CACHE).and_then(|r| r.strip_prefix('/')) {
        return (CACHE, rest);
    }
    if let Some(b) = bundle::bundle_of(path).filter(|b| b.len() < path.len()) {
        return (b, &path[b.len() + 1..]);
    }
    match path.rsplit_once('/') {
        Some((parent, name)) => (parent, name),
        None => ("", path),
    }
}

/// The line of a deletion, relative to its folder.
pub fn line(op: Op<'_>, rel: &str) -> Option<String> {
    match op {
        Op::DeleteFile(f) => Some(if f.shared {
            format!("{rel} {} {} shared", f.size, f.mtime)
        } else {
            format!("{rel} {} {}", f.size, f.mtime)
        }),
        Op::DeleteDir(d) => Some(format!("{rel}/ {} {} {}", d.files, d.bytes, d.digest)),
        _ => None,
    }
}

/// The deletion a line under `folder` stands for.
pub fn parse_line(folder: &str, line: &str) -> Result<Change, String> {
    let bad = || {
        format!("`{line}` under `{folder}` is not `<path> <size> <mtime>` or `<path>/ <files> <bytes> <digest>`")
    };
    let full = |rel: &str| {
        if folder.is_empty() {
            rel.to_string()
        } else {
            format!("{folder}/{rel}")
        }
    };
    let (rest, last) = line.rsplit_once(' ').ok_or_else(bad)?;
    if last.len() == 64 && last.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut parts = rest.rsplitn(3, ' ');
        let (bytes, files, path) = (parts.next(), parts.next(), parts.next());
        let (Some(bytes), Some(files), Some(path)) = (bytes, files, path) else {
            return Err(bad());
        };
        let rel = path.strip_suffix('/').filter(|r| !r.is_empty()).ok_or_else(bad)?;
        return Ok(Change::delete_dir(
            None,
            DeleteDir {
                path: full(rel),
                files: files.parse().map_err(|_| bad())?,
                bytes: bytes.parse().map_err(|_| bad())?,
                digest: last.to_string(),
            },
        ));
    }
    let (shared, rest) = match last {
        "shared" => (true, rest),
        _ => (false, line),
    };
    let mut parts = rest.rsplitn(3, ' ');
    let (mtime, size, rel) = (parts.next(), parts.next(), parts.next());
    let (Some(mtime), Some(size), Some(rel)) = (mtime, size, rel) else { return Err(bad()) };
    if rel.is_empty() || rel.ends_with('/') {
        return Err(bad());
    }
    Ok(Change::delete_file(
        None,
        DeleteFile {
            path: full(rel),
            size: size.parse().map_err(|_| bad())?,
            mtime: mtime.parse().map_err(|_| bad())?,
            shared,
        },
    ))
}

/// The area a change of no item belongs to.
fn area_of(change: &Change) -> String {
    match change.op() {
        Some(Op::DeleteFile(f)) => area(&f.path),
        Some(Op::DeleteDir(d)) => area(&d.path),
        Some(Op::Upload(u)) => area(&u.path),
        _ => "other".into(),
    }
}

/// The area a path lies in: `Metadata/<Kind>`, `Media`, `PhotoTranscoder` or `other`.
pub fn area(path: &str) -> String {
    if path.starts_with("Cache/PhotoTranscoder/") {
        return "PhotoTranscoder".into();
    }
    if path.starts_with("Media/") {
        return "Media".into();
    }
    match path.strip_prefix("Metadata/").and_then(|r| r.split('/').next()) {
        Some(kind) => format!("Metadata/{kind}"),
        None => "other".into(),
    }
}

/// Adds a deletion (or another change) to a group's `delete` and `changes`.
fn add(delete: &mut BTreeMap<String, Vec<String>>, changes: &mut Vec<Change>, c: &Change) {
    if let Some(op @ (Op::DeleteFile(_) | Op::DeleteDir(_))) = c.op() {
        let path = match op {
            Op::DeleteFile(f) => &f.path,
            Op::DeleteDir(d) => &d.path,
            _ => unreachable!(),
        };
        let (folder, rel) = folder_of(path);
        if let Some(l) = line(op, rel) {
            delete.entry(folder.to_string()).or_default().push(l);
            return;
        }
    }
    changes.push(Change { item: None, ..c.clone() });
}

impl Document {
    /// The header of `cs` with no items or areas (for writing them one by one).
    pub fn header(cs: &Changeset) -> Document {
        Document {
            format: super::FORMAT.to_string(),
            tool: cs.tool.clone(),
            created_at: cs.created_at.clone(),
            plex_dir: cs.plex_dir.clone(),
            spec: cs.spec.clone(),
            summary: cs.summary.clone(),
            items: Vec::new(),
            areas: BTreeMap::new(),
        }
    }

    /// The item entries of `cs`, one by one in order (its changes are sorted by item already).
    pub fn entries(cs: &Changeset) -> impl Iterator<Item = ItemEntry> + '_ {
        let mut rest = &cs.changes[..];
        std::iter::from_fn(move || loop {
            let first = rest.first()?;
            let n = rest.iter().take_while(|c| c.item == first.item).count();
            let (run, tail) = rest.split_at(n);
            rest = tail;
            let Some(id) = first.item else { continue };
            let info = cs.items.get(&id);
            let mut entry = ItemEntry {
                id,
                kind: info.map_or_else(|| "item".into(), |i| i.kind.clone()),
                title: info.map_or_else(String::new, |i| i.title.clone()),
                section: info.and_then(|i| i.section),
                set_url: BTreeMap::new(),
                delete: BTreeMap::new(),
                changes: Vec::new(),
            };
            for c in run {
                match c.op() {
                    Some(Op::SetUrl(s))
                        if s.table == "metadata_items"
                            && s.id == id
                            && !entry.set_url.contains_key(&s.column) =>
                    {
                        let switch = Switch { from: s.from.clone(), to: s.to.clone() };
                        entry.set_url.insert(s.column.clone(), switch);
                    }
                    _ => add(&mut entry.delete, &mut entry.changes, c),
                }
            }
            for lines in entry.delete.values_mut() {
                lines.sort();
            }
            return Some(entry);
        })
    }

    /// The changes of no item, by area.
    pub fn areas(cs: &Changeset) -> BTreeMap<String, Group> {
        let mut areas: BTreeMap<String, Group> = BTreeMap::new();
        for c in cs.changes.iter().filter(|c| c.item.is_none()) {
            let g = areas.entry(area_of(c)).or_default();
            add(&mut g.delete, &mut g.changes, c);
        }
        for g in areas.values_mut() {
            for lines in g.delete.values_mut() {
                lines.sort();
            }
        }
        areas
    }

    /// The whole document of `cs`.
    pub fn of(cs: &Changeset) -> Document {
        Document {
            items: Document::entries(cs).collect(),
            areas: Document::areas(cs),
            ..Document::header(cs)
        }
    }

    /// The in-memory changeset (not yet validated). A line that cannot be read refuses it.
    pub fn into_changeset(self) -> Result<Changeset, String> {
        Builder::default().finish(self)
    }
}

/// Builds the in-memory changeset from entries read one at a time (a large plan is read in
/// pieces, so its whole text is never parsed at once).
#[derive(Default)]
pub struct Builder {
    items: BTreeMap<i64, ItemInfo>,
    changes: Vec<Change>,
}

impl Builder {
    /// Adds an item's changes.
    pub fn item(&mut self, e: ItemEntry) -> Result<(), String> {
        self.items.insert(e.id, ItemInfo { kind: e.kind, title: e.title, section: e.section });
        for (column, s) in e.set_url {
            self.changes.push(Change::set_url(
                Some(e.id),
                SetUrl { table: "metadata_items".into(), id: e.id, column, from: s.from, to: s.to },
            ));
        }
        lines_into(&e.delete, Some(e.id), &mut self.changes)?;
        self.changes.extend(e.changes.into_iter().map(|c| Change { item: Some(e.id), ..c }));
        Ok(())
    }

    /// Adds an area's changes.
    pub fn area(&mut self, g: Group) -> Result<(), String> {
        lines_into(&g.delete, None, &mut self.changes)?;
        self.changes.extend(g.changes.into_iter().map(|c| Change { item: None, ..c }));
        Ok(())
    }

    /// The changeset with `header`'s fields (and any items or areas it still holds).
    pub fn finish(mut self, header: Document) -> Result<Changeset, String> {
        let Document { format, tool, created_at, plex_dir, spec, summary, items, areas } = header;
        for e in items {
            self.item(e)?;
        }
        for g in areas.into_values() {
            self.area(g)?;
        }
        super::sort(&mut self.changes, &self.items);
        Ok(Changeset {
            format,
            tool,
            created_at,
            plex_dir,
            spec,
            summary,
            items: self.items,
            changes: self.changes,
        })
    }
}

fn lines_into(
    delete: &BTreeMap<String, Vec<String>>,
    item: Option<i64>,
    out: &mut Vec<Change>,
) -> Result<(), String> {
    for (folder, lines) in delete {
        for l in lines {
            out.push(Change { item, ..parse_line(folder, l)? });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_with_spaces_in_paths() {
        let b = "Metadata/TV Shows/a/bcdef0123456789abcdef0123456789abcdef01.bundle";
        for c in [
            Change::delete_file(
                None,
                DeleteFile {
                    path: format!("{b}/Uploads/posters/a b 1 2"),
                    size: 3,
                    mtime: -4,
                    shared: false,
                },
            ),
            Change::delete_file(
                None,
                DeleteFile {
                    path: format!("{b}/Contents/_stored/art/x"),
                    size: 3,
                    mtime: 4,
                    shared: true,
                },
            ),
            Change::delete_dir(
                None,
                DeleteDir {
                    path: format!("{b}/Contents/x y"),
                    files: 2,
                    bytes: 7,
                    digest: "a".repeat(64),
                },
            ),
            Change::delete_dir(
                None,
                DeleteDir { path: b.to_string(), files: 2, bytes: 7, digest: "b".repeat(64) },
            ),
            Change::delete_file(
                None,
                DeleteFile {
                    path: "Cache/PhotoTranscoder/ab/cd.jpg".into(),
                    size: 1,
                    mtime: 2,
                    shared: false,
                },
            ),
        ] {
            let op = c.op().unwrap();
            let path = match op {
                Op::DeleteFile(f) => &f.path,
                Op::DeleteDir(d) => &d.path,
                _ => unreachable!(),
            };
            let (folder, rel) = folder_of(path);
            let l = line(op, rel).unwrap();
            assert_eq!(parse_line(folder, &l).unwrap(), c, "{l}");
        }
        assert_eq!(folder_of(&format!("{b}/Contents/x")).0, b);
        assert_eq!(folder_of(b).0, "Metadata/TV Shows/a");
    }

    #[test]
    fn malformed_lines_are_refused() {
        for l in [
            "",
            "x",
            "x 1",
            "x one 2",
            "x/ 1 2",
            "/ 1 2 ".to_string().as_str(),
            "x/ 1 2",
            &format!(" 1 2 {}", "a".repeat(64)),
        ] {
            assert!(parse_line("Metadata/Movies/a", l).is_err(), "{l:?}");
        }
    }
}
