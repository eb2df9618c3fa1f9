//! The DB writer: re-checks each column before writing it, writes in small `BEGIN IMMEDIATE`
//! transactions with bound parameters, retries while Plex holds the lock, and copes with
//! Plex's FTS triggers (design.md §4.4–4.6).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};

use crate::plex::columns;

/// One column write, with its precondition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// `metadata_items`, `tags` or `library_sections`.
    pub table: String,
    /// Row id.
    pub id: i64,
    /// Image column.
    pub column: String,
    /// The value it must still have.
    pub from: Option<String>,
    /// The value to write: an http(s) URL, or (when undo puts a column back) what it held.
    pub to: Option<String>,
}

/// What became of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written now.
    Applied,
    /// Already holds `to`.
    Already,
    /// Holds neither `from` nor `to` (the current value), or the row is gone.
    Drifted(Option<String>),
    /// The DB stayed locked past the wait budget; the next plan has it again.
    Deferred,
}

/// How writes reach the DB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// Straight UPDATEs (the triggers do not fire on image columns, or there are none).
    Direct,
    /// In the same transaction: drop the FTS triggers of the written tables, update, re-create
    /// them from the exact SQL stored in `sqlite_master`.
    TriggersAside,
    /// Through Plex's own SQLite build, which has the `collating` tokenizer.
    PlexSqlite(PathBuf),
}

/// Limits of a write run.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Rows per transaction.
    pub batch: usize,
    /// How long to keep retrying a locked DB, in all.
    pub lock_wait: Duration,
}

pub use crate::plex::db::writable_directly;

/// The usual places of Plex's SQLite binary (plex-internals §1.1).
pub fn plex_sqlite_candidates() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = [
        "/usr/lib/plexmediaserver/Plex SQLite",
        "/app/usr/lib/plexmediaserver/Plex SQLite",
        "/snap/plexmediaserver/current/Plex SQLite",
        "/usr/local/share/plexmediaserver/Plex SQLite",
        "/var/packages/PlexMediaServer/target/Plex SQLite",
        "/Applications/Plex Media Server.app/Contents/MacOS/Plex SQLite",
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect();
    for var in ["PROGRAMFILES", "PROGRAMFILES(X86)"] {
        if let Some(dir) = std::env::var_os(var) {
            out.push(PathBuf::from(dir).join("Plex/Plex Media Server/Plex SQLite.exe"));
        }
    }
    out
}

/// Picks the strategy for writing `tables`: the Plex SQLite the user named; else direct when
/// the probe allows it; else Plex SQLite found at its usual place; else triggers set aside.
pub fn choose(db: &Path, tables: &BTreeSet<String>, named: Option<&Path>) -> Result<Strategy> {
    if let Some(path) = named {
        if !path.is_file() {
            bail!("--plex-sqlite {} does not exist", path.display());
        }
        return Ok(Strategy::PlexSqlite(path.to_path_buf()));
    }
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open {}", db.display()))?;
    if tables.iter().all(|t| writable_directly(&conn, t)) {
        return Ok(Strategy::Direct);
    }
    Ok(match plex_sqlite_candidates().into_iter().find(|p| p.is_file()) {
        Some(found) => Strategy::PlexSqlite(found),
        None => Strategy::TriggersAside,
    })
}

/// Called with each batch's range in the writes and its outcomes, before the batch commits
/// (what it returns `Err` for rolls the batch back): the journal records what will change.
pub type BeforeCommit<'a> = dyn FnMut(std::ops::Range<usize>, &[Outcome]) -> Result<()> + 'a;

/// Writes every change, batch by batch; returns one outcome per write, in order.
pub fn write(
    db: &Path,
    writes: &[Write],
    strategy: &Strategy,
    limits: &Limits,
    before_commit: &mut BeforeCommit<'_>,
) -> Result<Vec<Outcome>> {
    for w in writes {
        if !columns::is_image_column(&w.table, &w.column) {
            bail!("refusing to write {}.{}: not an image column", w.table, w.column);
        }
    }
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .with_context(|| format!("cannot open {} for writing", db.display()))?;
    conn.busy_timeout(Duration::from_millis(250))?;
    conn.pragma_update(None, "foreign_keys", false)?;
    let deadline = Instant::now() + limits.lock_wait;
    let mut out = Vec::with_capacity(writes.len());
    let mut gave_up = false;
    for (n, batch) in writes.chunks(limits.batch.max(1)).enumerate() {
        let start = n * limits.batch.max(1);
        let range = start..start + batch.len();
        if gave_up {
            // Plex kept the lock past the budget: leave the rest to the next run.
            out.extend(batch.iter().map(|_| Outcome::Deferred));
            continue;
        }
        let mut pause = Duration::from_millis(50);
        loop {
            let attempt = match strategy {
                Strategy::PlexSqlite(bin) => through_plex_sqlite(&conn, db, bin, batch, &mut |o| {
                    before_commit(range.clone(), o)
                }),
                _ => transaction(&conn, batch, *strategy == Strategy::TriggersAside, &mut |o| {
                    before_commit(range.clone(), o)
                }),
            };
            match attempt {
                Ok(outcomes) => {
                    out.extend(outcomes);
                    break;
                }
                Err(e) if is_busy(&e) && Instant::now() + pause <= deadline => {
                    tracing::info!("the database is locked; retrying in {pause:?}");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(e) if is_busy(&e) => {
                    out.extend(batch.iter().map(|_| Outcome::Deferred));
                    gave_up = true;
                    break;
                }
                Err(e) => return Err(e).context("cannot write the Plex database"),
            }
        }
    }
    Ok(out)
}

fn is_busy(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<rusqlite::Error>()
            .and_then(|e| e.sqlite_error_code())
            .is_some_and(|code| matches!(code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
            || c.to_string().contains("database is locked")
    })
}

/// The current value of `table.column` in row `id`, `None` in the outer option when the row
/// is gone. The names come from a validated changeset (image columns only).
pub fn current(
    conn: &Connection,
    table: &str,
    id: i64,
    column: &str,
) -> rusqlite::Result<Option<Option<String>>> {
    conn.query_row(&format!("SELECT \"{column}\" FROM \"{table}\" WHERE id = ?1"), [id], |r| {
        r.get::<_, Option<String>>(0)
    })
    .optional()
}

/// [`current`] of a write's column.
fn current_of(conn: &Connection, w: &Write) -> rusqlite::Result<Option<Option<String>>> {
    current(conn, &w.table, w.id, &w.column)
}

/// What a write would do given the column's current value.
pub fn verdict(w: &Write, now: Option<Option<String>>) -> Outcome {
    match now {
        Some(v) if v == w.to => Outcome::Already,
        Some(v) if v == w.from => Outcome::Applied,
        Some(v) => Outcome::Drifted(v),
        None => Outcome::Drifted(None),
    }
}

/// One `BEGIN IMMEDIATE` … `COMMIT` of a batch; with `aside`, the FTS triggers of the written
/// tables are dropped first and re-created from their stored SQL before the commit.
fn transaction(
    conn: &Connection,
    batch: &[Write],
    aside: bool,
    before_commit: &mut dyn FnMut(&[Outcome]) -> Result<()>,
) -> Result<Vec<Outcome>> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| -> Result<Vec<Outcome>> {
        let mut saved = Vec::new();
        if aside {
            let tables: BTreeSet<&str> = batch.iter().map(|w| w.table.as_str()).collect();
            for table in tables {
                let mut stmt = conn.prepare(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?1 ORDER BY name",
                )?;
                let triggers: Vec<(String, String)> = stmt
                    .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                for (name, sql) in triggers {
                    conn.execute_batch(&format!("DROP TRIGGER \"{}\"", name.replace('"', "\"\"")))?;
                    saved.push(sql);
                }
            }
        }
        let mut out = Vec::with_capacity(batch.len());
        for w in batch {
            let outcome = verdict(w, current_of(conn, w)?);
            if outcome == Outcome::Applied {
                conn.execute(
                    &format!("UPDATE \"{}\" SET \"{}\" = ?1 WHERE id = ?2", w.table, w.column),
                    rusqlite::params![w.to, w.id],
                )?;
            }
            out.push(outcome);
        }
        for sql in saved {
            conn.execute_batch(&sql)?;
        }
        before_commit(&out)?;
        Ok(out)
    })();
    match result {
        Ok(out) => {
            conn.execute_batch("COMMIT")?;
            Ok(out)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// A batch through the `Plex SQLite` binary: preconditions are read here, the UPDATEs (each
/// guarded by its precondition, values as escaped literals) run there in one transaction, and
/// the result is read back.
fn through_plex_sqlite(
    conn: &Connection,
    db: &Path,
    bin: &Path,
    batch: &[Write],
    before_commit: &mut dyn FnMut(&[Outcome]) -> Result<()>,
) -> Result<Vec<Outcome>> {
    let mut planned = Vec::with_capacity(batch.len());
    let mut script = String::from(".bail on\nPRAGMA busy_timeout = 2000;\nBEGIN IMMEDIATE;\n");
    for w in batch {
        let outcome = verdict(w, current_of(conn, w)?);
        if outcome == Outcome::Applied {
            let guard = match &w.from {
                Some(from) => format!("= {}", literal(from)?),
                None => "IS NULL".to_string(),
            };
            script.push_str(&format!(
                "UPDATE \"{t}\" SET \"{c}\" = {to} WHERE id = {id} AND \"{c}\" {guard};\n",
                t = w.table,
                c = w.column,
                to = match &w.to {
                    Some(to) => literal(to)?,
                    None => "NULL".to_string(),
                },
                id = w.id
            ));
        }
        planned.push(outcome);
    }
    if !planned.contains(&Outcome::Applied) {
        return Ok(planned);
    }
    script.push_str("COMMIT;\n");
    // What the guarded UPDATEs may change (read back below): recorded before they run.
    before_commit(&planned)?;
    let mut child = Command::new(bin)
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin.write_all(script.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || !stderr.trim().is_empty() {
        let first = stderr.lines().next().unwrap_or("no message").trim().to_string();
        bail!("{} failed: {first}", bin.display());
    }
    // Read back: a guarded UPDATE that found a changed value did nothing.
    let mut out = Vec::with_capacity(batch.len());
    for (w, p) in batch.iter().zip(planned) {
        out.push(match p {
            Outcome::Applied => match current_of(conn, w)? {
                Some(v) if v == w.to => Outcome::Applied,
                other => Outcome::Drifted(other.flatten()),
            },
            other => other,
        });
    }
    Ok(out)
}

/// A SQL string literal: quotes doubled; NUL refused.
fn literal(s: &str) -> Result<String> {
    if s.contains('\0') {
        bail!("refusing a value with a NUL byte");
    }
    Ok(format!("'{}'", s.replace('\'', "''")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_double_quotes() {
        assert_eq!(literal("it's").unwrap(), "'it''s'");
        assert!(literal("a\0b").is_err());
    }

    fn w(id: i64, from: Option<&str>, to: &str) -> Write {
        Write {
            table: "metadata_items".into(),
            id,
            column: "user_thumb_url".into(),
            from: from.map(String::from),
            to: Some(to.into()),
        }
    }

    #[test]
    fn verdicts_follow_the_current_value() {
        let x = w(1, Some("metadata://a"), "https://b");
        assert_eq!(verdict(&x, Some(Some("metadata://a".into()))), Outcome::Applied);
        assert_eq!(verdict(&x, Some(Some("https://b".into()))), Outcome::Already);
        assert_eq!(verdict(&x, Some(None)), Outcome::Drifted(None));
        assert_eq!(verdict(&x, None), Outcome::Drifted(None));
        let y = w(1, None, "https://b");
        assert_eq!(verdict(&y, Some(None)), Outcome::Applied);
    }
}
