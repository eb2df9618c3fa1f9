//! Human output: sizes, counts, aligned tables and styles.

pub mod apply;
pub mod plan;
pub mod status;
pub mod summary;

use anstyle::{AnsiColor, Style};
use unicode_width::UnicodeWidthStr;

/// Style of table headers.
pub const HEADER: Style = Style::new().bold();
/// Style of things that are done.
pub const GOOD: Style = AnsiColor::Green.on_default();
/// Style of things still to clean.
pub const TODO: Style = AnsiColor::Yellow.on_default();
/// Style of secondary detail.
pub const DIM: Style = Style::new().dimmed();

/// Bytes in binary units: `0 B`, `512 B`, `1.5 KiB`, `41.2 GiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A count with thousands separators: `1,204`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Column alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Padded on the right.
    Left,
    /// Padded on the left (numbers).
    Right,
}

/// A plain text table aligned by display width (wide CJK characters count as two columns).
#[derive(Debug)]
pub struct Table {
    header: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<(String, Style)>>,
}

impl Table {
    /// A table with these column headers and alignments.
    pub fn new(columns: &[(&str, Align)]) -> Table {
        Table {
            header: columns.iter().map(|(h, _)| h.to_string()).collect(),
            align: columns.iter().map(|(_, a)| *a).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds an unstyled row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.into_iter().map(|c| (c, Style::new())).collect());
    }

    /// Adds a row whose cells carry their own styles.
    pub fn styled_row(&mut self, cells: Vec<(String, Style)>) {
        self.rows.push(cells);
    }

    /// The table as lines, indented by `indent` spaces, with ANSI styles (stripped later by
    /// the output stream when colour is off).
    pub fn render(&self, indent: usize) -> String {
        let n = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.width()).collect();
        for row in &self.rows {
            for (i, (cell, _)) in row.iter().enumerate().take(n) {
                widths[i] = widths[i].max(cell.width());
            }
        }
        let mut out = String::new();
        let header: Vec<(String, Style)> =
            self.header.iter().map(|h| (h.clone(), HEADER)).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            out.push_str(&" ".repeat(indent));
            let mut line = String::new();
            for (i, (cell, style)) in row.iter().enumerate().take(n) {
                let pad = " ".repeat(widths[i] - cell.width());
                let body = format!("{style}{cell}{style:#}");
                if i > 0 {
                    line.push_str("  ");
                }
                match self.align[i] {
                    Align::Left if i + 1 == n => line.push_str(&body),
                    Align::Left => line.push_str(&format!("{body}{pad}")),
                    Align::Right => line.push_str(&format!("{pad}{body}")),
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(44_238_643_200), "41.2 GiB");
    }

    #[test]
    fn counts_group_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1204), "1,204");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn wide_characters_align() {
        let mut t = Table::new(&[("NAME", Align::Left), ("N", Align::Right)]);
        t.row(vec!["영화".into(), "1".into()]);
        t.row(vec!["Movies".into(), "10".into()]);
        let plain: String = anstream::adapter::strip_str(&t.render(0)).to_string();
        let lines: Vec<&str> = plain.lines().collect();
        assert_eq!(lines, ["NAME     N", "영화     1", "Movies  10"]);
    }
}
