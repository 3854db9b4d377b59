//! Orders: placing one from the storefront (at catalog prices, never the client's; idempotent
//! on the order id), reading orders, and the admin API's list and status changes.

use crate::auth::{AdminKey, StorefrontKey};
use crate::catalog::{MAX_ORDER_LINES, MAX_QUANTITY, check_limit, item_id, user_id};
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use marquee_domain::{Order, OrderId, OrderStatus};
use marquee_store::{LineRequest, OrderRequest, Placed, RecommendationId};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LineIn {
    item_id: String,
    quantity: u32,
    /// The answer that showed the item (its `recommendation_id`), when the storefront knows it.
    recommendation_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrderIn {
    /// Client-chosen, for idempotent retries.
    order_id: String,
    user_id: String,
    lines: Vec<LineIn>,
}

/// `POST /v1/orders`: places an order at catalog prices (`201`); the same order sent again
/// answers `200` with the stored one, a different order under a used id `409`.
pub(crate) async fn place_order(
    _key: StorefrontKey,
    State(state): State<AppState>,
    body: Result<Json<OrderIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(o) = body?;
    let id = OrderId::new(&o.order_id)
        .map_err(|e| ApiError::bad_request("invalid_order_id", e.to_string()))?;
    let user = user_id(&o.user_id)?;
    if o.lines.is_empty() || o.lines.len() > MAX_ORDER_LINES {
        return Err(ApiError::bad_request(
            "invalid_lines",
            format!(
                "an order has 1 to {MAX_ORDER_LINES} lines, not {}",
                o.lines.len()
            ),
        ));
    }
    let mut ids = Vec::with_capacity(o.lines.len());
    let mut shown = Vec::with_capacity(o.lines.len());
    for (n, l) in o.lines.iter().enumerate() {
        if l.quantity == 0 || l.quantity > MAX_QUANTITY {
            return Err(ApiError::bad_request(
                "invalid_quantity",
                format!(
                    "lines[{n}].quantity must be between 1 and {MAX_QUANTITY}, not {}",
                    l.quantity
                ),
            ));
        }
        ids.push(item_id(&format!("lines[{n}].item_id"), &l.item_id)?);
        if let Some(r) = &l.recommendation_id {
            shown.push(Some(r.parse::<RecommendationId>().map_err(|m| {
                ApiError::bad_request(
                    "invalid_recommendation_id",
                    format!("lines[{n}].recommendation_id: {m}"),
                )
            })?));
        } else {
            shown.push(None);
        }
    }
    let request = OrderRequest {
        id,
        user,
        lines: o
            .lines
            .iter()
            .zip(ids)
            .map(|(l, item)| LineRequest {
                item,
                quantity: l.quantity,
            })
            .collect(),
        at: chrono::Utc::now(),
    };
    match state.store.place_order(&request).await? {
        Placed::Existing(order) => Ok((StatusCode::OK, Json(order_json(&order))).into_response()),
        Placed::Created(order) => {
            state.note_fresh_user(request.user.as_str());
            state.count_orders(std::slice::from_ref(&order));
            credit_order(&state, &order, shown).await;
            Ok((StatusCode::CREATED, Json(order_json(&order))).into_response())
        }
    }
}

/// Credits the order's lines (their revenue) to the answers that showed their items to the
/// customer. The order is placed already: a failure to store the credit is logged, not
/// reported to the storefront.
async fn credit_order(state: &AppState, order: &Order, shown: Vec<Option<RecommendationId>>) {
    let Some(user) = &order.user else {
        return;
    };
    let outcomes = order
        .lines
        .iter()
        .enumerate()
        .map(|(n, l)| crate::impressions::Outcome {
            key: format!("o:{}:{n}", order.id.as_str()),
            visitor: format!("u:{}", user.as_str()),
            item: l.item.clone(),
            at: order.created_at,
            kind: marquee_store::Outcome::Order,
            explicit: shown.get(n).copied().flatten(),
            revenue_minor: i64::from(l.quantity) * l.unit_price.minor,
        })
        .collect();
    let credited = state.impressions().attribute(&state.store, outcomes).await;
    if credited.is_empty() {
        return;
    }
    if let Err(e) = state.store.insert_attributions(&credited).await {
        tracing::warn!(order = %order.id, "crediting the order to recommendations failed: {e}");
    }
}

fn order_json(o: &Order) -> serde_json::Value {
    serde_json::json!({
        "order_id": o.id,
        "user_id": o.user,
        "created_at": o.created_at,
        "status": o.status.as_str(),
        "lines": o.lines.iter().map(|l| serde_json::json!({
            "item_id": l.item,
            "quantity": l.quantity,
            "unit_price": l.unit_price,
        })).collect::<Vec<_>>(),
        "total_minor": o.total_minor(),
        "currency": o.lines.first().map(|l| l.unit_price.currency.as_str().to_owned()),
    })
}

async fn find_order(state: &AppState, id: &str) -> Result<Order, ApiError> {
    let oid =
        OrderId::new(id).map_err(|e| ApiError::bad_request("invalid_order_id", e.to_string()))?;
    state.store.order(&oid).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_order",
            format!("there is no order {id:?}"),
        )
    })
}

/// `GET /v1/orders/{id}`.
pub(crate) async fn get_order(
    _key: StorefrontKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(order_json(&find_order(&state, &id).await?)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitQuery {
    pub(crate) limit: Option<u32>,
}

/// `GET /v1/users/{id}/orders?limit`: newest first.
pub(crate) async fn user_orders(
    _key: StorefrontKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<LimitQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let limit = check_limit(q.limit, 20)?;
    let orders = state.store.orders_of_user(&user_id(&id)?, limit).await?;
    let orders: Vec<_> = orders.iter().map(order_json).collect();
    Ok(Json(serde_json::json!({"user_id": id, "orders": orders})).into_response())
}

// ---- admin ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrdersQuery {
    status: Option<String>,
    #[serde(default)]
    page: u64,
    pub(crate) limit: Option<u32>,
}

fn parse_status(s: &str) -> Result<OrderStatus, ApiError> {
    OrderStatus::parse(s).map_err(|_| {
        ApiError::bad_request(
            "invalid_status",
            format!("unknown status {s:?}: use placed, paid, shipped, cancelled or refunded"),
        )
    })
}

/// `GET /v1/admin/orders?status&page&limit`: newest first.
pub(crate) async fn admin_orders(
    _key: AdminKey,
    State(state): State<AppState>,
    query: Result<Query<OrdersQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let limit = check_limit(q.limit, 50)?;
    let status = q.status.as_deref().map(parse_status).transpose()?;
    let orders = state
        .store
        .recent_orders(status, q.page.saturating_mul(u64::from(limit)), limit)
        .await?;
    let orders: Vec<_> = orders.iter().map(order_json).collect();
    Ok(Json(serde_json::json!({"page": q.page, "orders": orders})).into_response())
}

/// `GET /v1/admin/orders/{id}`.
pub(crate) async fn admin_order(
    _key: AdminKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(order_json(&find_order(&state, &id).await?)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatusIn {
    status: String,
}

/// `PATCH /v1/admin/orders/{id}` `{status}`: paid, shipped, cancelled, refunded.
pub(crate) async fn set_order_status(
    _key: AdminKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<StatusIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let status = parse_status(&body.status)?;
    let order = find_order(&state, &id).await?;
    state.store.set_order_status(&order.id, status).await?;
    if matches!(
        status,
        marquee_domain::OrderStatus::Cancelled | marquee_domain::OrderStatus::Refunded
    ) {
        state.uncount_order(order.id.as_str());
    }
    let order = find_order(&state, &id).await?;
    Ok(Json(order_json(&order)).into_response())
}
