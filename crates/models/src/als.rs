//! Implicit-feedback ALS (Hu, Koren, Volinsky 2008) solved with a few conjugate-gradient steps
//! per row (Takács, Pilászy, Tikk 2011), warm-started from the previous sweep.
//!
//! Confidence is `1 + alpha * weight` for observed pairs and 1 elsewhere; preference is 1 for
//! observed pairs. Each sweep computes `YᵀY + λI` once, then solves every user (in parallel,
//! one scratch buffer per worker, no allocation per row), then every item the same way.

use crate::{Error, Interactions, Result, Row, Scorer};
use marquee_domain::rng::SeededRng;
use rayon::prelude::*;

/// ALS hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlsParams {
    pub factors: usize,
    pub iterations: usize,
    /// λ, added to the diagonal of YᵀY.
    pub regularization: f32,
    /// Confidence scale: c = 1 + alpha · weight.
    pub alpha: f32,
    /// Conjugate-gradient steps per row and sweep.
    pub cg_steps: usize,
    pub seed: u64,
}

impl Default for AlsParams {
    fn default() -> Self {
        Self {
            factors: 64,
            iterations: 15,
            regularization: 0.05,
            alpha: 2.0,
            cg_steps: 3,
            seed: 42,
        }
    }
}

/// A fitted ALS model: one vector per user and per item.
#[derive(Debug, Clone, PartialEq)]
pub struct Als {
    pub params: AlsParams,
    pub n_users: usize,
    pub n_items: usize,
    /// Row-major `n_users × factors`.
    pub user_factors: Vec<f32>,
    /// Row-major `n_items × factors`.
    pub item_factors: Vec<f32>,
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `YᵀY + λI` (f × f, row-major), accumulated in f64.
fn gram(y: &[f32], f: usize, lambda: f32) -> Vec<f32> {
    let partial = y
        .par_chunks(f * 1024)
        .map(|block| {
            let mut g = vec![0f64; f * f];
            for row in block.chunks_exact(f) {
                for a in 0..f {
                    let ra = f64::from(row[a]);
                    for b in a..f {
                        g[a * f + b] += ra * f64::from(row[b]);
                    }
                }
            }
            g
        })
        .reduce(
            || vec![0f64; f * f],
            |mut x, y| {
                for (a, b) in x.iter_mut().zip(y) {
                    *a += b;
                }
                x
            },
        );
    let mut g = vec![0f32; f * f];
    for a in 0..f {
        for b in a..f {
            let v = partial[a * f + b] as f32;
            g[a * f + b] = v;
            g[b * f + a] = v;
        }
        g[a * f + a] += lambda;
    }
    g
}

struct Scratch {
    r: Vec<f32>,
    p: Vec<f32>,
    ap: Vec<f32>,
}

/// Improves `x` (one row's factors) towards the solution of
/// `(YᵀY + λI + Yᵀ(C − I)Y) x = Yᵀ C p` with `steps` conjugate-gradient steps.
fn solve_row(
    x: &mut [f32],
    row: Row<'_>,
    y: &[f32],
    yty: &[f32],
    alpha: f32,
    steps: usize,
    s: &mut Scratch,
) {
    let f = x.len();
    // r = b − A x
    for a in 0..f {
        s.r[a] = -dot(&yty[a * f..(a + 1) * f], x);
    }
    for (i, w) in row.iter() {
        let yi = &y[i * f..(i + 1) * f];
        let c = 1.0 + alpha * w;
        let coef = c - (c - 1.0) * dot(yi, x);
        for (r, v) in s.r.iter_mut().zip(yi) {
            *r += coef * v;
        }
    }
    s.p.copy_from_slice(&s.r);
    let mut rs_old = dot(&s.r, &s.r);
    for _ in 0..steps {
        if rs_old < 1e-20 {
            break;
        }
        for a in 0..f {
            s.ap[a] = dot(&yty[a * f..(a + 1) * f], &s.p);
        }
        for (i, w) in row.iter() {
            let yi = &y[i * f..(i + 1) * f];
            let coef = alpha * w * dot(yi, &s.p);
            for (ap, v) in s.ap.iter_mut().zip(yi) {
                *ap += coef * v;
            }
        }
        let denom = dot(&s.p, &s.ap);
        if denom <= 0.0 || !denom.is_finite() {
            break;
        }
        let step = rs_old / denom;
        for ((xa, ra), (pa, apa)) in x.iter_mut().zip(s.r.iter_mut()).zip(s.p.iter().zip(&s.ap)) {
            *xa += step * pa;
            *ra -= step * apa;
        }
        let rs_new = dot(&s.r, &s.r);
        let beta = rs_new / rs_old;
        for a in 0..f {
            s.p[a] = s.r[a] + beta * s.p[a];
        }
        rs_old = rs_new;
    }
}

fn sweep(target: &mut [f32], other: &[f32], matrix: &Interactions, params: &AlsParams) {
    let f = params.factors;
    let yty = gram(other, f, params.regularization);
    target.par_chunks_mut(f).enumerate().for_each_init(
        || Scratch {
            r: vec![0.0; f],
            p: vec![0.0; f],
            ap: vec![0.0; f],
        },
        |scratch, (row, x)| {
            solve_row(
                x,
                matrix.row(row),
                other,
                &yty,
                params.alpha,
                params.cg_steps,
                scratch,
            );
        },
    );
}

impl Als {
    /// Fits on `train`; `on_iteration(done, total)` is called after each sweep and may return
    /// false to stop early (the factors so far are kept).
    pub fn fit(
        train: &Interactions,
        params: AlsParams,
        mut on_iteration: impl FnMut(usize, usize) -> bool,
    ) -> Result<Self> {
        if params.factors == 0 {
            return Err(Error::Parameter {
                name: "als.factors",
                message: "must be at least 1".into(),
            });
        }
        if params.regularization.is_nan()
            || params.regularization < 0.0
            || params.alpha.is_nan()
            || params.alpha < 0.0
        {
            return Err(Error::Parameter {
                name: "als.regularization",
                message: "regularization and alpha must be zero or positive".into(),
            });
        }
        if train.nnz() == 0 {
            return Err(Error::Empty);
        }
        let f = params.factors;
        let mut rng = SeededRng::new(params.seed);
        let scale = 0.01;
        let mut init =
            |n: usize| -> Vec<f32> { (0..n * f).map(|_| (rng.normal() * scale) as f32).collect() };
        let mut user_factors = init(train.n_users());
        let mut item_factors = init(train.n_items());
        let by_item = train.transpose();
        for it in 0..params.iterations {
            sweep(&mut user_factors, &item_factors, train, &params);
            sweep(&mut item_factors, &user_factors, &by_item, &params);
            if !on_iteration(it + 1, params.iterations) {
                break;
            }
        }
        Ok(Self {
            params,
            n_users: train.n_users(),
            n_items: train.n_items(),
            user_factors,
            item_factors,
        })
    }

    /// The user's vector.
    pub fn user_vector(&self, user: usize) -> &[f32] {
        let f = self.params.factors;
        &self.user_factors[user * f..(user + 1) * f]
    }
}

impl Scorer for Als {
    fn name(&self) -> &'static str {
        "als"
    }

    fn n_items(&self) -> usize {
        self.n_items
    }

    fn score(&self, user: usize, _history: Row<'_>, out: &mut [f32]) {
        let f = self.params.factors;
        let x = self.user_vector(user);
        for (o, y) in out.iter_mut().zip(self.item_factors.chunks_exact(f)) {
            *o = dot(x, y);
        }
    }
}
