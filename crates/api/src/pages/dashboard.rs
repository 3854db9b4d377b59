//! The admin dashboard (admin listener): a login form takes an admin key and opens a session
//! kept in an HttpOnly, SameSite=Strict cookie (stored only as a hash; it ends after
//! [`SESSION_HOURS`], at logout, or when the key is revoked). Pages: KPIs, revenue by month,
//! top products, funnel and recent orders (`/`); segments with their exports
//! (`/segments`); model versions with their metrics and activation (`/models`); the catalog
//! with a form to add or edit an item (`/catalog`).
//!
//! The numbers are the admin API's: the same store queries over the same ranges, which each
//! figure states (`data-from`/`data-to`, `data-minor` hold the exact values).

use super::svg::{Group, bars};
use super::{
    cookie, encode, error_page, is_https, layout, money, page, same_origin, see_other, set_cookie,
};
use crate::admin::segments::ExportQuery;
use crate::{ApiError, AppState};
use axum::Form;
use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, Datelike, TimeZone, Utc};
use marquee_domain::{Currency, Item, ItemId, Money};
use marquee_store::ItemQuery;
use marquee_store::kpis::{DateRange, Period, RankBy};
use maud::{Markup, html};
use serde::Deserialize;

/// The session cookie.
pub(crate) const SESSION_COOKIE: &str = "mq_admin";
/// How long a dashboard session lasts.
pub(crate) const SESSION_HOURS: u64 = 8;
/// Months the revenue chart shows at most.
const CHART_MONTHS: usize = 24;
/// Items per catalog page.
const CATALOG_PAGE: u32 = 50;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(overview))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/segments", get(segments))
        .route("/segments/export", get(export))
        .route("/models", get(models))
        .route("/models/{version}/activate", post(activate))
        .route("/catalog", get(catalog))
        .route("/catalog/edit", get(edit_form))
        .route("/catalog/save", post(save))
}

/// Who is logged in: the prefix of the admin key that opened the session. Handlers that
/// change something put it on their answer, for the audit log.
#[derive(Debug, Clone)]
pub(crate) struct AuditActor(pub String);

fn nav(logged_in: bool) -> Markup {
    html! {
        a.brand href="/" { "MARQUEE admin" }
        @if logged_in {
            nav {
                a href="/" { "Overview" }
                a href="/segments" { "Segments" }
                a href="/models" { "Models" }
                a href="/catalog" { "Catalog" }
            }
            form method="post" action="/logout" {
                button.secondary type="submit" { "Log out" }
            }
        }
    }
}

/// The session's key prefix, or the answer to send instead (to the login form when there is
/// no valid session).
async fn session(state: &AppState, headers: &HeaderMap) -> Result<String, Response> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Err(see_other("/login", &[]));
    };
    match state.store.admin_session(token).await {
        Ok(Some(prefix)) => Ok(prefix),
        Ok(None) => Err(see_other(
            "/login?expired=1",
            &[set_cookie(SESSION_COOKIE, "", 0, is_https(headers))],
        )),
        Err(e) => Err(failure(ApiError::internal(e))),
    }
}

fn failure(e: ApiError) -> Response {
    error_page(e.status, "admin", nav(true), &e.message)
}

/// A form post's session: the session, and the post must come from this site.
async fn post_session(state: &AppState, headers: &HeaderMap) -> Result<String, Response> {
    if !same_origin(headers) {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            "admin",
            nav(false),
            "This form was posted from another site.",
        ));
    }
    session(state, headers).await
}

fn audited(mut response: Response, prefix: String) -> Response {
    response.extensions_mut().insert(AuditActor(prefix));
    response
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    expired: Option<String>,
}

async fn login_form(query: Result<Query<LoginQuery>, QueryRejection>) -> Response {
    let expired = query.is_ok_and(|Query(q)| q.expired.is_some());
    let message = expired.then_some("Your session ended; log in again.");
    login_page(StatusCode::OK, message)
}

fn login_page(status: StatusCode, error: Option<&str>) -> Response {
    let body = html! {
        h1 { "Log in" }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form.form.panel method="post" action="/login" {
            label { "Admin key"
                input type="password" name="key" autocomplete="current-password" required;
            }
            button type="submit" { "Log in" }
            p.muted { "Use an admin API key (serve prints one at its first start; "
                "`POST /v1/admin/keys` makes more). The session lasts "
                (SESSION_HOURS) " hours." }
        }
    };
    page(status, layout("Log in", "admin", nav(false), body))
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    key: String,
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    if !same_origin(&headers) {
        return login_page(
            StatusCode::FORBIDDEN,
            Some("This form was posted from another site."),
        );
    }
    let Ok(Form(form)) = form else {
        return login_page(StatusCode::BAD_REQUEST, Some("Enter an admin key."));
    };
    let ttl = std::time::Duration::from_secs(SESSION_HOURS * 3600);
    match state.store.open_admin_session(form.key.trim(), ttl).await {
        Ok(Some(token)) => {
            let prefix: String = form.key.trim().chars().take(14).collect();
            let cookie = set_cookie(
                SESSION_COOKIE,
                &token,
                SESSION_HOURS * 3600,
                is_https(&headers),
            );
            audited(see_other("/", &[cookie]), prefix)
        }
        Ok(None) => login_page(
            StatusCode::UNAUTHORIZED,
            Some("That is not an active admin key."),
        ),
        Err(e) => {
            let e = ApiError::internal(e);
            login_page(e.status, Some(&e.message))
        }
    }
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = state.store.close_admin_session(token).await
    {
        return failure(ApiError::internal(e));
    }
    see_other(
        "/login",
        &[set_cookie(SESSION_COOKIE, "", 0, is_https(&headers))],
    )
}

/// The first instant of the month `months_back` months before the one `now` is in.
fn month_start(now: DateTime<Utc>, months_back: u32) -> DateTime<Utc> {
    let total = now.year() * 12 + now.month0() as i32 - months_back as i32;
    Utc.with_ymd_and_hms(
        total.div_euclid(12),
        total.rem_euclid(12) as u32 + 1,
        1,
        0,
        0,
        0,
    )
    .single()
    .unwrap_or(now)
}

/// One KPI card; `minor`/`count` and the range go into data attributes for exact checks.
fn kpi(id: &str, label: &str, shown: String, value: i64, range: &DateRange) -> Markup {
    let day = |t: Option<DateTime<Utc>>| t.map(|t| t.format("%Y-%m-%d").to_string());
    html! {
        div.kpi #(id) data-value=(value) data-from=[day(range.from)] data-to=[day(range.to)] {
            div.label { (label) }
            div.value { (shown) }
        }
    }
}

async fn overview(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = session(&state, &headers).await {
        return r;
    }
    match overview_body(&state).await {
        Ok(body) => page(StatusCode::OK, layout("Overview", "admin", nav(true), body)),
        Err(e) => failure(e),
    }
}

async fn overview_body(state: &AppState) -> Result<Markup, ApiError> {
    let store = &state.store;
    let now = Utc::now();
    let this_month = DateRange::new(Some(month_start(now, 0)), None)?;
    let last_month = DateRange::new(Some(month_start(now, 1)), Some(month_start(now, 0)))?;
    let sum = |rows: &[marquee_store::kpis::RevenueRow]| {
        (
            rows.iter().map(|r| r.revenue_minor).sum::<i64>(),
            rows.iter().map(|r| r.orders).sum::<u64>(),
        )
    };
    let (rev_this, orders_this) = sum(&store.revenue_by_period(Period::Month, this_month).await?);
    let (rev_last, orders_last) = sum(&store.revenue_by_period(Period::Month, last_month).await?);
    let by_month = store
        .revenue_by_period(Period::Month, DateRange::default())
        .await?;
    let all = DateRange::default();
    let top = store.top_products(all, RankBy::Revenue, 10).await?;
    let funnel = store.funnel(all).await?;
    let recent = store.recent_orders(None, 0, 10).await?;
    let currency = recent
        .iter()
        .flat_map(|o| o.lines.first())
        .map(|l| l.unit_price.currency.as_str().to_owned())
        .next();
    let cur = currency.as_deref();
    let titles = {
        let ids: Vec<ItemId> = top
            .iter()
            .filter_map(|p| ItemId::new(p.item.as_str()).ok())
            .collect();
        store
            .items_by_ids(&ids)
            .await?
            .into_iter()
            .map(|i| (i.id.as_str().to_owned(), i.title))
            .collect::<std::collections::HashMap<_, _>>()
    };
    let shown: Vec<_> = by_month
        .iter()
        .skip(by_month.len().saturating_sub(CHART_MONTHS))
        .collect();
    let groups: Vec<Group> = shown
        .iter()
        .map(|r| Group {
            label: r.period.clone(),
            values: vec![r.revenue_minor as f64],
        })
        .collect();
    let chart = bars("Revenue by month", &["revenue"], &groups, &|v| {
        money_short(v, cur)
    });
    let latest = by_month.last().map(|r| r.period.clone());
    Ok(html! {
        h1 { "Overview" }
        div.kpis {
            (kpi("kpi-revenue-this-month", "Revenue this month", money(rev_this, cur), rev_this, &this_month))
            (kpi("kpi-revenue-last-month", "Revenue last month", money(rev_last, cur), rev_last, &last_month))
            (kpi("kpi-orders-this-month", "Orders this month", orders_this.to_string(), orders_this as i64, &this_month))
            (kpi("kpi-orders-last-month", "Orders last month", orders_last.to_string(), orders_last as i64, &last_month))
        }
        @if orders_this == 0 && orders_last == 0 {
            @if let Some(l) = &latest {
                p.muted { "No orders in the last two months; the newest orders are from " (l) "." }
            }
        }
        div.grid2 {
            div.panel {
                h2 { "Revenue by month" }
                @if groups.is_empty() { p.muted { "No orders yet." } } @else { (chart) }
            }
            div.panel #funnel data-viewed=(funnel.viewed) data-carted=(funnel.added_to_cart)
                data-purchased=(funnel.purchased) {
                h2 { "Funnel (all time)" }
                table {
                    tr { th { "Viewed" } td.num { (funnel.viewed) } td.num { "" } }
                    tr { th { "Added to cart" } td.num { (funnel.added_to_cart) }
                         td.num { (pct(funnel.view_to_cart)) " of viewers" } }
                    tr { th { "Purchased" } td.num { (funnel.purchased) }
                         td.num { (pct(funnel.cart_to_purchase)) " of carts" } }
                }
                p.muted { (pct(funnel.view_to_purchase)) " of viewers bought." }
            }
        }
        div.grid2 {
            div.panel {
                h2 { "Top products (all time, by revenue)" }
                div.scroll { table #top-products {
                    tr { th { "Item" } th.num { "Units" } th.num { "Revenue" } }
                    @for p in &top {
                        tr data-item=(p.item) data-minor=(p.revenue_minor) {
                            td { (titles.get(&p.item).map_or(p.item.as_str(), String::as_str)) }
                            td.num { (p.units) }
                            td.num { (money(p.revenue_minor, cur)) }
                        }
                    }
                } }
            }
            div.panel {
                h2 { "Recent orders" }
                div.scroll { table #recent-orders {
                    tr { th { "Order" } th { "Customer" } th { "Placed" } th { "Status" } th.num { "Total" } }
                    @for o in &recent {
                        tr {
                            td { (o.id.as_str()) }
                            td { (o.user.as_ref().map_or("guest", |u| u.as_str())) }
                            td { (o.created_at.format("%Y-%m-%d %H:%M")) }
                            td { (o.status.as_str()) }
                            td.num { (money(o.total_minor(), o.lines.first().map(|l| l.unit_price.currency.as_str()))) }
                        }
                    }
                } }
            }
        }
    })
}

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1}%", 100.0 * x)
    } else {
        "–".to_owned()
    }
}

/// An axis label: thousands as `k`, millions as `M`, in major units.
fn money_short(minor: f64, currency: Option<&str>) -> String {
    let major = minor / 100.0;
    let text = if major.abs() >= 1e6 {
        format!("{:.1}M", major / 1e6)
    } else if major.abs() >= 1e3 {
        format!("{:.0}k", major / 1e3)
    } else {
        format!("{major:.0}")
    };
    match currency {
        Some(c) if major != 0.0 => format!("{text} {c}"),
        _ => text,
    }
}

async fn segments(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = session(&state, &headers).await {
        return r;
    }
    let run = match state.store.latest_segment_run().await {
        Ok(run) => run,
        Err(e) => return failure(ApiError::internal(e)),
    };
    let Some(run) = run else {
        let body = html! {
            h1 { "Segments" }
            p { "No segments computed yet: run " code { "segments compute" }
                " or " code { "POST /v1/admin/segments/recompute" } "." }
        };
        return page(StatusCode::OK, layout("Segments", "admin", nav(true), body));
    };
    let sizes = match state.store.segment_sizes(&run.version).await {
        Ok(s) => s,
        Err(e) => return failure(ApiError::internal(e)),
    };
    let total: i64 = sizes.iter().map(|s| s.2).sum();
    let customers: u64 = sizes.iter().map(|s| s.1).sum();
    let link = |segment: &str, format: &str| {
        format!(
            "/segments/export?segment={}&format={format}",
            encode(segment)
        )
    };
    let body = html! {
        h1 { "Segments" }
        p.muted { "Run " (run.version) ", computed " (run.computed_at.format("%Y-%m-%d %H:%M"))
            " UTC, recency as of " (run.reference.format("%Y-%m-%d")) "; k = " (run.k)
            ", silhouette " (format!("{:.3}", run.silhouette)) "." }
        div.panel { div.scroll { table #segments {
            tr { th { "Segment" } th.num { "Customers" } th.num { "Revenue share" } th { "Export (consenting customers)" } }
            @for (name, size, revenue) in &sizes {
                tr data-segment=(name) data-customers=(size) {
                    td { (name) }
                    td.num { (size) }
                    td.num { (pct(if total > 0 { *revenue as f64 / total as f64 } else { f64::NAN })) }
                    td {
                        a.export href=(link(name, "csv")) download { "CSV" } " · "
                        a href=(link(name, "parquet")) download { "Parquet" }
                    }
                }
            }
            tr {
                th { "All" } th.num { (customers) } th.num { "100%" }
                td { a href=(link("all", "csv")) download { "CSV" } " · "
                     a href=(link("all", "parquet")) download { "Parquet" } }
            }
        } } }
        p.muted { "Exports hold only customers who consented to marketing, with the columns "
            "of " code { "segments export" } "." }
    };
    page(StatusCode::OK, layout("Segments", "admin", nav(true), body))
}

async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Response {
    let prefix = match session(&state, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return failure(ApiError::from(e)),
    };
    match crate::admin::segments::export(&state, q).await {
        Ok(r) => audited(r, prefix),
        Err(e) => failure(e),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ModelsQuery {
    activated: Option<String>,
}

/// A test metric of a manifest (`test` or `baseline`) at the cut-off it was computed at.
fn metric(m: &marquee_engine::Manifest, part: &str, name: &str) -> Option<f64> {
    m.metrics.get(part)?.get(name)?.as_f64()
}

async fn models(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ModelsQuery>, QueryRejection>,
) -> Response {
    if let Err(r) = session(&state, &headers).await {
        return r;
    }
    let activated = query.ok().and_then(|Query(q)| q.activated);
    let mut versions = match crate::admin::models::model_versions(&state) {
        Ok(v) => v,
        Err(e) => return failure(e),
    };
    let active = state.engine.version();
    let k = versions
        .iter()
        .find_map(|m| metric(m, "test", "k"))
        .map_or_else(|| "k".to_owned(), |k| format!("{k:.0}"));
    let series_names = [
        format!("nDCG@{k}"),
        format!("Recall@{k}"),
        format!("Popularity nDCG@{k}"),
    ];
    let series: Vec<&str> = series_names.iter().map(String::as_str).collect();
    // Oldest first on the chart, at most the 12 newest versions.
    versions.truncate(50);
    let groups: Vec<Group> = versions
        .iter()
        .take(12)
        .rev()
        .map(|m| Group {
            label: m.version.clone(),
            values: vec![
                metric(m, "test", "ndcg").unwrap_or(f64::NAN),
                metric(m, "test", "recall").unwrap_or(f64::NAN),
                metric(m, "baseline", "ndcg").unwrap_or(f64::NAN),
            ],
        })
        .collect();
    let f3 = |x: Option<f64>| x.map_or_else(|| "–".to_owned(), |v| format!("{v:.3}"));
    let body = html! {
        h1 { "Models" }
        @if let Some(v) = &activated { p.notice role="status" { "Version " (v) " is now active." } }
        p { "Serving " strong #active-version { (active) } " (" (state.engine.kind()) ")." }
        div.panel {
            h2 { "Test metrics by version" }
            @if groups.iter().all(|g| g.values.iter().all(|v| v.is_nan())) {
                p.muted { "No version has test metrics." }
            } @else {
                (bars("Test metrics by version", &series, &groups, &|v| format!("{v:.2}")))
            }
        }
        div.panel { div.scroll { table #versions {
            tr { th { "Version" } th { "Model" } th { "Trained" } th.num { (series[0]) }
                 th.num { (series[1]) } th.num { (series[2]) } th { "" } }
            @for m in &versions {
                tr data-version=(m.version) {
                    td { (m.version) }
                    td { (m.kind) }
                    td { (m.created_at.format("%Y-%m-%d %H:%M")) }
                    td.num { (f3(metric(m, "test", "ndcg"))) }
                    td.num { (f3(metric(m, "test", "recall"))) }
                    td.num { (f3(metric(m, "baseline", "ndcg"))) }
                    td {
                        @if m.version == active { strong { "active" } } @else {
                            form.inline method="post" action=(format!("/models/{}/activate", encode(&m.version))) {
                                button type="submit" { "Activate" }
                            }
                        }
                    }
                }
            }
        } } }
    };
    page(StatusCode::OK, layout("Models", "admin", nav(true), body))
}

async fn activate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(version): Path<String>,
) -> Response {
    let prefix = match post_session(&state, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let response = match crate::admin::models::activate(&state, &version).await {
        Ok(v) => see_other(&format!("/models?activated={}", encode(&v)), &[]),
        Err(e) => failure(e),
    };
    audited(response, prefix)
}

#[derive(Debug, Deserialize)]
pub(crate) struct CatalogQuery {
    q: Option<String>,
    after: Option<String>,
}

async fn catalog(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<CatalogQuery>, QueryRejection>,
) -> Response {
    if let Err(r) = session(&state, &headers).await {
        return r;
    }
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return failure(ApiError::from(e)),
    };
    let text = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty());
    let items = match state
        .store
        .search_items(&ItemQuery {
            category: None,
            text,
            after: q.after.as_deref(),
            limit: CATALOG_PAGE,
            include_hidden: true,
            include_out_of_stock: true,
        })
        .await
    {
        Ok(items) => items,
        Err(e) => return failure(ApiError::internal(e)),
    };
    let next = (items.len() == CATALOG_PAGE as usize)
        .then(|| items.last())
        .flatten()
        .map(|i| {
            let mut link = format!("/catalog?after={}", encode(i.id.as_str()));
            if let Some(t) = text {
                link.push_str(&format!("&q={}", encode(t)));
            }
            link
        });
    let body = html! {
        h1 { "Catalog" }
        div.panel {
            form method="get" action="/catalog" {
                input name="q" value=(text.unwrap_or("")) placeholder="title or id" aria-label="Search";
                " " button type="submit" { "Search" }
                " " a href="/catalog/edit" { "Add an item" }
            }
        }
        div.panel { div.scroll { table #catalog {
            tr { th { "Id" } th { "Title" } th { "Category" } th.num { "Price" } th { "Stock" } th { "" } }
            @for i in &items {
                tr data-item=(i.id.as_str()) {
                    td { (i.id.as_str()) }
                    td { (i.title) }
                    td { (i.category) }
                    td.num { (i.price.map_or_else(String::new, |p| money(p.minor, Some(p.currency.as_str())))) }
                    td { @if i.hidden { "hidden" } @else if i.in_stock { "in stock" } @else { "out of stock" } }
                    td { a href=(format!("/catalog/edit?id={}", encode(i.id.as_str()))) { "Edit" } }
                }
            }
        } }
        @if let Some(n) = next { p { a href=(n) { "Next page →" } } } }
    };
    page(StatusCode::OK, layout("Catalog", "admin", nav(true), body))
}

#[derive(Debug, Deserialize)]
pub(crate) struct EditQuery {
    id: Option<String>,
    saved: Option<String>,
}

async fn edit_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<EditQuery>, QueryRejection>,
) -> Response {
    if let Err(r) = session(&state, &headers).await {
        return r;
    }
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return failure(ApiError::from(e)),
    };
    let item = match q.id.as_deref().map(ItemId::new) {
        None => None,
        Some(Ok(id)) => match state.store.item(&id).await {
            Ok(Some(item)) => Some(item),
            Ok(None) => {
                return error_page(
                    StatusCode::NOT_FOUND,
                    "admin",
                    nav(true),
                    &format!("There is no item {:?}.", id.as_str()),
                );
            }
            Err(e) => return failure(ApiError::internal(e)),
        },
        Some(Err(e)) => {
            return failure(ApiError::bad_request("invalid_item_id", e.to_string()));
        }
    };
    let form = ItemForm::from_item(item.as_ref());
    let notice = q
        .saved
        .is_some()
        .then_some("Saved: the storefront already uses it.");
    edit_page(StatusCode::OK, &form, item.is_some(), notice, None)
}

/// The item form's fields, as text.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ItemForm {
    id: String,
    title: String,
    category: String,
    #[serde(default)]
    genres: String,
    #[serde(default)]
    price: String,
    #[serde(default)]
    currency: String,
    in_stock: Option<String>,
    hidden: Option<String>,
}

impl ItemForm {
    fn from_item(item: Option<&Item>) -> Self {
        let Some(i) = item else {
            return Self {
                in_stock: Some("on".into()),
                ..Self::default()
            };
        };
        Self {
            id: i.id.as_str().to_owned(),
            title: i.title.clone(),
            category: i.category.clone(),
            genres: i.genres.join(", "),
            price: i.price.map_or_else(String::new, |p| {
                format!("{}.{:02}", p.minor / 100, (p.minor % 100).abs())
            }),
            currency: i
                .price
                .map_or_else(String::new, |p| p.currency.as_str().to_owned()),
            in_stock: i.in_stock.then(|| "on".into()),
            hidden: i.hidden.then(|| "on".into()),
        }
    }

    /// The item the form describes, on top of what is stored of it (creation time,
    /// attributes); an error names the field to fix.
    fn to_item(&self, stored: Option<Item>) -> Result<Item, String> {
        let id = ItemId::new(self.id.trim()).map_err(|e| format!("Id: {e}"))?;
        let mut item = stored.unwrap_or_else(|| Item::new(id.clone(), "", "", Utc::now()));
        item.title = self.title.trim().to_owned();
        item.category = self.category.trim().to_owned();
        item.genres = self
            .genres
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(str::to_owned)
            .collect();
        item.price = match self.price.trim() {
            "" => None,
            price => {
                let currency = Currency::new(self.currency.trim())
                    .map_err(|_| "Currency: give a three-letter code such as EUR".to_owned())?;
                Some(Money::new(parse_price(price)?, currency))
            }
        };
        item.in_stock = self.in_stock.is_some();
        item.hidden = self.hidden.is_some();
        item.validate().map_err(|e| e.to_string())?;
        Ok(item)
    }
}

/// `12`, `12.5` or `12.50` as minor units (1250).
fn parse_price(s: &str) -> Result<i64, String> {
    let bad = || format!("Price: {s:?} is not an amount such as 12.50");
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 2 {
        return Err(bad());
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: i64 = whole.parse().map_err(|_| bad())?;
    let frac: i64 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(bad)
}

fn edit_page(
    status: StatusCode,
    f: &ItemForm,
    existing: bool,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let title = if existing { "Edit item" } else { "Add an item" };
    let body = html! {
        p { a href="/catalog" { "← Catalog" } }
        h1 { (title) }
        @if let Some(n) = notice { p.notice role="status" { (n) } }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form.form.panel method="post" action="/catalog/save" {
            label { "Id"
                @if existing { input name="id" value=(f.id) readonly; }
                @else { input name="id" value=(f.id) required; } }
            label { "Title" input name="title" value=(f.title) required; }
            label { "Category" input name="category" value=(f.category) required; }
            label { "Genres or tags (comma-separated)" input name="genres" value=(f.genres); }
            label { "Price (empty: not sold one by one)" input name="price" value=(f.price) inputmode="decimal"; }
            label { "Currency" input name="currency" value=(f.currency) maxlength="3" placeholder="EUR"; }
            label.check { input type="checkbox" name="in_stock" checked[f.in_stock.is_some()]; "In stock" }
            label.check { input type="checkbox" name="hidden" checked[f.hidden.is_some()]; "Hidden (never listed or recommended)" }
            button type="submit" { "Save" }
        }
    };
    page(status, layout(title, "admin", nav(true), body))
}

async fn save(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<ItemForm>, FormRejection>,
) -> Response {
    let prefix = match post_session(&state, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Ok(Form(form)) = form else {
        return audited(
            edit_page(
                StatusCode::BAD_REQUEST,
                &ItemForm::default(),
                false,
                None,
                Some("The form needs an id, a title and a category."),
            ),
            prefix,
        );
    };
    let stored = match ItemId::new(form.id.trim()) {
        Ok(id) => match state.store.item(&id).await {
            Ok(s) => s,
            Err(e) => return audited(failure(ApiError::internal(e)), prefix),
        },
        Err(_) => None,
    };
    let existing = stored.is_some();
    let item = match form.to_item(stored) {
        Ok(item) => item,
        Err(message) => {
            return audited(
                edit_page(
                    StatusCode::BAD_REQUEST,
                    &form,
                    existing,
                    None,
                    Some(&message),
                ),
                prefix,
            );
        }
    };
    let response = match crate::catalog::save_items(&state, std::slice::from_ref(&item)).await {
        Ok(()) => see_other(
            &format!("/catalog/edit?id={}&saved=1", encode(item.id.as_str())),
            &[],
        ),
        Err(e) => failure(e),
    };
    audited(response, prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_parse_exactly_or_say_why_not() {
        assert_eq!(parse_price("12"), Ok(1200));
        assert_eq!(parse_price("12.5"), Ok(1250));
        assert_eq!(parse_price("0.07"), Ok(7));
        for bad in [
            "",
            ".5",
            "1.234",
            "-3",
            "1,50",
            "abc",
            "99999999999999999999",
        ] {
            assert!(parse_price(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn months_step_back_across_years() {
        let t = Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap();
        assert_eq!(
            month_start(t, 0),
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            month_start(t, 1),
            Utc.with_ymd_and_hms(2025, 12, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            month_start(t, 13),
            Utc.with_ymd_and_hms(2024, 12, 1, 0, 0, 0).unwrap()
        );
    }
}
