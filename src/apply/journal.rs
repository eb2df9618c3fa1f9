//! The journal of each apply, `<state>/journal/<id>.jsonl`: when it ran, every DB value it
//! replaced (recorded before the write commits), what it removed and whether it kept it, and
//! later its undo and the purge of its trash. An apply that did not finish is reported by the
//! next one; `history` lists them and `undo` reads them back.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// What kind of change wrote a value (undo puts back `set_url` and `upload` values; a
/// refreshed link is not put back: the old one expires).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A column switched to its provider URL.
    SetUrl,
    /// A frame grab's column pointed at its hosted copy.
    Upload,
    /// A hosted link replaced by a freshly signed one.
    Refresh,
}

/// One DB value an apply replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Value {
    /// The table.
    pub table: String,
    /// The row id.
    pub id: i64,
    /// The column.
    pub column: String,
    /// What it held before.
    pub old: Option<String>,
    /// What apply wrote.
    pub new: Option<String>,
    /// Which change wrote it.
    pub kind: Kind,
}

/// One line of a journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Apply began.
    Started {
        /// When (RFC 3339).
        at: String,
        /// Where the changeset came from.
        changeset: String,
        /// How many changes it holds.
        changes: usize,
        /// With `--keep`: until when the trash holds what it removes (RFC 3339).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keep_until: Option<String>,
    },
    /// DB values about to be committed (one batch).
    Values {
        /// The values.
        values: Vec<Value>,
    },
    /// The DB writes committed.
    DbDone {
        /// When (RFC 3339).
        at: String,
        /// How many writes were applied.
        applied: u64,
    },
    /// Apply ended.
    Finished {
        /// When (RFC 3339).
        at: String,
        /// Files removed (deleted, or moved into the trash).
        #[serde(default)]
        files: u64,
        /// Bytes they held.
        #[serde(default)]
        bytes: u64,
    },
    /// An undo of this apply began.
    UndoStarted {
        /// When (RFC 3339).
        at: String,
    },
    /// The undo ended with nothing left to put back.
    Undone {
        /// When (RFC 3339).
        at: String,
    },
    /// The trash of this apply was emptied.
    Purged {
        /// When (RFC 3339).
        at: String,
    },
}

/// The current time, RFC 3339.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// The folder of the journals.
pub fn dir(state: &Path) -> PathBuf {
    state.join("journal")
}

/// A journal being written.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    /// The apply's id.
    pub id: u64,
}

impl Journal {
    /// Starts the journal of a new apply numbered `id` ([`next_id`], taken under the lock).
    pub fn begin(
        state: &Path,
        id: u64,
        changeset: &str,
        changes: usize,
        keep_until: Option<SystemTime>,
    ) -> Result<Journal> {
        let dir = dir(state);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the journal folder {}", dir.display()))?;
        let journal = Journal { path: dir.join(format!("{id}.jsonl")), id };
        std::fs::write(&journal.path, "")
            .with_context(|| format!("cannot write the journal {}", journal.path.display()))?;
        let keep_until = keep_until.map(|t| humantime::format_rfc3339_seconds(t).to_string());
        journal.record(&Event::Started {
            at: now(),
            changeset: changeset.to_string(),
            changes,
            keep_until,
        })?;
        Ok(journal)
    }

    /// The journal of apply `id`, to append to.
    pub fn open(state: &Path, id: u64) -> Journal {
        Journal { path: dir(state).join(format!("{id}.jsonl")), id }
    }

    /// Records DB values before they commit (on disk before the commit can be).
    pub fn values(&self, values: Vec<Value>) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        self.record(&Event::Values { values })
    }

    /// Records that the DB writes committed.
    pub fn db_done(&self, applied: u64) -> Result<()> {
        self.record(&Event::DbDone { at: now(), applied })
    }

    /// Records the end, with what was removed.
    pub fn finish(&self, files: u64, bytes: u64) -> Result<()> {
        self.record(&Event::Finished { at: now(), files, bytes })
    }

    /// Appends `event`, synced to disk.
    pub fn record(&self, event: &Event) -> Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .with_context(|| format!("cannot write the journal {}", self.path.display()))?;
        writeln!(file, "{}", serde_json::to_string(event)?)?;
        file.sync_data()
            .with_context(|| format!("cannot write the journal {}", self.path.display()))?;
        Ok(())
    }
}

/// The id the next apply gets: one past the newest journal, and past any trash folder left
/// by an apply whose journal was removed by hand (so two applies never share a trash).
pub fn next_id(state: &Path) -> Result<u64> {
    let journals = ids(state)?.last().copied().unwrap_or(0);
    let trashes = std::fs::read_dir(super::trash::root(state))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    Ok(journals.max(trashes) + 1)
}

/// The ids of every journal, oldest first.
pub fn ids(state: &Path) -> Result<Vec<u64>> {
    let dir = dir(state);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut ids: Vec<u64> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".jsonl")?.parse().ok())
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// An apply as its journal tells it.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// Its id.
    pub id: u64,
    /// When it started (RFC 3339).
    pub at: String,
    /// Where its changeset came from.
    pub changeset: String,
    /// How many changes the changeset held.
    pub changes: usize,
    /// With `--keep`: until when its trash is kept.
    pub keep_until: Option<SystemTime>,
    /// The DB values it replaced (those recorded; a batch that did not commit is among them
    /// and holds its old value). Empty when read by [`read_head`].
    pub values: Vec<Value>,
    /// How many values it recorded.
    pub urls: u64,
    /// How many of them are refreshed links (not put back by undo).
    pub refreshes: u64,
    /// Whether its DB writes committed.
    pub db_done: bool,
    /// When it finished, if it did.
    pub finished: Option<String>,
    /// Files it removed.
    pub files: u64,
    /// Bytes they held.
    pub bytes: u64,
    /// An undo began.
    pub undo_started: bool,
    /// When an undo finished.
    pub undone: Option<String>,
    /// When its trash was emptied.
    pub purged: Option<String>,
}

impl Applied {
    /// The values undo puts back (refreshed links are not).
    pub fn restorable(&self) -> impl Iterator<Item = &Value> {
        self.values.iter().filter(|v| v.kind != Kind::Refresh)
    }

    /// Whether it recorded values undo would put back.
    pub fn has_restorable(&self) -> bool {
        self.urls > self.refreshes
    }
}

/// Reads the journal of apply `id`; unreadable lines (a torn last line) are skipped.
pub fn read(state: &Path, id: u64) -> Result<Applied> {
    read_lines(state, id, true)
}

/// [`read`] without the DB values (`values` stays empty): what `history`, `purge` and the
/// interrupted-apply note need, without parsing a large apply's values.
pub fn read_head(state: &Path, id: u64) -> Result<Applied> {
    read_lines(state, id, false)
}

fn read_lines(state: &Path, id: u64, with_values: bool) -> Result<Applied> {
    const VALUES: &str = "{\"event\":\"values\"";
    let path = dir(state).join(format!("{id}.jsonl"));
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the journal {}", path.display()))?;
    let mut out = Applied { id, ..Applied::default() };
    let mut events = Vec::new();
    for line in text.lines() {
        if line.starts_with(VALUES) && line.ends_with('}') {
            // Counted without parsing: a `"` inside a value is escaped, so only the fields
            // themselves read `"kind":"`.
            out.urls += line.matches("\"kind\":\"").count() as u64;
            out.refreshes += line.matches("\"kind\":\"refresh\"").count() as u64;
            if !with_values {
                continue;
            }
        }
        events.extend(serde_json::from_str::<Event>(line).ok());
    }
    for event in events {
        match event {
            Event::Started { at, changeset, changes, keep_until } => {
                out.at = at;
                out.changeset = changeset;
                out.changes = changes;
                out.keep_until = keep_until.and_then(|t| humantime::parse_rfc3339(&t).ok());
            }
            Event::Values { values } => out.values.extend(values),
            Event::DbDone { .. } => out.db_done = true,
            Event::Finished { at, files, bytes } => {
                out.finished = Some(at);
                out.files = files;
                out.bytes = bytes;
            }
            Event::UndoStarted { .. } => out.undo_started = true,
            Event::Undone { at } => out.undone = Some(at),
            Event::Purged { at } => out.purged = Some(at),
        }
    }
    Ok(out)
}

/// Every apply, oldest first, without their DB values ([`read_head`]).
pub fn list(state: &Path) -> Result<Vec<Applied>> {
    ids(state)?.into_iter().map(|id| read_head(state, id)).collect()
}

/// A description of the newest apply when it did not finish.
pub fn interrupted(state: &Path) -> Option<String> {
    let last = *ids(state).ok()?.last()?;
    let a = read_head(state, last).ok()?;
    if a.finished.is_some() || a.at.is_empty() {
        return None;
    }
    Some(format!(
        "the previous apply ({}, of {}, started {}) was interrupted {}; this run re-checks everything and finishes the job",
        a.id,
        a.changeset,
        a.at,
        if a.db_done {
            "after its database writes, before all files were removed"
        } else {
            "before its database writes committed"
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unfinished_apply_is_reported_once_finished_it_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path();
        assert_eq!(interrupted(state), None);
        let j = Journal::begin(state, next_id(state).unwrap(), "plan.yaml", 3, None).unwrap();
        assert_eq!(j.id, 1);
        j.db_done(2).unwrap();
        let msg = interrupted(state).unwrap();
        assert!(msg.contains("plan.yaml") && msg.contains("after its database writes"), "{msg}");
        j.finish(4, 40).unwrap();
        assert_eq!(interrupted(state), None);
        std::fs::create_dir_all(state.join("trash/7")).unwrap();
        let next = Journal::begin(state, next_id(state).unwrap(), "again.yaml", 1, None).unwrap();
        assert_eq!(next.id, 8, "past a trash folder whose journal is gone");
    }

    #[test]
    fn values_and_undo_read_back_and_a_torn_line_is_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path();
        let keep = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(2_000_000_000);
        let j = Journal::begin(state, 1, "p.yaml", 2, Some(keep)).unwrap();
        let v = |kind| Value {
            table: "metadata_items".into(),
            id: 7,
            column: "user_thumb_url".into(),
            old: Some("metadata://posters/a".into()),
            new: Some("https://x/a.jpg".into()),
            kind,
        };
        j.values(vec![v(Kind::SetUrl), v(Kind::Refresh)]).unwrap();
        j.finish(1, 10).unwrap();
        j.record(&Event::UndoStarted { at: now() }).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir(state).join("1.jsonl"))
            .unwrap()
            .write_all(b"{\"event\":\"und")
            .unwrap();
        let a = read(state, 1).unwrap();
        assert_eq!(a.values.len(), 2);
        assert_eq!(a.restorable().count(), 1);
        let head = read_head(state, 1).unwrap();
        assert!(head.values.is_empty() && head.has_restorable());
        assert_eq!((head.urls, head.refreshes), (2, 1));
        assert_eq!(a.keep_until, Some(keep));
        assert!(a.undo_started && a.undone.is_none());
        assert_eq!((a.files, a.bytes), (1, 10));
    }
}
