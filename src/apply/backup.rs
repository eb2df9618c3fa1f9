//! An online backup of the library DB (SQLite backup API) before the first write.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags};

/// File name prefix of tidyplex's backups (distinct from Plex's own `…db-YYYY-MM-DD`).
const PREFIX: &str = "com.plexapp.plugins.library.db.tidyplex-";

/// Copies `db` into `dir` while Plex may be using it, keeps the newest `keep` backups, and
/// returns the new backup's path.
pub fn backup(db: &Path, dir: &Path, keep: usize) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the backup folder {}", dir.display()))?;
    let stamp = humantime::format_rfc3339_millis(std::time::SystemTime::now())
        .to_string()
        .replace([':', '.'], "-");
    let target = dir.join(format!("{PREFIX}{stamp}"));
    let src = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open {} for a backup", db.display()))?;
    src.busy_timeout(std::time::Duration::from_secs(10))?;
    src.backup(rusqlite::MAIN_DB, &target, None).with_context(|| {
        format!("cannot back up the database to {} (is the disk full?)", target.display())
    })?;
    prune(dir, keep)?;
    Ok(target)
}

/// Removes all but the newest `keep` tidyplex backups in `dir`.
fn prune(dir: &Path, keep: usize) -> Result<()> {
    let mut ours: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(PREFIX)))
        .collect();
    ours.sort();
    let excess = ours.len().saturating_sub(keep);
    for old in &ours[..excess] {
        std::fs::remove_file(old)
            .with_context(|| format!("cannot remove old backup {}", old.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_are_complete_and_only_the_newest_are_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("lib.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (42);",
        )
        .unwrap();
        let dir = tmp.path().join("backups");
        let mut made = Vec::new();
        for _ in 0..4 {
            made.push(backup(&db, &dir, 3).unwrap());
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 3);
        assert!(!made[0].exists() && made[3].exists());
        let copy = Connection::open(&made[3]).unwrap();
        let x: i64 = copy.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(x, 42, "committed WAL content is in the backup");
    }
}
