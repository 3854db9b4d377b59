//! EASE (Steck 2019): an item-item weight matrix B from a closed form,
//! `P = (XᵀX + λI)⁻¹`, `B = I − P · diag(1 / diag(P))`, i.e. `B_ij = −P_ij / P_jj` off the
//! diagonal and 0 on it. A user's scores are `x_u B`.
//!
//! The dense solve is O(n³) in items and holds n² numbers, so catalogs above
//! [`MAX_EASE_ITEMS`] are refused. The fitted model keeps only the `neighbors` entries of
//! largest magnitude in every row of B (a dense B of 10k items is 400 MB; its top 500 per row, 40 MB), and it is
//! that pruned model which is evaluated, saved and served.

use crate::{Error, Interactions, ItemItem, Result, Row, Scorer, top_k};
use faer::Mat;
use rayon::prelude::*;

/// The largest catalog EASE accepts.
pub const MAX_EASE_ITEMS: usize = 20_000;

/// EASE hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EaseParams {
    /// λ, the L2 penalty added to the diagonal of XᵀX.
    pub lambda: f64,
    /// Use the interaction weights (true) or 1 for every observed pair (false).
    pub weighted: bool,
    /// Entries of B kept per item (those of largest magnitude).
    pub neighbors: usize,
}

impl Default for EaseParams {
    fn default() -> Self {
        Self {
            lambda: 500.0,
            weighted: false,
            neighbors: 500,
        }
    }
}

/// A fitted EASE model (B pruned to the entries of largest magnitude in each row).
#[derive(Debug, Clone, PartialEq)]
pub struct Ease {
    pub params: EaseParams,
    pub graph: ItemItem,
}

impl Ease {
    pub fn fit(train: &Interactions, params: EaseParams) -> Result<Self> {
        let n = train.n_items();
        if n > MAX_EASE_ITEMS {
            return Err(Error::TooLarge(format!(
                "EASE needs a dense {n} × {n} solve; catalogs of more than {MAX_EASE_ITEMS} items are refused (use ALS or item-kNN)"
            )));
        }
        if n == 0 || train.nnz() == 0 {
            return Err(Error::Empty);
        }
        if params.lambda.is_nan() || params.lambda <= 0.0 {
            return Err(Error::Parameter {
                name: "ease.lambda",
                message: "must be positive".into(),
            });
        }
        if params.neighbors == 0 {
            return Err(Error::Parameter {
                name: "ease.neighbors",
                message: "must be at least 1".into(),
            });
        }
        // XᵀX + λI in f32: unweighted, its entries are co-occurrence counts, exact in f32.
        let mut g = Mat::<f32>::zeros(n, n);
        for u in 0..train.n_users() {
            let row = train.row(u);
            for (i, wi) in row.iter() {
                let wi = if params.weighted { wi } else { 1.0 };
                for (j, wj) in row.iter() {
                    let wj = if params.weighted { wj } else { 1.0 };
                    g[(i, j)] += wi * wj;
                }
            }
        }
        for i in 0..n {
            g[(i, i)] += params.lambda as f32;
        }
        let p = inverse_in_place(g)?;
        let diag: Vec<f32> = (0..n).map(|j| p[(j, j)]).collect();
        // Row i of B: B_ij = −P_ij / P_jj. P is symmetric, so row i is read down column i.
        // The entries kept are those of largest magnitude over the whole of B (on average
        // `neighbors` per row; rows of popular items keep more): the negative weights matter
        // as much as the positive ones, and a per-row cut would drop more of the rows that
        // carry the most signal. The threshold is the matching quantile of |B| over a sample.
        // P is symmetric and only its lower triangle is computed.
        let b = |i: usize, j: usize| -p[(i.max(j), i.min(j))] / diag[j];
        let threshold = {
            let mut rng = marquee_domain::rng::SeededRng::new(7);
            let samples = (n * n).min(2_000_000);
            let mut sample: Vec<f32> = (0..samples)
                .map(|_| {
                    let (i, j) = (rng.index(n), rng.index(n));
                    if i == j { 0.0 } else { b(i, j).abs() }
                })
                .collect();
            let keep = (params.neighbors as f64 / n as f64).min(1.0);
            let at = ((1.0 - keep) * samples as f64) as usize;
            let at = at.min(samples - 1);
            let (_, v, _) = sample.select_nth_unstable_by(at, f32::total_cmp);
            // Entries within rounding of the threshold count as at it (ties stay ties in f32).
            *v * (1.0 - 1e-5)
        };
        let cap = params.neighbors.saturating_mul(4).min(n);
        let lists: Vec<Vec<(u32, f32)>> = (0..n)
            .into_par_iter()
            .map_init(
                || vec![0f32; n],
                |magnitude, i| {
                    for (j, m) in magnitude.iter_mut().enumerate() {
                        let v = b(i, j).abs();
                        *m = if v >= threshold { v } else { f32::NAN };
                    }
                    // Keeping (nearly) every entry: no selection needed.
                    let mut kept: Vec<(u32, f32)> = if cap + 1 >= n {
                        (0..n)
                            .filter(|&j| j != i && !magnitude[j].is_nan())
                            .map(|j| (j as u32, b(i, j)))
                            .collect()
                    } else {
                        top_k(magnitude, cap, &[i as u32])
                            .into_iter()
                            .map(|(j, _)| (j, b(i, j as usize)))
                            .collect()
                    };
                    kept.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                    kept
                },
            )
            .collect();
        Ok(Self {
            params,
            graph: ItemItem::from_lists(lists),
        })
    }
}

/// `(XᵀX + λI)⁻¹`, lower triangle only (the strict upper triangle holds what `g` had), in
/// two n × n buffers: `g` itself, factored in place into its Cholesky factor L and then
/// overwritten by `L⁻ᵀ L⁻¹`, and L⁻¹. In f32: 2 × 378 MB for 9,724 items, where the f64
/// factorisation with a separate inverse took three f64 matrices (2.3 GB).
fn inverse_in_place(mut g: Mat<f32>) -> Result<Mat<f32>> {
    use faer::dyn_stack::{MemBuffer, MemStack};
    use faer::linalg::cholesky::llt::factor::{cholesky_in_place, cholesky_in_place_scratch};
    use faer::linalg::matmul::triangular::{BlockStructure, matmul};
    use faer::linalg::triangular_inverse::invert_lower_triangular;
    let n = g.nrows();
    let par = faer::get_global_parallelism();
    let mut scratch = MemBuffer::new(cholesky_in_place_scratch::<f32>(n, par, Default::default()));
    cholesky_in_place(
        g.as_mut(),
        Default::default(),
        par,
        MemStack::new(&mut scratch),
        Default::default(),
    )
    .map_err(|e| Error::Numeric(format!("Cholesky factorisation of XᵀX + λI failed: {e:?}")))?;
    drop(scratch);
    let mut l_inv = Mat::<f32>::zeros(n, n);
    invert_lower_triangular(l_inv.as_mut(), g.as_ref(), par);
    matmul(
        g.as_mut(),
        BlockStructure::TriangularLower,
        faer::Accum::Replace,
        l_inv.adjoint(),
        BlockStructure::TriangularUpper,
        l_inv.as_ref(),
        BlockStructure::TriangularLower,
        1.0,
        par,
    );
    Ok(g)
}

impl Scorer for Ease {
    fn name(&self) -> &'static str {
        "ease"
    }

    fn n_items(&self) -> usize {
        self.graph.n_items()
    }

    fn score(&self, _user: usize, history: Row<'_>, out: &mut [f32]) {
        self.graph.score(history, self.params.weighted, out);
    }
}
