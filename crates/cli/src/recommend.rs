//! Batch recommendations from a saved model: `user,item,rank,score` rows for every requested
//! user. Users the model has never seen get the items most users interacted with in its
//! training data (what a storefront shows a newcomer).

use anyhow::{Context, Result};
use marquee_models::{Artifact, Scorer, top_k};
use rayon::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The artifact folder `path` names (a version folder, or a model folder's `latest`).
pub fn resolve_model(path: &Path) -> Result<PathBuf> {
    Ok(Artifact::resolve(path)?)
}

/// Which users to recommend for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Users {
    /// Every user in the model's training data.
    All,
    /// These ids, in this order.
    Listed(Vec<String>),
}

/// Reads user ids from a file: one per line (the first column of a CSV line), blank lines and
/// a `user`/`user_id` header skipped.
pub fn read_user_file(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the user list {}", path.display()))?;
    let mut users = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let id = line
            .split(',')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"');
        if id.is_empty() || (n == 0 && matches!(id, "user" | "user_id")) {
            continue;
        }
        users.push(id.to_owned());
    }
    Ok(users)
}

/// What [`write_recommendations`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    pub users: usize,
    pub rows: usize,
    /// Users not in the model, who got the most popular items.
    pub unknown_users: usize,
}

/// Writes `user,item,rank,score` for the users to `out` (ranks from 1, best first).
pub fn write_recommendations(
    artifact: &Artifact,
    users: &Users,
    k: usize,
    exclude_seen: bool,
    out: &mut dyn Write,
) -> Result<Written> {
    let history = &artifact.history;
    let rows: Vec<(String, Option<usize>)> = match users {
        Users::All => history
            .users
            .ids()
            .iter()
            .enumerate()
            .map(|(u, id)| (id.clone(), Some(u)))
            .collect(),
        Users::Listed(ids) => ids
            .iter()
            .map(|id| (id.clone(), history.users.get(id).map(|u| u as usize)))
            .collect(),
    };
    let popular: Vec<f32> = history
        .item_counts()
        .into_iter()
        .map(|c| c as f32)
        .collect();
    let fallback = top_k(&popular, k, &[]);
    let mut written = Written::default();
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(["user", "item", "rank", "score"])?;
    for chunk in rows.chunks(4096) {
        let lists: Vec<Vec<(u32, f32)>> = chunk
            .par_iter()
            .map_init(
                || vec![0f32; artifact.model.n_items()],
                |scratch, (_, row)| match row {
                    Some(u) if artifact.model.knows_user(*u) => {
                        artifact.recommend(*u, k, exclude_seen, scratch)
                    }
                    _ => fallback.clone(),
                },
            )
            .collect();
        for ((id, row), list) in chunk.iter().zip(lists) {
            written.users += 1;
            if row.is_none() {
                written.unknown_users += 1;
            }
            for (rank, (item, score)) in list.into_iter().enumerate() {
                csv.write_record([
                    id.as_str(),
                    history.items.id(item as usize),
                    &(rank + 1).to_string(),
                    &score.to_string(),
                ])?;
                written.rows += 1;
            }
        }
    }
    csv.flush()?;
    Ok(written)
}

/// Writes the recommendations to `path` through a temporary file in the same folder that is
/// renamed into place, so a failed run leaves no partial file.
pub fn write_file(
    artifact: &Artifact,
    users: &Users,
    k: usize,
    exclude_seen: bool,
    path: &Path,
) -> Result<Written> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(parent)
        .with_context(|| format!("creating a temporary file in {}", parent.display()))?;
    let written = {
        let mut buffered = std::io::BufWriter::new(tmp.as_file_mut());
        let w = write_recommendations(artifact, users, k, exclude_seen, &mut buffered)?;
        buffered.flush()?;
        w
    };
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(written)
}
