//! One apply, undo or purge at a time: an exclusive lock on a file beside the DB folder,
//! released when the process ends however it ends.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// The held lock; dropping it releases it.
#[derive(Debug)]
pub struct ApplyLock {
    _file: File,
}

/// Takes the lock at `path` for `what` (apply, undo, purge), or fails at once naming the
/// holder.
pub fn acquire(path: &Path, what: &str) -> Result<ApplyLock> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let (running, who) = holder.split_once(", ").unwrap_or(("apply", holder));
            bail!(
                "another tidyplex {running} is running ({}); wait for it to finish, then {what} again (lock: {})",
                if who.is_empty() { "holder unknown" } else { who },
                path.display()
            );
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
    let holder = format!(
        "{what}, pid {} since {}",
        std::process::id(),
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
    );
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(holder.as_bytes())?;
    file.flush()?;
    Ok(ApplyLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_naming_the_first() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("state/apply.lock");
        let first = acquire(&path, "apply").unwrap();
        let err = acquire(&path, "undo").unwrap_err().to_string();
        assert!(err.contains("another tidyplex apply is running"), "{err}");
        assert!(err.contains(&format!("(pid {}", std::process::id())), "{err}");
        assert!(err.contains("then undo again"), "{err}");
        drop(first);
        acquire(&path, "purge").unwrap();
    }
}
