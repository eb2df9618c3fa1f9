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

/// The folders Plex keeps images (and theme songs) in, at every level of a bundle.
pub const IMAGE_LISTS: [&str; 8] =
    ["posters", "art", "banners", "themes", "thumbs", "clearLogos", "squareArt", "squareArts"];

/// What a file in a bundle is, as far as deleting it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// A poster, background, theme, … in an image folder, or a Media analysis image: tidyplex
    /// may delete it once nothing references it.
    Image,
    /// An `Info.xml` or other XML file: always kept.
    Xml,
    /// Anything else (lyrics, subtitles, extras, files of agents tidyplex does not know): kept.
    Unknown,
}

/// Classifies `path` (relative to the plex dir, `/`-separated). Images are, in a Metadata
/// bundle, `Contents/<agent|_stored|_combined>/[seasons/<n>/[episodes/<m>/]]<list>/<file>` and
/// `Uploads/<list>/[seasons/<n>/[episodes/<m>/]]<file>`; in a Media bundle,
/// `Contents/Thumbnails/thumb*.jpg` and `Contents/Art/art*.jpg`. Paths outside a bundle are
/// [`Content::Unknown`].
pub fn content(path: &str) -> Content {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.to_ascii_lowercase().ends_with(".xml") {
        return Content::Xml;
    }
    let parts: Vec<&str> = path.split('/').collect();
    let image = match parts.as_slice() {
        ["Metadata", kind, prefix, bundle, rest @ ..]
            if Kind::from_folder(kind).is_some() && hash_of_bundle(prefix, bundle).is_some() =>
        {
            metadata_image(rest)
        }
        ["Media", "localhost", prefix, bundle, "Contents", folder, file]
            if hash_of_bundle(prefix, bundle).is_some() =>
        {
            is_analysis_image(folder, file)
        }
        _ => false,
    };
    if image {
        Content::Image
    } else {
        Content::Unknown
    }
}

/// Whether `file` in the Media bundle folder `Contents/<folder>` is an image analysis made.
pub fn is_analysis_image(folder: &str, file: &str) -> bool {
    let prefix = match folder {
        "Thumbnails" => "thumb",
        "Art" => "art",
        _ => return false,
    };
    file.starts_with(prefix) && file.ends_with(".jpg")
}

/// Whether `rest` (the parts below a Metadata bundle folder) names an image file.
fn metadata_image(rest: &[&str]) -> bool {
    match rest {
        ["Uploads", list, tail @ ..] => IMAGE_LISTS.contains(list) && levels(tail).len() == 1,
        ["Contents", source, tail @ ..] if is_source(source) => {
            matches!(levels(tail), [list, _file] if IMAGE_LISTS.contains(list))
        }
        _ => false,
    }
}

/// `_combined`, `_stored`, or an agent's folder (agent ids are reverse domain names).
fn is_source(name: &str) -> bool {
    matches!(name, "_combined" | "_stored") || (name.contains('.') && !name.starts_with('.'))
}

/// `parts` without its leading `seasons/<n>` or `seasons/<n>/episodes/<m>` levels, if any.
fn levels<'a, 'b>(parts: &'a [&'b str]) -> &'a [&'b str] {
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match parts {
        ["seasons", n, "episodes", m, rest @ ..] if number(n) && number(m) => rest,
        ["seasons", n, rest @ ..] if number(n) => rest,
        rest => rest,
    }
}

/// The bundle folder `path` lies in (or is), relative to the plex dir.
pub fn bundle_of(path: &str) -> Option<&str> {
    let end = path.match_indices('/').nth(3).map_or(path.len(), |(i, _)| i);
    let bundle = &path[..end];
    is_bundle_dir(bundle).then_some(bundle)
}

/// Whether `path` is a whole Metadata or Media bundle folder.
pub fn is_bundle_dir(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["Metadata", kind, prefix, bundle] => {
            Kind::from_folder(kind).is_some() && hash_of_bundle(prefix, bundle).is_some()
        }
        ["Media", "localhost", prefix, bundle] => hash_of_bundle(prefix, bundle).is_some(),
        _ => false,
    }
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
    fn only_files_in_image_folders_are_images() {
        let b = format!("Metadata/Movies/c/{}.bundle", &H[1..]);
        let m = format!("Media/localhost/c/{}.bundle", &H[1..]);
        for image in [
            format!("{b}/Contents/_combined/posters/com.plexapp.agents.imdb_0a1b"),
            format!("{b}/Contents/_stored/art/x"),
            format!("{b}/Contents/com.plexapp.agents.imdb/posters/0a1b"),
            format!("{b}/Contents/tv.plex.agents.movie/clearLogos/0a1b"),
            format!("{b}/Contents/_combined/seasons/1/posters/x"),
            format!("{b}/Contents/_combined/seasons/1/episodes/2/thumbs/x"),
            format!("{b}/Contents/_combined/squareArt/x"),
            format!("{b}/Uploads/posters/0a1b"),
            format!("{b}/Uploads/posters/seasons/8/episodes/9/x"),
            format!("{m}/Contents/Thumbnails/thumb1.jpg"),
            format!("{m}/Contents/Art/art1.jpg"),
        ] {
            assert_eq!(content(&image), Content::Image, "{image}");
        }
        for kept in [
            format!("{b}/Contents/_combined/tracks/0a1b/lyrics/com.plexapp.agents.lyricfind_0a1b"),
            format!("{b}/Contents/com.plexapp.agents.lyricfind/lyrics/0a1b"),
            format!("{b}/Contents/_combined/extras/trailer"),
            format!("{b}/Contents/_combined/posters/nested/x"),
            format!("{b}/Contents/tracks/posters/x"),
            format!("{b}/Contents/_combined/seasons/x/posters/y"),
            format!("{b}/Uploads/lyrics/x"),
            format!("{b}/Uploads/posters"),
            format!("{b}/notes.txt"),
            format!("{m}/Contents/Subtitles/en/com.plexapp.agents.opensubtitles_0a1b.srt"),
            format!("{m}/Contents/Thumbnails/index.bif"),
            "Metadata/Photos/c/x.bundle/Contents/_combined/posters/x".to_string(),
            "Metadata/Movies/c/not-a-hash.bundle/Contents/_combined/posters/x".to_string(),
        ] {
            assert_eq!(content(&kept), Content::Unknown, "{kept}");
        }
        assert_eq!(content(&format!("{b}/Contents/_combined/Info.xml")), Content::Xml);
        assert_eq!(content(&format!("{b}/Contents/_combined/posters/x.XML")), Content::Xml);
        assert!(is_bundle_dir(&b) && is_bundle_dir(&m));
        assert_eq!(bundle_of(&format!("{b}/Contents/_combined/posters/x")), Some(b.as_str()));
        assert_eq!(bundle_of(&m), Some(m.as_str()));
        assert_eq!(bundle_of("Cache/PhotoTranscoder/ab/cd.jpg"), None);
        assert!(!is_bundle_dir(&format!("{b}/Contents")) && !is_bundle_dir("Metadata/Movies/c"));
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
