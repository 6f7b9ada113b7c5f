//! Decoding of the ways mail carries non-ASCII text: RFC 2047 encoded words in headers,
//! quoted-printable and base64 bodies, and the charsets they name.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Base64 as mail writes it: padding may be missing, and whitespace is removed beforehand.
const MAIL_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Turns bytes in `charset` into text. UTF-8, US-ASCII and ISO-8859-1 (Latin-1) are understood;
/// any other charset is read as UTF-8, with invalid sequences replaced.
pub(super) fn decode_charset(charset: &str, bytes: &[u8]) -> String {
    let charset = charset.trim().to_ascii_lowercase();
    match charset.as_str() {
        "iso-8859-1" | "iso8859-1" | "iso_8859-1" | "latin1" | "latin-1" | "l1" => {
            bytes.iter().map(|&byte| char::from(byte)).collect()
        }
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Decodes base64 content, ignoring line breaks and other whitespace.
pub(super) fn decode_base64(encoded: &str) -> Option<Vec<u8>> {
    let compact: String = encoded.split_whitespace().collect();
    MAIL_BASE64.decode(compact).ok()
}

/// Decodes quoted-printable content. Hard line breaks come out as `\n`; soft line breaks
/// (a trailing `=`) join their lines; a `=` not followed by two hex digits is kept as it is.
pub(super) fn decode_quoted_printable(encoded: &str) -> Vec<u8> {
    let mut decoded = Vec::with_capacity(encoded.len());
    let mut lines = encoded.split('\n').peekable();
    while let Some(line) = lines.next() {
        // Trailing whitespace is padding added in transport, not content.
        let line = line.trim_end_matches(['\r', ' ', '\t']);
        match line.strip_suffix('=') {
            Some(joined) => decode_escapes(joined, false, &mut decoded),
            None => {
                decode_escapes(line, false, &mut decoded);
                if lines.peek().is_some() {
                    decoded.push(b'\n');
                }
            }
        }
    }
    decoded
}

/// Decodes `=XX` escapes into `out`; with `underscore_is_space`, as in Q encoded words, `_`
/// stands for a space.
fn decode_escapes(text: &str, underscore_is_space: bool, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    let mut position = 0;
    while position < bytes.len() {
        let byte = bytes[position];
        let escaped = (byte == b'=')
            .then(|| bytes.get(position + 1..position + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(decoded) => {
                out.push(decoded);
                position += 3;
            }
            None => {
                out.push(if underscore_is_space && byte == b'_' {
                    b' '
                } else {
                    byte
                });
                position += 1;
            }
        }
    }
}

/// Decodes the RFC 2047 encoded words in a header value. Whitespace between two encoded words
/// is dropped, and the bytes of neighbouring words in the same charset are joined before
/// decoding, so a character split across two words comes out whole. Anything that is not a
/// well-formed encoded word is kept as written.
pub(super) fn decode_encoded_words(value: &str) -> String {
    let mut decoded = String::with_capacity(value.len());
    // Encoded words read but not yet turned into text, and the whitespace that followed them.
    let mut pending: Option<EncodedWord> = None;
    let mut gap = String::new();

    let mut rest = value;
    while let Some(character) = rest.chars().next() {
        if let Some((word, after)) = EncodedWord::parse(rest) {
            gap.clear();
            match &mut pending {
                Some(earlier) if earlier.charset.eq_ignore_ascii_case(&word.charset) => {
                    earlier.bytes.extend(word.bytes);
                }
                _ => {
                    if let Some(earlier) = pending.replace(word) {
                        decoded.push_str(&earlier.text());
                    }
                }
            }
            rest = after;
            continue;
        }

        if pending.is_some() && character.is_whitespace() {
            gap.push(character);
        } else {
            if let Some(earlier) = pending.take() {
                decoded.push_str(&earlier.text());
            }
            decoded.push_str(&gap);
            gap.clear();
            decoded.push(character);
        }
        rest = &rest[character.len_utf8()..];
    }

    if let Some(earlier) = pending {
        decoded.push_str(&earlier.text());
    }
    decoded.push_str(&gap);
    decoded
}

/// One `=?charset?encoding?text?=`, with its text decoded to bytes.
struct EncodedWord {
    charset: String,
    bytes: Vec<u8>,
}

impl EncodedWord {
    /// Parses an encoded word at the start of `text`, returning it and the text after it.
    fn parse(text: &str) -> Option<(EncodedWord, &str)> {
        let inner = text.strip_prefix("=?")?;
        let (charset, inner) = inner.split_once('?')?;
        let (encoding, inner) = inner.split_once('?')?;
        let end = inner.find("?=")?;
        let (encoded, after) = (&inner[..end], &inner[end + 2..]);
        if charset.is_empty() || encoded.contains(char::is_whitespace) {
            return None;
        }

        let bytes = match encoding {
            "B" | "b" => decode_base64(encoded)?,
            "Q" | "q" => {
                let mut bytes = Vec::with_capacity(encoded.len());
                decode_escapes(encoded, true, &mut bytes);
                bytes
            }
            _ => return None,
        };
        // RFC 2231 lets a language follow the charset: `utf-8*de`.
        let charset = charset.split('*').next().unwrap_or(charset).to_owned();
        Some((EncodedWord { charset, bytes }, after))
    }

    fn text(&self) -> String {
        decode_charset(&self.charset, &self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base64_utf8_word_is_decoded() {
        assert_eq!(
            decode_encoded_words("=?utf-8?b?R3LDvMOfZSBhdXMgS8O2bG4g4pyT?="),
            "Grüße aus Köln ✓"
        );
    }

    #[test]
    fn a_q_latin1_word_is_decoded_with_underscores_as_spaces() {
        assert_eq!(
            decode_encoded_words("=?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?="),
            "Grüße aus Köln"
        );
    }

    #[test]
    fn whitespace_between_encoded_words_is_dropped_but_kept_around_plain_text() {
        assert_eq!(
            decode_encoded_words("Re: =?utf-8?q?Gr=C3=BC?=  =?utf-8?q?=C3=9Fe?= von mir"),
            "Re: Grüße von mir"
        );
    }

    #[test]
    fn a_character_split_across_two_words_comes_out_whole() {
        // "ü" is C3 BC in UTF-8; each word carries one of its bytes.
        assert_eq!(
            decode_encoded_words("=?utf-8?b?w4==?= =?UTF-8?b?vA==?="),
            "ü"
        );
    }

    #[test]
    fn a_language_after_the_charset_is_ignored() {
        assert_eq!(decode_encoded_words("=?utf-8*de?q?K=C3=B6ln?="), "Köln");
    }

    #[test]
    fn text_that_only_looks_like_an_encoded_word_is_kept() {
        assert_eq!(
            decode_encoded_words("=?utf-8?x?abc?= and =?"),
            "=?utf-8?x?abc?= and =?"
        );
        assert_eq!(decode_encoded_words("plain subject"), "plain subject");
    }

    #[test]
    fn quoted_printable_joins_soft_breaks_and_keeps_hard_ones() {
        let decoded =
            decode_quoted_printable("Gr=C3=BC=C3=9Fe aus =\r\nK=C3=B6ln   \r\nzweite Zeile");

        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            "Grüße aus Köln\nzweite Zeile"
        );
    }

    #[test]
    fn quoted_printable_keeps_a_lone_equals_sign() {
        assert_eq!(decode_quoted_printable("a=b =4"), b"a=b =4");
    }

    #[test]
    fn base64_across_lines_and_without_padding_is_decoded() {
        assert_eq!(decode_base64("S8O2\r\nbG4").unwrap(), "Köln".as_bytes());
    }

    #[test]
    fn latin1_bytes_become_their_characters() {
        assert_eq!(
            decode_charset("ISO-8859-1", &[0x4B, 0xF6, 0x6C, 0x6E]),
            "Köln"
        );
    }
}
