//! Who may call a route, as extractors: a handler that takes [`StorefrontKey`] or [`AdminKey`]
//! runs only for a request with a valid key of that role (`Authorization: Bearer <key>`)
//! within its rate limit; otherwise the extractor answers 401, 403 or 429 and the handler
//! never runs. Verified keys are cached for [`KEY_CACHE_SECONDS`].
//!
//! A handler that takes [`BrowserOrStorefront`] also admits a publishable key (safe in a web
//! page), sent as the bearer token or as `?key=` (a beacon cannot set headers), from one of
//! the key's allowed origins only. Every other route refuses publishable keys (403).
//! [`cors`] answers preflight requests and lets the allowed pages read the answers.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use marquee_store::{ApiKeyRole, KeyAccess};
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
        check(state, parts, ApiKeyRole::Storefront).await?;
        Ok(Self)
    }
}

impl FromRequestParts<AppState> for AdminKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        check(state, parts, ApiKeyRole::Admin).await?;
        Ok(Self)
    }
}

/// Who called a route that both a storefront's back end and a web page may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrowserOrStorefront {
    /// A storefront key (the shop's back end).
    Storefront,
    /// A publishable key from one of its allowed origins (a web page).
    Publishable,
}

impl FromRequestParts<AppState> for BrowserOrStorefront {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = match bearer(&parts.headers)? {
            Some(key) => key.to_owned(),
            None => query_key(parts.uri.query()).ok_or_else(missing_key)?,
        };
        let access = known(state, &key).await?;
        let caller = match access.role {
            ApiKeyRole::Storefront => Self::Storefront,
            ApiKeyRole::Publishable => {
                let origin = request_origin(&parts.headers).ok_or_else(|| {
                    ApiError::new(
                        StatusCode::FORBIDDEN,
                        "origin_not_allowed",
                        "a publishable key works from a web page only: the request names no \
                         Origin (or Referer)",
                    )
                })?;
                if !origin_allowed(&access.origins, &origin, &parts.headers) {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "origin_not_allowed",
                        format!(
                            "this publishable key may not be used from {origin}: add the origin \
                             to the key (it allows {})",
                            access.origins.join(", ")
                        ),
                    ));
                }
                Self::Publishable
            }
            other => return Err(wrong_key(other, ApiKeyRole::Storefront)),
        };
        within_limit(state, &key)?;
        Ok(caller)
    }
}

fn missing_key() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "missing_key",
        "send the API key as `Authorization: Bearer <key>`",
    )
}

fn wrong_key(have: ApiKeyRole, route: ApiKeyRole) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "wrong_key",
        format!(
            "a {} key cannot call {} routes",
            have.as_str(),
            route.as_str()
        ),
    )
}

/// The bearer token, if an Authorization header is present (401 when it is malformed).
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|k| Some(k.trim()))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_key",
                "the Authorization header must be `Bearer <key>`",
            )
        })
}

/// A publishable key given as `key=` in the query (only publishable keys are looked for
/// there: secret keys do not belong in URLs).
pub(crate) fn query_key(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == "key")
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| v.starts_with("mq_pk_"))
}

/// What the key may do, or 401 when it is unknown or revoked.
async fn known(state: &AppState, key: &str) -> Result<Arc<KeyAccess>, ApiError> {
    match state.access_of(key).await {
        Ok(Some(access)) => Ok(access),
        Ok(None) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_key",
            "the API key is unknown or revoked",
        )),
        Err(e) => Err(e.into()),
    }
}

fn within_limit(state: &AppState, key: &str) -> Result<(), ApiError> {
    state.limiter.check(key).map_err(|wait| ApiError {
        retry_after: Some(wait),
        ..ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "this key sent more than {} requests in a second; retry after {wait} s",
                state.limiter.limit
            ),
        )
    })
}

/// Checks the bearer key against the store for `role` and counts it against its rate limit.
/// A publishable key in the query (`?key=`) is refused as the wrong key, not as a missing one.
async fn check(state: &AppState, parts: &Parts, role: ApiKeyRole) -> Result<(), ApiError> {
    let Some(key) = bearer(&parts.headers)? else {
        return Err(match query_key(parts.uri.query()) {
            Some(_) => wrong_key(ApiKeyRole::Publishable, role),
            None => missing_key(),
        });
    };
    let access = known(state, key).await?;
    if access.role != role {
        return Err(wrong_key(access.role, role));
    }
    within_limit(state, key)
}

/// The page origin of a browser request: its `Origin` header, else the origin of its
/// `Referer` (browsers leave Origin out of same-origin GETs).
pub(crate) fn request_origin(headers: &HeaderMap) -> Option<String> {
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
        && origin != "null"
    {
        return Some(origin.trim_end_matches('/').to_ascii_lowercase());
    }
    let referer = headers.get(header::REFERER)?.to_str().ok()?;
    let (scheme, rest) = referer.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then(|| format!("{scheme}://{host}").to_ascii_lowercase())
}

/// Whether `origin` is one of `allowed`; `self` allows the server's own origin (the Host the
/// browser reached).
pub(crate) fn origin_allowed(allowed: &[String], origin: &str, headers: &HeaderMap) -> bool {
    allowed.iter().any(|a| {
        if a == "self" {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
            !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
        } else {
            a == origin
        }
    })
}

/// CORS for the routes a web page may call (`/v1/events`, `/v1/recommendations`): answers
/// preflight requests (`OPTIONS`) for allowed origins, and lets the page read answers (the
/// request itself is checked by [`BrowserOrStorefront`]).
pub(crate) async fn cors(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    if path != "/v1/events" && path != "/v1/recommendations" {
        return next.run(request).await;
    }
    let Some(origin) = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return next.run(request).await;
    };
    if request.method() == Method::OPTIONS {
        let headers = request.headers().clone();
        let key = query_key(request.uri().query());
        drop(request);
        return preflight(&state, &headers, key, &origin).await;
    }
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

/// A preflight: allowed when the key in `?key=` (or, without one, any active publishable
/// key) allows the origin.
async fn preflight(
    state: &AppState,
    headers: &HeaderMap,
    key: Option<String>,
    origin: &str,
) -> Response {
    let normalised = origin.trim_end_matches('/').to_ascii_lowercase();
    let allowed = match key {
        Some(key) => match state.access_of(&key).await {
            Ok(Some(a)) => {
                a.role == ApiKeyRole::Publishable
                    && origin_allowed(&a.origins, &normalised, headers)
            }
            Ok(None) => false,
            Err(e) => return ApiError::from(e).into_response(),
        },
        None => match state.store.list_api_keys().await {
            Ok(keys) => keys.iter().any(|k| {
                k.role == ApiKeyRole::Publishable
                    && k.revoked_at.is_none()
                    && origin_allowed(&k.origins, &normalised, headers)
            }),
            Err(e) => return ApiError::from(e).into_response(),
        },
    };
    if !allowed {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            format!("no publishable key allows {origin}: add it to a key's origins"),
        )
        .into_response();
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    response
}

impl AppState {
    /// Drops every cached key verification (after a key is revoked).
    pub(crate) fn forget_keys(&self) {
        if let Ok(mut keys) = self.keys.write() {
            keys.clear();
        }
    }

    /// What a key may do: from the cache if verified within [`KEY_CACHE_SECONDS`], else from
    /// the store (unknown keys are not cached, so a new key works at once).
    pub(crate) async fn access_of(
        &self,
        key: &str,
    ) -> Result<Option<Arc<KeyAccess>>, marquee_store::Error> {
        let fresh = Duration::from_secs(KEY_CACHE_SECONDS);
        if let Ok(keys) = self.keys.read()
            && let Some((access, at)) = keys.get(key)
            && at.elapsed() < fresh
        {
            return Ok(Some(access.clone()));
        }
        let access = self.store.key_access(key).await?.map(Arc::new);
        if let (Some(a), Ok(mut keys)) = (&access, self.keys.write()) {
            if keys.len() > 10_000 {
                keys.retain(|_, (_, at)| at.elapsed() < fresh);
            }
            keys.insert(key.to_owned(), (a.clone(), Instant::now()));
        }
        Ok(access)
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
