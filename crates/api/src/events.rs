//! `POST /v1/events`: behaviour events from a storefront's back end, validated one by one
//! (an error names `events[n].field`), then stored durably through the group-commit writer
//! before `202`.

use crate::auth::StorefrontKey;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use marquee_domain::{Actor, Event, EventId, EventKind, ItemId, SessionId, UserId};
use marquee_store::RecommendationId;
use serde::Deserialize;

/// The most events one `POST /v1/events` may carry.
pub const MAX_EVENTS_PER_BATCH: usize = 1_000;

/// One event as a storefront sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventIn {
    event_id: String,
    user_id: Option<String>,
    session_id: Option<String>,
    item_id: Option<String>,
    kind: String,
    value: Option<f32>,
    /// RFC 3339; the server's clock when absent.
    timestamp: Option<chrono::DateTime<chrono::Utc>>,
    context: Option<serde_json::Value>,
    /// The answer that showed the item (its `recommendation_id`), when the storefront knows it.
    recommendation_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsBody {
    events: Vec<EventIn>,
}

fn to_event(
    n: usize,
    e: EventIn,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(Event, Option<RecommendationId>), ApiError> {
    let bad = |field: &str, message: String| {
        ApiError::bad_request("invalid_event", format!("events[{n}].{field}: {message}"))
    };
    let shown = e
        .recommendation_id
        .as_deref()
        .map(str::parse::<RecommendationId>)
        .transpose()
        .map_err(|m| bad("recommendation_id", m))?;
    let actor = match (e.user_id, e.session_id) {
        (Some(u), None) => Actor::User(UserId::new(u).map_err(|x| bad("user_id", x.to_string()))?),
        (None, Some(s)) => {
            Actor::Session(SessionId::new(s).map_err(|x| bad("session_id", x.to_string()))?)
        }
        _ => {
            return Err(bad(
                "user_id",
                "give exactly one of user_id and session_id".into(),
            ));
        }
    };
    let event = Event {
        id: EventId::new(e.event_id).map_err(|x| bad("event_id", x.to_string()))?,
        actor,
        item: e
            .item_id
            .map(ItemId::new)
            .transpose()
            .map_err(|x| bad("item_id", x.to_string()))?,
        kind: EventKind::parse(&e.kind).map_err(|x| bad("kind", x.to_string()))?,
        value: e.value,
        timestamp: e.timestamp.unwrap_or(now),
        context: e.context,
    };
    event
        .validate(now)
        .map_err(|x| bad(x.field(), x.to_string()))?;
    Ok((event, shown))
}

pub(crate) async fn events(
    _key: StorefrontKey,
    State(state): State<AppState>,
    body: Result<Json<EventsBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    if b.events.is_empty() || b.events.len() > MAX_EVENTS_PER_BATCH {
        return Err(ApiError::bad_request(
            "invalid_batch",
            format!(
                "send between 1 and {MAX_EVENTS_PER_BATCH} events per request, not {}",
                b.events.len()
            ),
        ));
    }
    let now = chrono::Utc::now();
    let (events, shown): (Vec<Event>, Vec<Option<RecommendationId>>) = b
        .events
        .into_iter()
        .enumerate()
        .map(|(n, e)| to_event(n, e, now))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .unzip();
    let stored = state.record_events(events, shown).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({
            "accepted": stored.inserted,
            "duplicates": stored.duplicates,
        })),
    )
        .into_response())
}
