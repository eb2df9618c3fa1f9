//! The folder host: content-addressed copies in a folder outside the Plex folder, which
//! `tidyplex serve` publishes as `/i/<blake3>.<ext>`. Links do not expire.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::{file_name, ledger, Host, HostError, Hosted, Reuse};

/// A folder of hosted copies.
#[derive(Debug)]
pub struct Dir {
    root: PathBuf,
    public_url: String,
}

impl Dir {
    /// The folder `path` (created if missing), published at `public_url`. A folder inside the
    /// Plex data folder is refused.
    pub fn new(path: &Path, public_url: &str, plex_root: &Path) -> anyhow::Result<Dir> {
        std::fs::create_dir_all(path).map_err(|e| {
            anyhow::anyhow!("cannot create the image folder {}: {e}", path.display())
        })?;
        let root = path
            .canonicalize()
            .map_err(|e| anyhow::anyhow!("cannot open the image folder {}: {e}", path.display()))?;
        let plex = plex_root.canonicalize().unwrap_or_else(|_| plex_root.to_path_buf());
        if root.starts_with(&plex) {
            anyhow::bail!(
                "the image folder {} is inside the Plex data folder; choose one outside it",
                path.display()
            );
        }
        Ok(Dir { root, public_url: public_url.trim_end_matches('/').to_string() })
    }

    fn public(&self, name: &str) -> String {
        format!("{}/{name}", self.public_url)
    }
}

/// Where `<blake3>.<ext>` lives inside an image folder (`ab/abcd….jpg`); `None` for a name
/// that is not one.
pub fn stored(root: &Path, name: &str) -> Option<PathBuf> {
    let (hash, ext) = name.split_once('.')?;
    let ok = hash.len() == 64
        && hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && (1..=5).contains(&ext.len())
        && ext.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    ok.then(|| root.join(&hash[..2]).join(name))
}

impl Host for Dir {
    fn name(&self) -> &'static str {
        "dir"
    }

    fn upload(&self, bytes: &[u8], blake3: &str, ext: &str) -> Result<Hosted, HostError> {
        let name = file_name(blake3, ext);
        let target = stored(&self.root, &name)
            .ok_or_else(|| HostError::Failed(format!("{name} is not a content address")))?;
        let same = std::fs::metadata(&target).is_ok_and(|m| m.len() == bytes.len() as u64)
            && std::fs::read(&target).is_ok_and(|b| blake3::hash(&b).to_hex().as_str() == blake3);
        if !same {
            let folder = target.parent().expect("a stored path has a folder");
            let written = (|| -> std::io::Result<()> {
                std::fs::create_dir_all(folder)?;
                let mut tmp = tempfile::NamedTempFile::new_in(folder)?;
                tmp.write_all(bytes)?;
                tmp.as_file().sync_all()?;
                tmp.persist(&target).map_err(|e| e.error)?;
                Ok(())
            })();
            written.map_err(|e| {
                let path = target.display();
                match e.kind() {
                    std::io::ErrorKind::PermissionDenied => {
                        HostError::Stop(format!("cannot write {path}: {e}"))
                    }
                    _ => HostError::Failed(format!("cannot write {path}: {e}")),
                }
            })?;
        }
        Ok(Hosted { url: self.public(&name), expires: None, discord: None })
    }

    fn reuse(&self, entry: &ledger::Entry, ext: &str) -> Reuse {
        let name = file_name(&entry.blake3, ext);
        let present = stored(&self.root, &name).is_some_and(|p| p.is_file());
        if entry.host == "dir" && entry.url == self.public(&name) && present {
            Reuse::Yes
        } else {
            Reuse::No
        }
    }
}
