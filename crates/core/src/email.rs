//! An email address checked once at the edge, so later stages never see a malformed one.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An address of the form `local@domain`. Unicode is allowed on both sides (RFC 6531), as
/// modern relays accept it; whitespace, control characters, angle brackets and quoted local
/// parts are not.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{address}` is not a valid email address: {reason}")]
pub struct InvalidEmail {
    pub address: String,
    pub reason: &'static str,
}

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        let fail = |reason| InvalidEmail {
            address: raw.chars().take(100).collect(),
            reason,
        };
        if raw.len() > 254 {
            return Err(fail("it is longer than 254 bytes"));
        }
        let Some((local, domain)) = raw.rsplit_once('@') else {
            return Err(fail("it has no `@`"));
        };
        if local.is_empty() || local.len() > 64 {
            return Err(fail("the part before `@` must have 1 to 64 bytes"));
        }
        let forbidden =
            |c: char| c.is_whitespace() || c.is_control() || "<>()[],;:\\\"@".contains(c);
        if local.chars().any(forbidden) {
            return Err(fail(
                "the part before `@` has a character that is not allowed",
            ));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(fail("the part before `@` has a misplaced dot"));
        }
        if domain.is_empty() || !domain.contains('.') {
            return Err(fail("the domain must have at least two labels"));
        }
        for label in domain.split('.') {
            let ok_chars = label.chars().all(|c| c == '-' || c.is_alphanumeric());
            if label.is_empty() || label.len() > 63 || !ok_chars {
                return Err(fail("the domain is not a valid host name"));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(fail("a domain label starts or ends with `-`"));
            }
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = InvalidEmail;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<EmailAddress> for String {
    fn from(address: EmailAddress) -> Self {
        address.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_and_unicode_addresses_are_accepted() {
        for ok in [
            "maria.schmidt@example.com",
            "a+tag@sub.example.co.uk",
            "jörg@bücher.de",
            "用户@例子.中国",
        ] {
            assert!(EmailAddress::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn malformed_addresses_are_refused_with_a_reason() {
        for bad in [
            "",
            "no-at-sign",
            "@example.com",
            "maria@",
            "maria@localhost",
            "ma ria@example.com",
            "maria@exa mple.com",
            "maria..s@example.com",
            "<maria@example.com>",
            "maria@-example.com",
            "maria@example..com",
            "maria\n@example.com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(EmailAddress::parse(&long).is_err());
    }
}
