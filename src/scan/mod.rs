//! Read-only walkers over the Plex data folder.

pub mod usage;
