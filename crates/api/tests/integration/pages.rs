//! The web pages through `oneshot`: the storefront demo (rows, clicks that record views and
//! change the rows, guests), the admin dashboard (login, session cookie, KPIs equal to the
//! API's, activation and catalog edits that are audited), bad input, and `--no-pages`.
//! The same flows in a real browser are in `browser.rs`.

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use chrono::{Datelike, TimeZone, Utc};
use http_body_util::BodyExt;
use marquee_api::{AppState, admin_router, storefront_router};
use marquee_domain::{Currency, Item, ItemId, Money, Order, OrderId, OrderLine, OrderStatus};
use marquee_engine::Engine;
use marquee_store::{ApiKeyRole, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use tower::ServiceExt;

struct Site {
    shop: crate::common::Shop,
    state: AppState,
    store: Store,
    storefront: axum::Router,
    admin: axum::Router,
    admin_key: String,
    storefront_key: String,
}

async fn site() -> Site {
    let shop = crate::common::shop().await;
    let store = Store::open(&shop.url).await.unwrap();
    let admin_key = store
        .create_api_key(ApiKeyRole::Admin, "ops")
        .await
        .unwrap()
        .key;
    let storefront_key = store
        .create_api_key(ApiKeyRole::Storefront, "web")
        .await
        .unwrap()
        .key;
    let engine = Engine::open(&shop.model, shop.catalog.clone()).unwrap();
    let state = AppState::new(Arc::new(engine), store.clone());
    Site {
        storefront: storefront_router(state.clone()),
        admin: admin_router(state.clone()),
        shop,
        state,
        store,
        admin_key,
        storefront_key,
    }
}

/// Cookies a browser would keep: name → value.
#[derive(Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn absorb(&mut self, headers: &HeaderMap) {
        for v in headers.get_all(header::SET_COOKIE) {
            let v = v.to_str().unwrap();
            let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn header(&self) -> String {
        let pairs: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.join("; ")
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .map_or("", |v| v.to_str().unwrap())
    }
}

/// One request as a browser sends it: the jar's cookies, a form body for posts, extra
/// headers; the jar keeps what the answer sets.
async fn send(
    router: &axum::Router,
    jar: &mut Jar,
    method: &str,
    uri: &str,
    form: Option<&str>,
    extra: &[(&str, &str)],
) -> Answer {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "localhost");
    if !jar.0.is_empty() {
        req = req.header(header::COOKIE, jar.header());
    }
    if form.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let req = req.body(Body::from(form.unwrap_or("").to_owned())).unwrap();
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    jar.absorb(&headers);
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

async fn get(router: &axum::Router, jar: &mut Jar, uri: &str) -> Answer {
    send(router, jar, "GET", uri, None, &[]).await
}

async fn post(router: &axum::Router, jar: &mut Jar, uri: &str, form: &str) -> Answer {
    send(router, jar, "POST", uri, Some(form), &[]).await
}

/// The item ids of the cards of row `row` on a storefront page, in order.
fn row_items(body: &str, row: &str) -> Vec<String> {
    let Some(start) = body.find(&format!("data-row=\"{row}\"")) else {
        return Vec::new();
    };
    let section = &body[start..];
    let section = &section[..section.find("</section>").unwrap()];
    section
        .split("data-item=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_owned())
        .collect()
}

/// The value of attribute `attr` of the element with id `id`.
fn attr(body: &str, id: &str, attr: &str) -> String {
    let at = body
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let tag_start = body[..at].rfind('<').unwrap();
    let tag = &body[tag_start..tag_start + body[tag_start..].find('>').unwrap()];
    let from = tag
        .find(&format!(" {attr}=\""))
        .unwrap_or_else(|| panic!("#{id} has no {attr}: {tag}"))
        + attr.len()
        + 3;
    tag[from..from + tag[from..].find('"').unwrap()].to_owned()
}

fn assert_page_headers(a: &Answer) {
    let csp = a.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    // At most this server's own tracker may run: no inline script, nothing from elsewhere.
    if csp.contains("script-src") {
        assert!(csp.contains("script-src 'self';"), "{csp}");
    }
    assert!(
        a.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    for (n, _) in a.body.match_indices("<script") {
        let end = n + a.body[n..].find("</script>").unwrap();
        let tag = &a.body[n..end];
        assert!(
            tag.contains(r#"src="/sdk/marquee.js""#) && tag.ends_with('>'),
            "only the tracker, no inline script: {tag}"
        );
    }
}

#[tokio::test]
async fn the_storefront_demo_shows_rows_and_clicks_change_them() {
    let s = site().await;
    let mut jar = Jar::default();
    let home = get(&s.storefront, &mut jar, "/?user_id=u1").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    assert_page_headers(&home);
    let picks_before = row_items(&home.body, "top_picks");
    assert!(!picks_before.is_empty(), "{}", home.body);
    // u1 takes b-items: the best picks are b-items (the row of ten fills up with others).
    assert!(
        picks_before[..3].iter().all(|i| i.starts_with('b')),
        "{picks_before:?}"
    );
    assert!(home.body.contains("Trending now") && home.body.contains("New in b"));
    assert!(!row_items(&home.body, "trending").is_empty());

    // Three clicks on a-items: each records a view and shows the item with similar items.
    for item in ["a1", "a3", "a5"] {
        let click = post(
            &s.storefront,
            &mut jar,
            "/view",
            &format!("item={item}&user_id=u1"),
        )
        .await;
        assert_eq!(click.status, StatusCode::SEE_OTHER, "{}", click.body);
        assert_eq!(click.location(), format!("/items/{item}?user_id=u1"));
        let page = get(&s.storefront, &mut jar, click.location()).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.body.contains(&format!("<h1>{item}</h1>")),
            "{}",
            page.body
        );
        let similar = row_items(&page.body, "similar");
        assert!(!similar.is_empty() && similar.iter().all(|i| i.starts_with('a') && i != item));
    }
    let views = s
        .store
        .events_of_user(&marquee_domain::UserId::new("u1").unwrap(), 100)
        .await
        .unwrap();
    assert_eq!(views.len(), 3, "one view event per click");

    let after = get(&s.storefront, &mut jar, "/?user_id=u1").await;
    let picks_after = row_items(&after.body, "top_picks");
    assert_ne!(picks_after, picks_before, "the rows follow the clicks");
    assert!(
        picks_after[..3].iter().any(|i| i.starts_with('a')),
        "{picks_after:?}"
    );
    assert!(
        after.body.contains("Because you watched a5"),
        "the latest click leads: {}",
        after.body
    );
    assert!(!row_items(&after.body, "top_picks").contains(&"a5".to_owned()));
}

#[tokio::test]
async fn a_guest_gets_a_session_answer_from_their_clicks() {
    let s = site().await;
    let mut jar = Jar::default();
    let home = get(&s.storefront, &mut jar, "/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("Welcome, guest"));
    assert!(row_items(&home.body, "this_visit").is_empty());
    assert!(!row_items(&home.body, "trending").is_empty());
    // The first page gives the guest their session (the tracker and the clicks share it).
    let first: Vec<&str> = home
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(first[0].starts_with("mq_visitor=web-"), "{first:?}");
    let session = jar.0["mq_visitor"].clone();
    assert!(
        home.body
            .contains(&format!("data-anonymous-id=\"{session}\"")),
        "the tracker gets the guest's session"
    );

    let click = post(&s.storefront, &mut jar, "/view", "item=a3").await;
    assert_eq!(click.status, StatusCode::SEE_OTHER);
    assert_eq!(click.location(), "/items/a3");
    let mut cookies: Vec<&str> = click
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookies.len(), 1, "the recent items only: {cookies:?}");
    cookies.extend(first);
    for c in &cookies {
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict"),
            "{c}"
        );
    }
    let visitor = jar.0["mq_visitor"].clone();
    assert_eq!(visitor, session, "the same session after the click");
    assert!(
        visitor.starts_with("web-") && visitor.len() > 30,
        "{visitor}"
    );

    let home = get(&s.storefront, &mut jar, "/").await;
    let visit = row_items(&home.body, "this_visit");
    assert!(!visit.is_empty(), "{}", home.body);
    assert!(
        visit[..4].iter().all(|i| i.starts_with('a')) && !visit.contains(&"a3".to_owned()),
        "{visit:?}"
    );
    // A second click keeps the same anonymous session; both views are stored under it.
    post(&s.storefront, &mut jar, "/view", "item=a4").await;
    assert_eq!(jar.0["mq_visitor"], visitor);
    let mut stored = Vec::new();
    s.store
        .for_each_event(None, |e| {
            stored.push(e.actor.interaction_key());
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(
        stored,
        [format!("session:{visitor}"), format!("session:{visitor}")]
    );
}

#[tokio::test]
async fn bad_input_to_the_storefront_pages_gets_a_clear_page() {
    let s = site().await;
    let mut jar = Jar::default();
    let a = post(&s.storefront, &mut jar, "/view", "item=nope&user_id=u1").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(
        a.body.contains("There is no item &quot;nope&quot;"),
        "{}",
        a.body
    );
    let long = "u".repeat(300);
    let a = post(
        &s.storefront,
        &mut jar,
        "/view",
        &format!("item=a1&user_id={long}"),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("is not a user id"), "{}", a.body);
    let a = post(&s.storefront, &mut jar, "/view", "user_id=u1").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = send(
        &s.storefront,
        &mut jar,
        "POST",
        "/view",
        Some("item=a1&user_id=u1"),
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = get(&s.storefront, &mut jar, "/items/nope").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_page_headers(&a);
    let a = get(&s.storefront, &mut jar, &format!("/?user_id={long}")).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    // A mangled recent-items cookie is ignored, not an error.
    jar.0.insert("mq_recent".into(), "%zz|a1|%E2%9C".into());
    let a = get(&s.storefront, &mut jar, "/").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(!row_items(&a.body, "this_visit").is_empty());
    let events = s.store.counts().await.unwrap().events;
    assert_eq!(events, 0, "no refused click stored an event");
}

#[tokio::test]
async fn catalog_text_is_escaped_on_every_page() {
    let s = site().await;
    let mut item = Item::new(
        ItemId::new("a1").unwrap(),
        "<script>alert(1)</script>",
        "<b>cat</b>",
        Utc::now(),
    );
    item.price = Some(Money::new(1250, Currency::new("EUR").unwrap()));
    s.store
        .upsert_items(std::slice::from_ref(&item))
        .await
        .unwrap();
    let mut jar = Jar::default();
    let a = get(&s.storefront, &mut jar, "/items/a1").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        a.body
    );
    assert!(a.body.contains("&lt;b&gt;cat&lt;/b&gt;"));
    assert!(a.body.contains("12.50 EUR"));
    assert_page_headers(&a);
}

/// Logs in with `key`; returns the answer and the jar.
async fn login(s: &Site, key: &str) -> (Answer, Jar) {
    let mut jar = Jar::default();
    let a = post(&s.admin, &mut jar, "/login", &format!("key={key}")).await;
    (a, jar)
}

#[tokio::test]
async fn the_dashboard_needs_an_admin_key_and_keeps_a_strict_session_cookie() {
    let s = site().await;
    let mut none = Jar::default();
    let a = get(&s.admin, &mut none, "/").await;
    assert_eq!((a.status, a.location()), (StatusCode::SEE_OTHER, "/login"));
    let form = get(&s.admin, &mut none, "/login").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("type=\"password\""));

    for wrong in ["wrong", s.storefront_key.as_str(), ""] {
        let (a, jar) = login(&s, wrong).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{wrong}");
        assert!(a.body.contains("That is not an active admin key."));
        assert!(jar.0.is_empty(), "no cookie for a refused key");
    }

    let (a, mut jar) = login(&s, &s.admin_key).await;
    assert_eq!((a.status, a.location()), (StatusCode::SEE_OTHER, "/"));
    let cookie = a.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("mq_admin=mq_se_"), "{cookie}");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert!(
        !cookie.contains(&s.admin_key),
        "the key itself is not the cookie"
    );
    for page in [
        "/",
        "/segments",
        "/models",
        "/catalog",
        "/catalog/edit",
        "/catalog/edit?id=a1",
    ] {
        let a = get(&s.admin, &mut jar, page).await;
        assert_eq!(a.status, StatusCode::OK, "{page}: {}", a.body);
        assert_page_headers(&a);
    }
    // Behind a TLS proxy the cookie is Secure too.
    let mut tls = Jar::default();
    let a = send(
        &s.admin,
        &mut tls,
        "POST",
        "/login",
        Some(&format!("key={}", s.admin_key)),
        &[("x-forwarded-proto", "https")],
    )
    .await;
    assert!(
        a.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .ends_with("; Secure")
    );

    // The cookie does not open the API, and a made-up session does not open the pages.
    let mut forged = Jar::default();
    forged.0.insert("mq_admin".into(), "mq_se_00".into());
    let a = get(&s.admin, &mut forged, "/segments").await;
    assert_eq!(
        (a.status, a.location()),
        (StatusCode::SEE_OTHER, "/login?expired=1")
    );
    let a = get(&s.admin, &mut jar, "/v1/admin/models").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);

    // Logging out ends the session on the server, not only in the browser.
    let token = jar.0["mq_admin"].clone();
    let a = post(&s.admin, &mut jar, "/logout", "").await;
    assert_eq!((a.status, a.location()), (StatusCode::SEE_OTHER, "/login"));
    assert!(jar.0.is_empty());
    let mut replay = Jar::default();
    replay.0.insert("mq_admin".into(), token);
    let a = get(&s.admin, &mut replay, "/").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);

    // Revoking the key ends its sessions.
    let (_, mut jar) = login(&s, &s.admin_key).await;
    assert_eq!(get(&s.admin, &mut jar, "/").await.status, StatusCode::OK);
    s.store.revoke_api_key(&s.admin_key[..14]).await.unwrap();
    let a = get(&s.admin, &mut jar, "/").await;
    assert_eq!(
        (a.status, a.location()),
        (StatusCode::SEE_OTHER, "/login?expired=1")
    );
}

/// Orders of known totals: two this month, one last month, one two months ago.
async fn add_orders(store: &Store) -> (i64, i64) {
    let now = Utc::now();
    let month = |back: i32| {
        let m = now.year() * 12 + now.month0() as i32 - back;
        Utc.with_ymd_and_hms(m.div_euclid(12), m.rem_euclid(12) as u32 + 1, 1, 0, 0, 0)
            .unwrap()
    };
    let order = |id: &str, at: chrono::DateTime<Utc>, item: &str, qty: u32, minor: i64| Order {
        id: OrderId::new(id).unwrap(),
        user: Some(marquee_domain::UserId::new("u0").unwrap()),
        created_at: at,
        status: OrderStatus::Paid,
        lines: vec![OrderLine {
            item: ItemId::new(item).unwrap(),
            quantity: qty,
            unit_price: Money::new(minor, Currency::new("EUR").unwrap()),
        }],
    };
    let orders = [
        order(
            "o1",
            month(0) + chrono::TimeDelta::minutes(1),
            "a0",
            2,
            1_250,
        ),
        order(
            "o2",
            month(0) + chrono::TimeDelta::minutes(2),
            "a3",
            1,
            99_999,
        ),
        order("o3", month(1) + chrono::TimeDelta::days(3), "b1", 3, 700),
        order("o4", month(2) + chrono::TimeDelta::days(3), "b2", 1, 5_000),
    ];
    store
        .upsert_users(&[marquee_domain::User::new(
            marquee_domain::UserId::new("u0").unwrap(),
            month(3),
        )])
        .await
        .unwrap();
    store.put_orders(&orders).await.unwrap();
    (2 * 1_250 + 99_999, 3 * 700)
}

/// The admin API's JSON for `uri`.
async fn api(s: &Site, uri: &str) -> serde_json::Value {
    let mut jar = Jar::default();
    let auth = format!("Bearer {}", s.admin_key);
    let a = send(
        &s.admin,
        &mut jar,
        "GET",
        uri,
        None,
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{uri}: {}", a.body);
    serde_json::from_str(&a.body).unwrap()
}

#[tokio::test]
async fn dashboard_kpis_are_the_apis_numbers() {
    let s = site().await;
    let (this_month, last_month) = add_orders(&s.store).await;
    let (_, mut jar) = login(&s, &s.admin_key).await;
    let page = get(&s.admin, &mut jar, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    for (id, expected) in [
        ("kpi-revenue-this-month", this_month),
        ("kpi-revenue-last-month", last_month),
        ("kpi-orders-this-month", 2),
        ("kpi-orders-last-month", 1),
    ] {
        let shown: i64 = attr(&page.body, id, "data-value").parse().unwrap();
        assert_eq!(shown, expected, "{id}");
        // The same range through the API gives the same number.
        let mut uri = format!(
            "/v1/admin/analytics/revenue?period=month&from={}",
            attr(&page.body, id, "data-from")
        );
        if id.ends_with("last-month") {
            uri.push_str(&format!("&to={}", attr(&page.body, id, "data-to")));
        }
        let v = api(&s, &uri).await;
        let field = if id.starts_with("kpi-revenue") {
            "revenue_minor"
        } else {
            "orders"
        };
        assert_eq!(v[field].as_i64(), Some(shown), "{id}: {v}");
    }
    assert!(
        page.body.contains("1,024.99 EUR"),
        "revenue this month as money"
    );
    // Top products: the API's order; revenue by month: one bar per month with orders.
    let top = api(&s, "/v1/admin/analytics/top-products?by=revenue&limit=10").await;
    let first = top["products"][0]["item"].as_str().unwrap();
    assert_eq!(first, "a3");
    let table = &page.body[page.body.find("id=\"top-products\"").unwrap()..];
    assert!(table.find("data-item=\"a3\"") < table.find("data-item=\"b2\""));
    let chart = &page.body[page.body.find("<svg").unwrap()..page.body.find("</svg>").unwrap()];
    assert_eq!(chart.matches("<rect class=\"bar\"").count(), 3, "{chart}");
    assert!(page.body.contains("id=\"recent-orders\"") && page.body.contains(">o2<"));
}

#[tokio::test]
async fn dashboard_actions_change_the_service_and_are_audited() {
    let s = site().await;
    // A second model version to activate.
    let v1 = s.shop.model.join("v1");
    let v2 = s.shop.model.join("v2");
    std::fs::create_dir_all(&v2).unwrap();
    for entry in std::fs::read_dir(&v1).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), v2.join(entry.file_name())).unwrap();
    }
    let manifest = v2.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("\"version\": \"v1\"", "\"version\": \"v2\""),
    )
    .unwrap();

    let (_, mut jar) = login(&s, &s.admin_key).await;
    let models = get(&s.admin, &mut jar, "/models").await;
    assert!(
        models.body.contains("action=\"/models/v2/activate\""),
        "{}",
        models.body
    );
    assert!(
        !models.body.contains("action=\"/models/v1/activate\""),
        "v1 is active"
    );
    let a = post(&s.admin, &mut jar, "/models/v2/activate", "").await;
    assert_eq!(
        (a.status, a.location()),
        (StatusCode::SEE_OTHER, "/models?activated=v2")
    );
    assert_eq!(s.state.engine.version(), "v2");
    let a = get(&s.admin, &mut jar, a.location()).await;
    assert!(a.body.contains("Version v2 is now active."));
    let a = post(&s.admin, &mut jar, "/models/nope/activate", "").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.body.contains("there is no model version"), "{}", a.body);
    // A post from another site is refused even with the session.
    let a = send(
        &s.admin,
        &mut jar,
        "POST",
        "/models/v1/activate",
        Some(""),
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(s.state.engine.version(), "v2");

    // Edit an item: hide a1, retitle it; the storefront stops recommending it at once.
    let form = "id=a1&title=Renamed&category=a&genres=x%2C+y&price=12.5&currency=EUR&in_stock=on&hidden=on";
    let a = post(&s.admin, &mut jar, "/catalog/save", form).await;
    assert_eq!(
        (a.status, a.location()),
        (StatusCode::SEE_OTHER, "/catalog/edit?id=a1&saved=1")
    );
    let stored = s
        .store
        .item(&ItemId::new("a1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.title, "Renamed");
    assert_eq!(stored.genres, ["x", "y"]);
    assert_eq!(stored.price.unwrap().minor, 1250);
    assert!(stored.hidden && stored.in_stock);
    let recs = s
        .state
        .engine
        .recommend(
            Some(&marquee_domain::UserId::new("u0").unwrap()),
            &[],
            16,
            &marquee_engine::Filters::default(),
        )
        .unwrap();
    assert!(recs.items.iter().all(|r| r.item != "a1"));
    // A new item, and a refused one that names what to fix and keeps what was typed.
    let a = post(
        &s.admin,
        &mut jar,
        "/catalog/save",
        "id=c9&title=New+one&category=c&price=&currency=",
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert!(
        s.store
            .item(&ItemId::new("c9").unwrap())
            .await
            .unwrap()
            .is_some()
    );
    let a = post(
        &s.admin,
        &mut jar,
        "/catalog/save",
        "id=c10&title=Typed+title&category=c&price=1%2C50&currency=EUR",
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.body.contains("Price: &quot;1,50&quot; is not an amount"),
        "{}",
        a.body
    );
    assert!(a.body.contains("value=\"Typed title\""));
    assert!(
        s.store
            .item(&ItemId::new("c10").unwrap())
            .await
            .unwrap()
            .is_none()
    );

    // The audit log names the admin key behind each page action.
    let audit = api(&s, "/v1/admin/audit").await;
    let entries = audit["entries"].as_array().unwrap();
    let paths: Vec<(&str, &str, u64)> = entries
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap(),
                e["key_prefix"].as_str().unwrap(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let prefix = &s.admin_key[..14];
    for (path, status) in [
        ("/login", 303),
        ("/models/v2/activate", 303),
        ("/catalog/save", 303),
        ("/catalog/save", 400),
    ] {
        assert!(
            paths.contains(&(path, prefix, status)),
            "{path} {status}: {paths:?}"
        );
    }
}

#[tokio::test]
async fn pages_can_be_turned_off() {
    let s = site().await;
    let state = s.state.clone().with_pages(false);
    let mut jar = Jar::default();
    for router in [storefront_router(state.clone()), admin_router(state)] {
        let a = get(&router, &mut jar, "/").await;
        assert_eq!(a.status, StatusCode::NOT_FOUND);
        assert!(
            a.body.contains("\"error\""),
            "the API's JSON 404: {}",
            a.body
        );
    }
}

/// The recommendations page: an experiment started through its form is served (answers name
/// it), listed with its results, and stopped through its button; a form naming a missing
/// version gets the API's refusal as a page.
#[tokio::test]
async fn experiments_start_and_stop_from_the_dashboard() {
    let s = site().await;
    crate::common::save_version(
        &s.shop.model,
        "v2",
        &[
            ("u1", "a1", 1.0, 0),
            ("u1", "a2", 1.0, 0),
            ("u2", "a2", 1.0, 0),
        ],
    );
    let (_, mut jar) = login(&s, &s.admin_key).await;
    let page = get(&s.admin, &mut jar, "/recommendations").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("No experiments yet."), "{}", page.body);
    assert!(page.body.contains("<option value=\"v2\""), "{}", page.body);

    let form =
        "name=dash&placement=recommendations&metric=ctr&control=v1&treatment=v9&treatment_share=50";
    let a = post(&s.admin, &mut jar, "/experiments", form).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("v9"), "{}", a.body);

    let form =
        "name=dash&placement=recommendations&metric=ctr&control=v1&treatment=v2&treatment_share=50";
    let a = post(&s.admin, &mut jar, "/experiments", form).await;
    assert_eq!(
        (a.status, a.location()),
        (StatusCode::SEE_OTHER, "/recommendations?started=dash")
    );
    let answer = send(
        &s.storefront,
        &mut Jar::default(),
        "GET",
        "/v1/recommendations?user_id=u1&k=2",
        None,
        &[("authorization", &format!("Bearer {}", s.storefront_key))],
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(v["experiment"], "dash", "{v}");
    let page = get(&s.admin, &mut jar, "/recommendations?started=dash").await;
    assert!(page.body.contains("Experiment dash started."));
    assert!(
        page.body
            .contains("data-name=\"dash\" data-state=\"running\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("action=\"/experiments/dash/stop\""));

    let a = post(&s.admin, &mut jar, "/experiments/dash/stop", "").await;
    assert_eq!(
        (a.status, a.location()),
        (StatusCode::SEE_OTHER, "/recommendations?stopped=dash")
    );
    let page = get(&s.admin, &mut jar, "/recommendations").await;
    assert!(
        page.body
            .contains("data-name=\"dash\" data-state=\"stopped\""),
        "{}",
        page.body
    );
    assert!(!page.body.contains("action=\"/experiments/dash/stop\""));
}

/// The placement editor: a refused rule comes back beside its field with its position
/// marked and the form as typed; a saved placement is a storefront row; editing it changes
/// the row; the preview shows the answer for a user; delete removes the row.
#[tokio::test]
async fn placements_are_edited_on_the_dashboard_and_change_the_storefront_row() {
    let s = site().await;
    let (_, mut jar) = login(&s, &s.admin_key).await;
    let page = get(&s.admin, &mut jar, "/placements").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("No placements yet."), "{}", page.body);
    let page = get(&s.admin, &mut jar, "/placements/edit").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_page_headers(&page);

    let form = "name=picks&strategy=trending&k=4&filter=category+%3D%3D+%27a%27+%26%26&boosts=\
                &diversity_attribute=&diversity_max=&promotion_filter=&promotion_positions=\
                &rotation_after=&rotation_hours=&rotation_factor=";
    let a = post(&s.admin, &mut jar, "/placements/save", form).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("data-field=\"filter\""), "{}", a.body);
    assert!(a.body.contains("at position 19"), "{}", a.body);
    // The rule with a caret under position 19 (just past its end), and the form as typed.
    assert!(
        a.body
            .contains("category == 'a' &amp;&amp;\n                  ^"),
        "{}",
        a.body
    );
    assert!(
        a.body.contains("value=\"category == 'a' &amp;&amp;\""),
        "{}",
        a.body
    );
    let good = form.replace("%26%26&boosts", "&boosts");
    let bad_name = good.replace("name=picks", "name=no+spaces");
    let a = post(&s.admin, &mut jar, "/placements/save", &bad_name).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("data-field=\"name\""), "{}", a.body);
    let bad_boost = good.replace("&boosts=", "&boosts=two%3A+in_stock");
    let a = post(&s.admin, &mut jar, "/placements/save", &bad_boost).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("data-field=\"boosts\""), "{}", a.body);

    let a = post(&s.admin, &mut jar, "/placements/save", &good).await;
    assert_eq!(
        (a.status, a.location()),
        (StatusCode::SEE_OTHER, "/placements/edit?name=picks&saved=1")
    );
    let shop = get(&s.storefront, &mut Jar::default(), "/?user_id=u1").await;
    let row = row_items(&shop.body, "placement:picks");
    assert_eq!(row.len(), 4, "{}", shop.body);
    assert!(row.iter().all(|i| i.starts_with('a')), "{row:?}");

    let to_b = good.replace("%27a%27", "%27b%27");
    let a = post(&s.admin, &mut jar, "/placements/save", &to_b).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let shop = get(&s.storefront, &mut Jar::default(), "/?user_id=u1").await;
    let row = row_items(&shop.body, "placement:picks");
    assert_eq!(row.len(), 4);
    assert!(row.iter().all(|i| i.starts_with('b')), "{row:?}");

    let page = get(
        &s.admin,
        &mut jar,
        "/placements/edit?name=picks&preview_user=u1",
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("value=\"category == 'b'\""),
        "{}",
        page.body
    );
    let previewed: Vec<String> = page
        .body
        .split("<tr data-item=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_owned())
        .collect();
    assert_eq!(previewed, row, "the preview is the storefront's row");
    let list = get(&s.admin, &mut jar, "/placements").await;
    assert!(list.body.contains("data-name=\"picks\""));

    let a = post(&s.admin, &mut jar, "/placements/picks/delete", "").await;
    assert_eq!(
        (a.status, a.location()),
        (StatusCode::SEE_OTHER, "/placements")
    );
    let shop = get(&s.storefront, &mut Jar::default(), "/?user_id=u1").await;
    assert!(row_items(&shop.body, "placement:picks").is_empty());
}

/// The behaviour page shows the admin API's numbers (events by day, retention cohorts, the
/// funnel, next purchase), and the keys page creates a publishable key that then works.
#[tokio::test]
async fn behaviour_and_keys_pages_are_the_apis_numbers() {
    use marquee_domain::{Actor, Event, EventId, EventKind, UserId};
    let s = site().await;
    add_orders(&s.store).await;
    let now = Utc::now();
    let event = |id: &str, user: &str, item: &str, kind: EventKind, minutes_ago: i64| Event {
        id: EventId::new(id).unwrap(),
        actor: Actor::User(UserId::new(user).unwrap()),
        item: Some(ItemId::new(item).unwrap()),
        kind,
        value: None,
        timestamp: now - chrono::TimeDelta::minutes(minutes_ago),
        context: None,
    };
    s.store
        .insert_events(&[
            event("e1", "u0", "a0", EventKind::View, 300),
            event("e2", "u0", "a0", EventKind::AddToCart, 200),
            event("e3", "u1", "b1", EventKind::View, 100),
            event("e4", "u1", "b1", EventKind::View, 60 * 24 * 3),
        ])
        .await
        .unwrap();
    let (_, mut jar) = login(&s, &s.admin_key).await;
    let page = get(&s.admin, &mut jar, "/behaviour?next_item=a0").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_page_headers(&page);
    let from = (now - chrono::TimeDelta::days(30)).format("%Y-%m-%d");
    let events = api(&s, &format!("/v1/admin/analytics/events?from={from}")).await;
    for d in events["days"].as_array().unwrap() {
        let tag = format!(
            "data-day=\"{}\" data-total=\"{}\"",
            d["day"].as_str().unwrap(),
            d["total"]
        );
        assert!(page.body.contains(&tag), "{tag}");
    }
    assert_eq!(events["total"], 4);
    let retention = api(&s, "/v1/admin/analytics/retention").await;
    let cohorts = retention["cohorts"].as_array().unwrap();
    assert!(!cohorts.is_empty());
    for c in cohorts {
        let tag = format!(
            "data-week=\"{}\" data-people=\"{}\"",
            c["week"].as_str().unwrap(),
            c["people"]
        );
        assert!(page.body.contains(&tag), "{tag}");
    }
    let auth = format!("Bearer {}", s.admin_key);
    let funnel = raw(
        &s.admin,
        "/v1/admin/analytics/funnel",
        r#"{"steps": [{"kind": "view"}, {"kind": "add_to_cart"}, {"kind": "order"}]}"#,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
    )
    .await;
    let funnel: serde_json::Value = serde_json::from_str(&funnel.1).unwrap();
    let people: Vec<u64> = funnel["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["people"].as_u64().unwrap())
        .collect();
    assert_eq!(people[..2], [2, 1], "{funnel}");
    let table = &page.body[page.body.find("id=\"funnel\"").unwrap()..];
    for n in &people {
        assert!(table.contains(&format!("data-people=\"{n}\"")));
    }
    let next = api(&s, "/v1/admin/analytics/next-purchase?item=a0").await;
    let table = &page.body[page.body.find("id=\"next-purchase\"").unwrap()..];
    for i in next["items"].as_array().unwrap() {
        let tag = format!(
            "data-item=\"{}\" data-customers=\"{}\"",
            i["item_id"].as_str().unwrap(),
            i["customers"]
        );
        assert!(table.contains(&tag), "{tag}");
    }
    // A funnel written wrong says so.
    let bad = get(&s.admin, &mut jar, "/behaviour?steps=view").await;
    assert!(bad.body.contains("2 to 10 steps"), "{}", bad.body);

    // Keys: a bad origin is refused on the page, a good one makes a working key.
    let keys = get(&s.admin, &mut jar, "/keys").await;
    assert_eq!(keys.status, StatusCode::OK);
    let refused = post(
        &s.admin,
        &mut jar,
        "/keys/publishable",
        "label=web&origins=shop.example",
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("http://"), "{}", refused.body);
    let made = post(
        &s.admin,
        &mut jar,
        "/keys/publishable",
        "label=web&origins=https%3A%2F%2Fshop.example",
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let at = made.body.find("mq_pk_").unwrap();
    let key: String = made.body[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let sent = raw(
        &s.storefront,
        &format!("/v1/events?key={key}"),
        r#"{"events": [{"event_id": "k1", "session_id": "anon-k", "item_id": "a1", "kind": "click"}]}"#,
        &[("origin", "https://shop.example"), ("content-type", "text/plain")],
    )
    .await;
    assert_eq!(sent.0, StatusCode::ACCEPTED, "{}", sent.1);
}

/// A POST with exactly these headers: the status and the body.
async fn raw(
    router: &axum::Router,
    uri: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut req = Request::builder().method("POST").uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = router
        .clone()
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}
