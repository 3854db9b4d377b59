//! The `data` binary end to end, as a user runs it: real files, a fresh SQLite store per test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel)
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

struct Env {
    _dir: tempfile::TempDir,
    url: String,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        Self { _dir: dir, url }
    }

    fn data(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_data"))
            .args(args)
            .env("DATABASE_URL", &self.url)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.data(args);
        assert!(
            out.status.success(),
            "data {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn stat(&self, name: &str) -> u64 {
        let out = self.ok(&["stats"]);
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in {out}"))
            .parse()
            .unwrap()
    }
}

#[test]
fn movielens_import_loads_everything_once_even_when_repeated() {
    let env = Env::new();
    let dir = shared("movielens-latest-small");
    let out = env.ok(&["import", "movielens", dir.to_str().unwrap()]);
    assert!(
        out.contains("events 100836 new + 0 already stored"),
        "{out}"
    );
    assert_eq!(env.stat("ratings"), 100_836);
    assert_eq!(env.stat("users"), 610);
    assert_eq!(env.stat("items"), 9_742);
    let again = env.ok(&["import", "movielens", dir.to_str().unwrap()]);
    assert!(
        again.contains("events 0 new + 100836 already stored"),
        "{again}"
    );
    assert_eq!(env.stat("events"), 100_836);
    assert_eq!(env.stat("items"), 9_742);
}

#[test]
fn online_retail_import_loads_every_invoice() {
    let env = Env::new();
    let file = shared("online-retail/online_retail.parquet");
    let out = env.ok(&["import", "online-retail", file.to_str().unwrap()]);
    assert!(out.contains("3836 cancellations"), "{out}");
    assert_eq!(env.stat("orders"), 25_900);
    assert_eq!(env.stat("order_lines"), 541_909);
    assert_eq!(env.stat("users"), 4_372);
    assert_eq!(env.stat("items"), 4_070);
    env.ok(&["import", "online-retail", file.to_str().unwrap()]);
    assert_eq!(env.stat("orders"), 25_900);
    assert_eq!(env.stat("order_lines"), 541_909);
    online_retail_segments(&env, &file);
    online_retail_bought_together(&env, &file);
    online_retail_next_purchase(&env, &file);
}

/// Next purchase (what the admin API and dashboard show) from the stored orders, against a
/// plain computation over the file's order lines: for the most-ordered items, per customer
/// the orders after their first order of the item (cancellations left out), counted by item.
fn online_retail_next_purchase(env: &Env, file: &Path) {
    use std::collections::{BTreeMap, HashMap, HashSet};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(marquee_store::Store::open(&env.url)).unwrap();
    let stored = rt.block_on(store.all_orders()).unwrap();
    let bundle = marquee_tabular::online_retail::read(file).unwrap();
    // Per customer: their valid orders as (time, items), in time order.
    let mut history: BTreeMap<&str, Vec<(i64, HashSet<&str>)>> = BTreeMap::new();
    for o in bundle.orders.iter().filter(|o| !o.status.is_reversal()) {
        let Some(user) = &o.user else { continue };
        history.entry(user.as_str()).or_default().push((
            o.created_at.timestamp_millis(),
            o.lines.iter().map(|l| l.item.as_str()).collect(),
        ));
    }
    for orders in history.values_mut() {
        orders.sort_by_key(|(t, _)| *t);
    }
    let mut popularity: HashMap<&str, usize> = HashMap::new();
    for orders in history.values() {
        for (_, items) in orders {
            for i in items {
                *popularity.entry(i).or_default() += 1;
            }
        }
    }
    let mut top: Vec<(&str, usize)> = popularity.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for &(item, _) in top.iter().take(3) {
        let mut buyers = 0u64;
        let mut with_later = 0u64;
        let mut counts: HashMap<&str, u64> = HashMap::new();
        for orders in history.values() {
            let Some(first) = orders.iter().position(|(_, items)| items.contains(item)) else {
                continue;
            };
            buyers += 1;
            let t0 = orders[first].0;
            let later: HashSet<&str> = orders
                .iter()
                .filter(|(t, _)| *t > t0)
                .flat_map(|(_, items)| items.iter().copied())
                .collect();
            if orders.iter().any(|(t, _)| *t > t0) {
                with_later += 1;
            }
            for i in later {
                *counts.entry(i).or_default() += 1;
            }
        }
        let mut expected: Vec<(&str, u64)> = counts.into_iter().collect();
        expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        expected.truncate(20);
        let id = marquee_domain::ItemId::new(item).unwrap();
        let got = marquee_store::behaviour::next_purchase(&stored, &id, 20);
        // The admin API asks the database: the same answer.
        assert_eq!(
            rt.block_on(store.next_purchase(&id, 20)).unwrap(),
            got,
            "{item}"
        );
        assert_eq!(got.buyers, buyers, "{item}");
        assert_eq!(got.buyers_with_later_orders, with_later, "{item}");
        let got_items: Vec<(&str, u64)> = got
            .items
            .iter()
            .map(|i| (i.item_id.as_str(), i.customers))
            .collect();
        assert_eq!(got_items, expected, "bought after {item}");
        assert!(
            buyers > 100 && !expected.is_empty(),
            "{item}: {buyers} buyers"
        );
    }
}

/// The frequently-bought-together answers the engine builds from the stored orders, against a
/// plain count over the file's order lines: for the most-ordered items, the items in most
/// orders with them (cancellations left out, hidden and out-of-stock items too), with those
/// counts as scores.
fn online_retail_bought_together(env: &Env, file: &Path) {
    use marquee_engine::{Engine, PlaceRequest, PlacementSpec, Reason, Strategy};
    use std::collections::{HashMap, HashSet};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(marquee_store::Store::open(&env.url)).unwrap();
    let catalog = rt.block_on(store.all_items()).unwrap();
    let mut orders = Vec::new();
    rt.block_on(store.for_each_order(|o| {
        orders.push(o);
        Ok(())
    }))
    .unwrap();
    // Any model serves: bought-together answers come from orders alone.
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (catalog[0].id.as_str(), catalog[1].id.as_str());
    let x = marquee_models::Interactions::from_timed_triplets(vec![
        ("u1", a, 1.0, 0),
        ("u1", b, 1.0, 0),
        ("u2", a, 1.0, 0),
    ]);
    let ease = marquee_models::search::Candidate::Ease(marquee_models::EaseParams::default());
    let (model, _) = marquee_neural::fit(&ease, &x, None, &mut |_, _| true).unwrap();
    let mut artifact = marquee_models::Artifact::new(
        "retail",
        "v1",
        model,
        x,
        "test",
        serde_json::Value::Null,
        serde_json::to_value(marquee_domain::EventWeights::default()).unwrap(),
    );
    let path = dir.path().join("retail/v1");
    artifact.save(&path).unwrap();
    let engine = Engine::open(&path, catalog.clone()).unwrap();
    engine.add_orders(&orders);
    let spec = PlacementSpec {
        strategy: Strategy::FrequentlyBoughtTogether,
        k: Some(10),
        filter: None,
        boosts: Vec::new(),
        diversity: None,
        promotion: None,
        rotation: None,
    };
    engine.set_placements(HashMap::from([("fbt".to_owned(), spec)]));

    let bundle = marquee_tabular::online_retail::read(file).unwrap();
    let shown: HashSet<&str> = catalog
        .iter()
        .filter(|i| !i.hidden && i.in_stock)
        .map(|i| i.id.as_str())
        .collect();
    let baskets: Vec<HashSet<&str>> = bundle
        .orders
        .iter()
        .filter(|o| !o.status.is_reversal())
        .map(|o| o.lines.iter().map(|l| l.item.as_str()).collect())
        .collect();
    let mut orders_of: HashMap<&str, usize> = HashMap::new();
    for basket in &baskets {
        for i in basket {
            *orders_of.entry(i).or_default() += 1;
        }
    }
    let mut top: Vec<(&str, usize)> = orders_of.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for &(item, _) in top.iter().take(5) {
        let mut with: HashMap<&str, usize> = HashMap::new();
        for basket in baskets.iter().filter(|b| b.contains(item)) {
            for other in basket.iter().filter(|o| **o != item && shown.contains(*o)) {
                *with.entry(other).or_default() += 1;
            }
        }
        let mut expected: Vec<(&str, usize)> = with.into_iter().collect();
        expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        expected.truncate(10);
        let id = marquee_domain::ItemId::new(item).unwrap();
        let answer = engine
            .place(
                "fbt",
                &PlaceRequest {
                    item: Some(&id),
                    ..PlaceRequest::default()
                },
            )
            .unwrap();
        let got: Vec<(&str, usize)> = answer
            .items
            .iter()
            .map(|r| {
                assert_eq!(r.reason, Reason::BoughtTogether);
                (r.item.as_str(), r.score as usize)
            })
            .collect();
        assert_eq!(got, expected, "bought with {item}");
    }
}

fn segments(env: &Env, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_segments"))
        .args(args)
        .env("DATABASE_URL", &env.url)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// RFM of every Online Retail customer against a plain computation over the file's rows,
/// segment sizes against the customer count, the export round trip and the consent filter.
fn online_retail_segments(env: &Env, file: &Path) {
    use std::collections::{HashMap, HashSet};
    // Before any run: a clear error.
    let out = segments(env, &["list"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("segments compute"));

    let export_all = |selection: &[&str], format: &str, out: &Path| -> Output {
        let mut args = vec!["export"];
        args.extend_from_slice(selection);
        args.extend_from_slice(&["--format", format, "--include-non-consenting", "--out"]);
        args.push(out.to_str().unwrap());
        segments(env, &args)
    };
    let out = segments(env, &["compute", "--k", "4"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("4 clusters"), "{text}");

    // The independent computation: per customer, valid (not cancelled/refunded) orders,
    // net amount with reversals subtracted, days since the latest valid order.
    let bundle = marquee_tabular::online_retail::read(file).unwrap();
    let newest = bundle
        .orders
        .iter()
        .map(|o| o.created_at.timestamp_millis())
        .max()
        .unwrap();
    let day = 86_400_000i64;
    let reference = (newest.div_euclid(day) + 1) * day;
    let mut valid: HashMap<String, HashSet<String>> = HashMap::new();
    let mut money: HashMap<String, i64> = HashMap::new();
    let mut last: HashMap<String, i64> = HashMap::new();
    for o in &bundle.orders {
        let Some(u) = &o.user else { continue };
        let sign = if o.status.is_reversal() { -1 } else { 1 };
        let total: i64 = o
            .lines
            .iter()
            .map(|l| i64::from(l.quantity) * l.unit_price.minor)
            .sum();
        *money.entry(u.as_str().into()).or_default() += sign * total;
        if sign > 0 {
            valid
                .entry(u.as_str().into())
                .or_default()
                .insert(o.id.as_str().into());
            let t = last.entry(u.as_str().into()).or_insert(i64::MIN);
            *t = (*t).max(o.created_at.timestamp_millis());
        }
    }

    // KPIs against the raw rows: monthly net revenue sums to the file's net total, and the
    // top product by revenue is the item with the largest net sum.
    use marquee_pipelines::kpis::{Period, Range, RankBy, revenue_by_period, top_products};
    let months = revenue_by_period(&bundle.orders, Period::Month, Range::default()).unwrap();
    let net: i64 = bundle
        .orders
        .iter()
        .map(|o| {
            if o.status.is_reversal() {
                -o.total_minor()
            } else {
                o.total_minor()
            }
        })
        .sum();
    assert_eq!(months.iter().map(|m| m.revenue_minor).sum::<i64>(), net);
    assert_eq!(months.len(), 13, "December 2010 to December 2011");
    let mut per_item: HashMap<&str, i64> = HashMap::new();
    for o in &bundle.orders {
        let sign = if o.status.is_reversal() { -1 } else { 1 };
        for l in &o.lines {
            *per_item.entry(l.item.as_str()).or_default() +=
                sign * i64::from(l.quantity) * l.unit_price.minor;
        }
    }
    let best = per_item
        .iter()
        .max_by_key(|(i, v)| (**v, std::cmp::Reverse(**i)))
        .unwrap();
    let top = top_products(&bundle.orders, Range::default(), RankBy::Revenue, 1).unwrap();
    assert_eq!(
        (top[0].item.as_str(), top[0].revenue_minor),
        (*best.0, *best.1)
    );

    // The database's KPIs (served by the admin API) equal the Polars ones over the same rows.
    let store_kpis = tokio::runtime::Runtime::new().unwrap().block_on(async {
        use marquee_store::kpis::{DateRange, Period as P, RankBy as R};
        let store = marquee_store::Store::open(&env.url).await.unwrap();
        let all = DateRange::default();
        (
            store.revenue_by_period(P::Month, all).await.unwrap(),
            store.revenue_by_period(P::Day, all).await.unwrap(),
            store.top_products(all, R::Revenue, 10).await.unwrap(),
            store.top_products(all, R::Units, 10).await.unwrap(),
            store.new_vs_returning(all).await.unwrap(),
        )
    });
    let days = revenue_by_period(&bundle.orders, Period::Day, Range::default()).unwrap();
    let pairs = |v: &[marquee_store::kpis::RevenueRow]| -> Vec<(String, u64, i64)> {
        v.iter()
            .map(|r| (r.period.clone(), r.orders, r.revenue_minor))
            .collect()
    };
    let polars_pairs = |v: &[marquee_pipelines::kpis::RevenueRow]| -> Vec<(String, u64, i64)> {
        v.iter()
            .map(|r| (r.period.clone(), u64::from(r.orders), r.revenue_minor))
            .collect()
    };
    assert_eq!(pairs(&store_kpis.0), polars_pairs(&months));
    assert_eq!(pairs(&store_kpis.1), polars_pairs(&days));
    for (got, by) in [
        (&store_kpis.2, RankBy::Revenue),
        (&store_kpis.3, RankBy::Units),
    ] {
        let want = top_products(&bundle.orders, Range::default(), by, 10).unwrap();
        let got: Vec<_> = got
            .iter()
            .map(|p| (p.item.clone(), p.revenue_minor, p.units))
            .collect();
        let want: Vec<_> = want
            .iter()
            .map(|p| (p.item.clone(), p.revenue_minor, p.units))
            .collect();
        assert_eq!(got, want, "{by:?}");
    }
    let customers: Vec<_> = marquee_pipelines::kpis::new_vs_returning(&bundle.orders)
        .into_iter()
        .map(|c| {
            (
                c.month,
                u64::from(c.new_customers),
                u64::from(c.returning_customers),
            )
        })
        .collect();
    let got: Vec<_> = store_kpis
        .4
        .iter()
        .map(|c| (c.month.clone(), c.new_customers, c.returning_customers))
        .collect();
    assert_eq!(got, customers);

    let csv_path = env._dir.path().join("all.csv");
    let out = segments(
        env,
        &[
            "export",
            "--all",
            "--format",
            "csv",
            "--out",
            csv_path.to_str().unwrap(),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Online Retail records no consent: everyone is left out by default.
    assert!(
        text.contains("wrote 0 customers") && text.contains("left out 4"),
        "{text}"
    );
    let out = export_all(&["--all"], "csv", &csv_path);
    assert!(out.status.success());
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, marquee_cli::segments::EXPORT_COLUMNS);
    let mut rows = 0;
    let mut by_segment: HashMap<String, usize> = HashMap::new();
    for record in reader.records() {
        let r = record.unwrap();
        let user = &r[0];
        rows += 1;
        *by_segment.entry(r[2].to_owned()).or_default() += 1;
        let frequency: usize = r[4].parse().unwrap();
        let monetary: i64 = r[6].parse().unwrap();
        let recency: i64 = r[3].parse().unwrap();
        assert_eq!(frequency, valid[user].len(), "{user}");
        assert_eq!(monetary, money[user], "{user}");
        assert_eq!(recency, (reference - last[user]).div_euclid(day), "{user}");
        for score in [&r[7], &r[8], &r[9]] {
            assert!(matches!(score, "1" | "2" | "3" | "4" | "5"));
        }
    }
    assert_eq!(rows, valid.len(), "every customer with a valid order, once");
    assert_eq!(by_segment.values().sum::<usize>(), rows);

    // Parquet holds the same rows.
    let pq = env._dir.path().join("all.parquet");
    let out = export_all(&["--all"], "parquet", &pq);
    assert!(out.status.success());
    use polars::prelude::SerReader;
    let df = polars::prelude::ParquetReader::new(std::fs::File::open(&pq).unwrap())
        .finish()
        .unwrap();
    assert_eq!(df.height(), rows);
    let total: i64 = df
        .column("monetary_minor")
        .unwrap()
        .i64()
        .unwrap()
        .iter()
        .flatten()
        .sum();
    assert_eq!(total, valid.keys().map(|u| money[u]).sum::<i64>());

    // One segment, and what is refused.
    let champions = env._dir.path().join("champions.csv");
    let out = export_all(&["--segment", "champions"], "csv", &champions);
    assert!(out.status.success());
    let n = csv::Reader::from_path(&champions)
        .unwrap()
        .records()
        .count();
    assert_eq!(n, by_segment["champions"]);
    // A disk that fills up during the export: a file-size limit below the export's size
    // (SIGXFSZ ignored, so the write fails as on a full disk). The limit stays above what
    // SQLite's shared-memory index may need on open (32 KiB per 4,096 WAL frames).
    let whole = env._dir.path().join("whole.csv");
    assert!(export_all(&["--all"], "csv", &whole).status.success());
    let export_len = std::fs::metadata(&whole).unwrap().len();
    let wal_len = std::fs::metadata(env._dir.path().join("store.db-wal")).map_or(0, |m| m.len());
    let limit_kib = 32 * (wal_len / 4_120 / 4_096 + 2) + 64;
    assert!(
        export_len > limit_kib * 1024 + 65_536,
        "the export ({export_len} B) must exceed the limit ({limit_kib} KiB) for this check"
    );
    let full = env._dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    let target = full.join("all.csv");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -f {limit_kib}; trap '' XFSZ; exec \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_segments"))
        .args(["export", "--all", "--include-non-consenting", "--out"])
        .arg(&target)
        .env("DATABASE_URL", &env.url)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("large") || err.contains("space"), "{err}");
    assert_eq!(std::fs::read_dir(&full).unwrap().count(), 0, "{err}");

    let out = segments(env, &["export", "--segment", "vip", "--out", "x.csv"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown segment \"vip\""));
    let out = segments(
        env,
        &["export", "--all", "--format", "xlsx", "--out", "x.csv"],
    );
    assert!(!out.status.success());
    let out = segments(env, &["compute", "--reference", "2011-13-01"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("YYYY-MM-DD"));
    let out = segments(env, &["list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("champions") && text.contains("lost"),
        "{text}"
    );
}

#[test]
fn otto_sessions_import_as_anonymous_events() {
    let env = Env::new();
    env.ok(&[
        "import",
        "otto",
        shared("otto-sample/sessions.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(env.stat("events"), 862);
    assert_eq!(env.stat("sessions"), 20);
    assert_eq!(env.stat("users"), 0);
}

#[test]
fn a_malformed_file_is_reported_and_nothing_is_imported() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ix.csv");
    let mut text = String::from("user,item,rating\n");
    for i in 0..5_000 {
        text.push_str(&format!("u{},i{},4\n", i % 50, i % 70));
    }
    text.push_str("u1,i2,eleven\n");
    std::fs::write(&file, text).unwrap();
    let out = env.data(&["import", "interactions", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ix.csv: line 5002: rating"), "{err}");
    assert!(err.contains("nothing was imported"), "{err}");
    assert_eq!(env.stat("events"), 0);
    assert_eq!(env.stat("users"), 0);
}

#[test]
fn generated_stores_have_the_asked_size_and_folders_import() {
    let env = Env::new();
    let out = env.ok(&[
        "generate", "--users", "40", "--items", "60", "--events", "3000", "--seed", "5",
    ]);
    assert!(out.contains("events: 3000"), "{out}");
    assert_eq!(env.stat("users"), 40);
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("gen");
    env.ok(&[
        "generate",
        "--users",
        "40",
        "--items",
        "60",
        "--events",
        "3000",
        "--seed",
        "5",
        "--out",
        folder.to_str().unwrap(),
    ]);
    // The same seed written as files imports as the very same events: nothing new.
    let again = env.ok(&["import", "store", folder.to_str().unwrap()]);
    assert!(
        again.contains("events 0 new + 3000 already stored"),
        "{again}"
    );
}

#[test]
fn the_demo_store_of_the_readme_imports() {
    let env = Env::new();
    let out = env.ok(&[
        "import",
        "store",
        repo("notebooks-data/demo-store").to_str().unwrap(),
    ]);
    assert!(out.contains("already stored"), "{out}");
    assert!(env.stat("events") > 10_000);
    assert!(env.stat("orders") > 100);
}

#[test]
fn help_explains_and_bad_arguments_say_what_to_fix() {
    let env = Env::new();
    let help = env.ok(&["--help"]);
    assert!(
        help.contains("DATABASE_URL") && help.contains("import") && help.contains("generate"),
        "{help}"
    );
    let out = env.data(&["import", "interactions", "x.csv", "--kind", "teleport"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("teleport"));
    let out = Command::new(env!("CARGO_BIN_EXE_data"))
        .args(["stats"])
        .env("DATABASE_URL", "mysql://localhost/x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sqlite://PATH") && err.contains("postgres://"),
        "{err}"
    );
    // A PostgreSQL server that is not there: the message names it, without the password.
    let out = Command::new(env!("CARGO_BIN_EXE_data"))
        .args(["stats"])
        .env("DATABASE_URL", "postgres://shop:hunter2@127.0.0.1:1/x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("postgres://shop:***@127.0.0.1:1/x"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    let out = env.data(&["import", "movielens", "/nonexistent/folder"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a folder"));
}

fn train(cwd: &Path, url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_train"))
        .args(args)
        .current_dir(cwd)
        .env("DATABASE_URL", url)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn recommend(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recommend"))
        .args(args)
        .env("DATABASE_URL", url)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn train_on_the_demo_store_then_recommend_from_the_saved_model() {
    use marquee_models::Artifact;
    let env = Env::new();
    env.ok(&[
        "import",
        "store",
        repo("notebooks-data/demo-store").to_str().unwrap(),
    ]);
    let work = env._dir.path();
    let config = repo("training/default.toml");
    let out = train(
        work,
        &env.url,
        &[
            "--config",
            config.to_str().unwrap(),
            "--set",
            "als.regularization=5",
            "--set",
            "als.alpha=1",
            "--set",
            "ease.lambda=50,200",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "train failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for kind in ["popularity", "trending", "item_knn", "ease", "als"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.get(2..).is_some_and(|s| s.starts_with(kind))),
            "{kind} missing from\n{stdout}"
        );
    }
    let chosen = stdout
        .lines()
        .find(|l| l.starts_with('*'))
        .expect("a chosen model is marked");
    assert!(stdout.contains("report: "), "{stdout}");
    // The phase table: every phase, in order, and the share of fitting in the total.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let table = &stderr[stderr.find("time by phase").expect("a phase table")..];
    let phases: Vec<&str> = table
        .lines()
        .skip(1)
        .filter_map(|l| l.trim().rsplit_once("  ").map(|(name, _)| name.trim()))
        .collect();
    for phase in [
        "read",
        "features",
        "split",
        "validate ease",
        "fit ease",
        "evaluate ease",
        "refit",
        "write",
        "report",
    ] {
        assert!(phases.contains(&phase), "{phase} missing from\n{table}");
    }
    assert!(
        phases.iter().position(|p| *p == "read") < phases.iter().position(|p| *p == "write"),
        "{table}"
    );
    assert!(table.contains("(fitting "), "{table}");

    // The artifact, its pointer and its report.
    let models = work.join("models/default");
    let version = std::fs::read_to_string(models.join("latest")).unwrap();
    let dir = models.join(version.trim());
    for file in [
        "manifest.json",
        "model.safetensors",
        "users.json",
        "items.json",
        "report.html",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let report = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(report.matches("<svg").count() >= 4, "plots missing");
    let artifact = Artifact::load(&dir).unwrap();
    let m = &artifact.manifest.metrics;
    assert!(chosen[2..].starts_with(&artifact.manifest.kind), "{chosen}");
    let test = m["test"]["ndcg"].as_f64().unwrap();
    let baseline = m["baseline"]["ndcg"].as_f64().unwrap();
    assert!(
        test > baseline,
        "{} nDCG {test} is not above popularity {baseline}",
        artifact.manifest.kind
    );
    assert_eq!(m["models"].as_object().unwrap().len(), 5);
    // An ALS refit starts from the split model's factors (2 sweeps), any other is cold.
    let als = artifact.manifest.kind == "als";
    assert_eq!(m["refit"]["warm_start"], als, "{}", m["refit"]);
    if als {
        assert_eq!(m["refit"]["sweeps"], 2);
    }
    // Refitted on all data: every interaction of the store is in the model's history.
    assert!(
        artifact.history.nnz() > m["protocol"]["train_interactions"].as_u64().unwrap() as usize
    );
    assert_eq!(artifact.manifest.data.source, env.url);

    // Batch recommendations for everyone, without what they have seen.
    let recs = work.join("recs.csv");
    let out = recommend(
        &env.url,
        &[
            "--model",
            models.to_str().unwrap(),
            "--users",
            "all",
            "--k",
            "5",
            "--exclude-seen",
            "--out",
            recs.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&recs).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("user,item,rank,score"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), artifact.history.n_users() * 5);
    for (n, row) in rows.iter().enumerate() {
        assert_eq!(row[2], ((n % 5) + 1).to_string());
        let u = artifact.history.users.get(row[0]).unwrap() as usize;
        let i = artifact.history.items.get(row[1]).unwrap();
        assert!(
            !artifact.history.row(u).items.contains(&i),
            "{row:?} was already seen"
        );
    }

    // Batch answers come from the serving engine: an item hidden in the store and one out of
    // stock are left out, as the storefront API leaves them out.
    let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for row in &rows {
        *counts.entry(row[1]).or_default() += 1;
    }
    let mut frequent: Vec<(&str, usize)> = counts.into_iter().collect();
    frequent.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let (hidden, sold_out) = (frequent[0].0.to_owned(), frequent[1].0.to_owned());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = marquee_store::Store::open(&env.url).await.unwrap();
        let ids = [
            marquee_domain::ItemId::new(hidden.as_str()).unwrap(),
            marquee_domain::ItemId::new(sold_out.as_str()).unwrap(),
        ];
        let mut items = store.items_by_ids(&ids).await.unwrap();
        assert_eq!(items.len(), 2, "{hidden} and {sold_out} are in the catalog");
        for item in &mut items {
            if item.id.as_str() == hidden {
                item.hidden = true;
            } else {
                item.in_stock = false;
            }
        }
        store.upsert_items(&items).await.unwrap();
    });
    let out = recommend(
        &env.url,
        &[
            "--model",
            models.to_str().unwrap(),
            "--k",
            "5",
            "--exclude-seen",
            "--out",
            recs.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&recs).unwrap();
    assert_eq!(text.lines().count(), 1 + artifact.history.n_users() * 5);
    for line in text.lines().skip(1) {
        let item = line.split(',').nth(1).unwrap();
        assert!(
            item != hidden && item != sold_out,
            "{line}: {hidden} is hidden, {sold_out} sold out"
        );
    }

    // A user list with a newcomer: they get the cold start (trending items).
    let list = work.join("users.txt");
    let known = rows[0][0];
    std::fs::write(&list, format!("user_id\n{known}\nnew-visitor\n")).unwrap();
    let out = recommend(
        &env.url,
        &[
            "--model",
            dir.to_str().unwrap(),
            "--users",
            list.to_str().unwrap(),
            "--k",
            "3",
        ],
    );
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1 + 2 * 3);
    assert!(text.contains("new-visitor,"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 users not in the model"));

    // A damaged artifact is refused, naming the file.
    let tensors = dir.join("model.safetensors");
    let mut bytes = std::fs::read(&tensors).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&tensors, bytes).unwrap();
    let out = recommend(&env.url, &["--model", dir.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("model.safetensors") && err.contains("checksum"),
        "{err}"
    );
}

#[test]
fn neural_models_train_with_loss_curves_into_the_same_artifact_format() {
    use marquee_models::Artifact;
    let env = Env::new();
    env.ok(&[
        "import",
        "store",
        repo("notebooks-data/demo-store").to_str().unwrap(),
    ]);
    let work = env._dir.path();
    let out = train(
        work,
        &env.url,
        &[
            "--set",
            "models=bpr,two_tower",
            "--set",
            "select=two_tower",
            "--set",
            "bpr.epochs=6",
            "--set",
            "two_tower.epochs=4",
            "--set",
            "two_tower.dim=16",
            "--set",
            "two_tower.hidden=32",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "train failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for kind in ["popularity", "bpr", "two_tower"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.get(2..).is_some_and(|s| s.starts_with(kind))),
            "{kind} missing from\n{stdout}"
        );
    }
    let models = work.join("models/default");
    let version = std::fs::read_to_string(models.join("latest")).unwrap();
    let dir = models.join(version.trim());
    let artifact = Artifact::load(&dir).unwrap();
    assert_eq!(artifact.manifest.kind, "two_tower");
    let m = &artifact.manifest.metrics["models"];
    for (kind, epochs) in [("bpr", 6), ("two_tower", 4)] {
        let curve = m[kind]["loss_per_epoch"].as_array().unwrap();
        assert_eq!(curve.len(), epochs, "{kind}");
        assert!(curve.iter().all(|l| l.as_f64().is_some_and(f64::is_finite)));
        assert_eq!(
            m[kind]["seconds_per_epoch"].as_array().unwrap().len(),
            epochs
        );
    }
    let report = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(report.contains("two_tower: training loss") && report.contains("bpr: training loss"));
    // The saved tower serves batch recommendations like any model.
    let recs = work.join("recs.csv");
    let out = recommend(
        &env.url,
        &[
            "--model",
            models.to_str().unwrap(),
            "--users",
            "all",
            "--k",
            "4",
            "--exclude-seen",
            "--out",
            recs.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&recs).unwrap();
    assert_eq!(text.lines().count(), 1 + artifact.history.n_users() * 4);
}

#[test]
fn train_says_what_to_fix() {
    let env = Env::new();
    let work = env._dir.path();
    // An empty store: import first.
    let out = train(work, &env.url, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("import data first"), "{err}");
    // A misspelt key, an unknown model, a missing file.
    let out = train(work, &env.url, &["--set", "als.factor=8"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `factor`"));
    let out = train(work, &env.url, &["--set", "models=svd"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown model \"svd\""));
    let out = train(work, &env.url, &["--config", "missing.toml"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
    assert!(
        !work.join("models").exists(),
        "nothing is written on failure"
    );
    // --print-config shows the effective configuration.
    let out = train(
        work,
        &env.url,
        &["--set", "als.factors=8", "--print-config"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("factors = [8]"), "{text}");
}
