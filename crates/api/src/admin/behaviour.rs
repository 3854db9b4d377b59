//! Product analytics on the behaviour data (`marquee_store::behaviour`): custom funnels
//! (`POST /v1/admin/analytics/funnel`), weekly retention cohorts, next purchase and the event
//! explorer. Each reads the events (and orders) from the store and counts exactly.

use super::analytics::parse_time;
use crate::auth::AdminKey;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use marquee_domain::{EventKind, ItemId};
use marquee_store::OrderTouches;
use marquee_store::behaviour::{self, Step, StepSpec, TouchKind};
use serde::Deserialize;
use std::collections::HashMap;

/// Funnel steps at most.
pub(crate) const MAX_STEPS: usize = 10;
/// The default conversion window of a funnel, in hours.
pub(crate) const DEFAULT_WINDOW_HOURS: u32 = 24;

fn range_ms(from: Option<&str>, to: Option<&str>) -> Result<(Option<i64>, Option<i64>), ApiError> {
    let from = from.map(|s| parse_time("from", s)).transpose()?;
    let to = to.map(|s| parse_time("to", s)).transpose()?;
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return Err(ApiError::bad_request(
            "invalid_range",
            format!("from ({f}) must be before to ({t})"),
        ));
    }
    Ok((
        from.map(|t| t.timestamp_millis()),
        to.map(|t| t.timestamp_millis()),
    ))
}

/// Item → category, read only when a question names a category.
async fn categories(state: &AppState, needed: bool) -> Result<HashMap<ItemId, String>, ApiError> {
    if !needed {
        return Ok(HashMap::new());
    }
    Ok(state
        .store
        .all_items()
        .await?
        .into_iter()
        .map(|i| (i.id, i.category))
        .collect())
}

/// What of the orders a funnel needs: their items when an order step names an item or a
/// category, their times when it has order steps at all.
pub(crate) fn order_touches(steps: &[Step]) -> OrderTouches {
    let orders = steps.iter().filter(|s| s.kind == TouchKind::Order);
    if orders
        .clone()
        .any(|s| s.item.is_some() || s.category.is_some())
    {
        OrderTouches::WithItems
    } else if orders.count() > 0 {
        OrderTouches::Times
    } else {
        OrderTouches::None
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FunnelIn {
    steps: Vec<StepSpec>,
    /// Hours from entering the funnel within which the later steps count (default 24).
    window_hours: Option<u32>,
    from: Option<String>,
    to: Option<String>,
}

/// `POST /v1/admin/analytics/funnel` `{steps: [{kind, item_id?, category?}], window_hours,
/// from, to}`: people who reached each step in order, per-step conversion and the median
/// time between steps. A step's kind is an event kind or `order`.
pub(crate) async fn custom_funnel(
    _key: AdminKey,
    State(state): State<AppState>,
    body: Result<Json<FunnelIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    if b.steps.len() < 2 || b.steps.len() > MAX_STEPS {
        return Err(ApiError::bad_request(
            "invalid_funnel",
            format!("a funnel has 2 to {MAX_STEPS} steps, not {}", b.steps.len()),
        ));
    }
    let steps = b
        .steps
        .iter()
        .enumerate()
        .map(|(n, s)| Step::check(n, s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| ApiError::bad_request("invalid_funnel", m))?;
    let window_hours = b.window_hours.unwrap_or(DEFAULT_WINDOW_HOURS);
    if window_hours == 0 || window_hours > 24 * 366 {
        return Err(ApiError::bad_request(
            "invalid_funnel",
            format!("window_hours must be between 1 and 8784, not {window_hours}"),
        ));
    }
    let (from, to) = range_ms(b.from.as_deref(), b.to.as_deref())?;
    let categories = categories(&state, steps.iter().any(|s| s.category.is_some())).await?;
    let touches = state.store.touches(order_touches(&steps)).await?;
    let result = behaviour::funnel(
        &touches,
        &steps,
        i64::from(window_hours) * 3_600_000,
        from,
        to,
        &categories,
    );
    Ok(Json(serde_json::json!({
        "from": b.from, "to": b.to,
        "window_hours": window_hours,
        "steps": result,
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetentionQuery {
    from: Option<String>,
    to: Option<String>,
    /// Columns per cohort (default 8, at most 104).
    weeks: Option<usize>,
    /// Comma-separated kinds that count as active (event kinds or `order`; default any).
    kinds: Option<String>,
}

/// `GET /v1/admin/analytics/retention?from&to&weeks&kinds`: weekly cohorts of customers by
/// their first active week, and the share of each active N weeks later.
pub(crate) async fn retention(
    _key: AdminKey,
    State(state): State<AppState>,
    query: Result<Query<RetentionQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let (from, to) = range_ms(q.from.as_deref(), q.to.as_deref())?;
    let weeks = q.weeks.unwrap_or(8);
    if weeks == 0 || weeks > 104 {
        return Err(ApiError::bad_request(
            "invalid_weeks",
            format!("weeks must be between 1 and 104, not {weeks}"),
        ));
    }
    let kinds = q
        .kinds
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(TouchKind::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| ApiError::bad_request("invalid_kinds", m))?;
    let orders = if kinds.is_empty() || kinds.contains(&TouchKind::Order) {
        OrderTouches::Times
    } else {
        OrderTouches::None
    };
    let touches = state.store.touches(orders).await?;
    let cohorts = behaviour::retention(&touches, &kinds, weeks, from, to);
    Ok(Json(serde_json::json!({
        "from": q.from, "to": q.to, "weeks": weeks,
        "kinds": kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        "cohorts": cohorts,
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NextPurchaseQuery {
    item: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/admin/analytics/next-purchase?item=A&limit`: the items the buyers of A bought in
/// a later order, with how many of them did and their share.
pub(crate) async fn next_purchase(
    _key: AdminKey,
    State(state): State<AppState>,
    query: Result<Query<NextPurchaseQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let raw = q
        .item
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("missing_item", "name the item: ?item=<item id>"))?;
    let item =
        ItemId::new(raw).map_err(|e| ApiError::bad_request("invalid_item", e.to_string()))?;
    let limit = q.limit.unwrap_or(20);
    if limit == 0 || limit > 1_000 {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and 1000, not {limit}"),
        ));
    }
    let limit = u32::try_from(limit).unwrap_or(1_000);
    Ok(Json(state.store.next_purchase(&item, limit).await?).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    from: Option<String>,
    to: Option<String>,
    kind: Option<String>,
    item_id: Option<String>,
    category: Option<String>,
}

/// `GET /v1/admin/analytics/events?from&to&kind&item_id&category`: the event explorer,
/// events per UTC day and kind.
pub(crate) async fn events(
    _key: AdminKey,
    State(state): State<AppState>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let (from, to) = range_ms(q.from.as_deref(), q.to.as_deref())?;
    let kind = q
        .kind
        .as_deref()
        .map(EventKind::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_kind", e.to_string()))?;
    let item = q
        .item_id
        .as_deref()
        .map(ItemId::new)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_item", e.to_string()))?;
    let categories = categories(&state, q.category.is_some()).await?;
    let touches = state.store.touches(OrderTouches::None).await?;
    let days = behaviour::event_counts(
        &touches,
        from,
        to,
        kind,
        item.as_ref(),
        q.category.as_deref(),
        &categories,
    );
    let mut totals: std::collections::BTreeMap<&str, u64> = Default::default();
    for d in &days {
        for (k, n) in &d.kinds {
            *totals.entry(k).or_default() += n;
        }
    }
    Ok(Json(serde_json::json!({
        "from": q.from, "to": q.to,
        "total": days.iter().map(|d| d.total).sum::<u64>(),
        "totals": totals,
        "days": days,
    }))
    .into_response())
}
