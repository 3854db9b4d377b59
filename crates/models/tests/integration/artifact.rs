//! Model artifacts: every kind saves and loads to identical scores; damaged, tampered or
//! foreign artifacts are refused with an error naming the file and the problem.

use marquee_models::artifact::SCHEMA_VERSION;
use marquee_models::search::Candidate;
use marquee_models::{
    AlsParams, Artifact, EaseParams, Interactions, ItemKnnParams, Scorer, TrendingParams,
};
use std::path::Path;

fn data() -> Interactions {
    let mut rows = Vec::new();
    let users: Vec<String> = (0..40).map(|u| format!("user-{u}")).collect();
    let items: Vec<String> = (0..30).map(|i| format!("item \"{i}\", é")).collect();
    for (u, user) in users.iter().enumerate() {
        for k in 0..6 {
            let i = (u * 7 + k * (u % 5 + 1)) % items.len();
            rows.push((
                user.as_str(),
                items[i].as_str(),
                1.0 + k as f32,
                1_000 * (u + k) as i64,
            ));
        }
    }
    Interactions::from_timed_triplets(rows)
}

fn candidates() -> Vec<Candidate> {
    vec![
        Candidate::Popularity,
        Candidate::Trending(TrendingParams { window_days: 1.0 }),
        Candidate::Als(AlsParams {
            factors: 4,
            iterations: 3,
            ..AlsParams::default()
        }),
        Candidate::Ease(EaseParams {
            lambda: 10.0,
            weighted: false,
            neighbors: 5,
        }),
        Candidate::ItemKnn(ItemKnnParams {
            neighbors: 4,
            weighted: true,
        }),
    ]
}

fn save(dir: &Path, candidate: &Candidate) -> Artifact {
    let x = data();
    let model = candidate.fit(&x).unwrap();
    let mut a = Artifact::new(
        "test",
        "v1",
        model,
        x,
        "unit-test",
        serde_json::json!({"ndcg": 0.5}),
        serde_json::json!({"view": 1.0}),
    );
    a.save(dir).unwrap();
    a
}

#[test]
fn every_kind_round_trips_to_identical_scores() {
    let root = tempfile::tempdir().unwrap();
    for candidate in candidates() {
        let dir = root.path().join(candidate.kind());
        let saved = save(&dir, &candidate);
        let loaded = Artifact::load(&dir).unwrap();
        assert_eq!(loaded, saved, "{}", candidate.kind());
        assert_eq!(loaded.manifest.kind, candidate.kind());
        assert_eq!(loaded.manifest.schema_version, SCHEMA_VERSION);
        let n = loaded.model.n_items();
        let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
        for u in 0..loaded.history.n_users() {
            saved.model.score(u, saved.history.row(u), &mut a);
            loaded.model.score(u, loaded.history.row(u), &mut b);
            assert_eq!(a, b);
        }
        // Nothing but the artifact is left in the folder (no staging directory).
        let leftovers: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty());
    }
    // An artifact is never overwritten.
    let dir = root.path().join("popularity");
    let mut again = Artifact::load(&dir).unwrap();
    let err = again.save(&dir).unwrap_err().to_string();
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn recommendations_leave_out_what_was_seen() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("ease");
    let a = save(&dir, &candidates()[3]);
    let mut scratch = Vec::new();
    for u in 0..a.history.n_users() {
        let seen = a.history.row(u).items;
        let recs = a.recommend(u, 10, true, &mut scratch);
        assert!(recs.iter().all(|(i, _)| !seen.contains(i)));
        assert!(recs.windows(2).all(|w| w[0].1 >= w[1].1));
    }
}

fn load_err(dir: &Path) -> String {
    Artifact::load(dir).unwrap_err().to_string()
}

#[test]
fn damaged_artifacts_are_refused_with_the_reason() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("als");
    save(&dir, &candidates()[2]);

    // One flipped byte in the tensors.
    let tensors = dir.join("model.safetensors");
    let good = std::fs::read(&tensors).unwrap();
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x40;
    std::fs::write(&tensors, &bad).unwrap();
    let err = load_err(&dir);
    assert!(
        err.contains("model.safetensors") && err.contains("checksum"),
        "{err}"
    );
    // Truncated.
    std::fs::write(&tensors, &good[..good.len() / 2]).unwrap();
    assert!(load_err(&dir).contains("checksum"));
    std::fs::write(&tensors, &good).unwrap();
    Artifact::load(&dir).unwrap();

    // A missing file.
    let items = dir.join("items.json");
    let items_text = std::fs::read(&items).unwrap();
    std::fs::remove_file(&items).unwrap();
    let err = load_err(&dir);
    assert!(
        err.contains("items.json") && err.contains("cannot read"),
        "{err}"
    );
    std::fs::write(&items, &items_text).unwrap();

    // Another schema version, or a manifest that is not JSON.
    let manifest = dir.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let newer = text.replace(
        &format!("\"schema_version\": {SCHEMA_VERSION}"),
        "\"schema_version\": 99",
    );
    assert_ne!(newer, text);
    std::fs::write(&manifest, newer).unwrap();
    assert!(load_err(&dir).contains("schema version 99"));
    std::fs::write(&manifest, "{ not json").unwrap();
    assert!(load_err(&dir).contains("not a valid manifest"));

    // Tensors that do not fit the manifest's parameters (checksums updated to match).
    std::fs::write(&manifest, text.replace("\"factors\": 4", "\"factors\": 5")).unwrap();
    let err = load_err(&dir);
    assert!(err.contains("user_factors"), "{err}");

    // No artifact at all.
    assert!(load_err(&root.path().join("nothing")).contains("cannot read"));
}
