//! `/v1/admin/users*`: customers, their consent and email.

use crate::auth::AdminKey;
use crate::catalog::{check_limit, user_id};
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use marquee_domain::{Timestamp, User};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsersQuery {
    after: Option<String>,
    limit: Option<u32>,
}

/// `GET /v1/admin/users?after&limit`: by id.
pub(crate) async fn admin_users(
    _key: AdminKey,
    State(state): State<AppState>,
    query: Result<Query<UsersQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let limit = check_limit(q.limit, 50)?;
    let users = state.store.users_page(q.after.as_deref(), limit).await?;
    let next = (users.len() == limit as usize)
        .then(|| users.last().map(|u| u.id.as_str().to_owned()))
        .flatten();
    Ok(Json(serde_json::json!({"users": users, "next_after": next})).into_response())
}

/// `GET /v1/admin/users/{id}`.
pub(crate) async fn admin_user(
    _key: AdminKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let user = state.store.user(&user_id(&id)?).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_user",
            format!("there is no user {id:?}"),
        )
    })?;
    Ok(Json(user).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserIn {
    country: Option<String>,
    #[serde(default)]
    marketing_consent: bool,
    email: Option<String>,
    created_at: Option<Timestamp>,
}

/// `PUT /v1/admin/users/{id}`: insert or replace a user (consent, country, email).
pub(crate) async fn put_user(
    _key: AdminKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<UserIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let uid = user_id(&id)?;
    let created_at = match body.created_at {
        Some(t) => t,
        None => state
            .store
            .user(&uid)
            .await?
            .map_or_else(chrono::Utc::now, |u| u.created_at),
    };
    let mut user = User::new(uid, created_at);
    user.country = body.country;
    user.marketing_consent = body.marketing_consent;
    user.email = body.email;
    user.validate()
        .map_err(|e| ApiError::bad_request("invalid_user", e.to_string()))?;
    state
        .store
        .upsert_users(std::slice::from_ref(&user))
        .await?;
    Ok(Json(user).into_response())
}
