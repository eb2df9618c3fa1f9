//! Finding the "Plex Media Server" data folder, its DB and its PhotoTranscoder cache.

use std::path::{Path, PathBuf};

use super::{DB_PATH, PHOTO_TRANSCODER_PATH};

/// The places tidyplex reads and cleans.
#[derive(Debug, Clone)]
pub struct PlexPaths {
    /// The "Plex Media Server" data folder.
    pub root: PathBuf,
    /// The library DB.
    pub db: PathBuf,
    /// The PhotoTranscoder cache (outside `root` on macOS).
    pub photo_transcoder: PathBuf,
}

/// Why no data folder could be used.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    /// `--plex-dir` names nothing.
    #[error("the Plex data folder {0} does not exist; check --plex-dir / TIDYPLEX_PLEX_DIR")]
    Missing(PathBuf),
    /// `--plex-dir` names a folder without Plex's DB.
    #[error(
        "{root} is not a Plex data folder: there is no {db}; name the folder that holds \
         `Plug-in Support`, `Metadata` and `Media` with --plex-dir, or the DB with --db"
    )]
    NotPlex {
        /// The folder named.
        root: PathBuf,
        /// Where the DB should be, relative to it.
        db: String,
    },
    /// `--db` names nothing.
    #[error("the database {0} does not exist; check --db")]
    MissingDb(PathBuf),
    /// Nothing found at any known location.
    #[error(
        "no Plex data folder found; tried {}; name it with --plex-dir DIR or TIDYPLEX_PLEX_DIR=DIR \
         (the folder that holds `Plug-in Support`, `Metadata` and `Media`)",
        .0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NotFound(Vec<PathBuf>),
}

/// Resolves the paths from `--plex-dir` and `--db`, or from the known install locations.
pub fn locate(plex_dir: Option<&Path>, db: Option<&Path>) -> Result<PlexPaths, LocateError> {
    let root = match plex_dir {
        Some(dir) if !dir.is_dir() => return Err(LocateError::Missing(dir.to_path_buf())),
        Some(dir) => dir.to_path_buf(),
        None => {
            let tried = candidates(&|k| std::env::var_os(k).map(PathBuf::from));
            match tried.iter().find(|d| d.join(DB_PATH).is_file()) {
                Some(found) => found.clone(),
                None => return Err(LocateError::NotFound(tried)),
            }
        }
    };
    let db = match db {
        Some(db) if !db.is_file() => return Err(LocateError::MissingDb(db.to_path_buf())),
        Some(db) => db.to_path_buf(),
        None => {
            let db = root.join(DB_PATH);
            if !db.is_file() {
                return Err(LocateError::NotPlex { root, db: DB_PATH.to_string() });
            }
            db
        }
    };
    let photo_transcoder = photo_transcoder(&root, std::env::var_os("HOME").map(PathBuf::from));
    Ok(PlexPaths { root, db, photo_transcoder })
}

/// The PhotoTranscoder folder: `<root>/Cache/PhotoTranscoder`, except on macOS where Plex keeps
/// it in `~/Library/Caches/PlexMediaServer/PhotoTranscoder`.
fn photo_transcoder(root: &Path, home: Option<PathBuf>) -> PathBuf {
    let inside = root.join(PHOTO_TRANSCODER_PATH);
    if cfg!(target_os = "macos") && !inside.exists() {
        if let Some(home) = home {
            return home.join("Library/Caches/PlexMediaServer/PhotoTranscoder");
        }
    }
    inside
}

/// Every known data-folder location, in the order they are tried (plex-internals §1.1).
/// `env` reads an environment variable.
pub fn candidates(env: &dyn Fn(&str) -> Option<PathBuf>) -> Vec<PathBuf> {
    const PMS: &str = "Plex Media Server";
    let mut dirs = Vec::new();
    // Linux package, when the systemd unit overrides the location.
    if let Some(dir) = env("PLEX_MEDIA_SERVER_APPLICATION_SUPPORT_DIR") {
        dirs.push(dir.join(PMS));
    }
    for fixed in [
        // Linux package (deb/rpm).
        "/var/lib/plexmediaserver/Library/Application Support/Plex Media Server",
        // Docker: official image and linuxserver.
        "/config/Library/Application Support/Plex Media Server",
        // Docker: binhex.
        "/config/Plex Media Server",
        // Docker: hotio keeps the data folder at /config itself.
        "/config",
        // Snap.
        "/var/snap/plexmediaserver/common/Library/Application Support/Plex Media Server",
        // FreeBSD.
        "/usr/local/plexdata/Plex Media Server",
        // Synology DSM 7 and DSM 6.
        "/var/packages/PlexMediaServer/shares/PlexMediaServer/AppData/Plex Media Server",
        "/volume1/Plex/Library/Application Support/Plex Media Server",
    ] {
        dirs.push(PathBuf::from(fixed));
    }
    // macOS.
    if let Some(home) = env("HOME") {
        dirs.push(home.join("Library/Application Support").join(PMS));
    }
    // Windows.
    if let Some(local) = env("LOCALAPPDATA") {
        dirs.push(local.join(PMS));
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_cover_every_platform() {
        let env = |k: &str| match k {
            "HOME" => Some(PathBuf::from("/Users/me")),
            "LOCALAPPDATA" => Some(PathBuf::from("C:/Users/me/AppData/Local")),
            "PLEX_MEDIA_SERVER_APPLICATION_SUPPORT_DIR" => Some(PathBuf::from("/srv/plex")),
            _ => None,
        };
        let all: Vec<String> = candidates(&env).iter().map(|p| p.display().to_string()).collect();
        assert_eq!(all[0], "/srv/plex/Plex Media Server", "the systemd override comes first");
        for expected in [
            "/var/lib/plexmediaserver/",
            "/config/Library/",
            "/config/Plex Media Server",
            "/var/snap/",
            "/usr/local/plexdata/",
            "/var/packages/PlexMediaServer/",
            "/Users/me/Library/Application Support/Plex Media Server",
            "C:/Users/me/AppData/Local/Plex Media Server",
        ] {
            assert!(all.iter().any(|c| c.starts_with(expected)), "{expected} missing from {all:?}");
        }
        assert!(candidates(&|_| None).len() >= 8);
    }

    #[test]
    fn plex_dir_needs_the_db() {
        let tmp = tempfile::tempdir().unwrap();
        let err = locate(Some(tmp.path()), None).unwrap_err();
        assert!(matches!(err, LocateError::NotPlex { .. }), "{err}");
        let err = locate(Some(&tmp.path().join("nope")), None).unwrap_err();
        assert!(matches!(err, LocateError::Missing(_)), "{err}");
    }

    #[test]
    fn photo_transcoder_lives_in_the_data_folder_off_macos() {
        let p = photo_transcoder(Path::new("/pms"), Some(PathBuf::from("/home/x")));
        if cfg!(target_os = "macos") {
            assert_eq!(p, Path::new("/home/x/Library/Caches/PlexMediaServer/PhotoTranscoder"));
        } else {
            assert_eq!(p, Path::new("/pms/Cache/PhotoTranscoder"));
        }
    }
}
