//! The upload ledger (design.md §4.11), read side: a content-addressed record of every hosted copy,
//! `blake3 → host, URL, ids, expiry`, as JSON lines in tidyplex's state folder. A record is
//! written (and synced) right after an upload and before the DB write that uses it, so a crash
//! in between never uploads the same bytes twice; Discord's ids in it make links refreshable.
//! Append-only: the last record of a key wins.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::hosted::Hosted;

/// The ledger's file name in the state folder.
pub const FILE: &str = "uploads.jsonl";

/// One hosted copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// blake3 of the bytes (hex).
    pub blake3: String,
    /// The host's name.
    pub host: String,
    /// The URL written to the DB.
    pub url: String,
    /// When the link expires (unix seconds), for signed links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
    /// Discord: the webhook's id (never its token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<String>,
    /// Discord: the channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
    /// Discord: the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Discord: the attachment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment_id: Option<String>,
    /// When it was recorded (RFC 3339).
    pub at: String,
    /// The host lost the copy (a deleted Discord message): its link can never be refreshed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lost: bool,
}

impl Entry {
    /// The record of `hosted`, a copy of `blake3` on `host`.
    pub fn of(blake3: &str, host: &str, hosted: &Hosted) -> Entry {
        let d = hosted.discord.as_ref();
        Entry {
            blake3: blake3.to_ascii_lowercase(),
            host: host.to_string(),
            url: hosted.url.clone(),
            expires: hosted.expires,
            webhook_id: d.map(|d| d.webhook_id.clone()),
            channel_id: d.and_then(|d| d.channel_id.clone()),
            message_id: d.map(|d| d.message_id.clone()),
            attachment_id: d.map(|d| d.attachment_id.clone()),
            at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            lost: false,
        }
    }

    /// The copy it records.
    pub fn hosted(&self) -> Hosted {
        let discord = match (&self.webhook_id, &self.message_id, &self.attachment_id) {
            (Some(w), Some(m), Some(a)) => Some(super::hosted::DiscordIds {
                webhook_id: w.clone(),
                channel_id: self.channel_id.clone(),
                message_id: m.clone(),
                attachment_id: a.clone(),
            }),
            _ => None,
        };
        Hosted { url: self.url.clone(), expires: self.expires, discord }
    }
}

/// The ledger as read at the start of a plan or apply, and its file for new records.
#[derive(Debug, Default)]
pub struct Ledger {
    path: Option<PathBuf>,
    by_content: HashMap<(String, String), Entry>,
    by_attachment: HashMap<String, Entry>,
    by_url: HashMap<String, Entry>,
}

impl Ledger {
    /// Reads the ledger at `path` (missing: empty). Unreadable lines (a torn last write) are
    /// skipped.
    pub fn load(path: &Path) -> std::io::Result<Ledger> {
        let mut ledger = Ledger { path: Some(path.to_path_buf()), ..Ledger::default() };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<Entry>(line) {
                Ok(entry) => ledger.index(entry),
                Err(e) => tracing::warn!("{}: skipped an unreadable line: {e}", path.display()),
            }
        }
        Ok(ledger)
    }

    /// The file it was read from (none for an empty, in-memory ledger).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The ledger of tidyplex's state folder.
    pub fn in_state_dir(state: &Path) -> std::io::Result<Ledger> {
        Ledger::load(&state.join(FILE))
    }

    fn index(&mut self, entry: Entry) {
        if let Some(a) = &entry.attachment_id {
            self.by_attachment.insert(a.clone(), entry.clone());
        }
        self.by_url.insert(entry.url.clone(), entry.clone());
        self.by_content.insert((entry.blake3.clone(), entry.host.clone()), entry);
    }

    /// The latest copy of `blake3` on `host`.
    pub fn get(&self, blake3: &str, host: &str) -> Option<&Entry> {
        self.by_content.get(&(blake3.to_ascii_lowercase(), host.to_string()))
    }

    /// The latest record of a Discord attachment.
    pub fn attachment(&self, id: &str) -> Option<&Entry> {
        self.by_attachment.get(id)
    }

    /// The record whose URL is `url`.
    pub fn url(&self, url: &str) -> Option<&Entry> {
        self.by_url.get(url)
    }

    /// Whether the hosted copy behind `url` (a link tidyplex wrote, or any link of the same
    /// Discord attachment) is lost at its host.
    pub fn is_lost(&self, url: &str) -> bool {
        let by_attachment = || {
            super::hosted::cdn_link(url).and_then(|l| self.attachment(&l.attachment_id).cloned())
        };
        self.url(url).cloned().or_else(by_attachment).is_some_and(|e| e.lost)
    }
}
