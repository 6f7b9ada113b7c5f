//! Sealing provider credentials at rest: ChaCha20-Poly1305 with a random nonce per value,
//! the tenant, channel and provider name as associated data so that a sealed value copied to
//! another row does not open.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};

use notify_core::TenantId;

const NONCE_BYTES: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("NOTIFY_CREDENTIALS_KEY must be 32 bytes in base64 (`openssl rand -base64 32`)")]
    BadKey,
    #[error("NOTIFY_CREDENTIALS_KEY is not set, so provider credentials cannot be sealed or read")]
    NoKey,
    #[error("sealed credentials do not open with this key: the key changed or the row was altered")]
    Unreadable,
    #[error("no random numbers from the operating system: {0}")]
    Random(String),
}

/// The key that seals and opens credentials. Its `Debug` shows nothing of it.
// FIXME: there is one key and no key id in the sealed value, so the key cannot be rotated
// without setting every tenant's providers again.
#[derive(Clone)]
pub struct CredentialKey {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for CredentialKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialKey(***)")
    }
}

impl CredentialKey {
    pub fn from_base64(encoded: &str) -> Result<CredentialKey, CredentialError> {
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|_| CredentialError::BadKey)?;
        let cipher =
            ChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| CredentialError::BadKey)?;
        if bytes.len() != 32 {
            return Err(CredentialError::BadKey);
        }
        Ok(CredentialKey { cipher })
    }

    /// The key configured in `NOTIFY_CREDENTIALS_KEY`, if any.
    pub fn from_config(
        config: &notify_core::Config,
    ) -> Result<Option<CredentialKey>, CredentialError> {
        config
            .credentials_key
            .as_ref()
            .map(|k| CredentialKey::from_base64(k.expose()))
            .transpose()
    }

    pub fn seal(
        &self,
        tenant: TenantId,
        channel: &str,
        name: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CredentialError> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|e| CredentialError::Random(e.to_string()))?;
        let aad = associated_data(tenant, channel, name);
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| CredentialError::Unreadable)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn open(
        &self,
        tenant: TenantId,
        channel: &str,
        name: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, CredentialError> {
        if sealed.len() < NONCE_BYTES {
            return Err(CredentialError::Unreadable);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| CredentialError::Unreadable)?;
        let aad = associated_data(tenant, channel, name);
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| CredentialError::Unreadable)
    }
}

fn associated_data(tenant: TenantId, channel: &str, name: &str) -> Vec<u8> {
    format!("{tenant}\n{channel}\n{name}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CredentialKey {
        CredentialKey::from_base64(&STANDARD.encode([7u8; 32])).unwrap()
    }

    #[test]
    fn sealed_credentials_open_only_for_their_own_row() {
        let tenant = TenantId::new();
        let sealed = key().seal(tenant, "sms", "twilio", b"auth-token").unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"auth-token"));
        assert_eq!(
            key().open(tenant, "sms", "twilio", &sealed).unwrap(),
            b"auth-token"
        );
        assert!(key().open(tenant, "sms", "other", &sealed).is_err());
        assert!(
            key()
                .open(TenantId::new(), "sms", "twilio", &sealed)
                .is_err()
        );
        let other = CredentialKey::from_base64(&STANDARD.encode([8u8; 32])).unwrap();
        assert!(other.open(tenant, "sms", "twilio", &sealed).is_err());
    }

    #[test]
    fn sealing_twice_gives_different_bytes() {
        let tenant = TenantId::new();
        let a = key().seal(tenant, "sms", "t", b"x").unwrap();
        let b = key().seal(tenant, "sms", "t", b"x").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn a_key_that_is_not_32_bytes_of_base64_is_refused() {
        assert!(CredentialKey::from_base64("short").is_err());
        assert!(CredentialKey::from_base64(&STANDARD.encode([1u8; 16])).is_err());
        assert!(format!("{:?}", key()).contains("***"));
    }
}
