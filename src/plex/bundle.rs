//! Bundle folders: where Plex keeps the files of an item (`Metadata/…`) or of a media part (`Media/…`).

use std::fmt;

/// The `Metadata/<Kind>` folder an item's bundle lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `Movies` (metadata_type 1).
    Movies,
    /// `TV Shows` (shows, and the rows of their seasons and episodes).
    TvShows,
    /// `Artists` (8).
    Artists,
    /// `Albums` (9).
    Albums,
    /// `Collections` (18).
    Collections,
    /// `Playlists` (15).
    Playlists,
}

impl Kind {
    /// Every kind, in the order Plex users know them.
    pub const ALL: [Kind; 6] = [
        Kind::Movies,
        Kind::TvShows,
        Kind::Artists,
        Kind::Albums,
        Kind::Collections,
        Kind::Playlists,
    ];

    /// The folder name under `Metadata/`.
    pub fn folder(self) -> &'static str {
        match self {
            Kind::Movies => "Movies",
            Kind::TvShows => "TV Shows",
            Kind::Artists => "Artists",
            Kind::Albums => "Albums",
            Kind::Collections => "Collections",
            Kind::Playlists => "Playlists",
        }
    }

    /// The kind whose folder is named `name`.
    pub fn from_folder(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.folder() == name)
    }

    /// The bundle kind of a `metadata_type` that owns a bundle of its own
    /// (seasons and episodes use their show's bundle, see [`crate::plex::model`]).
    pub fn of_metadata_type(metadata_type: i64) -> Option<Kind> {
        match metadata_type {
            1 => Some(Kind::Movies),
            2..=4 => Some(Kind::TvShows),
            8 => Some(Kind::Artists),
            9 => Some(Kind::Albums),
            15 => Some(Kind::Playlists),
            18 => Some(Kind::Collections),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.folder())
    }
}

/// Whether `hash` looks like the 40-hex-digit hash Plex names bundles after.
pub fn is_hash(hash: &str) -> bool {
    hash.len() == 40 && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `Metadata/<Kind>/<h0>/<h1..>.bundle`, relative to the plex dir, or `None` for a malformed hash.
pub fn metadata_bundle(kind: Kind, hash: &str) -> Option<String> {
    is_hash(hash)
        .then(|| format!("Metadata/{}/{}/{}.bundle", kind.folder(), &hash[..1], &hash[1..]))
}

/// `Media/localhost/<h0>/<h1..>.bundle`, relative to the plex dir, or `None` for a malformed hash.
pub fn media_bundle(hash: &str) -> Option<String> {
    is_hash(hash).then(|| format!("Media/localhost/{}/{}.bundle", &hash[..1], &hash[1..]))
}

/// The hash a bundle folder stands for: prefix folder letter + bundle name up to the first `.`.
pub fn hash_of_bundle(prefix: &str, bundle_name: &str) -> Option<String> {
    let stem = bundle_name.split('.').next()?;
    let hash = format!("{prefix}{stem}");
    (bundle_name.ends_with(".bundle") && is_hash(&hash)).then_some(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "ccd2a9ec4d3c3b1b3f5c0e8a1a2b3c4d5e6f7a8b";

    #[test]
    fn paths_split_the_hash_after_its_first_digit() {
        assert_eq!(
            metadata_bundle(Kind::TvShows, H).unwrap(),
            "Metadata/TV Shows/c/cd2a9ec4d3c3b1b3f5c0e8a1a2b3c4d5e6f7a8b.bundle"
        );
        assert_eq!(
            media_bundle(H).unwrap(),
            "Media/localhost/c/cd2a9ec4d3c3b1b3f5c0e8a1a2b3c4d5e6f7a8b.bundle"
        );
        assert_eq!(hash_of_bundle("c", &format!("{}.bundle", &H[1..])).unwrap(), H);
    }

    #[test]
    fn malformed_hashes_have_no_bundle() {
        assert!(metadata_bundle(Kind::Movies, "").is_none());
        assert!(metadata_bundle(Kind::Movies, "../../etc/passwd").is_none());
        assert!(media_bundle("zz").is_none());
        assert!(hash_of_bundle("c", "README.txt").is_none());
    }

    #[test]
    fn kinds_round_trip_through_their_folder_names() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_folder(k.folder()), Some(k));
        }
        assert_eq!(Kind::of_metadata_type(4), Some(Kind::TvShows));
        assert_eq!(Kind::of_metadata_type(10), None);
    }
}
