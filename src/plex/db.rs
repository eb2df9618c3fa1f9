//! Opening Plex's library DB read-only and learning which schema it has.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use super::columns;
use super::TriggerForm;

/// How long a read waits for Plex to release a lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(3);

/// Tables and columns tidyplex cannot work without.
const REQUIRED: &[(&str, &[&str])] = &[
    (
        "metadata_items",
        &[
            "id",
            "library_section_id",
            "parent_id",
            "metadata_type",
            "guid",
            "title",
            "index",
            "hash",
        ],
    ),
    ("library_sections", &["id", "name", "section_type", "agent"]),
    ("media_items", &["id", "metadata_item_id"]),
    ("media_parts", &["id", "media_item_id", "hash", "file"]),
    ("tags", &["id", "tag", "tag_type"]),
    ("taggings", &["id", "metadata_item_id", "tag_id", "index", "text", "thumb_url"]),
];

/// Why the DB cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite could not open or read it.
    #[error("cannot read the Plex database {path}: {reason}")]
    Unreadable {
        /// The DB.
        path: PathBuf,
        /// SQLite's reason, with advice.
        reason: String,
    },
    /// It is SQLite, but not Plex's library.
    #[error(
        "{path} is not a Plex library database this tidyplex understands: {missing}; \
         point --db at com.plexapp.plugins.library.db"
    )]
    Schema {
        /// The DB.
        path: PathBuf,
        /// The tables and columns it lacks.
        missing: String,
    },
}

/// The image columns this DB has, per table.
#[derive(Debug, Clone, Serialize)]
pub struct Schema {
    /// Image columns of `metadata_items` (1.42 has no `user_square_art_url`).
    pub metadata_items: Vec<&'static str>,
    /// Image columns of `tags`.
    pub tags: Vec<&'static str>,
    /// Image columns of `library_sections`.
    pub library_sections: Vec<&'static str>,
}

/// A read-only connection to the library DB.
pub struct Db {
    conn: Connection,
    path: PathBuf,
    /// The image columns present.
    pub schema: Schema,
}

impl Db {
    /// Opens `path` read-only (never a stand-in tokenizer or collation), checks that it is
    /// Plex's library and learns its image columns.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        let unreadable = |e: rusqlite::Error| DbError::Unreadable {
            path: path.to_path_buf(),
            reason: explain(&e),
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(uri(path), flags).map_err(unreadable)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(unreadable)?;
        conn.pragma_update(None, "foreign_keys", false).map_err(unreadable)?;
        let mut missing = Vec::new();
        let present = |table: &str| -> Result<Vec<String>, DbError> {
            let mut stmt =
                conn.prepare("SELECT name FROM pragma_table_info(?1)").map_err(unreadable)?;
            let cols = stmt
                .query_map([table], |r| r.get::<_, String>(0))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(unreadable)?;
            Ok(cols)
        };
        let image_columns = |table: &str| -> Result<Vec<&'static str>, DbError> {
            let cols = present(table)?;
            Ok(columns::of_table(table)
                .iter()
                .copied()
                .filter(|c| cols.iter().any(|x| x == c))
                .collect())
        };
        let schema = Schema {
            metadata_items: image_columns("metadata_items")?,
            tags: image_columns("tags")?,
            library_sections: image_columns("library_sections")?,
        };
        for (table, needed) in REQUIRED {
            let cols = present(table)?;
            if cols.is_empty() {
                missing.push(format!("no table {table}"));
            } else {
                for col in needed.iter().filter(|c| !cols.iter().any(|x| x == *c)) {
                    missing.push(format!("no column {table}.{col}"));
                }
            }
        }
        for (table, cols) in [("metadata_items", &schema.metadata_items), ("tags", &schema.tags)] {
            if !cols.contains(&"user_thumb_url") && !missing.iter().any(|m| m.ends_with(table)) {
                missing.push(format!("no column {table}.user_thumb_url"));
            }
        }
        if !missing.is_empty() {
            return Err(DbError::Schema { path: path.to_path_buf(), missing: missing.join(", ") });
        }
        Ok(Db { conn, path: path.to_path_buf(), schema })
    }

    /// The underlying connection (read-only).
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The DB file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Wraps a query error with the DB path and a hint.
    pub fn error(&self, e: rusqlite::Error) -> DbError {
        DbError::Unreadable { path: self.path.clone(), reason: explain(&e) }
    }

    /// The form of the `metadata_items` FTS update triggers, read from their declarations:
    /// a pre-ICU DB has broad triggers on plain FTS tables, which stock SQLite writes through
    /// (see [`Db::columns_writable`] for whether it can).
    pub fn trigger_form(&self) -> Result<TriggerForm, DbError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT sql FROM sqlite_master WHERE type='trigger' AND tbl_name='metadata_items'",
            )
            .map_err(|e| self.error(e))?;
        let sqls: Vec<String> = stmt
            .query_map([], |r| r.get::<_, Option<String>>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.error(e))?
            .into_iter()
            .flatten()
            .collect();
        Ok(trigger_form_of(&sqls))
    }

    /// Whether stock SQLite can write `metadata_items` image columns (the probe of design.md
    /// §4.5): true on Plex 1.43+, a stripped DB, or one whose FTS tables are plain (pre-ICU).
    pub fn columns_writable(&self) -> bool {
        writable_directly(&self.conn, "metadata_items")
    }

    /// Whether `tags` image columns can be written with stock SQLite (same probe on `tags`).
    pub fn tags_writable(&self) -> bool {
        writable_directly(&self.conn, "tags")
    }
}

/// Whether stock SQLite can UPDATE `table`'s image columns without setting triggers aside:
/// the read-only probe of design.md §4.5 (the statement is prepared, never run).
pub fn writable_directly(conn: &Connection, table: &str) -> bool {
    let Some(col) = columns::of_table(table).first() else { return false };
    conn.prepare(&format!("EXPLAIN UPDATE \"{table}\" SET \"{col}\" = \"{col}\" WHERE 0")).is_ok()
}

/// The form of the `metadata_items` update triggers declared by `sqls`: broad when any fires
/// on every column (`UPDATE ON`), scoped when all name their columns (`UPDATE OF`).
fn trigger_form_of(sqls: &[String]) -> TriggerForm {
    let words: Vec<Vec<String>> = sqls
        .iter()
        .map(|sql| sql.split_whitespace().map(|w| w.to_ascii_uppercase()).collect())
        .collect();
    let update_then =
        |w: &Vec<String>, next: &str| w.windows(2).any(|p| p[0] == "UPDATE" && p[1] == next);
    if words.iter().any(|w| update_then(w, "ON")) {
        TriggerForm::Broad
    } else if words.iter().any(|w| update_then(w, "OF")) {
        TriggerForm::Scoped
    } else {
        TriggerForm::Absent
    }
}

/// A `file:` URI with `mode=ro` for `path`, percent-encoding what URIs reserve.
fn uri(path: &Path) -> String {
    let mut out = String::from("file:");
    for b in path.to_string_lossy().bytes() {
        match b {
            b'%'
            | b'?'
            | b'#'
            | b' '
            | b'"'
            | b'<'
            | b'>'
            | b'\\'
            | b'^'
            | b'`'
            | b'{'
            | b'|'
            | b'}'
            | 0..=0x1f
            | 0x7f.. => out.push_str(&format!("%{b:02X}")),
            _ => out.push(b as char),
        }
    }
    out.push_str("?mode=ro");
    out
}

/// A one-line reason with advice for the usual failures.
fn explain(e: &rusqlite::Error) -> String {
    let msg = e.to_string();
    let advice = match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => " (the file is not a SQLite database; check --db)",
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            " (Plex or another program holds a lock; try again when Plex is idle)"
        }
        Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
            " (the database is damaged; repair it with Plex's tools, e.g. DBRepair, before cleaning)"
        }
        Some(rusqlite::ErrorCode::CannotOpen) => " (check the path and its permissions)",
        Some(rusqlite::ErrorCode::PermissionDenied) => {
            " (run tidyplex as the user Plex runs as)"
        }
        _ => "",
    };
    format!("{msg}{advice}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_escape_spaces_and_question_marks() {
        assert_eq!(
            uri(Path::new("/a b/Plug-in Support/x?.db")),
            "file:/a%20b/Plug-in%20Support/x%3F.db?mode=ro"
        );
        assert_eq!(uri(Path::new("/a/큰.db")), "file:/a/%ED%81%B0.db?mode=ro");
    }

    #[test]
    fn trigger_forms_are_read_from_their_declarations() {
        let sql = |s: &str| {
            vec![
                s.to_string(),
                "CREATE TRIGGER i AFTER INSERT ON metadata_items BEGIN SELECT 1; END".into(),
            ]
        };
        let broad = sql("CREATE TRIGGER u BEFORE  update\n ON metadata_items BEGIN SELECT 1; END");
        let scoped = sql("CREATE TRIGGER u AFTER UPDATE OF title, title_sort ON metadata_items BEGIN SELECT 1; END");
        assert_eq!(trigger_form_of(&broad), TriggerForm::Broad);
        assert_eq!(trigger_form_of(&scoped), TriggerForm::Scoped);
        assert_eq!(trigger_form_of(&[]), TriggerForm::Absent);
    }

    #[test]
    fn a_non_plex_db_is_refused_naming_what_is_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("other.db");
        Connection::open(&path).unwrap().execute_batch("CREATE TABLE t(x)").unwrap();
        let err = Db::open(&path).err().unwrap().to_string();
        assert!(err.contains("no table metadata_items"), "{err}");
    }

    #[test]
    fn a_text_file_is_not_a_database() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.db");
        std::fs::write(&path, "hello, this is not sqlite at all, just text").unwrap();
        let err = Db::open(&path).err().unwrap().to_string();
        assert!(err.contains("not a SQLite database"), "{err}");
    }
}
