//! Compact JSON Web Tokens signed with RS256 (Google's service-account sign-in) or ES256
//! (APNs provider tokens).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::pkcs8::DecodePrivateKey as _;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("the private key is not a PKCS#8 PEM key of the right kind")]
    BadKey,
}

/// Signs with an RSA key: `alg` RS256, RSASSA-PKCS1-v1_5 over SHA-256.
pub struct Rs256 {
    key: rsa::pkcs1v15::SigningKey<rsa::sha2::Sha256>,
}

impl Rs256 {
    pub fn from_pem(pem: &str) -> Result<Rs256, JwtError> {
        let key = rsa::PrivateKey::from_pkcs8_pem(pem).map_err(|_| JwtError::BadKey)?;
        Ok(Rs256 {
            key: rsa::pkcs1v15::SigningKey::new(key),
        })
    }

    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = signing_input(header, claims);
        let signature = self.key.sign(input.as_bytes()).to_bytes();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// Signs with a P-256 key: `alg` ES256, the signature as the 64 bytes of r and s.
pub struct Es256 {
    key: p256::ecdsa::SigningKey,
}

impl Es256 {
    pub fn from_pem(pem: &str) -> Result<Es256, JwtError> {
        let key = p256::ecdsa::SigningKey::from_pkcs8_pem(pem).map_err(|_| JwtError::BadKey)?;
        Ok(Es256 { key })
    }

    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = signing_input(header, claims);
        let signature: p256::ecdsa::Signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }
}

fn signing_input(header: &Value, claims: &Value) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("JSON serializes"));
    format!("{}.{}", part(header), part(claims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier as _;
    use serde_json::json;

    // Keys made for these tests only.
    const RSA_KEY: &str = include_str!("../testdata/rsa-test-key.pem");
    const EC_KEY: &str = include_str!("../testdata/ec-test-key.pem");

    fn parts(token: &str) -> (String, Vec<u8>) {
        let (input, signature) = token.rsplit_once('.').unwrap();
        (input.to_owned(), URL_SAFE_NO_PAD.decode(signature).unwrap())
    }

    #[test]
    fn an_rs256_token_verifies_with_the_public_key() {
        let signer = Rs256::from_pem(RSA_KEY).unwrap();
        let token = signer.sign(
            &json!({"alg": "RS256", "typ": "JWT"}),
            &json!({"iss": "svc@example.iam.gserviceaccount.com"}),
        );
        let (input, signature) = parts(&token);
        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(input.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], "RS256");

        let private = rsa::PrivateKey::from_pkcs8_pem(RSA_KEY).unwrap();
        let verifier =
            rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(private.to_public_key());
        let signature = rsa::pkcs1v15::Signature::try_from(signature.as_slice()).unwrap();
        verifier.verify(input.as_bytes(), &signature).unwrap();
        assert!(verifier.verify(b"tampered", &signature).is_err());
    }

    #[test]
    fn an_es256_token_is_64_bytes_of_signature_that_verify() {
        let signer = Es256::from_pem(EC_KEY).unwrap();
        let token = signer.sign(
            &json!({"alg": "ES256", "kid": "ABC123DEFG"}),
            &json!({"iss": "TEAM123456", "iat": 1_700_000_000}),
        );
        let (input, signature) = parts(&token);
        assert_eq!(signature.len(), 64);
        let key = p256::ecdsa::SigningKey::from_pkcs8_pem(EC_KEY).unwrap();
        let signature = p256::ecdsa::Signature::from_slice(&signature).unwrap();
        key.verifying_key()
            .verify(input.as_bytes(), &signature)
            .unwrap();
    }

    #[test]
    fn a_key_of_the_wrong_kind_is_refused() {
        assert!(Rs256::from_pem(EC_KEY).is_err());
        assert!(Es256::from_pem(RSA_KEY).is_err());
        assert!(Es256::from_pem("not a key").is_err());
    }
}
