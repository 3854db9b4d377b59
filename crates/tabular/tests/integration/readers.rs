//! Readers on the real files in ../shared/data, malformed files per format, the store folder
//! round trip and the generator.

use marquee_datasets::generator::{GeneratorConfig, generate_bundle};
use marquee_datasets::{Error, Location, movielens, otto, store_dir};
use marquee_domain::{Actor, EventKind, OrderStatus};
use marquee_tabular::{interactions, online_retail};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn expect_malformed(err: Error, file: &str, location: Location, field: &str) {
    match &err {
        Error::Malformed {
            path,
            location: l,
            field: f,
            ..
        } => {
            assert!(path.ends_with(file), "{err}");
            assert_eq!((*l, f.as_str()), (location, field), "{err}");
        }
        other => panic!("expected a malformed-row error, got {other}"),
    }
}

mod movielens_files {
    use super::*;

    #[test]
    fn latest_small_loads_every_rating_user_and_movie() {
        let b = movielens::read(&shared("movielens-latest-small")).unwrap();
        assert_eq!(b.events.len(), 100_836);
        assert_eq!(b.users.len(), 610);
        assert_eq!(b.items.len(), 9_742);
        assert!(b.events.iter().all(|e| e.kind == EventKind::Rating));
        let first = b
            .events
            .iter()
            .find(|e| e.id.as_str() == "ml:1:1:964982703")
            .unwrap();
        assert_eq!(first.value, Some(4.0));
        assert_eq!(first.timestamp.timestamp(), 964_982_703);
        let toy_story = b.items.iter().find(|i| i.id.as_str() == "1").unwrap();
        assert_eq!(toy_story.title, "Toy Story (1995)");
        assert_eq!(toy_story.category, "Adventure");
        assert_eq!(
            toy_story.genres,
            ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]
        );
        assert!(toy_story.price.is_none());
        let tagged = b.items.iter().find(|i| i.id.as_str() == "60756").unwrap();
        assert!(
            tagged.attributes["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == "funny")
        );
        // Event ids are unique, so a re-import stores each rating once.
        let ids: HashSet<&str> = b.events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), b.events.len());
    }

    #[test]
    fn the_same_ratings_read_as_a_generic_interactions_file() {
        let b = interactions::read(
            &shared("movielens-latest-small/ratings.csv"),
            EventKind::View,
        )
        .unwrap();
        assert_eq!(b.events.len(), 100_836);
        assert_eq!(b.users.len(), 610);
        assert_eq!(b.items.len(), 9_724, "movies with at least one rating");
        assert!(b.items_are_placeholders && b.users_are_placeholders);
    }

    #[test]
    fn a_bad_rating_names_file_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "movies.csv",
            "movieId,title,genres\n1,Toy Story (1995),Animation|Comedy\n",
        );
        write(
            dir.path(),
            "ratings.csv",
            "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,1,four,964982704\n",
        );
        let err = movielens::read(dir.path()).unwrap_err();
        expect_malformed(err, "ratings.csv", Location::Line(3), "rating");
        write(
            dir.path(),
            "ratings.csv",
            "userId,movieId,rating,timestamp\n1,1,7.5,964982703\n",
        );
        let err = movielens::read(dir.path()).unwrap_err();
        expect_malformed(err, "ratings.csv", Location::Line(2), "rating");
        write(
            dir.path(),
            "ratings.csv",
            "userId,movieId,rating,timestamp\n1,2,4,964982703\n",
        );
        let err = movielens::read(dir.path()).unwrap_err();
        expect_malformed(err, "ratings.csv", Location::Line(2), "movieId");
        write(
            dir.path(),
            "ratings.csv",
            "userId,movieId,rating,timestamp\n1,1,4\n",
        );
        let err = movielens::read(dir.path()).unwrap_err();
        expect_malformed(err, "ratings.csv", Location::Line(2), "record");
    }

    #[test]
    fn the_1m_dat_layout_reads_latin1() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("movies.dat"),
            b"1::Toy Story (1995)::Animation|Children's|Comedy\n2::Cit\xe9 des enfants perdus, La (1995)::Adventure|Sci-Fi\n",
        )
        .unwrap();
        write(
            dir.path(),
            "ratings.dat",
            "1::1::5::978300760\n1::2::3::978302109\n2::1::4::978301968\n",
        );
        let b = movielens::read(dir.path()).unwrap();
        assert_eq!((b.items.len(), b.users.len(), b.events.len()), (2, 2, 3));
        assert_eq!(b.items[1].title, "Cité des enfants perdus, La (1995)");
        assert_eq!(b.items[0].genres, ["Animation", "Children's", "Comedy"]);
        write(dir.path(), "ratings.dat", "1::1::5::978300760\n1::2::5\n");
        let err = movielens::read(dir.path()).unwrap_err();
        expect_malformed(err, "ratings.dat", Location::Line(2), "record");
    }

    #[test]
    fn the_100k_layout_reads_genre_flags() {
        let dir = tempfile::tempdir().unwrap();
        let flags = |on: &[usize]| -> String {
            (0..19)
                .map(|i| if on.contains(&i) { "1" } else { "0" })
                .collect::<Vec<_>>()
                .join("|")
        };
        write(
            dir.path(),
            "u.item",
            &format!(
                "1|Toy Story (1995)|01-Jan-1995||http://x|{}\n2|GoldenEye (1995)|01-Jan-1995||http://y|{}\n",
                flags(&[3, 4, 5]),
                flags(&[1, 2, 16])
            ),
        );
        write(
            dir.path(),
            "u.data",
            "196\t1\t3\t881250949\n186\t2\t3\t891717742\n",
        );
        let b = movielens::read(dir.path()).unwrap();
        assert_eq!(b.items[0].genres, ["Animation", "Children's", "Comedy"]);
        assert_eq!(b.items[1].category, "Action");
        assert_eq!(b.events.len(), 2);
        write(dir.path(), "u.item", "1|Toy Story (1995)|x\n");
        let err = movielens::read(dir.path()).unwrap_err();
        expect_malformed(err, "u.item", Location::Line(1), "record");
    }

    #[test]
    fn a_folder_without_movielens_files_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = movielens::read(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("ratings.csv + movies.csv"),
            "{err}"
        );
    }
}

mod online_retail_files {
    use super::*;

    #[test]
    fn the_parquet_file_loads_every_invoice_as_the_source_says() {
        let b = online_retail::read(&shared("online-retail/online_retail.parquet")).unwrap();
        assert_eq!(b.orders.len(), 25_900);
        assert_eq!(b.order_lines(), 541_909);
        assert_eq!(b.users.len(), 4_372);
        assert_eq!(b.items.len(), 4_070);
        let c_invoices = b
            .orders
            .iter()
            .filter(|o| o.id.as_str().starts_with('C'))
            .count();
        assert_eq!(c_invoices, 3_836);
        assert!(
            b.orders
                .iter()
                .filter(|o| o.id.as_str().starts_with('C'))
                .all(|o| o.status == OrderStatus::Cancelled)
        );
        let by_status = |s: OrderStatus| b.orders.iter().filter(|o| o.status == s).count();
        assert_eq!(by_status(OrderStatus::Paid), 20_726);
        assert_eq!(by_status(OrderStatus::Cancelled), 5_172);
        assert_eq!(by_status(OrderStatus::Refunded), 2);
        assert_eq!(b.orders.iter().filter(|o| o.user.is_none()).count(), 3_710);
        // Revenue of paid orders, to the penny, as computed independently over the raw rows
        // (quantity × round(unit price × 100) for non-C rows with positive quantity).
        let paid: i64 = b
            .orders
            .iter()
            .filter(|o| o.status == OrderStatus::Paid)
            .map(|o| o.total_minor())
            .sum();
        assert_eq!(paid, 1_066_668_454);

        let first = b.orders.iter().find(|o| o.id.as_str() == "536365").unwrap();
        assert_eq!(first.lines.len(), 7);
        assert_eq!(first.user.as_ref().unwrap().as_str(), "17850");
        assert_eq!(first.created_at.to_rfc3339(), "2010-12-01T08:26:00+00:00");
        let heart = b.items.iter().find(|i| i.id.as_str() == "85123A").unwrap();
        assert_eq!(heart.title, "WHITE HANGING HEART T-LIGHT HOLDER");
        assert_eq!(heart.category, "holder");
        assert!(!heart.hidden);
        assert!(
            b.items
                .iter()
                .find(|i| i.id.as_str() == "POST")
                .unwrap()
                .hidden
        );
        let u = b.users.iter().find(|u| u.id.as_str() == "12346").unwrap();
        assert_eq!(u.country.as_deref(), Some("United Kingdom"));
        assert!(!u.marketing_consent);
    }

    #[test]
    fn a_bad_parquet_file_names_the_row_or_column() {
        use polars::prelude::*;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("retail.parquet");
        let write = |mut df: DataFrame| {
            ParquetWriter::new(std::fs::File::create(&path).unwrap())
                .finish(&mut df)
                .unwrap();
        };
        write(
            df!(
                "InvoiceNo" => [Some("536365"), None],
                "StockCode" => ["85123A", "71053"],
                "Description" => ["HEART", "LANTERN"],
                "Quantity" => [6i64, 6],
                "InvoiceDate" => ["2010-12-01 08:26:00", "2010-12-01 08:26:00"],
                "UnitPrice" => [2.55f64, 3.39],
                "CustomerID" => [17850.0f64, 17850.0],
                "Country" => ["United Kingdom", "United Kingdom"],
            )
            .unwrap(),
        );
        expect_malformed(
            online_retail::read(&path).unwrap_err(),
            "retail.parquet",
            Location::Row(1),
            "InvoiceNo",
        );
        write(df!("InvoiceNo" => ["536365"], "StockCode" => ["85123A"]).unwrap());
        expect_malformed(
            online_retail::read(&path).unwrap_err(),
            "retail.parquet",
            Location::File,
            "Description",
        );
    }

    const HEADER: &str =
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n";

    #[test]
    fn the_csv_form_maps_cancellations_and_anonymous_sales() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "retail.csv",
            &format!(
                "{HEADER}536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom\n\
                 536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850,United Kingdom\n\
                 C536379,85123A,WHITE HANGING HEART T-LIGHT HOLDER,-1,12/1/2010 9:41,2.55,17850,United Kingdom\n\
                 536414,22139,nan,56,12/1/2010 11:52,0,,United Kingdom\n"
            ),
        );
        let b = online_retail::read(&path).unwrap();
        assert_eq!(b.orders.len(), 3);
        assert_eq!(b.orders[0].total_minor(), 6 * 255 + 6 * 339);
        assert_eq!(b.orders[1].status, OrderStatus::Cancelled);
        assert_eq!(b.orders[1].lines[0].quantity, 1);
        assert!(b.orders[2].user.is_none());
        assert_eq!(b.users.len(), 1);
        let unnamed = b.items.iter().find(|i| i.id.as_str() == "22139").unwrap();
        assert_eq!(
            unnamed.title, "22139",
            "a missing description falls back to the code"
        );
    }

    #[test]
    fn a_bad_csv_row_names_its_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "retail.csv",
            &format!(
                "{HEADER}536365,85123A,HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom\n\
                 536366,85123A,HEART,6,not a date,2.55,17850,United Kingdom\n"
            ),
        );
        expect_malformed(
            online_retail::read(&path).unwrap_err(),
            "retail.csv",
            Location::Line(3),
            "InvoiceDate",
        );
        let path = write(
            dir.path(),
            "retail.csv",
            &format!("{HEADER}536365,85123A,HEART,six,12/1/2010 8:26,2.55,17850,UK\n"),
        );
        expect_malformed(
            online_retail::read(&path).unwrap_err(),
            "retail.csv",
            Location::Line(2),
            "Quantity",
        );
        let path = write(dir.path(), "retail.csv", "InvoiceNo,StockCode\n1,2\n");
        expect_malformed(
            online_retail::read(&path).unwrap_err(),
            "retail.csv",
            Location::Line(1),
            "Description",
        );
        let path = write(dir.path(), "retail.xlsx", "");
        assert!(
            online_retail::read(&path)
                .unwrap_err()
                .to_string()
                .contains(".parquet or .csv")
        );
    }
}

mod otto_files {
    use super::*;

    #[test]
    fn jsonl_and_csv_give_the_same_events() {
        let a = otto::read(&shared("otto-sample/sessions.jsonl")).unwrap();
        let b = otto::read(&shared("otto-sample/events.csv")).unwrap();
        assert_eq!(a.events.len(), 862);
        let kinds = |k: EventKind| a.events.iter().filter(|e| e.kind == k).count();
        assert_eq!(
            (
                kinds(EventKind::Click),
                kinds(EventKind::AddToCart),
                kinds(EventKind::Purchase)
            ),
            (800, 52, 10)
        );
        let sessions: HashSet<_> = a.events.iter().map(|e| e.actor.clone()).collect();
        assert_eq!(sessions.len(), 20);
        assert!(matches!(a.events[0].actor, Actor::Session(_)));
        assert_eq!(a.events, b.events);
        assert_eq!(a.items.len(), b.items.len());
        assert!(a.items_are_placeholders);
    }

    #[test]
    fn a_bad_session_line_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "s.jsonl",
            "{\"session\":0,\"events\":[{\"aid\":1,\"ts\":1659304800025,\"type\":\"clicks\"}]}\n{\"session\":1,\"events\":[{\"aid\":1,\"ts\":1659304800025,\"type\":\"likes\"}]}\n",
        );
        expect_malformed(
            otto::read(&path).unwrap_err(),
            "s.jsonl",
            Location::Line(2),
            "type",
        );
        let path = write(
            dir.path(),
            "s.jsonl",
            "{\"session\":0,\"events\":[{\"ts\":1}]}\n",
        );
        expect_malformed(
            otto::read(&path).unwrap_err(),
            "s.jsonl",
            Location::Line(1),
            "aid",
        );
    }
}

mod interaction_files {
    use super::*;
    use polars::prelude::*;

    #[test]
    fn csv_rows_become_ratings_or_the_given_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "ix.csv",
            "user,item,rating,timestamp\nalice,book-1,4.5,2024-03-01T10:00:00Z\nalice,book-2,,1709287200\nbob,book-1,,\n",
        );
        let b = interactions::read(&path, EventKind::Purchase).unwrap();
        let kinds: Vec<_> = b.events.iter().map(|e| (e.kind, e.value)).collect();
        assert_eq!(
            kinds,
            [
                (EventKind::Rating, Some(4.5)),
                (EventKind::Purchase, None),
                (EventKind::Purchase, None)
            ]
        );
        assert_eq!(b.events[1].timestamp.timestamp(), 1_709_287_200);
        assert_eq!((b.users.len(), b.items.len()), (2, 2));
        // Reading twice gives the same ids (idempotent re-import).
        let again = interactions::read(&path, EventKind::Purchase).unwrap();
        let ids = |b: &marquee_datasets::Bundle| {
            b.events
                .iter()
                .map(|e| e.id.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&b)[..2], ids(&again)[..2]);
    }

    #[test]
    fn parquet_files_read_with_numeric_ids_and_times() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ix.parquet");
        let mut df = df!(
            "user" => [1i64, 1, 2],
            "item" => [10i64, 11, 10],
            "rating" => [Some(3.5f64), None, Some(5.0)],
            "timestamp" => [964_982_703i64, 964_982_704, 964_982_705],
        )
        .unwrap();
        ParquetWriter::new(std::fs::File::create(&path).unwrap())
            .finish(&mut df)
            .unwrap();
        let b = interactions::read(&path, EventKind::View).unwrap();
        assert_eq!(b.events.len(), 3);
        assert_eq!(b.events[0].actor, Actor::User("1".try_into().unwrap()));
        assert_eq!(b.events[1].kind, EventKind::View);
        assert_eq!(b.events[2].value, Some(5.0));
        assert_eq!(b.events[0].timestamp.timestamp(), 964_982_703);
    }

    #[test]
    fn bad_interaction_rows_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "ix.csv", "user,item,rating\na,b,9\n");
        expect_malformed(
            interactions::read(&path, EventKind::View).unwrap_err(),
            "ix.csv",
            Location::Line(2),
            "rating",
        );
        let path = write(dir.path(), "ix.csv", "user,item\na,b\n,c\n");
        expect_malformed(
            interactions::read(&path, EventKind::View).unwrap_err(),
            "ix.csv",
            Location::Line(3),
            "user",
        );
        let path = write(dir.path(), "ix.csv", "who,what\na,b\n");
        expect_malformed(
            interactions::read(&path, EventKind::View).unwrap_err(),
            "ix.csv",
            Location::Line(1),
            "user",
        );
        let path = write(
            dir.path(),
            "ix.csv",
            "user,item,timestamp\na,b,2999-01-01T00:00:00Z\n",
        );
        expect_malformed(
            interactions::read(&path, EventKind::View).unwrap_err(),
            "ix.csv",
            Location::Line(2),
            "timestamp",
        );
    }
}

mod generated_stores {
    use super::*;

    fn small(seed: u64) -> GeneratorConfig {
        GeneratorConfig {
            seed,
            users: 200,
            items: 300,
            events: 20_000,
            ..GeneratorConfig::default()
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_store_and_another_seed_does_not() {
        let a = generate_bundle(&small(7)).unwrap();
        let b = generate_bundle(&small(7)).unwrap();
        let c = generate_bundle(&small(8)).unwrap();
        assert_eq!(a.events, b.events);
        assert_eq!(a.orders, b.orders);
        assert_eq!(a.items, b.items);
        assert_eq!(a.users, b.users);
        assert_ne!(a.events, c.events);
    }

    #[test]
    fn sizes_are_as_asked_and_everything_validates() {
        let b = generate_bundle(&small(1)).unwrap();
        assert_eq!(
            (b.users.len(), b.items.len(), b.events.len()),
            (200, 300, 20_000)
        );
        let now = chrono::Utc::now();
        for e in &b.events {
            e.validate(now).unwrap();
        }
        for o in &b.orders {
            o.validate().unwrap();
        }
        let kinds: HashSet<EventKind> = b.events.iter().map(|e| e.kind).collect();
        for k in [
            EventKind::View,
            EventKind::AddToCart,
            EventKind::Purchase,
            EventKind::Rating,
            EventKind::Dwell,
        ] {
            assert!(kinds.contains(&k), "{k:?} missing");
        }
        let purchases = b
            .events
            .iter()
            .filter(|e| e.kind == EventKind::Purchase)
            .count();
        assert_eq!(
            purchases,
            b.order_lines(),
            "every purchase event is an order line"
        );
        assert!(b.orders.iter().any(|o| o.status == OrderStatus::Cancelled));
    }

    /// Mean over users (with at least 20 views) of the share of their views that fall in
    /// their most viewed category.
    fn top_category_share(views: &[(&str, &str)]) -> f64 {
        let mut per_user: HashMap<&str, HashMap<&str, usize>> = HashMap::new();
        for (user, category) in views {
            *per_user
                .entry(user)
                .or_default()
                .entry(category)
                .or_default() += 1;
        }
        let shares: Vec<f64> = per_user
            .values()
            .filter(|c| c.values().sum::<usize>() >= 20)
            .map(|c| *c.values().max().unwrap() as f64 / c.values().sum::<usize>() as f64)
            .collect();
        assert!(shares.len() > 50, "too few active users: {}", shares.len());
        shares.iter().sum::<f64>() / shares.len() as f64
    }

    #[test]
    fn users_have_planted_tastes() {
        // A user's views concentrate on their taste: their top category's share is far above
        // what the same users, with the same numbers of views of the same items shuffled
        // between them (so no tastes), would show.
        let b = generate_bundle(&small(3)).unwrap();
        let category: HashMap<&str, &str> = b
            .items
            .iter()
            .map(|i| (i.id.as_str(), i.category.as_str()))
            .collect();
        let views: Vec<(&str, &str)> = b
            .events
            .iter()
            .filter(|e| e.kind == EventKind::View)
            .map(|e| {
                (
                    e.user().unwrap().as_str(),
                    category[e.item.as_ref().unwrap().as_str()],
                )
            })
            .collect();
        let mut shuffled_categories: Vec<&str> = views.iter().map(|v| v.1).collect();
        marquee_datasets::rng::SeededRng::new(99).shuffle(&mut shuffled_categories);
        let shuffled: Vec<(&str, &str)> =
            views.iter().map(|v| v.0).zip(shuffled_categories).collect();
        let real = top_category_share(&views);
        let none = top_category_share(&shuffled);
        assert!(
            real > none + 0.15,
            "top-category share {real:.3} vs {none:.3} without tastes"
        );
    }

    #[test]
    fn a_store_folder_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let b = generate_bundle(&GeneratorConfig {
            users: 30,
            items: 40,
            events: 2_000,
            ..GeneratorConfig::default()
        })
        .unwrap();
        store_dir::write(dir.path(), &b).unwrap();
        let back = store_dir::read(dir.path()).unwrap();
        assert_eq!(back.items, b.items);
        assert_eq!(back.users, b.users);
        assert_eq!(back.orders, b.orders);
        assert_eq!(back.events, b.events);
    }

    #[test]
    fn a_broken_store_folder_names_the_row() {
        let dir = tempfile::tempdir().unwrap();
        let b = generate_bundle(&GeneratorConfig {
            users: 5,
            items: 5,
            events: 50,
            ..GeneratorConfig::default()
        })
        .unwrap();
        store_dir::write(dir.path(), &b).unwrap();
        let events = std::fs::read_to_string(dir.path().join("events.csv")).unwrap();
        let broken = events.replacen(",view,", ",teleport,", 1);
        let line = broken
            .lines()
            .position(|l| l.contains(",teleport,"))
            .unwrap() as u64
            + 1;
        std::fs::write(dir.path().join("events.csv"), broken).unwrap();
        expect_malformed(
            store_dir::read(dir.path()).unwrap_err(),
            "events.csv",
            Location::Line(line),
            "kind",
        );
        std::fs::remove_file(dir.path().join("users.csv")).unwrap();
        assert!(
            store_dir::read(dir.path())
                .unwrap_err()
                .to_string()
                .contains("users.csv")
        );
    }
}
