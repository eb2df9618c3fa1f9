//! The human view of an apply's result.

use std::fmt::Write as _;

use super::{count, size, Align, Table, DIM, GOOD, TODO};
use crate::apply::journal::Applied;
use crate::apply::trash::Purged;
use crate::apply::undo::UndoReport;
use crate::apply::Report;
use anstyle::{AnsiColor, Style};

const BAD: Style = AnsiColor::Red.on_default();

/// How many listed items to show per group before "… and N more".
const SHOWN: usize = 10;

/// The result of an apply: backup, strategy, counts, then each group of things not applied.
pub fn report(r: &Report) -> String {
    let mut out = String::new();
    if let Some(previous) = &r.previous_interrupted {
        let _ = writeln!(out, "{TODO}Note:{TODO:#} {previous}");
    }
    if let Some(backup) = &r.backup {
        let _ = writeln!(out, "{DIM}Backup of the database: {}{DIM:#}", backup.display());
    }
    if let Some(strategy) = &r.strategy {
        let _ = writeln!(out, "{DIM}Database writes: {strategy}{DIM:#}");
    }
    if let Some(plex) = &r.plex {
        let _ = writeln!(out, "{DIM}Plex: {plex}{DIM:#}");
    }
    let _ = writeln!(
        out,
        "{GOOD}Applied {} change{}{GOOD:#}: {} file{} {}; {} already done.",
        count(r.applied),
        if r.applied == 1 { "" } else { "s" },
        count(r.files_deleted),
        if r.files_deleted == 1 { "" } else { "s" },
        match r.kept_until {
            Some(_) =>
                format!("moved into the trash ({}, freed when it is purged)", size(r.bytes_freed)),
            None => format!("deleted, {} freed", size(r.bytes_freed)),
        },
        count(r.already),
    );
    if let (Some(id), true) = (r.id, r.applied > 0) {
        let _ = match &r.kept_until {
            Some(until) => writeln!(
                out,
                "{DIM}Apply {id}: kept in the trash until {until}; `tidyplex undo {id}` puts it all back (the bytes are freed when the trash is purged).{DIM:#}"
            ),
            None => writeln!(
                out,
                "{DIM}Apply {id}: `tidyplex undo {id}` puts the columns back; the files are gone (apply --keep DURATION keeps them).{DIM:#}"
            ),
        };
    }
    if !r.purged.is_empty() {
        let _ = writeln!(out, "{DIM}{}{DIM:#}", purged(&r.purged).trim_end());
    }
    if r.uploaded + r.reused + r.links_refreshed > 0 {
        let _ = writeln!(
            out,
            "Image host: {} uploaded, {} already hosted (from the ledger), {} link{} refreshed.",
            count(r.uploaded),
            count(r.reused),
            count(r.links_refreshed),
            if r.links_refreshed == 1 { "" } else { "s" },
        );
    }
    group(
        &mut out,
        "Links not re-signed yet (unchanged, nothing written)",
        &r.links_unchanged,
        DIM,
    );
    group(&mut out, "Drifted since planning (skipped)", &r.drifted, TODO);
    group(&mut out, "Deferred (the next plan has them again)", &r.deferred, TODO);
    group(&mut out, "Kept: a column references them now", &r.referenced, TODO);
    group(&mut out, "Failed", &r.failed, BAD);
    match r.exit_code() {
        0 => {}
        3 => out.push_str("Plan and apply again (or use `tidyplex run`) to finish.\n"),
        _ => out.push_str("Some changes failed; fix the cause above and apply again.\n"),
    }
    out
}

fn group(out: &mut String, title: &str, items: &[String], style: Style) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(out, "{style}{title} ({}):{style:#}", count(items.len() as u64));
    for item in items.iter().take(SHOWN) {
        let _ = writeln!(out, "  {item}");
    }
    if items.len() > SHOWN {
        let _ = writeln!(out, "  … and {} more", count((items.len() - SHOWN) as u64));
    }
}

/// The result of an undo.
pub fn undo(r: &UndoReport) -> String {
    let mut out = String::new();
    if r.finished_interrupted {
        let _ = writeln!(out, "{TODO}Note:{TODO:#} the previous undo of apply {} was interrupted; this one finished it.", r.apply);
    }
    if let Some(backup) = &r.backup {
        let _ = writeln!(out, "{DIM}Backup of the database: {}{DIM:#}", backup.display());
    }
    let _ = writeln!(
        out,
        "{GOOD}Undid apply {}{GOOD:#}: {} column{} put back, {} already back; {} file{} ({}) moved back from the trash.",
        r.apply,
        count(r.restored),
        if r.restored == 1 { "" } else { "s" },
        count(r.already),
        count(r.files_restored),
        if r.files_restored == 1 { "" } else { "s" },
        size(r.bytes_restored),
    );
    if r.refreshes_kept > 0 {
        let _ = writeln!(
            out,
            "{DIM}{} refreshed link{} left as they are (the links they replaced expire).{DIM:#}",
            count(r.refreshes_kept),
            if r.refreshes_kept == 1 { "" } else { "s" },
        );
    }
    if r.files_gone > 0 {
        let _ = writeln!(
            out,
            "{TODO}{} file{} the apply removed {} gone{TODO:#} (it ran without --keep, or its trash was purged): `tidyplex plan --repair` asks Plex to fetch the images again.",
            count(r.files_gone),
            if r.files_gone == 1 { "" } else { "s" },
            if r.files_gone == 1 { "is" } else { "are" },
        );
    }
    group(&mut out, "Changed since the apply (left alone)", &r.changed, TODO);
    group(&mut out, "Deferred: the database stayed locked (undo again)", &r.deferred, TODO);
    group(&mut out, "Left in the trash: something stands at their path now", &r.files_left, TODO);
    out
}

/// The `history` table, newest last.
pub fn history(list: &[Applied], trash: &[(u64, u64, u64)]) -> String {
    if list.is_empty() {
        return "No apply has run here yet.\n".to_string();
    }
    let mut t = Table::new(&[
        ("ID", Align::Right),
        ("STARTED", Align::Left),
        ("CHANGESET", Align::Left),
        ("URLS", Align::Right),
        ("FILES", Align::Right),
        ("SIZE", Align::Right),
        ("KEPT UNTIL", Align::Left),
        ("UNDO", Align::Left),
    ]);
    for a in list {
        let in_trash = trash.iter().find(|(id, _, _)| *id == a.id).map_or(0, |t| t.1);
        let undo = undo_state(a, in_trash);
        t.styled_row(vec![
            (a.id.to_string(), Style::new()),
            (a.at.clone(), Style::new()),
            (a.changeset.clone(), Style::new()),
            (count(a.urls), Style::new()),
            (count(a.files), Style::new()),
            (size(a.bytes), Style::new()),
            (
                match (&a.keep_until, &a.purged) {
                    (_, Some(_)) => "purged".to_string(),
                    (Some(t), None) => humantime::format_rfc3339_seconds(*t).to_string(),
                    (None, None) => "-".to_string(),
                },
                DIM,
            ),
            (undo.to_string(), if undo == "undoable" { GOOD } else { DIM }),
        ]);
    }
    t.render(0)
}

/// `undoable`, `undone`, `undo unfinished`, `columns only` or `nothing to undo`.
pub fn undo_state(a: &Applied, files_in_trash: u64) -> &'static str {
    let columns = a.has_restorable();
    match (a.undone.is_some(), a.undo_started) {
        (true, _) => "undone",
        (false, true) => "undo unfinished",
        _ if files_in_trash > 0 => "undoable",
        _ if columns => "columns only",
        _ => "nothing to undo",
    }
}

/// What a purge emptied.
pub fn purged(p: &Purged) -> String {
    if p.is_empty() {
        return "The trash is empty already (or nothing in it is due).\n".to_string();
    }
    let ids: Vec<String> = p.applies.iter().map(u64::to_string).collect();
    format!(
        "Emptied the trash of apply {}: {} file{} removed, {} freed.\n",
        ids.join(", "),
        count(p.files),
        if p.files == 1 { "" } else { "s" },
        size(p.bytes)
    )
}
