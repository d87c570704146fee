//! A table of text written as Markdown or as HTML: reports build their
//! tables once and print them either way.

/// A table: a header row and body rows of cells, some columns numeric
/// (right-aligned).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub head: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Per column: right-aligned.
    pub numeric: Vec<bool>,
}

impl Table {
    /// A table with these column names, all left-aligned.
    pub fn new<S: Into<String>>(head: impl IntoIterator<Item = S>) -> Table {
        let head: Vec<String> = head.into_iter().map(Into::into).collect();
        Table {
            numeric: vec![false; head.len()],
            head,
            rows: Vec::new(),
        }
    }

    /// Marks columns `from..` numeric.
    pub fn numeric_from(mut self, from: usize) -> Table {
        for (i, n) in self.numeric.iter_mut().enumerate() {
            *n = i >= from;
        }
        self
    }

    /// Adds a row (missing cells are empty).
    pub fn push<S: Into<String>>(&mut self, row: impl IntoIterator<Item = S>) {
        let mut row: Vec<String> = row.into_iter().map(Into::into).collect();
        row.resize(self.head.len().max(row.len()), String::new());
        self.rows.push(row);
    }

    /// GitHub-flavoured Markdown, pipes in cells escaped.
    pub fn to_markdown(&self) -> String {
        let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        let line = |cells: &[String]| format!("| {} |\n", cells.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | "));
        let mut md = line(&self.head);
        let rule: Vec<String> = (0..self.head.len())
            .map(|i| if self.numeric.get(i) == Some(&true) { "---:" } else { "---" }.to_string())
            .collect();
        md.push_str(&format!("|{}|\n", rule.join("|")));
        for r in &self.rows {
            md.push_str(&line(r));
        }
        md
    }

    /// An HTML `<table>`, every cell escaped.
    pub fn to_html(&self) -> String {
        let class = |i: usize| if self.numeric.get(i) == Some(&true) { " class=\"num\"" } else { "" };
        let mut h = String::from("<table>\n<thead><tr>");
        for (i, c) in self.head.iter().enumerate() {
            h.push_str(&format!("<th{}>{}</th>", class(i), escape(c)));
        }
        h.push_str("</tr></thead>\n<tbody>\n");
        for r in &self.rows {
            h.push_str("<tr>");
            for (i, c) in r.iter().enumerate() {
                h.push_str(&format!("<td{}>{}</td>", class(i), escape(c)));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</tbody>\n</table>\n");
        h
    }
}

/// Text made safe inside HTML elements and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_and_html() {
        let mut t = Table::new(["point", "ms"]).numeric_from(1);
        t.push(["a|b", "1.5"]);
        t.push(["<x>"]);
        assert_eq!(t.to_markdown(), "| point | ms |\n|---|---:|\n| a\\|b | 1.5 |\n| <x> |  |\n");
        let html = t.to_html();
        assert!(
            html.contains("<th class=\"num\">ms</th>") && html.contains("<td>&lt;x&gt;</td>"),
            "{html}"
        );
        assert_eq!(escape("a&'\""), "a&amp;&#39;&quot;");
    }
}
