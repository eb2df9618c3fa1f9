//! What `status` and `sections` report: disk use per area and how far each section is from
//! clean. Gathering only; [`crate::render::status`] draws it.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::changeset::Op;
use crate::plex::db::Db;
use crate::plex::locate::PlexPaths;
use crate::plex::model::{types, Library, Section};
use crate::plex::{ColumnCounts, ImageUrl, TriggerForm};
use crate::scan::attention::{self, Attention};
use crate::scan::library::Inputs;
use crate::scan::pass::{self, Job};
use crate::scan::usage::Usage;
use crate::scan::{bundles, cache, refs};

/// One section with the states of its items' image columns.
#[derive(Debug, Clone, Serialize)]
pub struct SectionStatus {
    /// `library_sections.id`.
    pub id: i64,
    /// Name.
    pub name: String,
    /// movie, show, music, photo or other.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Metadata agent.
    pub agent: String,
    /// Movies, shows, seasons, episodes, artists and albums in it.
    pub items: u64,
    /// Column → counts, for every image column of `metadata_items` the DB has.
    pub columns: BTreeMap<String, ColumnCounts>,
    /// Values still pointing at local files (`local` + `media` over all columns).
    pub still_local: u64,
}

/// The whole `status` answer.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The data folder.
    pub plex_dir: PathBuf,
    /// The DB.
    pub db: PathBuf,
    /// The FTS trigger form (how image columns will be written).
    pub trigger_form: TriggerForm,
    /// Whether stock SQLite can write `metadata_items` image columns.
    pub columns_writable: bool,
    /// Whether stock SQLite can write `tags` image columns.
    pub tags_writable: bool,
    /// Image columns of `metadata_items` in this DB.
    pub image_columns: Vec<&'static str>,
    /// Area (`Metadata/<Kind>`, `Media`, `PhotoTranscoder`) → disk use.
    pub usage: BTreeMap<String, Usage>,
    /// The sections asked for.
    pub sections: Vec<SectionStatus>,
    /// What each bundle cleanup step would free (steps are cumulative; each figure is the
    /// step's own share).
    pub bundles: Vec<StepFigure>,
    /// Files in live bundles that are neither images nor XML (lyrics, subtitles, files of
    /// agents tidyplex does not know): never deleted.
    pub unknown_kept: Usage,
    /// Items of those sections whose images only Plex can bring back (refresh/analyze).
    pub attention: Vec<Attention>,
    /// What `apply --keep` holds in tidyplex's trash (freed by `purge`).
    pub trash: crate::apply::trash::Usage,
}

/// What one bundle step would delete.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepFigure {
    /// 1 orphan bundles, 2 season/episode bundles, 3 unused files in live bundles.
    pub step: u8,
    /// Folders and files it would delete as whole entries.
    pub entries: u64,
    /// Files inside them.
    pub files: u64,
    /// Bytes freed.
    pub bytes: u64,
}

/// Per section, the column states of its cleanable items.
pub fn sections(db: &Db, lib: &Library) -> Vec<SectionStatus> {
    let cols = &db.schema.metadata_items;
    let mut by_id: BTreeMap<i64, SectionStatus> =
        lib.sections.iter().map(|s| (s.id, empty_status(s, cols))).collect();
    for item in &lib.items {
        if !types::CLEANED.contains(&item.metadata_type) {
            continue;
        }
        let Some(status) = item.section_id.and_then(|id| by_id.get_mut(&id)) else { continue };
        status.items += 1;
        for (col, value) in cols.iter().zip(&item.images) {
            let state = ImageUrl::parse(value.as_deref()).state();
            status.columns.get_mut(*col).expect("every column has counts").add(state);
        }
    }
    by_id
        .into_values()
        .map(|mut s| {
            s.still_local = s.columns.values().map(ColumnCounts::still_local).sum();
            s
        })
        .collect()
}

fn empty_status(s: &Section, cols: &[&'static str]) -> SectionStatus {
    SectionStatus {
        id: s.id,
        name: s.name.clone(),
        kind: s.type_name(),
        agent: s.agent.clone(),
        items: 0,
        columns: cols.iter().map(|c| (c.to_string(), ColumnCounts::default())).collect(),
        still_local: 0,
    }
}

/// Keeps the sections named by `wanted` (all when empty); an unknown id is an error.
pub fn select(all: Vec<SectionStatus>, wanted: &[i64]) -> Result<Vec<SectionStatus>> {
    if let Some(id) = wanted.iter().find(|id| !all.iter().any(|s| s.id == **id)) {
        let known: Vec<String> = all.iter().map(|s| s.id.to_string()).collect();
        bail!(
            "there is no section {id} (sections: {}); `tidyplex sections` lists them",
            known.join(", ")
        );
    }
    Ok(all.into_iter().filter(|s| wanted.is_empty() || wanted.contains(&s.id)).collect())
}

/// The areas whose disk use `status` reports: each folder under `Metadata`, `Media`, and the
/// PhotoTranscoder cache. Files lying directly in `Metadata` count as `Metadata`.
pub fn areas(paths: &PlexPaths) -> Result<Vec<(String, PathBuf)>> {
    let metadata = paths.root.join("Metadata");
    let mut areas = Vec::new();
    match std::fs::read_dir(&metadata) {
        Ok(entries) => {
            let mut kinds = Vec::new();
            for entry in entries {
                let entry = entry.with_context(|| format!("cannot read {}", metadata.display()))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    kinds.push((format!("Metadata/{name}"), entry.path()));
                }
            }
            kinds.sort();
            areas.extend(kinds);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", metadata.display())),
    }
    areas.push(("Media".to_string(), paths.root.join("Media")));
    areas.push(("PhotoTranscoder".to_string(), paths.photo_transcoder.clone()));
    Ok(areas)
}

/// Measures every area (see [`areas`]) in one parallel pass; `tick` gets a running count of
/// files seen.
pub fn usage(paths: &PlexPaths, tick: &(dyn Fn(u64) + Sync)) -> Result<BTreeMap<String, Usage>> {
    let mut jobs = measure_jobs(&paths.root, &HashSet::new())?;
    jobs.extend(cache::jobs(&paths.photo_transcoder, None)?);
    let found = pass::run(&paths.root, jobs, &refs::InUse::default(), true, tick);
    finish_usage(paths, found.usage, &found.errors)
}

/// Every area listed (empty ones too), or the first folder that could not be read.
fn finish_usage(
    paths: &PlexPaths,
    mut usage: BTreeMap<String, Usage>,
    errors: &[String],
) -> Result<BTreeMap<String, Usage>> {
    if let Some(e) = errors.first() {
        bail!("{e}");
    }
    for (name, _) in areas(paths)? {
        usage.entry(name).or_default();
    }
    if usage.get("Metadata").is_some_and(|u| u.files == 0) {
        usage.remove("Metadata");
    }
    Ok(usage)
}

/// Jobs that measure everything under `Metadata` and `Media` that `covered` (folders other
/// jobs read whole) leaves out: the files at each level above the bundles, and every folder
/// at bundle level.
fn measure_jobs(root: &Path, covered: &HashSet<String>) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    // Metadata/<Kind>/<prefix>/<bundle>, Media/localhost/<prefix>/<bundle>.
    partition(root, "Metadata", 3, covered, &mut jobs)?;
    partition(root, "Media", 3, covered, &mut jobs)?;
    Ok(jobs)
}

/// Measure jobs for `rel`: its own files, and its subfolders `levels` deep, split further.
fn partition(
    root: &Path,
    rel: &str,
    levels: usize,
    covered: &HashSet<String>,
    jobs: &mut Vec<Job>,
) -> Result<()> {
    if covered.contains(rel) {
        return Ok(());
    }
    if levels == 0 {
        jobs.push(Job::Measure { rel: rel.to_string(), shallow: false });
        return Ok(());
    }
    let dir = root.join(rel);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    jobs.push(Job::Measure { rel: rel.to_string(), shallow: true });
    let mut subs = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            subs.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    subs.sort();
    for sub in subs {
        partition(root, &format!("{rel}/{sub}"), levels - 1, covered, jobs)?;
    }
    Ok(())
}

/// Gathers the whole status.
pub fn gather(
    paths: &PlexPaths,
    db: &Db,
    wanted: &[i64],
    tick: &(dyn Fn(u64) + Sync),
) -> Result<Status> {
    let lib = Library::read(db)?;
    let sections = select(sections(db, &lib), wanted)?;
    let input = Inputs::read(&paths.root, db, &lib)?;
    let (bundles, unknown_kept, usage) = walk(paths, &input, tick)?;
    let ids: Vec<i64> = sections.iter().map(|s| s.id).collect();
    let ledger = crate::plex::ledger::Ledger::in_state_dir(&crate::apply::state_dir(paths))
        .unwrap_or_default();
    // Status knows no plan: a missing file with a known provider URL is for stage 2 to switch.
    let attention = attention::find(&input, &ids, &|_| true, &|url| ledger.is_lost(url));
    Ok(Status {
        plex_dir: paths.root.clone(),
        db: paths.db.clone(),
        trigger_form: db.trigger_form()?,
        columns_writable: db.columns_writable(),
        tags_writable: db.tags_writable(),
        image_columns: db.schema.metadata_items.clone(),
        usage,
        sections,
        bundles,
        unknown_kept,
        attention,
        trash: crate::apply::trash::usage(&crate::apply::state_dir(paths)),
    })
}

/// One pass over everything: bundle step 3 planned (read-only) with each step's share summed,
/// what it kept as unknown, and every area's disk use.
fn walk(
    paths: &PlexPaths,
    input: &Inputs<'_>,
    tick: &(dyn Fn(u64) + Sync),
) -> Result<(Vec<StepFigure>, Usage, BTreeMap<String, Usage>)> {
    let all = refs::collect(input.db, input.lib, &input.tags);
    let in_use = refs::InUse::build(input.root, &all, |_| false);
    drop(all);
    let mut warnings = Vec::new();
    let mut jobs = bundles::jobs(input, 3, &[], &HashSet::new(), &mut warnings)?;
    let covered: HashSet<String> = jobs.iter().map(|j| j.folder().to_string()).collect();
    jobs.extend(measure_jobs(&paths.root, &covered)?);
    jobs.extend(cache::jobs(&paths.photo_transcoder, None)?);
    let found = pass::run(&paths.root, jobs, &in_use, true, tick);
    let usage = finish_usage(paths, found.usage, &found.errors)?;
    let mut figures: Vec<StepFigure> =
        (1..=3).map(|step| StepFigure { step, ..StepFigure::default() }).collect();
    for (step, change) in found.tags.into_iter().zip(found.changes) {
        let f = &mut figures[usize::from(step) - 1];
        f.entries += 1;
        match change.op() {
            Some(Op::DeleteDir(d)) => {
                f.files += d.files;
                f.bytes += d.bytes;
            }
            Some(Op::DeleteFile(x)) => {
                f.files += 1;
                f.bytes += x.freed();
            }
            _ => {}
        }
    }
    Ok((figures, found.unknown, usage))
}
