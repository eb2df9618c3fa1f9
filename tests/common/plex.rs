//! A stand-in Plex Media Server: real HTTP on a loopback port, started and stopped by the test.
//! It records every request and can answer slowly, refuse the token, fail, or report playing
//! sessions and activities.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `GET`, `PUT`, …
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// The `X-Plex-Token` header.
    pub token: Option<String>,
    /// The `Accept` header.
    pub accept: Option<String>,
    /// The `X-Plex-Client-Identifier` header.
    pub client: Option<String>,
}

impl Call {
    /// `PUT /library/optimize?async=0`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// How the server behaves; change it while it runs with [`PlexStandIn::set`].
#[derive(Debug, Clone)]
pub struct Conf {
    /// The token it accepts (401 otherwise).
    pub token: String,
    /// Playing sessions (`/status/sessions`).
    pub sessions: u64,
    /// Theme music playing while someone browses (sessions with a `library://` guid).
    pub theme_sessions: u64,
    /// Activities (`/activities`).
    pub activities: Vec<Value>,
    /// Report `activities` for this many more `/activities` requests only (`None`: always).
    pub activities_left: Option<usize>,
    /// Section ids (`/library/sections`).
    pub sections: Vec<i64>,
    /// Answer requests whose path starts with `.0` only after `.1`.
    pub slow: Option<(String, Duration)>,
    /// Answer requests whose path starts with `.0` with status `.1`.
    pub fail: Option<(String, u16)>,
    /// Like Plex, answer maintenance PUTs with an `X-Plex-Activity` id and report that job in
    /// `/activities` for this many polls (0: no ids, the job is over when the PUT answers).
    pub job_polls: usize,
    /// Jobs started so far that are still running: (activity, polls left).
    pub jobs: Vec<(Value, usize)>,
}

impl Default for Conf {
    fn default() -> Conf {
        Conf {
            token: String::new(),
            sessions: 0,
            theme_sessions: 0,
            activities: Vec::new(),
            activities_left: None,
            sections: vec![1, 2, 3],
            job_polls: 0,
            jobs: Vec::new(),
            slow: None,
            fail: None,
        }
    }
}

struct Shared {
    conf: Mutex<Conf>,
    calls: Mutex<Vec<Call>>,
    stop: AtomicBool,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// The running server; stops when dropped.
pub struct PlexStandIn {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl PlexStandIn {
    /// Starts a server that accepts `token`.
    pub fn start(token: &str) -> PlexStandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            conf: Mutex::new(Conf { token: token.to_string(), ..Conf::default() }),
            calls: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let s = shared.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let s = s.clone();
                std::thread::spawn(move || handle(stream, &s));
            }
        });
        PlexStandIn { addr, shared, thread: Some(thread) }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes how it behaves.
    pub fn set(&self, f: impl FnOnce(&mut Conf)) {
        f(&mut self.shared.conf.lock().unwrap());
    }

    /// Every request so far.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// `METHOD path` of every request so far.
    pub fn lines(&self) -> Vec<String> {
        self.calls().iter().map(Call::line).collect()
    }

    /// Forgets the requests so far.
    pub fn clear(&self) {
        self.shared.calls.lock().unwrap().clear();
        self.shared.max_in_flight.store(0, Ordering::SeqCst);
    }

    /// The most requests it was answering at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for PlexStandIn {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An activity as Plex reports it.
pub fn activity(kind: &str, title: &str) -> Value {
    json!({"uuid": "a1", "type": kind, "title": title, "progress": 40, "cancellable": true,
           "Context": {"librarySectionID": "1"}})
}

fn handle(mut stream: TcpStream, s: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let length: usize = header("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    while buf.len() < head_end + length {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let call = Call {
        method,
        path,
        token: header("x-plex-token"),
        accept: header("accept"),
        client: header("x-plex-client-identifier"),
    };
    s.calls.lock().unwrap().push(call.clone());

    let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    s.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let (status, body) = answer(&call, s);
    let activity = STARTED.with(|st| st.borrow_mut().take());
    let extra = activity.map(|id| format!("X-Plex-Activity: {id}\r\n")).unwrap_or_default();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        if status == 200 { "OK" } else { "Error" },
        body.len()
    );
    let _ = stream.flush();
    s.in_flight.fetch_sub(1, Ordering::SeqCst);
}

thread_local! {
    /// The activity id the answer being written announces (one connection per thread).
    static STARTED: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

fn answer(call: &Call, s: &Shared) -> (u16, String) {
    let conf = s.conf.lock().unwrap().clone();
    if let Some((prefix, delay)) = &conf.slow {
        if call.path.starts_with(prefix.as_str()) {
            std::thread::sleep(*delay);
        }
    }
    if call.token.as_deref() != Some(conf.token.as_str()) {
        return (401, String::from("{\"error\":\"unauthorized\"}"));
    }
    if let Some((prefix, status)) = &conf.fail {
        if call.path.starts_with(prefix.as_str()) {
            return (*status, String::from("{}"));
        }
    }
    let route = call.path.split('?').next().unwrap_or_default();
    let body = match (call.method.as_str(), route) {
        ("GET", "/status/sessions") => {
            let mut list: Vec<Value> = (0..conf.sessions)
                .map(|i| json!({"type": "movie", "title": format!("Film {i}"), "guid": format!("plex://movie/{i}")}))
                .collect();
            list.extend((0..conf.theme_sessions).map(|i| {
                json!({"type": "track", "title": format!("Theme {i}"), "guid": format!("library://x/item/%2Flibrary%2Fmetadata%2F{i}")})
            }));
            json!({"MediaContainer": {"size": list.len(), "Metadata": list}})
        }
        ("GET", "/activities") => {
            let mut c = s.conf.lock().unwrap();
            let report = match &mut c.activities_left {
                None => true,
                Some(0) => false,
                Some(n) => {
                    *n -= 1;
                    true
                }
            };
            let mut list = if report { conf.activities.clone() } else { vec![] };
            for (job, left) in c.jobs.iter_mut() {
                list.push(job.clone());
                *left -= 1;
            }
            c.jobs.retain(|(_, left)| *left > 0);
            json!({"MediaContainer": {"size": list.len(), "Activity": list}})
        }
        ("GET", "/library/sections") => {
            let dirs: Vec<Value> = conf
                .sections
                .iter()
                .map(|id| json!({"key": id.to_string(), "title": format!("Section {id}")}))
                .collect();
            json!({"MediaContainer": {"size": dirs.len(), "Directory": dirs}})
        }
        ("PUT", path) if conf.job_polls > 0 && !path.starts_with("/library/metadata/") => {
            let mut c = s.conf.lock().unwrap();
            let uuid = format!("job-{}", c.jobs.len() + s.calls.lock().unwrap().len());
            let kind = if path.contains("optimize") { "library.optimize" } else { "library.clean" };
            let job = json!({"uuid": uuid, "type": kind, "title": format!("Running {path}"), "progress": 10});
            c.jobs.push((job, conf.job_polls));
            STARTED.with(|st| *st.borrow_mut() = Some(uuid));
            return (200, String::new());
        }
        ("PUT", _) => return (200, String::new()),
        _ => return (404, String::from("{}")),
    };
    (200, body.to_string())
}
