//! Who may call a route, as extractors: a handler that takes [`StorefrontKey`] or [`AdminKey`]
//! runs only for a request with a valid key of that role (`Authorization: Bearer <key>`)
//! within its rate limit; otherwise the extractor answers 401, 403 or 429 and the handler
//! never runs. Verified keys are cached for [`KEY_CACHE_SECONDS`].

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use marquee_store::ApiKeyRole;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a verified key is trusted without asking the store again (a revoked key stops
/// working within this time).
pub const KEY_CACHE_SECONDS: u64 = 30;

/// The request carried a valid storefront key.
#[derive(Debug, Clone, Copy)]
pub struct StorefrontKey;

/// The request carried a valid admin key.
#[derive(Debug, Clone, Copy)]
pub struct AdminKey;

impl FromRequestParts<AppState> for StorefrontKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        check(state, &parts.headers, ApiKeyRole::Storefront).await?;
        Ok(Self)
    }
}

impl FromRequestParts<AppState> for AdminKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        check(state, &parts.headers, ApiKeyRole::Admin).await?;
        Ok(Self)
    }
}

/// Checks the bearer key against the store for `role` and counts it against its rate limit.
async fn check(state: &AppState, headers: &HeaderMap, role: ApiKeyRole) -> Result<(), ApiError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_key",
            "send the API key as `Authorization: Bearer <key>`",
        ));
    };
    let key = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_key",
                "the Authorization header must be `Bearer <key>`",
            )
        })?;
    let key = key.trim();
    match state.role_of(key).await {
        Ok(Some(r)) if r == role => state.limiter.check(key).map_err(|wait| ApiError {
            retry_after: Some(wait),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "this key sent more than {} requests in a second; retry after {wait} s",
                    state.limiter.limit
                ),
            )
        }),
        Ok(Some(r)) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_key",
            format!("a {} key cannot call {} routes", r.as_str(), role.as_str()),
        )),
        Ok(None) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_key",
            "the API key is unknown or revoked",
        )),
        Err(e) => Err(e.into()),
    }
}

impl AppState {
    /// Drops every cached key verification (after a key is revoked).
    pub(crate) fn forget_keys(&self) {
        if let Ok(mut keys) = self.keys.write() {
            keys.clear();
        }
    }

    /// The role of a key: from the cache if verified within [`KEY_CACHE_SECONDS`], else from
    /// the store (unknown keys are not cached, so a new key works at once).
    pub(crate) async fn role_of(
        &self,
        key: &str,
    ) -> Result<Option<ApiKeyRole>, marquee_store::Error> {
        let fresh = Duration::from_secs(KEY_CACHE_SECONDS);
        if let Ok(keys) = self.keys.read()
            && let Some((role, at)) = keys.get(key)
            && at.elapsed() < fresh
        {
            return Ok(Some(*role));
        }
        let role = self.store.verify_api_key(key).await?;
        if let (Some(r), Ok(mut keys)) = (role, self.keys.write()) {
            if keys.len() > 10_000 {
                keys.retain(|_, (_, at)| at.elapsed() < fresh);
            }
            keys.insert(key.to_owned(), (r, Instant::now()));
        }
        Ok(role)
    }
}

/// Fixed one-second windows of requests per key.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    pub(crate) limit: u32,
    pub(crate) windows: std::sync::RwLock<HashMap<String, Arc<Window>>>,
}

#[derive(Debug, Default)]
pub(crate) struct Window {
    second: std::sync::atomic::AtomicU64,
    count: std::sync::atomic::AtomicU32,
}

impl RateLimiter {
    /// Counts a request of `key`; `Err(seconds to wait)` when over the limit.
    fn check(&self, key: &str) -> Result<(), u64> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.limit == 0 {
            return Ok(());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let known = self.windows.read().ok().and_then(|w| w.get(key).cloned());
        let window = match known {
            Some(w) => w,
            None => {
                let Ok(mut all) = self.windows.write() else {
                    return Ok(());
                };
                if all.len() > 10_000 {
                    all.retain(|_, w| w.second.load(Relaxed) + 1 >= now);
                }
                all.entry(key.to_owned()).or_default().clone()
            }
        };
        let second = window.second.load(Relaxed);
        if second != now
            && window
                .second
                .compare_exchange(second, now, Relaxed, Relaxed)
                .is_ok()
        {
            window.count.store(0, Relaxed);
        }
        if window.count.fetch_add(1, Relaxed) < self.limit {
            Ok(())
        } else {
            Err(1)
        }
    }
}
