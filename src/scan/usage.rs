//! Disk use of the folders tidyplex cleans (measured by [`super::pass`]).

use serde::{Deserialize, Serialize};

/// Files and bytes under a folder. `files` counts every entry that is not a directory
/// (regular files, symlinks and every name of a hard-linked file); `bytes` sums the apparent
/// size of regular files, a hard-linked file once (a symlink adds 0).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Non-directory entries.
    pub files: u64,
    /// Apparent bytes of the regular files.
    pub bytes: u64,
}

impl Usage {
    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Usage) {
        self.files += other.files;
        self.bytes += other.bytes;
    }
}
