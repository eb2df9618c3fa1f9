//! What apply asks of the Plex server: whether it is idle before the DB writes, and the
//! `plex_call` changes (refresh/analyze) after the writes and deletions.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Result};

use super::{db, Options, Report};
use crate::changeset::{Changeset, PlexCall};
use crate::plex::api::PlexError;
use crate::plex::db::Db;
use crate::plex::locate::PlexPaths;

/// How many refresh/analyze calls are in flight at once.
pub const CONCURRENCY: usize = 4;

/// Where a token comes from, for messages about a missing one.
pub const NO_TOKEN: &str = "no Plex token: set TIDYPLEX_PLEX_TOKEN, or let tidyplex read \
     PlexOnlineToken from Preferences.xml in the plex dir";

/// What the idle check decided.
#[derive(Debug, Default)]
pub struct Gate {
    /// What to report about Plex (idle, busy, not reachable).
    pub note: Option<String>,
    /// Why the whole apply is deferred (`--when-idle` while Plex is busy).
    pub defer: Option<String>,
}

/// Asks Plex whether something plays or scans, when there are DB writes (or `--when-idle`).
/// With `--when-idle` a busy or silent Plex defers everything; one that cannot be asked (no
/// token, token refused) is an error, and nothing is changed. Without it the answer is only
/// reported. A Plex that refuses connections is not running, hence idle.
pub fn gate(opts: &Options, writes: bool) -> Result<Gate> {
    if !writes && !opts.when_idle {
        return Ok(Gate::default());
    }
    let Some(client) = &opts.plex else {
        if opts.when_idle {
            bail!(
                "--when-idle cannot ask Plex whether it is idle: {NO_TOKEN}; nothing was changed"
            );
        }
        return Ok(Gate::default());
    };
    let url = client.url();
    Ok(match client.busy() {
        Ok(busy) if busy.is_idle() => Gate { note: Some(format!("idle ({url})")), defer: None },
        Ok(busy) if opts.when_idle => Gate {
            note: Some(format!("busy: {busy}")),
            defer: Some(format!(
                "everything: Plex is busy ({busy}); nothing was changed (--when-idle)"
            )),
        },
        Ok(busy) => {
            tracing::warn!("Plex is busy ({busy}); applying anyway (--when-idle waits for idle)");
            Gate { note: Some(format!("busy: {busy}; applied anyway")), defer: None }
        }
        Err(PlexError::Unreachable(_)) => {
            Gate { note: Some(format!("not running at {url}: nothing to wait for")), defer: None }
        }
        Err(e @ PlexError::Timeout(..)) if opts.when_idle => Gate {
            note: Some(e.to_string()),
            defer: Some(format!("everything: {e}; nothing was changed (--when-idle)")),
        },
        Err(e) if opts.when_idle => {
            bail!("--when-idle cannot tell whether Plex is idle: {e}; nothing was changed")
        }
        Err(e) => {
            tracing::warn!("cannot tell whether Plex is idle: {e}; applying anyway");
            Gate { note: Some(format!("unknown: {e}")), defer: None }
        }
    })
}

/// Sends the `plex_call` changes of `cs`, at most [`CONCURRENCY`] at a time, each only if its
/// column still holds the value it was planned with. Without a token they are deferred; a
/// refused token fails them (and stops sending); an unreachable or slow Plex defers them.
pub fn call_all(
    paths: &PlexPaths,
    cs: &Changeset,
    opts: &Options,
    report: &mut Report,
    tick: &(dyn Fn() + Sync),
) -> Result<()> {
    let calls: Vec<&PlexCall> = cs.changes.iter().filter_map(|c| c.plex_call.as_deref()).collect();
    if calls.is_empty() {
        return Ok(());
    }
    let name = |p: &PlexCall| {
        let kind = cs.items.get(&p.id).map_or("item", |i| i.kind.as_str());
        format!("{} {kind} {}", p.action.as_str(), p.id)
    };
    let Some(client) = &opts.plex else {
        for p in &calls {
            report.deferred.push(format!("{}: {NO_TOKEN}", name(p)));
            tick();
        }
        return Ok(());
    };

    // Preconditions, from the live DB.
    let db = Db::open(&paths.db)?;
    let mut due = Vec::new();
    for p in calls {
        match db::current(db.conn(), "metadata_items", p.id, &p.column).map_err(|e| db.error(e))? {
            Some(Some(now)) if now == p.from => due.push(p),
            Some(now) => {
                report.drifted.push(format!(
                    "{}: {} is {} now",
                    name(p),
                    p.column,
                    now.as_deref().unwrap_or("empty")
                ));
                tick();
            }
            None => {
                report.drifted.push(format!("{}: the item is gone", name(p)));
                tick();
            }
        }
    }
    drop(db);

    // The calls, a few at a time; a refused token or an absent Plex stops the rest.
    let next = AtomicUsize::new(0);
    let stop: Mutex<Option<PlexError>> = Mutex::new(None);
    let stopped = AtomicBool::new(false);
    let results: Mutex<Vec<(usize, Result<(), PlexError>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..CONCURRENCY.min(due.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(p) = due.get(i) else { break };
                let result = if stopped.load(Ordering::SeqCst) {
                    Err(stop.lock().expect("no panics").clone().expect("set before stopped"))
                } else {
                    let r = client.item(p.action.as_str(), p.id);
                    if let Err(e @ (PlexError::Unauthorized(..) | PlexError::Unreachable(_))) = &r {
                        stop.lock().expect("no panics").get_or_insert(e.clone());
                        stopped.store(true, Ordering::SeqCst);
                    }
                    r
                };
                results.lock().expect("no panics").push((i, result));
                tick();
            });
        }
    });
    let mut results = results.into_inner().expect("no panics");
    results.sort_by_key(|(i, _)| *i);
    for (i, result) in results {
        let what = name(due[i]);
        match result {
            Ok(()) => report.applied += 1,
            Err(e @ PlexError::NotFound(..)) => report.drifted.push(format!("{what}: {e}")),
            Err(e) if e.is_transient() => report.deferred.push(format!("{what}: {e}")),
            Err(e) => report.failed.push(format!("{what}: {e}")),
        }
    }
    Ok(())
}
