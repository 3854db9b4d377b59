//! Customer segmentation: named RFM segments by rule, and k-means clusters (linfa).
//!
//! Rule segments, from the quintile scores `r`, `f`, `m` (1–5, higher is better), checked in
//! this order (the first that matches names the customer; together they cover every score):
//!
//! | segment | rule | meaning |
//! |---|---|---|
//! | `champions` | r ≥ 4, f ≥ 4, m ≥ 4 | bought recently, often, and spend the most |
//! | `loyal` | r ≥ 3, f ≥ 4 | buy often and not long ago |
//! | `potential_loyalists` | r ≥ 3, f 2–3 | recent, with a few orders |
//! | `new` | r ≥ 4, f = 1 | one recent order |
//! | `cant_lose` | r ≤ 2, f ≥ 4, m ≥ 4 | were among the best, have not bought for a while |
//! | `at_risk` | r ≤ 2, f ≥ 3 | bought often, not lately |
//! | `hibernating` | r 2–3, f ≤ 2 | few orders, some time ago |
//! | `lost` | r = 1, f ≤ 2 | few orders, long ago |
//!
//! Clusters: k-means (linfa, k-means++ initialisation, seeded, best of three starts) over five standardised features
//! (recency days, ln(1 + frequency), ln(1 + monetary), tenure days, ln(1 + average basket)),
//! with k given or chosen between 2 and 8 by the best silhouette on a sample of at most 2,000
//! customers. Each cluster is described in words from its centroid (a feature more than half a
//! standard deviation from the mean is called high or low).
//!
//! This crate is used by the command-line tools only: nothing the server links depends on it
//! (cargo would otherwise compile linfa into `serve`). Threading: synchronous; linfa runs
//! k-means on the caller's thread.

use linfa::prelude::*;
use linfa_clustering::KMeans;
use ndarray::Array2;

/// Why customers could not be clustered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid parameter {name}: {message}")]
    Parameter { name: &'static str, message: String },
    #[error("the numeric solve failed: {0}")]
    Numeric(String),
    #[error("there are fewer than two customers to cluster")]
    Empty,
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every rule segment, in rule order.
pub const SEGMENTS: [&str; 8] = [
    "champions",
    "loyal",
    "potential_loyalists",
    "new",
    "cant_lose",
    "at_risk",
    "hibernating",
    "lost",
];

/// The rule segment of RFM scores.
pub fn rfm_segment(r: u8, f: u8, m: u8) -> &'static str {
    // In rule order: the first rule that holds names the segment.
    if r >= 4 && f >= 4 && m >= 4 {
        "champions"
    } else if r >= 3 && f >= 4 {
        "loyal"
    } else if r >= 3 && (2..=3).contains(&f) {
        "potential_loyalists"
    } else if r >= 4 {
        "new"
    } else if r <= 2 && f >= 4 && m >= 4 {
        "cant_lose"
    } else if r <= 2 && f >= 3 {
        "at_risk"
    } else if r >= 2 {
        "hibernating"
    } else {
        "lost"
    }
}

/// The features clustered, per customer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CustomerFeatures {
    pub recency_days: f64,
    pub frequency: f64,
    pub monetary: f64,
    pub tenure_days: f64,
    pub avg_basket: f64,
}

impl CustomerFeatures {
    fn raw(&self) -> [f64; 5] {
        let log = |v: f64| v.max(0.0).ln_1p();
        [
            self.recency_days,
            log(self.frequency),
            log(self.monetary),
            self.tenure_days,
            log(self.avg_basket),
        ]
    }
}

/// A fitted clustering.
#[derive(Debug, Clone, PartialEq)]
pub struct Clusters {
    /// The cluster of every customer, in input order.
    pub labels: Vec<usize>,
    pub k: usize,
    /// Centroids in standardised units (k × 5).
    pub centroids: Vec<[f64; 5]>,
    /// A plain-words description of each cluster.
    pub descriptions: Vec<String>,
    /// Mean silhouette of the chosen k on the sample (−1..1).
    pub silhouette: f64,
}

const WORDS: [(&str, &str); 5] = [
    ("long gone", "recent buyers"),
    ("frequent", "one-off buyers"),
    ("big spenders", "small spenders"),
    ("long-standing", "new customers"),
    ("large baskets", "small baskets"),
];

fn describe(centroid: &[f64; 5]) -> String {
    let words: Vec<&str> = centroid
        .iter()
        .zip(WORDS)
        .filter_map(|(&z, (high, low))| {
            if z > 0.5 {
                Some(high)
            } else if z < -0.5 {
                Some(low)
            } else {
                None
            }
        })
        .collect();
    if words.is_empty() {
        "average customers".into()
    } else {
        words.join(", ")
    }
}

/// Standardises the features (zero mean, unit variance per column; constant columns become 0).
fn standardise(features: &[CustomerFeatures]) -> Array2<f64> {
    let n = features.len();
    let mut x = Array2::<f64>::zeros((n, 5));
    for (i, f) in features.iter().enumerate() {
        for (j, v) in f.raw().into_iter().enumerate() {
            x[(i, j)] = v;
        }
    }
    for j in 0..5 {
        let mut col = x.column_mut(j);
        let mean = col.sum() / n.max(1) as f64;
        let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n.max(1) as f64;
        let sd = var.sqrt();
        col.mapv_inplace(|v| if sd > 0.0 { (v - mean) / sd } else { 0.0 });
    }
    x
}

/// Mean silhouette over (at most) the first `sample` rows, spread evenly over the data.
fn silhouette(x: &Array2<f64>, labels: &[usize], k: usize, sample: usize) -> f64 {
    let n = x.nrows();
    let step = n.div_ceil(sample.max(1)).max(1);
    let rows: Vec<usize> = (0..n).step_by(step).collect();
    let dist = |a: usize, b: usize| -> f64 {
        x.row(a)
            .iter()
            .zip(x.row(b).iter())
            .map(|(p, q)| (p - q).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let mut total = 0.0;
    let mut counted = 0usize;
    for &i in &rows {
        let mut sums = vec![0.0; k];
        let mut counts = vec![0usize; k];
        for &j in &rows {
            if i != j {
                sums[labels[j]] += dist(i, j);
                counts[labels[j]] += 1;
            }
        }
        let own = labels[i];
        if counts[own] == 0 {
            continue;
        }
        let a = sums[own] / counts[own] as f64;
        let b = (0..k)
            .filter(|&c| c != own && counts[c] > 0)
            .map(|c| sums[c] / counts[c] as f64)
            .fold(f64::INFINITY, f64::min);
        if b.is_finite() {
            total += (b - a) / a.max(b).max(f64::MIN_POSITIVE);
            counted += 1;
        }
    }
    if counted == 0 {
        0.0
    } else {
        total / counted as f64
    }
}

fn fit_k(x: &Array2<f64>, k: usize) -> Result<(Vec<usize>, Vec<[f64; 5]>)> {
    let data = DatasetBase::from(x.clone());
    let model = KMeans::params(k)
        .n_runs(3)
        .max_n_iterations(300)
        .tolerance(1e-6)
        .fit(&data)
        .map_err(|e| Error::Numeric(format!("k-means with k = {k}: {e}")))?;
    let labels = model.predict(x).to_vec();
    let centroids = model
        .centroids()
        .rows()
        .into_iter()
        .map(|r| {
            let mut c = [0.0; 5];
            for (j, v) in r.iter().enumerate().take(5) {
                c[j] = *v;
            }
            c
        })
        .collect();
    Ok((labels, centroids))
}

/// Clusters customers with k-means; `k = None` tries 2..=8 and keeps the best silhouette.
pub fn cluster(features: &[CustomerFeatures], k: Option<usize>) -> Result<Clusters> {
    let n = features.len();
    if n < 2 {
        return Err(Error::Empty);
    }
    if let Some(k) = k
        && (k < 1 || k > n)
    {
        return Err(Error::Parameter {
            name: "k",
            message: format!("must be between 1 and the number of customers ({n}), not {k}"),
        });
    }
    let x = standardise(features);
    let candidates: Vec<usize> = match k {
        Some(k) => vec![k],
        None => (2..=8.min(n - 1).max(2)).collect(),
    };
    let mut best: Option<Clusters> = None;
    for k in candidates {
        let (labels, centroids) = fit_k(&x, k)?;
        let score = if k > 1 {
            silhouette(&x, &labels, k, 2_000)
        } else {
            0.0
        };
        if best.as_ref().is_none_or(|b| score > b.silhouette) {
            best = Some(Clusters {
                descriptions: centroids.iter().map(describe).collect(),
                labels,
                k,
                centroids,
                silhouette: score,
            });
        }
    }
    best.ok_or(Error::Empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_cover_every_score_and_name_the_edges() {
        for r in 1..=5 {
            for f in 1..=5 {
                for m in 1..=5 {
                    assert!(SEGMENTS.contains(&rfm_segment(r, f, m)));
                }
            }
        }
        assert_eq!(rfm_segment(5, 5, 5), "champions");
        assert_eq!(rfm_segment(4, 4, 3), "loyal");
        assert_eq!(rfm_segment(3, 4, 5), "loyal");
        assert_eq!(rfm_segment(3, 3, 1), "potential_loyalists");
        assert_eq!(rfm_segment(5, 1, 5), "new");
        assert_eq!(rfm_segment(3, 1, 1), "hibernating");
        assert_eq!(rfm_segment(2, 4, 4), "cant_lose");
        assert_eq!(rfm_segment(1, 5, 3), "at_risk");
        assert_eq!(rfm_segment(2, 2, 5), "hibernating");
        assert_eq!(rfm_segment(1, 2, 5), "lost");
    }

    #[test]
    fn well_separated_groups_are_found_and_described() {
        let mut rng = marquee_domain::rng::SeededRng::new(9);
        let mut noise = |scale: f64| 1.0 + scale * rng.normal();
        let mut features = Vec::new();
        for _ in 0..60 {
            // Recent big spenders, and long-gone one-off small buyers (10 % noise).
            features.push(CustomerFeatures {
                recency_days: 5.0 * noise(0.1),
                frequency: 20.0 * noise(0.1),
                monetary: 50_000.0 * noise(0.1),
                tenure_days: 300.0 * noise(0.1),
                avg_basket: 2_500.0 * noise(0.1),
            });
            features.push(CustomerFeatures {
                recency_days: 300.0 * noise(0.1),
                frequency: 1.0,
                monetary: 900.0 * noise(0.1),
                tenure_days: 300.0 * noise(0.1),
                avg_basket: 900.0 * noise(0.1),
            });
        }
        let c = cluster(&features, None).unwrap();
        assert_eq!(c.k, 2, "silhouette {}", c.silhouette);
        assert!(c.silhouette > 0.5, "{}", c.silhouette);
        assert!(c.labels.chunks(2).all(|p| p[0] != p[1]));
        assert_eq!(c.labels.iter().filter(|&&l| l == c.labels[0]).count(), 60);
        let big = c.labels[0];
        assert!(
            c.descriptions[big].contains("recent buyers"),
            "{:?}",
            c.descriptions
        );
        assert!(c.descriptions[big].contains("big spenders"));
        assert!(c.descriptions[1 - big].contains("long gone"));
        let three = cluster(&features, Some(3)).unwrap();
        assert_eq!(three.k, 3);
        assert!(cluster(&features, Some(0)).is_err());
        assert!(cluster(&features[..1], None).is_err());
    }
}
