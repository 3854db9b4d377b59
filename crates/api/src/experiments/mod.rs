//! A/B experiments between model versions on a placement.
//!
//! - [`Running`]: the experiments that run, by placement, each variant with its model loaded
//!   (an engine of its own, pinned to the version). Requests for that placement from a user or
//!   session are assigned a variant by [`assign`]: a hash of the experiment's name and the id,
//!   so a visitor keeps their variant; answers to anonymous requests come from the active
//!   model and are outside the experiment.
//! - The set is rebuilt from the store when an experiment starts or stops here, and every
//!   second when another replica started or stopped one (`AppState::follow_shared_changes`).
//! - The versions loaded for experiments stay within a memory budget (the size of their
//!   folders); an experiment beyond it is refused at creation.
//! - Module `stats`: the tests behind the results; module `routes`: the admin API.

pub(crate) mod routes;
pub mod stats;

use marquee_engine::Engine;
use marquee_store::Experiment;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The default memory budget of the versions loaded for experiments.
pub const DEFAULT_MEMORY_BYTES: u64 = 2 << 30;

/// One variant as served.
pub(crate) struct Arm {
    pub(crate) name: String,
    pub(crate) engine: Arc<Engine>,
    /// The variant's share plus those before it.
    upto: f64,
}

/// A running experiment as served.
pub(crate) struct Live {
    pub(crate) name: String,
    pub(crate) arms: Vec<Arm>,
}

/// The running experiments by placement, with the engines of their versions.
#[derive(Default)]
pub(crate) struct Running {
    pub(crate) by_placement: HashMap<String, Live>,
    /// Loaded versions and their size on disk.
    pub(crate) engines: HashMap<String, (Arc<Engine>, u64)>,
    /// What it was built from (to notice a change another replica made).
    pub(crate) built_from: Vec<Experiment>,
}

/// A 64-bit hash of `parts` (each followed by a zero byte): FNV-1a mixed by the splitmix64
/// finaliser (FNV alone leaves the top bits of short, similar ids close). Stable across
/// processes and versions, unlike `std`'s hasher.
pub(crate) fn stable_hash<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.iter().chain([0u8].iter()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// A number in [0, 1) fixed by the experiment and the visitor's id.
pub fn bucket(experiment: &str, visitor: &str) -> f64 {
    let h = stable_hash([experiment.as_bytes(), visitor.as_bytes()]);
    (h >> 11) as f64 / (1u64 << 53) as f64
}

impl Running {
    /// The experiment running on `placement` and the variant of `visitor` (a user or session
    /// id), if any.
    pub(crate) fn assign(&self, placement: &str, visitor: &str) -> Option<(&Live, &Arm)> {
        let live = self.by_placement.get(placement)?;
        let u = bucket(&live.name, visitor);
        let arm = live.arms.iter().find(|a| u < a.upto).or(live.arms.last())?;
        Some((live, arm))
    }

    /// The running set for `experiments` (those not running are skipped), reusing the engines
    /// of `self` and loading the other versions from `root`, within `budget` bytes. An error
    /// names the version that cannot be loaded or the budget it would exceed.
    pub(crate) fn build(
        &self,
        experiments: Vec<Experiment>,
        root: &Path,
        catalog: &[marquee_domain::Item],
        budget: u64,
    ) -> Result<Self, BuildError> {
        let mut engines = HashMap::new();
        let mut used = 0;
        let mut by_placement = HashMap::new();
        for e in experiments.iter().filter(|e| e.state == "running") {
            let mut arms = Vec::new();
            let mut upto = 0.0;
            for v in &e.variants {
                let (engine, size) = match engines.get(&v.model_version) {
                    Some(loaded) => loaded,
                    None => {
                        let loaded = match self.engines.get(&v.model_version) {
                            Some(have) => have.clone(),
                            None => load(root, &v.model_version, catalog)?,
                        };
                        used += loaded.1;
                        if used > budget {
                            return Err(BuildError::Budget {
                                version: v.model_version.clone(),
                                used,
                                budget,
                            });
                        }
                        engines.insert(v.model_version.clone(), loaded);
                        &engines[&v.model_version]
                    }
                };
                let _ = size;
                upto += v.share;
                arms.push(Arm {
                    name: v.name.clone(),
                    engine: engine.clone(),
                    upto,
                });
            }
            by_placement.insert(
                e.placement.clone(),
                Live {
                    name: e.name.clone(),
                    arms,
                },
            );
        }
        Ok(Self {
            by_placement,
            engines,
            built_from: experiments,
        })
    }
}

/// Why the running set could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BuildError {
    #[error("model version {version:?} cannot be served: {message}")]
    Version { version: String, message: String },
    #[error(
        "loading model version {version:?} would take the versions kept for experiments to \
         {used} bytes, over the budget of {budget} (MARQUEE_EXPERIMENT_MEMORY_MB)"
    )]
    Budget {
        version: String,
        used: u64,
        budget: u64,
    },
    #[error("reading the store: {0}")]
    Store(String),
}

/// Loads version `name` of the model folder `root`, pinned, with its size on disk.
fn load(
    root: &Path,
    name: &str,
    catalog: &[marquee_domain::Item],
) -> Result<(Arc<Engine>, u64), BuildError> {
    let fail = |message: String| BuildError::Version {
        version: name.to_owned(),
        message,
    };
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
        return Err(fail("not a version name".into()));
    }
    let dir = root.join(name);
    if !dir.is_dir() {
        return Err(fail(format!("there is no folder {}", dir.display())));
    }
    let size = std::fs::read_dir(&dir)
        .map_err(|e| fail(e.to_string()))?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    let engine = Engine::open(&dir, catalog.to_vec()).map_err(|e| fail(e.to_string()))?;
    Ok((Arc::new(engine), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shares 0.2 / 0.3 / 0.5 over 100,000 ids land within one percentage point of their
    /// share, and an id keeps its variant.
    #[test]
    fn assignment_follows_the_shares_and_sticks() {
        let shares = [0.2, 0.3, 0.5];
        let mut counts = [0usize; 3];
        for n in 0..100_000 {
            let u = bucket("homepage-test", &format!("user-{n}"));
            let mut upto = 0.0;
            let arm = shares
                .iter()
                .position(|s| {
                    upto += s;
                    u < upto
                })
                .unwrap_or(2);
            counts[arm] += 1;
        }
        for (c, s) in counts.iter().zip(shares) {
            let got = *c as f64 / 100_000.0;
            assert!((got - s).abs() < 0.01, "{counts:?}");
        }
        assert_eq!(bucket("e", "u1"), bucket("e", "u1"));
        assert_ne!(
            bucket("e", "u1"),
            bucket("f", "u1"),
            "experiments draw apart"
        );
    }
}
