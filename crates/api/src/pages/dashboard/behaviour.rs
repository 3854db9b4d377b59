//! The behaviour page (`/behaviour`): the event explorer (events per day and kind over the
//! last 30 days, filterable by kind, item or category), weekly retention cohorts as a heatmap,
//! a custom funnel (steps written `view > add_to_cart > order`, a step narrowed with
//! `kind:item=ID` or `kind:category=NAME`) and next purchase for an item — the numbers of the
//! admin API's `/v1/admin/analytics/{events,retention,funnel,next-purchase}`.
//!
//! The keys page (`/keys`): every API key (secret ones by prefix, publishable ones in full
//! with their origins) and a form that creates a publishable key for the tracker.

use super::*;
use marquee_domain::EventKind;
use marquee_store::behaviour::{self, Step, StepSpec};
use std::collections::HashMap;

/// Days the event explorer shows.
const DAYS: i64 = 30;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct BehaviourQuery {
    kind: Option<String>,
    item_id: Option<String>,
    category: Option<String>,
    steps: Option<String>,
    window_hours: Option<String>,
    next_item: Option<String>,
}

/// `view > add_to_cart:category=mugs > order:item=A1` as steps.
fn parse_steps(text: &str) -> Result<Vec<Step>, String> {
    let specs: Vec<StepSpec> = text
        .split('>')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (kind, narrow) = s.split_once(':').unwrap_or((s, ""));
            let mut spec = StepSpec {
                kind: kind.trim().to_owned(),
                item_id: None,
                category: None,
            };
            match narrow.split_once('=') {
                Some(("item", v)) => spec.item_id = Some(v.trim().to_owned()),
                Some(("category", v)) => spec.category = Some(v.trim().to_owned()),
                _ if narrow.is_empty() => {}
                _ => {
                    return Err(format!(
                        "{s:?}: narrow a step with :item=ID or :category=NAME"
                    ));
                }
            }
            Ok(spec)
        })
        .collect::<Result<_, _>>()?;
    if specs.len() < 2 || specs.len() > crate::admin::behaviour::MAX_STEPS {
        return Err(format!(
            "a funnel has 2 to {} steps, not {}",
            crate::admin::behaviour::MAX_STEPS,
            specs.len()
        ));
    }
    specs
        .iter()
        .enumerate()
        .map(|(n, s)| Step::check(n, s))
        .collect()
}

fn heat(share: f64) -> String {
    format!(
        "background: rgba(37, 99, 235, {:.2}); color: {}",
        share.clamp(0.0, 1.0) * 0.85,
        if share > 0.5 { "#fff" } else { "inherit" }
    )
}

pub(super) async fn behaviour(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<BehaviourQuery>, QueryRejection>,
) -> Response {
    if let Err(r) = session(&state, &headers).await {
        return r;
    }
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let blank = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let (kind_text, item_text, category) = (blank(&q.kind), blank(&q.item_id), blank(&q.category));
    let steps_text = blank(&q.steps).unwrap_or_else(|| "view > add_to_cart > order".to_owned());
    let window: u32 = blank(&q.window_hours)
        .and_then(|w| w.parse().ok())
        .filter(|w| (1..=8784).contains(w))
        .unwrap_or(crate::admin::behaviour::DEFAULT_WINDOW_HOURS);
    let mut problems = Vec::new();
    let kind = kind_text.as_deref().and_then(|k| {
        EventKind::parse(k)
            .map_err(|e| problems.push(format!("kind: {e}")))
            .ok()
    });
    let item = item_text.as_deref().and_then(|i| {
        ItemId::new(i)
            .map_err(|e| problems.push(format!("item: {e}")))
            .ok()
    });
    let steps = parse_steps(&steps_text)
        .map_err(|m| problems.push(format!("funnel: {m}")))
        .ok();
    let next_item = blank(&q.next_item).and_then(|i| {
        ItemId::new(i)
            .map_err(|e| problems.push(format!("next purchase: {e}")))
            .ok()
    });
    let data = async {
        // Retention needs the orders' times; the funnel may need their items.
        let orders = match steps.as_deref().map(crate::admin::behaviour::order_touches) {
            Some(marquee_store::OrderTouches::WithItems) => marquee_store::OrderTouches::WithItems,
            _ => marquee_store::OrderTouches::Times,
        };
        let touches = state.store.touches(orders).await?;
        let categories: HashMap<ItemId, String> = state
            .store
            .all_items()
            .await?
            .into_iter()
            .map(|i| (i.id, i.category))
            .collect();
        let next = match &next_item {
            Some(i) => Some(state.store.next_purchase(i, 20).await?),
            None => None,
        };
        Ok::<_, marquee_store::Error>((touches, categories, next))
    };
    let (touches, categories, next) = match data.await {
        Ok(d) => d,
        Err(e) => return failure(ApiError::internal(e)),
    };
    let now = Utc::now();
    let from = (now - chrono::TimeDelta::days(DAYS))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc()
        .timestamp_millis();
    let days = behaviour::event_counts(
        &touches,
        Some(from),
        None,
        kind,
        item.as_ref(),
        category.as_deref(),
        &categories,
    );
    let kinds_seen: Vec<&str> = EventKind::ALL
        .iter()
        .map(|k| k.as_str())
        .filter(|k| days.iter().any(|d| d.kinds.contains_key(k)))
        .collect();
    let cohorts = behaviour::retention(&touches, &[], 8, None, None);
    let funnel = steps.as_ref().map(|s| {
        behaviour::funnel(
            &touches,
            s,
            i64::from(window) * 3_600_000,
            None,
            None,
            &categories,
        )
    });
    let value = |s: &Option<String>| s.clone().unwrap_or_default();
    let body = html! {
        h1 { "Behaviour" }
        @for p in &problems { p.error role="alert" { (p) } }
        h2 { "Events by day" }
        form.inline method="get" action="/behaviour" {
            label { "Kind " input name="kind" value=(value(&kind_text)) placeholder="any"; }
            label { "Item " input name="item_id" value=(value(&item_text)); }
            label { "Category " input name="category" value=(value(&category)); }
            input type="hidden" name="steps" value=(steps_text);
            button type="submit" { "Filter" }
        }
        p.muted { "The last " (DAYS) " days (UTC), from every event stored." }
        div.panel { div.scroll { table #events {
            tr { th { "Day" } th.num { "Events" } @for k in &kinds_seen { th.num { (k) } } }
            @for d in &days {
                tr data-day=(d.day) data-total=(d.total) {
                    td { (d.day) } td.num { (d.total) }
                    @for k in &kinds_seen { td.num { (d.kinds.get(k).copied().unwrap_or(0)) } }
                }
            }
            @if days.is_empty() { tr { td colspan="2" { "No events in these days." } } }
        } } }
        h2 { "Weekly retention" }
        p.muted { "Customers by the week (Monday, UTC) of their first event or order; each "
            "column is the share active N weeks later. Anonymous sessions are not counted." }
        div.panel { div.scroll { table #retention {
            tr { th { "Cohort" } th.num { "Customers" } @for n in 0..8 { th.num { "W" (n) } } }
            @for c in &cohorts {
                tr data-week=(c.week) data-people=(c.people) {
                    td { (c.week) } td.num { (c.people) }
                    @for (n, s) in c.share.iter().enumerate() {
                        td.num style=(heat(*s)) data-active=(c.active[n]) { (format!("{:.0}%", s * 100.0)) }
                    }
                }
            }
            @if cohorts.is_empty() { tr { td colspan="10" { "No customers yet." } } }
        } } }
        h2 { "Funnel" }
        form.inline method="get" action="/behaviour" {
            label { "Steps " input name="steps" size="48" value=(steps_text); }
            label { "Window (hours) " input name="window_hours" size="5" value=(window); }
            button type="submit" { "Count" }
        }
        p.muted { "Steps are event kinds or order, in order, separated by >; narrow one with "
            ":item=ID or :category=NAME. A person enters with the first step and must reach the "
            "next ones within the window." }
        @if let Some(f) = &funnel {
            div.panel { div.scroll { table #funnel {
                tr { th { "Step" } th.num { "People" } th.num { "Of the first" } th.num { "Of the previous" } th.num { "Median time from previous" } }
                @for s in f {
                    tr data-people=(s.people) {
                        td { (s.kind) @if let Some(i) = &s.item_id { " · " (i) } @if let Some(c) = &s.category { " · " (c) } }
                        td.num { (s.people) }
                        td.num { (format!("{:.1}%", s.conversion * 100.0)) }
                        td.num { (format!("{:.1}%", s.from_previous * 100.0)) }
                        td.num { (s.median_seconds_from_previous.map_or("–".to_owned(), |m| format!("{m:.0} s"))) }
                    }
                }
            } } }
        }
        h2 { "Next purchase" }
        form.inline method="get" action="/behaviour" {
            label { "Item " input name="next_item" value=(value(&q.next_item)); }
            input type="hidden" name="steps" value=(steps_text);
            button type="submit" { "Show" }
        }
        @if let Some(n) = &next {
            p { (n.buyers) " customers bought " (n.item_id) "; " (n.buyers_with_later_orders)
                " of them ordered again later." }
            div.panel { div.scroll { table #next-purchase {
                tr { th { "Item bought later" } th.num { "Customers" } th.num { "Share" } }
                @for i in &n.items {
                    tr data-item=(i.item_id) data-customers=(i.customers) {
                        td { (i.item_id) } td.num { (i.customers) } td.num { (format!("{:.1}%", i.share * 100.0)) }
                    }
                }
            } } }
        }
    };
    page(
        StatusCode::OK,
        layout("Behaviour", "admin", nav(true), body),
    )
}

#[derive(Debug, Deserialize)]
pub(crate) struct PublishableForm {
    label: String,
    origins: String,
}

fn keys_page(
    keys: &[marquee_store::ApiKeyInfo],
    refused: Option<&str>,
    created: Option<&str>,
) -> Markup {
    html! {
        h1 { "API keys" }
        @if let Some(m) = refused { p.error role="alert" { (m) } }
        @if let Some(k) = created { p.notice role="status" { "Publishable key created: " code { (k) } } }
        p.muted { "Secret keys (storefront, admin) are shown once when created and listed by "
            "prefix. Publishable keys go in web pages: they may only send events and read an "
            "anonymous session's answer, from the origins listed." }
        div.panel { div.scroll { table #keys {
            tr { th { "Prefix" } th { "Role" } th { "Label" } th { "Origins" } th { "Key" } th { "Created" } th { "Revoked" } }
            @for k in keys {
                tr data-prefix=(k.prefix) data-role=(k.role.as_str()) {
                    td { code { (k.prefix) } } td { (k.role.as_str()) } td { (k.label) }
                    td { (k.origins.join(", ")) }
                    td { @if let Some(key) = &k.key { code { (key) } } }
                    td { (k.created_at.format("%Y-%m-%d %H:%M")) }
                    td { @if let Some(r) = k.revoked_at { (r.format("%Y-%m-%d %H:%M")) } }
                }
            }
        } } }
        h2 { "New publishable key" }
        form method="post" action="/keys/publishable" {
            label { "Label " input name="label" maxlength="200"; }
            label { "Origins (comma-separated: https://shop.example, or self) " input name="origins" size="48"; }
            button type="submit" { "Create" }
        }
        p.muted { "Embed: " code { "<script src=\"https://<storefront>/sdk/marquee.js\" data-key=\"mq_pk_…\" defer></script>" } }
    }
}

pub(super) async fn keys(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = session(&state, &headers).await {
        return r;
    }
    match state.store.list_api_keys().await {
        Ok(keys) => page(
            StatusCode::OK,
            layout("Keys", "admin", nav(true), keys_page(&keys, None, None)),
        ),
        Err(e) => failure(ApiError::internal(e)),
    }
}

pub(super) async fn create_publishable(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<PublishableForm>, FormRejection>,
) -> Response {
    let prefix = match post_session(&state, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Ok(Form(form)) = form else {
        return failure(ApiError::bad_request(
            "invalid_form",
            "the key form is malformed",
        ));
    };
    let origins: Vec<String> = form
        .origins
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_owned)
        .collect();
    let (status, refused, created) = if form.label.len() > 200 {
        (
            StatusCode::BAD_REQUEST,
            Some("The label is longer than 200 bytes.".to_owned()),
            None,
        )
    } else {
        match marquee_store::check_origins(&origins) {
            Err(m) => (StatusCode::BAD_REQUEST, Some(m), None),
            Ok(origins) => match state
                .store
                .create_publishable_key(&form.label, &origins)
                .await
            {
                Ok(k) => (StatusCode::CREATED, None, Some(k.key)),
                Err(e) => return failure(ApiError::internal(e)),
            },
        }
    };
    let keys = match state.store.list_api_keys().await {
        Ok(k) => k,
        Err(e) => return failure(ApiError::internal(e)),
    };
    audited(
        page(
            status,
            layout(
                "Keys",
                "admin",
                nav(true),
                keys_page(&keys, refused.as_deref(), created.as_deref()),
            ),
        ),
        prefix,
    )
}
