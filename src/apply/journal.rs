//! A journal of the running apply, so an interrupted one is reported by the next run.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// One step of an apply.
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
    },
}

/// The journal file of the current apply.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

impl Journal {
    /// The journal at `path`.
    pub fn at(path: &Path) -> Journal {
        Journal { path: path.to_path_buf() }
    }

    /// A description of the previous apply when it did not finish.
    pub fn interrupted(&self) -> Option<String> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let events: Vec<Event> =
            text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let started = events.iter().find_map(|e| match e {
            Event::Started { at, changeset, .. } => Some((at.clone(), changeset.clone())),
            _ => None,
        })?;
        if events.iter().any(|e| matches!(e, Event::Finished { .. })) {
            return None;
        }
        let db_done = events.iter().any(|e| matches!(e, Event::DbDone { .. }));
        Some(format!(
            "the previous apply of {} (started {}) was interrupted {}; this run re-checks everything and finishes the job",
            started.1,
            started.0,
            if db_done { "after its database writes, before all files were deleted" } else { "before its database writes committed" }
        ))
    }

    /// Starts a new journal.
    pub fn start(&self, changeset: &str, changes: usize) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&self.path, "")
            .with_context(|| format!("cannot write the journal {}", self.path.display()))?;
        self.record(&Event::Started { at: now(), changeset: changeset.to_string(), changes })
    }

    /// Records that the DB writes committed.
    pub fn db_done(&self, applied: u64) -> Result<()> {
        self.record(&Event::DbDone { at: now(), applied })
    }

    /// Records the end.
    pub fn finish(&self) -> Result<()> {
        self.record(&Event::Finished { at: now() })
    }

    fn record(&self, event: &Event) -> Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)
            .with_context(|| format!("cannot write the journal {}", self.path.display()))?;
        writeln!(file, "{}", serde_json::to_string(event)?)?;
        file.sync_data()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unfinished_apply_is_reported_once_finished_it_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let j = Journal::at(&tmp.path().join("journal.jsonl"));
        assert_eq!(j.interrupted(), None);
        j.start("plan.yaml", 3).unwrap();
        j.db_done(2).unwrap();
        let msg = j.interrupted().unwrap();
        assert!(msg.contains("plan.yaml") && msg.contains("after its database writes"), "{msg}");
        j.finish().unwrap();
        assert_eq!(j.interrupted(), None);
    }
}
