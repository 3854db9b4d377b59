//! `POST /v1/events`: behaviour events from a storefront's back end or, with a publishable
//! key, from the browser tracker, validated one by one (an error names `events[n].field`),
//! then stored durably through the group-commit writer before `202`.
//!
//! The body is JSON, sent as `application/json` or as `text/plain` (what a browser beacon
//! may send without a preflight). An event with both `user_id` and `session_id` is the
//! user's and links the anonymous session to them: the session's earlier events count as
//! the user's from then on.

use crate::auth::BrowserOrStorefront;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
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

/// One event read from the body: the event, the answer it names, and the anonymous session
/// it links to its user.
type Parsed = (Event, Option<RecommendationId>, Option<SessionId>);

fn to_event(n: usize, e: EventIn, now: chrono::DateTime<chrono::Utc>) -> Result<Parsed, ApiError> {
    let bad = |field: &str, message: String| {
        ApiError::bad_request("invalid_event", format!("events[{n}].{field}: {message}"))
    };
    let shown = e
        .recommendation_id
        .as_deref()
        .map(str::parse::<RecommendationId>)
        .transpose()
        .map_err(|m| bad("recommendation_id", m))?;
    let session = e
        .session_id
        .map(|s| SessionId::new(s).map_err(|x| bad("session_id", x.to_string())))
        .transpose()?;
    let (actor, link) = match (e.user_id, session) {
        (Some(u), link) => (
            Actor::User(UserId::new(u).map_err(|x| bad("user_id", x.to_string()))?),
            link,
        ),
        (None, Some(s)) => (Actor::Session(s), None),
        (None, None) => {
            return Err(bad(
                "user_id",
                "give user_id, session_id or both (both: the session identified as the user)"
                    .into(),
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
    Ok((event, shown, link))
}

/// The body as JSON: `application/json`, or `text/plain` from a beacon.
fn read_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<EventsBody, ApiError> {
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if kind != "application/json" && kind != "text/plain" && !kind.ends_with("+json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_body",
            "send the events as JSON (Content-Type: application/json, or text/plain from a \
             browser beacon)",
        ));
    }
    let bytes = body
        .map_err(|e| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_body", e.body_text()))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!("the body is not an events batch: {e}"),
        )
    })
}

pub(crate) async fn events(
    _caller: BrowserOrStorefront,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let b = read_body(&headers, body)?;
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
    let parsed = b
        .events
        .into_iter()
        .enumerate()
        .map(|(n, e)| to_event(n, e, now))
        .collect::<Result<Vec<_>, _>>()?;
    let mut events = Vec::with_capacity(parsed.len());
    let mut shown = Vec::with_capacity(parsed.len());
    let mut links: Vec<(SessionId, UserId)> = Vec::new();
    for (event, answer, link) in parsed {
        if let (Some(session), Actor::User(user)) = (link, &event.actor)
            && !links.iter().any(|(s, _)| *s == session)
        {
            links.push((session, user.clone()));
        }
        events.push(event);
        shown.push(answer);
    }
    let stored = state.record_events_linked(events, shown, links).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({
            "accepted": stored.inserted,
            "duplicates": stored.duplicates,
        })),
    )
        .into_response())
}
