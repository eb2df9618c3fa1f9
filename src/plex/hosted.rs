//! Copies of images on image hosts, as the DB and the upload ledger record them: what a hosted
//! copy is, and what a Discord attachment link says about itself (its attachment, its expiry).
//! Facts only; the hosts themselves live in `apply::hosts`.

use reqwest::Url;

/// Discord's attachment limit for webhooks without boosts.
pub const DISCORD_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// A copy on a host: the URL a column gets, and what is needed to refresh it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hosted {
    /// The http(s) URL Plex fetches.
    pub url: String,
    /// When the link stops working (unix seconds), for signed links.
    pub expires: Option<i64>,
    /// Discord's ids, for refreshing the link.
    pub discord: Option<DiscordIds>,
}

/// Where a Discord attachment lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscordIds {
    /// The webhook that posted it (an id, never its token).
    pub webhook_id: String,
    /// The channel.
    pub channel_id: Option<String>,
    /// The message.
    pub message_id: String,
    /// The attachment.
    pub attachment_id: String,
}

/// Now, in unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Hosts whose links have Discord's shape.
const CDN_HOSTS: [&str; 2] = ["cdn.discordapp.com", "media.discordapp.net"];

/// The expiry (unix seconds) of a signed link: its `ex` query parameter, in hex.
pub fn link_expiry(url: &str) -> Option<i64> {
    let query = url.split_once('?')?.1.split('#').next()?;
    let ex = query.split('&').find_map(|p| p.strip_prefix("ex="))?;
    i64::from_str_radix(ex, 16).ok()
}

/// A Discord attachment link: `…/attachments/<channel>/<attachment>/<name>?ex=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdnLink {
    /// The attachment's id.
    pub attachment_id: String,
    /// When it expires (unix seconds).
    pub expires: i64,
    /// Whether it is on Discord's own CDN (not just shaped like it).
    pub on_discord: bool,
}

/// Parses a link with the shape of a Discord attachment link.
pub fn cdn_link(url: &str) -> Option<CdnLink> {
    let parsed = Url::parse(url).ok()?;
    let segments: Vec<&str> = parsed.path_segments()?.collect();
    let i = segments.iter().position(|s| *s == "attachments")?;
    let [channel, attachment, name] = segments.get(i + 1..i + 4)? else { return None };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(channel) || !digits(attachment) || name.is_empty() {
        return None;
    }
    Some(CdnLink {
        attachment_id: attachment.to_string(),
        expires: link_expiry(url)?,
        on_discord: parsed.host_str().is_some_and(|h| CDN_HOSTS.contains(&h)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_links_are_parsed() {
        let url = "https://cdn.discordapp.com/attachments/111/222/abc.jpg?ex=65f1a2b3&is=65f05133&hm=deadbeef&";
        assert_eq!(link_expiry(url), Some(0x65f1a2b3));
        let link = cdn_link(url).unwrap();
        assert_eq!(link.attachment_id, "222");
        assert!(link.on_discord);
        assert_eq!(link_expiry("https://x/y.jpg"), None);
        assert!(cdn_link("https://image.tmdb.org/t/p/original/x.jpg").is_none());
        assert!(cdn_link("https://cdn.discordapp.com/attachments/111/222/abc.jpg").is_none());
    }
}
