//! The overview page (`/`): revenue and orders this month and last, revenue by month, top
//! products, the funnel and recent orders, from the same store queries as the admin API.

use super::*;

/// The first instant of the month `months_back` months before the one `now` is in.
pub(super) fn month_start(now: DateTime<Utc>, months_back: u32) -> DateTime<Utc> {
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
pub(super) fn kpi(id: &str, label: &str, shown: String, value: i64, range: &DateRange) -> Markup {
    let day = |t: Option<DateTime<Utc>>| t.map(|t| t.format("%Y-%m-%d").to_string());
    html! {
        div.kpi #(id) data-value=(value) data-from=[day(range.from)] data-to=[day(range.to)] {
            div.label { (label) }
            div.value { (shown) }
        }
    }
}

pub(super) async fn overview(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = session(&state, &headers).await {
        return r;
    }
    match overview_body(&state).await {
        Ok(body) => page(StatusCode::OK, layout("Overview", "admin", nav(true), body)),
        Err(e) => failure(e),
    }
}

pub(super) async fn overview_body(state: &AppState) -> Result<Markup, ApiError> {
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

pub(super) fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1}%", 100.0 * x)
    } else {
        "–".to_owned()
    }
}

/// An axis label: thousands as `k`, millions as `M`, in major units.
pub(super) fn money_short(minor: f64, currency: Option<&str>) -> String {
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
