//! The placements pages: the list (`/placements`), an edit form (`/placements/edit?name=`)
//! whose refusals appear beside the field they concern (a rule's position marked under it),
//! with a preview of the placement's answer for a chosen user, and save and delete actions.
//! The form's fields are the admin API's spec; boosts are one per line, `FACTOR: RULE`.

use super::*;
use crate::placements::parse_spec;
use marquee_engine::{
    Boost, Diversity, PlaceRequest, PlacementSpec, Promotion, Rotation, Strategy,
};

const STRATEGIES: [&str; 9] = [
    "personal",
    "similar",
    "frequently_bought_together",
    "also_viewed",
    "buy_again",
    "recently_viewed",
    "trending",
    "popular",
    "session",
];

/// The edit form as posted (every field text, so a refused form comes back as typed).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PlacementForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    strategy: String,
    #[serde(default)]
    k: String,
    #[serde(default)]
    filter: String,
    #[serde(default)]
    boosts: String,
    #[serde(default)]
    diversity_attribute: String,
    #[serde(default)]
    diversity_max: String,
    #[serde(default)]
    promotion_filter: String,
    #[serde(default)]
    promotion_positions: String,
    #[serde(default)]
    rotation_after: String,
    #[serde(default)]
    rotation_hours: String,
    #[serde(default)]
    rotation_factor: String,
}

/// A refusal: the form field it concerns, the message, and the rule and position to mark.
struct Refusal {
    field: &'static str,
    message: String,
    marked: Option<(String, usize)>,
}

fn refuse(field: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        field,
        message: message.into(),
        marked: None,
    }
}

fn number<T: std::str::FromStr>(
    field: &'static str,
    raw: &str,
    what: &str,
) -> Result<Option<T>, Refusal> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse()
        .map(Some)
        .map_err(|_| refuse(field, format!("{raw:?} is not {what}")))
}

impl PlacementForm {
    fn from_spec(name: &str, s: &PlacementSpec) -> Self {
        let text = |v: Option<String>| v.unwrap_or_default();
        Self {
            name: name.to_owned(),
            strategy: serde_json::to_value(s.strategy)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            k: text(s.k.map(|k| k.to_string())),
            filter: text(s.filter.clone()),
            boosts: s
                .boosts
                .iter()
                .map(|b| format!("{}: {}", b.factor, b.when))
                .collect::<Vec<_>>()
                .join("\n"),
            diversity_attribute: text(s.diversity.as_ref().map(|d| d.attribute.clone())),
            diversity_max: text(s.diversity.as_ref().map(|d| d.max_per_value.to_string())),
            promotion_filter: text(s.promotion.as_ref().map(|p| p.filter.clone())),
            promotion_positions: text(s.promotion.as_ref().map(|p| {
                p.positions
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            })),
            rotation_after: text(s.rotation.as_ref().map(|r| r.after_impressions.to_string())),
            rotation_hours: text(s.rotation.as_ref().map(|r| r.within_hours.to_string())),
            rotation_factor: text(s.rotation.as_ref().map(|r| r.factor.to_string())),
        }
    }

    /// The spec the form describes (not yet checked against the catalog).
    fn to_spec(&self) -> Result<PlacementSpec, Refusal> {
        let strategy: Strategy = serde_json::from_value(serde_json::Value::String(
            self.strategy.clone(),
        ))
        .map_err(|_| refuse("strategy", format!("pick one of {}", STRATEGIES.join(", "))))?;
        let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        let mut boosts = Vec::new();
        for (n, line) in self
            .boosts
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let (factor, when) = line.split_once(':').ok_or_else(|| {
                refuse(
                    "boosts",
                    format!(
                        "line {}: write FACTOR: RULE, as in 2: category == \"Drama\"",
                        n + 1
                    ),
                )
            })?;
            let factor: f32 = factor.trim().parse().map_err(|_| {
                refuse(
                    "boosts",
                    format!("line {}: {:?} is not a number", n + 1, factor.trim()),
                )
            })?;
            boosts.push(Boost {
                when: when.trim().to_owned(),
                factor,
            });
        }
        let diversity = match (
            some(&self.diversity_attribute),
            number::<usize>("diversity", &self.diversity_max, "a whole number")?,
        ) {
            (None, None) => None,
            (Some(attribute), Some(max_per_value)) => Some(Diversity {
                attribute,
                max_per_value,
            }),
            _ => {
                return Err(refuse(
                    "diversity",
                    "give both the attribute and the most items per value",
                ));
            }
        };
        let promotion = match some(&self.promotion_filter) {
            None if self.promotion_positions.trim().is_empty() => None,
            None => return Err(refuse("promotion", "give the filter of the promoted items")),
            Some(filter) => {
                let positions = self
                    .promotion_positions
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        p.parse::<usize>()
                            .map_err(|_| refuse("promotion", format!("{p:?} is not a position")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Some(Promotion { filter, positions })
            }
        };
        let rotation = match (
            number::<u32>("rotation", &self.rotation_after, "a whole number")?,
            number::<f64>("rotation", &self.rotation_hours, "a number of hours")?,
            number::<f32>("rotation", &self.rotation_factor, "a number")?,
        ) {
            (None, None, None) => None,
            (Some(after_impressions), Some(within_hours), Some(factor)) => Some(Rotation {
                after_impressions,
                within_hours,
                factor,
            }),
            _ => {
                return Err(refuse(
                    "rotation",
                    "give all three: impressions, hours and factor",
                ));
            }
        };
        Ok(PlacementSpec {
            strategy,
            k: number("k", &self.k, "a whole number")?,
            filter: some(&self.filter),
            boosts,
            diversity,
            promotion,
            rotation,
        })
    }

    /// The rule text at an API field (`filter`, `boosts[1].when`, ...), to mark a position in.
    fn rule_at(&self, spec: &PlacementSpec, field: &str) -> Option<String> {
        match field {
            "filter" => spec.filter.clone(),
            "promotion.filter" => spec.promotion.as_ref().map(|p| p.filter.clone()),
            f => {
                let n: usize = f.strip_prefix("boosts[")?.split(']').next()?.parse().ok()?;
                spec.boosts.get(n).map(|b| b.when.clone())
            }
        }
    }
}

/// The form field an API field belongs to.
fn form_field(api_field: &str) -> &'static str {
    match api_field.split(['.', '[']).next().unwrap_or_default() {
        "filter" => "filter",
        "boosts" => "boosts",
        "diversity" => "diversity",
        "promotion" => "promotion",
        "rotation" => "rotation",
        "k" => "k",
        _ => "strategy",
    }
}

fn refusal_markup(r: Option<&Refusal>, field: &str) -> Markup {
    html! {
        @if let Some(r) = r.filter(|r| r.field == field) {
            div.error role="alert" data-field=(field) {
                p { (r.message) }
                @if let Some((rule, at)) = &r.marked {
                    pre.rule { (rule) "\n" (" ".repeat(at.saturating_sub(1))) "^" }
                }
            }
        }
    }
}

fn edit_page(
    status: StatusCode,
    form: &PlacementForm,
    refusal: Option<&Refusal>,
    notice: Option<&str>,
    preview: Option<Markup>,
) -> Response {
    let r = refusal;
    let body = html! {
        h1 { "Placement " (form.name) }
        @if let Some(n) = notice { p.notice role="status" { (n) } }
        form.form.panel #placement method="post" action="/placements/save" {
            label { "Name" input name="name" required pattern="[A-Za-z0-9_.:\\-]{1,64}" value=(form.name); }
            (refusal_markup(r, "name"))
            label { "Strategy" select name="strategy" {
                @for s in STRATEGIES { option value=(s) selected[form.strategy == s] { (s) } }
            } }
            (refusal_markup(r, "strategy"))
            label { "Items (k)" input name="k" type="number" min="1" max="1000" value=(form.k); }
            (refusal_markup(r, "k"))
            label { "Filter (only items it passes)" input name="filter" value=(form.filter)
                placeholder="category == \"Drama\" && price < 20"; }
            (refusal_markup(r, "filter"))
            label { "Boosts, one per line: FACTOR: RULE" textarea name="boosts" rows="3"
                placeholder="2: attributes.brand == \"Acme\"" { (form.boosts) } }
            (refusal_markup(r, "boosts"))
            fieldset { legend { "Diversity" }
                label { "Attribute" input name="diversity_attribute" value=(form.diversity_attribute)
                    placeholder="category"; }
                label { "Most items per value" input name="diversity_max" type="number" min="1"
                    value=(form.diversity_max); }
            }
            (refusal_markup(r, "diversity"))
            fieldset { legend { "Promotion" }
                label { "Promoted items (filter)" input name="promotion_filter" value=(form.promotion_filter); }
                label { "Positions (1-based, comma-separated)" input name="promotion_positions"
                    value=(form.promotion_positions) placeholder="1, 4"; }
            }
            (refusal_markup(r, "promotion"))
            fieldset { legend { "Rotation" }
                label { "After impressions" input name="rotation_after" type="number" min="1" value=(form.rotation_after); }
                label { "Within hours" input name="rotation_hours" value=(form.rotation_hours); }
                label { "Factor" input name="rotation_factor" value=(form.rotation_factor); }
            }
            (refusal_markup(r, "rotation"))
            button type="submit" { "Save" }
        }
        @if let Some(p) = preview { (p) }
        p.muted { "Rules compare item fields (category, genres, price, in_stock, age_days, "
            "attributes.<key>) and request values (user.last_category, context.<key>) with "
            "== != < <= > >=, in [..] and contains, joined by && || ! and parentheses." }
    };
    page(status, layout("Placement", "admin", nav(true), body))
}

#[derive(Debug, Deserialize)]
pub(crate) struct EditQuery {
    name: Option<String>,
    saved: Option<String>,
    preview_user: Option<String>,
}

/// `GET /placements`: every placement, with links to edit them.
pub(super) async fn placements(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = session(&state, &headers).await {
        return r;
    }
    let all = match state.store.placements().await {
        Ok(all) => all,
        Err(e) => return failure(ApiError::internal(e)),
    };
    let body = html! {
        h1 { "Placements" }
        p.muted { "Named serving configurations: the storefront asks for "
            code { "/v1/recommendations?placement=NAME" } " or a home row " code { "/v1/home?rows=NAME" } "." }
        div.panel { div.scroll { table #placements {
            tr { th { "Name" } th { "Strategy" } th.num { "k" } th { "Filter" } th { "Saved" } th {} }
            @for p in &all {
                tr data-name=(p.name) {
                    td { (p.name) }
                    td { (p.spec["strategy"].as_str().unwrap_or_default()) }
                    td.num { (p.spec["k"].as_u64().map(|k| k.to_string()).unwrap_or_else(|| "10".into())) }
                    td { code { (p.spec["filter"].as_str().unwrap_or_default()) } }
                    td { (p.updated_at.format("%Y-%m-%d %H:%M")) }
                    td {
                        a href=(format!("/placements/edit?name={}", encode(&p.name))) { "Edit" }
                        form.inline method="post" action=(format!("/placements/{}/delete", encode(&p.name))) {
                            button.secondary type="submit" { "Delete" }
                        }
                    }
                }
            }
            @if all.is_empty() { tr { td colspan="6" { "No placements yet." } } }
        } } }
        p { a.button href="/placements/edit" { "New placement" } }
    };
    page(
        StatusCode::OK,
        layout("Placements", "admin", nav(true), body),
    )
}

/// `GET /placements/edit?name=`: the form (empty for a new placement), with a preview of the
/// answer for `preview_user` when given.
pub(super) async fn edit_placement(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<EditQuery>, QueryRejection>,
) -> Response {
    if let Err(r) = session(&state, &headers).await {
        return r;
    }
    let Ok(Query(q)) = query else {
        return failure(ApiError::bad_request(
            "invalid_query",
            "the query names a placement: ?name=",
        ));
    };
    let mut form = PlacementForm {
        strategy: "personal".into(),
        ..PlacementForm::default()
    };
    if let Some(name) = &q.name {
        let all = match state.store.placements().await {
            Ok(all) => all,
            Err(e) => return failure(ApiError::internal(e)),
        };
        match all
            .iter()
            .find(|p| &p.name == name)
            .and_then(|p| serde_json::from_value::<PlacementSpec>(p.spec.clone()).ok())
        {
            Some(spec) => form = PlacementForm::from_spec(name, &spec),
            None => {
                return failure(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_placement",
                    format!("no placement is named {name:?}"),
                ));
            }
        }
    }
    let preview = match &q.name {
        Some(name) => Some(preview(&state, name, q.preview_user.as_deref()).await),
        None => None,
    };
    let notice = q
        .saved
        .as_ref()
        .map(|_| "Saved: the storefront serves it now.");
    edit_page(StatusCode::OK, &form, None, notice, preview)
}

/// The placement's answer for a user, with titles and reasons, and the form to pick the user.
async fn preview(state: &AppState, name: &str, user: Option<&str>) -> Markup {
    let answer = match user.map(marquee_domain::UserId::new) {
        None => None,
        Some(Err(e)) => Some(Err(format!(
            "{:?} is not a user id: {e}",
            user.unwrap_or_default()
        ))),
        Some(Ok(u)) => {
            let recent = crate::fresh::recent_events(state, Some(&u))
                .await
                .unwrap_or_default();
            let req = PlaceRequest {
                user: Some(&u),
                recent: &recent,
                now_ms: Utc::now().timestamp_millis(),
                ..PlaceRequest::default()
            };
            Some(state.engine.place(name, &req).map_err(|e| e.to_string()))
        }
    };
    html! {
        h2 { "Preview" }
        form.form.inline method="get" action="/placements/edit" {
            input type="hidden" name="name" value=(name);
            label { "User" input name="preview_user" value=(user.unwrap_or_default()) required; }
            button.secondary type="submit" { "Preview" }
        }
        @match answer {
            None => {}
            Some(Err(e)) => p.error role="alert" { (e) },
            Some(Ok(a)) => div.panel { div.scroll { table #preview {
                tr { th.num { "#" } th { "Item" } th { "Title" } th { "Reason" } th.num { "Score" } }
                @for (n, r) in a.items.iter().enumerate() {
                    @let item = state.engine.catalog_item(&r.item);
                    tr data-item=(r.item) {
                        td.num { (n + 1) } td { (r.item) }
                        td { (item.as_ref().map_or("", |i| i.title.as_str())) }
                        td { (serde_json::to_value(r.reason).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()) }
                        td.num { (format!("{:.3}", r.score)) }
                    }
                }
                @if a.items.is_empty() { tr { td colspan="5" { "Nothing passes for this user." } } }
            } } },
        }
    }
}

/// `POST /placements/save`: checks and saves; a refusal comes back beside its field.
pub(super) async fn save_placement(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<PlacementForm>, FormRejection>,
) -> Response {
    let prefix = match post_session(&state, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Ok(Form(form)) = form else {
        return failure(ApiError::bad_request(
            "invalid_form",
            "the placement form is malformed",
        ));
    };
    let refused = |r: Refusal| edit_page(StatusCode::BAD_REQUEST, &form, Some(&r), None, None);
    if let Err(e) = crate::experiments::routes::check_name("name", "invalid_placement", &form.name)
    {
        return refused(refuse("name", e.message));
    }
    let spec = match form.to_spec() {
        Ok(s) => s,
        Err(r) => return refused(r),
    };
    let body = match serde_json::to_vec(&spec) {
        Ok(b) => b,
        Err(e) => return failure(ApiError::internal(e)),
    };
    if let Err(e) = parse_spec(&state.engine, &body) {
        let (field, position) = e
            .details
            .as_ref()
            .map(|d| {
                (
                    d.get("field")
                        .and_then(|f| f.as_str())
                        .unwrap_or_default()
                        .to_owned(),
                    d.get("position").and_then(serde_json::Value::as_u64),
                )
            })
            .unwrap_or_default();
        let marked = position.and_then(|p| Some((form.rule_at(&spec, &field)?, p as usize)));
        return refused(Refusal {
            field: form_field(&field),
            message: e.message,
            marked,
        });
    }
    let response = match state.save_placement(&form.name, &spec).await {
        Ok(_) => see_other(
            &format!("/placements/edit?name={}&saved=1", encode(&form.name)),
            &[],
        ),
        Err(e) => failure(e),
    };
    audited(response, prefix)
}

/// `POST /placements/{name}/delete`.
pub(super) async fn delete_placement(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let prefix = match post_session(&state, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let response = match state.store.delete_placement(&name).await {
        Ok(true) => match state.reload_placements().await {
            Ok(()) => see_other("/placements", &[]),
            Err(e) => failure(ApiError::internal(e)),
        },
        Ok(false) => failure(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_placement",
            format!("no placement is named {name:?}"),
        )),
        Err(e) => failure(ApiError::internal(e)),
    };
    audited(response, prefix)
}
