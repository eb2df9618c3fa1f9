//! Bundle cleanup, cumulative steps (design.md §1):
//! 1. Metadata bundles whose hash is in no `metadata_items` row, and Media bundles whose hash
//!    is in no `media_parts` row;
//! 2. also season and episode bundles under `TV Shows` (their images live in the show's bundle);
//! 3. also, inside live bundles of every kind, files no column references and empty folders.
//!
//! Every hash is loaded once; a bundle folder whose name is not a hash is reported and left
//! alone.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::library::Inputs;
use super::pass::{self, Job};
use super::refs::InUse;
use super::usage::Usage;
use crate::changeset::Change;
use crate::plex::bundle::{self, Kind};
use crate::plex::model::types;
use anyhow::Result;

/// Bundle folders Plex makes for libraries tidyplex does not clean (photos).
const UNCLEANED_KINDS: [&str; 1] = ["Photos"];

/// What a bundle step plans.
#[derive(Debug, Default)]
pub struct BundlePlan {
    /// The changes (step tagged: 1, 2 or 3).
    pub changes: Vec<(u8, Change)>,
    /// Bundle folders left alone, and why.
    pub warnings: Vec<String>,
    /// Files in the live bundles walked by step 3 that are neither images nor XML: kept.
    pub unknown: Usage,
}

/// Plans bundle cleanup up to `step`: [`jobs`] read by one [`pass`].
pub fn plan(
    input: &Inputs<'_>,
    step: u8,
    sections: &[i64],
    in_use: &InUse,
    skip: &HashSet<i64>,
) -> Result<BundlePlan> {
    let mut out = BundlePlan::default();
    let jobs = jobs(input, step, sections, skip, &mut out.warnings)?;
    let found = pass::run(input.root, jobs, in_use, false, &|_| {});
    out.changes = found.tags.into_iter().zip(found.changes).collect();
    out.unknown = found.unknown;
    out.warnings.extend(found.warnings);
    Ok(out)
}

/// The folders bundle cleanup up to `step` reads: orphan bundles (step 1) and season and
/// episode bundles (step 2), deleted whole; at step 3 also the live bundles of the items of
/// `sections` (all when empty), except those of `skip` (owners the library stages read
/// already). Bundle folders left alone are reported in `warnings`.
pub fn jobs(
    input: &Inputs<'_>,
    step: u8,
    sections: &[i64],
    skip: &HashSet<i64>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Job>> {
    let lib = input.lib;
    let mut jobs = Vec::new();
    // Hash → the metadata types that have it.
    let mut types_of: HashMap<&str, Vec<i64>> = HashMap::new();
    for item in &lib.items {
        if let Some(h) = item.hash.as_deref() {
            types_of.entry(h).or_default().push(item.metadata_type);
        }
    }
    let parts: HashSet<&str> = input.parts.iter().filter_map(|p| p.hash.as_deref()).collect();

    let mut roots: Vec<(String, Option<Kind>)> = Vec::new();
    match std::fs::read_dir(input.root.join("Metadata")) {
        Ok(kinds) => {
            for kind in kinds.flatten() {
                let name = kind.file_name().to_string_lossy().into_owned();
                let is_dir = kind.file_type().is_ok_and(|t| t.is_dir());
                match Kind::from_folder(&name) {
                    Some(k) if is_dir => roots.push((format!("Metadata/{name}"), Some(k))),
                    _ if is_dir && UNCLEANED_KINDS.contains(&name.as_str()) => warnings.push(format!(
                        "left alone: Metadata/{name} holds Plex's {} bundles, which tidyplex does not clean",
                        name.to_lowercase()
                    )),
                    _ => warnings
                        .push(format!("left alone: Metadata/{name} is not a bundle folder Plex makes")),
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).map_err(|e| anyhow::anyhow!("cannot read Metadata: {e}")),
    }
    roots.push(("Media/localhost".to_string(), None));
    roots.sort();

    for (root, kind) in &roots {
        for (rel, hash) in bundles_in(input.root, root, warnings) {
            let verdict = match kind {
                None => (!parts.contains(hash.as_str())).then_some(1),
                Some(kind) => match types_of.get(hash.as_str()) {
                    None => Some(1),
                    Some(t)
                        if *kind == Kind::TvShows
                            && t.iter().all(|t| matches!(*t, types::SEASON | types::EPISODE)) =>
                    {
                        Some(2)
                    }
                    Some(_) => None,
                },
            };
            if let Some(tag) = verdict.filter(|s| *s <= step) {
                jobs.push(Job::Whole { path: rel, tag });
            }
        }
    }

    if step >= 3 {
        jobs.extend(
            lib.items
                .iter()
                .filter(|i| !skip.contains(&i.id))
                .filter(|i| {
                    sections.is_empty() || i.section_id.is_some_and(|s| sections.contains(&s))
                })
                .filter(|i| lib.bundle_owner(i).is_some_and(|o| o.id == i.id))
                .filter_map(|i| {
                    let bundle = lib.bundle_of(i)?;
                    Some(Job::Live { owner: i.id, bundle, empty_dirs: true, tag: 3 })
                }),
        );
    }
    Ok(jobs)
}

/// The bundle folders `<root>/<prefix>/<name>.bundle` and their hashes; anything else is
/// reported.
fn bundles_in(plex: &Path, root: &str, warnings: &mut Vec<String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok(prefixes) = std::fs::read_dir(plex.join(root)) else { return out };
    let mut prefixes: Vec<_> = prefixes.flatten().collect();
    prefixes.sort_by_key(|e| e.file_name());
    for prefix in prefixes {
        let p = prefix.file_name().to_string_lossy().into_owned();
        if !prefix.file_type().is_ok_and(|t| t.is_dir()) {
            warnings.push(format!("left alone: {root}/{p} is not a bundle prefix folder"));
            continue;
        }
        let Ok(entries) = std::fs::read_dir(prefix.path()) else {
            warnings.push(format!("left alone: {root}/{p} cannot be read"));
            continue;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = format!("{root}/{p}/{name}");
            match bundle::hash_of_bundle(&p, &name) {
                Some(hash) if entry.file_type().is_ok_and(|t| t.is_dir()) => out.push((rel, hash)),
                _ => warnings.push(format!("left alone: {rel} is not a folder named after a hash")),
            }
        }
    }
    out
}
