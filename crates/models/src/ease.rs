//! EASE (Steck 2019): an item-item weight matrix B from a closed form,
//! `P = (XᵀX + λI)⁻¹`, `B = I − P · diag(1 / diag(P))`, i.e. `B_ij = −P_ij / P_jj` off the
//! diagonal and 0 on it. A user's scores are `x_u B`.
//!
//! The dense solve is O(n³) in items and holds n² numbers, so catalogs above
//! [`MAX_EASE_ITEMS`] are refused.

use crate::{Error, Interactions, Result, Row, Scorer};
use faer::linalg::solvers::DenseSolveCore;
use faer::{Mat, Side};

/// The largest catalog EASE accepts.
pub const MAX_EASE_ITEMS: usize = 20_000;

/// EASE hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EaseParams {
    /// λ, the L2 penalty added to the diagonal of XᵀX.
    pub lambda: f64,
    /// Use the interaction weights (true) or 1 for every observed pair (false).
    pub weighted: bool,
}

impl Default for EaseParams {
    fn default() -> Self {
        Self {
            lambda: 500.0,
            weighted: false,
        }
    }
}

/// A fitted EASE model.
#[derive(Debug, Clone, PartialEq)]
pub struct Ease {
    pub params: EaseParams,
    pub n_items: usize,
    /// Row-major `n_items × n_items`.
    pub weights: Vec<f32>,
}

impl Ease {
    pub fn fit(train: &Interactions, params: EaseParams) -> Result<Self> {
        let n = train.n_items();
        if n > MAX_EASE_ITEMS {
            return Err(Error::TooLarge(format!(
                "EASE needs a dense {n} × {n} solve; catalogs of more than {MAX_EASE_ITEMS} items are refused (use ALS)"
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
        let mut g = Mat::<f64>::zeros(n, n);
        for u in 0..train.n_users() {
            let row = train.row(u);
            for (i, wi) in row.iter() {
                let wi = if params.weighted { f64::from(wi) } else { 1.0 };
                for (j, wj) in row.iter() {
                    let wj = if params.weighted { f64::from(wj) } else { 1.0 };
                    g[(i, j)] += wi * wj;
                }
            }
        }
        for i in 0..n {
            g[(i, i)] += params.lambda;
        }
        let p = g
            .llt(Side::Lower)
            .map_err(|e| {
                Error::Numeric(format!("Cholesky factorisation of XᵀX + λI failed: {e:?}"))
            })?
            .inverse();
        drop(g);
        let mut weights = vec![0f32; n * n];
        for j in 0..n {
            let pjj = p[(j, j)];
            for i in 0..n {
                if i != j {
                    weights[i * n + j] = (-p[(i, j)] / pjj) as f32;
                }
            }
        }
        Ok(Self {
            params,
            n_items: n,
            weights,
        })
    }
}

impl Scorer for Ease {
    fn name(&self) -> &'static str {
        "ease"
    }

    fn n_items(&self) -> usize {
        self.n_items
    }

    fn score(&self, _user: usize, history: Row<'_>, out: &mut [f32]) {
        let n = self.n_items;
        out.fill(0.0);
        for (i, w) in history.iter() {
            let w = if self.params.weighted { w } else { 1.0 };
            for (o, b) in out.iter_mut().zip(&self.weights[i * n..(i + 1) * n]) {
                *o += w * b;
            }
        }
    }
}
