//! tidyplex: reclaim the disk space Plex Media Server spends on images it no longer needs.
//!
//! Data flows one way: [`cli`] → [`plex`] (read-only model) → [`scan`] (read-only walkers) →
//! [`status`] → [`render`]; [`fixture`] builds synthetic Plex folders for tests, demos and
//! benchmarks.

#![warn(missing_docs)]

pub mod apply;
pub mod changeset;
pub mod cli;
pub mod demo;
pub mod fixture;
pub mod plex;
pub mod render;
pub mod review;
pub mod scan;
pub mod schema;
pub mod serve;
pub mod spec;
pub mod status;
