//! The tables and columns that hold image locations.

/// Image columns of `metadata_items`, in display order. Older servers lack some (1.42 has no
/// `user_square_art_url`); the model reads only those that exist.
pub const METADATA_ITEMS: &[&str] = &[
    "user_thumb_url",
    "user_art_url",
    "user_banner_url",
    "user_music_url",
    "user_clear_logo_url",
    "user_square_art_url",
];

/// Image columns of `tags`.
pub const TAGS: &[&str] = &["user_thumb_url", "user_art_url", "user_music_url"];

/// Image columns of `library_sections`.
pub const LIBRARY_SECTIONS: &[&str] = &["user_thumb_url", "user_art_url", "user_theme_music_url"];

/// The image columns of `table`, or an empty list for a table that has none.
pub fn of_table(table: &str) -> &'static [&'static str] {
    match table {
        "metadata_items" => METADATA_ITEMS,
        "tags" => TAGS,
        "library_sections" => LIBRARY_SECTIONS,
        _ => &[],
    }
}

/// Whether `column` of `table` is an image column tidyplex may read or write.
pub fn is_image_column(table: &str, column: &str) -> bool {
    of_table(table).contains(&column)
}

/// The short name users know a column by (`thumb`, `art`, `theme`, …).
pub fn short_name(column: &str) -> &str {
    match column {
        "user_thumb_url" => "thumb",
        "user_art_url" => "art",
        "user_banner_url" => "banner",
        "user_music_url" | "user_theme_music_url" => "theme",
        "user_clear_logo_url" => "clear_logo",
        "user_square_art_url" => "square_art",
        other => other,
    }
}

/// The `_combined` folder (and `Info.xml` list) that holds images of a column.
pub fn xml_list(column: &str) -> Option<&'static str> {
    match column {
        "user_thumb_url" => Some("posters"),
        "user_art_url" => Some("art"),
        "user_banner_url" => Some("banners"),
        "user_music_url" | "user_theme_music_url" => Some("themes"),
        "user_clear_logo_url" => Some("clearLogos"),
        "user_square_art_url" => Some("squareArt"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_image_columns_are_image_columns() {
        assert!(is_image_column("metadata_items", "user_art_url"));
        assert!(is_image_column("library_sections", "user_theme_music_url"));
        assert!(!is_image_column("metadata_items", "title"));
        assert!(!is_image_column("taggings", "thumb_url"));
        assert!(!is_image_column("sqlite_master", "sql"));
    }
}
