//! Image hosts for stage 4 (design.md §1 stage 4, §4.11): one trait, three hosts.
//!
//! - `discord`: a webhook (its URL only ever read from an environment variable); attachment
//!   links are signed and expire after about 24 h, so every upload records the webhook, message
//!   and attachment ids in the [`ledger`], and later plans refresh the links.
//! - `http-put`: PUT to `<url>/<blake3>.<ext>`, served at `<public_url>/<blake3>.<ext>`.
//! - `dir`: a content-addressed folder outside the Plex folder, published by `tidyplex serve`.
//!
//! Secrets (a webhook URL, a token) never leave this module: errors are built from HTTP status
//! codes and the host's own message, scrubbed of every secret, never from a request URL.

pub mod dir;
pub mod discord;
pub mod http;
pub mod http_put;
pub mod ledger;

use std::path::Path;

use anyhow::Result;

use crate::spec::ImageHost;

pub use crate::plex::hosted::{now, DiscordIds, Hosted};

/// Why a host call did not produce a hosted copy. Messages never hold a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The host refuses us (bad webhook or token, gone endpoint): stop using it at once.
    #[error("{0}")]
    Stop(String),
    /// This file is too large for the host.
    #[error("{0}")]
    TooLarge(String),
    /// This call failed (after retries); the next run tries again.
    #[error("{0}")]
    Failed(String),
    /// The hosted copy is gone for good (a deleted Discord message).
    #[error("{0}")]
    Gone(String),
}

/// What a ledger entry is worth to a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Its URL can be written as it is.
    Yes,
    /// It is this host's, but its link expires soon: refresh it instead of uploading again.
    Refresh,
    /// Not usable (another host, another folder or webhook): upload.
    No,
}

/// An image host.
pub trait Host: Send + Sync {
    /// The name changesets record (`discord`, `http-put`, `dir`).
    fn name(&self) -> &'static str;

    /// Puts `bytes` (whose blake3 is `blake3`, a `.ext` file) on the host.
    fn upload(&self, bytes: &[u8], blake3: &str, ext: &str) -> Result<Hosted, HostError>;

    /// Whether a ledger entry for the same content can stand for an upload.
    fn reuse(&self, entry: &ledger::Entry, ext: &str) -> Reuse;

    /// A fresh link for an attachment of a message this host posted (signed-link hosts only).
    fn refresh(&self, message_id: &str, attachment_id: &str) -> Result<Hosted, HostError> {
        let _ = (message_id, attachment_id);
        Err(HostError::Failed(format!("links of the {} host do not expire", self.name())))
    }

    /// Whether the very first call should go alone (to learn rate limits before a burst).
    fn probe_first(&self) -> bool {
        false
    }
}

/// The host a SPEC configures, ready to use: reads its secrets from the environment and
/// checks its settings (a `dir` inside the Plex folder is refused).
pub fn build(cfg: &ImageHost, plex_root: &Path) -> Result<Box<dyn Host>> {
    Ok(match cfg {
        ImageHost::Discord { webhook_env, .. } => {
            Box::new(discord::Discord::from_env(webhook_env, cfg.refresh_margin())?)
        }
        ImageHost::HttpPut { url, public_url, token_env } => {
            Box::new(http_put::HttpPut::new(url, public_url, token_env.as_deref())?)
        }
        ImageHost::Dir { path, public_url } => {
            Box::new(dir::Dir::new(Path::new(path), public_url, plex_root)?)
        }
    })
}

/// The extension a hosted copy gets: the file's own, lowercased, when it is a short
/// alphanumeric one; `jpg` otherwise (Plex's frame grabs are JPEG).
pub fn ext_of(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rsplit_once('.') {
        Some((stem, ext))
            if !stem.is_empty()
                && (1..=5).contains(&ext.len())
                && ext.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            ext.to_ascii_lowercase()
        }
        _ => "jpg".to_string(),
    }
}

/// The content type of an extension.
pub fn content_type(ext: &str) -> &'static str {
    match ext {
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        _ => "image/jpeg",
    }
}

/// `<blake3>.<ext>`: the name a copy has on every host.
pub fn file_name(blake3: &str, ext: &str) -> String {
    format!("{}.{ext}", blake3.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_short_alphanumeric_or_jpg() {
        assert_eq!(ext_of("Media/localhost/a/b.bundle/Contents/Art/art1.JPG"), "jpg");
        assert_eq!(ext_of("x/thumb1.png"), "png");
        assert_eq!(ext_of("x/noext"), "jpg");
        assert_eq!(ext_of("x/.hidden"), "jpg");
        assert_eq!(ext_of("x/a.b/c"), "jpg");
        assert_eq!(ext_of("x/a.verylongext"), "jpg");
    }
}
