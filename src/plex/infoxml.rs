//! Legacy-agent `Info.xml` files (show, season and episode levels alike): which provider URL
//! each local image file came from.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use serde::Serialize;

/// The image lists of an `Info.xml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InfoXml {
    /// The root element (`Movie`, `TV_Show`, `Season`, `Episode`, `Artist`, `Album`, …).
    pub root: String,
    /// Every `<item>` with a `url`, in document order.
    pub images: Vec<XmlImage>,
}

/// One `<item url=… preview=…|media=… provider=…>` of a list such as `<posters>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct XmlImage {
    /// The list it sits in: `posters`, `art`, `banners`, `themes`, `clearLogos`, `thumbs`, ….
    pub list: String,
    /// The provider's URL.
    pub url: String,
    /// The local file name (`preview`, else `media`), if any.
    pub file: Option<String>,
    /// The agent that supplied it.
    pub provider: Option<String>,
}

/// Why an `Info.xml` could not be read.
#[derive(Debug, thiserror::Error)]
#[error("malformed Info.xml at byte {position}: {reason}")]
pub struct XmlError {
    position: u64,
    reason: String,
}

impl InfoXml {
    /// Parses an `Info.xml` document. Items without a `url` are skipped; a missing `provider`
    /// or file name is not an error (the seed crashed on both).
    pub fn parse(xml: &[u8]) -> Result<InfoXml, XmlError> {
        let mut reader = Reader::from_reader(xml);
        let mut out = InfoXml::default();
        // Element names from the root down to the current element.
        let mut path: Vec<String> = Vec::new();
        let mut buf = Vec::new();
        loop {
            let fail = |reader: &Reader<&[u8]>, reason: String| XmlError {
                position: reader.buffer_position(),
                reason,
            };
            let event =
                reader.read_event_into(&mut buf).map_err(|e| fail(&reader, e.to_string()))?;
            match event {
                Event::Start(e) => {
                    out.visit(&path, &e).map_err(|r| fail(&reader, r))?;
                    path.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                }
                Event::Empty(e) => out.visit(&path, &e).map_err(|r| fail(&reader, r))?,
                Event::End(_) => {
                    path.pop();
                }
                Event::Eof => break,
                _ => {}
            }
            buf.clear();
        }
        if out.root.is_empty() {
            return Err(XmlError { position: 0, reason: "no root element".into() });
        }
        Ok(out)
    }

    /// The image of `list` whose local file is `file`.
    pub fn find(&self, list: &str, file: &str) -> Option<&XmlImage> {
        self.images.iter().find(|i| i.list == list && i.file.as_deref() == Some(file))
    }

    /// Records the root, or an `<item>` directly inside a list directly under the root.
    fn visit(&mut self, path: &[String], e: &BytesStart<'_>) -> Result<(), String> {
        let name = e.local_name();
        if path.is_empty() {
            self.root = String::from_utf8_lossy(name.as_ref()).into_owned();
            return Ok(());
        }
        if path.len() != 2 || name.as_ref() != b"item" {
            return Ok(());
        }
        let (mut url, mut preview, mut media, mut provider) = (None, None, None, None);
        for attr in e.attributes() {
            let attr = attr.map_err(|e| e.to_string())?;
            let value = attr.unescape_value().map_err(|e| e.to_string())?.into_owned();
            match attr.key.local_name().as_ref() {
                b"url" => url = Some(value),
                b"preview" => preview = Some(value),
                b"media" => media = Some(value),
                b"provider" => provider = Some(value),
                _ => {}
            }
        }
        if let Some(url) = url.filter(|u| !u.is_empty()) {
            self.images.push(XmlImage {
                list: path[1].clone(),
                url,
                file: preview.or(media).filter(|f| !f.is_empty()),
                provider,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_items_of_every_list() {
        let xml = br#"<?xml version="1.0" encoding="utf-8"?>
<Movie>
  <title>Heat &amp; Dust</title>
  <posters>
    <item url="https://image.tmdb.org/t/p/original/a.jpg?x=1&amp;y=2" preview="com.plexapp.agents.imdb_aa" provider="com.plexapp.agents.imdb" sort_order="1"/>
    <item url="https://image.tmdb.org/t/p/original/b.jpg" media="com.plexapp.agents.imdb_bb"/>
    <item preview="no-url"/>
  </posters>
  <art><item url="http://x/art.jpg" preview="art_1" provider="p"></item></art>
  <reviews><review><item url="http://not/an/image"/></review></reviews>
</Movie>"#;
        let info = InfoXml::parse(xml).unwrap();
        assert_eq!(info.root, "Movie");
        assert_eq!(info.images.len(), 3);
        let a = info.find("posters", "com.plexapp.agents.imdb_aa").unwrap();
        assert_eq!(a.url, "https://image.tmdb.org/t/p/original/a.jpg?x=1&y=2");
        assert_eq!(a.provider.as_deref(), Some("com.plexapp.agents.imdb"));
        let b = info.find("posters", "com.plexapp.agents.imdb_bb").unwrap();
        assert_eq!(b.provider, None);
        assert_eq!(info.find("art", "art_1").unwrap().url, "http://x/art.jpg");
    }

    #[test]
    fn episode_thumbs_are_a_list_too() {
        let xml =
            br#"<Episode><thumbs><item url="https://t/1.jpg" preview="a_1"/></thumbs></Episode>"#;
        let info = InfoXml::parse(xml).unwrap();
        assert_eq!(info.root, "Episode");
        assert_eq!(info.find("thumbs", "a_1").unwrap().url, "https://t/1.jpg");
    }

    #[test]
    fn malformed_xml_is_an_error_not_a_panic() {
        for bad in [&b"<Movie><posters><item url=\"x\" </posters>"[..], b"", b"<a></b>"] {
            assert!(InfoXml::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
