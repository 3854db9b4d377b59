//! The catalog pages (`/catalog`): search, and a form to add or edit an item; the
//! storefront uses a change at once.

use super::*;

#[derive(Debug, Deserialize)]
pub(crate) struct CatalogQuery {
    q: Option<String>,
    after: Option<String>,
}

pub(super) async fn catalog(
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

pub(super) async fn edit_form(
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
pub(super) fn parse_price(s: &str) -> Result<i64, String> {
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

pub(super) fn edit_page(
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

pub(super) async fn save(
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
    use super::super::overview::month_start;
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
