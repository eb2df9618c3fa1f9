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

use anyhow::Result;
use rayon::prelude::*;

use super::library::{self, Inputs};
use super::refs::InUse;
use super::tree;
use super::usage::Usage;
use crate::changeset::Change;
use crate::plex::bundle::{self, Kind};
use crate::plex::model::types;

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

/// Plans bundle cleanup up to `step`. Step 3 covers live bundles of the items of `sections`
/// (all when empty) except `skip` (owners the library stages already walked), judged by `in_use`.
pub fn plan(
    input: &Inputs<'_>,
    step: u8,
    sections: &[i64],
    in_use: &InUse,
    skip: &HashSet<i64>,
) -> Result<BundlePlan> {
    let lib = input.lib;
    let mut out = BundlePlan::default();
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
                    _ if is_dir && UNCLEANED_KINDS.contains(&name.as_str()) => {
                        out.warnings.push(format!(
                            "left alone: Metadata/{name} holds Plex's {} bundles, which tidyplex does not clean",
                            name.to_lowercase()
                        ))
                    }
                    _ => out.warnings.push(format!(
                        "left alone: Metadata/{name} is not a bundle folder Plex makes"
                    )),
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).map_err(|e| anyhow::anyhow!("cannot read Metadata: {e}")),
    }
    roots.push(("Media/localhost".to_string(), None));
    roots.sort();

    for (root, kind) in &roots {
        for (rel, hash) in bundles_in(input.root, root, &mut out.warnings) {
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
            if let Some(s) = verdict.filter(|s| *s <= step) {
                match whole(input.root, &rel) {
                    Ok(change) => out.changes.push((s, change)),
                    Err(e) => out.warnings.push(format!("left alone: {rel}: {e:#}")),
                }
            }
        }
    }

    if step >= 3 {
        let owners: Vec<_> = lib
            .items
            .iter()
            .filter(|i| !skip.contains(&i.id))
            .filter(|i| sections.is_empty() || i.section_id.is_some_and(|s| sections.contains(&s)))
            .filter(|i| lib.bundle_owner(i).is_some_and(|o| o.id == i.id))
            .filter_map(|i| Some((i.id, lib.bundle_of(i)?)))
            .collect();
        let found: Vec<Result<library::Findings, String>> = owners
            .par_iter()
            .map(|(id, b)| library::unused_in_bundle(input.root, b, *id, in_use, true))
            .collect();
        for result in found {
            match result {
                Ok(found) => {
                    out.changes.extend(found.changes.into_iter().map(|c| (3, c)));
                    out.unknown.merge(&found.unknown);
                }
                Err(warning) => out.warnings.push(warning),
            }
        }
    }
    Ok(out)
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

/// A `delete_dir` of a whole bundle, with the digest of its listing.
fn whole(root: &Path, rel: &str) -> Result<Change> {
    let entries = tree::walk(root, rel)?;
    Ok(Change::delete_dir(None, tree::whole_dir(rel, &entries)))
}
