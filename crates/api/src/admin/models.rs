//! `/v1/admin/models*`: the model versions on disk and activating one (a hot swap: requests
//! in flight finish on the old model; a damaged artifact is refused and the active one stays).

use crate::auth::AdminKey;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The folder holding the active model's versions (the parent of its version folder).
pub(crate) fn model_root(state: &AppState) -> std::path::PathBuf {
    let dir = state.engine.model_dir();
    dir.parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or(dir)
}

pub(crate) async fn list_models(
    _key: AdminKey,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let active = state.engine.version();
    let versions: Vec<serde_json::Value> = model_versions(&state)?
        .into_iter()
        .map(|m| {
            serde_json::json!({
                "version": m.version,
                "kind": m.kind,
                "created_at": m.created_at,
                "active": m.version == active,
                "metrics": m.metrics.get("test").cloned().unwrap_or(serde_json::Value::Null),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({"active": active, "versions": versions})).into_response())
}

/// The manifests of the model versions on disk, newest version name first (folders without
/// a readable manifest are skipped).
pub(crate) fn model_versions(state: &AppState) -> Result<Vec<marquee_engine::Manifest>, ApiError> {
    let root = model_root(state);
    let mut versions = Vec::new();
    let entries = std::fs::read_dir(&root).map_err(ApiError::internal)?;
    for entry in entries.flatten() {
        let manifest = entry.path().join("manifest.json");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        if let Ok(m) = serde_json::from_str::<marquee_engine::Manifest>(&text) {
            versions.push(m);
        }
    }
    versions.sort_by(|a, b| b.version.cmp(&a.version));
    Ok(versions)
}

pub(crate) async fn activate_model(
    _key: AdminKey,
    State(state): State<AppState>,
    Path(version): Path<String>,
) -> Result<Response, ApiError> {
    let v = activate(&state, &version).await?;
    Ok(Json(serde_json::json!({"model_version": v})).into_response())
}

/// Activates model version `version` (swap, and the model folder's `active` file).
pub(crate) async fn activate(state: &AppState, version: &str) -> Result<String, ApiError> {
    if version.is_empty() || version.starts_with('.') || version.contains(['/', '\\']) {
        return Err(ApiError::bad_request(
            "invalid_version",
            format!("{version:?} is not a version name"),
        ));
    }
    let dir = model_root(state).join(version);
    if !dir.join("manifest.json").is_file() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_version",
            format!("there is no model version {version:?}"),
        ));
    }
    let engine = state.engine.clone();
    let swapped = tokio::task::spawn_blocking(move || engine.activate(&dir)).await?;
    match swapped {
        Ok(v) => Ok(v),
        Err(e @ marquee_engine::Error::Pointer { .. }) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "activation_not_recorded",
            e.to_string(),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_model",
            format!(
                "{e}; the active model ({}) keeps serving",
                state.engine.version()
            ),
        )),
    }
}
