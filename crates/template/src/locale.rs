//! Per-locale conventions for numbers and dates: separators, date patterns and the names of
//! months and weekdays.

/// How one locale writes numbers and dates.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Locale {
    /// Lowercase tag with `-` as separator, e.g. `de-ch`.
    pub tag: &'static str,
    /// Put between groups of three integer digits.
    pub group: &'static str,
    /// Put between the integer and the fractional digits.
    pub decimal: &'static str,
    pub patterns: &'static DatePatterns,
    pub names: &'static DateNames,
}

/// strftime patterns for the named `format=` styles of `format_datetime`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DatePatterns {
    pub short: &'static str,
    pub medium: &'static str,
    pub long: &'static str,
    pub date: &'static str,
    pub time: &'static str,
}

/// Month and weekday names, months from January and weekdays from Monday.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DateNames {
    pub months: [&'static str; 12],
    pub months_short: [&'static str; 12],
    pub weekdays: [&'static str; 7],
    pub weekdays_short: [&'static str; 7],
}

/// The style a `format=` keyword names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateStyle {
    Short,
    Medium,
    Long,
    Date,
    Time,
}

impl DateStyle {
    pub fn from_keyword(keyword: &str) -> Option<Self> {
        match keyword.trim().to_ascii_lowercase().as_str() {
            "short" => Some(Self::Short),
            "medium" => Some(Self::Medium),
            "long" => Some(Self::Long),
            "date" => Some(Self::Date),
            "time" => Some(Self::Time),
            _ => None,
        }
    }
}

impl DatePatterns {
    pub fn pattern(&self, style: DateStyle) -> &'static str {
        match style {
            DateStyle::Short => self.short,
            DateStyle::Medium => self.medium,
            DateStyle::Long => self.long,
            DateStyle::Date => self.date,
            DateStyle::Time => self.time,
        }
    }
}

impl Locale {
    /// Finds the locale for a tag such as `de`, `de-CH` or `pt_BR`: the exact tag if known,
    /// else its language part, else English.
    pub fn resolve(tag: &str) -> &'static Locale {
        let tag = tag.trim().replace('_', "-").to_ascii_lowercase();
        let language = tag.split('-').next().unwrap_or_default();

        LOCALES
            .iter()
            .find(|locale| locale.tag == tag)
            .or_else(|| LOCALES.iter().find(|locale| locale.tag == language))
            .unwrap_or(&LOCALES[0])
    }
}

const NARROW_NO_BREAK_SPACE: &str = "\u{202F}";
const RIGHT_SINGLE_QUOTE: &str = "\u{2019}";

/// English comes first: it is the fallback.
static LOCALES: [Locale; 10] = [
    Locale {
        tag: "en",
        group: ",",
        decimal: ".",
        patterns: &EN_PATTERNS,
        names: &EN_NAMES,
    },
    Locale {
        tag: "en-gb",
        group: ",",
        decimal: ".",
        patterns: &EN_GB_PATTERNS,
        names: &EN_NAMES,
    },
    Locale {
        tag: "de",
        group: ".",
        decimal: ",",
        patterns: &DE_PATTERNS,
        names: &DE_NAMES,
    },
    Locale {
        tag: "de-ch",
        group: RIGHT_SINGLE_QUOTE,
        decimal: ".",
        patterns: &DE_PATTERNS,
        names: &DE_NAMES,
    },
    Locale {
        tag: "fr",
        group: NARROW_NO_BREAK_SPACE,
        decimal: ",",
        patterns: &FR_PATTERNS,
        names: &FR_NAMES,
    },
    Locale {
        tag: "es",
        group: ".",
        decimal: ",",
        patterns: &ES_PATTERNS,
        names: &ES_NAMES,
    },
    Locale {
        tag: "it",
        group: ".",
        decimal: ",",
        patterns: &IT_PATTERNS,
        names: &IT_NAMES,
    },
    Locale {
        tag: "nl",
        group: ".",
        decimal: ",",
        patterns: &NL_PATTERNS,
        names: &NL_NAMES,
    },
    Locale {
        tag: "pt",
        group: ".",
        decimal: ",",
        patterns: &PT_PATTERNS,
        names: &PT_NAMES,
    },
    Locale {
        tag: "pt-br",
        group: ".",
        decimal: ",",
        patterns: &PT_PATTERNS,
        names: &PT_NAMES,
    },
];

static EN_PATTERNS: DatePatterns = DatePatterns {
    short: "%-m/%-d/%y, %-I:%M %p",
    medium: "%b %-d, %Y, %-I:%M %p",
    long: "%B %-d, %Y at %-I:%M %p",
    date: "%B %-d, %Y",
    time: "%-I:%M %p",
};

static EN_GB_PATTERNS: DatePatterns = DatePatterns {
    short: "%d/%m/%Y, %H:%M",
    medium: "%-d %b %Y, %H:%M",
    long: "%-d %B %Y at %H:%M",
    date: "%-d %B %Y",
    time: "%H:%M",
};

static DE_PATTERNS: DatePatterns = DatePatterns {
    short: "%d.%m.%y, %H:%M",
    medium: "%d.%m.%Y, %H:%M",
    long: "%-d. %B %Y, %H:%M",
    date: "%-d. %B %Y",
    time: "%H:%M",
};

static FR_PATTERNS: DatePatterns = DatePatterns {
    short: "%d/%m/%Y %H:%M",
    medium: "%-d %b %Y, %H:%M",
    long: "%-d %B %Y à %H:%M",
    date: "%-d %B %Y",
    time: "%H:%M",
};

static ES_PATTERNS: DatePatterns = DatePatterns {
    short: "%-d/%-m/%y, %H:%M",
    medium: "%-d %b %Y, %H:%M",
    long: "%-d de %B de %Y, %H:%M",
    date: "%-d de %B de %Y",
    time: "%H:%M",
};

static IT_PATTERNS: DatePatterns = DatePatterns {
    short: "%d/%m/%y, %H:%M",
    medium: "%-d %b %Y, %H:%M",
    long: "%-d %B %Y alle ore %H:%M",
    date: "%-d %B %Y",
    time: "%H:%M",
};

static NL_PATTERNS: DatePatterns = DatePatterns {
    short: "%d-%m-%Y %H:%M",
    medium: "%-d %b %Y %H:%M",
    long: "%-d %B %Y om %H:%M",
    date: "%-d %B %Y",
    time: "%H:%M",
};

static PT_PATTERNS: DatePatterns = DatePatterns {
    short: "%d/%m/%Y, %H:%M",
    medium: "%-d de %b de %Y, %H:%M",
    long: "%-d de %B de %Y, %H:%M",
    date: "%-d de %B de %Y",
    time: "%H:%M",
};

static EN_NAMES: DateNames = DateNames {
    months: [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
    months_short: [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ],
    weekdays: [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ],
    weekdays_short: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
};

static DE_NAMES: DateNames = DateNames {
    months: [
        "Januar",
        "Februar",
        "März",
        "April",
        "Mai",
        "Juni",
        "Juli",
        "August",
        "September",
        "Oktober",
        "November",
        "Dezember",
    ],
    months_short: [
        "Jan.", "Feb.", "März", "Apr.", "Mai", "Juni", "Juli", "Aug.", "Sept.", "Okt.", "Nov.",
        "Dez.",
    ],
    weekdays: [
        "Montag",
        "Dienstag",
        "Mittwoch",
        "Donnerstag",
        "Freitag",
        "Samstag",
        "Sonntag",
    ],
    weekdays_short: ["Mo.", "Di.", "Mi.", "Do.", "Fr.", "Sa.", "So."],
};

static FR_NAMES: DateNames = DateNames {
    months: [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ],
    months_short: [
        "janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.",
        "déc.",
    ],
    weekdays: [
        "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
    ],
    weekdays_short: ["lun.", "mar.", "mer.", "jeu.", "ven.", "sam.", "dim."],
};

static ES_NAMES: DateNames = DateNames {
    months: [
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ],
    months_short: [
        "ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov", "dic",
    ],
    weekdays: [
        "lunes",
        "martes",
        "miércoles",
        "jueves",
        "viernes",
        "sábado",
        "domingo",
    ],
    weekdays_short: ["lun", "mar", "mié", "jue", "vie", "sáb", "dom"],
};

static IT_NAMES: DateNames = DateNames {
    months: [
        "gennaio",
        "febbraio",
        "marzo",
        "aprile",
        "maggio",
        "giugno",
        "luglio",
        "agosto",
        "settembre",
        "ottobre",
        "novembre",
        "dicembre",
    ],
    months_short: [
        "gen", "feb", "mar", "apr", "mag", "giu", "lug", "ago", "set", "ott", "nov", "dic",
    ],
    weekdays: [
        "lunedì",
        "martedì",
        "mercoledì",
        "giovedì",
        "venerdì",
        "sabato",
        "domenica",
    ],
    weekdays_short: ["lun", "mar", "mer", "gio", "ven", "sab", "dom"],
};

static NL_NAMES: DateNames = DateNames {
    months: [
        "januari",
        "februari",
        "maart",
        "april",
        "mei",
        "juni",
        "juli",
        "augustus",
        "september",
        "oktober",
        "november",
        "december",
    ],
    months_short: [
        "jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec",
    ],
    weekdays: [
        "maandag",
        "dinsdag",
        "woensdag",
        "donderdag",
        "vrijdag",
        "zaterdag",
        "zondag",
    ],
    weekdays_short: ["ma", "di", "wo", "do", "vr", "za", "zo"],
};

static PT_NAMES: DateNames = DateNames {
    months: [
        "janeiro",
        "fevereiro",
        "março",
        "abril",
        "maio",
        "junho",
        "julho",
        "agosto",
        "setembro",
        "outubro",
        "novembro",
        "dezembro",
    ],
    months_short: [
        "jan.", "fev.", "mar.", "abr.", "mai.", "jun.", "jul.", "ago.", "set.", "out.", "nov.",
        "dez.",
    ],
    weekdays: [
        "segunda-feira",
        "terça-feira",
        "quarta-feira",
        "quinta-feira",
        "sexta-feira",
        "sábado",
        "domingo",
    ],
    weekdays_short: ["seg.", "ter.", "qua.", "qui.", "sex.", "sáb.", "dom."],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_tag_resolves_to_itself_whatever_its_case_or_separator() {
        assert_eq!(Locale::resolve("de-CH").tag, "de-ch");
        assert_eq!(Locale::resolve("pt_BR").tag, "pt-br");
        assert_eq!(Locale::resolve(" FR ").tag, "fr");
    }

    #[test]
    fn an_unknown_region_falls_back_to_its_language() {
        assert_eq!(Locale::resolve("de-AT").tag, "de");
        assert_eq!(Locale::resolve("en-IN").tag, "en");
        assert_eq!(Locale::resolve("fr-CA").tag, "fr");
    }

    #[test]
    fn an_unknown_language_falls_back_to_english() {
        assert_eq!(Locale::resolve("xx-YY").tag, "en");
        assert_eq!(Locale::resolve("").tag, "en");
    }

    #[test]
    fn style_keywords_are_read_without_regard_to_case() {
        assert_eq!(DateStyle::from_keyword("Long"), Some(DateStyle::Long));
        assert_eq!(DateStyle::from_keyword("%Y"), None);
    }
}
