//! `tidyplex serve`: publishes a `dir` image host's folder over HTTP as
//! `GET /i/<blake3>.<ext>` (and HEAD), so Plex can fetch the frame grabs stage 4 moved there.
//! Nothing else is served: no listings, no other paths.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::apply::hosts::{content_type, dir};

/// Serves `folder` on `bind` until the process is stopped; `ready` is told the bound address.
pub fn serve(folder: &Path, bind: &str, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    let root = Arc::new(
        folder
            .canonicalize()
            .with_context(|| format!("cannot open the image folder {}", folder.display()))?,
    );
    http(bind, ready, move |req| answer(root.clone(), req))
}

/// Runs an HTTP/1 server on `bind` (one thread) until the process is stopped: `ready` is told
/// the bound address, and every request goes to `handle`.
pub fn http<H, F>(bind: &str, ready: impl FnOnce(SocketAddr), handle: H) -> Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + 'static,
    F: std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the server")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        ready(listener.local_addr()?);
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("accepting a connection failed: {e}");
                    continue;
                }
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let service = hyper::service::service_fn(handle);
                if let Err(e) =
                    hyper::server::conn::http1::Builder::new().serve_connection(io, service).await
                {
                    tracing::debug!("connection ended: {e}");
                }
            });
        }
    })
}

async fn answer(
    root: Arc<PathBuf>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, text: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *r.status_mut() = status;
        r
    };
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        return Ok(reply(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n"));
    }
    let name = req.uri().path().strip_prefix("/i/").unwrap_or_default();
    let Some(path) = dir::stored(&root, name) else {
        return Ok(reply(StatusCode::NOT_FOUND, "not found\n"));
    };
    let bytes = match tokio::fs::read(&path).await {
        Ok(bytes) => bytes,
        Err(_) => return Ok(reply(StatusCode::NOT_FOUND, "not found\n")),
    };
    let ext = name.rsplit('.').next().unwrap_or_default();
    let len = bytes.len();
    let body = if head { Bytes::new() } else { Bytes::from(bytes) };
    let mut r = Response::new(Full::new(body));
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type(ext)),
    );
    h.insert(hyper::header::CONTENT_LENGTH, len.into());
    h.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(r)
}
