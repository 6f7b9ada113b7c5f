//! API keys to tenants, with a short-lived cache so a busy producer costs one lookup a minute,
//! not one per request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use sha2::{Digest, Sha256};

use notify_core::TenantId;
use notify_store::Store;

use crate::error::ApiError;

const CACHE_TTL: Duration = Duration::from_secs(60);
const CACHE_MAX: usize = 10_000;

pub struct Keys {
    store: Store,
    cache: Mutex<HashMap<[u8; 32], (TenantId, Instant)>>,
}

impl Keys {
    pub fn new(store: Store) -> Keys {
        Keys {
            store,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The tenant of a bearer key. A revoked key keeps working for at most a minute.
    pub async fn tenant(&self, key: &str) -> Result<TenantId, ApiError> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        if let Some((tenant, at)) = self.cache.lock().expect("cache lock").get(&digest)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(*tenant);
        }
        let tenant = self.store.tenant_for_key(key).await?.ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the API key is not valid",
            )
        })?;
        let mut cache = self.cache.lock().expect("cache lock");
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(digest, (tenant, Instant::now()));
        Ok(tenant)
    }

    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<TenantId, ApiError> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("send the API key as `Authorization: Bearer <key>`"))?;
        let value = value
            .to_str()
            .map_err(|_| unauthorized("the Authorization header is not text"))?;
        let key = bearer(value)
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <key>`"))?;
        self.tenant(key).await
    }
}

/// The key of a `Bearer <key>` value; the scheme is case-insensitive.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, key) = value.trim().split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_keys_are_read_whatever_the_case_of_the_scheme() {
        assert_eq!(bearer("Bearer nk_abc"), Some("nk_abc"));
        assert_eq!(bearer("bearer  nk_abc "), Some("nk_abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("nk_abc"), None);
    }
}
