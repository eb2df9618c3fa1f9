//! Read-only planners and walkers over the Plex data folder.

pub mod library;
pub mod refs;
pub mod tree;
pub mod usage;

use std::path::Path;

use anyhow::Result;

use crate::apply::hosts::ledger::Ledger;
use crate::changeset::Changeset;
use crate::plex::db::Db;
use crate::plex::model::Library;
use crate::spec::{Overrides, Spec, DEFAULT_REFRESH_MARGIN};

/// A plan and what is worth telling the user about it.
#[derive(Debug)]
pub struct Planned {
    /// The changeset.
    pub changeset: Changeset,
    /// Things skipped or needing attention.
    pub warnings: Vec<String>,
}

/// Plans everything `spec` (with `flags` applied) asks for, reading the DB once and walking
/// each bundle once. The upload `ledger` tells which hosted links can be refreshed.
pub fn plan(
    root: &Path,
    db: &Db,
    spec: &Spec,
    flags: &Overrides,
    ledger: &Ledger,
) -> Result<Planned> {
    let lib = Library::read(db)?;
    let plan_spec = spec.resolve(&lib.sections, flags)?;
    let host = plan_spec.image_host.clone();
    let mut warnings = Vec::new();
    if host.is_none() && plan_spec.sections.iter().any(|s| s.stage >= 4) {
        warnings.push(
            "stage 4 uploads frame grabs to an image host, and none is configured (image_host in the SPEC, or --image-host discord); planning stage 3 for them"
                .to_string(),
        );
    }
    let input = library::Inputs::read(root, db, &lib)?;
    let margin =
        spec.host(flags)?.and_then(|h| h.refresh_margin()).unwrap_or(DEFAULT_REFRESH_MARGIN);
    let links =
        library::Links { ledger, now: crate::apply::hosts::now(), margin: margin.as_secs() as i64 };
    let planned = library::plan(&input, &plan_spec.sections, host.as_deref(), &links)?;
    warnings.extend(planned.warnings);
    let changeset = Changeset::new(
        &root.to_string_lossy(),
        plan_spec,
        planned.items,
        planned.changes,
        planned.kept_local,
    );
    Ok(Planned { changeset, warnings })
}
