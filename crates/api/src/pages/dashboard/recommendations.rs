//! The recommendations page (`/recommendations`): what answers showed and what they earned
//! (the KPIs of `GET /v1/admin/analytics/recommendations` by placement and by model version,
//! CTR and conversion by day as a line chart) over the last 30 days, and the experiments with
//! their results and verdicts, a form to start one and a button to stop each running one.

use super::overview::pct;
use super::*;
use crate::experiments::routes::{NewExperiment, NewVariant, end, results_of, start};
use crate::pages::svg::lines;
use marquee_store::{GroupBy, RecommendationKpis};

/// Days the page looks back.
const DAYS: i64 = 30;

#[derive(Debug, Deserialize)]
pub(crate) struct RecommendationsQuery {
    started: Option<String>,
    stopped: Option<String>,
}

fn kpi_table(id: &str, head: &str, rows: &[RecommendationKpis]) -> Markup {
    html! {
        div.panel { div.scroll { table id=(id) {
            tr { th { (head) } th.num { "Impressions" } th.num { "Users" } th.num { "Clicks" }
                 th.num { "CTR" } th.num { "Add to cart" } th.num { "Purchases" }
                 th.num { "Conversion" } th.num { "Revenue" } th.num { "Revenue / 1k" } }
            @for r in rows {
                tr data-key=(r.key) data-clicks=(r.clicks) data-impressions=(r.impressions) {
                    td { (r.key) } td.num { (r.impressions) } td.num { (r.users) }
                    td.num { (r.clicks) } td.num { (pct(r.ctr)) } td.num { (r.add_to_carts) }
                    td.num { (r.purchases) } td.num { (pct(r.conversion)) }
                    td.num data-minor=(r.revenue) { (money(r.revenue, None)) }
                    td.num { (money(r.revenue_per_1k_impressions.round() as i64, None)) }
                }
            }
            @if rows.is_empty() {
                tr { td colspan="10" { "No answers recorded in these days." } }
            }
        } } }
    }
}

pub(super) async fn recommendations(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<RecommendationsQuery>, QueryRejection>,
) -> Response {
    if let Err(r) = session(&state, &headers).await {
        return r;
    }
    let q = query.ok().map(|Query(q)| q);
    let now = Utc::now();
    let from = (now - chrono::TimeDelta::days(DAYS))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let range = DateRange {
        from: Some(from),
        to: None,
    };
    let kpis = async {
        let placement = state
            .store
            .recommendation_kpis(range, GroupBy::Placement)
            .await?;
        let model = state
            .store
            .recommendation_kpis(range, GroupBy::ModelVersion)
            .await?;
        let day = state.store.recommendation_kpis(range, GroupBy::Day).await?;
        let experiments = state.store.experiments().await?;
        Ok::<_, marquee_store::Error>((placement, model, day, experiments))
    };
    let (by_placement, by_model, by_day, experiments) = match kpis.await {
        Ok(k) => k,
        Err(e) => return failure(ApiError::internal(e)),
    };
    let mut results = Vec::new();
    for e in &experiments {
        match results_of(&state, &e.name).await {
            Ok(r) => results.push(r),
            Err(e) => return failure(e),
        }
    }
    let versions = crate::admin::models::model_versions(&state)
        .map(|v| v.into_iter().map(|m| m.version).collect::<Vec<_>>())
        .unwrap_or_default();
    let active = state.engine.version();
    let groups: Vec<Group> = by_day
        .iter()
        .map(|d| Group {
            label: d.key.get(5..).unwrap_or(&d.key).to_owned(),
            values: vec![d.ctr, d.conversion],
        })
        .collect();
    let body = html! {
        h1 { "Recommendations" }
        @if let Some(n) = q.as_ref().and_then(|q| q.started.as_deref()) {
            p.notice role="status" { "Experiment " (n) " started." }
        }
        @if let Some(n) = q.as_ref().and_then(|q| q.stopped.as_deref()) {
            p.notice role="status" { "Experiment " (n) " stopped." }
        }
        p.muted { "Since " (from.format("%Y-%m-%d")) " UTC. A click, add to cart or purchase of an "
            "item an answer showed to the same user or session within the attribution window "
            "counts for that answer (the answer named by the event's recommendation_id first)." }
        h2 { "CTR and conversion by day" }
        div.panel { (lines("CTR and conversion by day", &["CTR", "Conversion"], &groups, &|v| pct(v))) }
        h2 { "By placement" }
        (kpi_table("by-placement", "Placement", &by_placement))
        h2 { "By model version" }
        (kpi_table("by-model", "Model version", &by_model))
        h2 { "Experiments" }
        @for r in &results {
            div.panel.experiment data-name=(r.name) data-state=(r.state) {
                h3 { (r.name) " · " (r.placement) " · " (r.metric) " · " (r.state) }
                div.scroll { table {
                    tr { th { "Variant" } th { "Model version" } th.num { "Users" } th.num { "Impressions" }
                         th.num { "Clicks" } th.num { "CTR" } th.num { "Purchases" } th.num { "Conversion" }
                         th.num { "Revenue / user" } }
                    @for v in &r.variants {
                        tr data-variant=(v.name) data-clicks=(v.clicks) {
                            td { (v.name) } td { (v.model_version) } td.num { (v.users) }
                            td.num { (v.impressions) } td.num { (v.clicks) } td.num { (pct(v.ctr)) }
                            td.num { (v.purchases) } td.num { (pct(v.conversion)) }
                            td.num { (money(v.revenue_per_user.round() as i64, None)) }
                        }
                    }
                } }
                p.verdict { (r.verdict) }
                @if let Some(note) = &r.note { p.muted.note { (note) } }
                @if let Some(w) = &r.winner { p { strong { "Winner: " (w) } } }
                @if r.state == "running" {
                    form.inline method="post" action=(format!("/experiments/{}/stop", encode(&r.name))) {
                        button.secondary type="submit" { "Stop" }
                    }
                }
            }
        }
        @if results.is_empty() { p { "No experiments yet." } }
        h3 { "Start an experiment" }
        form.form.panel #start-experiment method="post" action="/experiments" {
            label { "Name" input name="name" required pattern="[A-Za-z0-9_.:\\-]{1,64}"; }
            label { "Placement" input name="placement" required value="recommendations"
                pattern="[A-Za-z0-9_.:\\-]{1,64}"; }
            label { "Metric" select name="metric" {
                option value="ctr" { "CTR" }
                option value="conversion" { "Conversion" }
                option value="revenue_per_user" { "Revenue per user" }
            } }
            label { "Control (baseline) version" select name="control" {
                @for v in &versions { option value=(v) selected[*v == active] { (v) } }
            } }
            label { "Treatment version" select name="treatment" {
                @for v in &versions { option value=(v) { (v) } }
            } }
            label { "Treatment share (%)" input name="treatment_share" type="number" min="1" max="99" value="50"; }
            button type="submit" { "Start" }
        }
    };
    page(
        StatusCode::OK,
        layout("Recommendations", "admin", nav(true), body),
    )
}

#[derive(Debug, Deserialize)]
pub(crate) struct StartForm {
    name: String,
    placement: String,
    metric: String,
    control: String,
    treatment: String,
    treatment_share: f64,
}

pub(super) async fn start_experiment(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<StartForm>, FormRejection>,
) -> Response {
    let prefix = match post_session(&state, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Ok(Form(f)) = form else {
        return failure(ApiError::bad_request(
            "invalid_form",
            "fill in every field of the experiment form",
        ));
    };
    let share = (f.treatment_share / 100.0).clamp(0.0, 1.0);
    let new = NewExperiment {
        name: f.name,
        placement: f.placement,
        metric: f.metric,
        variants: vec![
            NewVariant {
                name: "control".into(),
                model_version: f.control,
                share: 1.0 - share,
            },
            NewVariant {
                name: "treatment".into(),
                model_version: f.treatment,
                share,
            },
        ],
    };
    let response = match start(&state, new).await {
        Ok(e) => see_other(
            &format!("/recommendations?started={}", encode(&e.name)),
            &[],
        ),
        Err(e) => failure(e),
    };
    audited(response, prefix)
}

pub(super) async fn stop_experiment(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let prefix = match post_session(&state, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let response = match end(&state, &name).await {
        Ok(()) => see_other(&format!("/recommendations?stopped={}", encode(&name)), &[]),
        Err(e) => failure(e),
    };
    audited(response, prefix)
}
