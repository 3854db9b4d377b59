//! The storefront demo (storefront listener, no key): pick a user and see their rows ("Top
//! picks for you", "Because you watched X", "New in <category>", "Trending now"); click an
//! item to record a view event and see similar items; the rows follow the clicks at once
//! (the same fold-in as `/v1/home`). A visitor without a user id is a guest: their clicks
//! are events of an anonymous session (a cookie), and their first row is the session answer.
//!
//! Every page embeds the browser tracker (`/sdk/marquee.js`) with a publishable key for this
//! server's own origin (created on first use, labelled [`DEMO_KEY_LABEL`]): it records
//! clicks on the cards (credited to the row that showed them), page views and dwell time;
//! the pages work the same without JavaScript.
//!
//! It is a demo of what the API gives a storefront, not a shop: anyone who can reach the
//! storefront listener can look at any user's rows, so `serve --no-pages` turns it off.

use super::{
    cookie, encode, error_page, is_https, layout, money, see_other, set_cookie, shop_page,
};
use crate::AppState;
use crate::fresh::recent_events;
use axum::Form;
use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use marquee_domain::{Actor, Event, EventId, EventKind, Item, ItemId, SessionId, UserId};
use marquee_engine::{Filters, HomeRow};
use maud::{Markup, html};
use serde::Deserialize;
use std::collections::HashMap;

/// Items per row.
const ROW_LEN: usize = 10;
/// The guest's anonymous session id.
const VISITOR_COOKIE: &str = "mq_visitor";
/// The guest's recently viewed items (percent-encoded ids joined by `|`), newest first.
const RECENT_COOKIE: &str = "mq_recent";
/// Items a guest's recent list keeps.
const RECENT_LEN: usize = 8;
/// How long guest cookies last (30 days).
const GUEST_COOKIE_SECONDS: u64 = 30 * 24 * 3600;
/// Users offered in the user picker.
const PICKER_USERS: u32 = 30;
/// The label of the publishable key the demo pages' tracker uses.
pub(crate) const DEMO_KEY_LABEL: &str = "storefront demo pages";

/// The demo's publishable key (origin `self`): an active one with [`DEMO_KEY_LABEL`], else a
/// new one. `None` when the store cannot say (the pages then go without the tracker).
async fn tracker_key(state: &AppState) -> Option<String> {
    let found = state
        .demo_tracker_key
        .get_or_try_init(|| async {
            let keys = state.store.list_api_keys().await?;
            if let Some(key) = keys.into_iter().find_map(|k| {
                (k.role == marquee_store::ApiKeyRole::Publishable
                    && k.revoked_at.is_none()
                    && k.label == DEMO_KEY_LABEL
                    && k.origins.iter().any(|o| o == "self"))
                .then_some(k.key)
                .flatten()
            }) {
                return Ok(key);
            }
            let key = state
                .store
                .create_publishable_key(DEMO_KEY_LABEL, &["self".to_owned()])
                .await?;
            Ok::<_, marquee_store::Error>(key.key)
        })
        .await;
    match found {
        Ok(key) => Some(key.clone()),
        Err(e) => {
            tracing::warn!("the demo pages go without the tracker: {e}");
            None
        }
    }
}

/// The tracker snippet: the demo's key; the user, or nobody (picking a user in the demo is
/// not signing in, so a user's pages use an anonymous id of their own and a guest's pages the
/// guest's session); the page's item (whose view the server records itself, so no automatic
/// page view there).
fn tracker(
    key: Option<&str>,
    user: Option<&str>,
    guest: Option<&SessionId>,
    item: Option<&str>,
) -> Markup {
    let anonymous = match (user, guest) {
        (Some(u), _) => Some(format!("demo-{u}")),
        (None, g) => g.map(|s| s.as_str().to_owned()),
    };
    html! {
        @if let Some(key) = key {
            script src="/sdk/marquee.js" defer data-key=(key) data-user-id=(user.unwrap_or(""))
                data-anonymous-id=[anonymous]
                data-item=[item] data-page-view=[item.map(|_| "false")] {}
        }
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/items/{id}", get(item_page))
        .route("/view", post(view))
}

#[derive(Debug, Deserialize)]
pub(crate) struct Who {
    user_id: Option<String>,
}

impl Who {
    /// The user id, if a non-empty one was given.
    fn user(&self) -> Option<&str> {
        self.user_id
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
    }
}

/// The header: the brand, and a form to switch user (or browse as a guest).
fn nav(state_users: &[String], user: Option<&str>) -> Markup {
    html! {
        a.brand href="/" { "MARQUEE" }
        nav {
            a href="/" { "Guest" }
            @if let Some(u) = user { a href=(home_link(Some(u))) { "Home of " (u) } }
        }
        form method="get" action="/" {
            label for="user_id" { "Who's watching?" }
            input #user_id name="user_id" list="users" placeholder="user id"
                value=(user.unwrap_or("")) autocomplete="off";
            datalist #users { @for u in state_users { option value=(u) {} } }
            button type="submit" { "Show" }
        }
    }
}

fn home_link(user: Option<&str>) -> String {
    match user {
        Some(u) => format!("/?user_id={}", encode(u)),
        None => "/".to_owned(),
    }
}

async fn picker_users(state: &AppState) -> Vec<String> {
    state
        .store
        .users_page(None, PICKER_USERS)
        .await
        .map(|users| {
            users
                .into_iter()
                .map(|u| u.id.as_str().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The guest's recent items, newest first (unreadable entries are skipped).
fn guest_recent(headers: &HeaderMap) -> Vec<String> {
    cookie(headers, RECENT_COOKIE)
        .map(|v| {
            v.split('|')
                .filter_map(super::decode)
                .filter(|i| ItemId::new(i.as_str()).is_ok())
                .take(RECENT_LEN)
                .collect()
        })
        .unwrap_or_default()
}

/// The guest's session id, if the cookie holds a valid one.
fn guest_session(headers: &HeaderMap) -> Option<SessionId> {
    cookie(headers, VISITOR_COOKIE).and_then(|v| SessionId::new(v).ok())
}

/// A fresh, unguessable identifier: `prefix` and 32 hex digits.
fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No system randomness: the time still keeps ids apart.
        let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        bytes = (i128::from(nanos)).to_le_bytes();
    }
    let mut id = prefix.to_owned();
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

async fn home(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<Who>, QueryRejection>,
) -> Response {
    let users = picker_users(&state).await;
    let Ok(Query(who)) = query else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "shop",
            nav(&users, None),
            "The address has a malformed query; the only parameter is user_id.",
        );
    };
    let user = who.user();
    let viewer_id = match user.map(UserId::new).transpose() {
        Ok(id) => id,
        Err(e) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "shop",
                nav(&users, None),
                &format!("{:?} is not a user id: {e}", user.unwrap_or_default()),
            );
        }
    };
    let recent = match &viewer_id {
        Some(id) => match recent_events(&state, Some(id)).await {
            Ok(r) => r,
            Err(e) => return error_page(e.status, "shop", nav(&users, user), &e.message),
        },
        None => Vec::new(),
    };
    let rows = match &viewer_id {
        Some(id) => state.engine.home(Some(id), &recent, ROW_LEN),
        None => guest_rows(&state, &guest_recent(&headers)),
    };
    let placed = placement_rows(&state, viewer_id.as_ref(), &recent);
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!("home rows: {e}");
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "shop",
                nav(&users, user),
                "The rows could not be computed; the error is logged.",
            );
        }
    };
    let ids: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            r.items
                .iter()
                .map(|i| i.item.to_string())
                .chain(r.about.clone())
        })
        .chain(
            placed
                .iter()
                .flat_map(|(_, a)| a.items.iter().map(|i| i.item.to_string())),
        )
        .collect();
    let items = items_of(&state, ids.iter().map(String::as_str)).await;
    // Each row is an answer: its impression is recorded, and a click on one of its cards
    // names it, so the click is credited to the row.
    let version = state.engine.version();
    let viewer = user.and_then(|u| UserId::new(u).ok());
    // A guest gets their session id on the first page, so the tracker and the clicks share it.
    let mut new_cookie = None;
    let guest = if viewer.is_none() {
        guest_session(&headers).or_else(|| {
            let id = SessionId::new(random_id("web-")).ok()?;
            new_cookie = Some(set_cookie(
                VISITOR_COOKIE,
                id.as_str(),
                GUEST_COOKIE_SECONDS,
                is_https(&headers),
            ));
            Some(id)
        })
    } else {
        None
    };
    let shown: Vec<String> = rows
        .iter()
        .map(|r| {
            crate::recommend::record_shown(
                &state,
                &format!("home:{}", r.id),
                viewer.clone(),
                guest.clone(),
                &version,
                &r.items,
            )
        })
        .collect();
    let placed_shown: Vec<String> = placed
        .iter()
        .map(|(name, a)| {
            crate::recommend::record_shown(
                &state,
                name,
                viewer.clone(),
                guest.clone(),
                &a.model_version,
                &a.items,
            )
        })
        .collect();
    let heading = match user {
        Some(u) => format!("Welcome back, {u}"),
        None => "Welcome, guest".to_owned(),
    };
    let body = html! {
        h1 { (heading) }
        @if user.is_none() {
            p.muted { "You are browsing as a guest: your clicks shape this visit's rows. "
                "Pick a user above to see their personal rows." }
        }
        @for (row, shown) in rows.iter().zip(&shown) {
            (render_row(row, shown, &items, user))
        }
        @for ((name, answer), shown) in placed.iter().zip(&placed_shown) {
            (render_items(&format!("placement:{name}"), name, &answer.items, shown, &items, user))
        }
        p.muted { "Model " (state.engine.version()) " (" (state.engine.kind()) ")" }
        (tracker(tracker_key(&state).await.as_deref(), user, guest.as_ref(), None))
    };
    let mut response = shop_page(
        StatusCode::OK,
        layout("Home", "shop", nav(&users, user), body),
    );
    if let Some(c) = new_cookie.and_then(|c| axum::http::HeaderValue::from_str(&c).ok()) {
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, c);
    }
    response
}

/// The rows (each of the placement's k items) of the saved placements that need no item (personal, trending, popular,
/// recently viewed, buy again; a guest sees trending and popular ones), by name, empty
/// answers left out.
fn placement_rows(
    state: &AppState,
    user: Option<&UserId>,
    recent: &[Event],
) -> Vec<(String, marquee_engine::Answer)> {
    use marquee_engine::Strategy as S;
    let specs = state.engine.placements();
    let mut names: Vec<&String> = specs
        .iter()
        .filter(|(_, s)| match s.strategy {
            S::Trending | S::Popular => true,
            S::Personal | S::RecentlyViewed | S::BuyAgain => user.is_some(),
            _ => false,
        })
        .map(|(n, _)| n)
        .collect();
    names.sort();
    let req = marquee_engine::PlaceRequest {
        user,
        recent,
        now_ms: chrono::Utc::now().timestamp_millis(),
        ..marquee_engine::PlaceRequest::default()
    };
    names
        .into_iter()
        .filter_map(|name| match state.engine.place(name, &req) {
            Ok(a) if !a.items.is_empty() => Some((name.clone(), a)),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(placement = %name, "a placement row: {e}");
                None
            }
        })
        .collect()
}

/// A guest's rows: the session answer for what they viewed this visit first (when they
/// viewed anything), then "because you watched", "new in" and trending.
fn guest_rows(state: &AppState, recent: &[String]) -> marquee_engine::Result<Vec<HomeRow>> {
    let now = chrono::Utc::now();
    let session = SessionId::new("page").map_err(|_| marquee_engine::Error::BadK(0))?;
    // The newest first, a millisecond apart, so "because you watched" names the last click.
    let events: Vec<Event> = recent
        .iter()
        .enumerate()
        .filter_map(|(n, item)| {
            Some(Event {
                id: EventId::new(format!("page:{n}")).ok()?,
                actor: Actor::Session(session.clone()),
                item: Some(ItemId::new(item.as_str()).ok()?),
                kind: EventKind::View,
                value: None,
                timestamp: now - chrono::TimeDelta::milliseconds(n as i64),
                context: None,
            })
        })
        .collect();
    let mut rows: Vec<HomeRow> = state
        .engine
        .home(None, &events, ROW_LEN)?
        .into_iter()
        .filter(|r| r.id != "top_picks" && r.id != "up_next")
        .collect();
    if !recent.is_empty() {
        let items: Vec<ItemId> = recent
            .iter()
            .filter_map(|i| ItemId::new(i.as_str()).ok())
            .collect();
        let answer = state.engine.session(&items, ROW_LEN, &Filters::default())?;
        if !answer.items.is_empty() {
            rows.insert(
                0,
                HomeRow {
                    id: "this_visit",
                    title: "Picked for this visit".into(),
                    about: None,
                    items: answer.items,
                },
            );
        }
    }
    Ok(rows)
}

/// The catalog entries of `ids` (one store query).
async fn items_of<'a>(
    state: &AppState,
    ids: impl Iterator<Item = &'a str>,
) -> HashMap<String, Item> {
    let mut wanted: Vec<ItemId> = ids.filter_map(|i| ItemId::new(i).ok()).collect();
    wanted.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    wanted.dedup();
    match state.store.items_by_ids(&wanted).await {
        Ok(items) => items
            .into_iter()
            .map(|i| (i.id.as_str().to_owned(), i))
            .collect(),
        Err(e) => {
            tracing::warn!("reading item titles: {e}");
            HashMap::new()
        }
    }
}

fn row_title(row: &HomeRow, items: &HashMap<String, Item>) -> String {
    match (row.id, row.about.as_deref()) {
        ("because_you_watched", Some(item)) => format!(
            "Because you watched {}",
            items.get(item).map_or(item, |i| i.title.as_str())
        ),
        _ => row.title.clone(),
    }
}

fn render_row(
    row: &HomeRow,
    shown: &str,
    items: &HashMap<String, Item>,
    user: Option<&str>,
) -> Markup {
    render_items(
        row.id,
        &row_title(row, items),
        &row.items,
        shown,
        items,
        user,
    )
}

/// A row of cards: `id` names it for tests and styles, `shown` is its recommendation id.
fn render_items(
    id: &str,
    title: &str,
    recs: &[marquee_engine::Recommendation],
    shown: &str,
    items: &HashMap<String, Item>,
    user: Option<&str>,
) -> Markup {
    html! {
        section.row data-row=(id) data-recommendation-id=(shown) data-mq-recommendation=(shown) {
            h2 { (title) }
            ul.cards {
                @for r in recs {
                    li { (card(&r.item, items.get(r.item.as_str()), user, Some(shown))) }
                }
            }
        }
    }
}

/// An item as a card; clicking it posts a view (naming the answer that showed it, if any).
fn card(id: &str, item: Option<&Item>, user: Option<&str>, shown: Option<&str>) -> Markup {
    html! {
        form method="post" action="/view" {
            input type="hidden" name="item" value=(id);
            @if let Some(r) = shown { input type="hidden" name="recommendation_id" value=(r); }
            @if let Some(u) = user { input type="hidden" name="user_id" value=(u); }
            button.card type="submit" data-item=(id) data-mq-item=(id) {
                span.title { (item.map_or(id, |i| i.title.as_str())) }
                @if let Some(i) = item {
                    span.meta { (i.category) }
                    @if let Some(p) = i.price {
                        span.price { (money(p.minor, Some(p.currency.as_str()))) }
                    }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ViewForm {
    item: String,
    user_id: Option<String>,
    /// The row (answer) the card was in.
    recommendation_id: Option<String>,
}

/// `POST /view`: records a view event of the item (for the user, or the guest's session)
/// and shows the item.
async fn view(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<ViewForm>, FormRejection>,
) -> Response {
    let nav_plain = || nav(&[], None);
    if !super::same_origin(&headers) {
        return error_page(
            StatusCode::FORBIDDEN,
            "shop",
            nav_plain(),
            "This form was posted from another site.",
        );
    }
    let Ok(Form(form)) = form else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "shop",
            nav_plain(),
            "The form needs an item (and may name a user_id).",
        );
    };
    let user = form
        .user_id
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty());
    let item = match visible_item(&state, &form.item, nav_plain()).await {
        Ok(item) => item,
        Err(page) => return page,
    };
    let mut cookies = Vec::new();
    let actor = match user {
        Some(u) => match UserId::new(u) {
            Ok(id) => Actor::User(id),
            Err(e) => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "shop",
                    nav_plain(),
                    &format!("{u:?} is not a user id: {e}"),
                );
            }
        },
        None => {
            let secure = is_https(&headers);
            let session = match guest_session(&headers) {
                Some(s) => s,
                None => {
                    let id = random_id("web-");
                    cookies.push(set_cookie(
                        VISITOR_COOKIE,
                        &id,
                        GUEST_COOKIE_SECONDS,
                        secure,
                    ));
                    match SessionId::new(id) {
                        Ok(s) => s,
                        Err(e) => {
                            return error_page(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "shop",
                                nav_plain(),
                                &e.to_string(),
                            );
                        }
                    }
                }
            };
            let mut recent = guest_recent(&headers);
            recent.retain(|i| i != item.id.as_str());
            recent.insert(0, item.id.as_str().to_owned());
            recent.truncate(RECENT_LEN);
            let value: Vec<String> = recent.iter().map(|i| encode(i)).collect();
            cookies.push(set_cookie(
                RECENT_COOKIE,
                &value.join("|"),
                GUEST_COOKIE_SECONDS,
                secure,
            ));
            Actor::Session(session)
        }
    };
    let failed = |e: crate::ApiError| error_page(e.status, "shop", nav(&[], None), &e.message);
    let id = match EventId::new(random_id("web-view-")) {
        Ok(id) => id,
        Err(e) => return failed(crate::ApiError::internal(e)),
    };
    let event = Event {
        id,
        actor,
        item: Some(item.id.clone()),
        kind: EventKind::View,
        value: None,
        timestamp: chrono::Utc::now(),
        context: None,
    };
    let shown = form
        .recommendation_id
        .as_deref()
        .and_then(|r| r.parse::<marquee_store::RecommendationId>().ok());
    if let Err(e) = state.record_events(vec![event], vec![shown]).await {
        return failed(e);
    }
    let mut location = format!("/items/{}", encode(item.id.as_str()));
    if let Some(u) = user {
        location.push_str(&format!("?user_id={}", encode(u)));
    }
    see_other(&location, &cookies)
}

/// The catalog item `id` if it exists and is not hidden; else the page to answer (404, or
/// the store's error).
async fn visible_item(state: &AppState, id: &str, nav: Markup) -> Result<Item, Response> {
    let found = match ItemId::new(id) {
        Ok(item_id) => state.store.item(&item_id).await,
        Err(_) => Ok(None),
    };
    match found {
        Ok(Some(item)) if !item.hidden => Ok(item),
        Ok(_) => Err(error_page(
            StatusCode::NOT_FOUND,
            "shop",
            nav,
            &format!("There is no item {id:?}."),
        )),
        Err(e) => {
            let e = crate::ApiError::internal(e);
            Err(error_page(e.status, "shop", nav, &e.message))
        }
    }
}

/// `GET /items/{id}?user_id`: the item and "More like this".
async fn item_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<Who>, QueryRejection>,
) -> Response {
    let users = picker_users(&state).await;
    let who = query.map_or(Who { user_id: None }, |Query(w)| w);
    let user = who.user();
    let item = match visible_item(&state, &id, nav(&users, user)).await {
        Ok(item) => item,
        Err(page) => return page,
    };
    let similar = state
        .engine
        .similar(&item.id, ROW_LEN, &Filters::default())
        .map(|a| a.items)
        .unwrap_or_default();
    let items = items_of(&state, similar.iter().map(|r| r.item.as_str())).await;
    let row = HomeRow {
        id: "similar",
        title: "More like this".into(),
        about: Some(item.id.as_str().to_owned()),
        items: similar,
    };
    let shown = crate::recommend::record_shown(
        &state,
        "similar",
        user.and_then(|u| UserId::new(u).ok()),
        if user.is_none() {
            guest_session(&headers)
        } else {
            None
        },
        &state.engine.version(),
        &row.items,
    );
    let body = html! {
        p { a href=(home_link(user)) { "← Back to the rows" } }
        article.detail data-item=(item.id.as_str()) {
            h1 { (item.title) }
            div.muted { (item.category)
                @for g in &item.genres { " · " (g) } }
            @if let Some(p) = item.price { div.price { (money(p.minor, Some(p.currency.as_str()))) } }
            @if !item.in_stock { div.error { "Out of stock" } }
        }
        @if row.items.is_empty() {
            p.muted { "Nothing similar yet: this item has no viewing history in the model." }
        } @else {
            (render_row(&row, &shown, &items, user))
        }
        (tracker(tracker_key(&state).await.as_deref(), user, guest_session(&headers).as_ref(), Some(item.id.as_str())))
    };
    shop_page(
        StatusCode::OK,
        layout(&item.title, "shop", nav(&users, user), body),
    )
}
