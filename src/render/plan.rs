//! The Terraform-style view of a changeset (`plan`, `show`) and the diff of two (`diff`).

use std::fmt::Write as _;
use std::io::Write as _;

use anstyle::{AnsiColor, Style};

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
    show_items_to(&mut w, cs)?;
    writeln!(w, "{}", closing(cs))?;
    w.flush()
}

/// How many lines [`show`] prints.
pub fn line_count(cs: &Changeset) -> usize {
    let groups = cs.changes.windows(2).filter(|w| w[0].item != w[1].item).count()
        + usize::from(!cs.changes.is_empty());
    cs.changes.len() + 2 * groups + closing(cs).lines().count()
}

/// The per-item part of [`show`]: a header per item, one line per change, no closing line.
pub fn show_items_to(w: impl std::io::Write, cs: &Changeset) -> std::io::Result<()> {
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
    let Some(ex) = crate::plex::hosted::link_expiry(url) else { return String::new() };
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

/// What changed between two changesets, grouped by item: `+` for what `new` adds, `-` for what
/// it no longer has (a change whose precondition moved shows as both), then both closing
/// lines. Both are walked in their sorted order, one item at a time.
pub fn diff(old: &Changeset, new: &Changeset, old_name: &str, new_name: &str) -> String {
    let mut out = Vec::new();
    diff_to(&mut out, old, new, old_name, new_name).expect("writing to memory cannot fail");
    String::from_utf8(out).expect("the diff is UTF-8")
}

/// [`diff`], written to `w` as it is found.
pub fn diff_to(
    w: impl std::io::Write,
    old: &Changeset,
    new: &Changeset,
    old_name: &str,
    new_name: &str,
) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::with_capacity(1 << 16, w);
    writeln!(w, "{HEADER}--- {old_name}\n+++ {new_name}{HEADER:#}")?;
    let (mut a, mut b) = (groups(old).peekable(), groups(new).peekable());
    let (mut added, mut removed, mut same) = (0u64, 0u64, 0u64);
    loop {
        let (ga, gb) = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(x), Some(y)) if x.0 == y.0 => (a.next(), b.next()),
            (Some(x), Some(y)) if x.0 < y.0 => (a.next(), None),
            (Some(_), Some(_)) | (None, Some(_)) => (None, b.next()),
            (Some(_), None) => (a.next(), None),
        };
        let key = ga.as_ref().or(gb.as_ref()).map(|g| g.0).expect("one side has a group");
        let mut lines_a: Vec<(Style, String)> =
            ga.map(|g| g.1.iter().map(|c| line(old, c)).collect()).unwrap_or_default();
        let mut lines_b: Vec<(Style, String)> =
            gb.map(|g| g.1.iter().map(|c| line(new, c)).collect()).unwrap_or_default();
        lines_a.sort_by(|x, y| x.1.cmp(&y.1));
        lines_b.sort_by(|x, y| x.1.cmp(&y.1));
        let mut shown_header = false;
        let (mut i, mut j) = (0, 0);
        while i < lines_a.len() || j < lines_b.len() {
            let order = match (lines_a.get(i), lines_b.get(j)) {
                (Some(x), Some(y)) => x.1.cmp(&y.1),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            let (sign, text) = match order {
                std::cmp::Ordering::Equal => {
                    same += 1;
                    i += 1;
                    j += 1;
                    continue;
                }
                std::cmp::Ordering::Less => {
                    removed += 1;
                    i += 1;
                    ('-', &lines_a[i - 1].1)
                }
                std::cmp::Ordering::Greater => {
                    added += 1;
                    j += 1;
                    ('+', &lines_b[j - 1].1)
                }
            };
            if !shown_header {
                let cs = if new.items.contains_key(&key.1.unwrap_or(i64::MIN)) { new } else { old };
                writeln!(w, "\n{HEADER}{}{HEADER:#}", header(cs, key.1))?;
                shown_header = true;
            }
            let style = if sign == '+' { ADD } else { DELETE };
            writeln!(w, "{style}{sign} {text}{style:#}")?;
        }
    }
    writeln!(
        w,
        "\n{} added, {} gone, {} in both.",
        plural(added, "change"),
        plural(removed, "change"),
        count(same)
    )?;
    writeln!(w, "old: {}", closing(old).lines().next().unwrap_or_default())?;
    writeln!(w, "new: {}", closing(new).lines().next().unwrap_or_default())?;
    w.flush()
}

/// The key a changeset is sorted by: (section, item), no section last.
type GroupKey = (i64, Option<i64>);

/// The changes of `cs` in runs of one item each, with their sort key.
fn groups(cs: &Changeset) -> impl Iterator<Item = (GroupKey, &[Change])> {
    let key = |c: &Change| {
        let section = c.item.and_then(|i| cs.items.get(&i)).and_then(|i| i.section);
        (section.unwrap_or(i64::MAX), c.item)
    };
    let mut rest = &cs.changes[..];
    std::iter::from_fn(move || {
        let first = rest.first()?;
        let k = key(first);
        let n = rest.iter().take_while(|c| key(c) == k).count();
        let (run, tail) = rest.split_at(n);
        rest = tail;
        Some((k, run))
    })
}
