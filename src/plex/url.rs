//! The image locations Plex stores in its URL columns, typed.

use serde::{Deserialize, Serialize};

/// One image column value, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageUrl {
    /// NULL or an empty string: no user-chosen image.
    Empty,
    /// `metadata://X`: `<bundle>/Contents/_combined/X`.
    Metadata(String),
    /// `upload://X`: `<bundle>/Uploads/X`.
    Upload(String),
    /// `media://X`: `Media/localhost/X` (a frame grab made by analysis).
    Media(String),
    /// `http://…` or `https://…`: hosted elsewhere, nothing local.
    Http(String),
    /// Anything else (a scheme tidyplex does not know); never touched.
    Other(String),
}

/// How far a column is from "clean".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnState {
    /// An http(s) URL: done.
    Http,
    /// A `metadata://` or `upload://` file in a Metadata bundle.
    Local,
    /// A `media://` frame grab in a Media bundle.
    Media,
    /// No value.
    Empty,
    /// An unknown scheme.
    Other,
}

impl ImageUrl {
    /// Parses a column value; `None` (SQL NULL) and blank strings are [`ImageUrl::Empty`].
    pub fn parse(value: Option<&str>) -> ImageUrl {
        let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return ImageUrl::Empty;
        };
        let lower = v.get(..8).unwrap_or(v).to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return ImageUrl::Http(v.to_string());
        }
        if let Some(rest) = v.strip_prefix("metadata://") {
            ImageUrl::Metadata(rest.to_string())
        } else if let Some(rest) = v.strip_prefix("upload://") {
            ImageUrl::Upload(rest.to_string())
        } else if let Some(rest) = v.strip_prefix("media://") {
            ImageUrl::Media(rest.to_string())
        } else {
            ImageUrl::Other(v.to_string())
        }
    }

    /// The cleanup state this value stands for.
    pub fn state(&self) -> ColumnState {
        match self {
            ImageUrl::Empty => ColumnState::Empty,
            ImageUrl::Metadata(_) | ImageUrl::Upload(_) => ColumnState::Local,
            ImageUrl::Media(_) => ColumnState::Media,
            ImageUrl::Http(_) => ColumnState::Http,
            ImageUrl::Other(_) => ColumnState::Other,
        }
    }

    /// The file this value points at, relative to the plex dir (with `/` separators).
    ///
    /// `bundle` is the item's Metadata bundle (see [`crate::plex::bundle::metadata_bundle`]);
    /// `metadata://` and `upload://` values need it. Values that would leave their folder
    /// (`..`, absolute or empty parts) resolve to nothing.
    pub fn resolve(&self, bundle: Option<&str>) -> Option<String> {
        match self {
            ImageUrl::Metadata(rest) => {
                safe_tail(rest).and_then(|t| Some(format!("{}/Contents/_combined/{t}", bundle?)))
            }
            ImageUrl::Upload(rest) => {
                safe_tail(rest).and_then(|t| Some(format!("{}/Uploads/{t}", bundle?)))
            }
            ImageUrl::Media(rest) => safe_tail(rest).map(|t| format!("Media/localhost/{t}")),
            _ => None,
        }
    }

    /// The last path segment (the file name) of a local value.
    pub fn file_name(&self) -> Option<&str> {
        match self {
            ImageUrl::Metadata(r) | ImageUrl::Upload(r) | ImageUrl::Media(r) => {
                r.rsplit('/').next()
            }
            _ => None,
        }
    }
}

/// `rest` when every `/`-separated part is a plain name (no `..`, `.`, empty part or backslash).
fn safe_tail(rest: &str) -> Option<&str> {
    let ok = !rest.is_empty()
        && rest.split('/').all(|p| {
            !p.is_empty() && p != "." && p != ".." && !p.contains('\\') && !p.contains('\0')
        });
    ok.then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "Metadata/Movies/c/cd2.bundle";

    #[test]
    fn every_scheme_parses_and_resolves() {
        let cases = [
            ("metadata://posters/com.plexapp.agents.imdb_ab", Some("Metadata/Movies/c/cd2.bundle/Contents/_combined/posters/com.plexapp.agents.imdb_ab"), ColumnState::Local),
            ("metadata://seasons/1/episodes/4/thumbs/x_1", Some("Metadata/Movies/c/cd2.bundle/Contents/_combined/seasons/1/episodes/4/thumbs/x_1"), ColumnState::Local),
            ("upload://posters/0123", Some("Metadata/Movies/c/cd2.bundle/Uploads/posters/0123"), ColumnState::Local),
            ("media://c/a7b.bundle/Contents/Thumbnails/thumb1.jpg", Some("Media/localhost/c/a7b.bundle/Contents/Thumbnails/thumb1.jpg"), ColumnState::Media),
            ("https://image.tmdb.org/t/p/original/x.jpg", None, ColumnState::Http),
            ("HTTP://example.com/x.jpg", None, ColumnState::Http),
            ("", None, ColumnState::Empty),
            ("bundle://x", None, ColumnState::Other),
        ];
        for (value, path, state) in cases {
            let url = ImageUrl::parse(Some(value));
            assert_eq!(url.resolve(Some(B)).as_deref(), path, "{value}");
            assert_eq!(url.state(), state, "{value}");
        }
        assert_eq!(ImageUrl::parse(None), ImageUrl::Empty);
    }

    #[test]
    fn values_that_climb_out_resolve_to_nothing() {
        for v in [
            "metadata://../../../Plug-in Support/x",
            "upload:///etc/passwd",
            "media://c/../../x",
            "metadata://posters//x",
            "metadata://",
        ] {
            assert_eq!(ImageUrl::parse(Some(v)).resolve(Some(B)), None, "{v}");
        }
    }

    #[test]
    fn metadata_values_need_a_bundle() {
        assert_eq!(
            ImageUrl::parse(Some("metadata://posters/x")).resolve(None),
            None
        );
        assert_eq!(
            ImageUrl::parse(Some("upload://posters/x")).file_name(),
            Some("x")
        );
    }
}
