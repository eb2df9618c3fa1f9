//! PhotoTranscoder cache policies: empty it, trim it oldest-first to a budget, or drop entries
//! older than an age. The folder itself always stays.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use super::pass::{CacheJob, Job};
use super::tree::{self, Entry};
pub use crate::changeset::policy::CachePolicy;
use crate::changeset::Change;

/// The changeset path of the cache (wherever it really is).
pub const CACHE: &str = "Cache/PhotoTranscoder";

/// How the pass judges what it reads in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Everything goes (`all`).
    All,
    /// Entries modified before this time (unix seconds) go (`older-than`).
    Before(i64),
    /// Oldest first down to this many bytes (`max-size`): weighed over the whole cache, so the
    /// pass keeps the entries and [`judge_budget`] decides once it is done.
    Budget(u64),
}

impl Rule {
    /// The rule for `policy`, with its cutoff taken now.
    pub fn of(policy: CachePolicy) -> Rule {
        match policy {
            CachePolicy::All => Rule::All,
            CachePolicy::OlderThan(age) => {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                Rule::Before(now.saturating_sub(age).as_secs() as i64)
            }
            CachePolicy::MaxSize(budget) => Rule::Budget(budget),
        }
    }
}

/// The folders the pass reads for the cache folder `dir` (changeset path [`CACHE`]): each
/// subfolder, and the files directly in it, judged by `rule` (none: only measured). No cache
/// lists nothing; a cache folder that is a symlink is refused: tidyplex never deletes through
/// one.
pub fn jobs(dir: &Path, rule: Option<Rule>) -> Result<Vec<Job>> {
    match std::fs::symlink_metadata(dir) {
        Err(_) => return Ok(Vec::new()),
        Ok(m) if m.file_type().is_symlink() => bail!(
            "the PhotoTranscoder folder {} is a symlink; tidyplex never deletes through symlinks \
             (name the real folder's parent with --plex-dir, or leave the cache out)",
            dir.display()
        ),
        Ok(m) if !m.is_dir() => {
            bail!("the PhotoTranscoder folder {} is not a folder", dir.display())
        }
        Ok(_) => {}
    }
    let mut jobs = vec![Job::Cache(Box::new(CacheJob {
        dir: dir.to_path_buf(),
        rel: CACHE.into(),
        shallow: true,
        rule,
    }))];
    let mut subs: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    subs.sort();
    jobs.extend(subs.into_iter().map(|name| {
        Job::Cache(Box::new(CacheJob {
            dir: dir.join(&name),
            rel: format!("{CACHE}/{name}"),
            shallow: false,
            rule,
        }))
    }));
    Ok(jobs)
}

/// The deletions `rule` asks for among the `entries` of one cache folder; `None` for a
/// budget, which only the whole cache can answer.
pub fn judge_folder(entries: &[Entry], rule: Rule) -> Option<Vec<Change>> {
    match rule {
        Rule::All => Some(tree::changes(CACHE, entries, |_| true, 1, None)),
        Rule::Before(cutoff) => Some(tree::changes(CACHE, entries, |e| e.mtime < cutoff, 1, None)),
        Rule::Budget(_) => None,
    }
}

/// The deletions that bring the cache, all of whose `entries` are given, down to `budget`
/// bytes, oldest first.
pub fn judge_budget(entries: &[Entry], budget: u64) -> Vec<Change> {
    let total: u64 = entries.iter().map(|e| e.size).sum();
    let mut by_age: Vec<&Entry> = entries.iter().collect();
    by_age.sort_by(|a, b| (a.mtime, &a.path).cmp(&(b.mtime, &b.path)));
    let mut excess = total.saturating_sub(budget);
    let mut doomed = std::collections::HashSet::new();
    for e in by_age {
        if excess == 0 {
            break;
        }
        excess = excess.saturating_sub(e.size);
        doomed.insert(e.path.as_str());
    }
    tree::changes(CACHE, entries, |e| doomed.contains(e.path.as_str()), 1, None)
}
