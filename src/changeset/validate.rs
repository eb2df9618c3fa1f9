//! Reading a changeset safely: format version, unknown fields, and every field's value.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::format2::{Builder, Document, Group, ItemEntry};
use super::{Changeset, Op, FORMAT};
use crate::plex::bundle::{self, Content};
use crate::plex::columns;

/// Why a changeset is refused (always whole: nothing of it is applied).
#[derive(Debug, thiserror::Error)]
pub enum ChangesetError {
    /// Not YAML/JSON, or not shaped like a changeset.
    #[error("the changeset cannot be read: {0}")]
    Syntax(String),
    /// A format this tidyplex does not read.
    #[error("{0}")]
    Format(String),
    /// A field this format version does not have.
    #[error("the changeset has an unknown field `{0}` (was it edited by hand or written by a newer tidyplex?)")]
    Unknown(String),
    /// A deletion line of format 2 that cannot be read.
    #[error("{0}")]
    Line(String),
    /// A field with a value that is not allowed.
    #[error("change {index}: {reason}")]
    Invalid {
        /// 1-based position in `changes`.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Deserialize)]
struct Header {
    format: Option<String>,
}

/// Parses `text` (YAML or JSON), checking the format version first. Unknown fields are errors
/// in format 1.0; a later 1.x may add fields, which are then ignored, but never a change kind
/// of its own (a change must still hold exactly one known operation).
pub(super) fn parse(text: &str) -> Result<Changeset, ChangesetError> {
    let json = text.trim_start().starts_with('{');
    // The `format:` line alone (parsing a large plan whole just for it would hold all of it).
    let format_line = (!json).then(|| text.lines().find(|l| l.starts_with("format:"))).flatten();
    let header: Header = match format_line {
        Some(line) => from_yaml(line, None)?,
        None if json => from_json(text, None)?,
        None => from_yaml(text, None)?,
    };
    let format = header.format.ok_or_else(|| {
        ChangesetError::Format(
            "the file has no `format:` line; it is not a tidyplex changeset".into(),
        )
    })?;
    let (major, minor) = version(&format)?;
    let mut unknown = Vec::new();
    let cs: Changeset = if major == 1 {
        if json {
            from_json(text, Some(&mut unknown))?
        } else {
            from_yaml(text, Some(&mut unknown))?
        }
    } else {
        if json {
            let doc: Document = from_json(text, Some(&mut unknown))?;
            doc.into_changeset().map_err(ChangesetError::Line)?
        } else {
            format2_yaml(text, &mut unknown)?
        }
    };
    if minor == 0 {
        if let Some(field) = unknown.into_iter().next() {
            return Err(ChangesetError::Unknown(field));
        }
    }
    cs.validate()?;
    Ok(cs)
}

/// Reads format-2 YAML in pieces: the top-level fields, each item entry, the areas. A YAML
/// parser holds a whole document's events in memory, several times the text of a large plan;
/// one item at a time it holds only that item's.
fn format2_yaml(text: &str, unknown: &mut Vec<String>) -> Result<Changeset, ChangesetError> {
    let mut header = String::new();
    let mut builder = Builder::default();
    for (key, body) in top_level(text)? {
        let block =
            body.split_once('\n').is_some_and(|(first, _)| first.trim_end() == format!("{key}:"));
        match key {
            "items" if block => {
                for entry in entries(body)? {
                    let list: Vec<ItemEntry> = from_yaml(entry, Some(unknown))?;
                    for e in list {
                        builder.item(e).map_err(ChangesetError::Line)?;
                    }
                }
            }
            "areas" if block => {
                #[derive(Deserialize)]
                struct Areas {
                    areas: std::collections::BTreeMap<String, Group>,
                }
                let a: Areas = from_yaml(body, Some(unknown))?;
                for g in a.areas.into_values() {
                    builder.area(g).map_err(ChangesetError::Line)?;
                }
            }
            _ => header.push_str(body),
        }
    }
    let doc: Document = from_yaml(&header, Some(unknown))?;
    builder.finish(doc).map_err(ChangesetError::Line)
}

/// The top-level sections of a YAML mapping written in block style: each key line at column 0
/// and the lines below it, as (key, text). Lines before the first key belong to the first
/// section. A second document (`---`, `...`) is refused.
fn top_level(text: &str) -> Result<Vec<(&str, &str)>, ChangesetError> {
    let mut starts: Vec<usize> = Vec::new();
    let mut offset = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if n > 0 && (line.starts_with("---") || line.starts_with("...")) {
            return Err(ChangesetError::Syntax("a changeset is a single YAML document".into()));
        }
        let key = line.starts_with(|c: char| !c.is_whitespace() && c != '-' && c != '#');
        if key && !line.starts_with("---") {
            starts.push(offset);
        }
        offset += line.len();
    }
    if starts.first() != Some(&0) {
        starts.insert(0, 0);
    }
    let mut out: Vec<(&str, &str)> = Vec::with_capacity(starts.len());
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(text.len());
        let body = &text[start..end];
        let key = body.split([':', '\n']).next().unwrap_or("").trim();
        if !key.is_empty() && out.iter().any(|(k, _)| *k == key) {
            return Err(ChangesetError::Syntax(format!("the key `{key}` appears twice")));
        }
        out.push((key, body));
    }
    Ok(out)
}

/// The entries of a block sequence at column 0 below a key line: each from its `-` line to the
/// next.
fn entries(body: &str) -> Result<Vec<&str>, ChangesetError> {
    let mut starts = Vec::new();
    let mut offset = 0;
    for (n, line) in body.split_inclusive('\n').enumerate() {
        if line.starts_with('-') {
            starts.push(offset);
        } else if n > 0 && starts.is_empty() {
            let t = line.trim();
            if !t.is_empty() && !t.starts_with('#') {
                return Err(ChangesetError::Syntax(format!(
                    "`{t}` under `items:` is not an item entry"
                )));
            }
        }
        offset += line.len();
    }
    let ends: Vec<usize> = starts.iter().skip(1).copied().chain([body.len()]).collect();
    Ok(starts.into_iter().zip(ends).map(|(s, e)| &body[s..e]).collect())
}

fn from_yaml<T: DeserializeOwned>(
    text: &str,
    unknown: Option<&mut Vec<String>>,
) -> Result<T, ChangesetError> {
    let de = yaml_serde::Deserializer::from_str(text);
    deserialize(de, unknown).map_err(|e| ChangesetError::Syntax(e.to_string()))
}

fn from_json<T: DeserializeOwned>(
    text: &str,
    unknown: Option<&mut Vec<String>>,
) -> Result<T, ChangesetError> {
    let mut de = serde_json::Deserializer::from_str(text);
    deserialize(&mut de, unknown).map_err(|e| ChangesetError::Syntax(e.to_string()))
}

fn deserialize<'de, D: serde::Deserializer<'de>, T: DeserializeOwned>(
    de: D,
    unknown: Option<&mut Vec<String>>,
) -> Result<T, D::Error> {
    match unknown {
        Some(list) => serde_ignored::deserialize(de, |path| list.push(path.to_string())),
        None => T::deserialize(de),
    }
}

/// The (major, minor) version of `tidyplex-changeset/1[.N]` or `/2[.N]`; anything else is an
/// error.
fn version(format: &str) -> Result<(u32, u32), ChangesetError> {
    let version = format.strip_prefix("tidyplex-changeset/").ok_or_else(|| {
        ChangesetError::Format(format!("`{format}` is not a tidyplex changeset format"))
    })?;
    let (major, minor) = version.split_once('.').unwrap_or((version, "0"));
    match (major.parse::<u32>(), minor.parse::<u32>()) {
        (Ok(major @ 1..=2), Ok(minor)) => Ok((major, minor)),
        (Ok(major), Ok(_)) if major > 2 => Err(ChangesetError::Format(format!(
            "the changeset is {format}, newer than this tidyplex reads ({FORMAT}); upgrade tidyplex"
        ))),
        _ => Err(ChangesetError::Format(format!(
            "`{format}` is not a changeset format this tidyplex reads ({FORMAT})"
        ))),
    }
}

impl Changeset {
    /// Checks every change: exactly one operation, safe paths, image columns, http(s) targets,
    /// well-formed digests, and item references that exist.
    pub fn validate(&self) -> Result<(), ChangesetError> {
        version(&self.format)?;
        for (index, change) in self.changes.iter().enumerate() {
            let invalid = |reason: String| ChangesetError::Invalid { index: index + 1, reason };
            let op = change.op().ok_or_else(|| {
                invalid(
                    "a change must hold exactly one of set_url, delete_file, delete_dir, upload, plex_call, refresh_link"
                        .into(),
                )
            })?;
            if let Some(item) = change.item {
                if !self.items.contains_key(&item) {
                    return Err(invalid(format!("item {item} is not listed under `items`")));
                }
            }
            match op {
                Op::SetUrl(s) => {
                    check_column(&s.table, &s.column).map_err(invalid)?;
                    check_http(&s.to).map_err(invalid)?;
                }
                Op::DeleteFile(f) => {
                    check_path(&f.path).map_err(invalid)?;
                    check_deletable_file(&f.path).map_err(invalid)?;
                }
                Op::DeleteDir(d) => {
                    check_path(&d.path).map_err(invalid)?;
                    check_deletable_dir(&d.path).map_err(invalid)?;
                    check_hex(&d.digest, "digest").map_err(invalid)?;
                }
                Op::Upload(u) => {
                    check_path(&u.path).map_err(invalid)?;
                    check_column(&u.table, &u.column).map_err(invalid)?;
                    check_hex(&u.blake3, "blake3").map_err(invalid)?;
                    check_host(&u.host).map_err(invalid)?;
                }
                Op::RefreshLink(r) => {
                    check_column(&r.table, &r.column).map_err(invalid)?;
                    check_http(&r.from).map_err(invalid)?;
                    check_host(&r.host).map_err(invalid)?;
                    check_snowflake(&r.message_id, "message_id").map_err(invalid)?;
                    check_snowflake(&r.attachment_id, "attachment_id").map_err(invalid)?;
                }
                Op::PlexCall(p) => {
                    check_column("metadata_items", &p.column).map_err(invalid)?;
                    if p.id <= 0 {
                        return Err(invalid(format!("{} is not an item id", p.id)));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The roots a changeset may delete inside (never the roots themselves).
pub const CLEANABLE_ROOTS: [&str; 3] = ["Metadata/", "Media/", "Cache/PhotoTranscoder/"];

/// A path a change may name: relative, `/`-separated plain names, inside `Metadata/`, `Media/`
/// or `Cache/PhotoTranscoder/` (the PhotoTranscoder folder, wherever it really is).
pub fn check_path(path: &str) -> Result<(), String> {
    if path.starts_with('/') || path.contains('\\') || path.as_bytes().get(1) == Some(&b':') {
        return Err(format!("`{path}` is not a relative path"));
    }
    if path.split('/').any(|p| p.is_empty() || p == "." || p == ".." || p.contains('\0')) {
        return Err(format!("`{path}` has an empty, `.` or `..` part"));
    }
    if !CLEANABLE_ROOTS.iter().any(|root| path.starts_with(root)) {
        return Err(format!(
            "`{path}` is outside the cleanable folders (Metadata/, Media/, Cache/PhotoTranscoder/)"
        ));
    }
    Ok(())
}

/// A file a `delete_file` may name: a cache entry or an image ([`bundle::content`]).
fn check_deletable_file(path: &str) -> Result<(), String> {
    if path.starts_with("Cache/PhotoTranscoder/") || bundle::content(path) == Content::Image {
        return Ok(());
    }
    Err(format!(
        "`{path}` is not a file tidyplex deletes (only images in a bundle's image folders, Media analysis images and cache entries)"
    ))
}

/// A folder a `delete_dir` may name: a cache folder, a whole bundle or a folder inside one.
fn check_deletable_dir(path: &str) -> Result<(), String> {
    if path.starts_with("Cache/PhotoTranscoder/") || bundle::bundle_of(path).is_some() {
        return Ok(());
    }
    Err(format!("`{path}` is not a bundle, a folder inside one or a cache folder"))
}

fn check_column(table: &str, column: &str) -> Result<(), String> {
    if columns::is_image_column(table, column) {
        Ok(())
    } else {
        Err(format!("`{table}.{column}` is not an image column"))
    }
}

/// Whether `url` is an http(s) URL a changeset may write (no whitespace or control characters).
pub fn is_writable_url(url: &str) -> bool {
    check_http(url).is_ok()
}

fn check_http(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("`{url}` is not an http(s) URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{url}` is not a valid http(s) URL"));
    }
    Ok(())
}

fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() || host.contains("://") || host.contains('/') {
        return Err(format!("`{host}` is not an image host name"));
    }
    Ok(())
}

fn check_snowflake(value: &str, what: &str) -> Result<(), String> {
    if !value.is_empty() && value.len() <= 20 && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!("{what} `{value}` is not a numeric id"))
    }
}

fn check_hex(value: &str, what: &str) -> Result<(), String> {
    if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(format!("{what} `{value}` is not 64 hex digits"))
    }
}
