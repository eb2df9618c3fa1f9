//! The read-only Plex model: sections, items with their parent chain, image columns,
//! `tags`, `taggings` candidates and media parts, each read with one query.

use std::collections::HashMap;

use rusqlite::Row;
use serde::Serialize;

use super::bundle::{self, Kind};
use super::db::{Db, DbError};
use super::ImageUrl;

/// `metadata_type` values tidyplex cares about.
pub mod types {
    /// A movie.
    pub const MOVIE: i64 = 1;
    /// A TV show.
    pub const SHOW: i64 = 2;
    /// A season (parent: the show).
    pub const SEASON: i64 = 3;
    /// An episode (parent: the season).
    pub const EPISODE: i64 = 4;
    /// A music artist.
    pub const ARTIST: i64 = 8;
    /// An album (parent: the artist).
    pub const ALBUM: i64 = 9;
    /// A track (parent: the album).
    pub const TRACK: i64 = 10;
    /// A playlist.
    pub const PLAYLIST: i64 = 15;
    /// A collection.
    pub const COLLECTION: i64 = 18;

    /// Types whose image columns count towards "done" (design.md §1).
    pub const CLEANED: [i64; 6] = [MOVIE, SHOW, SEASON, EPISODE, ARTIST, ALBUM];

    /// A user-facing name for a `metadata_type`.
    pub fn name(t: i64) -> &'static str {
        match t {
            MOVIE => "movie",
            SHOW => "show",
            SEASON => "season",
            EPISODE => "episode",
            ARTIST => "artist",
            ALBUM => "album",
            TRACK => "track",
            PLAYLIST => "playlist",
            COLLECTION => "collection",
            12 => "clip",
            13 => "photo",
            14 => "photo album",
            _ => "item",
        }
    }
}

/// A library section.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    /// `library_sections.id`.
    pub id: i64,
    /// Display name (any script).
    pub name: String,
    /// 1 movie, 2 show, 8 music, 13 photo.
    pub section_type: i64,
    /// Metadata agent (`tv.plex.agents.movie`, `com.plexapp.agents.imdb`, …).
    pub agent: String,
    /// Image columns of the section row, in [`super::db::Schema::library_sections`] order.
    pub images: Vec<Option<String>>,
}

impl Section {
    /// A user-facing name for the section type.
    pub fn type_name(&self) -> &'static str {
        match self.section_type {
            1 => "movie",
            2 => "show",
            8 => "music",
            13 => "photo",
            _ => "other",
        }
    }

    /// Whether library cleanup covers this section (movie, show and music sections).
    pub fn is_cleanable(&self) -> bool {
        matches!(self.section_type, 1 | 2 | 8)
    }
}

/// One `metadata_items` row.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// `id`.
    pub id: i64,
    /// `library_section_id` (NULL for playlists and some collections).
    pub section_id: Option<i64>,
    /// `parent_id`: season of an episode, show of a season, album of a track, artist of an album.
    pub parent_id: Option<i64>,
    /// `metadata_type`.
    pub metadata_type: i64,
    /// `title`.
    pub title: String,
    /// `index` (season or episode number).
    pub index: Option<i64>,
    /// `hash`, names the item's bundle; never recomputed.
    pub hash: Option<String>,
    /// Image columns, in [`super::db::Schema::metadata_items`] order.
    pub images: Vec<Option<String>>,
}

/// One `tags` row with an image.
#[derive(Debug, Clone, Serialize)]
pub struct Tag {
    /// `id`.
    pub id: i64,
    /// `tag`.
    pub tag: String,
    /// `tag_type`.
    pub tag_type: i64,
    /// `metadata_item_id` (collections keep their item here).
    pub metadata_item_id: Option<i64>,
    /// Image columns, in [`super::db::Schema::tags`] order.
    pub images: Vec<Option<String>>,
}

/// A `taggings` row that offers an image (new agents): `thumb_url` is the local name, `text`
/// the provider's URL.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// `metadata_item_id`.
    pub item_id: i64,
    /// `tags.tag_type` of the tagging's tag (312 poster, 313 art, …), when the tag exists.
    pub tag_type: Option<i64>,
    /// `index`.
    pub index: Option<i64>,
    /// `text`: the provider URL.
    pub text: String,
    /// `thumb_url`: the `metadata://` name.
    pub thumb_url: String,
}

/// A `media_parts` row with the item it belongs to.
#[derive(Debug, Clone, Serialize)]
pub struct MediaPart {
    /// `media_parts.id`.
    pub id: i64,
    /// `media_items.metadata_item_id`.
    pub item_id: Option<i64>,
    /// `hash`: names the Media bundle.
    pub hash: Option<String>,
    /// `file`: the media file.
    pub file: Option<String>,
}

/// Everything the planners need from the DB, read once.
#[derive(Debug, Default)]
pub struct Library {
    /// All sections, by id.
    pub sections: Vec<Section>,
    /// All items, by id.
    pub items: Vec<Item>,
    index: HashMap<i64, usize>,
}

impl Library {
    /// Reads every section and item.
    pub fn read(db: &Db) -> Result<Library, DbError> {
        let sections = read_sections(db)?;
        let items = read_items(db)?;
        let index = items.iter().enumerate().map(|(i, it)| (it.id, i)).collect();
        Ok(Library { sections, items, index })
    }

    /// The item with `id`.
    pub fn item(&self, id: i64) -> Option<&Item> {
        self.index.get(&id).map(|&i| &self.items[i])
    }

    /// The item's ancestors, nearest first (episode → season → show; track → album → artist).
    /// Stops at a missing parent or a loop.
    pub fn ancestors(&self, item: &Item) -> Vec<&Item> {
        let mut chain: Vec<&Item> = Vec::new();
        let mut next = item.parent_id;
        while let Some(parent) = next.and_then(|id| self.item(id)) {
            if parent.id == item.id || chain.iter().any(|c| c.id == parent.id) || chain.len() > 8 {
                break;
            }
            chain.push(parent);
            next = parent.parent_id;
        }
        chain
    }

    /// The item that owns the Metadata bundle `item`'s images live in: itself, or for seasons
    /// and episodes the show, for tracks the album.
    pub fn bundle_owner<'a>(&'a self, item: &'a Item) -> Option<&'a Item> {
        let wanted = match item.metadata_type {
            types::SEASON | types::EPISODE => types::SHOW,
            types::TRACK => types::ALBUM,
            _ => return Some(item),
        };
        self.ancestors(item).into_iter().find(|a| a.metadata_type == wanted)
    }

    /// The Metadata bundle (relative to the plex dir) `item`'s `metadata://` and `upload://`
    /// values resolve in.
    pub fn bundle_of(&self, item: &Item) -> Option<String> {
        let owner = self.bundle_owner(item)?;
        let kind = Kind::of_metadata_type(owner.metadata_type)?;
        bundle::metadata_bundle(kind, owner.hash.as_deref()?)
    }

    /// The files (relative to the plex dir) an item's image columns point at, with the column.
    pub fn local_files<'a>(
        &self,
        item: &'a Item,
        columns: &'a [&'static str],
    ) -> Vec<(&'static str, String)> {
        let bundle = self.bundle_of(item);
        columns
            .iter()
            .zip(&item.images)
            .filter_map(|(col, v)| {
                ImageUrl::parse(v.as_deref()).resolve(bundle.as_deref()).map(|p| (*col, p))
            })
            .collect()
    }
}

fn read_sections(db: &Db) -> Result<Vec<Section>, DbError> {
    let cols = &db.schema.library_sections;
    let sql = format!(
        "SELECT id, coalesce(name, ''), coalesce(section_type, 0), coalesce(agent, ''){} \
         FROM library_sections ORDER BY id",
        extra_columns(cols)
    );
    query(db, &sql, |r| {
        Ok(Section {
            id: r.get(0)?,
            name: r.get(1)?,
            section_type: r.get(2)?,
            agent: r.get(3)?,
            images: images(r, 4, cols.len())?,
        })
    })
}

fn read_items(db: &Db) -> Result<Vec<Item>, DbError> {
    let cols = &db.schema.metadata_items;
    let sql = format!(
        "SELECT id, library_section_id, parent_id, coalesce(metadata_type, 0), coalesce(title, ''), \
         \"index\", hash{} FROM metadata_items ORDER BY id",
        extra_columns(cols)
    );
    query(db, &sql, |r| {
        Ok(Item {
            id: r.get(0)?,
            section_id: r.get(1)?,
            parent_id: r.get(2)?,
            metadata_type: r.get(3)?,
            title: r.get(4)?,
            index: r.get(5)?,
            hash: r.get(6)?,
            images: images(r, 7, cols.len())?,
        })
    })
}

/// `tags` rows that hold at least one image value.
pub fn read_tags(db: &Db) -> Result<Vec<Tag>, DbError> {
    let cols = &db.schema.tags;
    let any =
        cols.iter().map(|c| format!("coalesce({c}, '') != ''")).collect::<Vec<_>>().join(" OR ");
    let sql = format!(
        "SELECT id, coalesce(tag, ''), coalesce(tag_type, 0), metadata_item_id{} FROM tags \
         WHERE {} ORDER BY id",
        extra_columns(cols),
        if any.is_empty() { "0".to_string() } else { any }
    );
    query(db, &sql, |r| {
        Ok(Tag {
            id: r.get(0)?,
            tag: r.get(1)?,
            tag_type: r.get(2)?,
            metadata_item_id: r.get(3)?,
            images: images(r, 4, cols.len())?,
        })
    })
}

/// `taggings` rows whose `thumb_url` is the current value of one of their item's image columns:
/// the selected image candidates of the new agents, with the provider URL in `text`. (The
/// other candidates are never needed, and on a large library they are most rows.)
pub fn read_candidates(db: &Db) -> Result<Vec<Candidate>, DbError> {
    let selected =
        db.schema.metadata_items.iter().map(|c| format!("m.{c}")).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "SELECT g.metadata_item_id, t.tag_type, g.\"index\", coalesce(g.text, ''), g.thumb_url \
         FROM taggings g JOIN metadata_items m ON m.id = g.metadata_item_id \
         LEFT JOIN tags t ON t.id = g.tag_id \
         WHERE coalesce(g.thumb_url, '') != '' AND g.thumb_url IN ({selected}) \
         ORDER BY g.metadata_item_id, g.id"
    );
    query(db, &sql, |r| {
        Ok(Candidate {
            item_id: r.get(0)?,
            tag_type: r.get(1)?,
            index: r.get(2)?,
            text: r.get(3)?,
            thumb_url: r.get(4)?,
        })
    })
}

/// Every media part with its item.
pub fn read_media_parts(db: &Db) -> Result<Vec<MediaPart>, DbError> {
    query(
        db,
        "SELECT p.id, i.metadata_item_id, p.hash, p.file FROM media_parts p \
         LEFT JOIN media_items i ON i.id = p.media_item_id ORDER BY p.id",
        |r| Ok(MediaPart { id: r.get(0)?, item_id: r.get(1)?, hash: r.get(2)?, file: r.get(3)? }),
    )
}

fn extra_columns(cols: &[&str]) -> String {
    cols.iter().map(|c| format!(", {c}")).collect()
}

fn images(r: &Row<'_>, from: usize, n: usize) -> rusqlite::Result<Vec<Option<String>>> {
    (from..from + n).map(|i| r.get(i)).collect()
}

fn query<T>(
    db: &Db,
    sql: &str,
    f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, DbError> {
    let mut stmt = db.conn().prepare(sql).map_err(|e| db.error(e))?;
    let rows = stmt.query_map([], f).map_err(|e| db.error(e))?;
    rows.collect::<Result<Vec<_>, _>>().map_err(|e| db.error(e))
}
