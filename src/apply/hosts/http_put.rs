//! The HTTP PUT host: `PUT <url>/<blake3>.<ext>` (with a bearer token when configured); Plex
//! fetches `<public_url>/<blake3>.<ext>`. Links do not expire.

use super::http::Client;
use super::{content_type, file_name, ledger, Host, HostError, Hosted, Reuse};

/// An endpoint that accepts PUTs.
pub struct HttpPut {
    client: Client,
    url: String,
    public_url: String,
    token: Option<String>,
}

impl HttpPut {
    /// The endpoint `url`, published at `public_url`; the token is read from `token_env`.
    pub fn new(url: &str, public_url: &str, token_env: Option<&str>) -> anyhow::Result<HttpPut> {
        let token = match token_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                anyhow::anyhow!("the http-put image host needs a token, and ${var} is not set")
            })?),
            None => None,
        };
        let client = Client::new(token.iter().cloned().collect())?;
        Ok(HttpPut {
            client,
            url: url.trim_end_matches('/').to_string(),
            public_url: public_url.trim_end_matches('/').to_string(),
            token,
        })
    }

    fn public(&self, name: &str) -> String {
        format!("{}/{name}", self.public_url)
    }
}

impl Host for HttpPut {
    fn name(&self) -> &'static str {
        "http-put"
    }

    fn upload(&self, bytes: &[u8], blake3: &str, ext: &str) -> Result<Hosted, HostError> {
        let name = file_name(blake3, ext);
        let target = format!("{}/{name}", self.url);
        let make = || {
            let mut req = self
                .client
                .http()
                .put(&target)
                .header(reqwest::header::CONTENT_TYPE, content_type(ext))
                .body(bytes.to_vec());
            if let Some(token) = &self.token {
                req = req.bearer_auth(token);
            }
            req
        };
        self.client.send(&format!("PUT {name}"), &[], &make)?;
        Ok(Hosted { url: self.public(&name), expires: None, discord: None })
    }

    fn reuse(&self, entry: &ledger::Entry, ext: &str) -> Reuse {
        if entry.host == "http-put" && entry.url == self.public(&file_name(&entry.blake3, ext)) {
            Reuse::Yes
        } else {
            Reuse::No
        }
    }
}
