//! Items that need Plex's attention: tidyplex cannot fix them, Plex can.
//!
//! - a selected image (`metadata://`/`upload://`) whose file is missing or is Plex's broken
//!   `None` placeholder, with no provider URL to switch to: a metadata **refresh** downloads it
//!   again;
//! - a movie or episode whose `media://` frame grab is missing: an **analyze** makes it again;
//! - a column pointing at a hosted copy its host lost (a deleted Discord message, recorded in
//!   the upload ledger): an **analyze** makes the frame grab again.
//!
//! `plan`/`status` list them; `plan --repair` turns them into `plex_call` changes.

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

use super::library::{self, Inputs, XmlCache};
use crate::changeset::{Change, ItemInfo, PlexAction, PlexCall};
use crate::plex::model::types;
use crate::plex::ImageUrl;

/// What is wrong with a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// The file the column names does not exist (or is a dangling link).
    Missing,
    /// The file is Plex's 4-byte `None` placeholder.
    Broken,
    /// The `media://` frame grab does not exist.
    MissingFrameGrab,
    /// The column points at a hosted copy its host lost (a deleted Discord message).
    LostHostedCopy,
}

impl Problem {
    /// Words for a message.
    pub fn text(self) -> &'static str {
        match self {
            Problem::Missing => "image file is missing and no provider URL is known",
            Problem::Broken => {
                "image file is Plex's broken `None` placeholder and no provider URL is known"
            }
            Problem::MissingFrameGrab => "frame grab is missing",
            Problem::LostHostedCopy => "hosted copy is lost at its host (its message was deleted)",
        }
    }
}

/// One column of one item that needs Plex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attention {
    /// `metadata_items.id`.
    pub item: i64,
    /// movie, show, season, episode, artist, album.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Display title.
    pub title: String,
    /// Section id.
    pub section: Option<i64>,
    /// The image column.
    pub column: &'static str,
    /// Its value.
    pub value: String,
    /// What is wrong.
    pub problem: Problem,
    /// What Plex should do about it.
    pub action: PlexAction,
}

impl Attention {
    /// `refresh movie 7 "Heat": thumb image file is missing …`.
    pub fn describe(&self) -> String {
        format!(
            "{} {} {} {:?}: {} {}",
            self.action.as_str(),
            self.kind,
            self.item,
            self.title,
            crate::plex::columns::short_name(self.column),
            self.problem.text()
        )
    }
}

/// The items of `sections` (movies, shows, seasons, episodes, artists, albums) that need Plex,
/// one entry per column, by item and column. A missing local image whose provider URL is known
/// needs Plex only where `switched(section)` is false (below stage 2, where nothing switches
/// it to that URL: after an undo of files that are gone, say).
pub fn find(
    input: &Inputs<'_>,
    sections: &[i64],
    switched: &(dyn Fn(i64) -> bool + Sync),
    lost: &(dyn Fn(&str) -> bool + Sync),
) -> Vec<Attention> {
    let lib = input.lib;
    let candidates = library::by_item(&input.candidates);
    let columns = &input.db.schema.metadata_items;
    let mut found: Vec<Attention> = lib
        .items
        .par_iter()
        .filter(|i| types::CLEANED.contains(&i.metadata_type))
        .filter(|i| i.section_id.is_some_and(|s| sections.contains(&s)))
        .flat_map_iter(|item| {
            let bundle = lib.bundle_of(item);
            let mut out = Vec::new();
            let mut xml = XmlCache::default();
            for (col, value) in columns.iter().zip(&item.images) {
                let raw = value.as_deref().unwrap_or_default();
                let url = ImageUrl::parse(value.as_deref());
                let (problem, action) = match &url {
                    ImageUrl::Metadata(_) | ImageUrl::Upload(_) => {
                        let Some(path) = url.resolve(bundle.as_deref()) else { continue };
                        let problem = match file_state(input.root, &path) {
                            FileState::Fine => continue,
                            FileState::Missing => Problem::Missing,
                            FileState::Placeholder => Problem::Broken,
                        };
                        let mut ignored = Vec::new();
                        let known = library::provider_url(
                            input.root,
                            bundle.as_deref(),
                            item.id,
                            &url,
                            raw,
                            &candidates,
                            &mut xml,
                            &mut ignored,
                        );
                        if known.is_some() && item.section_id.is_none_or(switched) {
                            continue; // stage 2 switches it to that URL
                        }
                        (problem, PlexAction::Refresh)
                    }
                    ImageUrl::Http(_) if lost(raw) => {
                        (Problem::LostHostedCopy, PlexAction::Analyze)
                    }
                    ImageUrl::Media(_)
                        if matches!(item.metadata_type, types::MOVIE | types::EPISODE) =>
                    {
                        let Some(path) = url.resolve(None) else { continue };
                        if file_state(input.root, &path) != FileState::Missing {
                            continue;
                        }
                        (Problem::MissingFrameGrab, PlexAction::Analyze)
                    }
                    _ => continue,
                };
                out.push(Attention {
                    item: item.id,
                    kind: types::name(item.metadata_type),
                    title: library::display_title(lib, item),
                    section: item.section_id,
                    column: col,
                    value: raw.to_string(),
                    problem,
                    action,
                });
            }
            out
        })
        .collect();
    found.sort_by(|a, b| (a.section, a.item, a.column).cmp(&(b.section, b.item, b.column)));
    found
}

#[derive(PartialEq, Eq)]
enum FileState {
    Fine,
    Missing,
    Placeholder,
}

fn file_state(root: &Path, rel: &str) -> FileState {
    let abs = root.join(rel);
    match std::fs::metadata(&abs) {
        Err(_) => FileState::Missing,
        Ok(_) if library::is_placeholder(&abs) => FileState::Placeholder,
        Ok(_) => FileState::Fine,
    }
}

/// One `plex_call` change per item and action (the first column found is its precondition),
/// with the items' context.
pub fn changes(found: &[Attention]) -> (Vec<Change>, BTreeMap<i64, ItemInfo>) {
    let mut changes = Vec::new();
    let mut items = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for a in found {
        if !seen.insert((a.item, a.action)) {
            continue;
        }
        changes.push(Change::plex_call(
            Some(a.item),
            PlexCall {
                action: a.action,
                id: a.item,
                column: a.column.to_string(),
                from: a.value.clone(),
            },
        ));
        items.insert(
            a.item,
            ItemInfo { kind: a.kind.to_string(), title: a.title.clone(), section: a.section },
        );
    }
    (changes, items)
}
