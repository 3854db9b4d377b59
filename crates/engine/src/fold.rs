//! Real-time fold-in for ALS: a user's vector from their current history, by solving their
//! least-squares problem against the fixed item factors exactly,
//! `(YᵀY + λI + Σᵢ (cᵢ − 1) yᵢ yᵢᵀ) x = Σᵢ cᵢ yᵢ` with `cᵢ = 1 + α wᵢ` (the same objective the
//! trainer minimises), through a Cholesky factorisation in f64. BPR users are folded in the
//! same way against the BPR item vectors (with [`BPR_FOLD`]): not BPR's own objective, but a
//! vector that scores the user's items high, in one exact solve.

use marquee_models::Row;

/// The item factors a fold-in solves against, with the solve's λ and α.
pub(crate) struct FoldSpace<'a> {
    pub factors: &'a [f32],
    pub width: usize,
    pub regularization: f32,
    pub alpha: f32,
}

/// λ and α of the least-squares fold-in of BPR users.
pub(crate) const BPR_FOLD: (f32, f32) = (1.0, 2.0);

/// `YᵀY + λI` (f × f, row-major, f64), computed once per loaded model.
pub(crate) fn gram(space: &FoldSpace<'_>) -> Vec<f64> {
    let f = space.width;
    let mut g = vec![0f64; f * f];
    for y in space.factors.chunks_exact(f) {
        for a in 0..f {
            let ya = f64::from(y[a]);
            for b in a..f {
                g[a * f + b] += ya * f64::from(y[b]);
            }
        }
    }
    for a in 0..f {
        for b in 0..a {
            g[a * f + b] = g[b * f + a];
        }
        g[a * f + a] += f64::from(space.regularization);
    }
    g
}

/// The user vector for `history` (item indices and weights).
pub(crate) fn fold_in(space: &FoldSpace<'_>, gram: &[f64], history: Row<'_>) -> Vec<f32> {
    let f = space.width;
    let alpha = f64::from(space.alpha);
    let mut a = gram.to_vec();
    let mut b = vec![0f64; f];
    for (i, w) in history.iter() {
        let y = &space.factors[i * f..(i + 1) * f];
        let c = 1.0 + alpha * f64::from(w);
        for p in 0..f {
            let yp = f64::from(y[p]);
            b[p] += c * yp;
            let scaled = (c - 1.0) * yp;
            for q in 0..f {
                a[p * f + q] += scaled * f64::from(y[q]);
            }
        }
    }
    // Cholesky: a = L Lᵀ, L stored in the lower triangle.
    for j in 0..f {
        let mut d = a[j * f + j];
        for k in 0..j {
            d -= a[j * f + k] * a[j * f + k];
        }
        if d <= 0.0 || !d.is_finite() {
            // Not positive definite (λ = 0 and too little data): no personal vector.
            return vec![0.0; f];
        }
        let d = d.sqrt();
        a[j * f + j] = d;
        for i in j + 1..f {
            let mut s = a[i * f + j];
            for k in 0..j {
                s -= a[i * f + k] * a[j * f + k];
            }
            a[i * f + j] = s / d;
        }
    }
    // Solve L z = b, then Lᵀ x = z.
    for i in 0..f {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i * f + k] * b[k];
        }
        b[i] = s / a[i * f + i];
    }
    for i in (0..f).rev() {
        let mut s = b[i];
        for k in i + 1..f {
            s -= a[k * f + i] * b[k];
        }
        b[i] = s / a[i * f + i];
    }
    b.into_iter().map(|v| v as f32).collect()
}
