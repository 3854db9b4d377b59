//! `POST /v1/admin/experiments`, `GET /v1/admin/experiments`,
//! `GET /v1/admin/experiments/{name}` (results) and `POST /v1/admin/experiments/{name}/stop`.

use super::stats::{self, Comparison};
use crate::auth::AdminKey;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use marquee_store::{Experiment, Variant, VariantCounts};
use serde::{Deserialize, Serialize};

/// The metrics an experiment may be judged on.
const METRICS: [&str; 3] = ["ctr", "conversion", "revenue_per_user"];
/// Below these a result is reported with a warning that the sample is too small.
const MIN_USERS: u64 = 100;
const MIN_SUCCESSES: u64 = 10;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewExperiment {
    pub(crate) name: String,
    pub(crate) placement: String,
    pub(crate) metric: String,
    pub(crate) variants: Vec<NewVariant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewVariant {
    pub(crate) name: String,
    pub(crate) model_version: String,
    pub(crate) share: f64,
}

/// 1 to 64 letters, digits or `_-.:`.
pub(crate) fn check_name(field: &str, code: &'static str, raw: &str) -> Result<(), ApiError> {
    let fits = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    if raw.is_empty() || raw.len() > 64 || !raw.chars().all(fits) {
        return Err(ApiError::bad_request(
            code,
            format!("{field} {raw:?} must be 1 to 64 letters, digits or `_-.:`"),
        ));
    }
    Ok(())
}

fn invalid(message: String) -> ApiError {
    ApiError::bad_request("invalid_experiment", message)
}

fn validate(b: NewExperiment) -> Result<Experiment, ApiError> {
    check_name("name", "invalid_experiment", &b.name)?;
    check_name("placement", "invalid_placement", &b.placement)?;
    if !METRICS.contains(&b.metric.as_str()) {
        return Err(invalid(format!(
            "metric {:?} is not one of ctr, conversion, revenue_per_user",
            b.metric
        )));
    }
    if b.variants.len() < 2 {
        return Err(invalid(format!(
            "an experiment needs two or more variants, not {}",
            b.variants.len()
        )));
    }
    let mut sum = 0.0;
    for (n, v) in b.variants.iter().enumerate() {
        check_name(
            &format!("variants[{n}].name"),
            "invalid_experiment",
            &v.name,
        )?;
        if b.variants[..n].iter().any(|w| w.name == v.name) {
            return Err(invalid(format!(
                "variants[{n}].name {:?} is used twice",
                v.name
            )));
        }
        if !(v.share > 0.0 && v.share <= 1.0) {
            return Err(invalid(format!(
                "variants[{n}].share {} must be above 0 and at most 1",
                v.share
            )));
        }
        sum += v.share;
    }
    if (sum - 1.0).abs() > 1e-6 {
        return Err(invalid(format!("the variants' shares sum to {sum}, not 1")));
    }
    Ok(Experiment {
        name: b.name,
        placement: b.placement,
        metric: b.metric,
        state: "running".into(),
        variants: b
            .variants
            .into_iter()
            .map(|v| Variant {
                name: v.name,
                model_version: v.model_version,
                share: v.share,
            })
            .collect(),
        created_at: chrono::Utc::now(),
        stopped_at: None,
    })
}

pub(crate) async fn create(
    _key: AdminKey,
    State(state): State<AppState>,
    body: Result<Json<NewExperiment>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    let experiment = start(&state, b).await?;
    Ok((StatusCode::CREATED, Json(experiment)).into_response())
}

/// Checks, loads and stores a new experiment, and starts assigning requests to it.
pub(crate) async fn start(state: &AppState, b: NewExperiment) -> Result<Experiment, ApiError> {
    let experiment = validate(b)?;
    if let Some(e) = state.store.experiment(&experiment.name).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "experiment_exists",
            format!("an experiment named {:?} exists; pick another name", e.name),
        ));
    }
    // Load its versions first: a missing or damaged one, or one over the memory budget, is
    // refused before anything is stored.
    let mut all = state.store.experiments().await?;
    all.push(experiment.clone());
    state.rebuild_experiments(all).await.map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            match e {
                super::BuildError::Version { .. } => "unusable_model_version",
                super::BuildError::Budget { .. } => "experiment_memory",
                super::BuildError::Store(_) => return ApiError::internal(e),
            },
            e.to_string(),
        )
    })?;
    if let Err(e) = state.store.create_experiment(&experiment).await {
        // Back to what the store holds.
        let stored = state.store.experiments().await?;
        let _ = state.rebuild_experiments(stored).await;
        return Err(match e {
            marquee_store::Error::Conflict(m) => {
                ApiError::new(StatusCode::CONFLICT, "experiment_conflict", m)
            }
            other => other.into(),
        });
    }
    tracing::info!(name = %experiment.name, placement = %experiment.placement, "experiment started");
    Ok(experiment)
}

pub(crate) async fn list(
    _key: AdminKey,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let all = state.store.experiments().await?;
    Ok(Json(serde_json::json!({ "experiments": all })).into_response())
}

fn unknown(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_experiment",
        format!("there is no experiment {name:?}"),
    )
}

pub(crate) async fn stop(
    _key: AdminKey,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    end(&state, &name).await?;
    results(&state, &name).await
}

/// Stops the running experiment `name`; its placement is answered by the active model again.
pub(crate) async fn end(state: &AppState, name: &str) -> Result<(), ApiError> {
    let Some(e) = state.store.experiment(name).await? else {
        return Err(unknown(name));
    };
    if !state
        .store
        .stop_experiment(name, chrono::Utc::now())
        .await?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "experiment_stopped",
            format!("experiment {name:?} is not running ({})", e.state),
        ));
    }
    let stored = state.store.experiments().await?;
    if let Err(e) = state.rebuild_experiments(stored).await {
        tracing::warn!("after stopping {name}: {e}");
    }
    tracing::info!(%name, "experiment stopped");
    Ok(())
}

pub(crate) async fn get(
    _key: AdminKey,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    results(&state, &name).await
}

/// One variant's results.
#[derive(Debug, Serialize)]
pub struct VariantResult {
    pub name: String,
    pub model_version: String,
    pub users: u64,
    pub impressions: u64,
    pub clicks: u64,
    pub ctr: f64,
    pub purchases: u64,
    pub conversion: f64,
    pub revenue_per_user: f64,
}

/// An experiment's results.
#[derive(Debug, Serialize)]
pub struct Results {
    pub name: String,
    pub placement: String,
    pub metric: String,
    pub state: String,
    pub variants: Vec<VariantResult>,
    pub comparisons: Vec<Comparison>,
    pub winner: Option<String>,
    /// The result in plain words.
    pub verdict: String,
    /// Set when the sample is too small to trust the result.
    pub note: Option<String>,
}

async fn results(state: &AppState, name: &str) -> Result<Response, ApiError> {
    Ok(Json(results_of(state, name).await?).into_response())
}

/// The results of experiment `name` so far.
pub(crate) async fn results_of(state: &AppState, name: &str) -> Result<Results, ApiError> {
    let Some(e) = state.store.experiment(name).await? else {
        return Err(unknown(name));
    };
    let counts = state.store.experiment_counts(name).await?;
    Ok(assess(&e, &counts))
}

/// The results of experiment `e` from what its variants measured.
pub fn assess(e: &Experiment, counts: &[VariantCounts]) -> Results {
    let empty = VariantCounts::default();
    let of = |v: &Variant| {
        counts
            .iter()
            .find(|c| c.variant == v.name)
            .unwrap_or(&empty)
    };
    let rate = |a: u64, n: u64| if n == 0 { 0.0 } else { a as f64 / n as f64 };
    let variants: Vec<VariantResult> = e
        .variants
        .iter()
        .map(|v| {
            let c = of(v);
            VariantResult {
                name: v.name.clone(),
                model_version: v.model_version.clone(),
                users: c.users,
                impressions: c.impressions,
                clicks: c.clicks,
                ctr: rate(c.clicks, c.impressions),
                purchases: c.purchases,
                conversion: rate(c.purchases, c.impressions),
                revenue_per_user: if c.users == 0 {
                    0.0
                } else {
                    c.revenue as f64 / c.users as f64
                },
            }
        })
        .collect();
    let base = &e.variants[0];
    let b = of(base);
    let mut comparisons = Vec::new();
    for v in &e.variants[1..] {
        let c = of(v);
        let tested = match e.metric.as_str() {
            "ctr" => stats::proportions(
                (b.clicks, b.impressions, b.click_squares),
                (c.clicks, c.impressions, c.click_squares),
            ),
            "conversion" => stats::proportions(
                (b.purchases, b.impressions, b.purchase_squares),
                (c.purchases, c.impressions, c.purchase_squares),
            ),
            _ => stats::welch(
                (b.users, b.revenue as f64, b.revenue_squares),
                (c.users, c.revenue as f64, c.revenue_squares),
            ),
        };
        if let Some((lift, ci_low, ci_high, p_value)) = tested {
            comparisons.push(Comparison {
                variant: v.name.clone(),
                baseline: base.name.clone(),
                lift,
                ci_low,
                ci_high,
                p_value,
            });
        }
    }
    let significant: Vec<&Comparison> = comparisons.iter().filter(|c| c.p_value < 0.05).collect();
    let winner = if significant.iter().any(|c| c.lift > 0.0) {
        significant
            .iter()
            .filter(|c| c.lift > 0.0)
            .max_by(|a, b| a.lift.total_cmp(&b.lift))
            .map(|c| c.variant.clone())
    } else if !significant.is_empty() && significant.len() == comparisons.len() {
        // Every other variant is significantly worse than the baseline.
        Some(base.name.clone())
    } else {
        None
    };
    let metric = e.metric.replace('_', " ");
    let mut verdict = Vec::new();
    if comparisons.is_empty() {
        verdict.push(format!(
            "Nothing to compare yet: every variant needs answers with {metric} above zero."
        ));
    }
    for c in &comparisons {
        let pct = |x: f64| format!("{:+.1} %", x * 100.0);
        verdict.push(if c.p_value < 0.05 {
            format!(
                "{} {} {} on {metric} by {} (95 % interval {} to {}, p = {:.4}).",
                c.variant,
                if c.lift > 0.0 { "beats" } else { "does worse than" },
                c.baseline,
                pct(c.lift),
                pct(c.ci_low),
                pct(c.ci_high),
                c.p_value
            )
        } else {
            format!(
                "No clear difference between {} and {} on {metric} yet: {} (95 % interval {} to {}, p = {:.3}).",
                c.variant,
                c.baseline,
                pct(c.lift),
                pct(c.ci_low),
                pct(c.ci_high),
                c.p_value
            )
        });
    }
    let small: Vec<&str> = e
        .variants
        .iter()
        .filter(|v| {
            let c = of(v);
            let successes = match e.metric.as_str() {
                "ctr" => c.clicks,
                "conversion" => c.purchases,
                _ => c.purchases,
            };
            c.users < MIN_USERS || successes < MIN_SUCCESSES
        })
        .map(|v| v.name.as_str())
        .collect();
    let note = (!small.is_empty()).then(|| {
        format!(
            "The sample is too small to trust: {} {} fewer than {MIN_USERS} users or {MIN_SUCCESSES} \
             {}. Wait for more traffic before deciding.",
            small.join(", "),
            if small.len() == 1 { "has" } else { "have" },
            if e.metric == "ctr" { "clicks" } else { "purchases" }
        )
    });
    Results {
        name: e.name.clone(),
        placement: e.placement.clone(),
        metric: e.metric.clone(),
        state: e.state.clone(),
        variants,
        comparisons,
        winner,
        verdict: verdict.join(" "),
        note,
    }
}
