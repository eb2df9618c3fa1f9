//! Thumbnails for the review page: an image file scaled to at most [`MAX`] px, as JPEG, kept in
//! a bounded in-memory cache.

use std::collections::{HashMap, VecDeque};
use std::io::Cursor;
use std::path::Path;
use std::sync::Mutex;

/// The longest side of a thumbnail, in pixels.
pub const MAX: u32 = 300;

/// Bytes of thumbnails the cache keeps (oldest go first).
const CACHE_BYTES: usize = 64 << 20;

/// Files larger than this are not decoded (a poster is a few MB; a theme song is not an image).
const MAX_FILE: u64 = 40 << 20;

/// Recently made thumbnails, by path.
#[derive(Default)]
pub struct Cache {
    inner: Mutex<Entries>,
}

/// The thumbnails, the order they came in, and their bytes.
#[derive(Default)]
struct Entries {
    by_path: HashMap<String, Vec<u8>>,
    order: VecDeque<String>,
    bytes: usize,
}

impl Cache {
    /// The thumbnail of the image at `abs` (cached under `key`), or `None` when it is not an
    /// image this build decodes.
    pub fn get(&self, key: &str, abs: &Path) -> Option<Vec<u8>> {
        if let Some(hit) = self.lock().by_path.get(key) {
            return Some(hit.clone());
        }
        let made = make(abs)?;
        let mut e = self.lock();
        e.bytes += made.len();
        if let Some(old) = e.by_path.insert(key.to_string(), made.clone()) {
            e.bytes -= old.len();
        } else {
            e.order.push_back(key.to_string());
        }
        while e.bytes > CACHE_BYTES {
            let Some(old) = e.order.pop_front() else { break };
            if let Some(gone) = e.by_path.remove(&old) {
                e.bytes -= gone.len();
            }
        }
        Some(made)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Decodes, scales and encodes one image.
fn make(abs: &Path) -> Option<Vec<u8>> {
    let meta = std::fs::metadata(abs).ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return None;
    }
    let reader = image::ImageReader::open(abs).ok()?.with_guessed_format().ok()?;
    let img = reader.decode().ok()?;
    let small = if img.width() > MAX || img.height() > MAX { img.thumbnail(MAX, MAX) } else { img };
    let mut out = Cursor::new(Vec::new());
    small.to_rgb8().write_to(&mut out, image::ImageFormat::Jpeg).ok()?;
    Some(out.into_inner())
}
