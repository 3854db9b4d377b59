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
        .env("DATABASE_URL", "postgres://localhost/x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sqlite://PATH"));
    let out = env.data(&["import", "movielens", "/nonexistent/folder"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a folder"));
}
