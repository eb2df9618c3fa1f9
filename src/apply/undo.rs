//! `undo`: puts back what one apply changed. Kept files first (so no column ever points at a
//! file that is not there yet), each only where nothing stands at its path now; then each DB
//! value that still holds what the apply wrote, under the same lock, after a backup, in the
//! same small transactions as apply. Values changed since are reported and left alone;
//! refreshed links are not put back (the old links expire). A second undo changes nothing,
//! and an interrupted one is finished by the next.

use std::collections::BTreeSet;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::journal::{self, Event, Journal};
use super::trash::{self, Trash};
use super::{backup, db, default_backup_dir, lock, state_dir, Options};
use crate::plex::locate::PlexPaths;

/// What an undo did.
#[derive(Debug, Default, Serialize)]
pub struct UndoReport {
    /// The apply undone.
    pub apply: u64,
    /// Columns put back now.
    pub restored: u64,
    /// Columns that held their old value already.
    pub already: u64,
    /// Columns changed since the apply (left alone): `table id column is VALUE now`.
    pub changed: Vec<String>,
    /// Columns that could not be written in time (the DB stayed locked).
    pub deferred: Vec<String>,
    /// Refreshed links left as they are.
    pub refreshes_kept: u64,
    /// Files (and links) moved back from the trash.
    pub files_restored: u64,
    /// Their bytes.
    pub bytes_restored: u64,
    /// Paths left in the trash because something stands there now.
    pub files_left: Vec<String>,
    /// Files the apply removed that no trash holds (applied without `--keep`, or purged).
    pub files_gone: u64,
    /// The DB backup taken before the first write.
    pub backup: Option<std::path::PathBuf>,
    /// The apply had been undone before (this run found nothing more to do, or finished it).
    pub undone_before: bool,
    /// The previous undo of this apply was interrupted; this one finished it.
    pub finished_interrupted: bool,
}

impl UndoReport {
    /// 0 everything put back (or nothing left to), 3 something could not be (changed since,
    /// deferred, left in the trash, gone), 1 is for errors.
    pub fn exit_code(&self) -> i32 {
        if self.changed.is_empty()
            && self.deferred.is_empty()
            && self.files_left.is_empty()
            && self.files_gone == 0
        {
            0
        } else {
            3
        }
    }
}

/// Undoes apply `id` (default: the newest).
pub fn undo(paths: &PlexPaths, id: Option<u64>, opts: &Options) -> Result<UndoReport> {
    let state = state_dir(paths);
    let _lock = lock::acquire(&state.join("apply.lock"), "undo")?;
    let ids = journal::ids(&state)?;
    let id = match id {
        Some(id) if ids.contains(&id) => id,
        Some(id) => bail!("there is no apply {id} to undo; `tidyplex history` lists them"),
        None => match ids.last() {
            Some(id) => *id,
            None => bail!("no apply has run here yet, so there is nothing to undo"),
        },
    };
    let applied = journal::read(&state, id)?;
    let journal = Journal::open(&state, id);
    let mut report = UndoReport {
        apply: id,
        undone_before: applied.undone.is_some(),
        finished_interrupted: applied.undo_started && applied.undone.is_none(),
        ..UndoReport::default()
    };
    journal.record(&Event::UndoStarted { at: journal::now() })?;

    // 1. The files, where nothing stands at their path now.
    let kept = Trash::of(&state, id);
    let restored = trash::restore(paths, &kept)?;
    report.files_restored = restored.files;
    report.bytes_restored = restored.bytes;
    report.files_left = restored.left;
    let had_trash = applied.keep_until.is_some() && applied.purged.is_none();
    if !had_trash {
        report.files_gone = applied.files;
    }
    super::fault_point("undo-after-files");

    // 2. The columns that still hold what the apply wrote.
    report.refreshes_kept = (applied.values.len() - applied.restorable().count()) as u64;
    let writes: Vec<db::Write> = applied
        .restorable()
        .map(|v| db::Write {
            table: v.table.clone(),
            id: v.id,
            column: v.column.clone(),
            from: v.new.clone(),
            to: v.old.clone(),
        })
        .collect();
    if !writes.is_empty() {
        let tables: BTreeSet<String> = writes.iter().map(|w| w.table.clone()).collect();
        let strategy = db::choose(&paths.db, &tables, opts.plex_sqlite.as_deref())?;
        let dir = opts.backup_dir.clone().unwrap_or_else(|| default_backup_dir(paths));
        report.backup = Some(backup::backup(&paths.db, &dir, opts.keep_backups)?);
        let limits = db::Limits { batch: opts.batch, lock_wait: opts.lock_wait };
        let outcomes = db::write(&paths.db, &writes, &strategy, &limits, &mut |_, _| Ok(()))
            .context("cannot put the columns back")?;
        for (w, o) in writes.iter().zip(outcomes) {
            let what = format!("{} {} {}", w.table, w.id, w.column);
            match o {
                db::Outcome::Applied => report.restored += 1,
                db::Outcome::Already => report.already += 1,
                db::Outcome::Drifted(now) => report.changed.push(format!(
                    "{what} is {} now (the apply wrote {}); left alone",
                    now.as_deref().unwrap_or("empty"),
                    w.from.as_deref().unwrap_or("nothing")
                )),
                db::Outcome::Deferred => {
                    report.deferred.push(format!("{what}: the database stayed locked"))
                }
            }
        }
    }
    if report.deferred.is_empty() {
        journal.record(&Event::Undone { at: journal::now() })?;
    }
    Ok(report)
}
