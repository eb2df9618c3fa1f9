//! HTTP for the hosts: one blocking client, retries with backoff on 5xx and dropped
//! connections, rate limits honoured (`X-RateLimit-*` headers, 429 `retry_after`), hosts that
//! refuse us stopped at once, and every message scrubbed of secrets.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::blocking::{RequestBuilder, Response};
use reqwest::StatusCode;

use super::HostError;

/// Attempts per call for 5xx answers and transport errors.
const ATTEMPTS: u32 = 4;
/// 429 answers tolerated per call.
const RATE_LIMITED: u32 = 8;
/// The longest wait a 429 may ask for before the call is given up (the next run retries).
const LONGEST_WAIT: Duration = Duration::from_secs(60);
/// The first backoff after a 5xx or a dropped connection (then doubled).
const BACKOFF: Duration = Duration::from_millis(250);

/// A reply worth looking at: a 2xx, or a status the caller asked to see.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The body.
    pub body: Vec<u8>,
}

/// The rate-limit window the host told us about (kept conservatively: the lowest count
/// heard, less what is in flight).
#[derive(Debug, Default)]
struct Window {
    /// Requests per window (`X-RateLimit-Limit`).
    limit: Option<u64>,
    /// Requests left in it.
    remaining: Option<u64>,
    /// When it resets (`None` right after a reset, until an answer says).
    reset: Option<Instant>,
    /// When it was last reset.
    opened: Option<Instant>,
}

/// A client for one host.
pub struct Client {
    inner: reqwest::blocking::Client,
    secrets: Vec<String>,
    window: Mutex<Window>,
}

impl Client {
    /// A client whose messages never show any of `secrets`.
    pub fn new(secrets: Vec<String>) -> anyhow::Result<Client> {
        Client::with_user_agent(secrets, concat!("tidyplex/", env!("CARGO_PKG_VERSION")))
    }

    /// [`Client::new`] that names itself `agent`.
    pub fn with_user_agent(secrets: Vec<String>, agent: &str) -> anyhow::Result<Client> {
        let inner = reqwest::blocking::Client::builder()
            .user_agent(agent)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| anyhow::anyhow!("cannot set up HTTP: {}", describe(&e)))?;
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| s.len() >= 4).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len())); // longest first
        Ok(Client { inner, secrets, window: Mutex::new(Window::default()) })
    }

    /// The underlying client, to build requests with.
    pub fn http(&self) -> &reqwest::blocking::Client {
        &self.inner
    }

    /// `text` with every secret replaced.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            out = out.replace(s.as_str(), "[secret]");
        }
        out
    }

    /// Sends the request `make` builds (once per attempt), honouring rate limits and retrying
    /// what is worth retrying. 401, 403 and 404 stop the host (unless listed in `accept`), 413
    /// is [`HostError::TooLarge`], other 4xx fail this call. `what` names the call in messages.
    pub fn send(
        &self,
        what: &str,
        accept: &[u16],
        make: &dyn Fn() -> RequestBuilder,
    ) -> Result<Reply, HostError> {
        let mut failures = 0;
        let mut limited = 0;
        let mut pause = BACKOFF;
        loop {
            self.wait_for_window();
            let mut unreachable = false;
            let retry = match make().send() {
                Err(e) => {
                    unreachable = e.is_connect();
                    format!("{what}: {}", self.scrub(&describe(&e)))
                }
                Ok(response) => {
                    self.learn(&response);
                    let status = response.status();
                    let retry_after = retry_after(&response);
                    let body = response.bytes().map(|b| b.to_vec()).unwrap_or_default();
                    let said = self.message(&body);
                    if status.is_success() || accept.contains(&status.as_u16()) {
                        return Ok(Reply { status, body });
                    }
                    match status.as_u16() {
                        429 => {
                            limited += 1;
                            let wait = retry_after_body(&body).or(retry_after).unwrap_or(pause);
                            if limited > RATE_LIMITED || wait > LONGEST_WAIT {
                                return Err(HostError::Failed(format!(
                                    "{what}: rate limited (retry after {:.1} s); the next run tries again",
                                    wait.as_secs_f64()
                                )));
                            }
                            tracing::info!("{what}: rate limited; waiting {wait:?}");
                            self.close_window(wait);
                            continue;
                        }
                        401 | 403 | 404 => {
                            return Err(HostError::Stop(format!(
                                "{what}: the host answered HTTP {status}{said}; no more requests go to it in this run (check its settings)"
                            )))
                        }
                        413 => {
                            return Err(HostError::TooLarge(format!(
                                "{what}: the host refused the file as too large (HTTP 413){said}"
                            )))
                        }
                        500..=599 => format!("{what}: HTTP {status}{said}"),
                        _ => {
                            return Err(HostError::Failed(format!(
                                "{what}: the host answered HTTP {status}{said}"
                            )))
                        }
                    }
                }
            };
            failures += 1;
            if failures >= ATTEMPTS && unreachable {
                return Err(HostError::Stop(format!(
                    "{retry} (gave up after {failures} attempts); no more requests go to it in this run"
                )));
            }
            if failures >= ATTEMPTS {
                return Err(HostError::Failed(format!(
                    "{retry} (gave up after {failures} attempts)"
                )));
            }
            tracing::info!("{retry}; retrying in {pause:?}");
            std::thread::sleep(pause);
            pause *= 2;
        }
    }

    /// Waits while the host's rate-limit window is used up; takes one request from it.
    fn wait_for_window(&self) {
        loop {
            let wait = {
                let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                if w.reset.is_some_and(|r| r <= now) {
                    w.remaining = w.limit;
                    w.reset = None;
                    w.opened = Some(now);
                }
                match w.remaining {
                    Some(0) => match w.reset {
                        Some(r) => r - now,
                        // Used up before any answer told when it resets: wait for one, a while.
                        None if w.opened.is_some_and(|o| now - o < Duration::from_secs(2)) => {
                            Duration::from_millis(50)
                        }
                        None => {
                            w.remaining = None;
                            return;
                        }
                    },
                    Some(n) => {
                        w.remaining = Some(n - 1);
                        return;
                    }
                    None => return,
                }
            };
            tracing::debug!("rate limit reached; waiting {wait:?}");
            std::thread::sleep(wait.min(LONGEST_WAIT));
        }
    }

    /// No requests for `wait`.
    fn close_window(&self, wait: Duration) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        w.remaining = Some(0);
        w.reset = Some(Instant::now() + wait);
        w.limit = w.limit.or(Some(1));
    }

    /// Reads `X-RateLimit-Remaining` and `X-RateLimit-Reset-After`.
    fn learn(&self, response: &Response) {
        let header =
            |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let limit = header("x-ratelimit-limit").and_then(|v| v.parse::<u64>().ok());
        let remaining = header("x-ratelimit-remaining").and_then(|v| v.parse::<u64>().ok());
        let reset = header("x-ratelimit-reset-after")
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s.min(3600.0)));
        if let (Some(remaining), Some(reset)) = (remaining, reset) {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            // Requests in flight are already taken from `remaining`; answers may arrive out of
            // order: the lowest count holds until the window resets.
            w.remaining = Some(w.remaining.map_or(remaining, |known| known.min(remaining)));
            w.reset = Some(Instant::now() + reset);
            w.limit = limit.or(w.limit);
        }
    }

    /// `: <the host's message>` from a JSON body's `message`, short and scrubbed.
    fn message(&self, body: &[u8]) -> String {
        let text = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string));
        match text {
            Some(m) if !m.trim().is_empty() => {
                let short: String = m.chars().take(200).collect();
                format!(" ({})", self.scrub(short.trim()))
            }
            _ => String::new(),
        }
    }
}

/// `Retry-After` (seconds) or `X-RateLimit-Reset-After` of a 429.
fn retry_after(response: &Response) -> Option<Duration> {
    ["retry-after", "x-ratelimit-reset-after"].iter().find_map(|h| {
        let v = response.headers().get(*h)?.to_str().ok()?.trim().parse::<f64>().ok()?;
        (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64(v.min(86_400.0)))
    })
}

/// Discord's `retry_after` (seconds, fractional) in a 429's JSON body.
fn retry_after_body(body: &[u8]) -> Option<Duration> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let s = v.get("retry_after")?.as_f64()?;
    (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s.min(86_400.0)))
}

/// A transport error and its causes, without the request URL (which may hold a secret).
pub fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else {
        "the request failed"
    };
    let mut out = kind.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !text.contains("://") && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
