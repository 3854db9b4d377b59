//! Admin routes for analytics, background jobs (retrain, recompute segments) and segment
//! exports. Analytics are SQL in the store; jobs and exports run the `train` and `segments`
//! tools (see [`crate::jobs`]), so the server links neither Polars nor linfa.

use crate::jobs::{Finish, StartError};
use crate::{ApiError, AppState, authorize, model_root};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use marquee_store::ApiKeyRole;
use marquee_store::kpis::{DateRange, Period, RankBy};
use serde::Deserialize;

/// Parses `from`/`to`: a `YYYY-MM-DD` day (its midnight, UTC) or an RFC 3339 time.
fn parse_time(field: &'static str, s: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_date",
                format!("{field} = {s:?} is not a YYYY-MM-DD date or an RFC 3339 time"),
            )
        })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
    period: Option<String>,
    by: Option<String>,
    limit: Option<u32>,
}

impl RangeQuery {
    fn range(&self) -> Result<DateRange, ApiError> {
        let from = self
            .from
            .as_deref()
            .map(|s| parse_time("from", s))
            .transpose()?;
        let to = self
            .to
            .as_deref()
            .map(|s| parse_time("to", s))
            .transpose()?;
        DateRange::new(from, to).map_err(|e| ApiError::bad_request("invalid_range", e.to_string()))
    }

    fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        let given = [
            ("period", self.period.is_some()),
            ("by", self.by.is_some()),
            ("limit", self.limit.is_some()),
        ];
        for (name, set) in given {
            if set && !allowed.contains(&name) {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("{name} does not apply to this report"),
                ));
            }
        }
        Ok(())
    }
}

/// `GET /v1/admin/analytics/revenue?period=day|month&from&to`: orders and net revenue per
/// period, in minor units.
pub(crate) async fn revenue(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
    let Query(q) = query?;
    q.only(&["period"])?;
    let period: Period = q
        .period
        .as_deref()
        .unwrap_or("month")
        .parse()
        .map_err(|e: String| ApiError::bad_request("invalid_period", e))?;
    let rows = state
        .store
        .revenue_by_period(period, q.range()?)
        .await
        .map_err(ApiError::internal)?;
    let total: i64 = rows.iter().map(|r| r.revenue_minor).sum();
    let orders: u64 = rows.iter().map(|r| r.orders).sum();
    Ok(Json(serde_json::json!({
        "period": q.period.as_deref().unwrap_or("month"),
        "from": q.from, "to": q.to,
        "orders": orders,
        "revenue_minor": total,
        "rows": rows,
    }))
    .into_response())
}

/// `GET /v1/admin/analytics/top-products?by=revenue|units&limit&from&to`.
pub(crate) async fn top_products(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
    let Query(q) = query?;
    q.only(&["by", "limit"])?;
    let by: RankBy =
        q.by.as_deref()
            .unwrap_or("revenue")
            .parse()
            .map_err(|e: String| ApiError::bad_request("invalid_by", e))?;
    let limit = q.limit.unwrap_or(10);
    if limit == 0 || limit > 1_000 {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and 1000, not {limit}"),
        ));
    }
    let rows = state
        .store
        .top_products(q.range()?, by, limit)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(serde_json::json!({
        "by": q.by.as_deref().unwrap_or("revenue"),
        "from": q.from, "to": q.to,
        "products": rows,
    }))
    .into_response())
}

/// `GET /v1/admin/analytics/funnel?from&to`.
pub(crate) async fn funnel(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
    let Query(q) = query?;
    q.only(&[])?;
    let f = state
        .store
        .funnel(q.range()?)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(serde_json::json!({"from": q.from, "to": q.to, "funnel": f})).into_response())
}

/// `GET /v1/admin/analytics/customers?from&to`: new and returning customers per month.
pub(crate) async fn customers(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
    let Query(q) = query?;
    q.only(&[])?;
    let rows = state
        .store
        .new_vs_returning(q.range()?)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(serde_json::json!({"from": q.from, "to": q.to, "months": rows})).into_response())
}

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
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
    Ok(Json(serde_json::json!({"jobs": state.jobs.list()})).into_response())
}

/// `GET /v1/admin/jobs/{id}`.
pub(crate) async fn get_job(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
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
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
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
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
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
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
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
    let run = crate::latest_run(state).await?;
    if q.segment != "all" {
        crate::segment_sizes_with(state, &run, &q.segment).await?;
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
    .await
    .map_err(ApiError::internal)?;
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
