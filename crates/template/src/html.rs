//! HTML handling for rendered content: sanitizing, turning plain text into paragraphs, and
//! turning HTML into plain text.

use std::collections::HashSet;

/// Elements whose presence means the author laid the content out in HTML themselves.
const BLOCK_TAGS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hgroup",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "ul",
];

/// CSS properties allowed in `style` attributes: the ones email layouts rely on.
const STYLE_PROPERTIES: &[&str] = &[
    "background-color",
    "border",
    "border-bottom",
    "border-collapse",
    "border-color",
    "border-left",
    "border-radius",
    "border-right",
    "border-spacing",
    "border-style",
    "border-top",
    "border-width",
    "color",
    "display",
    "font",
    "font-family",
    "font-size",
    "font-style",
    "font-weight",
    "height",
    "letter-spacing",
    "line-height",
    "margin",
    "margin-bottom",
    "margin-left",
    "margin-right",
    "margin-top",
    "max-width",
    "min-width",
    "padding",
    "padding-bottom",
    "padding-left",
    "padding-right",
    "padding-top",
    "text-align",
    "text-decoration",
    "text-transform",
    "vertical-align",
    "white-space",
    "width",
];

/// Link schemes worth spelling out in plain text.
const READABLE_LINK_SCHEMES: &[&str] = &["http://", "https://", "mailto:"];

/// The HTML tools of a renderer, built once because configuring ammonia is not free.
pub(crate) struct Markup {
    sanitizer: ammonia::Builder<'static>,
    stripper: ammonia::Builder<'static>,
}

impl Markup {
    pub fn new() -> Self {
        let mut sanitizer = ammonia::Builder::default();
        sanitizer
            .add_tags(["tfoot"])
            .add_generic_attributes(["style", "dir", "align"])
            .filter_style_properties(STYLE_PROPERTIES.iter().copied().collect::<HashSet<_>>())
            .add_tag_attributes("a", ["target"])
            .add_tag_attributes(
                "table",
                ["width", "border", "cellpadding", "cellspacing", "bgcolor"],
            )
            .add_tag_attributes("tr", ["bgcolor", "valign"])
            .add_tag_attributes("td", ["width", "height", "bgcolor", "valign"])
            .add_tag_attributes("th", ["width", "height", "bgcolor", "valign"]);

        let mut stripper = ammonia::Builder::empty();
        stripper.add_clean_content_tags(["title", "noscript", "template"]);

        Self {
            sanitizer,
            stripper,
        }
    }

    /// Removes everything that can run code or leave the message — scripts, event
    /// handlers, `javascript:` links, frames, forms — and keeps formatting, links, images
    /// and tables.
    pub fn sanitize(&self, html: &str) -> String {
        self.sanitizer.clean(html).to_string()
    }

    /// Plain text for what the HTML shows: tags removed (with the contents of scripts and
    /// styles), entities decoded, block elements and `<br>` turned into line breaks, and
    /// link targets written after their text. Text without block elements keeps its own
    /// line breaks.
    pub fn to_text(&self, html: &str) -> String {
        let laid_out = has_block_tags(html) || tags(html).any(|tag| tag.name == "br");
        let marked = mark_line_breaks(html, laid_out);
        let stripped = self.stripper.clean(&marked).to_string();
        resolve_marks(&decode_serializer_entities(&stripped))
    }
}

/// Whether the HTML contains a block-level element such as `<p>`, `<div>` or `<table>`.
pub(crate) fn has_block_tags(html: &str) -> bool {
    tags(html).any(|tag| BLOCK_TAGS.contains(&tag.name.as_str()))
}

/// Wraps blank-line-separated paragraphs in `<p>` and turns the line breaks within them
/// into `<br>`.
pub(crate) fn paragraphs(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let mut html = String::with_capacity(text.len() + 32);
    let mut paragraph: Vec<&str> = Vec::new();

    for line in text.split('\n').chain(std::iter::once("")) {
        if !line.trim().is_empty() {
            paragraph.push(line.trim());
            continue;
        }
        if paragraph.is_empty() {
            continue;
        }
        if !html.is_empty() {
            html.push('\n');
        }
        html.push_str("<p>");
        html.push_str(&paragraph.join("<br>\n"));
        html.push_str("</p>");
        paragraph.clear();
    }
    html
}

/// One tag found in HTML source.
#[derive(Debug)]
struct Tag<'a> {
    /// Byte range of the whole tag, `<` to `>`.
    start: usize,
    end: usize,
    /// Lowercase element name.
    name: String,
    closing: bool,
    source: &'a str,
}

impl Tag<'_> {
    /// The value of an attribute as written, entities not decoded.
    fn attribute(&self, wanted: &str) -> Option<&str> {
        let whole = &self.source[self.start + 1..self.end];
        let inner = whole.strip_suffix('>').unwrap_or(whole);
        let mut rest = inner.trim_start_matches('/');
        rest = rest.trim_start_matches(|c: char| !c.is_whitespace() && c != '/');

        loop {
            rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
            if rest.is_empty() {
                return None;
            }
            let name_end = rest
                .find(|c: char| c.is_whitespace() || c == '=' || c == '/')
                .unwrap_or(rest.len());
            let name = &rest[..name_end];
            rest = rest[name_end..].trim_start();

            let value = if let Some(after) = rest.strip_prefix('=') {
                let after = after.trim_start();
                let (value, remainder) = match after.chars().next() {
                    Some(quote @ ('"' | '\'')) => {
                        let body = &after[1..];
                        let close = body.find(quote).unwrap_or(body.len());
                        (&body[..close], &body[(close + 1).min(body.len())..])
                    }
                    _ => {
                        let close = after.find(char::is_whitespace).unwrap_or(after.len());
                        (&after[..close], &after[close..])
                    }
                };
                rest = remainder;
                value
            } else {
                ""
            };

            if name.eq_ignore_ascii_case(wanted) {
                return Some(value);
            }
        }
    }
}

/// The start and end tags in HTML source, in order; comments and doctypes are skipped.
/// A `<` that does not begin a tag (as in `a < b` or `<3`) is text.
fn tags(html: &str) -> impl Iterator<Item = Tag<'_>> {
    let bytes = html.as_bytes();
    let mut position = 0;

    std::iter::from_fn(move || {
        while let Some(found) = html[position..].find('<') {
            let start = position + found;
            let rest = &html[start + 1..];

            if rest.starts_with("!--") {
                position = match rest.find("-->") {
                    Some(close) => start + 1 + close + 3,
                    None => html.len(),
                };
                continue;
            }

            let closing = rest.starts_with('/');
            let name_start = start + 1 + usize::from(closing);
            let name_len = html[name_start..]
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(html.len() - name_start);
            let starts_with_letter = bytes
                .get(name_start)
                .is_some_and(|byte| byte.is_ascii_alphabetic());
            if !starts_with_letter {
                position = start + 1;
                continue;
            }

            let end = tag_end(html, name_start + name_len);
            position = end;
            return Some(Tag {
                start,
                end,
                name: html[name_start..name_start + name_len].to_ascii_lowercase(),
                closing,
                source: html,
            });
        }
        None
    })
}

/// The byte just past the `>` that ends a tag, skipping `>` inside quoted attribute values.
fn tag_end(html: &str, from: usize) -> usize {
    let mut quote: Option<char> = None;
    for (offset, c) in html[from..].char_indices() {
        match (quote, c) {
            (Some(open), _) if c == open => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => return from + offset + 1,
            (None, _) => {}
        }
    }
    html.len()
}

/// Stands for a line break in text being turned from HTML into plain text.
const LINE_MARK: char = '\u{E000}';
/// Stands for a blank line in text being turned from HTML into plain text.
const PARAGRAPH_MARK: char = '\u{E001}';

/// Copies the HTML with marks written as text where block elements and `<br>` break the
/// flow, and with `(target)` after the text of readable links. When the HTML is laid out
/// with tags, its own whitespace outside `<pre>` is collapsed first, as a browser would.
fn mark_line_breaks(html: &str, laid_out: bool) -> String {
    let html = html.replace([LINE_MARK, PARAGRAPH_MARK], "");
    let mut marked = String::with_capacity(html.len() + 64);
    let mut position = 0;
    let mut preformatted = 0usize;
    let mut open_links: Vec<(Option<String>, usize)> = Vec::new();
    let mut row_started = false;

    for tag in tags(&html) {
        push_text(
            &mut marked,
            &html[position..tag.start],
            laid_out && preformatted == 0,
        );
        marked.push_str(&html[tag.start..tag.end]);
        position = tag.end;

        match (tag.name.as_str(), tag.closing) {
            ("br", _) => marked.push(LINE_MARK),
            ("dd" | "dt" | "li", _) => marked.push(LINE_MARK),
            // Text between table parts would be moved out of the table by the parser, so a
            // row's break goes into its first cell.
            ("tr", false) => row_started = true,
            ("td" | "th", false) if row_started => {
                marked.push(LINE_MARK);
                row_started = false;
            }
            ("td" | "th", true) => marked.push(' '),
            ("tr" | "td" | "th" | "tbody" | "thead" | "tfoot", _) => {}
            ("a", false) => {
                let target = tag.attribute("href").map(str::trim).filter(|href| {
                    READABLE_LINK_SCHEMES.iter().any(|scheme| {
                        href.get(..scheme.len())
                            .is_some_and(|start| start.eq_ignore_ascii_case(scheme))
                    })
                });
                open_links.push((target.map(str::to_owned), marked.len()));
            }
            ("a", true) => {
                if let Some((Some(target), label_start)) = open_links.pop() {
                    let shown = target.strip_prefix("mailto:").unwrap_or(&target);
                    if !marked[label_start..].contains(shown) {
                        marked.push_str(" (");
                        marked.push_str(&shown.replace('<', "&lt;"));
                        marked.push(')');
                    }
                }
            }
            (name, closing) => {
                if name == "pre" {
                    preformatted = if closing {
                        preformatted.saturating_sub(1)
                    } else {
                        preformatted + 1
                    };
                }
                if BLOCK_TAGS.contains(&name) {
                    marked.push(PARAGRAPH_MARK);
                }
            }
        }
    }
    push_text(
        &mut marked,
        &html[position..],
        laid_out && preformatted == 0,
    );
    marked
}

fn push_text(out: &mut String, text: &str, collapse: bool) {
    if !collapse {
        out.push_str(text);
        return;
    }
    let mut in_space = false;
    for c in text.chars() {
        if c.is_ascii_whitespace() {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
}

/// Undoes the escaping the HTML serializer applies to text: after cleaning, the only
/// entities left are these four.
fn decode_serializer_entities(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{A0}")
        .replace("&amp;", "&")
}

/// Turns the marks left by [`mark_line_breaks`] into line breaks: a run of spaces and marks
/// becomes a blank line if it holds a paragraph mark, a line break if it holds a line mark,
/// and stays as it is otherwise. The result is trimmed.
fn resolve_marks(text: &str) -> String {
    let mut resolved = String::with_capacity(text.len());
    let mut run = String::new();
    let mut run_break: Option<&str> = None;

    for c in text.chars() {
        match c {
            PARAGRAPH_MARK => run_break = Some("\n\n"),
            LINE_MARK => {
                run_break.get_or_insert("\n");
            }
            ' ' => run.push(c),
            _ => {
                match run_break.take() {
                    Some(line_break) if !resolved.is_empty() => resolved.push_str(line_break),
                    Some(_) => {}
                    None => resolved.push_str(&run),
                }
                run.clear();
                resolved.push(c);
            }
        }
    }
    if run_break.is_none() {
        resolved.push_str(&run);
    }
    resolved.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizing_removes_scripts_and_event_handlers() {
        let markup = Markup::new();
        let clean = markup.sanitize(
            r#"<p onclick="steal()">Hi<script>alert(1)</script></p><a href="javascript:alert(1)">x</a>"#,
        );
        assert_eq!(clean, "<p>Hi</p><a rel=\"noopener noreferrer\">x</a>");
    }

    #[test]
    fn sanitizing_keeps_formatting_links_images_and_tables() {
        let markup = Markup::new();
        let html = concat!(
            r#"<h1>Title</h1><p><strong>bold</strong> <em>it</em></p>"#,
            r#"<a href="https://example.com/a?b=1&amp;c=2">link</a>"#,
            r#"<img src="https://example.com/logo.png" alt="Logo">"#,
            r#"<table width="100%"><tbody><tr><td align="center">cell</td></tr></tbody></table>"#,
        );
        let clean = markup.sanitize(html);
        assert!(clean.contains("<h1>Title</h1>"));
        assert!(clean.contains("<strong>bold</strong> <em>it</em>"));
        assert!(clean.contains(r#"href="https://example.com/a?b=1&amp;c=2""#));
        assert!(clean.contains(r#"<img src="https://example.com/logo.png" alt="Logo">"#));
        assert!(clean.contains(r#"<table width="100%">"#));
        assert!(clean.contains(r#"<td align="center">cell</td>"#));
    }

    #[test]
    fn sanitizing_keeps_layout_styles_and_drops_the_rest() {
        let markup = Markup::new();
        let clean = markup.sanitize(
            r#"<p style="color: red; position: fixed; background-image: url(javascript:x)">x</p>"#,
        );
        assert_eq!(clean, r#"<p style="color:red">x</p>"#);
    }

    #[test]
    fn block_tags_are_recognised_in_any_case() {
        assert!(has_block_tags("<P>Hello</P>"));
        assert!(has_block_tags("x<div class='a'>y</div>"));
        assert!(!has_block_tags(
            "<b>bold</b> and <a href=\"#\">link</a><br>"
        ));
        assert!(!has_block_tags("a < b and <3 and <!-- <p> -->"));
        assert!(!has_block_tags("<pinecone>"));
    }

    #[test]
    fn paragraphs_split_on_blank_lines_and_break_single_lines() {
        assert_eq!(
            paragraphs("Hello Maria,\n\nyour order\nhas shipped.\n \n\nBye"),
            "<p>Hello Maria,</p>\n<p>your order<br>\nhas shipped.</p>\n<p>Bye</p>"
        );
    }

    #[test]
    fn paragraphs_of_nothing_are_nothing() {
        assert_eq!(paragraphs("\n \n"), "");
    }

    #[test]
    fn text_drops_tags_and_decodes_entities() {
        let markup = Markup::new();
        assert_eq!(
            markup.to_text("Tom &amp; Jerry &lt;3 &eacute;t&eacute; &#x1F600; <b>bold</b>"),
            "Tom & Jerry <3 été 😀 bold"
        );
    }

    #[test]
    fn text_keeps_a_lone_less_than_sign() {
        let markup = Markup::new();
        assert_eq!(markup.to_text("1 < 2 & 3 > 2"), "1 < 2 & 3 > 2");
    }

    #[test]
    fn text_keeps_the_line_breaks_of_plain_content() {
        let markup = Markup::new();
        assert_eq!(
            markup.to_text("Hello\n\n  indented\nnext"),
            "Hello\n\n  indented\nnext"
        );
    }

    #[test]
    fn text_lays_out_blocks_as_lines() {
        let markup = Markup::new();
        let html = "<h1>Hi</h1>\n   <p>First\n   line</p><p>Second<br>line</p><ul><li>a</li><li>b</li></ul>";
        assert_eq!(
            markup.to_text(html),
            "Hi\n\nFirst line\n\nSecond\nline\n\na\nb"
        );
    }

    #[test]
    fn text_drops_scripts_and_styles_with_their_contents() {
        let markup = Markup::new();
        let html = "<style>p { color: red }</style><p>Hi</p><script>alert(1)</script>";
        assert_eq!(markup.to_text(html), "Hi");
    }

    #[test]
    fn text_spells_out_link_targets() {
        let markup = Markup::new();
        let html = r#"<p>Track it <a href="https://shop.example/t?id=1&amp;x=2">here</a>.</p>"#;
        assert_eq!(
            markup.to_text(html),
            "Track it here (https://shop.example/t?id=1&x=2)."
        );
    }

    #[test]
    fn text_does_not_repeat_a_link_shown_as_its_own_text() {
        let markup = Markup::new();
        let html = r#"<a href="https://example.com">https://example.com</a> <a href="mailto:help@example.com">help@example.com</a>"#;
        assert_eq!(markup.to_text(html), "https://example.com help@example.com");
    }

    #[test]
    fn text_keeps_preformatted_whitespace() {
        let markup = Markup::new();
        assert_eq!(
            markup.to_text("<p>Code:</p><pre>a\n    b</pre>"),
            "Code:\n\na\n    b"
        );
    }

    #[test]
    fn text_puts_table_rows_on_lines_and_cells_side_by_side() {
        let markup = Markup::new();
        let html =
            "<table><tr><td>Item</td><td>Price</td></tr><tr><td>Tea</td><td>3</td></tr></table>";
        assert_eq!(markup.to_text(html), "Item Price\nTea 3");
    }

    #[test]
    fn malformed_markup_is_handled_without_panicking() {
        let markup = Markup::new();
        for html in [
            "<",
            "</",
            "<a href='é",
            "<b title=\"ü",
            "<!-- open",
            "<p>ü<a href=https://x.example>ä</a",
            "</a></tr><td>é",
            "<<<>>>",
            "<a href=\"mailto:\">",
        ] {
            let _ = has_block_tags(html);
            let _ = markup.to_text(html);
            let _ = markup.sanitize(html);
        }
    }

    #[test]
    fn attributes_are_read_whatever_their_quoting() {
        let html = r#"<a class=x HREF='https://a.example/?q=">"' title="t">"#;
        let tag = tags(html).next().expect("one tag");
        assert_eq!(tag.name, "a");
        assert_eq!(tag.attribute("href"), Some(r#"https://a.example/?q=">""#));
        assert_eq!(tag.attribute("class"), Some("x"));
        assert_eq!(tag.attribute("rel"), None);
    }
}
