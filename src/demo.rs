//! `tidyplex demo`: a sample library, planned, shown, applied and planned again.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use crate::apply;
use crate::fixture::{self, Options};
use crate::plex::db::Db;
use crate::plex::locate;
use crate::render;
use crate::scan;
use crate::spec::{Overrides, Spec};
use crate::status;

/// Walks the whole cycle on a fresh sample library in `dir` (a temporary folder when `None`),
/// writing what happens to `out`; returns the exit code.
pub fn run(dir: Option<&Path>, out: &mut impl Write) -> Result<i32> {
    let tmp;
    let dir = match dir {
        Some(dir) => dir.to_path_buf(),
        None => {
            tmp = tempfile::Builder::new().prefix("tidyplex-demo-").tempdir()?;
            tmp.path().join("Plex Media Server")
        }
    };
    let step = |out: &mut dyn Write, text: &str| {
        let style = render::HEADER;
        writeln!(out, "\n{style}==> {text}{style:#}")
    };

    step(out, "Build a sample Plex data folder")?;
    let report = fixture::build(&dir, &Options::default())?;
    writeln!(out, "{}", report.summary())?;
    let paths = locate::locate(Some(&dir), None)?;

    step(out, "How much could be reclaimed? (tidyplex status)")?;
    let usage_before = status::usage(&paths, &|_| {})?;
    let db = Db::open(&paths.db)?;
    let st = status::gather(&paths, &db, &[], &|_| {})?;
    write!(out, "{}", render::status::status(&st))?;

    step(out, "Plan stage 3 for every section (tidyplex plan --stage 3 -o plan.yaml)")?;
    let flags = Overrides { stage: Some(3), ..Overrides::default() };
    let ledger = crate::plex::ledger::Ledger::default();
    let planned = scan::plan(&paths, &db, &Spec::default(), &flags, &ledger)?;
    drop(db);
    let cs = planned.changeset;
    let file = dir.join("plan.yaml");
    std::fs::write(&file, cs.to_yaml()).context("cannot write plan.yaml")?;
    let shown = render::plan::show(&cs);
    let lines: Vec<&str> = shown.lines().collect();
    for line in lines.iter().take(24) {
        writeln!(out, "{line}")?;
    }
    if lines.len() > 24 {
        writeln!(
            out,
            "  … ({} more lines; the whole plan is in {})",
            lines.len() - 24,
            file.display()
        )?;
        writeln!(out, "{}", lines.last().unwrap_or(&""))?;
    }

    step(out, "Apply it (tidyplex apply plan.yaml --yes)")?;
    let result = apply::apply(&paths, &cs, "plan.yaml", &apply::Options::default(), &|| {})?;
    write!(out, "{}", render::apply::report(&result))?;

    step(out, "Plan again (tidyplex plan --stage 3)")?;
    let db = Db::open(&paths.db)?;
    let again = scan::plan(&paths, &db, &Spec::default(), &flags, &ledger)?.changeset;
    write!(out, "{}", render::plan::show(&again))?;
    let usage_after = status::usage(&paths, &|_| {})?;
    let total = |u: &std::collections::BTreeMap<String, scan::usage::Usage>| -> u64 {
        u.iter()
            .filter(|(k, _)| k.starts_with("Metadata") || *k == "Media")
            .map(|(_, v)| v.bytes)
            .sum()
    };
    writeln!(
        out,
        "\nMetadata and Media: {} before, {} after.",
        render::size(total(&usage_before)),
        render::size(total(&usage_after))
    )?;
    Ok(if again.is_empty() && result.exit_code() == 0 { 0 } else { 3 })
}
