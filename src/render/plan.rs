//! The Terraform-style view of a changeset (`plan`, `show`) and the diff of two (`diff`).

use std::fmt::Write as _;
use std::io::Write as _;

use anstyle::{AnsiColor, Style};
use similar::{ChangeTag, TextDiff};

use super::{count, size, DIM, HEADER};
use crate::changeset::{Change, Changeset, Op, PlexCall};
use crate::plex::columns;

const CHANGE: Style = AnsiColor::Yellow.on_default();
const DELETE: Style = AnsiColor::Red.on_default();
const ADD: Style = AnsiColor::Green.on_default();
const PLEX: Style = AnsiColor::Cyan.on_default();

/// `! refresh movie 123 "Title"`.
fn plex_call(cs: &Changeset, p: &PlexCall) -> String {
    match cs.items.get(&p.id) {
        Some(info) => format!("! {} {} {} {:?}", p.action.as_str(), info.kind, p.id, info.title),
        None => format!("! {} item {}", p.action.as_str(), p.id),
    }
}

/// The whole changeset as a diff: a header per item, one line per change, the closing line.
pub fn show(cs: &Changeset) -> String {
    let mut out = Vec::new();
    show_to(&mut out, cs).expect("writing to memory cannot fail");
    String::from_utf8(out).expect("the diff is UTF-8")
}

/// [`show`], written to `w` as it is rendered (a large plan is never held in memory twice).
pub fn show_to(w: impl std::io::Write, cs: &Changeset) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::with_capacity(1 << 16, w);
    let mut current: Option<Option<i64>> = None;
    for change in &cs.changes {
        if current != Some(change.item) {
            if current.is_some() {
                writeln!(w)?;
            }
            current = Some(change.item);
            writeln!(w, "{HEADER}{}{HEADER:#}", header(cs, change.item))?;
        }
        let (style, line) = line(cs, change);
        writeln!(w, "  {style}{line}{style:#}")?;
    }
    if current.is_some() {
        writeln!(w)?;
    }
    writeln!(w, "{}", closing(cs))?;
    w.flush()
}

/// `# movie 123 "Heat" (section 1)`, or `# files outside any item`.
fn header(cs: &Changeset, item: Option<i64>) -> String {
    match item.and_then(|id| cs.items.get(&id).map(|i| (id, i))) {
        Some((id, info)) => {
            let section = info.section.map(|s| format!(" (section {s})")).unwrap_or_default();
            format!("# {} {id} {:?}{section}", info.kind, info.title)
        }
        None => "# files outside any item".to_string(),
    }
}

/// The style and text of one change.
fn line(cs: &Changeset, change: &Change) -> (Style, String) {
    match change.op() {
        Some(Op::SetUrl(s)) => (
            CHANGE,
            format!(
                "~ {}{}: {} -> {}",
                table_prefix(&s.table, s.id),
                columns::short_name(&s.column),
                s.from.as_deref().unwrap_or("(empty)"),
                s.to
            ),
        ),
        Some(Op::DeleteFile(f)) => (DELETE, format!("- {} ({})", f.path, size(f.size))),
        Some(Op::DeleteDir(d)) => {
            (DELETE, format!("- {}/ ({} files, {})", d.path, count(d.files), size(d.bytes)))
        }
        Some(Op::Upload(u)) => (
            ADD,
            format!(
                "+ upload {} ({}) -> {}, then {}{}",
                u.path,
                size(u.size),
                u.host,
                table_prefix(&u.table, u.id),
                columns::short_name(&u.column)
            ),
        ),
        Some(Op::PlexCall(p)) => (PLEX, plex_call(cs, p)),
        Some(Op::RefreshLink(r)) => (
            CHANGE,
            format!(
                "~ {}{}: refresh the {} link{}",
                table_prefix(&r.table, r.id),
                columns::short_name(&r.column),
                r.host,
                link_expiry(&r.from)
            ),
        ),
        None => (DIM, "? (malformed change)".to_string()),
    }
}

/// ` (expired 2026-01-02T03:04:05Z)` or ` (expires …)`, from a signed link's `ex` parameter.
fn link_expiry(url: &str) -> String {
    let Some(ex) = crate::apply::hosts::discord::link_expiry(url) else { return String::new() };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(ex.max(0) as u64);
    let at = humantime::format_rfc3339_seconds(at);
    if ex <= now {
        format!(" (expired {at})")
    } else {
        format!(" (expires {at})")
    }
}

/// Names the row when it is not the item's own `metadata_items` row.
fn table_prefix(table: &str, id: i64) -> String {
    match table {
        "metadata_items" => String::new(),
        "tags" => format!("tag {id} "),
        other => format!("{other} {id} "),
    }
}

/// `Plan: N files to delete (X), M URLs to change, K uploads.` or `No changes. …`.
pub fn closing(cs: &Changeset) -> String {
    let s = &cs.summary;
    let mut line = if cs.is_empty() {
        "No changes. The library is clean.".to_string()
    } else {
        format!(
            "Plan: {} to delete ({}), {} to change, {}.",
            plural(s.files, "file"),
            size(s.bytes),
            plural(s.urls, "URL"),
            plural(s.uploads, "upload")
        )
    };
    if s.plex_calls > 0 {
        line.pop();
        let _ = write!(line, ", {} (refresh/analyze).", plural(s.plex_calls, "Plex call"));
    }
    if s.link_refreshes > 0 {
        line.pop();
        let _ = write!(line, ", {} to refresh.", plural(s.link_refreshes, "hosted link"));
    }
    if s.kept_local > 0 {
        let _ = write!(
            line,
            "\n{DIM}{} kept local: no provider URL is known (uploads, unlisted files, frame grabs without an image host).{DIM:#}",
            plural(s.kept_local, "image column")
        );
    }
    line
}

fn plural(n: u64, what: &str) -> String {
    format!("{} {what}{}", count(n), if n == 1 { "" } else { "s" })
}

/// What changed between two changesets: one line per change, `+` for what `new` adds and `-`
/// for what it no longer has, then both closing lines.
pub fn diff(old: &Changeset, new: &Changeset, old_name: &str, new_name: &str) -> String {
    let (a, b) = (lines(old), lines(new));
    let text = TextDiff::from_lines(&a, &b);
    let mut out = String::new();
    let _ = writeln!(out, "{HEADER}--- {old_name}\n+++ {new_name}{HEADER:#}");
    let (mut added, mut removed) = (0u64, 0u64);
    for change in text.iter_all_changes() {
        let (style, sign) = match change.tag() {
            ChangeTag::Equal => continue,
            ChangeTag::Insert => {
                added += 1;
                (ADD, '+')
            }
            ChangeTag::Delete => {
                removed += 1;
                (DELETE, '-')
            }
        };
        let _ = write!(out, "{style}{sign} {}{style:#}", change.value());
    }
    let _ = writeln!(
        out,
        "\n{} added, {} gone, {} in both.",
        plural(added, "change"),
        plural(removed, "change"),
        count((b.lines().count() as u64).saturating_sub(added))
    );
    let _ = writeln!(out, "old: {}", closing(old).lines().next().unwrap_or_default());
    let _ = writeln!(out, "new: {}", closing(new).lines().next().unwrap_or_default());
    out
}

/// One self-contained line per change (item context included), for diffing.
fn lines(cs: &Changeset) -> String {
    let mut out = String::new();
    for change in &cs.changes {
        let (_, text) = line(cs, change);
        let item = header(cs, change.item);
        let _ = writeln!(out, "{text}  [{}]", item.trim_start_matches("# "));
    }
    out
}
