//! `apply`: executes a changeset safely, idempotently and convergently (design.md §4).
//!
//! The whole changeset is validated first and refused whole when anything is wrong. Then, under
//! an exclusive lock and with a journal: a backup of the DB, the URL writes (each re-checked,
//! in small transactions that survive Plex's locks), and only after they committed, the
//! deletions (each re-checked against the live DB references and its planned size, mtime or
//! listing). What drifted or could not be written is reported and left to the next plan.

pub mod backup;
pub mod db;
pub mod files;
pub mod hosts;
pub mod journal;
pub mod lock;
pub mod plex;
pub mod recheck;
pub mod trash;
pub mod undo;
pub mod uploads;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::changeset::{Changeset, DeleteFile, Op};
use crate::plex::db::Db;
use crate::plex::locate::PlexPaths;
use crate::plex::model::{self, Library};
use crate::scan::refs::{self, InUse};
use crate::spec::ImageHost;

/// How to apply.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rows per transaction.
    pub batch: usize,
    /// Refuse the whole changeset when anything drifted.
    pub strict: bool,
    /// How long to keep retrying while Plex holds the DB lock.
    pub lock_wait: Duration,
    /// The `Plex SQLite` binary, when named.
    pub plex_sqlite: Option<PathBuf>,
    /// Where backups go [default: `tidyplex-backups` beside the DB's folder].
    pub backup_dir: Option<PathBuf>,
    /// How many backups to keep.
    pub keep_backups: usize,
    /// The Plex server, when a token is known: idle check and `plex_call` changes.
    pub plex: Option<crate::plex::api::Client>,
    /// Defer everything while Plex plays or scans (`--when-idle`).
    pub when_idle: bool,
    /// The image host's settings (from the SPEC), for `upload` and `refresh_link` changes.
    /// Without them, a changeset naming `discord` uses its defaults; other hosts are refused.
    pub image_host: Option<ImageHost>,
    /// `--keep`: move what goes into the trash and keep it this long, for `undo`.
    pub keep: Option<Duration>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            batch: 100,
            strict: false,
            lock_wait: Duration::from_secs(30),
            plex_sqlite: None,
            backup_dir: None,
            keep_backups: 3,
            plex: None,
            when_idle: false,
            image_host: None,
            keep: None,
        }
    }
}

/// What an apply did.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// This apply's id (`history`, `undo ID`); none when nothing ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// With `--keep`: until when the trash keeps what this apply removed (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_until: Option<String>,
    /// Trashes of earlier applies emptied because their keep ran out.
    #[serde(skip_serializing_if = "trash::Purged::is_empty")]
    pub purged: trash::Purged,
    /// Changes carried out now.
    pub applied: u64,
    /// Changes already in their target state.
    pub already: u64,
    /// Changes whose precondition no longer held (skipped).
    pub drifted: Vec<String>,
    /// Changes that could not be written in time (the DB stayed locked) or not at all yet.
    pub deferred: Vec<String>,
    /// Deletions skipped because a column references the file now.
    pub referenced: Vec<String>,
    /// Deletions the filesystem refused.
    pub failed: Vec<String>,
    /// Files sent to the image host.
    pub uploaded: u64,
    /// Uploads the ledger already had (nothing sent).
    pub reused: u64,
    /// Expiring links replaced by fresh ones.
    pub links_refreshed: u64,
    /// Links the host gave back unchanged (not re-signed yet): nothing was written for them.
    pub links_unchanged: Vec<String>,
    /// Files deleted (with `--keep`: moved into the trash).
    pub files_deleted: u64,
    /// Bytes freed (with `--keep`: moved into the trash, freed when it is purged).
    pub bytes_freed: u64,
    /// The DB backup taken before the first write.
    pub backup: Option<PathBuf>,
    /// How the DB was written.
    pub strategy: Option<String>,
    /// What the journal said about the previous apply, when it did not finish.
    pub previous_interrupted: Option<String>,
    /// Seconds spent writing the DB (backup excluded).
    pub db_seconds: f64,
    /// Seconds spent deleting (reference re-check included).
    pub files_seconds: f64,
    /// What Plex was doing before the DB writes (idle, busy, not running), when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plex: Option<String>,
    /// Nothing was done because Plex was busy (`--when-idle`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub idle_deferred: bool,
}

impl Report {
    /// 0 all applied or in place, 3 something drifted or deferred (plan and apply again),
    /// 1 something failed.
    pub fn exit_code(&self) -> i32 {
        if !self.failed.is_empty() {
            1
        } else if !self.drifted.is_empty()
            || !self.deferred.is_empty()
            || !self.referenced.is_empty()
        {
            3
        } else {
            0
        }
    }
}

/// The folder beside the DB's folder where tidyplex keeps its lock, journals and trash.
pub fn state_dir(paths: &PlexPaths) -> PathBuf {
    beside_db(paths, "tidyplex")
}

/// The default backup folder, beside the DB's folder.
pub fn default_backup_dir(paths: &PlexPaths) -> PathBuf {
    beside_db(paths, "tidyplex-backups")
}

fn beside_db(paths: &PlexPaths, name: &str) -> PathBuf {
    let databases = paths.db.parent().unwrap_or(&paths.root);
    databases.parent().unwrap_or(databases).join(name)
}

/// The image host the changeset's `upload` and `refresh_link` changes need, ready to use
/// (secrets read from the environment); `None` when it has none. Refuses a changeset naming
/// several hosts, or one the settings do not configure.
pub fn image_host(
    paths: &PlexPaths,
    cs: &Changeset,
    opts: &Options,
) -> Result<Option<Box<dyn hosts::Host>>> {
    let names: BTreeSet<&str> = cs
        .changes
        .iter()
        .filter_map(|c| match c.op() {
            Some(Op::Upload(u)) => Some(u.host.as_str()),
            Some(Op::RefreshLink(r)) => Some(r.host.as_str()),
            _ => None,
        })
        .collect();
    let name = match names.len() {
        0 => return Ok(None),
        1 => names.into_iter().next().unwrap_or_default(),
        _ => bail!("the changeset names several image hosts ({names:?}); plan again"),
    };
    let cfg = match &opts.image_host {
        Some(h) if h.name() == name => h.clone(),
        Some(h) => bail!(
            "the changeset was planned for the `{name}` image host, and the SPEC configures `{}`; plan again",
            h.name()
        ),
        None if name == "discord" => ImageHost::discord_default(),
        None => bail!(
            "the changeset uploads to the `{name}` image host, whose settings are in the SPEC: apply FILE --spec SPEC"
        ),
    };
    hosts::build(&cfg, &paths.root).map(Some)
}

/// Checks the whole changeset against this plex dir and its disk before anything changes.
pub fn validate(paths: &PlexPaths, cs: &Changeset) -> Result<()> {
    cs.validate()?;
    check_plex_dir(paths, cs)?;
    for (i, change) in cs.changes.iter().enumerate() {
        let path = match change.op() {
            Some(Op::DeleteFile(f)) => &f.path,
            Some(Op::DeleteDir(d)) => &d.path,
            Some(Op::Upload(u)) => &u.path,
            _ => continue,
        };
        files::check_no_symlinked_dirs(paths, path).map_err(|e| {
            anyhow::anyhow!("change {}: {e}; the changeset is refused whole", i + 1)
        })?;
    }
    Ok(())
}

/// Refuses a changeset planned for another plex dir.
pub fn check_plex_dir(paths: &PlexPaths, cs: &Changeset) -> Result<()> {
    let same = match (Path::new(&cs.plex_dir).canonicalize(), paths.root.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same {
        bail!(
            "the changeset was planned for {}, not {}; plan again for this server",
            cs.plex_dir,
            paths.root.display()
        );
    }
    Ok(())
}

/// The live references: every file a column of the DB points at right now.
pub fn live_references(paths: &PlexPaths) -> Result<InUse> {
    let db = Db::open(&paths.db)?;
    let lib = Library::read(&db)?;
    let tags = model::read_tags(&db)?;
    let all = refs::collect(&db, &lib, &tags);
    Ok(InUse::build(&paths.root, &all, |_| false))
}

/// [`live_references`], and the families of the items that own `ops`, for the re-check of
/// each item right before its files go.
fn live_references_and_families(
    paths: &PlexPaths,
    ops: &[(Option<i64>, Op<'_>)],
) -> Result<(InUse, recheck::Families)> {
    let db = Db::open(&paths.db)?;
    let lib = Library::read(&db)?;
    let tags = model::read_tags(&db)?;
    let all = refs::collect(&db, &lib, &tags);
    drop(tags);
    let in_use = InUse::build(&paths.root, &all, |_| false);
    drop(all);
    let items = ops.iter().filter_map(|(item, _)| *item);
    let families = recheck::Families::of(&lib, &db.schema.metadata_items, items);
    Ok((in_use, families))
}

/// Applies `cs` (read from `source`). `tick` is called once per change handled.
pub fn apply(
    paths: &PlexPaths,
    cs: &Changeset,
    source: &str,
    opts: &Options,
    tick: &(dyn Fn() + Sync),
) -> Result<Report> {
    validate(paths, cs)?;
    let gate = plex::gate(opts, cs.changes.iter().any(|c| c.set_url.is_some()))?;
    if let Some(why) = gate.defer {
        let deferred = vec![why];
        return Ok(Report { deferred, plex: gate.note, idle_deferred: true, ..Report::default() });
    }
    let host = image_host(paths, cs, opts)?;
    let state = state_dir(paths);
    let _lock = lock::acquire(&state.join("apply.lock"), "apply")?;
    let previous_interrupted = journal::interrupted(&state);
    let next = journal::next_id(&state)?;
    let kept = match opts.keep {
        Some(_) => Some(trash::Trash::prepare(paths, &state, next, cs)?),
        None => None,
    };
    let purged = trash::purge(&state, trash::Purge::Expired)?;
    let keep_until = opts.keep.map(|d| std::time::SystemTime::now() + d);
    let journal = journal::Journal::begin(&state, next, source, cs.changes.len(), keep_until)?;
    let mut report = Report {
        id: Some(journal.id),
        kept_until: keep_until.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
        purged,
        previous_interrupted,
        plex: gate.note,
        ..Report::default()
    };

    let writes: Vec<db::Write> = cs
        .changes
        .iter()
        .filter_map(|c| c.set_url.as_ref())
        .map(|s| db::Write {
            table: s.table.clone(),
            id: s.id,
            column: s.column.clone(),
            from: s.from.clone(),
            to: Some(s.to.clone()),
        })
        .collect();
    let owned: Vec<(Option<i64>, Op<'_>)> = cs
        .changes
        .iter()
        .filter_map(|c| Some((c.item, c.op()?)))
        .filter(|(_, op)| matches!(op, Op::DeleteFile(_) | Op::DeleteDir(_)))
        .collect();
    if opts.strict {
        let deletions: Vec<Op<'_>> = owned.iter().map(|(_, op)| *op).collect();
        strict_check(paths, cs, &deletions)?;
    }
    // Uploads and link refreshes write their table too, once hosted.
    let tables: BTreeSet<String> = cs
        .changes
        .iter()
        .filter_map(|c| match c.op() {
            Some(Op::SetUrl(s)) => Some(s.table.clone()),
            Some(Op::Upload(u)) => Some(u.table.clone()),
            Some(Op::RefreshLink(r)) => Some(r.table.clone()),
            _ => None,
        })
        .collect();
    let strategy = if tables.is_empty() {
        None
    } else {
        Some(db::choose(&paths.db, &tables, opts.plex_sqlite.as_deref())?)
    };

    // 1. Uploads and link refreshes: checked, sent (or found in the ledger) and recorded.
    let ledger = hosts::ledger::Ledger::in_state_dir(&state)
        .with_context(|| format!("cannot read the upload ledger in {}", state.display()))?;
    let staged = uploads::run(paths, cs, host.as_deref(), &ledger, tick)?;
    report.uploaded = staged.uploaded;
    report.reused = staged.reused;
    report.links_refreshed = staged.refreshed;
    report.links_unchanged = staged.unchanged;
    report.failed.extend(staged.lost);
    report.already += staged.already;
    report.drifted.extend(staged.drifted);
    report.deferred.extend(staged.deferred);
    fault_point("after-upload");
    let own = writes.len();
    let mut writes = writes;
    writes.extend(staged.pending.iter().map(|p| p.write.clone()));
    let mut uploaded_files: Vec<DeleteFile> = staged.cleanup;

    // 2. The DB, after a backup.
    if let (false, Some(strategy)) = (writes.is_empty(), strategy) {
        report.strategy = Some(match &strategy {
            db::Strategy::Direct => "direct updates".to_string(),
            db::Strategy::TriggersAside => "FTS triggers set aside in each transaction".to_string(),
            db::Strategy::PlexSqlite(bin) => format!("through {}", bin.display()),
        });
        let dir = opts.backup_dir.clone().unwrap_or_else(|| default_backup_dir(paths));
        report.backup = Some(backup::backup(&paths.db, &dir, opts.keep_backups)?);
        let limits = db::Limits { batch: opts.batch, lock_wait: opts.lock_wait };
        let started = std::time::Instant::now();
        // Each batch's values are in the journal before the batch commits.
        let kind = |i: usize| match i.checked_sub(own).and_then(|p| staged.pending.get(p)) {
            None => journal::Kind::SetUrl,
            Some(p) if p.refresh => journal::Kind::Refresh,
            Some(_) => journal::Kind::Upload,
        };
        let outcomes =
            db::write(&paths.db, &writes, &strategy, &limits, &mut |range, outcomes| {
                let values = range
                    .zip(outcomes)
                    .filter(|(_, o)| **o == db::Outcome::Applied)
                    .map(|(i, _)| journal::Value {
                        table: writes[i].table.clone(),
                        id: writes[i].id,
                        column: writes[i].column.clone(),
                        old: writes[i].from.clone(),
                        new: writes[i].to.clone(),
                        kind: kind(i),
                    })
                    .collect();
                journal.values(values)
            })?;
        report.db_seconds = started.elapsed().as_secs_f64();
        for (i, (w, o)) in writes.iter().zip(outcomes).enumerate() {
            let what = format!("{} {} {}", w.table, w.id, w.column);
            if let Some(p) = i.checked_sub(own).and_then(|p| staged.pending.get(p)) {
                // A hosted URL: counted (and ticked) per change, its file goes once committed.
                match o {
                    db::Outcome::Applied => report.applied += 1,
                    db::Outcome::Already => report.already += 1,
                    db::Outcome::Drifted(now) => {
                        report.drifted.push(format!(
                            "{what} is {} now (the hosted copy stays in the ledger)",
                            now.as_deref().unwrap_or("empty")
                        ));
                        continue;
                    }
                    db::Outcome::Deferred => {
                        report.deferred.push(format!("{what}: the database stayed locked"));
                        continue;
                    }
                }
                uploaded_files.extend(p.delete.clone());
                continue;
            }
            match o {
                db::Outcome::Applied => report.applied += 1,
                db::Outcome::Already => report.already += 1,
                db::Outcome::Drifted(now) => report
                    .drifted
                    .push(format!("{what} is {} now", now.as_deref().unwrap_or("empty"))),
                db::Outcome::Deferred => {
                    report.deferred.push(format!("{what}: the database stayed locked"))
                }
            }
            tick();
        }
    }
    journal.db_done(report.applied)?;
    fault_point("after-db-commit");

    // 3. The files, re-checked against the live references.
    if !owned.is_empty() || !uploaded_files.is_empty() {
        let started = std::time::Instant::now();
        let (in_use, families) = live_references_and_families(paths, &owned)
            .context("cannot re-read the references before deleting")?;
        pause_point("before-deletions");
        let kept = kept.as_ref();
        let mut outcomes = files::delete_items(paths, &owned, &in_use, &families, kept, tick);
        // An uploaded file: its change was counted with its DB write.
        let uploaded: Vec<Op<'_>> = uploaded_files.iter().map(Op::DeleteFile).collect();
        for o in files::delete_all(paths, &uploaded, &in_use, kept, &|| {}) {
            match o {
                files::Outcome::Deleted { files, bytes } => {
                    report.files_deleted += files;
                    report.bytes_freed += bytes;
                }
                files::Outcome::Already => {}
                other => outcomes.push(other),
            }
        }
        for o in outcomes {
            match o {
                files::Outcome::Deleted { files, bytes } => {
                    report.applied += 1;
                    report.files_deleted += files;
                    report.bytes_freed += bytes;
                }
                files::Outcome::Already => report.already += 1,
                files::Outcome::Drifted(why) => report.drifted.push(why),
                files::Outcome::Referenced(path) => report.referenced.push(path),
                files::Outcome::Failed(why) => report.failed.push(why),
            }
        }
        report.files_seconds = started.elapsed().as_secs_f64();
    }

    // 3. Plex: refresh/analyze what only Plex can bring back.
    plex::call_all(paths, cs, opts, &mut report, tick)?;
    journal.finish(report.files_deleted, report.bytes_freed)?;
    if let Some(trash) = kept.filter(|_| report.files_deleted == 0) {
        let _ = std::fs::remove_dir(trash.dir()); // nothing was kept
    }
    Ok(report)
}

/// `--strict`: refuses the whole changeset when any precondition no longer holds: a column
/// that holds neither its planned value nor (for a URL write) its target, or a file or folder
/// that changed.
fn strict_check(paths: &PlexPaths, cs: &Changeset, deletions: &[Op<'_>]) -> Result<()> {
    let db = Db::open(&paths.db)?;
    let mut drifted = Vec::new();
    for change in &cs.changes {
        // (table, id, column, planned value, target when known)
        let (table, id, column, from, to) = match change.op() {
            Some(Op::SetUrl(s)) => {
                (s.table.as_str(), s.id, &s.column, s.from.as_deref(), Some(s.to.as_str()))
            }
            Some(Op::Upload(u)) => (u.table.as_str(), u.id, &u.column, u.from.as_deref(), None),
            Some(Op::RefreshLink(r)) => (r.table.as_str(), r.id, &r.column, Some(&*r.from), None),
            Some(Op::PlexCall(p)) => ("metadata_items", p.id, &p.column, Some(&*p.from), None),
            _ => continue,
        };
        let drift = match db::current(db.conn(), table, id, column).map_err(|e| db.error(e))? {
            Some(now) => now.as_deref() != from && (to.is_none() || now.as_deref() != to),
            None => true,
        };
        if drift {
            drifted.push(format!("{table} {id} {column}"));
        }
    }
    for op in deletions {
        match files::inspect(paths, *op) {
            files::Found::Drifted(why) | files::Found::Failed(why) => drifted.push(why),
            files::Found::Gone | files::Found::AsPlanned(_) => {}
        }
    }
    if !drifted.is_empty() {
        bail!(
            "--strict: {} change(s) drifted since planning (first: {}); nothing was changed; plan again",
            drifted.len(),
            drifted[0]
        );
    }
    Ok(())
}

/// For tests: with `TIDYPLEX_PAUSE=<name>:<file>`, creates `<file>` at this point and waits
/// (up to a minute) until it is removed, so a test can change the DB in between.
fn pause_point(name: &str) {
    let Ok(v) = std::env::var("TIDYPLEX_PAUSE") else { return };
    let Some(file) = v.strip_prefix(name).and_then(|r| r.strip_prefix(':')) else { return };
    let file = Path::new(file);
    if std::fs::write(file, b"paused").is_err() {
        return;
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while file.exists() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Fault injection for crash tests: `TIDYPLEX_FAULT=<point>` aborts the process there, as a
/// power cut or `kill -9` would.
fn fault_point(name: &str) {
    if std::env::var("TIDYPLEX_FAULT").is_ok_and(|v| v == name) {
        std::process::abort();
    }
}
