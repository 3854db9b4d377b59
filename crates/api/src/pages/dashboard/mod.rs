//! The admin dashboard (admin listener): a login form takes an admin key and opens a session
//! kept in an HttpOnly, SameSite=Strict cookie (stored only as a hash; it ends after
//! [`SESSION_HOURS`], at logout, or when the key is revoked). Pages: KPIs, revenue by month,
//! top products, funnel and recent orders (`/`); segments with their exports
//! (`/segments`); model versions with their metrics and activation (`/models`); the catalog
//! with a form to add or edit an item (`/catalog`); recommendation KPIs and experiments
//! (`/recommendations`); placements with their edit form and preview (`/placements`);
//! behaviour analytics: events by day, retention cohorts, funnels, next purchase
//! (`/behaviour`); API keys and new publishable keys (`/keys`).
//!
//! The numbers are the admin API's: the same store queries over the same ranges, which each
//! figure states (`data-from`/`data-to`, `data-minor` hold the exact values).

mod behaviour;
mod catalog;
mod models;
mod overview;
mod placements;
mod recommendations;

use behaviour::{behaviour, create_publishable, keys};
use catalog::{catalog, edit_form, save};
use models::{activate, export, models, segments};
use overview::overview;
use placements::{delete_placement, edit_placement, placements, save_placement};
use recommendations::{recommendations, start_experiment, stop_experiment};

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
        .route("/recommendations", get(recommendations))
        .route("/experiments", post(start_experiment))
        .route("/experiments/{name}/stop", post(stop_experiment))
        .route("/placements", get(placements))
        .route("/placements/edit", get(edit_placement))
        .route("/placements/save", post(save_placement))
        .route("/placements/{name}/delete", post(delete_placement))
        .route("/behaviour", get(behaviour))
        .route("/keys", get(keys))
        .route("/keys/publishable", post(create_publishable))
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
                a href="/recommendations" { "Recommendations" }
                a href="/placements" { "Placements" }
                a href="/behaviour" { "Behaviour" }
                a href="/catalog" { "Catalog" }
                a href="/keys" { "Keys" }
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
