//! Read-only planners and walkers over the Plex data folder.

pub mod attention;
pub mod bundles;
pub mod cache;
pub mod library;
pub mod pass;
pub mod refs;
pub mod tree;
pub mod usage;

use anyhow::Result;

use std::collections::{BTreeMap, HashSet};

use crate::changeset::{Changeset, ItemInfo};
use crate::plex::db::Db;
use crate::plex::ledger::Ledger;
use crate::plex::locate::PlexPaths;
use crate::plex::model::Library;
use crate::spec::{Overrides, Spec, DEFAULT_REFRESH_MARGIN};

/// A plan and what is worth telling the user about it.
#[derive(Debug)]
pub struct Planned {
    /// The changeset.
    pub changeset: Changeset,
    /// Things skipped or needing attention.
    pub warnings: Vec<String>,
    /// Items whose images only Plex can bring back (refresh/analyze).
    pub attention: Vec<attention::Attention>,
}

/// Plans everything `spec` (with `flags` applied) asks for, reading the DB once and walking
/// each bundle once. The upload `ledger` tells which hosted links can be refreshed.
pub fn plan(
    paths: &PlexPaths,
    db: &Db,
    spec: &Spec,
    flags: &Overrides,
    ledger: &Ledger,
) -> Result<Planned> {
    let root = paths.root.as_path();
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
        library::Links { ledger, now: crate::plex::hosted::now(), margin: margin.as_secs() as i64 };
    let mut planned = library::plan(&input, &plan_spec.sections, host.as_deref(), &links)?;

    warnings.extend(std::mem::take(&mut planned.warnings));
    let ids: Vec<i64> = plan_spec.sections.iter().map(|s| s.id).collect();
    let switches =
        |section: i64| plan_spec.sections.iter().any(|s| s.id == section && s.stage >= 2);
    let attention = attention::find(&input, &ids, &switches, &|url| ledger.is_lost(url));
    if plan_spec.repair {
        let (calls, items) = attention::changes(&attention);
        planned.changes.extend(calls);
        for (id, info) in items {
            planned.items.entry(id).or_insert(info);
        }
    } else if !attention.is_empty() {
        warnings.push(attention_warning(&attention));
    }

    // Every folder the planners need, read in one parallel pass.
    let section_of = |id: i64| lib.item(id).and_then(|i| i.section_id);
    let step3 = |id: i64| {
        plan_spec.bundles.is_some_and(|s| s >= 3)
            && (plan_spec.bundle_sections.is_empty()
                || section_of(id).is_some_and(|s| plan_spec.bundle_sections.contains(&s)))
    };
    let mut jobs: Vec<pass::Job> = Vec::new();
    for (owner, bundle) in std::mem::take(&mut planned.walks) {
        let empty_dirs = step3(owner);
        jobs.push(pass::Job::Live { owner, bundle, empty_dirs, tag: 0 });
    }
    let walked: HashSet<i64> = jobs
        .iter()
        .filter_map(|j| match j {
            pass::Job::Live { owner, .. } => Some(*owner),
            _ => None,
        })
        .collect();
    for (item, bundle) in std::mem::take(&mut planned.media) {
        jobs.push(pass::Job::Analysis { item, bundle });
    }
    if let Some(step) = plan_spec.bundles {
        let sections = &plan_spec.bundle_sections;
        jobs.extend(bundles::jobs(&input, step, sections, &walked, &mut warnings)?);
    }
    let cache_rule = match &plan_spec.cache {
        Some(policy) => Some(cache::Rule::of(policy.parse().map_err(anyhow::Error::msg)?)),
        None => None,
    };
    if cache_rule.is_some() {
        jobs.extend(cache::jobs(&paths.photo_transcoder, cache_rule)?);
    }
    jobs.shrink_to_fit();
    // The context of every item a change of the pass can name, so that the DB's data can go
    // before the pass: only the changes and what is in use outlive it.
    let mut infos: BTreeMap<i64, ItemInfo> = BTreeMap::new();
    for job in &jobs {
        if let pass::Job::Live { owner: id, .. } | pass::Job::Analysis { item: id, .. } = job {
            if let Some(info) = library::item_info(&lib, *id) {
                infos.entry(*id).or_insert(info);
            }
        }
    }
    drop(input);
    drop(lib);

    let mut found = pass::run(root, jobs, &planned.in_use, false, &|_| {});
    drop(planned.in_use);
    if let Some(e) = found.errors.first() {
        anyhow::bail!("{e}");
    }
    warnings.extend(found.warnings);
    if let Some(cache::Rule::Budget(budget)) = cache_rule {
        found.changes.extend(cache::judge_budget(&found.cache, budget));
    }
    drop(found.cache);
    for change in &found.changes {
        if let Some(id) = change.item {
            if let Some(info) = infos.remove(&id) {
                planned.items.insert(id, info);
            }
        }
    }
    drop(infos);
    // The smaller list goes into the larger.
    let mut changes = found.changes;
    changes.reserve_exact(planned.changes.len());
    changes.append(&mut planned.changes);
    let changeset = Changeset::new(
        &root.to_string_lossy(),
        plan_spec,
        planned.items,
        changes,
        planned.kept_local,
    );
    Ok(Planned { changeset, warnings, attention })
}

/// `N items need Plex's attention …` with the first few of them.
fn attention_warning(found: &[attention::Attention]) -> String {
    const SHOWN: usize = 10;
    let mut text = format!(
        "{} image column{} need{} Plex's attention (`plan --repair` asks Plex to refresh or analyze the items):",
        found.len(),
        if found.len() == 1 { "" } else { "s" },
        if found.len() == 1 { "s" } else { "" },
    );
    for a in found.iter().take(SHOWN) {
        text.push_str("\n  ");
        text.push_str(&a.describe());
    }
    if found.len() > SHOWN {
        text.push_str(&format!(
            "\n  … and {} more (`tidyplex status --json` lists them all)",
            found.len() - SHOWN
        ));
    }
    text
}
