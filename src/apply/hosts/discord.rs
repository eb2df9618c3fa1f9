//! The Discord webhook host. Attachment links are signed (`ex`, `is`, `hm`) and stop working
//! about 24 hours after they are issued; fetching the webhook's message again returns fresh
//! ones. The webhook URL holds a token: it is read from the environment, kept here, and never
//! printed (not even by `Debug`).

use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use super::http::{Client, Reply};
use super::{content_type, file_name, ledger, DiscordIds, Host, HostError, Hosted, Reuse};
pub use crate::plex::hosted::{cdn_link, link_expiry, CdnLink};

/// The Discord API version webhook calls use.
pub const API_VERSION: &str = "v10";

/// `DiscordBot (<url>, <version>)`, the User-Agent form Discord documents.
pub fn user_agent() -> String {
    let url = option_env!("CARGO_PKG_REPOSITORY")
        .filter(|u| !u.is_empty())
        .unwrap_or("https://crates.io/crates/tidyplex");
    format!("DiscordBot ({url}, {})", env!("CARGO_PKG_VERSION"))
}

pub use crate::plex::hosted::DISCORD_MAX_BYTES as MAX_BYTES;

/// A Discord webhook.
pub struct Discord {
    client: Client,
    /// `…/webhooks/<id>/<token>` (query kept, e.g. `thread_id`).
    webhook: Url,
    webhook_id: String,
    margin: Duration,
}

impl std::fmt::Debug for Discord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discord").field("webhook_id", &self.webhook_id).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Message {
    id: String,
    #[serde(default)]
    channel_id: Option<String>,
    #[serde(default)]
    attachments: Vec<Attachment>,
}

#[derive(Deserialize)]
struct Attachment {
    id: String,
    url: String,
    #[serde(default)]
    filename: String,
}

impl Discord {
    /// The webhook whose URL is in the environment variable `var`.
    pub fn from_env(var: &str, margin: Option<Duration>) -> anyhow::Result<Discord> {
        let url = std::env::var(var).map_err(|_| {
            anyhow::anyhow!(
                "the image host is a Discord webhook, and ${var} does not hold its URL; set it (the URL stays out of SPECs and changesets)"
            )
        })?;
        Discord::new(url.trim(), margin.unwrap_or(crate::spec::DEFAULT_REFRESH_MARGIN))
            .map_err(|e| anyhow::anyhow!("${var}: {e}"))
    }

    /// The webhook at `url` (any http(s) base works: tests use a loopback server).
    pub fn new(url: &str, margin: Duration) -> anyhow::Result<Discord> {
        let bad =
            || anyhow::anyhow!("not a webhook URL (https://discord.com/api/webhooks/ID/TOKEN)");
        let webhook = Url::parse(url).map_err(|_| bad())?;
        if !matches!(webhook.scheme(), "http" | "https") || webhook.host_str().is_none() {
            return Err(bad());
        }
        let segments: Vec<&str> = webhook
            .path_segments()
            .map(|s| s.filter(|p| !p.is_empty()).collect())
            .unwrap_or_default();
        let (id, token) = match segments.iter().position(|s| *s == "webhooks") {
            Some(i) if segments.len() == i + 3 => (segments[i + 1], segments[i + 2]),
            _ => return Err(bad()),
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) || token.is_empty() {
            return Err(bad());
        }
        let versioned = segments[..segments.len() - 3].last().is_some_and(|s| s.starts_with('v'));
        // An unversioned webhook URL would reach Discord's deprecated default version.
        let path = (!versioned && segments.first() == Some(&"api"))
            .then(|| format!("/api/{API_VERSION}/{}", segments[1..].join("/")));
        let (id, token) = (id.to_string(), token.to_string());
        let mut webhook = webhook.clone();
        if let Some(path) = path {
            webhook.set_path(&path);
        }
        let mut secrets = vec![url.to_string(), token.to_string(), webhook.to_string()];
        secrets.push(webhook.path().to_string());
        let client = Client::with_user_agent(secrets, &user_agent())?;
        Ok(Discord { client, webhook_id: id, webhook, margin })
    }

    /// The webhook URL with `extra` path segments and `wait=true`.
    fn url(&self, extra: &[&str], wait: bool) -> Url {
        let mut url = self.webhook.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(extra);
        }
        if wait {
            url.query_pairs_mut().append_pair("wait", "true");
        }
        url
    }

    /// The hosted copy an answer describes: the attachment `wanted` (or the only one).
    fn hosted(&self, reply: &Reply, wanted: Option<&str>, name: &str) -> Result<Hosted, HostError> {
        let message: Message = serde_json::from_slice(&reply.body)
            .map_err(|_| HostError::Failed(format!("{name}: Discord's answer is not a message")))?;
        let attachment = message
            .attachments
            .iter()
            .find(|a| match wanted {
                Some(id) => a.id == id,
                None => a.filename == name,
            })
            .or_else(|| if wanted.is_none() { message.attachments.first() } else { None })
            .ok_or_else(|| {
                HostError::Failed(format!(
                    "{name}: Discord answered with a message without the attachment"
                ))
            })?;
        if !crate::changeset::is_writable_url(&attachment.url) {
            return Err(HostError::Failed(format!(
                "{name}: Discord's attachment link is not an http(s) URL"
            )));
        }
        Ok(Hosted {
            url: attachment.url.clone(),
            expires: link_expiry(&attachment.url),
            discord: Some(DiscordIds {
                webhook_id: self.webhook_id.clone(),
                channel_id: message.channel_id.clone(),
                message_id: message.id.clone(),
                attachment_id: attachment.id.clone(),
            }),
        })
    }
}

impl Host for Discord {
    fn name(&self) -> &'static str {
        "discord"
    }

    fn upload(&self, bytes: &[u8], blake3: &str, ext: &str) -> Result<Hosted, HostError> {
        let name = file_name(blake3, ext);
        if bytes.len() as u64 > MAX_BYTES {
            return Err(HostError::TooLarge(format!(
                "{name}: {} bytes is over Discord's 10 MiB limit",
                bytes.len()
            )));
        }
        let payload = serde_json::json!({
            "content": "",
            "attachments": [{"id": 0, "filename": name}],
        })
        .to_string();
        let url = self.url(&[], true);
        // The multipart body, built once with a known length (a streamed form would hide a
        // refused connection behind its own "receiver is gone").
        let boundary = format!("tidyplex-{}", &blake3[..32.min(blake3.len())]);
        let mut body = Vec::with_capacity(bytes.len() + 512);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"payload_json\"\r\nContent-Type: application/json\r\n\r\n{payload}\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"files[0]\"; filename=\"{name}\"\r\nContent-Type: {}\r\n\r\n",
                content_type(ext)
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let make = || {
            self.client
                .http()
                .post(url.clone())
                .header(
                    reqwest::header::CONTENT_TYPE,
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(body.clone())
        };
        let reply = self.client.send(&format!("upload {name} to discord"), &[], &make)?;
        self.hosted(&reply, None, &name)
    }

    fn reuse(&self, entry: &ledger::Entry, _ext: &str) -> Reuse {
        if entry.host != "discord" || entry.webhook_id.as_deref() != Some(&self.webhook_id) {
            return Reuse::No;
        }
        if entry.message_id.is_none() || entry.attachment_id.is_none() {
            return Reuse::No;
        }
        match entry.expires {
            Some(ex) if ex <= super::now() + self.margin.as_secs() as i64 => Reuse::Refresh,
            _ => Reuse::Yes,
        }
    }

    fn refresh(&self, message_id: &str, attachment_id: &str) -> Result<Hosted, HostError> {
        let what = format!("refresh attachment {attachment_id} of message {message_id}");
        let url = self.url(&["messages", message_id], false);
        let make = || self.client.http().get(url.clone());
        let reply = self.client.send(&what, &[404], &make)?;
        if reply.status.as_u16() == 404 {
            // 10008: this webhook's message is gone (deleted); anything else: the webhook is.
            let code = serde_json::from_slice::<serde_json::Value>(&reply.body)
                .ok()
                .and_then(|v| v.get("code").and_then(|c| c.as_u64()));
            return Err(if code == Some(10008) {
                HostError::Gone(format!("{what}: the message was deleted on Discord"))
            } else {
                HostError::Stop(format!(
                    "{what}: the host answered HTTP 404; no more requests go to it in this run (check its settings)"
                ))
            });
        }
        self.hosted(&reply, Some(attachment_id), &what)
    }

    fn probe_first(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_are_checked_and_never_shown() {
        let d =
            Discord::new("https://discord.com/api/webhooks/123/s3cret", Duration::ZERO).unwrap();
        assert_eq!(d.webhook_id, "123");
        assert!(!format!("{d:?}").contains("s3cret"));
        assert!(d.url(&["messages", "9"], false).as_str().ends_with("/123/s3cret/messages/9"));
        assert!(d.url(&[], true).as_str().ends_with("/123/s3cret?wait=true"));
        // Unversioned URLs go to the current API version; a versioned one is kept.
        assert_eq!(d.url(&[], false).path(), "/api/v10/webhooks/123/s3cret");
        let v9 =
            Discord::new("https://discord.com/api/v9/webhooks/1/t0ken", Duration::ZERO).unwrap();
        assert_eq!(v9.url(&[], false).path(), "/api/v9/webhooks/1/t0ken");
        assert!(user_agent().starts_with("DiscordBot (https://") && user_agent().ends_with(')'));
        for bad in [
            "not a url",
            "ftp://x/webhooks/1/t",
            "https://x/webhooks/abc/t",
            "https://x/webhooks/1",
        ] {
            let e = Discord::new(bad, Duration::ZERO).unwrap_err().to_string();
            assert!(!e.contains(bad), "{e}");
        }
    }
}
