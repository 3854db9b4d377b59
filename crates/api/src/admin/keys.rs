//! API keys (`/v1/admin/keys*`: created keys are shown once and stored hashed) and the audit
//! log: the middleware that records every changing admin request, and `GET /v1/admin/audit`.

use crate::auth::AdminKey;
use crate::catalog::check_limit;
use crate::error::ApiError;
use crate::orders::LimitQuery;
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use marquee_store::ApiKeyRole;
use serde::Deserialize;

/// `GET /v1/admin/keys`: every key's prefix, role, label and dates (never the key).
pub(crate) async fn list_keys(
    _key: AdminKey,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let keys = state.store.list_api_keys().await?;
    Ok(Json(serde_json::json!({"keys": keys})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyIn {
    role: String,
    #[serde(default)]
    label: String,
    /// Where a publishable key may be used from: `https://shop.example` or `self`.
    origins: Option<Vec<String>>,
}

/// `POST /v1/admin/keys` `{role, label, origins}`: a new key, shown once in the answer (`201`).
/// A publishable key (`"role": "publishable"`) needs its allowed origins; it is stored in
/// clear, as it is meant for web pages, and listings show it again.
pub(crate) async fn create_key(
    _key: AdminKey,
    State(state): State<AppState>,
    body: Result<Json<KeyIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let role = ApiKeyRole::parse(&body.role).map_err(|_| {
        ApiError::bad_request(
            "invalid_role",
            format!(
                "unknown role {:?}: use storefront, admin or publishable",
                body.role
            ),
        )
    })?;
    if body.label.len() > 200 {
        return Err(ApiError::bad_request(
            "invalid_label",
            "label is longer than 200 bytes",
        ));
    }
    let (key, origins) = match (role, body.origins) {
        (ApiKeyRole::Publishable, Some(origins)) => {
            let origins = marquee_store::check_origins(&origins)
                .map_err(|m| ApiError::bad_request("invalid_origins", m))?;
            let key = state
                .store
                .create_publishable_key(&body.label, &origins)
                .await?;
            (key, origins)
        }
        (ApiKeyRole::Publishable, None) => {
            return Err(ApiError::bad_request(
                "invalid_origins",
                "a publishable key needs `origins`: the pages that may use it, e.g. \
                 [\"https://shop.example\"] (or \"self\" for this server's own pages)",
            ));
        }
        (_, Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_origins",
                "only publishable keys have origins (secret keys belong on servers)",
            ));
        }
        (role, None) => (
            state.store.create_api_key(role, &body.label).await?,
            Vec::new(),
        ),
    };
    tracing::info!(prefix = %key.prefix, role = role.as_str(), "API key created");
    let mut answer = serde_json::json!({
        "key": key.key, "prefix": key.prefix, "role": role, "label": body.label,
    });
    if role == ApiKeyRole::Publishable {
        answer["origins"] = serde_json::json!(origins);
    }
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `DELETE /v1/admin/keys/{prefix}`: revokes a key at once on this server (other replicas
/// stop trusting it within the key cache time).
pub(crate) async fn revoke_key(
    _key: AdminKey,
    State(state): State<AppState>,
    Path(prefix): Path<String>,
) -> Result<Response, ApiError> {
    let n = state.store.revoke_api_key(&prefix).await?;
    if n == 0 {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_key",
            format!("no active key has the prefix {prefix:?}"),
        ));
    }
    state.forget_keys();
    tracing::info!(%prefix, "API key revoked");
    Ok(Json(serde_json::json!({"prefix": prefix, "revoked": n})).into_response())
}

/// `GET /v1/admin/audit?limit`: the newest admin actions, newest first.
pub(crate) async fn audit_log(
    _key: AdminKey,
    State(state): State<AppState>,
    query: Result<Query<LimitQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let limit = check_limit(q.limit, 100)?;
    let entries = state.store.audit_log(limit).await?;
    Ok(Json(serde_json::json!({"entries": entries})).into_response())
}

/// Writes every changing admin request (not GET or HEAD), refused ones included, to the
/// audit log: the key's prefix, the method and path, the answer's status.
pub(crate) async fn audit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
        return next.run(request).await;
    }
    let path = request.uri().path().to_owned();
    let key_prefix = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map_or_else(|| "-".to_owned(), |k| k.trim().chars().take(14).collect());
    let response = next.run(request).await;
    // Dashboard forms carry no key; their handler names the session's key.
    let key_prefix = match response
        .extensions()
        .get::<crate::pages::dashboard::AuditActor>()
    {
        Some(actor) if key_prefix == "-" => actor.0.clone(),
        _ => key_prefix,
    };
    let entry = marquee_store::AuditEntry {
        at: chrono::Utc::now(),
        key_prefix,
        method: method.to_string(),
        path,
        status: response.status().as_u16(),
    };
    tracing::info!(key = %entry.key_prefix, method = %entry.method, path = %entry.path, status = entry.status, "admin action");
    if let Err(e) = state.store.record_audit(&entry).await {
        tracing::warn!("writing the audit log failed: {e}");
    }
    response
}
