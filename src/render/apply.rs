//! The human view of an apply's result.

use std::fmt::Write as _;

use super::{count, size, DIM, GOOD, TODO};
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
        "{GOOD}Applied {} change{}{GOOD:#}: {} file{} deleted, {} freed; {} already done.",
        count(r.applied),
        if r.applied == 1 { "" } else { "s" },
        count(r.files_deleted),
        if r.files_deleted == 1 { "" } else { "s" },
        size(r.bytes_freed),
        count(r.already),
    );
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
