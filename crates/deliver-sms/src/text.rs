//! The text of an SMS as it goes out: cut to the channel's `max_length` on a character
//! boundary, the unsubscribe line added, and measured in GSM-7 or UCS-2 segments the way a
//! carrier bills it.

use notify_core::SmsOptions;

/// Added when a notification asks for `include_unsubscribe`; STOP is the opt-out keyword
/// that Twilio and carriers honour.
pub const UNSUBSCRIBE_LINE: &str = "Reply STOP to unsubscribe.";

/// The GSM 03.38 basic character set, each one septet.
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The extension table, each sent as an escape and the character: two septets.
const GSM7_EXTENDED: &str = "^{}\\[~]|€\u{0c}";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

impl Encoding {
    pub fn of(text: &str) -> Encoding {
        if text.chars().all(|c| septets(c).is_some()) {
            Encoding::Gsm7
        } else {
            Encoding::Ucs2
        }
    }

    /// (the limit of a single message, the limit of each part of a concatenated one), in
    /// septets for GSM-7 and UTF-16 code units for UCS-2.
    fn limits(&self) -> (usize, usize) {
        match self {
            Encoding::Gsm7 => (160, 153),
            Encoding::Ucs2 => (70, 67),
        }
    }

    fn units(&self, c: char) -> usize {
        match self {
            Encoding::Gsm7 => septets(c).unwrap_or(2),
            Encoding::Ucs2 => c.len_utf16(),
        }
    }
}

fn septets(c: char) -> Option<usize> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENDED.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// An SMS ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmsText {
    pub text: String,
    pub encoding: Encoding,
    pub segments: usize,
}

impl SmsText {
    pub fn compose(body: &str, options: &SmsOptions) -> SmsText {
        let body = body.trim();
        let line = if options.include_unsubscribe {
            format!("\n{UNSUBSCRIBE_LINE}")
        } else {
            String::new()
        };
        let text = match options.max_length {
            Some(max) => {
                let room = (max as usize).saturating_sub(line.chars().count());
                format!("{}{line}", cut(body, room))
            }
            None => format!("{body}{line}"),
        };
        let encoding = Encoding::of(&text);
        SmsText {
            segments: segments(&text, encoding),
            text,
            encoding,
        }
    }
}

/// At most `max` characters of `text`, cut between characters and marked with an ellipsis
/// that keeps the text's encoding.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let ellipsis = match Encoding::of(text) {
        Encoding::Gsm7 => "...",
        Encoding::Ucs2 => "…",
    };
    let keep = max.saturating_sub(ellipsis.chars().count());
    let end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
    format!("{}{ellipsis}", text[..end].trim_end())
}

/// How many messages a carrier sends this text as. A concatenated message never splits a
/// character: an escaped GSM-7 character or a UTF-16 surrogate pair moves whole to the next
/// part.
pub fn segments(text: &str, encoding: Encoding) -> usize {
    let (single, part) = encoding.limits();
    let total: usize = text.chars().map(|c| encoding.units(c)).sum();
    if total <= single {
        return usize::from(total > 0);
    }
    let mut count = 1;
    let mut used = 0;
    for c in text.chars() {
        let units = encoding.units(c);
        if used + units > part {
            count += 1;
            used = 0;
        }
        used += units;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(max_length: Option<u32>, include_unsubscribe: bool) -> SmsOptions {
        SmsOptions {
            max_length,
            include_unsubscribe,
            ..Default::default()
        }
    }

    #[test]
    fn plain_latin_text_is_gsm7_and_umlauts_stay_gsm7() {
        assert_eq!(Encoding::of("Hallo Maria, Ihr Code: 4711"), Encoding::Gsm7);
        assert_eq!(Encoding::of("Grüße aus Köln"), Encoding::Gsm7);
        assert_eq!(Encoding::of("Cost: 5€ [net]"), Encoding::Gsm7);
    }

    #[test]
    fn a_character_outside_gsm7_makes_the_whole_text_ucs2() {
        assert_eq!(Encoding::of("Zażółć gęślą jaźń"), Encoding::Ucs2);
        assert_eq!(Encoding::of("Server down 🔥"), Encoding::Ucs2);
        assert_eq!(Encoding::of("«quoted»"), Encoding::Ucs2);
    }

    #[test]
    fn gsm7_fits_160_in_one_segment_and_153_per_part_beyond() {
        assert_eq!(segments(&"a".repeat(160), Encoding::Gsm7), 1);
        assert_eq!(segments(&"a".repeat(161), Encoding::Gsm7), 2);
        assert_eq!(segments(&"a".repeat(306), Encoding::Gsm7), 2);
        assert_eq!(segments(&"a".repeat(307), Encoding::Gsm7), 3);
        assert_eq!(segments("", Encoding::Gsm7), 0);
    }

    #[test]
    fn extension_characters_count_twice_and_are_never_split() {
        assert_eq!(segments(&"€".repeat(80), Encoding::Gsm7), 1);
        assert_eq!(segments(&"€".repeat(81), Encoding::Gsm7), 2);
        // 152 septets, then a two-septet character that must move to the second part.
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(10));
        assert_eq!(segments(&text, Encoding::Gsm7), 2);
    }

    #[test]
    fn ucs2_fits_70_in_one_segment_and_67_per_part_counting_surrogate_pairs() {
        assert_eq!(segments(&"ж".repeat(70), Encoding::Ucs2), 1);
        assert_eq!(segments(&"ж".repeat(71), Encoding::Ucs2), 2);
        assert_eq!(segments(&"🔥".repeat(35), Encoding::Ucs2), 1);
        assert_eq!(segments(&"🔥".repeat(36), Encoding::Ucs2), 2);
        // 66 units, then a pair that does not fit in the 67 left.
        let text = format!("{}🔥{}", "ж".repeat(66), "ж".repeat(5));
        assert_eq!(segments(&text, Encoding::Ucs2), 2);
    }

    #[test]
    fn max_length_cuts_on_a_character_boundary_and_keeps_the_unsubscribe_line() {
        let body = "Zażółć gęślą jaźń ".repeat(20);
        let sms = SmsText::compose(&body, &options(Some(70), true));
        assert_eq!(sms.text.chars().count(), 70, "{}", sms.text);
        assert!(
            sms.text.ends_with(&format!("…\n{UNSUBSCRIBE_LINE}")),
            "{}",
            sms.text
        );
        assert_eq!(sms.encoding, Encoding::Ucs2);
        assert_eq!(sms.segments, 1);
    }

    #[test]
    fn a_short_text_is_left_as_it_is() {
        let sms = SmsText::compose("  Your code is 4711.  ", &options(Some(160), false));
        assert_eq!(sms.text, "Your code is 4711.");
        assert_eq!((sms.encoding, sms.segments), (Encoding::Gsm7, 1));
        let sms = SmsText::compose(&"a".repeat(200), &options(Some(160), false));
        assert_eq!(sms.text.chars().count(), 160);
        assert!(sms.text.ends_with("..."));
    }
}
