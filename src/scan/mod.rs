//! Read-only walkers over the Plex data folder.

pub mod library;
pub mod refs;
pub mod tree;
pub mod usage;
