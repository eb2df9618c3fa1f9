//! Everything tidyplex knows about a Plex data folder, read-only.

pub mod api;
pub mod bundle;
pub mod columns;
pub mod db;
pub mod hosted;
pub mod infoxml;
pub mod ledger;
pub mod locate;
pub mod model;
pub mod url;

use serde::{Deserialize, Serialize};

pub use url::{ColumnState, ImageUrl};

/// The library DB, relative to the plex dir.
pub const DB_PATH: &str = "Plug-in Support/Databases/com.plexapp.plugins.library.db";

/// The PhotoTranscoder cache, relative to the plex dir (everywhere but macOS).
pub const PHOTO_TRANSCODER_PATH: &str = "Cache/PhotoTranscoder";

/// How the FTS triggers on `metadata_items` are declared (design.md §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum TriggerForm {
    /// `BEFORE/AFTER UPDATE ON metadata_items`: fires on any column (before Plex 1.43).
    Broad,
    /// `UPDATE OF title, title_sort, original_title`: image columns are free to write (1.43).
    Scoped,
    /// No FTS triggers at all (a stripped DB).
    Absent,
}

/// How many image columns are in each [`ColumnState`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnCounts {
    /// http(s) URLs: done.
    pub http: u64,
    /// `metadata://` / `upload://` files.
    pub local: u64,
    /// `media://` frame grabs.
    pub media: u64,
    /// NULL or empty.
    pub empty: u64,
    /// Unknown schemes.
    pub other: u64,
}

impl ColumnCounts {
    /// Counts one more value in `state`.
    pub fn add(&mut self, state: ColumnState) {
        match state {
            ColumnState::Http => self.http += 1,
            ColumnState::Local => self.local += 1,
            ColumnState::Media => self.media += 1,
            ColumnState::Empty => self.empty += 1,
            ColumnState::Other => self.other += 1,
        }
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &ColumnCounts) {
        self.http += other.http;
        self.local += other.local;
        self.media += other.media;
        self.empty += other.empty;
        self.other += other.other;
    }

    /// Values still pointing at a local file (`local` + `media`).
    pub fn still_local(&self) -> u64 {
        self.local + self.media
    }

    /// All values counted.
    pub fn total(&self) -> u64 {
        self.http + self.local + self.media + self.empty + self.other
    }
}
