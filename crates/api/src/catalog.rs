//! The catalog: the storefront's browse and search (hidden items never appear) and the admin
//! API's item edits (bulk insert or replace, one item, hide); the id and limit checks the
//! other routes share.

use crate::auth::{AdminKey, StorefrontKey};
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use marquee_domain::{Item, ItemId, Money, Timestamp, UserId};
use marquee_store::ItemQuery;
use serde::Deserialize;

/// The most items one page of a listing returns.
pub const MAX_PAGE: u32 = 500;
/// The most lines of one order.
pub const MAX_ORDER_LINES: usize = 200;
/// The most units of one order line.
pub const MAX_QUANTITY: u32 = 10_000;
/// The most items of one bulk import request.
pub const MAX_ITEMS_PER_IMPORT: usize = 1_000;

pub(crate) fn check_limit(limit: Option<u32>, default: u32) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(default);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and {MAX_PAGE}, not {limit}"),
        ));
    }
    Ok(limit)
}

pub(crate) fn item_id(field: &str, raw: &str) -> Result<ItemId, ApiError> {
    ItemId::new(raw).map_err(|e| ApiError::bad_request("invalid_item_id", format!("{field}: {e}")))
}

pub(crate) fn user_id(raw: &str) -> Result<UserId, ApiError> {
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
        .await?;
    let next = (items.len() == limit as usize)
        .then(|| items.last().map(|i| i.id.as_str().to_owned()))
        .flatten();
    Ok(Json(serde_json::json!({"items": items, "next_after": next})).into_response())
}

/// `GET /v1/items?category&q&after&limit&include_out_of_stock`: visible items by id.
pub(crate) async fn items(
    _key: StorefrontKey,
    State(state): State<AppState>,
    query: Result<Query<ItemsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    list_items(&state, q, false).await
}

/// `GET /v1/items/{id}`: one visible item.
pub(crate) async fn item(
    _key: StorefrontKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let item_id = item_id("id", &id)?;
    match state.store.item(&item_id).await? {
        Some(item) if !item.hidden => Ok(Json(item).into_response()),
        _ => Err(unknown_item(&id)),
    }
}

/// `GET /v1/categories`: categories of visible items with their counts.
pub(crate) async fn categories(
    _key: StorefrontKey,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let rows = state.store.categories().await?;
    let categories: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|(category, items)| serde_json::json!({"category": category, "items": items}))
        .collect();
    Ok(Json(serde_json::json!({"categories": categories})).into_response())
}

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
    state.store.upsert_items(items).await?;
    let catalog = state.store.all_items().await?;
    state.engine.set_catalog(catalog);
    Ok(())
}

/// `GET /v1/admin/items?category&q&after&limit`: every item, hidden and out of stock too.
pub(crate) async fn admin_items(
    _key: AdminKey,
    State(state): State<AppState>,
    query: Result<Query<ItemsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
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
    _key: AdminKey,
    State(state): State<AppState>,
    body: Result<Json<ItemsIn>, JsonRejection>,
) -> Result<Response, ApiError> {
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
    _key: AdminKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let item = state
        .store
        .item(&item_id("id", &id)?)
        .await?
        .ok_or_else(|| unknown_item(&id))?;
    Ok(Json(item).into_response())
}

/// `PUT /v1/admin/items/{id}`: insert or replace one item.
pub(crate) async fn put_item(
    _key: AdminKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<ItemIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let item = body.into_item(None, Some(&id))?;
    save_items(&state, std::slice::from_ref(&item)).await?;
    Ok(Json(item).into_response())
}

/// `DELETE /v1/admin/items/{id}`: hides the item (orders keep referring to it); it is no
/// longer listed or recommended.
pub(crate) async fn hide_item(
    _key: AdminKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let mut item = state
        .store
        .item(&item_id("id", &id)?)
        .await?
        .ok_or_else(|| unknown_item(&id))?;
    item.hidden = true;
    save_items(&state, std::slice::from_ref(&item)).await?;
    Ok(Json(serde_json::json!({"id": id, "hidden": true})).into_response())
}
