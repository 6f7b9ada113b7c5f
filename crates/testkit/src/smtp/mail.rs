//! A message as the SMTP server accepted it, with the header and body decoding a test needs to
//! check what a recipient would read.

use super::encoding::{
    decode_base64, decode_charset, decode_encoded_words, decode_quoted_printable,
};

/// One accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The envelope sender from MAIL FROM, without angle brackets; empty for a null sender.
    pub from: String,
    /// The envelope recipients from RCPT TO, without angle brackets, in the order given.
    pub to: Vec<String>,
    /// The content sent after DATA, exactly as sent but with dot-stuffing undone: line ends
    /// are kept (CRLF from a conforming client), and the content ends with the line end before
    /// the final dot. Bytes that are not UTF-8 are replaced with U+FFFD.
    pub raw: String,
}

impl Mail {
    /// The first header called `name` (in any case), unfolded, with RFC 2047 encoded words
    /// decoded and surrounding whitespace trimmed.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers(name).into_iter().next()
    }

    /// Every header called `name` (in any case), in order, decoded like [`Mail::header`].
    pub fn headers(&self, name: &str) -> Vec<String> {
        let (headers, _) = split_entity(&self.raw);
        parse_headers(headers)
            .into_iter()
            .filter(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| decode_encoded_words(&value))
            .collect()
    }

    pub fn subject(&self) -> Option<String> {
        self.header("Subject")
    }

    /// The Message-ID header as written, angle brackets included.
    pub fn message_id(&self) -> Option<String> {
        self.header("Message-ID")
    }

    /// The first text/plain part that is not an attachment, transfer-decoded and turned into
    /// text by its charset, with line ends as `\n` and none at the end. A message without a
    /// Content-Type is plain text.
    pub fn text_body(&self) -> Option<String> {
        self.body("text/plain")
    }

    /// The first text/html part that is not an attachment, decoded like [`Mail::text_body`].
    pub fn html_body(&self) -> Option<String> {
        self.body("text/html")
    }

    fn body(&self, mime_type: &str) -> Option<String> {
        let mut text = Entity::parse(&self.raw).find(mime_type)?;
        // Clients end the content with line ends of their own (lettre adds an empty line after
        // a body), so trailing ones tell nothing about what was meant to be read.
        text.truncate(text.trim_end_matches('\n').len());
        Some(text)
    }
}

/// A message or one part of a multipart body.
struct Entity<'a> {
    headers: Vec<(String, String)>,
    body: &'a str,
}

impl<'a> Entity<'a> {
    fn parse(text: &'a str) -> Entity<'a> {
        let (headers, body) = split_entity(text);
        Entity {
            headers: parse_headers(headers),
            body,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Finds the first part of `mime_type`, depth first, and returns its decoded text.
    fn find(&self, mime_type: &str) -> Option<String> {
        let content_type = ContentType::parse(self.header("Content-Type"));
        if content_type.mime_type.starts_with("multipart/") {
            let boundary = content_type.parameter("boundary")?;
            return split_multipart(self.body, boundary)
                .into_iter()
                .find_map(|part| Entity::parse(part).find(mime_type));
        }

        let attachment = self
            .header("Content-Disposition")
            .is_some_and(|disposition| {
                disposition
                    .trim_start()
                    .get(..10)
                    .is_some_and(|kind| kind.eq_ignore_ascii_case("attachment"))
            });
        if content_type.mime_type != mime_type || attachment {
            return None;
        }
        let charset = content_type.parameter("charset").unwrap_or("us-ascii");
        Some(decode_charset(charset, &self.transfer_decoded()).replace("\r\n", "\n"))
    }

    /// The body with its Content-Transfer-Encoding undone. Base64 that does not decode is
    /// returned as written.
    fn transfer_decoded(&self) -> Vec<u8> {
        let encoding = self
            .header("Content-Transfer-Encoding")
            .map(|encoding| encoding.trim().to_ascii_lowercase());
        match encoding.as_deref() {
            Some("quoted-printable") => decode_quoted_printable(self.body),
            Some("base64") => {
                decode_base64(self.body).unwrap_or_else(|| self.body.as_bytes().to_vec())
            }
            _ => self.body.as_bytes().to_vec(),
        }
    }
}

/// A parsed Content-Type: the lower-cased `type/subtype` and its parameters.
struct ContentType {
    mime_type: String,
    parameters: Vec<(String, String)>,
}

impl ContentType {
    /// Parses a Content-Type value; a missing one means plain US-ASCII text.
    fn parse(value: Option<&str>) -> ContentType {
        let Some(value) = value else {
            return ContentType {
                mime_type: "text/plain".to_owned(),
                parameters: Vec::new(),
            };
        };

        let mut fields = split_outside_quotes(value, ';').into_iter();
        let mime_type = fields
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let parameters = fields
            .filter_map(|field| {
                let (name, value) = field.split_once('=')?;
                Some((name.trim().to_ascii_lowercase(), unquote(value.trim())))
            })
            .collect();
        ContentType {
            mime_type,
            parameters,
        }
    }

    fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(parameter, _)| parameter == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Splits at `separator` where it is not inside a quoted string.
fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let mut fields = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (position, character) in text.char_indices() {
        match character {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            _ if character == separator && !quoted => {
                fields.push(&text[start..position]);
                start = position + character.len_utf8();
            }
            _ => {}
        }
    }
    fields.push(&text[start..]);
    fields
}

/// The content of a quoted string, or the text itself when it is not quoted.
fn unquote(text: &str) -> String {
    let Some(inner) = text
        .strip_prefix('"')
        .and_then(|text| text.strip_suffix('"'))
    else {
        return text.to_owned();
    };
    let mut unquoted = String::with_capacity(inner.len());
    let mut characters = inner.chars();
    while let Some(character) = characters.next() {
        match character {
            '\\' => unquoted.extend(characters.next()),
            _ => unquoted.push(character),
        }
    }
    unquoted
}

/// Splits an entity at its first empty line into the header block and the body.
fn split_entity(text: &str) -> (&str, &str) {
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end_matches(['\r', '\n']).is_empty() {
            return (&text[..line_start], &text[line_start + line.len()..]);
        }
        line_start += line.len();
    }
    (text, "")
}

/// Parses a header block into names and unfolded values, in order. Lines that are neither a
/// header nor its continuation are skipped.
fn parse_headers(block: &str) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in block.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.to_owned()));
        }
    }
    for (_, value) in &mut headers {
        *value = value.trim().to_owned();
    }
    headers
}

/// The parts of a multipart body, without the preamble and epilogue. The line end before each
/// boundary line belongs to the boundary, not to the part before it.
fn split_multipart<'a>(body: &'a str, boundary: &str) -> Vec<&'a str> {
    let delimiter = format!("--{boundary}");
    let closing = format!("--{boundary}--");
    let mut parts = Vec::new();
    let mut part_start: Option<usize> = None;
    let mut line_start = 0;

    for line in body.split_inclusive('\n') {
        let content = line.trim_end_matches(['\r', '\n', ' ', '\t']);
        let is_closing = content == closing;
        if content == delimiter || is_closing {
            if let Some(start) = part_start {
                let before = &body[..line_start];
                let before = before.strip_suffix('\n').unwrap_or(before);
                let before = before.strip_suffix('\r').unwrap_or(before);
                parts.push(&body[start..before.len().max(start)]);
            }
            if is_closing {
                return parts;
            }
            part_start = Some(line_start + line.len());
        }
        line_start += line.len();
    }

    // A body cut off before its closing boundary still yields its last part.
    if let Some(start) = part_start {
        parts.push(&body[start.min(body.len())..]);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(raw: &str) -> Mail {
        Mail {
            from: "sender@example.com".to_owned(),
            to: vec!["recipient@example.com".to_owned()],
            raw: raw.replace('\n', "\r\n"),
        }
    }

    #[test]
    fn headers_are_found_in_any_case_and_unfolded() {
        let mail = mail("Subject: a long\n\tsubject line\nX-Tenant: acme\n\nbody\n");

        assert_eq!(
            mail.header("subject").as_deref(),
            Some("a long\tsubject line")
        );
        assert_eq!(mail.header("x-tenant").as_deref(), Some("acme"));
        assert_eq!(mail.header("x-missing"), None);
    }

    #[test]
    fn a_folded_encoded_subject_is_decoded_whole() {
        let mail =
            mail("Subject: =?utf-8?b?R3LDvMOfZSBhdXMg?=\n =?utf-8?b?S8O2bG4g4pyT?=\n\nbody\n");

        assert_eq!(mail.subject().as_deref(), Some("Grüße aus Köln ✓"));
    }

    #[test]
    fn every_header_of_a_name_is_listed_in_order() {
        let mail = mail("Received: first\nReceived: second\n\nbody\n");

        assert_eq!(mail.headers("received"), vec!["first", "second"]);
    }

    #[test]
    fn the_message_id_keeps_its_angle_brackets() {
        let mail = mail("Message-ID: <abc@notify.test>\n\nbody\n");

        assert_eq!(mail.message_id().as_deref(), Some("<abc@notify.test>"));
    }

    #[test]
    fn a_message_without_content_type_is_plain_text() {
        let mail = mail("Subject: hi\n\nfirst line\nsecond line\n");

        assert_eq!(mail.text_body().as_deref(), Some("first line\nsecond line"));
        assert_eq!(mail.html_body(), None);
    }

    #[test]
    fn a_single_latin1_quoted_printable_part_is_decoded() {
        let mail = mail(concat!(
            "Content-Type: text/plain; charset=\"ISO-8859-1\"\n",
            "Content-Transfer-Encoding: quoted-printable\n",
            "\n",
            "Gr=FC=DFe aus =\nK=F6ln\n",
        ));

        assert_eq!(mail.text_body().as_deref(), Some("Grüße aus Köln"));
    }

    #[test]
    fn nested_parts_are_searched_and_attachments_skipped() {
        let mail = mail(concat!(
            "Content-Type: multipart/mixed; boundary=\"outer;b\"\n",
            "\n",
            "preamble\n",
            "--outer;b\n",
            "Content-Type: multipart/alternative; boundary=inner\n",
            "\n",
            "--inner\n",
            "Content-Type: text/plain; charset=utf-8\n",
            "Content-Transfer-Encoding: base64\n",
            "\n",
            "R3LDvMOfZSBhdXMg\n",
            "S8O2bG4=\n",
            "--inner\n",
            "Content-Type: text/html; charset=utf-8\n",
            "Content-Transfer-Encoding: 8bit\n",
            "\n",
            "<p>Köln</p>\n",
            "--inner--\n",
            "--outer;b\n",
            "Content-Type: text/plain\n",
            "Content-Disposition: attachment; filename=notes.txt\n",
            "\n",
            "not the body\n",
            "--outer;b--\n",
            "epilogue\n",
        ));

        assert_eq!(mail.text_body().as_deref(), Some("Grüße aus Köln"));
        assert_eq!(mail.html_body().as_deref(), Some("<p>Köln</p>"));
    }

    #[test]
    fn an_attachment_alone_is_not_a_body() {
        let mail = mail(concat!(
            "Content-Type: multipart/mixed; boundary=b\n",
            "\n",
            "--b\n",
            "Content-Type: text/plain\n",
            "Content-Disposition: ATTACHMENT\n",
            "\n",
            "report\n",
            "--b--\n",
        ));

        assert_eq!(mail.text_body(), None);
    }

    #[test]
    fn a_multipart_body_cut_off_before_its_closing_boundary_keeps_its_last_part() {
        let mail = mail(concat!(
            "Content-Type: multipart/alternative; boundary=b\n",
            "\n",
            "--b\n",
            "Content-Type: text/html\n",
            "\n",
            "<b>hi</b>\n",
        ));

        assert_eq!(mail.html_body().as_deref(), Some("<b>hi</b>"));
    }

    #[test]
    fn quoted_parameter_values_are_unescaped() {
        let content_type = ContentType::parse(Some(r#"Text/Plain; Charset="utf\"8"; x=1"#));

        assert_eq!(content_type.mime_type, "text/plain");
        assert_eq!(content_type.parameter("charset"), Some("utf\"8"));
        assert_eq!(content_type.parameter("x"), Some("1"));
    }
}
