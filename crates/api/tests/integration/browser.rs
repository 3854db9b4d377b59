//! The web pages in a real browser: headless Chromium driven over WebDriver (chromedriver),
//! against the real `serve` binary. The storefront: rows for a user, clicks that change them,
//! a guest's session row, a phone-width layout. The dashboard: a wrong key refused, login,
//! KPIs equal to the admin API's, a click on a storefront row counted on the recommendations
//! page, a segment export downloaded, a model activated, an item edited, a placement
//! edited (a refused rule shown beside its field, then the storefront's row changing), logout.
//!
//! Needs the Debian packages `chromium` and `chromium-driver` (`.ci/run` installs them);
//! `MARQUEE_CHROMIUM` / `MARQUEE_CHROMEDRIVER` name other binaries. Without them the test
//! says so and passes, unless `MARQUEE_REQUIRE_BROWSER=1` (CI sets it). Screenshots of every
//! step are saved under `target/screenshots/`.

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{KillOnDrop, add_customers, free_port, http, read_keys, spawn_serve};

/// `env` if set, else the first of `names` on the `PATH`.
fn program(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// Where screenshots go: `<target>/screenshots` (the test binary is `<target>/debug/deps/…`).
fn screenshots() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// The `data-item`s of the cards in row `row`, in order.
async fn row(c: &Client, row: &str) -> Vec<String> {
    let css = format!("section[data-row='{row}'] button.card");
    let mut out = Vec::new();
    for card in c.find_all(Locator::Css(&css)).await.unwrap() {
        out.push(card.attr("data-item").await.unwrap().unwrap());
    }
    out
}

async fn click_card(c: &Client, row: &str, item: &str) {
    let css = format!("section[data-row='{row}'] button.card[data-item='{item}']");
    click(c, Locator::Css(&css)).await;
    // The new page is there when it shows this item (the old one may show another).
    let shown = format!("article.detail[data-item='{item}']");
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&shown))
        .await
        .unwrap();
}

async fn click(c: &Client, target: Locator<'_>) {
    c.find(target).await.unwrap().click().await.unwrap();
}

async fn path(c: &Client) -> String {
    c.current_url().await.unwrap().path().to_owned()
}

async fn text(c: &Client, css: &str) -> String {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

/// Whether the page fits the window's width (no sideways scrolling of the whole page).
async fn fits_width(c: &Client) -> bool {
    let v = c
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
            vec![],
        )
        .await
        .unwrap();
    v.as_bool().unwrap()
}

struct Site {
    port: u16,
    admin_port: u16,
    storefront_key: String,
    admin_key: String,
    downloads: PathBuf,
    /// The store serve uses, to see what the tracker sent.
    store_url: String,
}

/// The events of anonymous session `session` (or of user `user`) once `ready` holds for
/// them, waiting up to 10 s for the tracker's beacons.
async fn stored_events(
    url: &str,
    session: Option<&str>,
    user: Option<&str>,
    ready: impl Fn(&[marquee_domain::Event]) -> bool,
) -> Vec<marquee_domain::Event> {
    let store = marquee_store::Store::open(url).await.unwrap();
    let start = Instant::now();
    loop {
        let events = match (session, user) {
            (Some(s), _) => store
                .events_of_session(&marquee_domain::SessionId::new(s).unwrap(), 100)
                .await
                .unwrap(),
            (None, Some(u)) => store
                .events_of_user(&marquee_domain::UserId::new(u).unwrap(), 100)
                .await
                .unwrap(),
            (None, None) => Vec::new(),
        };
        if ready(&events) || start.elapsed() > Duration::from_secs(10) {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn storefront(c: Client, site: &Site) {
    let base = format!("http://127.0.0.1:{}", site.port);
    c.set_window_size(1280, 1000).await.unwrap();
    c.goto(&format!("{base}/?user_id=u1")).await.unwrap();
    assert_eq!(text(&c, "h1").await, "Welcome back, u1");
    let before = row(&c, "top_picks").await;
    assert!(before[..3].iter().all(|i| i.starts_with('b')), "{before:?}");
    shot(&c, "storefront-home").await;

    // Three clicks on items of the other taste: a trending card, then "More like this".
    let trending = row(&c, "trending").await;
    let first = trending
        .iter()
        .find(|i| i.starts_with('a'))
        .unwrap()
        .clone();
    click_card(&c, "trending", &first).await;
    assert_eq!(text(&c, "h1").await, first);
    shot(&c, "storefront-item").await;
    let mut last = first;
    for _ in 0..2 {
        let similar = row(&c, "similar").await;
        let next = similar.iter().find(|i| i.starts_with('a')).unwrap().clone();
        click_card(&c, "similar", &next).await;
        last = next;
    }
    click(&c, Locator::XPath("//a[contains(., 'Back to the rows')]")).await;
    text(&c, "section[data-row='because_you_watched']").await;
    let after = row(&c, "top_picks").await;
    assert_ne!(after, before, "the rows follow the clicks");
    assert!(after[..3].iter().any(|i| i.starts_with('a')), "{after:?}");
    assert_eq!(
        text(&c, "section[data-row='because_you_watched'] h2").await,
        format!("Because you watched {last}")
    );
    shot(&c, "storefront-after-clicks").await;

    // A guest: trending only, then a row for this visit after one click.
    c.delete_all_cookies().await.unwrap();
    c.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(text(&c, "h1").await, "Welcome, guest");
    assert!(row(&c, "this_visit").await.is_empty());
    let trending = row(&c, "trending").await;
    click_card(&c, "trending", &trending[0]).await;
    // The tracker sent the click on the marked card, with the guest's anonymous id and the
    // row's answer; the server recorded the view.
    let visitor = c.get_named_cookie("mq_visitor").await.unwrap();
    let visitor = visitor.value().to_owned();
    let clicked = trending[0].clone();
    let is_click = |e: &marquee_domain::Event| {
        e.kind == marquee_domain::EventKind::Click
            && e.item.as_ref().map(|i| i.as_str()) == Some(clicked.as_str())
    };
    let events = stored_events(&site.store_url, Some(&visitor), None, |ev| {
        ev.iter().any(is_click)
    })
    .await;
    assert!(
        events.iter().any(is_click),
        "the tracker's click: {events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.kind == marquee_domain::EventKind::View),
        "the server's view"
    );
    c.goto(&format!("{base}/")).await.unwrap();
    assert!(!row(&c, "this_visit").await.is_empty());
    shot(&c, "storefront-guest").await;
    // The guest signs in: marquee.identify, then an add to cart; the anonymous click is now
    // the user's too.
    c.execute(
        "marquee.identify('u7'); marquee.addToCart(arguments[0]); marquee.flush();",
        vec![json!(clicked)],
    )
    .await
    .unwrap();
    let mine = stored_events(&site.store_url, None, Some("u7"), |ev| {
        ev.iter().any(is_click)
            && ev
                .iter()
                .any(|e| e.kind == marquee_domain::EventKind::AddToCart)
    })
    .await;
    assert!(
        mine.iter().any(is_click)
            && mine
                .iter()
                .any(|e| e.kind == marquee_domain::EventKind::AddToCart),
        "u7's events include the anonymous click: {mine:?}"
    );

    // A phone: one column, nothing wider than the screen.
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&format!("{base}/?user_id=u1")).await.unwrap();
    assert!(
        fits_width(&c).await,
        "the storefront overflows a phone screen"
    );
    shot(&c, "storefront-phone").await;
}

/// `12345` as `123.45 EUR`, the way the dashboard shows money (amounts under 1,000 here).
fn eur(minor: i64) -> String {
    format!("{}.{:02} EUR", minor / 100, minor % 100)
}

async fn dashboard(c: Client, site: &Site) {
    let base = format!("http://127.0.0.1:{}", site.admin_port);
    let api = |p: &str| {
        let (status, v) = http(site.admin_port, "GET", p, &site.admin_key, "");
        assert_eq!(status, 200, "{p}: {v}");
        v
    };
    c.set_window_size(1280, 1000).await.unwrap();
    c.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(path(&c).await, "/login", "no session: the login form");

    // A wrong key is refused and leaves no cookie.
    let key = c.find(Locator::Css("input[name=key]")).await.unwrap();
    key.send_keys("mq_ad_not-a-key").await.unwrap();
    click(&c, Locator::Css("button[type=submit]")).await;
    assert_eq!(
        text(&c, "p.error").await,
        "That is not an active admin key."
    );
    assert!(c.get_named_cookie("mq_admin").await.is_err());
    shot(&c, "dashboard-login-refused").await;

    let key = c.find(Locator::Css("input[name=key]")).await.unwrap();
    key.send_keys(&site.admin_key).await.unwrap();
    click(&c, Locator::Css("button[type=submit]")).await;
    let revenue = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("kpi-revenue-this-month"))
        .await
        .unwrap();
    let cookie = c.get_named_cookie("mq_admin").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");

    // The KPI cards show the admin API's numbers for the ranges they state.
    for (id, to) in [
        ("kpi-revenue-this-month", false),
        ("kpi-revenue-last-month", true),
        ("kpi-orders-this-month", false),
        ("kpi-orders-last-month", true),
    ] {
        let card = c.find(Locator::Id(id)).await.unwrap();
        let from = card.attr("data-from").await.unwrap().unwrap();
        let mut uri = format!("/v1/admin/analytics/revenue?period=month&from={from}");
        if to {
            uri.push_str(&format!(
                "&to={}",
                card.attr("data-to").await.unwrap().unwrap()
            ));
        }
        let v = api(&uri);
        let shown = card
            .find(Locator::Css(".value"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let expected = if id.starts_with("kpi-revenue") {
            eur(v["revenue_minor"].as_i64().unwrap())
        } else {
            v["orders"].to_string()
        };
        assert_eq!(shown, expected, "{id}");
    }
    assert!(
        revenue.text().await.unwrap().contains("Revenue this month"),
        "labelled"
    );
    let top = api("/v1/admin/analytics/top-products?by=revenue&limit=10");
    let first_row = c
        .find(Locator::Css("#top-products tr[data-item]"))
        .await
        .unwrap();
    assert_eq!(
        first_row.attr("data-item").await.unwrap().as_deref(),
        top["products"][0]["item"].as_str()
    );
    let bars = c
        .find_all(Locator::Css("svg.chart rect.bar"))
        .await
        .unwrap();
    let months = api("/v1/admin/analytics/revenue?period=month");
    assert_eq!(bars.len(), months["rows"].as_array().unwrap().len());
    shot(&c, "dashboard-overview").await;

    // Segments: export every consenting customer as CSV through the download link.
    click(&c, Locator::LinkText("Segments")).await;
    text(&c, "#segments").await;
    shot(&c, "dashboard-segments").await;
    click(
        &c,
        Locator::Css("a[href='/segments/export?segment=all&format=csv']"),
    )
    .await;
    let csv = downloaded(&site.downloads, "csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].contains("user_id"), "{}", lines[0]);
    assert_eq!(lines.len(), 11, "ten consenting customers: {csv}");
    for odd in ["u1,", "u3,", "u19,"] {
        assert!(!csv.contains(odd), "{odd} did not consent: {csv}");
    }

    // Models: activate v2, and the API agrees.
    c.goto(&format!("{base}/models")).await.unwrap();
    click(
        &c,
        Locator::Css("form[action='/models/v2/activate'] button"),
    )
    .await;
    assert_eq!(text(&c, "p.notice").await, "Version v2 is now active.");
    assert_eq!(text(&c, "#active-version").await, "v2");
    assert_eq!(api("/v1/admin/models")["active"], "v2");
    let mut charted = Vec::new();
    for bar in c
        .find_all(Locator::Css("svg.chart rect.bar"))
        .await
        .unwrap()
    {
        charted.push(bar.attr("data-value").await.unwrap().unwrap());
    }
    assert_eq!(
        charted,
        ["0.312", "0.221", "0.181"],
        "v2's nDCG, recall, baseline"
    );
    assert_eq!(
        text(&c, "#versions tr[data-version='v2'] td:nth-child(4)").await,
        "0.312"
    );
    shot(&c, "dashboard-models").await;

    // Recommendations: the storefront flow clicked a card of u1's trending row, so the row's
    // placement shows that click, as the admin API counts it.
    c.goto(&format!("{base}/recommendations")).await.unwrap();
    let trending = "#by-placement tr[data-key='home:trending']";
    let clicks = c
        .find(Locator::Css(trending))
        .await
        .unwrap()
        .attr("data-clicks")
        .await
        .unwrap()
        .unwrap();
    let kpis = api("/v1/admin/analytics/recommendations?group_by=placement");
    let counted = kpis["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["placement"] == "home:trending")
        .map(|r| r["clicks"].as_u64().unwrap());
    assert!(counted.is_some_and(|n| n >= 1), "{kpis}");
    assert_eq!(clicks.parse::<u64>().ok(), counted);
    shot(&c, "dashboard-recommendations").await;

    // Catalog: retitle an item; the storefront API serves the new title.
    c.goto(&format!("{base}/catalog")).await.unwrap();
    shot(&c, "dashboard-catalog").await;
    c.goto(&format!("{base}/catalog/edit?id=a1")).await.unwrap();
    let title = c.find(Locator::Css("input[name=title]")).await.unwrap();
    title.clear().await.unwrap();
    title.send_keys("Renamed in a browser").await.unwrap();
    click(&c, Locator::Css("form.form button[type=submit]")).await;
    assert_eq!(
        text(&c, "p.notice").await,
        "Saved: the storefront already uses it."
    );
    let (status, item) = http(site.port, "GET", "/v1/items/a1", &site.storefront_key, "");
    assert_eq!(
        (status, item["title"].as_str()),
        (200, Some("Renamed in a browser"))
    );
    shot(&c, "dashboard-catalog-edit").await;

    // Placements: a rule with a mistake is refused beside its field; saved, the storefront
    // shows the placement's row; edited, the row changes.
    c.goto(&format!("{base}/placements/edit")).await.unwrap();
    let fill = |name: &'static str, value: &'static str| {
        let c = c.clone();
        async move {
            let field = c
                .find(Locator::Css(&format!("#placement [name={name}]")))
                .await
                .unwrap();
            field.clear().await.unwrap();
            field.send_keys(value).await.unwrap();
        }
    };
    fill("name", "browser_picks").await;
    click(
        &c,
        Locator::Css("select[name=strategy] option[value=trending]"),
    )
    .await;
    fill("k", "4").await;
    fill("filter", "category == ").await;
    click(&c, Locator::Css("#placement button[type=submit]")).await;
    let refusal = text(&c, "div.error[data-field=filter] p").await;
    assert!(refusal.contains("at position 12"), "{refusal}");
    shot(&c, "dashboard-placement-refused").await;
    fill("filter", "category == 'a'").await;
    click(&c, Locator::Css("#placement button[type=submit]")).await;
    assert_eq!(
        text(&c, "p.notice").await,
        "Saved: the storefront serves it now."
    );
    let shop = format!("http://127.0.0.1:{}", site.port);
    c.goto(&format!("{shop}/?user_id=u1")).await.unwrap();
    let picks = row(&c, "placement:browser_picks").await;
    assert_eq!(picks.len(), 4, "{picks:?}");
    assert!(picks.iter().all(|i| i.starts_with('a')), "{picks:?}");
    c.goto(&format!("{base}/placements/edit?name=browser_picks"))
        .await
        .unwrap();
    fill("filter", "category == 'b'").await;
    click(&c, Locator::Css("#placement button[type=submit]")).await;
    text(&c, "p.notice").await;
    shot(&c, "dashboard-placement").await;
    c.goto(&format!("{shop}/?user_id=u1")).await.unwrap();
    let picks = row(&c, "placement:browser_picks").await;
    assert_eq!(picks.len(), 4, "{picks:?}");
    assert!(picks.iter().all(|i| i.starts_with('b')), "{picks:?}");
    shot(&c, "storefront-placement-row").await;

    // A phone: the dashboard fits too.
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&format!("{base}/")).await.unwrap();
    assert!(
        fits_width(&c).await,
        "the dashboard overflows a phone screen"
    );
    shot(&c, "dashboard-phone").await;
    c.set_window_size(1280, 1000).await.unwrap();

    // Logging out ends the session.
    click(&c, Locator::Css("form[action='/logout'] button")).await;
    text(&c, "input[name=key]").await;
    c.goto(&format!("{base}/segments")).await.unwrap();
    assert_eq!(path(&c).await, "/login");
}

/// The text of the one finished download with extension `ext` in `dir` (waits up to 20 s).
fn downloaded(dir: &Path, ext: &str) -> String {
    let start = Instant::now();
    loop {
        let done: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect();
        if let [file] = done.as_slice() {
            return std::fs::read_to_string(file).unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no finished .{ext} download in {}: {done:?}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `flow` in a fresh browser session, closing the browser whatever happens.
async fn in_browser<F, Fut>(driver_port: u16, chromium: &Path, downloads: &Path, flow: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let caps = json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1000"],
            "prefs": {
                "download.default_directory": downloads,
                "download.prompt_for_download": false,
            },
        },
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("chromedriver did not open a browser session");
    let outcome = tokio::spawn(flow(client.clone())).await;
    let _ = client.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_work_in_a_real_browser() {
    let chromium = program(
        "MARQUEE_CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let driver = program("MARQUEE_CHROMEDRIVER", &["chromedriver"]);
    let (Some(chromium), Some(driver)) = (chromium, driver) else {
        assert!(
            std::env::var_os("MARQUEE_REQUIRE_BROWSER").is_none(),
            "MARQUEE_REQUIRE_BROWSER is set but chromium or chromedriver is missing: \
             apt-get install chromium chromium-driver"
        );
        eprintln!("skipped: no chromium/chromedriver (apt-get install chromium chromium-driver)");
        return;
    };

    let shop = crate::common::shop().await;
    add_customers(&shop.url).await;
    // A second model version to activate from the dashboard.
    let v2 = shop.model.join("v2");
    std::fs::create_dir_all(&v2).unwrap();
    for entry in std::fs::read_dir(shop.model.join("v1")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), v2.join(entry.file_name())).unwrap();
    }
    // v2 was evaluated (as `train` records it): its metrics are charted, v1's are not.
    let manifest = v2.join("manifest.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    m["version"] = json!("v2");
    m["metrics"] = json!({
        "test": {"k": 10, "ndcg": 0.312, "recall": 0.221},
        "baseline": {"k": 10, "ndcg": 0.181, "recall": 0.074},
    });
    std::fs::write(&manifest, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    // Segments, computed by the real tool.
    let tools = Path::new(env!("CARGO_BIN_EXE_serve")).parent().unwrap();
    let out = Command::new(tools.join("segments"))
        .args(["compute", "--k", "2"])
        .env("DATABASE_URL", &shop.url)
        .output()
        .expect("the segments binary is missing beside serve: run `cargo test --workspace`");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (port, admin_port) = (free_port(), free_port());
    let mut serve = spawn_serve(&shop.url, &shop.model, port, admin_port);
    let (storefront_key, admin_key) = read_keys(&mut serve);
    let driver_port = free_port();
    let _driver = KillOnDrop(
        Command::new(&driver)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", driver_port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let downloads = tempfile::tempdir().unwrap();
    let site = std::sync::Arc::new(Site {
        port,
        admin_port,
        storefront_key,
        admin_key,
        downloads: downloads.path().to_path_buf(),
        store_url: shop.url.clone(),
    });
    let s = site.clone();
    in_browser(
        driver_port,
        &chromium,
        downloads.path(),
        move |c| async move {
            storefront(c, &s).await;
        },
    )
    .await;
    let s = site.clone();
    in_browser(
        driver_port,
        &chromium,
        downloads.path(),
        move |c| async move {
            dashboard(c, &s).await;
        },
    )
    .await;
    eprintln!("screenshots in {}", screenshots().display());
}
