//! `/v1/admin/jobs*`: background jobs that run the `train` and `segments` tools beside the
//! server (see [`crate::jobs`]), so the server links neither Polars nor linfa.

use super::models::model_root;
use crate::auth::AdminKey;
use crate::error::ApiError;
use crate::jobs::{Finish, StartError};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::Deserialize;

/// A JSON body that may be left out (then the defaults apply).
fn optional_json<T: Default + serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("invalid_body", format!("the JSON body is invalid: {e}"))
    })
}

/// `GET /v1/admin/jobs`: every job, newest first.
pub(crate) async fn list_jobs(
    _key: AdminKey,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    Ok(Json(serde_json::json!({"jobs": state.jobs.list()})).into_response())
}

/// `GET /v1/admin/jobs/{id}`.
pub(crate) async fn get_job(
    _key: AdminKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = id
        .parse::<u64>()
        .ok()
        .and_then(|id| state.jobs.get(id))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_job",
                format!("there is no job {id:?}"),
            )
        })?;
    Ok(Json(job).into_response())
}

fn started(result: Result<crate::jobs::Job, StartError>) -> Result<Response, ApiError> {
    match result {
        Ok(job) => {
            let location = format!("/v1/admin/jobs/{}", job.id);
            let mut response = (StatusCode::ACCEPTED, Json(job)).into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, v);
            }
            Ok(response)
        }
        Err(StartError::Busy(job)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "job_running",
            format!(
                "job {} ({}) is still running; wait for it (GET /v1/admin/jobs/{})",
                job.id, job.kind, job.id
            ),
        )),
        Err(StartError::Missing(message)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "tool_missing",
            message,
        )),
    }
}

/// The body of `POST /v1/admin/jobs/retrain`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetrainBody {
    /// A training config (a path the server can read); default: train's own default.
    config: Option<String>,
    /// `key=value` overrides, as `train --set`.
    #[serde(default)]
    set: Vec<String>,
    /// Activate the new version when training succeeds (default true).
    activate: Option<bool>,
}

/// `POST /v1/admin/jobs/retrain`: runs `train` into the served model's folder and, when it
/// succeeds, activates the new version (a damaged result is refused and the old one stays).
pub(crate) async fn retrain(
    _key: AdminKey,
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body: RetrainBody = optional_json(&body)?;
    let root = model_root(&state);
    let (Some(parent), Some(name)) = (root.parent(), root.file_name()) else {
        return Err(ApiError::internal(format!(
            "the model folder {} has no parent",
            root.display()
        )));
    };
    let mut args = Vec::new();
    if let Some(c) = &body.config {
        args.extend(["--config".to_owned(), c.clone()]);
    }
    for s in &body.set {
        if !s.contains('=') {
            return Err(ApiError::bad_request(
                "invalid_set",
                format!("set entry {s:?} is not key=value"),
            ));
        }
        if s.starts_with("output_dir=") || s.starts_with("name=") {
            return Err(ApiError::bad_request(
                "invalid_set",
                "output_dir and name are the served model's; they cannot be set here",
            ));
        }
        args.extend(["--set".to_owned(), s.clone()]);
    }
    args.extend([
        "--set".to_owned(),
        format!("output_dir={}", parent.display()),
        "--set".to_owned(),
        format!("name={}", name.to_string_lossy()),
    ]);
    let activate = body.activate.unwrap_or(true);
    let engine = state.engine.clone();
    let finish: Finish = Box::new(move |_out| {
        let latest = std::fs::read_to_string(root.join("latest"))
            .map_err(|e| format!("train finished but {} is unreadable: {e}", root.display()))?;
        let latest = latest.trim().to_owned();
        if !activate {
            return Ok(format!("trained version {latest} (not activated)"));
        }
        engine
            .activate(&root.join(&latest))
            .map(|v| format!("trained and activated version {v}"))
            .map_err(|e| format!("trained version {latest} was refused: {e}"))
    });
    started(
        state
            .jobs
            .start("retrain", &state.tools, "train", args, finish),
    )
}

/// The body of `POST /v1/admin/segments/recompute`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecomputeBody {
    /// Number of k-means clusters; default: chosen by silhouette.
    k: Option<usize>,
    /// Reference date for recency (YYYY-MM-DD); default: the day after the newest order.
    reference: Option<String>,
}

/// `POST /v1/admin/segments/recompute`: runs `segments compute` as a job.
pub(crate) async fn recompute_segments(
    _key: AdminKey,
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body: RecomputeBody = optional_json(&body)?;
    let mut args = vec!["compute".to_owned()];
    if let Some(k) = body.k {
        if !(2..=50).contains(&k) {
            return Err(ApiError::bad_request(
                "invalid_k",
                format!("k must be between 2 and 50, not {k}"),
            ));
        }
        args.extend(["--k".to_owned(), k.to_string()]);
    }
    if let Some(r) = &body.reference {
        NaiveDate::parse_from_str(r, "%Y-%m-%d").map_err(|_| {
            ApiError::bad_request(
                "invalid_date",
                format!("reference = {r:?} is not a YYYY-MM-DD date"),
            )
        })?;
        args.extend(["--reference".to_owned(), r.clone()]);
    }
    let finish: Finish = Box::new(|out| {
        Ok(out
            .lines()
            .find(|l| l.starts_with("run "))
            .unwrap_or("segments computed")
            .to_owned())
    });
    started(
        state
            .jobs
            .start("segments", &state.tools, "segments", args, finish),
    )
}
