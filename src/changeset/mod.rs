//! The changeset: what `plan` writes and `apply` executes (design.md §3).
//!
//! Self-describing (format version, tool, creation time, plex dir, the resolved spec, a summary),
//! deterministic (sorted; only `created_at` differs between two plans of the same state) and
//! compact (paths relative to the plex dir, whole folders as one `delete_dir`). Every change
//! carries the precondition it was planned under. Reading validates everything and refuses a
//! malformed changeset whole.

pub mod format2;
pub mod policy;
mod validate;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use validate::{check_path, is_writable_url, ChangesetError, CLEANABLE_ROOTS};

/// The format this tidyplex writes ([`format2`]); a reader accepts `tidyplex-changeset/1[.minor]`
/// and `tidyplex-changeset/2[.minor]`.
pub const FORMAT: &str = "tidyplex-changeset/2";

/// The first format: a flat list of changes, each with its full path.
pub const FORMAT_1: &str = "tidyplex-changeset/1";

/// A plan, ready to review and apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Changeset {
    /// `tidyplex-changeset/1`; a newer major version is refused, minor additions are ignored.
    pub format: String,
    /// The tidyplex that wrote it (`tidyplex 0.1.0`).
    pub tool: String,
    /// When it was planned (RFC 3339, UTC).
    pub created_at: String,
    /// The Plex data folder it was planned for; apply refuses another one.
    pub plex_dir: String,
    /// What was asked for.
    pub spec: PlanSpec,
    /// Totals over `changes`.
    pub summary: Summary,
    /// Items the changes refer to, by id: shown in the rendered diff.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub items: BTreeMap<i64, ItemInfo>,
    /// The changes, in a deterministic order (section, item, path).
    pub changes: Vec<Change>,
}

/// The resolved request a changeset was planned from (never a secret: hosts are named, their
/// credentials are read from the environment at apply time).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct PlanSpec {
    /// Library sections and the stage each was planned at.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sections: Vec<SectionStage>,
    /// Bundle cleanup step (1–3), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundles: Option<u8>,
    /// Sections whose live bundles step 3 covers (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bundle_sections: Vec<i64>,
    /// PhotoTranscoder policy (`all`, `max-size=SIZE`, `older-than=AGE`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<String>,
    /// Name of the image host for stage 4 uploads, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_host: Option<String>,
    /// Whether `plex_call` changes were planned for items that need Plex's attention.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repair: bool,
}

/// One section at one stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SectionStage {
    /// `library_sections.id`.
    pub id: i64,
    /// Its name when planned.
    pub name: String,
    /// Cleanup stage, 1–4 (cumulative).
    pub stage: u8,
}

/// Totals, for the closing line of the rendered plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Summary {
    /// Files deleted (each `delete_file`, plus the files inside each `delete_dir`).
    pub files: u64,
    /// Bytes freed by those deletions.
    pub bytes: u64,
    /// URL columns changed.
    pub urls: u64,
    /// Uploads to the image host.
    pub uploads: u64,
    /// Local columns left as they are because no provider URL is known.
    #[serde(default)]
    pub kept_local: u64,
    /// `kept_local` by section id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kept_local_by_section: BTreeMap<i64, u64>,
    /// Calls asking Plex to refresh or analyze an item (`plex_call`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub plex_calls: u64,
    /// Expiring hosted links to refresh (`refresh_link` changes).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub link_refreshes: u64,
}

impl Summary {
    /// Counts one more change (a folder's files and bytes, a file's freed bytes).
    pub fn add(&mut self, c: &Change) {
        match c.op() {
            Some(Op::SetUrl(_)) => self.urls += 1,
            Some(Op::Upload(_)) => self.uploads += 1,
            Some(Op::RefreshLink(_)) => self.link_refreshes += 1,
            Some(Op::DeleteFile(f)) => {
                self.files += 1;
                self.bytes += f.freed();
            }
            Some(Op::DeleteDir(d)) => {
                self.files += d.files;
                self.bytes += d.bytes;
            }
            Some(Op::PlexCall(_)) => self.plex_calls += 1,
            None => {}
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a rendered diff says about an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ItemInfo {
    /// movie, show, season, episode, artist, album, collection, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Title.
    pub title: String,
    /// Section id, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<i64>,
}

/// One change: exactly one of `set_url`, `delete_file`, `delete_dir`, `upload`, `plex_call`,
/// `refresh_link`,
/// with the item it concerns beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
#[schemars(extend("oneOf" = [
    {"required": ["set_url"]},
    {"required": ["delete_file"]},
    {"required": ["delete_dir"]},
    {"required": ["upload"]},
    {"required": ["plex_call"]},
    {"required": ["refresh_link"]}
]))]
pub struct Change {
    /// The item (an id of `items`) this change belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<i64>,
    /// Write a URL column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_url: Option<Box<SetUrl>>,
    /// Delete one file (or symlink).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_file: Option<Box<DeleteFile>>,
    /// Delete a whole folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_dir: Option<Box<DeleteDir>>,
    /// Upload a file to the image host and point a column at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<Box<Upload>>,
    /// Ask Plex to refresh or analyze an item (after the DB writes and deletions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plex_call: Option<Box<PlexCall>>,
    /// Fetch a fresh signed link for an expiring hosted image and point the column at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_link: Option<Box<RefreshLink>>,
}

/// `UPDATE table SET column = to WHERE id = id AND column = from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SetUrl {
    /// `metadata_items`, `tags` or `library_sections`.
    pub table: String,
    /// Row id.
    pub id: i64,
    /// An image column of `table`.
    pub column: String,
    /// The value when planned (precondition).
    pub from: Option<String>,
    /// The new value: an http(s) URL.
    #[schemars(regex(pattern = r"^[hH][tT][tT][pP][sS]?://[^/?#\s]+"))]
    pub to: String,
}

/// Delete a file, if it still has this size and mtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DeleteFile {
    /// Relative to the plex dir.
    #[schemars(regex(pattern = r"^(Metadata|Media|Cache/PhotoTranscoder)/[^\\]+$"))]
    pub path: String,
    /// Bytes (0 for a symlink).
    pub size: u64,
    /// Modification time, seconds since the epoch (of the link itself for a symlink).
    pub mtime: i64,
    /// Another name of the same file (a hard link) carries its bytes, or stays: deleting this
    /// name frees nothing by itself.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

impl DeleteFile {
    /// The bytes deleting it frees: its size, or 0 for a [`DeleteFile::shared`] name.
    pub fn freed(&self) -> u64 {
        if self.shared {
            0
        } else {
            self.size
        }
    }
}

/// Delete a folder, if its listing still has this digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DeleteDir {
    /// Relative to the plex dir.
    #[schemars(regex(pattern = r"^(Metadata|Media|Cache/PhotoTranscoder)/[^\\]+$"))]
    pub path: String,
    /// Files (non-directories) inside.
    pub files: u64,
    /// Bytes deleting it frees: of the regular files inside, each file once however many
    /// names (hard links) it has, and none for a file whose other names stay.
    pub bytes: u64,
    /// blake3 of the sorted listing (see [`digest`]).
    #[schemars(regex(pattern = r"^[0-9a-fA-F]{64}$"))]
    pub digest: String,
}

/// Upload a file and point a column at the hosted copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Upload {
    /// The file, relative to the plex dir.
    #[schemars(regex(pattern = r"^(Metadata|Media|Cache/PhotoTranscoder)/[^\\]+$"))]
    pub path: String,
    /// Its size.
    pub size: u64,
    /// blake3 of its bytes (hex).
    #[schemars(regex(pattern = r"^[0-9a-fA-F]{64}$"))]
    pub blake3: String,
    /// `metadata_items`, `tags` or `library_sections`.
    pub table: String,
    /// Row id.
    pub id: i64,
    /// The column to point at the upload.
    pub column: String,
    /// The column's value when planned (precondition).
    pub from: Option<String>,
    /// Name of the image host.
    pub host: String,
}

/// `PUT /library/metadata/{id}/{action}` on the Plex server, if the column still holds `from`:
/// for an item whose selected image is missing or broken and has no provider URL (refresh), or
/// whose `media://` frame grab is missing (analyze).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct PlexCall {
    /// What to ask Plex for.
    pub action: PlexAction,
    /// `metadata_items.id`.
    pub id: i64,
    /// The image column of `metadata_items` found missing or broken.
    pub column: String,
    /// The column's value when planned (precondition).
    pub from: String,
}

/// What a [`PlexCall`] asks Plex to do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PlexAction {
    /// Re-download the item's metadata and images from its agent.
    Refresh,
    /// Re-analyze the item's media (re-creates frame grabs).
    Analyze,
}

impl PlexAction {
    /// `refresh` or `analyze` (also the last segment of the endpoint).
    pub fn as_str(self) -> &'static str {
        match self {
            PlexAction::Refresh => "refresh",
            PlexAction::Analyze => "analyze",
        }
    }
}

/// Replace an expiring signed link (a Discord attachment URL) by a fresh one: apply asks the
/// host for the message again and writes the attachment's new URL, if the column still holds
/// `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RefreshLink {
    /// `metadata_items`, `tags` or `library_sections`.
    pub table: String,
    /// Row id.
    pub id: i64,
    /// The column holding the link.
    pub column: String,
    /// The expiring link it holds now (precondition).
    pub from: String,
    /// Name of the image host (`discord`).
    pub host: String,
    /// The webhook message carrying the attachment (a Discord snowflake).
    #[schemars(regex(pattern = r"^[0-9]{1,20}$"))]
    pub message_id: String,
    /// The attachment (a Discord snowflake).
    #[schemars(regex(pattern = r"^[0-9]{1,20}$"))]
    pub attachment_id: String,
}

/// The one operation of a [`Change`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    /// Write a URL column.
    SetUrl(&'a SetUrl),
    /// Delete a file.
    DeleteFile(&'a DeleteFile),
    /// Delete a folder.
    DeleteDir(&'a DeleteDir),
    /// Upload and point a column at it.
    Upload(&'a Upload),
    /// Ask Plex to refresh or analyze an item.
    PlexCall(&'a PlexCall),
    /// Refresh an expiring hosted link.
    RefreshLink(&'a RefreshLink),
}

impl Change {
    /// A change with no item context.
    fn with(item: Option<i64>) -> Change {
        Change {
            item,
            set_url: None,
            delete_file: None,
            delete_dir: None,
            upload: None,
            plex_call: None,
            refresh_link: None,
        }
    }

    /// A `set_url` change.
    pub fn set_url(item: Option<i64>, op: SetUrl) -> Change {
        Change { set_url: Some(Box::new(op)), ..Change::with(item) }
    }

    /// A `delete_file` change.
    pub fn delete_file(item: Option<i64>, op: DeleteFile) -> Change {
        Change { delete_file: Some(Box::new(op)), ..Change::with(item) }
    }

    /// A `delete_dir` change.
    pub fn delete_dir(item: Option<i64>, op: DeleteDir) -> Change {
        Change { delete_dir: Some(Box::new(op)), ..Change::with(item) }
    }

    /// An `upload` change.
    pub fn upload(item: Option<i64>, op: Upload) -> Change {
        Change { upload: Some(Box::new(op)), ..Change::with(item) }
    }

    /// A `plex_call` change.
    pub fn plex_call(item: Option<i64>, op: PlexCall) -> Change {
        Change { plex_call: Some(Box::new(op)), ..Change::with(item) }
    }

    /// A `refresh_link` change.
    pub fn refresh_link(item: Option<i64>, op: RefreshLink) -> Change {
        Change { refresh_link: Some(Box::new(op)), ..Change::with(item) }
    }

    /// The operation, when there is exactly one.
    pub fn op(&self) -> Option<Op<'_>> {
        let ops = [
            self.set_url.as_deref().map(Op::SetUrl),
            self.delete_file.as_deref().map(Op::DeleteFile),
            self.delete_dir.as_deref().map(Op::DeleteDir),
            self.upload.as_deref().map(Op::Upload),
            self.plex_call.as_deref().map(Op::PlexCall),
            self.refresh_link.as_deref().map(Op::RefreshLink),
        ];
        let mut present = ops.into_iter().flatten();
        match (present.next(), present.next()) {
            (Some(op), None) => Some(op),
            _ => None,
        }
    }

    /// The order key: URL writes and uploads before deletions, Plex calls last, then by path or
    /// column.
    fn sort_key(&self) -> (u8, &str, &str, i64) {
        match self.op() {
            Some(Op::SetUrl(s)) => (0, &s.table, &s.column, s.id),
            Some(Op::Upload(u)) => (1, &u.table, &u.column, u.id),
            Some(Op::RefreshLink(r)) => (1, &r.table, &r.column, r.id),
            Some(Op::DeleteDir(d)) => (2, &d.path, "", 0),
            Some(Op::DeleteFile(f)) => (2, &f.path, "", 0),
            Some(Op::PlexCall(p)) => (3, p.action.as_str(), &p.column, p.id),
            None => (9, "", "", 0),
        }
    }
}

fn to_yaml_writer(w: &mut impl std::io::Write, value: &impl Serialize) -> std::io::Result<()> {
    yaml_serde::to_writer(w, value).map_err(std::io::Error::other)
}

/// Sorts changes by section, item, then kind and path (URL writes first), without duplicates.
pub(crate) fn sort(changes: &mut Vec<Change>, items: &BTreeMap<i64, ItemInfo>) {
    let section = |c: &Change| c.item.and_then(|i| items.get(&i)).and_then(|i| i.section);
    changes.sort_by(|a, b| {
        let key = |c: &Change| (section(c).unwrap_or(i64::MAX), c.item);
        key(a).cmp(&key(b)).then_with(|| a.sort_key().cmp(&b.sort_key()))
    });
    changes.dedup();
}

impl Changeset {
    /// A changeset for `plex_dir`, created now, with `changes` sorted and summed up.
    pub fn new(
        plex_dir: &str,
        spec: PlanSpec,
        items: BTreeMap<i64, ItemInfo>,
        mut changes: Vec<Change>,
        kept_local: BTreeMap<i64, u64>,
    ) -> Changeset {
        sort(&mut changes, &items);
        let used: std::collections::BTreeSet<i64> = changes.iter().filter_map(|c| c.item).collect();
        let items = items.into_iter().filter(|(id, _)| used.contains(id)).collect();
        let mut summary = Summary {
            kept_local: kept_local.values().sum(),
            kept_local_by_section: kept_local,
            ..Summary::default()
        };
        for c in &changes {
            summary.add(c);
        }
        Changeset {
            format: FORMAT.to_string(),
            tool: format!("tidyplex {}", env!("CARGO_PKG_VERSION")),
            created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            plex_dir: plex_dir.to_string(),
            spec,
            summary,
            items,
            changes,
        }
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// YAML text (format 2).
    pub fn to_yaml(&self) -> String {
        let mut out = Vec::new();
        self.write(&mut out, false).expect("writing to memory cannot fail");
        String::from_utf8(out).expect("YAML is UTF-8")
    }

    /// Pretty JSON text (format 2).
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        self.write(&mut out, true).expect("writing to memory cannot fail");
        String::from_utf8(out).expect("JSON is UTF-8")
    }

    /// YAML text in format 1 (what tidyplex 0.1 wrote), for reading old files back in tests.
    pub fn to_format1_yaml(&self) -> String {
        let cs = Changeset { format: FORMAT_1.to_string(), ..self.clone() };
        yaml_serde::to_string(&cs).expect("a changeset always serializes")
    }

    /// Writes format 2, YAML or pretty JSON, to `w`. YAML is written one item at a time, so
    /// the text of a whole plan is never built in memory.
    pub fn write(&self, w: impl std::io::Write, json: bool) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut w = std::io::BufWriter::with_capacity(1 << 16, w);
        if json {
            serde_json::to_writer_pretty(&mut w, &format2::Document::of(self))?;
            w.write_all(b"\n")?;
            return w.flush();
        }
        to_yaml_writer(&mut w, &format2::Document::header(self))?;
        let mut first = true;
        for entry in format2::Document::entries(self) {
            if first {
                w.write_all(b"items:\n")?;
                first = false;
            }
            to_yaml_writer(&mut w, &[entry])?;
        }
        let areas = format2::Document::areas(self);
        if !areas.is_empty() {
            w.write_all(b"areas:\n")?;
            let text = yaml_serde::to_string(&areas).map_err(std::io::Error::other)?;
            for l in text.lines() {
                writeln!(w, "  {l}")?;
            }
        }
        w.flush()
    }

    /// Reads a changeset from YAML or JSON text and validates every field.
    pub fn parse(text: &str) -> Result<Changeset, ChangesetError> {
        validate::parse(text)
    }
}

/// blake3 (hex) of a folder listing: for each non-directory entry, sorted by relative path,
/// `path \0 kind \0 size \n` (kind `f` for a file, `l` for a symlink with size 0).
pub fn digest<'a>(listing: impl IntoIterator<Item = (&'a str, bool, u64)>) -> String {
    let mut entries: Vec<(&str, bool, u64)> = listing.into_iter().collect();
    entries.sort_unstable();
    let mut h = blake3::Hasher::new();
    for (path, is_link, size) in entries {
        h.update(path.as_bytes());
        h.update(if is_link { b"\0l\0" } else { b"\0f\0" });
        h.update(size.to_string().as_bytes());
        h.update(b"\n");
    }
    h.finalize().to_hex().to_string()
}

#[cfg(test)]
mod tests;
