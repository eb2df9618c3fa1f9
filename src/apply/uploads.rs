//! Stage 4 in apply: `upload` and `refresh_link` changes, before any DB write.
//!
//! Per change: the column must still hold `from` (else it drifted and nothing is sent) and an
//! upload's file must still be the planned one (size, then blake3 of the bytes sent). Then the
//! ledger is asked first (a hit uploads nothing), else the host; each new copy is recorded in
//! the ledger before this returns. The DB writes of the hosted URLs go through the ordinary
//! writer afterwards, and an upload's file is deleted only after its write committed.
//! Distinct contents go a few at a time; a host that refuses us is not asked again.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use anyhow::Result;

use super::db::{self, Write};
use super::files;
use super::hosts::ledger::{Entry, Ledger, Record as _};
use super::hosts::{self, Host, HostError, Hosted};
use crate::changeset::{Changeset, DeleteFile, Op, RefreshLink, Upload};
use crate::plex::db::Db;
use crate::plex::locate::PlexPaths;

/// Uploads (or refreshes) in flight at once.
pub const WORKERS: usize = 3;

/// A hosted URL to write, and what goes after it committed.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The column write (`from` → the hosted URL).
    pub write: Write,
    /// For an upload: its file, with the size and mtime it had when it was sent.
    pub delete: Option<DeleteFile>,
    /// A link refresh (not an upload).
    pub refresh: bool,
}

/// What the stage-4 step did before the DB writes.
#[derive(Debug, Default)]
pub struct Staged {
    /// Writes to make, in change order.
    pub pending: Vec<Pending>,
    /// Uploads whose column already points at their hosted copy: files left to delete.
    pub cleanup: Vec<DeleteFile>,
    /// Changes already in their target state.
    pub already: u64,
    /// Changes whose precondition no longer held.
    pub drifted: Vec<String>,
    /// Changes the host could not carry out now.
    pub deferred: Vec<String>,
    /// Files sent to the host.
    pub uploaded: u64,
    /// Uploads the ledger already had.
    pub reused: u64,
    /// Fresh links fetched.
    pub refreshed: u64,
    /// Links the host gave back unchanged (Discord re-signs in steps, not on every fetch).
    pub unchanged: Vec<String>,
    /// Hosted copies the host lost for good (recorded in the ledger; reported once).
    pub lost: Vec<String>,
}

/// One call to the host, for one or more changes.
enum Job<'a> {
    Upload { u: &'a Upload, abs: PathBuf, ext: String },
    Refresh { r: &'a RefreshLink },
}

/// What a job came to.
enum Done {
    Uploaded(Hosted),
    Reused(Hosted),
    Refreshed(Hosted),
    /// The host answered the same link: nothing to write.
    Unchanged(String),
    /// The host lost the copy for good.
    Lost(String),
    Drifted(String),
    Deferred(String),
}

/// Carries out the checks and host calls of every `upload` and `refresh_link` change of `cs`.
pub fn run(
    paths: &PlexPaths,
    cs: &Changeset,
    host: Option<&dyn Host>,
    ledger: &Ledger,
    tick: &(dyn Fn() + Sync),
) -> Result<Staged> {
    let mut out = Staged::default();
    let ops: Vec<Op<'_>> = cs
        .changes
        .iter()
        .filter_map(|c| c.op())
        .filter(|op| matches!(op, Op::Upload(_) | Op::RefreshLink(_)))
        .collect();
    let Some(host) = host else {
        if !ops.is_empty() {
            anyhow::bail!("the changeset has uploads but no image host is configured");
        }
        return Ok(out);
    };
    if ops.is_empty() {
        return Ok(out);
    }
    let db = Db::open(&paths.db)?;
    // Checks, and one job per distinct content (or message attachment).
    let mut jobs: Vec<(Job<'_>, Vec<Op<'_>>)> = Vec::new();
    for op in ops {
        match op {
            Op::Upload(u) => match check_upload(paths, &db, host, ledger, u)? {
                Check::Go(abs) => {
                    let same = jobs.iter_mut().find(|(j, _)| {
                        matches!(j, Job::Upload { u: v, .. } if v.blake3.eq_ignore_ascii_case(&u.blake3))
                    });
                    match same {
                        Some((_, ops)) => ops.push(op),
                        None => jobs
                            .push((Job::Upload { u, abs, ext: hosts::ext_of(&u.path) }, vec![op])),
                    }
                }
                Check::Already(delete) => {
                    out.already += 1;
                    out.cleanup.extend(delete);
                    tick();
                }
                Check::Drifted(why) => {
                    out.drifted.push(why);
                    tick();
                }
            },
            Op::RefreshLink(r) => match check_refresh(&db, ledger, r)? {
                Check::Go(_) => {
                    let same = jobs.iter_mut().find(|(j, _)| {
                        matches!(j, Job::Refresh { r: s } if s.message_id == r.message_id && s.attachment_id == r.attachment_id)
                    });
                    match same {
                        Some((_, ops)) => ops.push(op),
                        None => jobs.push((Job::Refresh { r }, vec![op])),
                    }
                }
                Check::Already(_) => {
                    out.already += 1;
                    tick();
                }
                Check::Drifted(why) => {
                    out.drifted.push(why);
                    tick();
                }
            },
            _ => {}
        }
    }
    drop(db);

    let results = run_jobs(host, ledger, &jobs, tick);
    for ((job, ops), done) in jobs.iter().zip(results) {
        let hosted = match done {
            Done::Uploaded(h) => {
                out.uploaded += 1;
                h
            }
            Done::Reused(h) => {
                out.reused += 1;
                h
            }
            Done::Refreshed(h) => {
                out.refreshed += 1;
                h
            }
            Done::Unchanged(why) => {
                out.unchanged.extend(ops.iter().map(|op| format!("{}: {why}", what(op))));
                continue;
            }
            Done::Lost(why) => {
                out.lost.extend(ops.iter().map(|op| {
                    format!("{}: {why}; the image is lost there (`plan --repair` asks Plex to analyze the item so it makes the frame grab again)", what(op))
                }));
                continue;
            }
            Done::Drifted(why) => {
                out.drifted.extend(ops.iter().map(|op| format!("{}: {why}", what(op))));
                continue;
            }
            Done::Deferred(why) => {
                out.deferred.extend(ops.iter().map(|op| format!("{}: {why}", what(op))));
                continue;
            }
        };
        for op in ops {
            out.pending.push(match (op, job) {
                (Op::Upload(u), Job::Upload { abs, .. }) => Pending {
                    write: write(&u.table, u.id, &u.column, u.from.clone(), &hosted.url),
                    delete: planned_file(abs, u),
                    refresh: false,
                },
                (Op::RefreshLink(r), _) => Pending {
                    write: write(&r.table, r.id, &r.column, Some(r.from.clone()), &hosted.url),
                    delete: None,
                    refresh: true,
                },
                _ => continue,
            });
        }
    }
    Ok(out)
}

fn write(table: &str, id: i64, column: &str, from: Option<String>, to: &str) -> Write {
    Write { table: table.into(), id, column: column.into(), from, to: Some(to.into()) }
}

/// `upload PATH -> HOST` or `refresh TABLE ID COLUMN`, for messages.
fn what(op: &Op<'_>) -> String {
    match op {
        Op::Upload(u) => format!("upload {} -> {}", u.path, u.host),
        Op::RefreshLink(r) => format!("refresh {} {} {} ({})", r.table, r.id, r.column, r.host),
        _ => String::new(),
    }
}

enum Check {
    /// Go ahead (an upload's absolute path).
    Go(PathBuf),
    /// Done already (an upload's file, when it is still there).
    Already(Option<DeleteFile>),
    /// The precondition no longer holds.
    Drifted(String),
}

fn check_upload(
    paths: &PlexPaths,
    db: &Db,
    host: &dyn Host,
    ledger: &Ledger,
    u: &Upload,
) -> Result<Check> {
    let name = what(&Op::Upload(u));
    if u.host != host.name() {
        return Ok(Check::Drifted(format!("{name}: this apply uploads to {}", host.name())));
    }
    let now = db::current(db.conn(), &u.table, u.id, &u.column).map_err(|e| db.error(e))?;
    let abs = files::absolute(paths, &u.path);
    let file = match file_as_planned(paths, &abs, u) {
        Ok(file) => file,
        Err(why) => return Ok(Check::Drifted(format!("{name}: {why}"))),
    };
    match now {
        Some(v) if v == u.from => match file {
            Some(_) => Ok(Check::Go(abs)),
            None => Ok(Check::Drifted(format!("{name}: the file is gone; nothing to upload"))),
        },
        // Done by an earlier apply (its deletion may be what is left).
        Some(Some(v))
            if ledger.url(&v).is_some_and(|e| e.blake3.eq_ignore_ascii_case(&u.blake3)) =>
        {
            Ok(Check::Already(file.and_then(|()| planned_file(&abs, u))))
        }
        Some(v) => Ok(Check::Drifted(format!(
            "{} {} {} is {} now",
            u.table,
            u.id,
            u.column,
            v.as_deref().unwrap_or("empty")
        ))),
        None => Ok(Check::Drifted(format!("{} {} is gone", u.table, u.id))),
    }
}

/// The planned file as it is now: `Ok(None)` when gone, an error when it is no longer the
/// planned one (not a regular file, another size or other bytes).
fn file_as_planned(
    paths: &PlexPaths,
    abs: &std::path::Path,
    u: &Upload,
) -> Result<Option<()>, String> {
    files::check_no_symlinked_dirs(paths, &u.path)?;
    let meta = match std::fs::symlink_metadata(abs) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    if !meta.is_file() {
        return Err("it is no longer a regular file".into());
    }
    if meta.len() != u.size {
        return Err(format!("it changed since planning (size {} -> {})", u.size, meta.len()));
    }
    let bytes = std::fs::read(abs).map_err(|e| format!("cannot read it: {e}"))?;
    if !blake3::hash(&bytes).to_hex().as_str().eq_ignore_ascii_case(&u.blake3) {
        return Err("its content changed since planning".into());
    }
    Ok(Some(()))
}

/// The deletion of an upload's file after its write: as it is now (size and mtime), if it is
/// still the planned size.
fn planned_file(abs: &std::path::Path, u: &Upload) -> Option<DeleteFile> {
    let meta = std::fs::symlink_metadata(abs).ok().filter(|m| m.is_file())?;
    (meta.len() == u.size).then(|| DeleteFile {
        path: u.path.clone(),
        size: u.size,
        mtime: crate::scan::tree::mtime(&meta),
        shared: false,
    })
}

fn check_refresh(db: &Db, ledger: &Ledger, r: &RefreshLink) -> Result<Check> {
    let now = db::current(db.conn(), &r.table, r.id, &r.column).map_err(|e| db.error(e))?;
    Ok(match now {
        Some(Some(v)) if v == r.from => Check::Go(PathBuf::new()),
        Some(Some(v))
            if ledger
                .url(&v)
                .is_some_and(|e| e.attachment_id.as_deref() == Some(&r.attachment_id)) =>
        {
            Check::Already(None)
        }
        Some(v) => Check::Drifted(format!(
            "{} {} {} is {} now",
            r.table,
            r.id,
            r.column,
            v.as_deref().unwrap_or("empty")
        )),
        None => Check::Drifted(format!("{} {} is gone", r.table, r.id)),
    })
}

/// Runs the jobs, [`WORKERS`] at a time (the first one alone when the host wants to learn its
/// rate limits first). Once the host refuses us, the remaining jobs are deferred unsent.
fn run_jobs(
    host: &dyn Host,
    ledger: &Ledger,
    jobs: &[(Job<'_>, Vec<Op<'_>>)],
    tick: &(dyn Fn() + Sync),
) -> Vec<Done> {
    let stopped: OnceLock<String> = OnceLock::new();
    let results: Vec<Mutex<Option<Done>>> = jobs.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = |i: usize| {
        let (job, ops) = &jobs[i];
        let done = match stopped.get() {
            Some(why) => Done::Deferred(format!("not sent: {why}")),
            None => match carry_out(host, ledger, job) {
                Err(HostError::Stop(why)) => {
                    let _ = stopped.set(why.clone());
                    Done::Deferred(why)
                }
                Err(HostError::TooLarge(why) | HostError::Failed(why)) => Done::Deferred(why),
                Err(HostError::Gone(why)) => Done::Lost(why),
                Ok(done) => done,
            },
        };
        *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(done);
        ops.iter().for_each(|_| tick());
    };
    if host.probe_first() && !jobs.is_empty() {
        work(next.fetch_add(1, Ordering::SeqCst));
    }
    std::thread::scope(|s| {
        for _ in 0..WORKERS.min(jobs.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= jobs.len() {
                    break;
                }
                work(i);
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_else(|| Done::Deferred("not attempted".into()))
        })
        .collect()
}

/// One job: the ledger first, then the host; every new copy recorded before it counts.
fn carry_out(host: &dyn Host, ledger: &Ledger, job: &Job<'_>) -> Result<Done, HostError> {
    let record = |blake3: &str, hosted: &Hosted| {
        ledger.record(&Entry::of(blake3, host.name(), hosted)).map_err(|e| {
            HostError::Failed(format!(
                "cannot write the upload ledger ({e}); the hosted copy is not used"
            ))
        })
    };
    match job {
        Job::Refresh { r } => {
            let hosted = match host.refresh(&r.message_id, &r.attachment_id) {
                Err(HostError::Gone(why)) => {
                    // Recorded, so that no later plan asks for this link again.
                    if let Some(e) = ledger.attachment(&r.attachment_id) {
                        let lost = Entry { lost: true, ..e.clone() };
                        ledger.record(&lost).map_err(|e| {
                            HostError::Failed(format!("cannot write the upload ledger ({e})"))
                        })?;
                    }
                    return Err(HostError::Gone(why));
                }
                other => other?,
            };
            let old = super::hosts::discord::link_expiry(&r.from);
            let new = super::hosts::discord::link_expiry(&hosted.url);
            if hosted.url == r.from || (new.is_some() && new <= old) {
                return Ok(Done::Unchanged(
                    "the host has not re-signed the link yet (same expiry); plan again later"
                        .into(),
                ));
            }
            if let Some(e) = ledger.attachment(&r.attachment_id) {
                record(&e.blake3, &hosted)?;
            }
            Ok(Done::Refreshed(hosted))
        }
        Job::Upload { u, abs, ext } => {
            let bytes = match std::fs::read(abs) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(Done::Drifted("the file is gone; nothing to upload".into()))
                }
                Err(e) => return Err(HostError::Failed(format!("cannot read {}: {e}", u.path))),
            };
            if !blake3::hash(&bytes).to_hex().as_str().eq_ignore_ascii_case(&u.blake3) {
                return Ok(Done::Drifted("its content changed since planning".into()));
            }
            if let Some(entry) = ledger.get(&u.blake3, host.name()) {
                match host.reuse(entry, ext) {
                    hosts::Reuse::Yes => return Ok(Done::Reused(entry.hosted())),
                    hosts::Reuse::Refresh => {
                        if let (Some(m), Some(a)) = (&entry.message_id, &entry.attachment_id) {
                            match host.refresh(m, a) {
                                Ok(hosted) => {
                                    record(&u.blake3, &hosted)?;
                                    return Ok(Done::Refreshed(hosted));
                                }
                                Err(HostError::Stop(why)) => return Err(HostError::Stop(why)),
                                Err(e) => tracing::info!("{e}; uploading again"),
                            }
                        }
                    }
                    hosts::Reuse::No => {}
                }
            }
            let hosted = host.upload(&bytes, &u.blake3, ext)?;
            record(&u.blake3, &hosted)?;
            Ok(Done::Uploaded(hosted))
        }
    }
}
