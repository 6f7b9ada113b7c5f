//! An independent verifier of Standard Webhooks signatures (<https://www.standardwebhooks.com>),
//! for checking what the platform signs.
//!
//! The secret is `whsec_` followed by the base64 key. The signed content is
//! `{webhook-id}.{webhook-timestamp}.{body}`, signed with HMAC-SHA256. The `webhook-signature`
//! header holds space-separated `v1,<base64 signature>` entries, any one of which may match.
//! The timestamp, in seconds since the Unix epoch, must lie within five minutes of now.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::webhook::Request;

/// How far the signed timestamp may lie from now, in either direction.
pub const TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    /// The request lacks the named header.
    MissingHeader(&'static str),
    /// The secret's key is not base64, or is empty.
    BadSecret,
    /// The timestamp is not a whole number of seconds.
    BadTimestamp,
    /// The timestamp lies further than [`TOLERANCE`] from now, in the past or the future.
    Expired,
    /// No `v1` signature in the header matches the content.
    NoMatch,
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureError::MissingHeader(name) => write!(f, "the {name} header is missing"),
            SignatureError::BadSecret => write!(f, "the secret is not whsec_ and a base64 key"),
            SignatureError::BadTimestamp => {
                write!(
                    f,
                    "the timestamp is not a number of seconds since the epoch"
                )
            }
            SignatureError::Expired => write!(
                f,
                "the timestamp is more than {} seconds away from now",
                TOLERANCE.as_secs()
            ),
            SignatureError::NoMatch => write!(f, "no signature matches the content"),
        }
    }
}

impl std::error::Error for SignatureError {}

/// Verifies a signature against the current time.
pub fn verify(
    secret: &str,
    id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
) -> Result<(), SignatureError> {
    verify_at(secret, id, timestamp, signature_header, body, Utc::now())
}

/// Verifies the signature of a received request from its `webhook-id`, `webhook-timestamp`
/// and `webhook-signature` headers.
pub fn verify_request(secret: &str, request: &Request) -> Result<(), SignatureError> {
    let header = |name: &'static str| {
        request
            .header(name)
            .ok_or(SignatureError::MissingHeader(name))
    };
    verify(
        secret,
        header("webhook-id")?,
        header("webhook-timestamp")?,
        header("webhook-signature")?,
        &request.body,
    )
}

/// Verifies a signature as if the time were `now`.
pub fn verify_at(
    secret: &str,
    id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let key = secret_key(secret)?;

    let signed_at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let distance = now.timestamp().abs_diff(signed_at);
    if distance > TOLERANCE.as_secs() {
        return Err(SignatureError::Expired);
    }

    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| SignatureError::BadSecret)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let matches = signature_header
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|signature| STANDARD.decode(signature).ok())
        .any(|signature| mac.clone().verify_slice(&signature).is_ok());
    if matches {
        Ok(())
    } else {
        Err(SignatureError::NoMatch)
    }
}

/// The key inside a secret. The `whsec_` prefix is optional, as in the reference libraries.
fn secret_key(secret: &str) -> Result<Vec<u8>, SignatureError> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    match STANDARD.decode(encoded) {
        Ok(key) if !key.is_empty() => Ok(key),
        _ => Err(SignatureError::BadSecret),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const BODY: &[u8] = br#"{"type":"order.shipped","data":{"order":"A-17"}}"#;

    /// Signs the way the specification describes, computed here directly with HMAC-SHA256.
    fn sign(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
        let key = STANDARD
            .decode(secret.trim_start_matches("whsec_"))
            .unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    fn now() -> String {
        Utc::now().timestamp().to_string()
    }

    fn signed_request(timestamp: &str, signature: &str, body: &[u8]) -> Request {
        Request {
            method: "POST".to_owned(),
            path: "/hook".to_owned(),
            headers: vec![
                ("webhook-id".to_owned(), ID.to_owned()),
                ("webhook-timestamp".to_owned(), timestamp.to_owned()),
                ("webhook-signature".to_owned(), signature.to_owned()),
            ],
            body: Bytes::copy_from_slice(body),
        }
    }

    #[test]
    fn a_correctly_signed_request_passes() {
        let timestamp = now();
        let request = signed_request(&timestamp, &sign(SECRET, ID, &timestamp, BODY), BODY);

        assert_eq!(verify_request(SECRET, &request), Ok(()));
    }

    #[test]
    fn the_example_from_the_specification_passes_at_its_time() {
        let signed_at = DateTime::from_timestamp(1_614_265_330, 0).unwrap();

        let verified = verify_at(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            br#"{"test": 2432232314}"#,
            signed_at,
        );

        assert_eq!(verified, Ok(()));
    }

    #[test]
    fn any_one_matching_signature_among_several_passes() {
        let timestamp = now();
        let header = format!(
            "v1a,abc v1,bm90IHRoZSBzaWduYXR1cmU= {} v2,xyz",
            sign(SECRET, ID, &timestamp, BODY)
        );

        assert_eq!(verify(SECRET, ID, &timestamp, &header, BODY), Ok(()));
    }

    #[test]
    fn a_tampered_body_fails() {
        let timestamp = now();
        let signature = sign(SECRET, ID, &timestamp, BODY);
        let request = signed_request(&timestamp, &signature, br#"{"type":"order.cancelled"}"#);

        assert_eq!(
            verify_request(SECRET, &request),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn a_wrong_secret_fails() {
        let timestamp = now();
        let signature = sign(SECRET, ID, &timestamp, BODY);

        let verified = verify(
            "whsec_c2VjcmV0IG9mIGFub3RoZXIgdGVuYW50",
            ID,
            &timestamp,
            &signature,
            BODY,
        );

        assert_eq!(verified, Err(SignatureError::NoMatch));
    }

    #[test]
    fn an_old_timestamp_fails_even_when_correctly_signed() {
        let timestamp = (Utc::now().timestamp() - 6 * 60).to_string();
        let signature = sign(SECRET, ID, &timestamp, BODY);

        assert_eq!(
            verify(SECRET, ID, &timestamp, &signature, BODY),
            Err(SignatureError::Expired)
        );
    }

    #[test]
    fn a_timestamp_far_in_the_future_fails() {
        let timestamp = (Utc::now().timestamp() + 6 * 60).to_string();
        let signature = sign(SECRET, ID, &timestamp, BODY);

        assert_eq!(
            verify(SECRET, ID, &timestamp, &signature, BODY),
            Err(SignatureError::Expired)
        );
    }

    #[test]
    fn a_timestamp_that_is_not_a_number_fails() {
        assert_eq!(
            verify(SECRET, ID, "yesterday", "v1,AAAA", BODY),
            Err(SignatureError::BadTimestamp)
        );
    }

    #[test]
    fn a_secret_that_is_not_base64_fails() {
        assert_eq!(
            verify("whsec_not base64!", ID, &now(), "v1,AAAA", BODY),
            Err(SignatureError::BadSecret)
        );
    }

    #[test]
    fn a_request_without_a_signature_header_names_it() {
        let mut request = signed_request(&now(), "v1,AAAA", BODY);
        request
            .headers
            .retain(|(name, _)| name != "webhook-signature");

        assert_eq!(
            verify_request(SECRET, &request),
            Err(SignatureError::MissingHeader("webhook-signature"))
        );
    }
}
