//! `/v1/admin/segments*`: the latest segmentation run with sizes and revenue shares, a
//! segment's members page by page, and the CRM export (run by the `segments` tool).

use crate::auth::AdminKey;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// The latest segmentation run and each segment's size and revenue share.
pub(crate) async fn list_segments(
    _key: AdminKey,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let run = latest_run(&state).await?;
    let sizes = state.store.segment_sizes(&run.version).await?;
    let total: i64 = sizes.iter().map(|s| s.2).sum();
    let segments: Vec<serde_json::Value> = sizes
        .into_iter()
        .map(|(segment, customers, revenue)| {
            serde_json::json!({
                "segment": segment,
                "customers": customers,
                "revenue_minor": revenue,
                "revenue_share": if total != 0 { revenue as f64 / total as f64 } else { 0.0 },
            })
        })
        .collect();
    Ok(Json(serde_json::json!({"run": run, "segments": segments})).into_response())
}

/// The segment sizes of `run`, or a 404 naming the segments when `name` has no members.
pub(crate) async fn segment_sizes_with(
    state: &AppState,
    run: &marquee_store::SegmentRun,
    name: &str,
) -> Result<Vec<(String, u64, i64)>, ApiError> {
    let sizes = state.store.segment_sizes(&run.version).await?;
    if !sizes.iter().any(|s| s.0 == name) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_segment",
            format!(
                "segment {name:?} has no members in run {}; segments: {}",
                run.version,
                sizes
                    .iter()
                    .map(|s| s.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(sizes)
}

pub(crate) async fn latest_run(state: &AppState) -> Result<marquee_store::SegmentRun, ApiError> {
    state.store.latest_segment_run().await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_segments",
            "no segments computed yet; run `segments compute`",
        )
    })
}

fn default_per_page() -> usize {
    100
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    #[serde(default)]
    page: usize,
    #[serde(default = "default_per_page")]
    per_page: usize,
}

/// One page of a segment's members (by user id), from the latest run.
pub(crate) async fn segment_members(
    _key: AdminKey,
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    if q.per_page == 0 || q.per_page > 1_000 {
        return Err(ApiError::bad_request(
            "invalid_per_page",
            format!("per_page must be between 1 and 1000, not {}", q.per_page),
        ));
    }
    let run = latest_run(&state).await?;
    let sizes = segment_sizes_with(&state, &run, &name).await?;
    let total = sizes.iter().find(|s| s.0 == name).map_or(0, |s| s.1);
    let page = state
        .store
        .segment_members_page(
            &run.version,
            Some(&name),
            (q.page as u64).saturating_mul(q.per_page as u64),
            q.per_page as u64,
        )
        .await?;
    Ok(Json(serde_json::json!({
        "run": run.version,
        "segment": name,
        "total": total,
        "page": q.page,
        "per_page": q.per_page,
        "members": page,
    }))
    .into_response())
}

/// Numbers the temporary files of exports.
static EXPORTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    /// A segment name, or `all`.
    pub(crate) segment: String,
    /// `csv` (default) or `parquet`.
    pub(crate) format: Option<String>,
    #[serde(default)]
    pub(crate) include_non_consenting: bool,
}

/// `GET /v1/admin/segments/export?segment=NAME|all&format=csv|parquet&include_non_consenting`:
/// the CRM export of the latest run as a download (the columns of `segments export`). The
/// `X-Left-Out` header says how many customers were left out for lack of consent.
pub(crate) async fn export_segment(
    _key: AdminKey,
    State(state): State<AppState>,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    export(&state, q).await
}

/// The export of `q` as a download (shared by the API and the dashboard).
pub(crate) async fn export(state: &AppState, q: ExportQuery) -> Result<Response, ApiError> {
    let format = q.format.as_deref().unwrap_or("csv");
    let content_type = match format {
        "csv" => "text/csv; charset=utf-8",
        "parquet" => "application/vnd.apache.parquet",
        other => {
            return Err(ApiError::bad_request(
                "invalid_format",
                format!("unknown format {other:?}: use csv or parquet"),
            ));
        }
    };
    let run = latest_run(state).await?;
    if q.segment != "all" {
        segment_sizes_with(state, &run, &q.segment).await?;
    }
    let file = std::env::temp_dir().join(format!(
        "marquee-export-{}-{}.{format}",
        std::process::id(),
        EXPORTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let mut args = vec!["export".to_owned()];
    if q.segment == "all" {
        args.push("--all".to_owned());
    } else {
        args.extend(["--segment".to_owned(), q.segment.clone()]);
    }
    args.extend([
        "--format".to_owned(),
        format.to_owned(),
        "--out".to_owned(),
        file.display().to_string(),
        "--model".to_owned(),
        state.engine.model_dir().display().to_string(),
    ]);
    if q.include_non_consenting {
        args.push("--include-non-consenting".to_owned());
    }
    let tools = state.tools.clone();
    // The blocking task removes the temporary file itself, so that it goes away even when the
    // request times out before the export ends.
    let outcome = tokio::task::spawn_blocking(move || {
        let result = tools.run("segments", &args).and_then(|out| {
            let bytes = std::fs::read(&file).map_err(|e| format!("reading the export: {e}"))?;
            Ok::<_, String>((out, bytes))
        });
        let _ = std::fs::remove_file(&file);
        result
    })
    .await?;
    let (out, bytes) = outcome.map_err(|message| {
        let status = if message.contains("is not in") {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        tracing::warn!(%message, "segment export failed");
        ApiError::new(status, "export_failed", message)
    })?;
    let left_out = out
        .lines()
        .find_map(|l| l.strip_prefix("left out "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("0")
        .to_owned();
    let filename = format!("segment-{}-{}.{format}", q.segment, run.version);
    let mut response = (StatusCode::OK, bytes).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&left_out) {
        h.insert("x-left-out", v);
    }
    Ok(response)
}
