//! Aligned columns: a header and rows, each column as wide as its widest cell, two spaces
//! between columns, no trailing blanks; a cell may carry a colour, applied after padding so
//! that the columns stay aligned.

use anstyle::Style;

/// One cell: its text and, on a terminal, its colour.
pub(crate) struct Cell {
    text: String,
    style: Option<Style>,
}

impl<T: Into<String>> From<T> for Cell {
    fn from(t: T) -> Self {
        Self {
            text: t.into(),
            style: None,
        }
    }
}

impl Cell {
    /// A status word, coloured as `colour::of_status` says.
    pub(crate) fn status(s: &str) -> Self {
        Self {
            text: s.to_string(),
            style: super::colour::of_status(s),
        }
    }
}

/// A table being filled.
pub(crate) struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    pub(crate) fn new(header: &[&'static str]) -> Self {
        Self {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    /// The text of the table; coloured cells when `colour`.
    pub(crate) fn render(&self, colour: bool) -> String {
        let n = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.text.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: Vec<(&str, Option<Style>)>| {
            let mut l = String::new();
            for (i, (text, style)) in cells.iter().enumerate().take(n) {
                if i > 0 {
                    l.push_str("  ");
                }
                let pad = widths[i].saturating_sub(text.chars().count());
                l.push_str(&super::colour::paint(text, *style, colour));
                if i + 1 < n {
                    l.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        line(self.header.iter().map(|h| (*h, None)).collect());
        for r in &self.rows {
            line(r.iter().map(|c| (c.text.as_str(), c.style)).collect());
        }
        out
    }

    /// Prints the table on stdout, coloured on a terminal.
    pub(crate) fn print(&self) {
        print!("{}", self.render(super::colour::stdout()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_with_and_without_colour() {
        let mut t = Table::new(&["ID", "STATUS", "NAME"]);
        t.row(vec!["eci-1".into(), Cell::status("Running"), "web".into()]);
        t.row(vec!["eci-22".into(), Cell::status("Failed"), "".into()]);
        let plain = t.render(false);
        assert_eq!(
            plain,
            "ID      STATUS   NAME\neci-1   Running  web\neci-22  Failed\n"
        );
        let coloured = t.render(true);
        assert!(coloured.contains("\x1b["), "{coloured:?}");
        // Without its escape codes, the coloured table is the plain one.
        let stripped: String = {
            let mut s = String::new();
            let mut esc = false;
            for ch in coloured.chars() {
                match (esc, ch) {
                    (false, '\x1b') => esc = true,
                    (true, 'm') => esc = false,
                    (true, _) => {}
                    (false, c) => s.push(c),
                }
            }
            s
        };
        assert_eq!(stripped, plain);
    }
}
