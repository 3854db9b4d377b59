//! Catalog, orders, users and API keys: the storefront's read paths and order placement, and
//! the admin API's edits. Prices of an order come from the catalog, never from the client.

use crate::{ApiError, AppState, authorize};
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use marquee_domain::{
    Item, ItemId, Money, Order, OrderId, OrderLine, OrderStatus, Timestamp, User, UserId,
};
use marquee_store::{ApiKeyRole, ItemQuery};
use serde::Deserialize;

/// The most items one page of a listing returns.
pub const MAX_PAGE: u32 = 500;
/// The most lines of one order.
pub const MAX_ORDER_LINES: usize = 200;
/// The most units of one order line.
pub const MAX_QUANTITY: u32 = 10_000;
/// The most items of one bulk import request.
pub const MAX_ITEMS_PER_IMPORT: usize = 1_000;

fn check_limit(limit: Option<u32>, default: u32) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(default);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and {MAX_PAGE}, not {limit}"),
        ));
    }
    Ok(limit)
}

fn item_id(field: &str, raw: &str) -> Result<ItemId, ApiError> {
    ItemId::new(raw).map_err(|e| ApiError::bad_request("invalid_item_id", format!("{field}: {e}")))
}

fn user_id(raw: &str) -> Result<UserId, ApiError> {
    UserId::new(raw).map_err(|e| ApiError::bad_request("invalid_user_id", e.to_string()))
}

fn unknown_item(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_item",
        format!("there is no item {id:?}"),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ItemsQuery {
    category: Option<String>,
    /// Text in the title or id.
    q: Option<String>,
    /// Paging: the `next_after` of the previous page.
    after: Option<String>,
    limit: Option<u32>,
    #[serde(default)]
    include_out_of_stock: bool,
}

async fn list_items(
    state: &AppState,
    q: ItemsQuery,
    include_hidden: bool,
) -> Result<Response, ApiError> {
    let limit = check_limit(q.limit, 50)?;
    let items = state
        .store
        .search_items(&ItemQuery {
            category: q.category.as_deref(),
            text: q.q.as_deref().filter(|t| !t.is_empty()),
            after: q.after.as_deref(),
            limit,
            include_hidden,
            include_out_of_stock: include_hidden || q.include_out_of_stock,
        })
        .await
        .map_err(ApiError::internal)?;
    let next = (items.len() == limit as usize)
        .then(|| items.last().map(|i| i.id.as_str().to_owned()))
        .flatten();
    Ok(Json(serde_json::json!({"items": items, "next_after": next})).into_response())
}

/// `GET /v1/items?category&q&after&limit&include_out_of_stock`: visible items by id.
pub(crate) async fn items(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ItemsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Storefront).await?;
    let Query(q) = query?;
    list_items(&state, q, false).await
}

/// `GET /v1/items/{id}`: one visible item.
pub(crate) async fn item(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Storefront).await?;
    let item_id = item_id("id", &id)?;
    match state
        .store
        .item(&item_id)
        .await
        .map_err(ApiError::internal)?
    {
        Some(item) if !item.hidden => Ok(Json(item).into_response()),
        _ => Err(unknown_item(&id)),
    }
}

/// `GET /v1/categories`: categories of visible items with their counts.
pub(crate) async fn categories(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Storefront).await?;
    let rows = state.store.categories().await.map_err(ApiError::internal)?;
    let categories: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|(category, items)| serde_json::json!({"category": category, "items": items}))
        .collect();
    Ok(Json(serde_json::json!({"categories": categories})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LineIn {
    item_id: String,
    quantity: u32,
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
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<OrderIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Storefront).await?;
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
    }
    // The catalog entries of every line, in one query.
    let catalog: std::collections::HashMap<String, Item> = state
        .store
        .items_by_ids(&ids)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .map(|i| (i.id.as_str().to_owned(), i))
        .collect();
    let mut lines = Vec::with_capacity(o.lines.len());
    for (l, iid) in o.lines.iter().zip(ids) {
        let item = catalog
            .get(iid.as_str())
            .filter(|i| !i.hidden)
            .ok_or_else(|| unknown_item(&l.item_id))?;
        let Some(price) = item.price else {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "not_for_sale",
                format!("item {:?} has no price", l.item_id),
            ));
        };
        if !item.in_stock {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "out_of_stock",
                format!("item {:?} is out of stock", l.item_id),
            ));
        }
        lines.push(OrderLine {
            item: iid,
            quantity: l.quantity,
            unit_price: price,
        });
    }
    // Stored to the millisecond: answer with what a later read returns.
    let now = chrono::Utc::now();
    let order = Order {
        id: id.clone(),
        user: Some(user.clone()),
        created_at: chrono::DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now),
        status: OrderStatus::Placed,
        lines,
    };
    order
        .validate()
        .map_err(|e| ApiError::bad_request("invalid_order", e.to_string()))?;
    if let Some(existing) = state.store.order(&id).await.map_err(ApiError::internal)? {
        let same = existing.user == order.user
            && existing.lines.len() == order.lines.len()
            && existing
                .lines
                .iter()
                .zip(&order.lines)
                .all(|(a, b)| a.item == b.item && a.quantity == b.quantity);
        if same {
            return Ok((StatusCode::OK, Json(order_json(&existing))).into_response());
        }
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "order_conflict",
            format!(
                "order {:?} exists with other lines or another user",
                o.order_id
            ),
        ));
    }
    let mut import = state
        .store
        .begin_import()
        .await
        .map_err(ApiError::internal)?;
    import
        .ensure_users(&[User::new(user, order.created_at)])
        .await
        .map_err(ApiError::internal)?;
    import
        .put_orders(std::slice::from_ref(&order))
        .await
        .map_err(ApiError::internal)?;
    import.commit().await.map_err(ApiError::internal)?;
    state.note_fresh_user(&o.user_id);
    Ok((StatusCode::CREATED, Json(order_json(&order))).into_response())
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
    state
        .store
        .order(&oid)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_order",
                format!("there is no order {id:?}"),
            )
        })
}

/// `GET /v1/orders/{id}`.
pub(crate) async fn get_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Storefront).await?;
    Ok(Json(order_json(&find_order(&state, &id).await?)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitQuery {
    limit: Option<u32>,
}

/// `GET /v1/users/{id}/orders?limit`: newest first.
pub(crate) async fn user_orders(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<LimitQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Storefront).await?;
    let Query(q) = query?;
    let limit = check_limit(q.limit, 20)?;
    let orders = state
        .store
        .orders_of_user(&user_id(&id)?, limit)
        .await
        .map_err(ApiError::internal)?;
    let orders: Vec<_> = orders.iter().map(order_json).collect();
    Ok(Json(serde_json::json!({"user_id": id, "orders": orders})).into_response())
}

// ---- admin ----

/// An item as the admin API takes it: `created_at` defaults to now, `in_stock` to true.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ItemIn {
    id: Option<String>,
    title: String,
    category: String,
    #[serde(default)]
    genres: Vec<String>,
    price: Option<Money>,
    in_stock: Option<bool>,
    #[serde(default)]
    hidden: bool,
    created_at: Option<Timestamp>,
    attributes: Option<serde_json::Value>,
}

impl ItemIn {
    fn into_item(self, n: Option<usize>, path_id: Option<&str>) -> Result<Item, ApiError> {
        let at = |field: &str| match n {
            Some(n) => format!("items[{n}].{field}"),
            None => field.to_owned(),
        };
        let id = match (path_id, self.id.as_deref()) {
            (Some(p), Some(b)) if p != b => {
                return Err(ApiError::bad_request(
                    "invalid_item_id",
                    format!("the body's id {b:?} is not the path's {p:?}"),
                ));
            }
            (Some(p), _) => p.to_owned(),
            (None, Some(b)) => b.to_owned(),
            (None, None) => {
                return Err(ApiError::bad_request(
                    "invalid_item_id",
                    format!("{} is missing", at("id")),
                ));
            }
        };
        let mut item = Item::new(
            item_id(&at("id"), &id)?,
            self.title,
            self.category,
            self.created_at.unwrap_or_else(chrono::Utc::now),
        );
        item.genres = self.genres;
        item.price = self.price;
        item.in_stock = self.in_stock.unwrap_or(true);
        item.hidden = self.hidden;
        if let Some(a) = self.attributes {
            item.attributes = a;
        }
        item.validate().map_err(|e| {
            ApiError::bad_request("invalid_item", format!("{}: {e}", at(e.field())))
        })?;
        Ok(item)
    }
}

/// Stores items and hands the new catalog to the engine.
pub(crate) async fn save_items(state: &AppState, items: &[Item]) -> Result<(), ApiError> {
    state
        .store
        .upsert_items(items)
        .await
        .map_err(ApiError::internal)?;
    let catalog = state.store.all_items().await.map_err(ApiError::internal)?;
    state.engine.set_catalog(catalog);
    Ok(())
}

/// `GET /v1/admin/items?category&q&after&limit`: every item, hidden and out of stock too.
pub(crate) async fn admin_items(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ItemsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
    let Query(q) = query?;
    list_items(&state, q, true).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ItemsIn {
    items: Vec<ItemIn>,
}

/// `POST /v1/admin/items` `{items: [...]}`: bulk insert or replace, all or none.
pub(crate) async fn import_items(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<ItemsIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
    let Json(body) = body?;
    if body.items.is_empty() || body.items.len() > MAX_ITEMS_PER_IMPORT {
        return Err(ApiError::bad_request(
            "invalid_items",
            format!(
                "send 1 to {MAX_ITEMS_PER_IMPORT} items per request, not {}",
                body.items.len()
            ),
        ));
    }
    let items = body
        .items
        .into_iter()
        .enumerate()
        .map(|(n, i)| i.into_item(Some(n), None))
        .collect::<Result<Vec<_>, _>>()?;
    save_items(&state, &items).await?;
    Ok(Json(serde_json::json!({"upserted": items.len()})).into_response())
}

/// `GET /v1/admin/items/{id}`: any item, hidden too.
pub(crate) async fn admin_item(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
    let item = state
        .store
        .item(&item_id("id", &id)?)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| unknown_item(&id))?;
    Ok(Json(item).into_response())
}

/// `PUT /v1/admin/items/{id}`: insert or replace one item.
pub(crate) async fn put_item(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<ItemIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
    let Json(body) = body?;
    let item = body.into_item(None, Some(&id))?;
    save_items(&state, std::slice::from_ref(&item)).await?;
    Ok(Json(item).into_response())
}

/// `DELETE /v1/admin/items/{id}`: hides the item (orders keep referring to it); it is no
/// longer listed or recommended.
pub(crate) async fn hide_item(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
    let mut item = state
        .store
        .item(&item_id("id", &id)?)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| unknown_item(&id))?;
    item.hidden = true;
    save_items(&state, std::slice::from_ref(&item)).await?;
    Ok(Json(serde_json::json!({"id": id, "hidden": true})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrdersQuery {
    status: Option<String>,
    #[serde(default)]
    page: u64,
    limit: Option<u32>,
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
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<OrdersQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
    let Query(q) = query?;
    let limit = check_limit(q.limit, 50)?;
    let status = q.status.as_deref().map(parse_status).transpose()?;
    let orders = state
        .store
        .recent_orders(status, q.page.saturating_mul(u64::from(limit)), limit)
        .await
        .map_err(ApiError::internal)?;
    let orders: Vec<_> = orders.iter().map(order_json).collect();
    Ok(Json(serde_json::json!({"page": q.page, "orders": orders})).into_response())
}

/// `GET /v1/admin/orders/{id}`.
pub(crate) async fn admin_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
    Ok(Json(order_json(&find_order(&state, &id).await?)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatusIn {
    status: String,
}

/// `PATCH /v1/admin/orders/{id}` `{status}`: paid, shipped, cancelled, refunded.
pub(crate) async fn set_order_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<StatusIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
    let Json(body) = body?;
    let status = parse_status(&body.status)?;
    let order = find_order(&state, &id).await?;
    state
        .store
        .set_order_status(&order.id, status)
        .await
        .map_err(ApiError::internal)?;
    let order = find_order(&state, &id).await?;
    Ok(Json(order_json(&order)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsersQuery {
    after: Option<String>,
    limit: Option<u32>,
}

/// `GET /v1/admin/users?after&limit`: by id.
pub(crate) async fn admin_users(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<UsersQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
    let Query(q) = query?;
    let limit = check_limit(q.limit, 50)?;
    let users = state
        .store
        .users_page(q.after.as_deref(), limit)
        .await
        .map_err(ApiError::internal)?;
    let next = (users.len() == limit as usize)
        .then(|| users.last().map(|u| u.id.as_str().to_owned()))
        .flatten();
    Ok(Json(serde_json::json!({"users": users, "next_after": next})).into_response())
}

/// `GET /v1/admin/users/{id}`.
pub(crate) async fn admin_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
    let user = state
        .store
        .user(&user_id(&id)?)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
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
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<UserIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
    let Json(body) = body?;
    let uid = user_id(&id)?;
    let created_at = match body.created_at {
        Some(t) => t,
        None => state
            .store
            .user(&uid)
            .await
            .map_err(ApiError::internal)?
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
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(user).into_response())
}

/// `GET /v1/admin/keys`: every key's prefix, role, label and dates (never the key).
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
    let keys = state
        .store
        .list_api_keys()
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(serde_json::json!({"keys": keys})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyIn {
    role: String,
    #[serde(default)]
    label: String,
}

/// `POST /v1/admin/keys` `{role, label}`: a new key, shown once in the answer (`201`).
pub(crate) async fn create_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<KeyIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
    let Json(body) = body?;
    let role = ApiKeyRole::parse(&body.role).map_err(|_| {
        ApiError::bad_request(
            "invalid_role",
            format!("unknown role {:?}: use storefront or admin", body.role),
        )
    })?;
    if body.label.len() > 200 {
        return Err(ApiError::bad_request(
            "invalid_label",
            "label is longer than 200 bytes",
        ));
    }
    let key = state
        .store
        .create_api_key(role, &body.label)
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(prefix = %key.prefix, role = role.as_str(), "API key created");
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "key": key.key, "prefix": key.prefix, "role": role, "label": body.label,
        })),
    )
        .into_response())
}

/// `DELETE /v1/admin/keys/{prefix}`: revokes a key at once on this server (other replicas
/// stop trusting it within the key cache time).
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(prefix): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
    let n = state
        .store
        .revoke_api_key(&prefix)
        .await
        .map_err(ApiError::internal)?;
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
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<LimitQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
    let Query(q) = query?;
    let limit = check_limit(q.limit, 100)?;
    let entries = state
        .store
        .audit_log(limit)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(serde_json::json!({"entries": entries})).into_response())
}
