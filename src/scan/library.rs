//! Library cleanup stages 1–4 for the chosen sections (design.md §1). Read-only: it emits
//! changes; `apply` executes them.
//!
//! 1. Images in the sections' Metadata bundles that no column references. Only files in known
//!    image folders are images ([`bundle::content`]); XML and everything else (lyrics,
//!    subtitles, files of unknown agents) always stays and is counted as unknown.
//! 2. Columns on a local `metadata://`/`upload://` file whose provider URL is known are switched
//!    to it; the files this frees go too.
//! 3. Media-bundle analysis images (`Thumbnails/thumb*.jpg`, `Art/art*.jpg`) nothing references.
//! 4. Columns on a `media://` frame grab are uploaded to the image host (when one is configured).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use anyhow::Result;
use rayon::prelude::*;

use super::refs::{self, ColumnRef, InUse};
use super::tree;
use super::usage::Usage;
use crate::changeset::{Change, ItemInfo, RefreshLink, SectionStage, SetUrl, Upload};
use crate::plex::db::Db;
use crate::plex::hosted as discord;
use crate::plex::infoxml::InfoXml;
use crate::plex::ledger::Ledger;
use crate::plex::model::{self, types, Candidate, Item, Library, MediaPart};
use crate::plex::{bundle, ImageUrl};

/// What the library stages plan.
#[derive(Debug, Default)]
pub struct LibraryPlan {
    /// The changes, unsorted.
    pub changes: Vec<Change>,
    /// Context for the items the changes concern.
    pub items: BTreeMap<i64, ItemInfo>,
    /// Local columns left alone because no provider URL is known, by section.
    pub kept_local: BTreeMap<i64, u64>,
    /// Things worth telling the user (skipped bundles, unreadable XML).
    pub warnings: Vec<String>,
    /// What stays referenced once the planned switches are made.
    pub in_use: InUse,
    /// The bundle owners of the sections, with their bundles: the pass reads these for
    /// unused images.
    pub walks: Vec<(i64, String)>,
    /// Items of stage-3 sections and their Media bundles: the pass reads their analysis
    /// images.
    pub media: Vec<(i64, String)>,
}

/// Everything read from the DB, once.
pub struct Inputs<'a> {
    /// The plex dir.
    pub root: &'a Path,
    /// The DB (for its schema).
    pub db: &'a Db,
    /// Sections and items.
    pub lib: &'a Library,
    /// `tags` rows with images.
    pub tags: Vec<model::Tag>,
    /// New-agent candidates.
    pub candidates: Vec<Candidate>,
    /// Media parts.
    pub parts: Vec<MediaPart>,
}

impl<'a> Inputs<'a> {
    /// Reads tags, candidates and media parts.
    pub fn read(root: &'a Path, db: &'a Db, lib: &'a Library) -> Result<Inputs<'a>> {
        Ok(Inputs {
            root,
            db,
            lib,
            tags: model::read_tags(db)?,
            candidates: model::read_candidates(db)?,
            parts: model::read_media_parts(db)?,
        })
    }
}

/// What stage 2 (and 4) plan for one bundle owner and its family.
#[derive(Default)]
struct OwnerPlan {
    switches: Vec<Switch>,
    uploads: Vec<Change>,
    kept: u64,
    warnings: Vec<String>,
}

/// For each local column of `family`: a switch to its provider URL (new agents: the
/// `taggings` row whose `thumb_url` equals the value; legacy: the `Info.xml` at the value's
/// level), an upload of a frame grab at stage 4 with a host, or "kept local".
fn plan_switches(
    root: &Path,
    family: &[&Item],
    image_columns: &[&'static str],
    bundle: Option<&str>,
    candidates: &HashMap<i64, Vec<&Candidate>>,
    stage: u8,
    host: Option<&str>,
) -> OwnerPlan {
    let mut xml = XmlCache::default();
    let mut plan = OwnerPlan::default();
    for item in family {
        for (col, value) in image_columns.iter().zip(&item.images) {
            let url = ImageUrl::parse(value.as_deref());
            let raw = value.as_deref().unwrap_or_default();
            match &url {
                ImageUrl::Metadata(_) | ImageUrl::Upload(_) => {
                    let found = provider_url(
                        root,
                        bundle,
                        item.id,
                        &url,
                        raw,
                        candidates,
                        &mut xml,
                        &mut plan.warnings,
                    );
                    match found {
                        Some(to) => plan.switches.push(Switch {
                            item: item.id,
                            column: col,
                            from: raw.to_string(),
                            to,
                        }),
                        // Missing or broken files among these: see `super::attention`.
                        None => plan.kept += 1,
                    }
                }
                ImageUrl::Media(_) => match host.filter(|_| stage >= 4) {
                    Some(host) => match upload(root, item.id, col, raw, &url, host) {
                        Ok(Some(change)) => plan.uploads.push(change),
                        Ok(None) => plan.kept += 1,
                        Err(e) => {
                            plan.warnings.push(format!("{e:#}"));
                            plan.kept += 1;
                        }
                    },
                    None => plan.kept += 1,
                },
                _ => {}
            }
        }
    }
    plan
}

/// The provider URL of a local column value: new agents' `taggings` row whose `thumb_url` is
/// the value, else the legacy `Info.xml` entry of its file.
#[allow(clippy::too_many_arguments)]
pub(crate) fn provider_url(
    root: &Path,
    bundle: Option<&str>,
    item: i64,
    url: &ImageUrl,
    raw: &str,
    candidates: &HashMap<i64, Vec<&Candidate>>,
    xml: &mut XmlCache,
    warnings: &mut Vec<String>,
) -> Option<String> {
    candidates
        .get(&item)
        .and_then(|c| c.iter().find(|c| c.thumb_url == raw && is_http(&c.text)))
        .map(|c| c.text.clone())
        .or_else(|| xml_url(root, bundle?, url, xml, warnings))
}

/// A planned column switch.
struct Switch {
    item: i64,
    column: &'static str,
    from: String,
    to: String,
}

/// What plan needs to find hosted links that expire.
pub struct Links<'a> {
    /// The upload ledger (Discord's message and attachment ids).
    pub ledger: &'a Ledger,
    /// Now, unix seconds.
    pub now: i64,
    /// Links expiring before `now + margin` (seconds) are refreshed.
    pub margin: i64,
}

/// How long a freshly signed Discord link lives (its `ex` is its issue time + 24 h).
const DISCORD_LINK_LIFE: i64 = 24 * 3600;

/// Plans the library stages for `sections`. `host` names the stage-4 image host, if any;
/// with `discord`, links that expire within the margin are planned for a refresh.
pub fn plan(
    input: &Inputs<'_>,
    sections: &[SectionStage],
    host: Option<&str>,
    links: &Links<'_>,
) -> Result<LibraryPlan> {
    let lib = input.lib;
    let stage_of: HashMap<i64, u8> = sections.iter().map(|s| (s.id, s.stage)).collect();
    let stage = |item: &Item| item.section_id.and_then(|s| stage_of.get(&s).copied());
    let children = children(lib);
    let owners: Vec<&Item> = lib
        .items
        .iter()
        .filter(|i| {
            matches!(i.metadata_type, types::MOVIE | types::SHOW | types::ARTIST | types::ALBUM)
        })
        .filter(|i| stage(i).is_some())
        .collect();
    let candidates = by_item(&input.candidates);
    let image_columns = &input.db.schema.metadata_items;

    // Stage 2 (and 4): column switches, per bundle owner and its descendants.
    let per_owner: Vec<OwnerPlan> = owners
        .par_iter()
        .map(|owner| {
            let stage = stage(owner).unwrap_or(1);
            if stage < 2 {
                return OwnerPlan::default();
            }
            let family = family(owner, &children, lib);
            let bundle = lib.bundle_of(owner);
            plan_switches(
                input.root,
                &family,
                image_columns,
                bundle.as_deref(),
                &candidates,
                stage,
                host,
            )
        })
        .collect();

    let mut out = LibraryPlan::default();
    let mut switched: HashSet<(i64, &'static str)> = HashSet::new();
    for (owner, item) in per_owner.into_iter().zip(&owners) {
        if owner.kept > 0 {
            *out.kept_local.entry(item.section_id.unwrap_or(0)).or_default() += owner.kept;
        }
        out.warnings.extend(owner.warnings);
        out.changes.extend(owner.uploads);
        for s in owner.switches {
            switched.insert((s.item, s.column));
            out.changes.push(Change::set_url(
                Some(s.item),
                SetUrl {
                    table: "metadata_items".into(),
                    id: s.item,
                    column: s.column.into(),
                    from: Some(s.from),
                    to: s.to,
                },
            ));
        }
    }

    // What stays referenced once the switches are made.
    let all_refs = refs::collect(input.db, lib, &input.tags);
    let in_use = InUse::build(input.root, &all_refs, |r: &ColumnRef| {
        r.table == "metadata_items" && switched.contains(&(r.id, r.column))
    });
    drop(all_refs);

    // Stages 1–2 and 3 read folders: the pass does, once (see `super::pass`).
    out.walks = owners.iter().filter_map(|o| Some((o.id, lib.bundle_of(o)?))).collect();
    out.media = input
        .parts
        .iter()
        .filter_map(|p| {
            let item = lib.item(p.item_id?)?;
            (stage(item)? >= 3).then_some(())?;
            Some((item.id, bundle::media_bundle(p.hash.as_deref()?)?))
        })
        .collect();

    // Hosted links that expire: refreshed through the host that posted them.
    let (mut unknown, mut unconfigured, mut expired) = (0u64, 0u64, 0u64);
    for item in lib.items.iter().filter(|i| stage(i).is_some()) {
        for (col, value) in image_columns.iter().zip(&item.images) {
            let Some(value) = value.as_deref().filter(|v| v.starts_with("http")) else { continue };
            let link = discord::cdn_link(value);
            let entry =
                links.ledger.url(value).filter(|e| e.host == "discord").or_else(|| {
                    link.as_ref().and_then(|l| links.ledger.attachment(&l.attachment_id))
                });
            if entry.is_none() && !link.as_ref().is_some_and(|l| l.on_discord) {
                continue;
            }
            if entry.is_some_and(|e| e.lost) {
                continue; // nothing to refresh: the plan's attention list has it
            }
            let expires = link.as_ref().map(|l| l.expires).or(entry.and_then(|e| e.expires));
            if expires.is_none_or(|ex| ex > links.now + links.margin) {
                continue;
            }
            expired += u64::from(expires.is_some_and(|ex| ex <= links.now));
            let ids = entry.and_then(|e| Some((e.message_id.clone()?, e.attachment_id.clone()?)));
            match (host == Some("discord"), ids) {
                (true, Some((message_id, attachment_id))) => {
                    out.changes.push(Change::refresh_link(
                        Some(item.id),
                        RefreshLink {
                            table: "metadata_items".into(),
                            id: item.id,
                            column: col.to_string(),
                            from: value.to_string(),
                            host: "discord".into(),
                            message_id,
                            attachment_id,
                        },
                    ))
                }
                (true, None) => unknown += 1,
                (false, _) => unconfigured += 1,
            }
        }
    }
    if expired > 0 {
        out.warnings.push(format!(
            "{expired} Discord link(s) have expired already: those images are blank in Plex until apply refreshes them; the schedule is too sparse (run tidyplex at least every 4 h, or use an http-put or dir host, whose links never expire)"
        ));
    }
    if host == Some("discord") && links.margin >= DISCORD_LINK_LIFE {
        out.warnings.push(format!(
            "refresh_margin is {} h, and a fresh Discord link lives at most 24 h: every link is always due, and refreshing gains nothing; use a margin of a few hours",
            links.margin / 3600
        ));
    }
    if unknown > 0 {
        out.warnings.push(format!(
            "{unknown} Discord link(s) expire soon and the upload ledger does not know their webhook message (posted by another tool?); tidyplex cannot refresh them"
        ));
    }
    if unconfigured > 0 {
        out.warnings.push(format!(
            "{unconfigured} Discord link(s) expire soon; configure image_host kind discord (or pass --image-host discord) to refresh them"
        ));
    }

    add_item_info(lib, &out.changes, &mut out.items);
    out.in_use = in_use;
    Ok(out)
}

/// What one bundle's walk found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Deletions of the images nothing references (and of empty folders, when asked).
    pub changes: Vec<Change>,
    /// Files that are neither images nor XML: kept.
    pub unknown: Usage,
    /// Every non-directory entry of the bundle.
    pub entries: Vec<tree::Entry>,
}

/// Images in `bundle` (relative to `root`) that nothing in `in_use` references, as changes of
/// `owner`; with `empty_dirs`, also the folders inside that hold no file at all. A bundle with
/// a link that cannot be followed into the plex dir is refused whole (the error is the warning
/// to show).
pub fn unused_in_bundle(
    root: &Path,
    bundle: &str,
    owner: i64,
    in_use: &InUse,
    empty_dirs: bool,
) -> Result<Findings, String> {
    if let Some(why) = in_use.unresolved(bundle) {
        return Err(why);
    }
    let listing =
        tree::list(&root.join(bundle), bundle).map_err(|e| format!("skipped {bundle}: {e:#}"))?;
    let entries = &listing.entries;

    // Without every link's target, an image behind one could look unused.
    for e in entries.iter().filter(|e| e.is_link) {
        let target = std::fs::read_link(root.join(&e.path))
            .map_err(|err| format!("skipped {bundle}: cannot read the link {}: {err}", e.path))?;
        if refs::link_target(root, &e.path, &target).is_none() {
            return Err(refs::unresolved_message(bundle, &e.path, &target));
        }
    }
    // Each entry classified once: images nothing uses go, unknown files are counted.
    let mut unknown = Usage::default();
    let verdicts: Vec<bool> = entries
        .iter()
        .map(|e| match bundle::content(&e.path) {
            bundle::Content::Image => !in_use.contains_entry(e),
            bundle::Content::Xml => false,
            bundle::Content::Unknown => {
                unknown.files += 1;
                unknown.bytes += e.size;
                false
            }
        })
        .collect();
    let mut changes = tree::changes_of(bundle, entries, &verdicts, 2, Some(owner));
    if empty_dirs {
        let gone: Vec<String> = changes
            .iter()
            .filter_map(|c| c.delete_dir.as_ref().map(|d| format!("{}/", d.path)))
            .collect();
        for dir in listing.empty_dirs(2) {
            if !gone.iter().any(|g| dir.starts_with(g.as_str())) {
                changes.push(tree::empty_dir_change(dir, Some(owner)));
            }
        }
    }
    Ok(Findings { changes, unknown, entries: listing.entries })
}

/// Adds the context of every item `changes` mention to `items`.
pub fn add_item_info(lib: &Library, changes: &[Change], items: &mut BTreeMap<i64, ItemInfo>) {
    for change in changes {
        let Some(id) = change.item else { continue };
        if !items.contains_key(&id) {
            items.extend(item_info(lib, id).map(|info| (id, info)));
        }
    }
}

/// The context of the item `id` a changeset shows (kind, title, section).
pub fn item_info(lib: &Library, id: i64) -> Option<ItemInfo> {
    let item = lib.item(id)?;
    Some(ItemInfo {
        kind: types::name(item.metadata_type).to_string(),
        title: display_title(lib, item),
        section: item.section_id,
    })
}

/// `Show – S01E02 – Title` for episodes, `Show – Season 1` for seasons, else the title.
pub(crate) fn display_title(lib: &Library, item: &Item) -> String {
    let show = lib.bundle_owner(item).filter(|o| o.id != item.id).map(|o| o.title.as_str());
    match (item.metadata_type, show) {
        (types::SEASON, Some(show)) => format!("{show} – Season {}", item.index.unwrap_or(0)),
        (types::EPISODE, Some(show)) => {
            let season = lib.item(item.parent_id.unwrap_or(0)).and_then(|s| s.index).unwrap_or(0);
            format!("{show} – S{season:02}E{:02} – {}", item.index.unwrap_or(0), item.title)
        }
        _ => item.title.clone(),
    }
}

/// Parent id → child items.
fn children(lib: &Library) -> HashMap<i64, Vec<&Item>> {
    let mut map: HashMap<i64, Vec<&Item>> = HashMap::new();
    for item in &lib.items {
        if let Some(p) = item.parent_id {
            map.entry(p).or_default().push(item);
        }
    }
    map
}

/// A bundle owner and the items whose images live in its bundle (a show's seasons and
/// episodes, an album's tracks).
fn family<'a>(
    owner: &'a Item,
    children: &HashMap<i64, Vec<&'a Item>>,
    lib: &Library,
) -> Vec<&'a Item> {
    let mut out = vec![owner];
    let mut i = 0;
    while i < out.len() {
        for child in children.get(&out[i].id).into_iter().flatten() {
            let same_bundle = lib.bundle_owner(child).is_some_and(|o| o.id == owner.id);
            if same_bundle && !out.iter().any(|x| x.id == child.id) {
                out.push(child);
            }
        }
        i += 1;
    }
    out
}

pub(crate) fn by_item(candidates: &[Candidate]) -> HashMap<i64, Vec<&Candidate>> {
    let mut map: HashMap<i64, Vec<&Candidate>> = HashMap::new();
    for c in candidates {
        map.entry(c.item_id).or_default().push(c);
    }
    map
}

/// A provider URL worth switching to: http(s), and one a changeset may carry.
pub(crate) fn is_http(url: &str) -> bool {
    crate::changeset::is_writable_url(url)
}

/// Plex's broken-image placeholder: a tiny file (through a symlink too) holding `None`.
pub fn is_placeholder(path: &Path) -> bool {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() <= 10 => {
            std::fs::read(path).is_ok_and(|b| b.trim_ascii() == b"None")
        }
        _ => false,
    }
}

/// Parsed `Info.xml` files of one bundle, each read at most once.
#[derive(Default)]
pub(crate) struct XmlCache(HashMap<String, Option<InfoXml>>);

/// The provider URL the legacy `Info.xml` at the value's level lists for its file:
/// `metadata://[seasons/<n>/[episodes/<m>/]]<list>/<file>` is looked up in `_combined/Info.xml`,
/// `_combined/seasons/<n>.xml` or `_combined/seasons/<n>/episodes/<m>.xml`.
fn xml_url(
    root: &Path,
    bundle: &str,
    url: &ImageUrl,
    cache: &mut XmlCache,
    warnings: &mut Vec<String>,
) -> Option<String> {
    let ImageUrl::Metadata(rest) = url else { return None };
    let parts: Vec<&str> = rest.split('/').collect();
    let (xml, list, file) = match parts.as_slice() {
        [list, file] => ("Info.xml".to_string(), *list, *file),
        ["seasons", n, list, file] => (format!("seasons/{n}.xml"), *list, *file),
        ["seasons", n, "episodes", m, list, file] => {
            (format!("seasons/{n}/episodes/{m}.xml"), *list, *file)
        }
        _ => return None,
    };
    let path = format!("{bundle}/Contents/_combined/{xml}");
    let info =
        cache.0.entry(path.clone()).or_insert_with(|| match std::fs::read(root.join(&path)) {
            Ok(bytes) => match InfoXml::parse(&bytes) {
                Ok(info) => Some(info),
                Err(e) => {
                    warnings.push(format!("{path}: {e}; its images stay local"));
                    None
                }
            },
            Err(_) => None,
        });
    let found = info.as_ref()?.find(list, file)?;
    is_http(&found.url).then(|| found.url.clone())
}

/// An `upload` change for a frame-grab column, when its file exists.
fn upload(
    root: &Path,
    item: i64,
    column: &'static str,
    raw: &str,
    url: &ImageUrl,
    host: &str,
) -> Result<Option<Change>> {
    use anyhow::Context as _;
    let Some(path) = url.resolve(None) else { return Ok(None) };
    let abs = root.join(&path);
    let Ok(meta) = std::fs::symlink_metadata(&abs) else { return Ok(None) };
    if !meta.is_file() {
        return Ok(None);
    }
    if host == "discord" && meta.len() > discord::DISCORD_MAX_BYTES {
        anyhow::bail!("{path} is larger than Discord's 10 MiB limit; it stays local");
    }
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(std::fs::File::open(&abs).with_context(|| format!("cannot read {path}"))?)
        .with_context(|| format!("cannot read {path}"))?;
    Ok(Some(Change::upload(
        Some(item),
        Upload {
            path,
            size: meta.len(),
            blake3: hasher.finalize().to_hex().to_string(),
            table: "metadata_items".into(),
            id: item,
            column: column.into(),
            from: Some(raw.to_string()),
            host: host.to_string(),
        },
    )))
}
