//! `tidyplex review`: a read-only local web page that shows, per item, what a changeset keeps
//! and what it deletes, with thumbnails of the images.
//!
//! Every request must carry the per-run token printed with the URL (403 otherwise). Only files
//! the changeset deletes (or that a column keeps) are served, only under `Metadata/`, `Media/`
//! and the cache, never through a symlinked folder or a link that leads out (404 otherwise).

mod thumbs;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::apply::files;
use crate::changeset::{check_path, Change, Changeset, Op};
use crate::plex::db::Db;
use crate::plex::locate::PlexPaths;
use crate::plex::model::Library;
use crate::plex::{columns, ImageUrl};
use crate::render::summary::Tally;
use crate::scan::refs::link_target;
use crate::scan::tree;

/// The page, embedded in the binary.
const PAGE: &str = include_str!("page.html");

/// Items per page of `/api/items` at most.
const PAGE_MAX: usize = 200;

/// Thumbnails listed per deleted folder.
const DIR_THUMBS: usize = 12;

/// One item of the changeset, with its totals and where its changes are.
struct Row {
    id: i64,
    kind: String,
    title: String,
    section: Option<i64>,
    tally: Tally,
    changes: std::ops::Range<usize>,
}

/// Everything the server answers from.
struct State {
    paths: PlexPaths,
    token: String,
    cs: Changeset,
    rows: Vec<Row>,
    lib: Library,
    image_columns: Vec<&'static str>,
    /// Digests of the paths the changeset deletes (files and folders).
    deleted: HashSet<u64>,
    /// Digests of the local files that columns keep (added as items are listed).
    kept: Mutex<HashSet<u64>>,
    thumbs: thumbs::Cache,
}

fn digest(path: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut h);
    h.finish()
}

/// A random token for this run (hex, 128 bits).
fn new_token() -> Result<String> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("no random numbers: {e}"))?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

/// Loads what the page needs and serves it on `bind` until the process is stopped; `ready` is
/// told the address and the token once the server listens.
pub fn review(
    paths: PlexPaths,
    cs: Changeset,
    bind: &str,
    ready: impl FnOnce(SocketAddr, &str),
) -> Result<()> {
    // Parsing validated every change; the page checks each file it serves on its own.
    crate::apply::check_plex_dir(&paths, &cs)?;
    let db = Db::open(&paths.db)?;
    let lib = Library::read(&db)?;
    let image_columns = db.schema.metadata_items.clone();
    drop(db);
    let rows = rows(&cs);
    let deleted = cs
        .changes
        .iter()
        .filter_map(|c| match c.op() {
            Some(Op::DeleteFile(f)) => Some(digest(&f.path)),
            Some(Op::DeleteDir(d)) => Some(digest(&d.path)),
            _ => None,
        })
        .collect();
    let state = Arc::new(State {
        paths,
        token: new_token()?,
        cs,
        rows,
        lib,
        image_columns,
        deleted,
        kept: Mutex::default(),
        thumbs: thumbs::Cache::default(),
    });
    let token = state.token.clone();
    crate::serve::http(bind, |addr| ready(addr, &token), move |req| answer(state.clone(), req))
}

/// The items of `cs` in its order, with their totals.
fn rows(cs: &Changeset) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::new();
    for (i, c) in cs.changes.iter().enumerate() {
        let Some(id) = c.item else { continue };
        if out.last().is_none_or(|r| r.id != id) {
            let info = cs.items.get(&id);
            out.push(Row {
                id,
                kind: info.map_or_else(|| "item".into(), |i| i.kind.clone()),
                title: info.map_or_else(String::new, |i| i.title.clone()),
                section: info.and_then(|i| i.section),
                tally: Tally::default(),
                changes: i..i,
            });
        }
        let row = out.last_mut().expect("pushed above");
        row.changes.end = i + 1;
        row.tally.add(c);
    }
    out
}

/// The query parameters of a request, percent-decoded.
fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in req.uri().query().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(decode(k), decode(v));
    }
    out
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `given` is the token (compared without an early exit).
fn token_ok(state: &State, given: Option<&String>) -> bool {
    let Some(given) = given else { return false };
    let (a, b) = (given.as_bytes(), state.token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn reply(status: StatusCode, kind: &str, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    let headers = r.headers_mut();
    headers.insert("content-type", kind.parse().expect("a valid header"));
    headers.insert("cache-control", "no-store".parse().expect("a valid header"));
    headers.insert("x-content-type-options", "nosniff".parse().expect("a valid header"));
    headers.insert("referrer-policy", "no-referrer".parse().expect("a valid header"));
    r
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    reply(status, "text/plain; charset=utf-8", Bytes::from_static(body.as_bytes()))
}

fn json_reply(v: &Value) -> Response<Full<Bytes>> {
    reply(StatusCode::OK, "application/json", Bytes::from(v.to_string()))
}

async fn answer(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::GET {
        return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n"));
    }
    let q = query(&req);
    if !token_ok(&state, q.get("token")) {
        return Ok(text(
            StatusCode::FORBIDDEN,
            "forbidden: open the URL tidyplex review printed\n",
        ));
    }
    Ok(match req.uri().path() {
        "/" => {
            let page = PAGE.replace("{{TOKEN}}", &state.token);
            reply(StatusCode::OK, "text/html; charset=utf-8", Bytes::from(page))
        }
        "/api/summary" => json_reply(&summary(&state)),
        "/api/items" => json_reply(&items(&state, &q)),
        "/thumb" => {
            let path = q.get("path").cloned().unwrap_or_default();
            let state2 = state.clone();
            let found =
                tokio::task::spawn_blocking(move || thumbnail(&state2, &path)).await.ok().flatten();
            match found {
                Some(jpeg) => reply(StatusCode::OK, "image/jpeg", Bytes::from(jpeg)),
                None => text(StatusCode::NOT_FOUND, "not found\n"),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    })
}

/// Per section and per area: items, files, bytes, URL switches, kept local.
fn summary(state: &State) -> Value {
    let cs = &state.cs;
    let names: BTreeMap<i64, &str> =
        cs.spec.sections.iter().map(|s| (s.id, s.name.as_str())).collect();
    let mut sections: BTreeMap<Option<i64>, (u64, u64, u64, u64)> = BTreeMap::new();
    for r in &state.rows {
        let s = sections.entry(r.section).or_default();
        s.0 += 1;
        s.1 += r.tally.sum.files;
        s.2 += r.tally.sum.bytes;
        s.3 += r.tally.sum.urls;
    }
    let mut areas: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for c in cs.changes.iter().filter(|c| c.item.is_none()) {
        let (path, files, bytes) = match c.op() {
            Some(Op::DeleteFile(f)) => (&f.path, 1, f.freed()),
            Some(Op::DeleteDir(d)) => (&d.path, d.files, d.bytes),
            _ => continue,
        };
        let a = areas.entry(crate::render::summary::area_of(path)).or_default();
        a.0 += files;
        a.1 += bytes;
    }
    json!({
        "plex_dir": cs.plex_dir,
        "created_at": cs.created_at,
        "totals": cs.summary,
        "sections": sections.iter().map(|(id, t)| json!({
            "id": id,
            "name": id.and_then(|i| names.get(&i).copied()).unwrap_or(""),
            "items": t.0, "files": t.1, "bytes": t.2, "urls": t.3,
            "kept_local": id.and_then(|i| cs.summary.kept_local_by_section.get(&i)).copied().unwrap_or(0),
        })).collect::<Vec<_>>(),
        "areas": areas.iter().map(|(name, t)| json!({"name": name, "files": t.0, "bytes": t.1})).collect::<Vec<_>>(),
    })
}

/// A page of items: `offset`, `limit`, `section`, `q` (title contains), `sort` (`bytes`,
/// `title` or the plan's order).
fn items(state: &State, q: &HashMap<String, String>) -> Value {
    let section: Option<i64> = q.get("section").and_then(|s| s.parse().ok());
    let needle = q.get("q").map(|s| s.to_lowercase()).filter(|s| !s.is_empty());
    let mut picked: Vec<&Row> = state
        .rows
        .iter()
        .filter(|r| section.is_none() || r.section == section)
        .filter(|r| needle.as_ref().is_none_or(|n| r.title.to_lowercase().contains(n)))
        .collect();
    match q.get("sort").map(String::as_str) {
        Some("bytes") => {
            picked.sort_by(|a, b| b.tally.sum.bytes.cmp(&a.tally.sum.bytes).then(a.id.cmp(&b.id)))
        }
        Some("title") => picked.sort_by(|a, b| a.title.cmp(&b.title).then(a.id.cmp(&b.id))),
        _ => {}
    }
    let offset: usize = q.get("offset").and_then(|s| s.parse().ok()).unwrap_or(0);
    let limit: usize = q.get("limit").and_then(|s| s.parse().ok()).unwrap_or(50).min(PAGE_MAX);
    let page: Vec<Value> = picked.iter().skip(offset).take(limit).map(|r| item(state, r)).collect();
    json!({"total": picked.len(), "offset": offset, "items": page})
}

/// One item: its columns after apply and its deletions.
fn item(state: &State, row: &Row) -> Value {
    let changes: &[Change] = &state.cs.changes[row.changes.clone()];
    let switched: HashMap<&str, &str> = changes
        .iter()
        .filter_map(|c| match c.op() {
            Some(Op::SetUrl(s)) if s.table == "metadata_items" && s.id == row.id => {
                Some((s.column.as_str(), s.to.as_str()))
            }
            _ => None,
        })
        .collect();
    let mut cols = Vec::new();
    if let Some(it) = state.lib.item(row.id) {
        let bundle = state.lib.bundle_of(it);
        for (col, value) in state.image_columns.iter().zip(&it.images) {
            let short = columns::short_name(col);
            if let Some(to) = switched.get(col) {
                cols.push(json!({"column": short, "after": to, "kind": "http", "switched": true}));
                continue;
            }
            let Some(v) = value.as_deref().filter(|v| !v.is_empty()) else { continue };
            let url = ImageUrl::parse(Some(v));
            if v.starts_with("http://") || v.starts_with("https://") {
                cols.push(json!({"column": short, "after": v, "kind": "http", "switched": false}));
            } else if let Some(path) = url.resolve(bundle.as_deref()) {
                state.kept.lock().unwrap_or_else(|p| p.into_inner()).insert(digest(&path));
                cols.push(json!({"column": short, "after": v, "kind": "local", "thumb": path}));
            } else {
                cols.push(json!({"column": short, "after": v, "kind": "other"}));
            }
        }
    }
    let mut deletes = Vec::new();
    for c in changes {
        match c.op() {
            Some(Op::DeleteFile(f)) => deletes.push(json!({
                "path": f.path, "size": f.freed(), "thumb": f.path,
            })),
            Some(Op::DeleteDir(d)) => {
                let inside: Vec<String> = tree::walk(&state.paths.root, &d.path)
                    .unwrap_or_default()
                    .into_iter()
                    .take(DIR_THUMBS)
                    .map(|e| e.path)
                    .collect();
                deletes.push(json!({
                    "path": format!("{}/", d.path), "size": d.bytes, "files": d.files, "inside": inside,
                }));
            }
            Some(Op::Upload(u)) => deletes.push(json!({
                "path": u.path, "size": u.size, "thumb": u.path, "upload": u.host,
            })),
            _ => {}
        }
    }
    json!({
        "id": row.id, "type": row.kind, "title": row.title, "section": row.section,
        "files": row.tally.sum.files, "bytes": row.tally.sum.bytes, "columns": cols, "deletes": deletes,
    })
}

/// The thumbnail of `path`, when the changeset names it (or a folder holding it, or a column
/// keeps it) and it lies safely inside the cleanable folders.
fn thumbnail(state: &State, path: &str) -> Option<Vec<u8>> {
    check_path(path).ok()?;
    let named = state.deleted.contains(&digest(path))
        || state.kept.lock().unwrap_or_else(|p| p.into_inner()).contains(&digest(path))
        || path.match_indices('/').any(|(i, _)| state.deleted.contains(&digest(&path[..i])));
    if !named {
        return None;
    }
    files::check_no_symlinked_dirs(&state.paths, path).ok()?;
    let mut current = path.to_string();
    for _ in 0..8 {
        let abs = files::absolute(&state.paths, &current);
        let meta = std::fs::symlink_metadata(&abs).ok()?;
        if !meta.file_type().is_symlink() {
            return state.thumbs.get(&current, &abs);
        }
        // A link (a `_combined` entry): its target, if it stays inside the cleanable folders.
        let target = std::fs::read_link(&abs).ok()?;
        current = link_target(&state.paths.root, &current, &target)?;
        check_path(&current).ok()?;
        files::check_no_symlinked_dirs(&state.paths, &current).ok()?;
    }
    None
}
