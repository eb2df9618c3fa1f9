//! The one-screen summary of a changeset (`show --summary`, the end of `plan`): per section,
//! per area, the items that free most, and the closing line.

use std::collections::BTreeMap;

use super::plan::closing;
use super::{count, size, Align, Table, DIM};
use crate::changeset::{format2, Change, Changeset, Op, Summary};

/// How many items the "frees most" list shows.
const TOP: usize = 10;

/// What one group of changes adds up to.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Items (counted by the caller).
    pub items: u64,
    /// Its changes, summed as a changeset's are.
    pub sum: Summary,
}

impl Tally {
    /// Counts one more change.
    pub fn add(&mut self, change: &Change) {
        self.sum.add(change);
    }
}

/// The summary text.
pub fn summary(cs: &Changeset) -> String {
    let mut sections: BTreeMap<Option<i64>, Tally> = BTreeMap::new();
    let mut areas: BTreeMap<String, Tally> = BTreeMap::new();
    let mut per_item: BTreeMap<i64, Tally> = BTreeMap::new();
    for c in &cs.changes {
        match c.item {
            Some(id) => {
                let section = cs.items.get(&id).and_then(|i| i.section);
                sections.entry(section).or_default().add(c);
                per_item.entry(id).or_default().add(c);
            }
            None => areas.entry(area(c)).or_default().add(c),
        }
    }
    for (id, _) in per_item.iter() {
        let section = cs.items.get(id).and_then(|i| i.section);
        sections.entry(section).or_default().items += 1;
    }
    let names: BTreeMap<i64, &str> =
        cs.spec.sections.iter().map(|s| (s.id, s.name.as_str())).collect();

    let mut out = String::new();
    if !sections.is_empty() {
        let mut t = Table::new(&[
            ("SECTION", Align::Left),
            ("ITEMS", Align::Right),
            ("FILES", Align::Right),
            ("FREES", Align::Right),
            ("URLS", Align::Right),
            ("KEPT LOCAL", Align::Right),
        ]);
        for (section, tally) in &sections {
            let name = match section {
                Some(id) => format!("{id} {}", names.get(id).copied().unwrap_or("")),
                None => "(no section)".into(),
            };
            let kept = section.and_then(|s| cs.summary.kept_local_by_section.get(&s)).copied();
            t.row(vec![
                name.trim_end().to_string(),
                count(tally.items),
                count(tally.sum.files),
                size(tally.sum.bytes),
                count(tally.sum.urls),
                count(kept.unwrap_or(0)),
            ]);
        }
        out.push_str(&t.render(0));
    }
    if !areas.is_empty() {
        out.push('\n');
        let mut t = Table::new(&[
            ("OUTSIDE ANY ITEM", Align::Left),
            ("FILES", Align::Right),
            ("FREES", Align::Right),
        ]);
        for (area, tally) in &areas {
            t.row(vec![area.clone(), count(tally.sum.files), size(tally.sum.bytes)]);
        }
        out.push_str(&t.render(0));
    }
    let mut top: Vec<(&i64, &Tally)> = per_item.iter().filter(|(_, t)| t.sum.bytes > 0).collect();
    top.sort_by(|a, b| b.1.sum.bytes.cmp(&a.1.sum.bytes).then(a.0.cmp(b.0)));
    if !top.is_empty() {
        out.push('\n');
        let mut t = Table::new(&[
            ("FREES MOST", Align::Left),
            ("FILES", Align::Right),
            ("FREES", Align::Right),
        ]);
        for (id, tally) in top.iter().take(TOP) {
            let what = match cs.items.get(id) {
                Some(i) => format!("{} {id} {:?}", i.kind, i.title),
                None => format!("item {id}"),
            };
            t.row(vec![what, count(tally.sum.files), size(tally.sum.bytes)]);
        }
        if top.len() > TOP {
            t.styled_row(vec![
                (format!("… {} more items", count((top.len() - TOP) as u64)), DIM),
                (String::new(), DIM),
                (String::new(), DIM),
            ]);
        }
        out.push_str(&t.render(0));
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&closing(cs));
    out.push('\n');
    out
}

/// The area a change of no item is shown under.
fn area(c: &Change) -> String {
    match c.op() {
        Some(Op::DeleteFile(f)) => area_of(&f.path),
        Some(Op::DeleteDir(d)) => area_of(&d.path),
        _ => "other".into(),
    }
}

/// `Metadata/<Kind> bundles`, `Media bundles` or `PhotoTranscoder cache` for a path: its
/// [`format2::area`], as a person reads it.
pub fn area_of(path: &str) -> String {
    match format2::area(path).as_str() {
        "PhotoTranscoder" => "PhotoTranscoder cache".into(),
        "other" => "other".into(),
        bundles => format!("{bundles} bundles"),
    }
}

/// The part of `cs` about `sections` and `items` (everything when both are empty); changes of
/// no item stay only when neither is asked for. The summary is summed up again.
pub fn filter(cs: Changeset, sections: &[i64], items: &[i64]) -> Changeset {
    if sections.is_empty() && items.is_empty() {
        return cs;
    }
    let keep = |c: &Change| match c.item {
        Some(id) => {
            let section = cs.items.get(&id).and_then(|i| i.section);
            (items.is_empty() || items.contains(&id))
                && (sections.is_empty() || section.is_some_and(|s| sections.contains(&s)))
        }
        None => false,
    };
    let changes: Vec<Change> = cs.changes.iter().filter(|c| keep(c)).cloned().collect();
    let kept = cs
        .summary
        .kept_local_by_section
        .iter()
        .filter(|(s, _)| sections.is_empty() || sections.contains(s))
        .filter(|_| items.is_empty())
        .map(|(s, n)| (*s, *n))
        .collect();
    let mut out = Changeset::new(&cs.plex_dir, cs.spec.clone(), cs.items.clone(), changes, kept);
    out.format = cs.format.clone();
    out.tool = cs.tool.clone();
    out.created_at = cs.created_at.clone();
    out
}
