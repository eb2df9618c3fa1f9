//! Human views of `status` and `sections`.

use std::fmt::Write as _;

use super::{count, size, Align, Table, DIM, GOOD, TODO};
use crate::plex::columns;
use crate::plex::TriggerForm;
use crate::scan::usage::Usage;
use crate::status::{SectionStatus, Status};
use anstyle::Style;

/// The `sections` table.
pub fn sections(list: &[SectionStatus]) -> String {
    let mut t = Table::new(&[
        ("ID", Align::Right),
        ("NAME", Align::Left),
        ("TYPE", Align::Left),
        ("AGENT", Align::Left),
        ("ITEMS", Align::Right),
        ("STILL LOCAL", Align::Right),
    ]);
    for s in list {
        t.styled_row(vec![
            (s.id.to_string(), Style::new()),
            (s.name.clone(), Style::new()),
            (s.kind.to_string(), Style::new()),
            (s.agent.clone(), Style::new()),
            (count(s.items), Style::new()),
            (count(s.still_local), if s.still_local == 0 { GOOD } else { TODO }),
        ]);
    }
    t.render(0)
}

/// The `status` view: where the data lives, disk use per area, and per section the states of
/// its image columns.
pub fn status(st: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Plex data folder  {}", st.plex_dir.display());
    let _ = writeln!(out, "Database          {}", st.db.display());
    let _ =
        writeln!(out, "FTS triggers      {}", trigger_text(st.trigger_form, st.columns_writable));
    out.push('\n');

    let mut t =
        Table::new(&[("DISK USE", Align::Left), ("FILES", Align::Right), ("SIZE", Align::Right)]);
    let mut total = Usage::default();
    for (area, u) in &st.usage {
        total.merge(u);
        t.row(vec![area.clone(), count(u.files), size(u.bytes)]);
    }
    t.styled_row(vec![("total".into(), DIM), (count(total.files), DIM), (size(total.bytes), DIM)]);
    out.push_str(&t.render(0));
    let trash = &st.trash;
    if trash.files > 0 {
        let _ = writeln!(
            out,
            "Trash (apply --keep): {} files ({}) of {} appl{}, kept for `tidyplex undo`; `tidyplex purge` frees them",
            count(trash.files),
            size(trash.bytes),
            count(trash.applies),
            if trash.applies == 1 { "y" } else { "ies" }
        );
    }

    if !st.bundles.is_empty() {
        out.push('\n');
        let mut t = Table::new(&[
            ("BUNDLE CLEANUP (plan --bundles N)", Align::Left),
            ("ENTRIES", Align::Right),
            ("FILES", Align::Right),
            ("FREES", Align::Right),
        ]);
        for f in &st.bundles {
            let what = match f.step {
                1 => "1: orphan bundles",
                2 => "2: + season/episode bundles",
                _ => "3: + unused files in live bundles",
            };
            t.row(vec![what.to_string(), count(f.entries), count(f.files), size(f.bytes)]);
        }
        out.push_str(&t.render(0));
        let u = &st.unknown_kept;
        if u.files > 0 {
            let _ = writeln!(
                out,
                "unknown, kept: {} files ({}) in live Metadata bundles are not images (lyrics, extras, …) and are never deleted",
                count(u.files),
                size(u.bytes)
            );
        }
    }

    for s in &st.sections {
        out.push('\n');
        let _ = writeln!(
            out,
            "Section {} \"{}\" ({}, {}): {} items, {}",
            s.id,
            s.name,
            s.kind,
            s.agent,
            count(s.items),
            if s.items == 0 {
                "nothing to clean".to_string()
            } else if s.still_local == 0 {
                format!("{GOOD}clean{GOOD:#}")
            } else {
                format!("{TODO}{} image columns still local{TODO:#}", count(s.still_local))
            }
        );
        if s.items == 0 {
            continue;
        }
        let mut t = Table::new(&[
            ("COLUMN", Align::Left),
            ("HTTP", Align::Right),
            ("LOCAL", Align::Right),
            ("FRAME GRAB", Align::Right),
            ("EMPTY", Align::Right),
            ("OTHER", Align::Right),
        ]);
        let mut hidden = Vec::new();
        for col in &st.image_columns {
            let Some(c) = s.columns.get(*col) else { continue };
            if c.empty == c.total() {
                hidden.push(columns::short_name(col));
                continue;
            }
            let todo = |n: u64| (count(n), if n == 0 { Style::new() } else { TODO });
            t.styled_row(vec![
                (columns::short_name(col).to_string(), Style::new()),
                (count(c.http), if c.http > 0 { GOOD } else { Style::new() }),
                todo(c.local),
                todo(c.media),
                (count(c.empty), Style::new()),
                (count(c.other), Style::new()),
            ]);
        }
        out.push_str(&t.render(2));
        if !hidden.is_empty() {
            let _ = writeln!(out, "  {DIM}(always empty: {}){DIM:#}", hidden.join(", "));
        }
    }
    attention(&mut out, st);
    out
}

/// The items only Plex can repair, if any.
fn attention(out: &mut String, st: &Status) {
    const SHOWN: usize = 20;
    if st.attention.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n{TODO}Needs Plex's attention ({}){TODO:#}: `plan --repair` asks Plex to refresh or analyze these items",
        count(st.attention.len() as u64)
    );
    for a in st.attention.iter().take(SHOWN) {
        let _ = writeln!(out, "  {}", a.describe());
    }
    if st.attention.len() > SHOWN {
        let _ = writeln!(
            out,
            "  … and {} more (`status --json` lists them all)",
            count((st.attention.len() - SHOWN) as u64)
        );
    }
}

fn trigger_text(form: TriggerForm, writable: bool) -> &'static str {
    match (form, writable) {
        (TriggerForm::Broad, false) => {
            "broad (before Plex 1.43): image columns are written through Plex SQLite or with the triggers set aside"
        }
        (TriggerForm::Broad, true) => {
            "broad, on plain FTS tables (before Plex's ICU search): image columns are written directly"
        }
        (TriggerForm::Scoped, _) => "scoped (Plex 1.43+): image columns are written directly",
        (TriggerForm::Absent, _) => "none: image columns are written directly",
    }
}
