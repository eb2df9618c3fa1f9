//! Writing the upload ledger: records are appended and synced, one at a time. Reading it is
//! [`crate::plex::ledger`]'s.

use std::io::Write as _;
use std::sync::Mutex;

pub use crate::plex::ledger::{Entry, Ledger, FILE};

/// One append at a time, across threads.
static APPEND: Mutex<()> = Mutex::new(());

/// Appending to the ledger.
pub trait Record {
    /// Appends `entry` and syncs it to disk before returning. (The in-memory view stays as
    /// read: one apply never asks for what it recorded itself.)
    fn record(&self, entry: &Entry) -> std::io::Result<()>;
}

impl Record for Ledger {
    fn record(&self, entry: &Entry) -> std::io::Result<()> {
        let Some(path) = self.path() else { return Ok(()) };
        let _guard = APPEND.lock().unwrap_or_else(|e| e.into_inner());
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
    use crate::plex::hosted::{DiscordIds, Hosted};

    #[test]
    fn the_last_record_wins_and_torn_lines_are_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("state").join(FILE);
        let ledger = Ledger::load(&path).unwrap();
        let hosted = |url: &str, ex| Hosted {
            url: url.into(),
            expires: Some(ex),
            discord: Some(DiscordIds {
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
