//! Batch recommendations from a saved model: `user,item,rank,score` rows for every requested
//! user, ranked by the serving engine, so batch and online answers apply the same filters
//! (hidden and out-of-stock items of the store's catalog are left out) and the same cold
//! start (users the model has never seen get what a storefront shows a newcomer: trending).

use anyhow::{Context, Result};
use marquee_domain::UserId;
use marquee_engine::{Answer, Basis, Engine, Filters};
use marquee_models::Artifact;
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
    /// Users not in the model, who got the cold-start answer (trending items).
    pub unknown_users: usize,
}

/// Writes `user,item,rank,score` for the users to `out` (ranks from 1, best first). Every
/// answer comes from the serving engine, as `GET /v1/recommendations` would give it with no
/// events since training: hidden and out-of-stock items of `engine`'s catalog are left out,
/// and users the model has not seen get the engine's cold start. `exclude_seen` leaves out
/// the items each user already has.
pub fn write_recommendations(
    engine: &Engine,
    users: &Users,
    k: usize,
    exclude_seen: bool,
    out: &mut dyn Write,
) -> Result<Written> {
    let ids: Vec<String> = match users {
        Users::All => engine.user_ids(),
        Users::Listed(ids) => ids.clone(),
    };
    let filters = Filters {
        include_seen: !exclude_seen,
        ..Filters::default()
    };
    let mut written = Written::default();
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(["user", "item", "rank", "score"])?;
    for chunk in ids.chunks(4096) {
        let answers: Vec<Answer> = chunk
            .par_iter()
            .map(|id| {
                let user = UserId::new(id.as_str())
                    .with_context(|| format!("user id {id:?} in the user list"))?;
                engine
                    .recommend(Some(&user), &[], k, &filters)
                    .with_context(|| format!("recommending for {id:?}"))
            })
            .collect::<Result<_>>()?;
        for (id, answer) in chunk.iter().zip(answers) {
            written.users += 1;
            if answer.basis == Basis::ColdStart {
                written.unknown_users += 1;
            }
            for (rank, r) in answer.items.iter().enumerate() {
                csv.write_record([
                    id.as_str(),
                    r.item.as_str(),
                    &(rank + 1).to_string(),
                    &r.score.to_string(),
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
    engine: &Engine,
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
        let w = write_recommendations(engine, users, k, exclude_seen, &mut buffered)?;
        buffered.flush()?;
        w
    };
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(written)
}
