//! The upload ledger (design.md §4.11): a content-addressed record of every hosted copy,
//! `blake3 → host, URL, ids, expiry`, as JSON lines in tidyplex's state folder. A record is
//! written (and synced) right after an upload and before the DB write that uses it, so a crash
//! in between never uploads the same bytes twice; Discord's ids in it make links refreshable.
//! Append-only: the last record of a key wins.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::Hosted;

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
            (Some(w), Some(m), Some(a)) => Some(super::DiscordIds {
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
    append: Mutex<()>,
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
            super::discord::cdn_link(url).and_then(|l| self.attachment(&l.attachment_id).cloned())
        };
        self.url(url).cloned().or_else(by_attachment).is_some_and(|e| e.lost)
    }

    /// Appends `entry` and syncs it to disk before returning. (The in-memory view stays as
    /// read: one apply never asks for what it recorded itself.)
    pub fn record(&self, entry: &Entry) -> std::io::Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let _guard = self.append.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file =
            std::fs::OpenOptions::new().read(true).append(true).create(true).open(path)?;
        let mut line = serde_json::to_string(entry).map_err(std::io::Error::other)?;
        line.push('\n');
        if ends_torn(&mut file)? {
            line.insert(0, '\n'); // a crash cut the last line short: start a fresh one
        }
        file.write_all(line.as_bytes())?;
        file.sync_data()
    }
}

/// Whether the file's last byte is not a newline.
fn ends_torn(file: &mut std::fs::File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    if file.metadata()?.len() == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_record_wins_and_torn_lines_are_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("state").join(FILE);
        let ledger = Ledger::load(&path).unwrap();
        let hosted = |url: &str, ex| Hosted {
            url: url.into(),
            expires: Some(ex),
            discord: Some(super::super::DiscordIds {
                webhook_id: "1".into(),
                channel_id: None,
                message_id: "2".into(),
                attachment_id: "3".into(),
            }),
        };
        ledger.record(&Entry::of(&"a".repeat(64), "discord", &hosted("https://x/1", 10))).unwrap();
        ledger.record(&Entry::of(&"a".repeat(64), "discord", &hosted("https://x/2", 20))).unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"blake3\": \"torn").unwrap();
        drop(f);
        let ledger = Ledger::load(&path).unwrap();
        let plain = Hosted { url: "https://x/3".into(), expires: None, discord: None };
        ledger.record(&Entry::of(&"b".repeat(64), "dir", &plain)).unwrap();
        let ledger = Ledger::load(&path).unwrap();
        assert_eq!(ledger.get(&"b".repeat(64), "dir").unwrap().url, "https://x/3");
        let e = ledger.get(&"A".repeat(64), "discord").unwrap();
        assert_eq!((e.url.as_str(), e.expires), ("https://x/2", Some(20)));
        assert_eq!(ledger.attachment("3").unwrap().url, "https://x/2");
        assert!(ledger.url("https://x/1").is_some());
        assert!(ledger.get(&"a".repeat(64), "dir").is_none());
        assert_eq!(e.hosted().discord.unwrap().message_id, "2");
    }
}
