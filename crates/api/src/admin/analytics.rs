//! `GET /v1/admin/analytics/*`: revenue by period, top products, the fixed funnel and new
//! versus returning customers, all computed by SQL in the store over a half-open UTC range.

use crate::auth::AdminKey;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use marquee_store::GroupBy;
use marquee_store::kpis::{DateRange, Period, RankBy};
use serde::Deserialize;

/// Parses `from`/`to`: a `YYYY-MM-DD` day (its midnight, UTC) or an RFC 3339 time.
pub(crate) fn parse_time(field: &'static str, s: &str) -> Result<DateTime<Utc>, ApiError> {
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
    group_by: Option<String>,
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
            ("group_by", self.group_by.is_some()),
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
    _key: AdminKey,
    State(state): State<AppState>,
    query: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    q.only(&["period"])?;
    let period: Period = q
        .period
        .as_deref()
        .unwrap_or("month")
        .parse()
        .map_err(|e: String| ApiError::bad_request("invalid_period", e))?;
    let rows = state.store.revenue_by_period(period, q.range()?).await?;
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
    _key: AdminKey,
    State(state): State<AppState>,
    query: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
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
    let rows = state.store.top_products(q.range()?, by, limit).await?;
    Ok(Json(serde_json::json!({
        "by": q.by.as_deref().unwrap_or("revenue"),
        "from": q.from, "to": q.to,
        "products": rows,
    }))
    .into_response())
}

/// `GET /v1/admin/analytics/funnel?from&to`.
pub(crate) async fn funnel(
    _key: AdminKey,
    State(state): State<AppState>,
    query: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    q.only(&[])?;
    let f = state.store.funnel(q.range()?).await?;
    Ok(Json(serde_json::json!({"from": q.from, "to": q.to, "funnel": f})).into_response())
}

/// `GET /v1/admin/analytics/customers?from&to`: new and returning customers per month.
pub(crate) async fn customers(
    _key: AdminKey,
    State(state): State<AppState>,
    query: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    q.only(&[])?;
    let rows = state.store.new_vs_returning(q.range()?).await?;
    Ok(Json(serde_json::json!({"from": q.from, "to": q.to, "months": rows})).into_response())
}

/// `GET /v1/admin/analytics/recommendations?from&to&group_by=placement|model_version|variant|day`:
/// what recommendation answers showed and what was clicked, added to carts and bought because
/// of them (see `marquee_store::RecommendationKpis`). Each row names its group in the field
/// `group_by` names; `variant` rows also name their `experiment` (answers outside experiments
/// have both empty).
pub(crate) async fn recommendations(
    _key: AdminKey,
    State(state): State<AppState>,
    query: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    q.only(&["group_by"])?;
    let name = q.group_by.as_deref().unwrap_or("placement");
    let by: GroupBy = name
        .parse()
        .map_err(|e: String| ApiError::bad_request("invalid_group_by", e))?;
    let rows = state.store.recommendation_kpis(q.range()?, by).await?;
    let rows: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|r| {
            let key = r.key.clone();
            let mut row = serde_json::to_value(r).unwrap_or_default();
            if let Some(obj) = row.as_object_mut() {
                obj.remove("key");
                if by == GroupBy::Variant {
                    let (experiment, variant) = key.split_once('/').unwrap_or(("", &key));
                    obj.insert("experiment".into(), experiment.into());
                    obj.insert("variant".into(), variant.into());
                } else {
                    obj.insert(name.into(), key.into());
                }
            }
            row
        })
        .collect();
    Ok(Json(serde_json::json!({
        "group_by": name,
        "from": q.from, "to": q.to,
        "rows": rows,
    }))
    .into_response())
}
