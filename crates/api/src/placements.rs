//! Placements on the admin API (`PUT`, `GET`, `DELETE /v1/admin/placements[/{name}]`), how a
//! server keeps its engines' placements and order counts in step with the store (its own
//! saves at once, other replicas' within a second), and what a storefront request to a
//! placement needs besides the engine: the visitor's rotation counts.

use crate::auth::AdminKey;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use marquee_domain::{Event, EventKind};
use marquee_engine::{Engine, PlacementSpec};
use marquee_store::StoredPlacement;
use std::collections::HashMap;

/// Orders read every second for other replicas' new orders and cancellations.
const RECENT_ORDERS: u32 = 100;

/// The placements a server serves, as (name, saved at in Unix ms): what tells it the store's
/// changed.
pub(crate) type Seen = Vec<(String, i64)>;

fn check_placement_name(name: &str) -> Result<(), ApiError> {
    crate::experiments::routes::check_name("placement name", "invalid_placement", name)
}

fn unknown(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_placement",
        format!("no placement is named {name:?}"),
    )
}

/// The spec of a request body: JSON of a [`PlacementSpec`], checked against the catalog.
pub(crate) fn parse_spec(engine: &Engine, body: &[u8]) -> Result<PlacementSpec, ApiError> {
    let spec: PlacementSpec = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_placement",
            format!(
                "{e}; a placement is {{\"strategy\", \"k\", \"filter\", \"boosts\", \
                 \"diversity\", \"promotion\", \"rotation\"}} with strategy one of personal, \
                 similar, frequently_bought_together, also_viewed, buy_again, recently_viewed, \
                 trending, popular, session"
            ),
        )
    })?;
    engine.check_placement(&spec)?;
    Ok(spec)
}

fn view(p: &StoredPlacement) -> serde_json::Value {
    serde_json::json!({"name": p.name, "spec": p.spec, "updated_at": p.updated_at})
}

/// `PUT /v1/admin/placements/{name}`: saves a placement (201 when new, else 200); rules that
/// do not parse or type-check are a 400 naming the field and position.
pub(crate) async fn put(
    _key: AdminKey,
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_placement_name(&name)?;
    let spec = parse_spec(&state.engine, &body)?;
    let stored = state.save_placement(&name, &spec).await?;
    let status = if stored.1 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view(&stored.0))).into_response())
}

/// `GET /v1/admin/placements`.
pub(crate) async fn list(
    _key: AdminKey,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let all = state.store.placements().await?;
    let list: Vec<_> = all.iter().map(view).collect();
    Ok(Json(serde_json::json!({ "placements": list })).into_response())
}

/// `GET /v1/admin/placements/{name}`.
pub(crate) async fn get(
    _key: AdminKey,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let all = state.store.placements().await?;
    let found = all
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| unknown(&name))?;
    Ok(Json(view(found)).into_response())
}

/// `DELETE /v1/admin/placements/{name}`: 204, or 404 when there is none.
pub(crate) async fn delete(
    _key: AdminKey,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    if !state.store.delete_placement(&name).await? {
        return Err(unknown(&name));
    }
    state.reload_placements().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

impl AppState {
    /// Stores a checked placement and serves it at once; returns it as stored and whether
    /// it is new.
    pub(crate) async fn save_placement(
        &self,
        name: &str,
        spec: &PlacementSpec,
    ) -> Result<(StoredPlacement, bool), ApiError> {
        let stored = StoredPlacement {
            name: name.to_owned(),
            spec: serde_json::to_value(spec).map_err(ApiError::internal)?,
            updated_at: chrono::Utc::now(),
        };
        let created = self.store.put_placement(&stored).await?;
        self.reload_placements().await?;
        Ok((stored, created))
    }

    /// Serves the placements the store holds (on every engine: the active one and the
    /// experiments' versions).
    pub(crate) async fn reload_placements(&self) -> Result<(), marquee_store::Error> {
        let stored = self.store.placements().await?;
        self.serve_placements(&stored);
        Ok(())
    }

    fn serve_placements(&self, stored: &[StoredPlacement]) {
        let mut specs = HashMap::new();
        for p in stored {
            match serde_json::from_value::<PlacementSpec>(p.spec.clone()) {
                Ok(spec) => {
                    specs.insert(p.name.clone(), spec);
                }
                Err(e) => {
                    tracing::warn!(placement = %p.name, "a stored placement is unreadable: {e}");
                }
            }
        }
        for (engine, _) in self.experiments.load().engines.values() {
            engine.set_placements(specs.clone());
        }
        self.engine.set_placements(specs);
        let mark: Vec<(String, i64)> = stored
            .iter()
            .map(|p| (p.name.clone(), p.updated_at.timestamp_millis()))
            .collect();
        *self
            .placements_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(mark);
    }

    /// Follows placements saved or deleted through another replica; on the first call counts
    /// every order for frequently-bought-together and buy-again answers, later the newest
    /// [`RECENT_ORDERS`] (other replicas' orders, and cancellations among them).
    pub(crate) async fn follow_placements(&self) -> Result<(), String> {
        let stored = self
            .store
            .placements()
            .await
            .map_err(|e| format!("reading placements: {e}"))?;
        let mark: Vec<(String, i64)> = stored
            .iter()
            .map(|p| (p.name.clone(), p.updated_at.timestamp_millis()))
            .collect();
        let unchanged = self
            .placements_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            == Some(&mark);
        if !unchanged {
            self.serve_placements(&stored);
        }
        if !self
            .orders_counted
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            let mut orders = Vec::new();
            let read = self
                .store
                .for_each_order(|o| {
                    orders.push(o);
                    Ok(())
                })
                .await;
            if let Err(e) = read {
                self.orders_counted
                    .store(false, std::sync::atomic::Ordering::Release);
                return Err(format!("reading orders for bought-together answers: {e}"));
            }
            self.count_orders(&orders);
        } else {
            // Orders placed (or cancelled) through other replicas: the newest ones, each
            // counted once however often it is read.
            let recent = self
                .store
                .recent_orders(None, 0, RECENT_ORDERS)
                .await
                .map_err(|e| format!("reading recent orders: {e}"))?;
            self.count_orders(&recent);
        }
        Ok(())
    }

    /// Counts orders for frequently-bought-together and buy-again answers (the experiments'
    /// engines share the counts).
    pub(crate) fn count_orders(&self, orders: &[marquee_domain::Order]) {
        self.engine.add_orders(orders);
    }

    /// Takes a cancelled or refunded order out of the counts.
    pub(crate) fn uncount_order(&self, id: &str) {
        self.engine.remove_order(id);
    }
}

/// Per item, how often the visitor was shown it within `hours` (as far as this server
/// remembers answers: the attribution window) without clicking it since.
pub(crate) fn shown_unclicked(
    state: &AppState,
    visitor: &str,
    hours: f64,
    recent: &[Event],
) -> Vec<(String, u32)> {
    let since = chrono::Utc::now() - chrono::TimeDelta::seconds((hours * 3600.0) as i64);
    let mut counts = state.impressions().shown_since(visitor, since);
    counts.retain(|(item, _)| {
        !recent.iter().any(|e| {
            matches!(
                e.kind,
                EventKind::Click | EventKind::View | EventKind::AddToCart | EventKind::Purchase
            ) && e.timestamp >= since
                && e.item.as_ref().is_some_and(|i| i.as_str() == item)
        })
    });
    counts
}
