//! Real-time fold-in for ALS: a user's vector from their current history, by solving their
//! least-squares problem against the fixed item factors exactly,
//! `(YᵀY + λI + Σᵢ (cᵢ − 1) yᵢ yᵢᵀ) x = Σᵢ cᵢ yᵢ` with `cᵢ = 1 + α wᵢ` (the same objective the
//! trainer minimises), through a Cholesky factorisation in f64.

use marquee_models::{Als, Row};

/// `YᵀY + λI` (f × f, row-major, f64), computed once per loaded model.
pub(crate) fn gram(als: &Als) -> Vec<f64> {
    let f = als.params.factors;
    let mut g = vec![0f64; f * f];
    for y in als.item_factors.chunks_exact(f) {
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
        g[a * f + a] += f64::from(als.params.regularization);
    }
    g
}

/// The user vector for `history` (item indices and weights).
pub(crate) fn fold_in(als: &Als, gram: &[f64], history: Row<'_>) -> Vec<f32> {
    let f = als.params.factors;
    let alpha = f64::from(als.params.alpha);
    let mut a = gram.to_vec();
    let mut b = vec![0f64; f];
    for (i, w) in history.iter() {
        let y = &als.item_factors[i * f..(i + 1) * f];
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
