//! Talking to Plex Media Server over HTTP: is it idle, refresh or analyze an item, and its own
//! maintenance (empty trash, clean bundles, optimize).
//!
//! The token travels only in the `X-Plex-Token` header (never in a URL), redirects are not
//! followed (a redirect would carry the header elsewhere), no proxy is used, and every error
//! message is scrubbed of it. Plex answers XML by default; we ask for JSON.

use std::path::Path;
use std::time::{Duration, Instant};

use quick_xml::events::Event;
use quick_xml::Reader;
use serde_json::Value;

/// Where Plex listens when `--plex-url` does not say.
pub const DEFAULT_URL: &str = "http://127.0.0.1:32400";

/// The environment variable holding the token.
pub const TOKEN_ENV: &str = "TIDYPLEX_PLEX_TOKEN";

/// Where a token came from (never the token itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `TIDYPLEX_PLEX_TOKEN`.
    Env,
    /// `PlexOnlineToken` in `<plex-dir>/Preferences.xml`.
    Preferences,
}

/// A Plex token. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The token from `TIDYPLEX_PLEX_TOKEN`, else from `<plex_dir>/Preferences.xml` when it is
/// readable and has one.
pub fn find_token(plex_dir: Option<&Path>) -> Option<(Token, TokenSource)> {
    if let Some(t) = std::env::var(TOKEN_ENV).ok().map(|t| t.trim().to_string()) {
        if !t.is_empty() {
            return Some((Token(t), TokenSource::Env));
        }
    }
    let prefs = plex_dir?.join("Preferences.xml");
    match std::fs::read(&prefs) {
        Ok(bytes) => match preferences_token(&bytes) {
            Some(t) => Some((Token(t), TokenSource::Preferences)),
            None => {
                tracing::debug!("{} holds no PlexOnlineToken", prefs.display());
                None
            }
        },
        Err(e) => {
            tracing::debug!("cannot read {}: {e}", prefs.display());
            None
        }
    }
}

/// `PlexOnlineToken` of the root `<Preferences …/>` element.
pub fn preferences_token(xml: &[u8]) -> Option<String> {
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).ok()? {
            Event::Start(e) | Event::Empty(e) => {
                if e.local_name().as_ref() != b"Preferences" {
                    return None;
                }
                for attr in e.attributes().flatten() {
                    if attr.key.local_name().as_ref() == b"PlexOnlineToken" {
                        let v = attr.unescape_value().ok()?.trim().to_string();
                        return (!v.is_empty()).then_some(v);
                    }
                }
                return None;
            }
            Event::Eof => return None,
            _ => {}
        }
        buf.clear();
    }
}

/// Why a call to Plex failed: one line, never holding the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlexError {
    /// Nothing listens there (Plex is not running, or `--plex-url` is wrong).
    #[error(
        "cannot reach Plex at {0} (connection refused; is Plex running? is --plex-url right?)"
    )]
    Unreachable(String),
    /// It did not answer in time.
    #[error("Plex at {0} did not answer within {1} s")]
    Timeout(String, u64),
    /// 401/403: the token is wrong or lacks the rights.
    #[error("Plex at {0} refused the token (HTTP {1}); check {TOKEN_ENV} or PlexOnlineToken in Preferences.xml")]
    Unauthorized(String, u16),
    /// 404: no such item (or endpoint).
    #[error("Plex at {0} has no {1} (HTTP 404)")]
    NotFound(String, String),
    /// Any other HTTP status.
    #[error("Plex at {0} answered HTTP {1} to {2}")]
    Status(String, u16, String),
    /// Anything else (TLS, a reset connection, an unreadable answer).
    #[error("Plex at {0}: {1}")]
    Other(String, String),
}

impl PlexError {
    /// Whether trying again later may help (Plex busy, restarting, or briefly away).
    pub fn is_transient(&self) -> bool {
        match self {
            PlexError::Unreachable(_) | PlexError::Timeout(..) => true,
            PlexError::Status(_, code, _) => *code >= 500,
            PlexError::Other(..) => true,
            PlexError::Unauthorized(..) | PlexError::NotFound(..) => false,
        }
    }
}

/// An activity Plex reports under `/activities`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// Its id.
    pub uuid: String,
    /// `library.update.section`, `library.refresh.items`, `media.generate.bif`, …
    pub kind: String,
    /// `Scanning Movies`, …
    pub title: String,
}

impl Activity {
    /// Whether it touches the library or its media (scans, refreshes, analysis, generation):
    /// what tidyplex must not race. Background chores such as EPG loads do not count.
    pub fn is_busy(&self) -> bool {
        self.kind.starts_with("library.") || self.kind.starts_with("media.")
    }
}

/// What keeps Plex busy right now, if anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Busy {
    /// Playing sessions.
    pub sessions: u64,
    /// Library or media activities.
    pub activities: Vec<Activity>,
}

impl Busy {
    /// Nothing plays and nothing scans.
    pub fn is_idle(&self) -> bool {
        self.sessions == 0 && self.activities.is_empty()
    }
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_idle() {
            return f.write_str("idle");
        }
        let mut parts = Vec::new();
        if self.sessions > 0 {
            let s = if self.sessions == 1 { "" } else { "s" };
            parts.push(format!("{} playing session{s}", self.sessions));
        }
        for a in &self.activities {
            parts.push(if a.title.is_empty() {
                a.kind.clone()
            } else {
                format!("{} ({})", a.title, a.kind)
            });
        }
        f.write_str(&parts.join(", "))
    }
}

/// Plex's own maintenance operations, in the order Plex's tools recommend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Maintenance {
    /// Empty the trash of a section (`--section`) or of every section.
    EmptyTrash,
    /// Delete the bundles of items no longer in the library.
    CleanBundles,
    /// Optimize the database.
    Optimize,
}

impl Maintenance {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Maintenance::EmptyTrash => "empty-trash",
            Maintenance::CleanBundles => "clean-bundles",
            Maintenance::Optimize => "optimize",
        }
    }
}

/// A Plex server with a token.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Token,
    source: TokenSource,
    timeout: Duration,
    http: reqwest::blocking::Client,
    id: String,
}

/// The `X-Plex-Client-Identifier` kept in `state` (tidyplex's state folder): made once at
/// random and reused; a fresh one for this run when the folder cannot be written.
pub fn client_id(state: &std::path::Path) -> String {
    let file = state.join("plex-client-id");
    if let Ok(text) = std::fs::read_to_string(&file) {
        let id = text.trim();
        if id.len() >= 16 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return id.to_string();
        }
    }
    let mut raw = [0u8; 16];
    if getrandom::fill(&mut raw).is_err() {
        return "tidyplex".into();
    }
    let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let id = format!("tidyplex-{id}");
    if std::fs::create_dir_all(state).is_ok() {
        let _ = std::fs::write(&file, format!("{id}\n"));
    }
    id
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.source)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Checks `--plex-url`: http(s), a host, no query or fragment (a token never goes there).
pub fn check_url(url: &str) -> Result<String, String> {
    let trimmed = url.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"))
        .ok_or_else(|| format!("--plex-url `{trimmed}` is not an http(s) URL"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("--plex-url `{trimmed}` has no host"));
    }
    if rest.contains(['?', '#', '@']) || rest.chars().any(|c| c.is_whitespace()) {
        return Err("--plex-url must be a plain address like http://127.0.0.1:32400, without a \
             query, fragment or credentials (the token goes in TIDYPLEX_PLEX_TOKEN)"
            .to_string());
    }
    Ok(trimmed.to_string())
}

impl Client {
    /// A client for `url` (checked with [`check_url`]); `timeout` bounds each ordinary call.
    pub fn new(
        url: &str,
        token: Token,
        source: TokenSource,
        timeout: Duration,
    ) -> Result<Client, String> {
        let base = check_url(url)?;
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("tidyplex/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot set up an HTTP client: {e}"))?;
        Ok(Client { base, token, source, timeout, http, id: "tidyplex".into() })
    }

    /// The same client naming itself `id` (`X-Plex-Client-Identifier`), so Plex sees one
    /// device across runs instead of a shared name.
    pub fn with_id(mut self, id: String) -> Client {
        self.id = id;
        self
    }

    /// The server's address (no secret in it).
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Where the token came from.
    pub fn token_source(&self) -> TokenSource {
        self.source
    }

    /// Sends `method path` and returns the body; `timeout` overrides the client's.
    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, PlexError> {
        self.send_for_activity(method, path, timeout).map(|(body, _)| body)
    }

    /// [`Client::send`], also returning the `X-Plex-Activity` id Plex answers a job it
    /// started with.
    fn send_for_activity(
        &self,
        method: reqwest::Method,
        path: &str,
        timeout: Option<Duration>,
    ) -> Result<(Vec<u8>, Option<String>), PlexError> {
        let url = format!("{}{path}", self.base);
        let mut token = reqwest::header::HeaderValue::from_str(&self.token.0).map_err(|_| {
            PlexError::Other(
                self.base.clone(),
                "the Plex token has characters a header cannot carry".into(),
            )
        })?;
        token.set_sensitive(true);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .header("X-Plex-Token", token)
            .header(reqwest::header::ACCEPT, "application/json")
            .header("X-Plex-Product", "tidyplex")
            .header("X-Plex-Version", env!("CARGO_PKG_VERSION"))
            .header("X-Plex-Client-Identifier", self.id.as_str());
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        tracing::debug!("Plex: {method} {path}");
        let what = format!("{method} {}", path.split('?').next().unwrap_or(path));
        let resp = req.send().map_err(|e| self.classify(&e, timeout))?;
        let status = resp.status();
        if status.is_success() {
            let activity = resp
                .headers()
                .get("X-Plex-Activity")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty());
            let body = resp.bytes().map_err(|e| self.classify(&e, timeout))?;
            return Ok((body.to_vec(), activity));
        }
        let code = status.as_u16();
        Err(match code {
            401 | 403 => PlexError::Unauthorized(self.base.clone(), code),
            404 => PlexError::NotFound(self.base.clone(), what),
            _ => PlexError::Status(self.base.clone(), code, what),
        })
    }

    /// A reqwest error as a one-line [`PlexError`] without the token (it is never in a URL,
    /// but scrub anyway).
    fn classify(&self, e: &reqwest::Error, timeout: Option<Duration>) -> PlexError {
        let secs = timeout.unwrap_or(self.timeout).as_secs_f64().ceil() as u64;
        if e.is_timeout() {
            return PlexError::Timeout(self.base.clone(), secs);
        }
        let mut chain = Vec::new();
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
        while let Some(s) = source {
            chain.push(s.to_string());
            source = s.source();
        }
        let detail = chain.join(": ");
        let lower = detail.to_ascii_lowercase();
        if lower.contains("timed out") {
            return PlexError::Timeout(self.base.clone(), secs);
        }
        if e.is_connect() && (lower.contains("refused") || lower.contains("os error 111")) {
            return PlexError::Unreachable(self.base.clone());
        }
        let text = if detail.is_empty() { e.to_string() } else { detail };
        PlexError::Other(self.base.clone(), self.scrub(&text))
    }

    /// `text` without the token.
    pub fn scrub(&self, text: &str) -> String {
        if self.token.0.is_empty() {
            text.to_string()
        } else {
            text.replace(&self.token.0, "<token>")
        }
    }

    fn get_json(&self, path: &str) -> Result<Value, PlexError> {
        let body = self.send(reqwest::Method::GET, path, None)?;
        serde_json::from_slice(&body).map_err(|e| {
            PlexError::Other(self.base.clone(), format!("GET {path} did not answer JSON ({e})"))
        })
    }

    fn put(&self, path: &str, timeout: Option<Duration>) -> Result<(), PlexError> {
        self.send(reqwest::Method::PUT, path, timeout).map(|_| ())
    }

    /// Playing sessions and library/media activities.
    pub fn busy(&self) -> Result<Busy, PlexError> {
        let sessions = playing(&self.get_json("/status/sessions")?);
        let activities = self.activities()?.into_iter().filter(Activity::is_busy).collect();
        Ok(Busy { sessions, activities })
    }

    /// Everything under `/activities`.
    pub fn activities(&self) -> Result<Vec<Activity>, PlexError> {
        let v = self.get_json("/activities")?;
        let list = container(&v).and_then(|c| c.get("Activity")).and_then(Value::as_array);
        Ok(list
            .into_iter()
            .flatten()
            .map(|a| Activity {
                uuid: text(a.get("uuid")),
                kind: text(a.get("type")),
                title: text(a.get("title")),
            })
            .collect())
    }

    /// The ids of the library sections Plex knows.
    pub fn section_ids(&self) -> Result<Vec<i64>, PlexError> {
        let v = self.get_json("/library/sections")?;
        let list = container(&v).and_then(|c| c.get("Directory")).and_then(Value::as_array);
        Ok(list
            .into_iter()
            .flatten()
            .filter_map(|d| d.get("key").and_then(|k| number(k).map(|n| n as i64)))
            .collect())
    }

    /// `PUT /library/metadata/{id}/{action}` (`refresh` or `analyze`); Plex queues the work
    /// and answers at once.
    pub fn item(&self, action: &str, id: i64) -> Result<(), PlexError> {
        self.put(&format!("/library/metadata/{id}/{action}"), None)
    }

    /// Runs one maintenance operation and waits for it, within `wait` in all. Clean bundles and
    /// optimize are started with `async=1`: Plex answers with the job's `X-Plex-Activity` id,
    /// and tidyplex waits for that activity alone (Plex's other long jobs do not hold it up).
    /// Emptying the trash has no documented `async`, so it is sent plain. Without an id, it
    /// waits until no library or media activity is left. `sections` is for `EmptyTrash`.
    pub fn maintain(
        &self,
        op: Maintenance,
        sections: &[i64],
        wait: Duration,
    ) -> Result<(), PlexError> {
        let deadline = Instant::now() + wait;
        let left =
            || deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
        let paths: Vec<String> = match op {
            Maintenance::EmptyTrash => {
                sections.iter().map(|id| format!("/library/sections/{id}/emptyTrash")).collect()
            }
            Maintenance::CleanBundles => vec!["/library/clean/bundles?async=1".into()],
            Maintenance::Optimize => vec!["/library/optimize?async=1".into()],
        };
        for path in paths {
            let (_, activity) =
                self.send_for_activity(reqwest::Method::PUT, &path, Some(left()))?;
            match activity {
                Some(uuid) => self.wait_for(&uuid, deadline, wait)?,
                None => self.wait_idle(deadline, wait)?,
            }
        }
        Ok(())
    }

    /// Polls `/activities` until the activity `uuid` is gone or `deadline` passes.
    fn wait_for(&self, uuid: &str, deadline: Instant, wait: Duration) -> Result<(), PlexError> {
        let mut pause = Duration::from_millis(100);
        loop {
            let Some(job) = self.activities()?.into_iter().find(|a| a.uuid == uuid) else {
                return Ok(());
            };
            if Instant::now() + pause > deadline {
                let what = Busy { sessions: 0, activities: vec![job] }.to_string();
                return Err(PlexError::Other(
                    self.base.clone(),
                    format!("still busy after {} s ({what})", wait.as_secs()),
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Polls `/activities` (quickly at first, then every 2 s) until no library or media
    /// activity is left or `deadline` passes.
    fn wait_idle(&self, deadline: Instant, wait: Duration) -> Result<(), PlexError> {
        let mut pause = Duration::from_millis(100);
        loop {
            let busy: Vec<Activity> =
                self.activities()?.into_iter().filter(Activity::is_busy).collect();
            if busy.is_empty() {
                return Ok(());
            }
            if Instant::now() + pause > deadline {
                let what = Busy { sessions: 0, activities: busy }.to_string();
                return Err(PlexError::Other(
                    self.base.clone(),
                    format!("still busy after {} s ({what})", wait.as_secs()),
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }
}

fn container(v: &Value) -> Option<&Value> {
    v.get("MediaContainer")
}

/// A JSON number, or a string holding one (Plex sends both).
fn number(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

fn text(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or_default().to_string()
}

/// The playing sessions in a `/status/sessions` answer, leaving out theme music that plays
/// while someone browses (`guid` starting with `library://`, as Tautulli does).
fn playing(answer: &serde_json::Value) -> u64 {
    let c = container(answer);
    match c.and_then(|c| c.get("Metadata")).and_then(|m| m.as_array()) {
        Some(list) => list
            .iter()
            .filter(|s| {
                !s.get("guid").and_then(|g| g.as_str()).is_some_and(|g| g.starts_with("library://"))
            })
            .count() as u64,
        None => c.and_then(|c| c.get("size")).and_then(number).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_from_preferences() {
        let xml = br#"<?xml version="1.0" encoding="utf-8"?>
<Preferences MachineIdentifier="x" PlexOnlineToken="abc&amp;def" FriendlyName="n"/>"#;
        assert_eq!(preferences_token(xml).as_deref(), Some("abc&def"));
        assert_eq!(preferences_token(br#"<Preferences FriendlyName="n"/>"#), None);
        assert_eq!(preferences_token(br#"<Preferences PlexOnlineToken=""/>"#), None);
        assert_eq!(preferences_token(br#"<Other PlexOnlineToken="x"/>"#), None);
        assert_eq!(preferences_token(b"not xml <"), None);
    }

    #[test]
    fn plex_urls() {
        assert_eq!(check_url("http://127.0.0.1:32400/").unwrap(), "http://127.0.0.1:32400");
        assert_eq!(check_url("https://plex.example:443").unwrap(), "https://plex.example:443");
        assert!(check_url("127.0.0.1:32400").is_err());
        assert!(check_url("http://h:1/?X-Plex-Token=abc").unwrap_err().contains("without a query"));
        assert!(check_url("http://user:pw@h").is_err());
        assert!(check_url("http://").is_err());
    }

    #[test]
    fn busy_text_and_debug_hide_nothing_but_the_token() {
        let busy = Busy {
            sessions: 2,
            activities: vec![Activity {
                uuid: "a1".into(),
                kind: "library.update.section".into(),
                title: "Scanning Movies".into(),
            }],
        };
        assert_eq!(
            busy.to_string(),
            "2 playing sessions, Scanning Movies (library.update.section)"
        );
        let epg = Activity {
            uuid: String::new(),
            kind: "provider.epg.load".into(),
            title: String::new(),
        };
        assert!(!epg.is_busy());
        // Theme music while browsing is not a playing session.
        let answer = serde_json::json!({"MediaContainer": {"size": 2, "Metadata": [
            {"guid": "plex://movie/1"}, {"guid": "library://abc/item/%2Flibrary%2Fmetadata%2F7"}]}});
        assert_eq!(playing(&answer), 1);
        assert_eq!(playing(&serde_json::json!({"MediaContainer": {"size": 3}})), 3);
        let c = Client::new(
            "http://127.0.0.1:1",
            Token("s3cret".into()),
            TokenSource::Env,
            Duration::from_secs(1),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(c.scrub("x s3cret y"), "x <token> y");
    }
}
