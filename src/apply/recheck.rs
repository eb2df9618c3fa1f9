//! The re-check right before an item's files go: the image columns of the item and of every
//! row below it (seasons, episodes, albums) are read again by id, so a poster picked in Plex
//! (or re-selected by a refresh) while apply deletes is kept. The window shrinks from the whole
//! deletion phase to one item.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::plex::model::Library;
use crate::plex::ImageUrl;
use crate::scan::refs::{ColumnRef, InUse};

/// For every item that owns deletions, the rows whose columns can point into its files.
pub struct Families {
    /// item → the bundle its family's values resolve in (the owner's), and the row ids.
    rows: HashMap<i64, (Option<String>, Vec<i64>)>,
    /// The image columns of `metadata_items` in this DB.
    columns: Vec<&'static str>,
}

impl Families {
    /// The item and its descendants, for each of `items`; `columns` are the DB's image
    /// columns of `metadata_items`.
    pub fn of(
        lib: &Library,
        columns: &[&'static str],
        items: impl IntoIterator<Item = i64>,
    ) -> Families {
        let mut children: HashMap<i64, Vec<i64>> = HashMap::new();
        for it in &lib.items {
            if let Some(p) = it.parent_id {
                children.entry(p).or_default().push(it.id);
            }
        }
        let mut rows = HashMap::new();
        for id in items {
            if rows.contains_key(&id) {
                continue;
            }
            // Seasons and episodes resolve in their show's bundle: one bundle per family.
            let bundle = lib.item(id).and_then(|item| lib.bundle_of(item));
            let mut family = Vec::new();
            let mut todo = vec![id];
            while let Some(next) = todo.pop() {
                family.push(next);
                todo.extend(children.get(&next).into_iter().flatten());
            }
            rows.insert(id, (bundle, family));
        }
        Families { rows, columns: columns.to_vec() }
    }

    /// What the columns of `item`'s family reference now, read through `conn`; `None` when
    /// the item has no family here (changes of no item).
    pub fn in_use_now(
        &self,
        conn: &Connection,
        root: &Path,
        item: i64,
    ) -> rusqlite::Result<Option<InUse>> {
        let Some((bundle, family)) = self.rows.get(&item) else { return Ok(None) };
        let ids: Vec<String> = family.iter().map(|id| id.to_string()).collect();
        let sql = format!(
            "SELECT id, {} FROM metadata_items WHERE id IN ({})",
            self.columns.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", "),
            ids.join(",")
        );
        let mut refs = Vec::new();
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            for (i, &column) in self.columns.iter().enumerate() {
                let value: Option<String> = row.get(i + 1)?;
                let url = ImageUrl::parse(value.as_deref());
                let Some(name) = url.file_name() else { continue };
                refs.push(ColumnRef {
                    table: "metadata_items",
                    id,
                    column,
                    path: url.resolve(bundle.as_deref()),
                    name: Some(name.to_string()),
                });
            }
        }
        Ok(Some(InUse::build(root, &refs, |_| false)))
    }
}

/// A read-only connection for one worker.
pub fn open(db: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}
