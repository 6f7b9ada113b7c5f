//! Reading and verifying the compact JWTs the push worker signs: RS256 for Google's OAuth2
//! sign-in, ES256 for APNs provider tokens. Independent of the signing code under test.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::pkcs8::DecodePrivateKey as _;
use serde_json::Value;

/// A decoded token whose signature verified.
#[derive(Debug, Clone)]
pub struct Verified {
    pub header: Value,
    pub claims: Value,
}

fn split(token: &str) -> Result<(&str, Value, Value, Vec<u8>), String> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not three dot-separated parts".into());
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|e| format!("bad base64url: {e}"))
    };
    let header: Value = serde_json::from_slice(&decode(h)?).map_err(|e| format!("header: {e}"))?;
    let claims: Value = serde_json::from_slice(&decode(c)?).map_err(|e| format!("claims: {e}"))?;
    let input_len = h.len() + 1 + c.len();
    Ok((&token[..input_len], header, claims, decode(s)?))
}

/// Verifies an RS256 token with the public half of `private_pem`.
pub fn verify_rs256(token: &str, private_pem: &str) -> Result<Verified, String> {
    use rsa::signature::Verifier as _;
    let (input, header, claims, signature) = split(token)?;
    if header["alg"] != "RS256" {
        return Err(format!("alg is {}, not RS256", header["alg"]));
    }
    let private = rsa::PrivateKey::from_pkcs8_pem(private_pem).map_err(|e| e.to_string())?;
    let verifier = rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(private.to_public_key());
    let signature =
        rsa::pkcs1v15::Signature::try_from(signature.as_slice()).map_err(|e| e.to_string())?;
    verifier
        .verify(input.as_bytes(), &signature)
        .map_err(|_| "the signature does not verify".to_owned())?;
    Ok(Verified { header, claims })
}

/// Verifies an ES256 token (64-byte r‖s signature) with the public half of `private_pem`.
pub fn verify_es256(token: &str, private_pem: &str) -> Result<Verified, String> {
    use p256::ecdsa::signature::Verifier as _;
    let (input, header, claims, signature) = split(token)?;
    if header["alg"] != "ES256" {
        return Err(format!("alg is {}, not ES256", header["alg"]));
    }
    let key = p256::ecdsa::SigningKey::from_pkcs8_pem(private_pem).map_err(|e| e.to_string())?;
    let signature = p256::ecdsa::Signature::from_slice(&signature)
        .map_err(|_| "the signature is not 64 bytes of r and s".to_owned())?;
    key.verifying_key()
        .verify(input.as_bytes(), &signature)
        .map_err(|_| "the signature does not verify".to_owned())?;
    Ok(Verified { header, claims })
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
