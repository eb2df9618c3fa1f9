//! Stand-in HTTP servers on 127.0.0.1, started and stopped by the tests: a tiny HTTP/1.1
//! server on std::net, a Discord webhook with signed attachment links and rate limits, and a
//! PUT endpoint. They answer exactly what a test scripts, including broken connections.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A request as the server read it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

/// What to answer.
pub enum Reply {
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Close the connection without a word.
    Drop,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply::Respond {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }
    pub fn status(status: u16) -> Reply {
        Reply::Respond { status, headers: vec![], body: vec![] }
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// A server on 127.0.0.1, stopped when dropped.
pub struct Server {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Request>>>,
    /// Most requests handled at the same time.
    pub max_in_flight: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let (r, s, m) = (requests.clone(), stop.clone(), max_in_flight.clone());
        let thread = std::thread::spawn(move || {
            let in_flight = Arc::new(AtomicUsize::new(0));
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (h, r, m, f) = (handler.clone(), r.clone(), m.clone(), in_flight.clone());
                std::thread::spawn(move || {
                    let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(now, Ordering::SeqCst);
                    let _ = serve_one(stream, &*h, &r);
                    f.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Server { port, requests, max_in_flight, stop, thread: Some(thread) }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    pub fn count(&self, method: &str) -> usize {
        self.requests().iter().filter(|r| r.method == method).count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(
    stream: TcpStream,
    handler: &Handler,
    log: &Mutex<Vec<Request>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(());
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    let req = Request { method, target, headers, body, at: Instant::now() };
    log.lock().unwrap().push(req.clone());
    let mut stream = stream;
    match handler(&req) {
        Reply::Drop => Ok(()),
        Reply::Respond { status, headers, body } => {
            let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
            for (k, v) in &headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
            stream.write_all(head.as_bytes())?;
            if req.method != "HEAD" {
                stream.write_all(&body)?;
            }
            stream.flush()
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        _ => "Whatever",
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A scripted answer to the next webhook POST.
pub enum Script {
    /// Answer this status with Discord's JSON error body.
    Status(u16),
    /// 429 with `retry_after` seconds.
    RateLimited(f64),
    /// Close the connection.
    Drop,
    /// A message without attachments.
    NoAttachments,
}

#[derive(Default)]
pub struct DiscordState {
    /// Answers for the next POSTs, in order; then success.
    pub script: VecDeque<Script>,
    /// Links expire this many seconds after they are issued.
    pub ttl: i64,
    /// Like Discord, a link is issued anew only every `step` seconds counted from the upload,
    /// so a fetch within a step gives the same link (0: a new link on every fetch).
    pub step: i64,
    /// attachment id → when it was uploaded (unix seconds).
    pub posted: HashMap<String, i64>,
    /// Requests per window (0: unlimited) and the window.
    pub limit: usize,
    pub window: Duration,
    window_start: Option<Instant>,
    window_used: usize,
    /// Requests that broke the rate limit.
    pub violations: usize,
    /// message id → (attachment id, file name, bytes)
    pub messages: HashMap<String, (String, String, Vec<u8>)>,
    next_id: u64,
    /// A pause before each POST answer (to see concurrency).
    pub delay: Duration,
}

/// A stand-in Discord: webhook `…/api/webhooks/<id>/<token>` on a loopback server.
pub struct Discord {
    pub server: Server,
    pub state: Arc<Mutex<DiscordState>>,
    pub id: &'static str,
    pub token: &'static str,
}

pub const CHANNEL: &str = "777000777";

impl Discord {
    pub fn start(token: &'static str) -> Discord {
        let state = Arc::new(Mutex::new(DiscordState {
            ttl: 24 * 3600,
            next_id: 1_200_000_000_000_000_000,
            window: Duration::from_secs(2),
            limit: 5,
            ..DiscordState::default()
        }));
        let id = "4242";
        let st = state.clone();
        let base = Arc::new(Mutex::new(String::new()));
        let b = base.clone();
        let server = Server::start(move |req| {
            let base = b.lock().unwrap().clone();
            discord(&st, &base, id, token, req)
        });
        *base.lock().unwrap() = server.base();
        Discord { server, state, id, token }
    }

    /// The webhook URL (with its secret token).
    pub fn webhook(&self) -> String {
        format!("{}/api/webhooks/{}/{}", self.server.base(), self.id, self.token)
    }

    pub fn posts(&self) -> usize {
        self.server.count("POST")
    }
}

fn link(base: &str, att: &str, name: &str, ttl: i64, issued: i64) -> String {
    format!(
        "{base}/attachments/{CHANNEL}/{att}/{name}?ex={:x}&is={:x}&hm={}&",
        issued + ttl,
        issued,
        blake3::hash(format!("{att}{issued}").as_bytes()).to_hex()
    )
}

/// When the link of attachment `att` fetched now was issued: now, or the start of its step.
fn issued(st: &DiscordState, att: &str) -> i64 {
    let now = unix_now();
    match st.posted.get(att) {
        Some(&posted) if st.step > 0 => posted + (now - posted) / st.step * st.step,
        _ => now,
    }
}

fn message(
    base: &str,
    id: &str,
    att: Option<(&str, &str, usize)>,
    ttl: i64,
    issued: i64,
) -> serde_json::Value {
    let attachments: Vec<serde_json::Value> = att
        .map(|(a, name, size)| {
            let url = link(base, a, name, ttl, issued);
            serde_json::json!({"id": a, "filename": name, "size": size, "url": url, "proxy_url": url, "content_type": "image/jpeg"})
        })
        .into_iter()
        .collect();
    serde_json::json!({"id": id, "type": 0, "channel_id": CHANNEL, "webhook_id": "4242", "content": "", "attachments": attachments})
}

fn discord(state: &Mutex<DiscordState>, base: &str, id: &str, token: &str, req: &Request) -> Reply {
    // Like Discord: the current API version, and a User-Agent of the documented form.
    let hook = format!("/api/v10/webhooks/{id}/{token}");
    let path = req.path().to_string();
    // The CDN: a link works until its `ex`.
    if let Some(rest) = path.strip_prefix("/attachments/") {
        let att = rest.split('/').nth(1).unwrap_or_default();
        let ex = req
            .target
            .split(['?', '&'])
            .find_map(|p| p.strip_prefix("ex="))
            .and_then(|h| i64::from_str_radix(h, 16).ok())
            .unwrap_or(0);
        let st = state.lock().unwrap();
        let found = st.messages.values().find(|(a, _, _)| a == att);
        return match found {
            Some((_, _, bytes)) if ex > unix_now() => {
                Reply::Respond { status: 200, headers: vec![], body: bytes.clone() }
            }
            _ => Reply::Respond {
                status: 404,
                headers: vec![],
                body: b"This content is no longer available.".to_vec(),
            },
        };
    }
    if !path.starts_with(&hook) {
        return Reply::json(404, serde_json::json!({"message": "Unknown Webhook", "code": 10015}));
    }
    if !req
        .header("user-agent")
        .is_some_and(|ua| ua.starts_with("DiscordBot (") && ua.ends_with(')'))
    {
        return Reply::json(400, serde_json::json!({"message": "bad User-Agent", "code": 0}));
    }
    let rest = &path[hook.len()..];
    if req.method == "GET" {
        let Some(mid) = rest.strip_prefix("/messages/") else { return Reply::status(405) };
        let st = state.lock().unwrap();
        return match st.messages.get(mid) {
            Some((a, name, bytes)) => {
                let at = issued(&st, a);
                Reply::json(200, message(base, mid, Some((a, name, bytes.len())), st.ttl, at))
            }
            None => {
                Reply::json(404, serde_json::json!({"message": "Unknown Message", "code": 10008}))
            }
        };
    }
    if req.method != "POST" || !rest.is_empty() {
        return Reply::status(405);
    }
    let delay = state.lock().unwrap().delay;
    std::thread::sleep(delay);
    let mut st = state.lock().unwrap();
    // The rate limit: `limit` requests per window, counted from the first in it.
    let now = Instant::now();
    if st.window_start.is_none_or(|s| now >= s + st.window) {
        st.window_start = Some(now);
        st.window_used = 0;
    }
    st.window_used += 1;
    let reset_after = (st.window_start.unwrap() + st.window).saturating_duration_since(now);
    let limit_headers = |used: usize, limit: usize| {
        vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("X-RateLimit-Limit".to_string(), limit.to_string()),
            ("X-RateLimit-Remaining".to_string(), limit.saturating_sub(used).to_string()),
            ("X-RateLimit-Reset-After".to_string(), format!("{:.3}", reset_after.as_secs_f64())),
        ]
    };
    if st.limit > 0 && st.window_used > st.limit {
        st.violations += 1;
        let body = serde_json::json!({"message": "You are being rate limited.", "retry_after": reset_after.as_secs_f64(), "global": false});
        let (used, limit) = (st.window_used, st.limit);
        return Reply::Respond {
            status: 429,
            headers: limit_headers(used, limit),
            body: body.to_string().into_bytes(),
        };
    }
    let headers = limit_headers(st.window_used, if st.limit == 0 { 1000 } else { st.limit });
    match st.script.pop_front() {
        Some(Script::Status(code)) => {
            let msg = match code {
                401 => "401: Unauthorized",
                404 => "Unknown Webhook",
                413 => "Request entity too large",
                _ => "Internal Server Error",
            };
            let body = serde_json::json!({"message": msg, "code": 0}).to_string().into_bytes();
            return Reply::Respond { status: code, headers, body };
        }
        Some(Script::RateLimited(after)) => {
            let body = serde_json::json!({"message": "You are being rate limited.", "retry_after": after, "global": false});
            return Reply::Respond { status: 429, headers, body: body.to_string().into_bytes() };
        }
        Some(Script::Drop) => return Reply::Drop,
        Some(Script::NoAttachments) => {
            st.next_id += 1;
            let mid = st.next_id.to_string();
            let body = message(base, &mid, None, st.ttl, unix_now());
            return Reply::Respond { status: 200, headers, body: body.to_string().into_bytes() };
        }
        None => {}
    }
    assert!(req.target.contains("wait=true"), "webhook uploads wait for the message");
    let Some((name, bytes, payload)) = multipart(req) else {
        return Reply::json(
            400,
            serde_json::json!({"message": "Cannot send an empty message", "code": 50006}),
        );
    };
    assert!(payload.contains("attachments"), "{payload}");
    st.next_id += 2;
    let (mid, att) = ((st.next_id - 1).to_string(), st.next_id.to_string());
    let size = bytes.len();
    st.messages.insert(mid.clone(), (att.clone(), name.clone(), bytes));
    st.posted.insert(att.clone(), unix_now());
    let body = message(base, &mid, Some((&att, &name, size)), st.ttl, unix_now());
    Reply::Respond { status: 200, headers, body: body.to_string().into_bytes() }
}

/// The `files[0]` part (file name and bytes) and the `payload_json` part of a multipart body.
fn multipart(req: &Request) -> Option<(String, Vec<u8>, String)> {
    let ct = req.header("content-type")?;
    let boundary = ct.split("boundary=").nth(1)?.trim_matches('"');
    let delim = format!("--{boundary}");
    let body = &req.body;
    let mut parts = Vec::new();
    let mut pos = find(body, delim.as_bytes(), 0)?;
    loop {
        let start = pos + delim.len();
        if body.get(start..start + 2) == Some(b"--") {
            break;
        }
        let next = find(body, delim.as_bytes(), start)?;
        parts.push(&body[start + 2..next - 2]); // skip CRLF after the boundary and before the next
        pos = next;
    }
    let (mut file, mut payload) = (None, None);
    for part in parts {
        let split = find(part, b"\r\n\r\n", 0)?;
        let head = String::from_utf8_lossy(&part[..split]).to_string();
        let content = part[split + 4..].to_vec();
        if head.contains("name=\"files[0]\"") {
            let name = head.split("filename=\"").nth(1)?.split('"').next()?.to_string();
            file = Some((name, content));
        } else if head.contains("name=\"payload_json\"") {
            payload = Some(String::from_utf8(content).ok()?);
        }
    }
    let (name, bytes) = file?;
    Some((name, bytes, payload?))
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// A stand-in PUT endpoint: `PUT /upload/<name>` (with `Authorization: Bearer <token>`) stores,
/// `GET /pub/<name>` serves.
pub struct PutHost {
    pub server: Server,
    pub files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
}

impl PutHost {
    pub fn start(token: &'static str) -> PutHost {
        let files: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let f = files.clone();
        let server = Server::start(move |req| {
            let path = req.path().to_string();
            if let (Some(name), "PUT") = (path.strip_prefix("/upload/"), req.method.as_str()) {
                if req.header("authorization") != Some(&format!("Bearer {token}")) {
                    return Reply::status(401);
                }
                f.lock().unwrap().insert(name.to_string(), req.body.clone());
                return Reply::status(201);
            }
            if let (Some(name), "GET") = (path.strip_prefix("/pub/"), req.method.as_str()) {
                if let Some(bytes) = f.lock().unwrap().get(name) {
                    return Reply::Respond { status: 200, headers: vec![], body: bytes.clone() };
                }
            }
            Reply::status(404)
        });
        PutHost { server, files }
    }
}
