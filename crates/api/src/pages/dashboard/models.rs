//! The segments page (`/segments`, with its CSV/Parquet exports) and the models page
//! (`/models`: versions with test metrics against popularity, a chart, "Activate").

use super::overview::pct;
use super::*;

pub(super) async fn segments(State(state): State<AppState>, headers: HeaderMap) -> Response {
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

pub(super) async fn export(
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
pub(super) fn metric(m: &marquee_engine::Manifest, part: &str, name: &str) -> Option<f64> {
    m.metrics.get(part)?.get(name)?.as_f64()
}

pub(super) async fn models(
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

pub(super) async fn activate(
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
