//! Implicit-feedback ALS (Hu, Koren, Volinsky 2008) solved with a few conjugate-gradient steps
//! per row (Takács, Pilászy, Tikk 2011), warm-started from the previous sweep.
//!
//! Confidence is `1 + alpha * weight` for observed pairs and 1 elsewhere; preference is 1 for
//! observed pairs. Each sweep computes `YᵀY + λI` once, then solves every user (in parallel,
//! one row's CG steps after another so its item vectors stay in cache, one scratch buffer per
//! worker, no allocation per row), then every item the same way. The products are written
//! for AVX2 and FMA where the processor has them (chosen at run time), with kernels of their
//! own for 64 factors.

use crate::{Error, Interactions, Result, Row, Scorer};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
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

/// Dot product with sixteen independent partial sums (four 4-lane vectors), so the compiler
/// keeps them in SIMD registers (a single running sum is a serial dependency it may not
/// reorder).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_with::<false>(a, b)
}

/// [`dot`], with fused multiply-adds when `FMA` (only where the processor has them: without,
/// `mul_add` is a library call).
#[inline(always)]
fn dot_with<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [[0f32; 4]; 4];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for (lane, acc) in acc.iter_mut().enumerate() {
            for k in 0..4 {
                acc[k] = madd::<FMA>(x[lane * 4 + k], y[lane * 4 + k], acc[k]);
            }
        }
    }
    let mut v = [0f32; 4];
    for acc in &acc {
        for k in 0..4 {
            v[k] += acc[k];
        }
    }
    (v[0] + v[2]) + (v[1] + v[3]) + tail
}

/// `a · b + c`, fused when `FMA`.
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// `y += a · x`, fused when `FMA`.
#[inline(always)]
#[allow(unsafe_code)]
fn axpy<const FMA: bool>(y: &mut [f32], a: f32, x: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: `FMA` code runs only on processors with AVX2 and FMA (`solve_rows`).
        unsafe { avx2::axpy(y, a, x) };
        return;
    }
    for (yv, xv) in y.iter_mut().zip(x) {
        *yv = madd::<FMA>(a, *xv, *yv);
    }
}

/// [`dot`] where `FMA` code may use AVX2 (see [`axpy`]).
#[inline(always)]
#[allow(unsafe_code)]
fn dot_fast<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: as in `axpy`.
        return unsafe { avx2::dot(a, b) };
    }
    dot_with::<FMA>(a, b)
}

/// Dot product and `y += a · x` written for AVX2 and FMA: eight lanes per instruction, four
/// independent sums. Left to itself the compiler turned `dot_with` into two-lane loads.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    use std::arch::x86_64::*;

    /// # Safety
    /// The processor must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut k = 0;
        let mut total;
        // SAFETY: every load reads 8 floats at k + 8 · j < n from both slices.
        unsafe {
            let mut acc = [_mm256_setzero_ps(); 4];
            while k + 32 <= n {
                for (j, s) in acc.iter_mut().enumerate() {
                    let (x, y) = (
                        _mm256_loadu_ps(pa.add(k + 8 * j)),
                        _mm256_loadu_ps(pb.add(k + 8 * j)),
                    );
                    *s = _mm256_fmadd_ps(x, y, *s);
                }
                k += 32;
            }
            while k + 8 <= n {
                acc[0] = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(k)),
                    _mm256_loadu_ps(pb.add(k)),
                    acc[0],
                );
                k += 8;
            }
            total = sum(_mm256_add_ps(
                _mm256_add_ps(acc[0], acc[1]),
                _mm256_add_ps(acc[2], acc[3]),
            ));
        }
        for (x, y) in a[k..n].iter().zip(&b[k..n]) {
            total = x.mul_add(*y, total);
        }
        total
    }

    /// The sum of the eight lanes.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn sum(v: __m256) -> f32 {
        let q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let q = _mm_add_ps(q, _mm_movehl_ps(q, q));
        _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps(q, q, 1)))
    }

    /// `out[j] = v · y_{items[j]}` for 64 factors: `v` stays in eight registers, and the
    /// products of different items are independent.
    ///
    /// # Safety
    /// The processor must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub unsafe fn item_dots_64(out: &mut [f32], v: &[f32], items: &[u32], y: &[f32]) {
        let v = &v[..64];
        // SAFETY: every load reads 8 floats of a 64-float slice, at offsets below 64.
        unsafe {
            let mut vv = [_mm256_setzero_ps(); 8];
            for (k, r) in vv.iter_mut().enumerate() {
                *r = _mm256_loadu_ps(v.as_ptr().add(8 * k));
            }
            for (o, &i) in out.iter_mut().zip(items) {
                let row = y[i as usize * 64..][..64].as_ptr();
                let mut a = _mm256_mul_ps(_mm256_loadu_ps(row), vv[0]);
                let mut b = _mm256_mul_ps(_mm256_loadu_ps(row.add(8)), vv[1]);
                for k in (2..8).step_by(2) {
                    a = _mm256_fmadd_ps(_mm256_loadu_ps(row.add(8 * k)), vv[k], a);
                    b = _mm256_fmadd_ps(_mm256_loadu_ps(row.add(8 * k + 8)), vv[k + 1], b);
                }
                *o = sum(_mm256_add_ps(a, b));
            }
        }
    }

    /// `out += Σ_j coefs[j] · y_{items[j]}` for 64 factors, summed in eight registers.
    ///
    /// # Safety
    /// The processor must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub unsafe fn add_items_64(out: &mut [f32], coefs: &[f32], items: &[u32], y: &[f32]) {
        let out = &mut out[..64];
        // SAFETY: every load and store touches 8 floats of a 64-float slice, at offsets below
        // 64.
        unsafe {
            let mut acc = [_mm256_setzero_ps(); 8];
            for (&c, &i) in coefs.iter().zip(items) {
                let row = y[i as usize * 64..][..64].as_ptr();
                let c = _mm256_set1_ps(c);
                for (k, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(c, _mm256_loadu_ps(row.add(8 * k)), *a);
                }
            }
            let o = out.as_mut_ptr();
            for (k, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(
                    o.add(8 * k),
                    _mm256_add_ps(_mm256_loadu_ps(o.add(8 * k)), *a),
                );
            }
        }
    }

    /// # Safety
    /// The processor must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub unsafe fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
        let n = y.len().min(x.len());
        let (py, px) = (y.as_mut_ptr(), x.as_ptr());
        let mut k = 0;
        // SAFETY: every load and store touches 8 floats at k < n of both slices.
        unsafe {
            let av = _mm256_set1_ps(a);
            while k + 8 <= n {
                let v = _mm256_fmadd_ps(av, _mm256_loadu_ps(px.add(k)), _mm256_loadu_ps(py.add(k)));
                _mm256_storeu_ps(py.add(k), v);
                k += 8;
            }
        }
        for (yv, xv) in y[k..n].iter_mut().zip(&x[k..n]) {
            *yv = a.mul_add(*xv, *yv);
        }
    }
}

/// `YᵀY + λI` (f × f, row-major), as one parallel matrix product.
fn gram(y: &[f32], f: usize, lambda: f32) -> Vec<f32> {
    let n = y.len() / f;
    let mut g = vec![0f32; f * f];
    let yr = MatRef::from_row_major_slice(y, n, f);
    matmul(
        MatMut::from_row_major_slice_mut(&mut g, f, f),
        Accum::Replace,
        yr.transpose(),
        yr,
        1.0,
        Par::rayon(0),
    );
    for a in 0..f {
        g[a * f + a] += lambda;
    }
    g
}

/// Per-worker buffers of one row's conjugate-gradient solve (no allocation per row).
struct Scratch {
    r: Vec<f32>,
    p: Vec<f32>,
    ap: Vec<f32>,
    /// One coefficient per observed item of the row.
    coefs: Vec<f32>,
}

impl Scratch {
    fn new(f: usize) -> Self {
        Self {
            r: vec![0.0; f],
            p: vec![0.0; f],
            ap: vec![0.0; f],
            coefs: Vec::new(),
        }
    }
}

/// `out[j] = v · y_{items[j]}` for the observed items of a row.
#[inline(always)]
#[allow(unsafe_code)]
fn item_dots<const FMA: bool>(out: &mut [f32], v: &[f32], items: &[u32], y: &[f32]) {
    let f = v.len();
    #[cfg(target_arch = "x86_64")]
    if FMA && f == 64 {
        // SAFETY: as in `axpy`.
        unsafe { avx2::item_dots_64(out, v, items, y) };
        return;
    }
    for (o, &i) in out.iter_mut().zip(items) {
        let i = i as usize;
        *o = dot_fast::<FMA>(&y[i * f..(i + 1) * f], v);
    }
}

/// `out += Σ_j coefs[j] · y_{items[j]}`.
#[inline(always)]
#[allow(unsafe_code)]
fn add_items<const FMA: bool>(out: &mut [f32], coefs: &[f32], items: &[u32], y: &[f32]) {
    let f = out.len();
    #[cfg(target_arch = "x86_64")]
    if FMA && f == 64 {
        // SAFETY: as in `axpy`.
        unsafe { avx2::add_items_64(out, coefs, items, y) };
        return;
    }
    for (&c, &i) in coefs.iter().zip(items) {
        let i = i as usize;
        axpy::<FMA>(out, c, &y[i * f..(i + 1) * f]);
    }
}

/// `out = scale · G v` for the symmetric f × f matrix `g` (row-major): for 64 factors the
/// rows of `G` weighted by `v`, summed in registers; otherwise one dot product per entry.
#[inline(always)]
fn times_gram<const FMA: bool>(out: &mut [f32], g: &[f32], v: &[f32], scale: f32) {
    let f = v.len();
    if FMA && f == 64 {
        // G symmetric: G v = Σ_k v_k · (row k of G), summed in registers.
        const ROWS: [u32; 64] = {
            let mut rows = [0; 64];
            let mut k = 0;
            while k < 64 {
                rows[k] = k as u32;
                k += 1;
            }
            rows
        };
        let mut coefs = [0f32; 64];
        for (c, &x) in coefs.iter_mut().zip(v) {
            *c = scale * x;
        }
        out.fill(0.0);
        add_items::<FMA>(out, &coefs, &ROWS, g);
        return;
    }
    for (o, row) in out.iter_mut().zip(g.chunks_exact(f)) {
        *o = scale * dot_fast::<FMA>(row, v);
    }
}

/// Improves the factors `xs` of consecutive rows (starting at row `first`) towards the
/// solutions of `(YᵀY + λI + Yᵀ(C_u − I)Y) x_u = Yᵀ C_u p_u` with `steps` conjugate-gradient
/// steps each.
///
/// A row's steps run one after another, so its observed item vectors come from memory once
/// and from cache for the following steps (for MovieLens-1M's ~130 items per user, 33 KB).
/// On processors with AVX2 and FMA the same code is compiled for them (8 lanes, fused
/// multiply-adds) and chosen at run time; the observed-item loops are where dense users spend
/// the fit.
#[allow(clippy::too_many_arguments, unsafe_code)]
fn solve_rows(
    xs: &mut [f32],
    first: usize,
    matrix: &Interactions,
    y: &[f32],
    yty: &[f32],
    alpha: f32,
    steps: usize,
    s: &mut Scratch,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the processor has AVX2 and FMA, checked just above.
        unsafe { solve_rows_avx2_fma(xs, first, matrix, y, yty, alpha, steps, s) };
        return;
    }
    solve_rows_body::<false>(xs, first, matrix, y, yty, alpha, steps, s);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
fn solve_rows_avx2_fma(
    xs: &mut [f32],
    first: usize,
    matrix: &Interactions,
    y: &[f32],
    yty: &[f32],
    alpha: f32,
    steps: usize,
    s: &mut Scratch,
) {
    solve_rows_body::<true>(xs, first, matrix, y, yty, alpha, steps, s);
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn solve_rows_body<const FMA: bool>(
    xs: &mut [f32],
    first: usize,
    matrix: &Interactions,
    y: &[f32],
    yty: &[f32],
    alpha: f32,
    steps: usize,
    s: &mut Scratch,
) {
    let f = yty.len().isqrt();
    let Scratch { r, p, ap, coefs } = s;
    let (r, p, ap) = (&mut r[..f], &mut p[..f], &mut ap[..f]);
    for (row, x) in xs.chunks_exact_mut(f).enumerate() {
        let observed = matrix.row(first + row);
        let (items, weights) = (observed.items, observed.values);
        if coefs.len() < items.len() {
            coefs.resize(items.len(), 0.0);
        }
        let coefs = &mut coefs[..items.len()];
        // r = b − A x: the dot products first, then the sum of the weighted item vectors
        // (independent products, one running sum).
        times_gram::<FMA>(r, yty, x, -1.0);
        item_dots::<FMA>(coefs, x, items, y);
        for (k, &w) in coefs.iter_mut().zip(weights) {
            let c = 1.0 + alpha * w;
            *k = c - (c - 1.0) * *k;
        }
        add_items::<FMA>(r, coefs, items, y);
        let mut rs = dot_fast::<FMA>(r, r);
        p.copy_from_slice(r);
        for _ in 0..steps {
            if rs < 1e-20 {
                break;
            }
            times_gram::<FMA>(ap, yty, p, 1.0);
            item_dots::<FMA>(coefs, p, items, y);
            for (k, &w) in coefs.iter_mut().zip(weights) {
                *k *= alpha * w;
            }
            add_items::<FMA>(ap, coefs, items, y);
            let denom = dot_fast::<FMA>(p, ap);
            if denom <= 0.0 || !denom.is_finite() {
                break;
            }
            let step = rs / denom;
            axpy::<FMA>(x, step, p);
            axpy::<FMA>(r, -step, ap);
            let rs_new = dot_fast::<FMA>(r, r);
            let beta = rs_new / rs;
            for (pa, ra) in p.iter_mut().zip(r.iter()) {
                *pa = ra + beta * *pa;
            }
            rs = rs_new;
        }
    }
}

fn sweep(target: &mut [f32], other: &[f32], matrix: &Interactions, params: &AlsParams) {
    let f = params.factors;
    let yty = gram(other, f, params.regularization);
    let rows = target.len() / f;
    // Chunks small enough to share out among the threads.
    let chunk = (rows / (rayon::current_num_threads() * 8)).clamp(16, 256);
    target.par_chunks_mut(chunk * f).enumerate().for_each_init(
        || Scratch::new(f),
        |scratch, (b, xs)| {
            solve_rows(
                xs,
                b * chunk,
                matrix,
                other,
                &yty,
                params.alpha,
                params.cg_steps,
                scratch,
            );
        },
    );
}

/// Refuses parameters no fit can use, and an empty matrix.
fn check(params: &AlsParams, train: &Interactions) -> Result<()> {
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
    Ok(())
}

/// Starting factors: N(0, 0.01²) from the seed, users then items.
fn random_factors(params: &AlsParams, train: &Interactions) -> (Vec<f32>, Vec<f32>) {
    let f = params.factors;
    let mut rng = SeededRng::new(params.seed);
    let mut init =
        |n: usize| -> Vec<f32> { (0..n * f).map(|_| (rng.normal() * 0.01) as f32).collect() };
    let users = init(train.n_users());
    let items = init(train.n_items());
    (users, items)
}

impl Als {
    /// Fits on `train`; `on_iteration(done, total)` is called after each sweep and may return
    /// false to stop early (the factors so far are kept).
    pub fn fit(
        train: &Interactions,
        params: AlsParams,
        on_iteration: impl FnMut(usize, usize) -> bool,
    ) -> Result<Self> {
        check(&params, train)?;
        let (user_factors, item_factors) = random_factors(&params, train);
        Ok(Self::sweep_from(
            train,
            params,
            user_factors,
            item_factors,
            on_iteration,
        ))
    }

    /// Fits on `train` starting from `warm`'s factors instead of random ones (a warm start):
    /// users and items are matched by id through `warm_data`, the matrix `warm` was fitted on;
    /// rows it does not have start random. `params.iterations` sweeps follow, so a refit on
    /// all the data after a fit on its training split needs fewer (benches/README.md).
    pub fn fit_warm(
        train: &Interactions,
        params: AlsParams,
        warm: &Als,
        warm_data: &Interactions,
        on_iteration: impl FnMut(usize, usize) -> bool,
    ) -> Result<Self> {
        let f = params.factors;
        if warm.params.factors != f {
            return Err(Error::Parameter {
                name: "als.factors",
                message: format!(
                    "a warm start needs the same factors ({} in the warm model, {f} asked)",
                    warm.params.factors
                ),
            });
        }
        check(&params, train)?;
        let (users, items) = random_factors(&params, train);
        let copy = |mut to: Vec<f32>, from: &[f32], ids: &crate::IdMap, warm_ids: &crate::IdMap| {
            for (row, chunk) in to.chunks_exact_mut(f).enumerate() {
                if let Some(w) = warm_ids.get(ids.id(row)) {
                    let w = w as usize;
                    if let Some(src) = from.get(w * f..(w + 1) * f) {
                        chunk.copy_from_slice(src);
                    }
                }
            }
            to
        };
        let users = copy(users, &warm.user_factors, &train.users, &warm_data.users);
        let items = copy(items, &warm.item_factors, &train.items, &warm_data.items);
        Ok(Self::sweep_from(train, params, users, items, on_iteration))
    }

    /// `params.iterations` sweeps (users, then items) from the given factors.
    fn sweep_from(
        train: &Interactions,
        params: AlsParams,
        mut user_factors: Vec<f32>,
        mut item_factors: Vec<f32>,
        mut on_iteration: impl FnMut(usize, usize) -> bool,
    ) -> Self {
        let by_item = train.transpose();
        for it in 0..params.iterations {
            sweep(&mut user_factors, &item_factors, train, &params);
            sweep(&mut item_factors, &user_factors, &by_item, &params);
            if !on_iteration(it + 1, params.iterations) {
                break;
            }
        }
        Self {
            params,
            n_users: train.n_users(),
            n_items: train.n_items(),
            user_factors,
            item_factors,
        }
    }

    /// `out[i] = x · yᵢ` for every item: one matrix-vector product (SIMD chosen at run time).
    pub fn scores_for(&self, x: &[f32], out: &mut [f32]) {
        factor_scores(&self.item_factors, self.params.factors, x, out);
    }

    /// The user's vector.
    pub fn user_vector(&self, user: usize) -> &[f32] {
        let f = self.params.factors;
        &self.user_factors[user * f..(user + 1) * f]
    }
}

/// `out[i] = x · factors[i]` for every row of the row-major `n × width` matrix `factors`
/// (one matrix-vector product; `out` and `x` as long as the rows and `width`).
pub fn factor_scores(factors: &[f32], width: usize, x: &[f32], out: &mut [f32]) {
    let n = (factors.len() / width.max(1)).min(out.len());
    if width == 0 || x.len() < width {
        out.fill(0.0);
        return;
    }
    matmul(
        MatMut::from_column_major_slice_mut(&mut out[..n], n, 1),
        Accum::Replace,
        MatRef::from_row_major_slice(&factors[..n * width], n, width),
        MatRef::from_column_major_slice(&x[..width], width, 1),
        1.0,
        Par::Seq,
    );
}

impl Scorer for Als {
    fn name(&self) -> &'static str {
        "als"
    }

    fn n_items(&self) -> usize {
        self.n_items
    }

    fn score(&self, user: usize, _history: Row<'_>, out: &mut [f32]) {
        self.scores_for(self.user_vector(user), out);
    }

    /// One product `U Yᵀ` of the users' vectors with all item vectors.
    fn score_many(&self, users: &[usize], _train: &Interactions, out: &mut [f32]) {
        let (f, n) = (self.params.factors, self.n_items);
        let m = users.len().min(out.len() / n.max(1));
        if f == 0 || n == 0 || m == 0 {
            out.fill(0.0);
            return;
        }
        let mut u = Vec::with_capacity(m * f);
        for &user in &users[..m] {
            u.extend_from_slice(self.user_vector(user));
        }
        matmul(
            MatMut::from_row_major_slice_mut(&mut out[..m * n], m, n),
            Accum::Replace,
            MatRef::from_row_major_slice(&u, m, f),
            MatRef::from_row_major_slice(&self.item_factors[..n * f], n, f).transpose(),
            1.0,
            Par::Seq,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A warm start begins where the warm model left the users and items both matrices
    /// share (rows the warm model lacks start random), and a few sweeps from it reach the
    /// training loss of a full cold fit.
    #[test]
    fn a_warm_start_begins_from_the_warm_model() {
        let rows: Vec<(String, String, f32)> = (0..60)
            .flat_map(|u| (0..10).map(move |k| (u, (u * 7 + k * 5) % 50)))
            .map(|(u, i)| (format!("u{u}"), format!("i{i}"), 1.0))
            .collect();
        let all =
            Interactions::from_triplets(rows.iter().map(|(u, i, v)| (u.as_str(), i.as_str(), *v)));
        // The warm model knows every other user.
        let part = Interactions::from_triplets(
            rows.iter()
                .filter(|(u, _, _)| u[1..].parse::<u32>().unwrap() % 2 == 0)
                .map(|(u, i, v)| (u.as_str(), i.as_str(), *v)),
        );
        let params = AlsParams {
            factors: 8,
            iterations: 15,
            regularization: 1.0,
            ..AlsParams::default()
        };
        let first = Als::fit(&part, params, |_, _| true).unwrap();
        let start = Als::fit_warm(
            &all,
            AlsParams {
                iterations: 0,
                ..params
            },
            &first,
            &part,
            |_, _| true,
        )
        .unwrap();
        let f = params.factors;
        for (row, id) in all.items.ids().iter().enumerate() {
            let w = part.items.get(id).unwrap() as usize;
            assert_eq!(
                start.item_factors[row * f..(row + 1) * f],
                first.item_factors[w * f..(w + 1) * f]
            );
        }
        let u1 = all.users.get("u1").unwrap() as usize;
        assert!(
            start.user_factors[u1 * f..(u1 + 1) * f]
                .iter()
                .all(|x| x.abs() < 0.1)
        );
        // Training loss: Σ over observed pairs (1 − score)² + unobserved score², on all data.
        let loss = |m: &Als| -> f64 {
            let mut total = 0.0;
            let mut scores = vec![0.0; m.n_items];
            for u in 0..m.n_users {
                m.scores_for(m.user_vector(u), &mut scores);
                let seen = all.row(u).items;
                for (i, s) in scores.iter().enumerate() {
                    let target = if seen.contains(&(i as u32)) { 1.0 } else { 0.0 };
                    total += f64::from(target - s).powi(2);
                }
            }
            total
        };
        let warm = Als::fit_warm(
            &all,
            AlsParams {
                iterations: 2,
                ..params
            },
            &first,
            &part,
            |_, _| true,
        )
        .unwrap();
        let cold = Als::fit(&all, params, |_, _| true).unwrap();
        let cold_two = Als::fit(
            &all,
            AlsParams {
                iterations: 2,
                ..params
            },
            |_, _| true,
        )
        .unwrap();
        let (w, c, c2) = (loss(&warm), loss(&cold), loss(&cold_two));
        assert!(w < c2, "two warm sweeps beat two cold ones: {w} vs {c2}");
        assert!(
            w < c * 1.1,
            "and come within 10 % of fifteen cold ones: {w} vs {c}"
        );
        let other = AlsParams {
            factors: 4,
            ..params
        };
        assert!(Als::fit_warm(&all, other, &first, &part, |_, _| true).is_err());
    }

    /// Scoring users together gives each user the scores of scoring them alone (up to
    /// rounding), in the order asked, and so does the one-by-one default of other models.
    #[test]
    fn scoring_users_together_equals_one_by_one() {
        let rows: Vec<(String, String)> = (0..30)
            .flat_map(|u| {
                (0..6).map(move |k| (format!("u{u}"), format!("i{}", (u * 3 + k * 7) % 25)))
            })
            .collect();
        let data =
            Interactions::from_triplets(rows.iter().map(|(u, i)| (u.as_str(), i.as_str(), 1.0)));
        let params = AlsParams {
            factors: 8,
            iterations: 3,
            regularization: 1.0,
            ..AlsParams::default()
        };
        let model = Als::fit(&data, params, |_, _| true).unwrap();
        let n = model.n_items;
        let users = [7, 0, 29, 7];
        let mut together = vec![f32::NAN; users.len() * n];
        model.score_many(&users, &data, &mut together);
        let knn = crate::ItemKnn::fit(&data, crate::ItemKnnParams::default()).unwrap();
        let mut default = vec![f32::NAN; users.len() * n];
        knn.score_many(&users, &data, &mut default);
        for (j, &u) in users.iter().enumerate() {
            let mut alone = vec![0f32; n];
            model.score(u, data.row(u), &mut alone);
            for (a, b) in alone.iter().zip(&together[j * n..(j + 1) * n]) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs()), "{a} vs {b}");
            }
            knn.score(u, data.row(u), &mut alone);
            assert_eq!(alone, default[j * n..(j + 1) * n]);
        }
    }

    /// Both ways rows can be solved (AVX2 with fused multiply-adds, or plain code) reach the
    /// same factors, up to rounding, for widths with and without their own kernels (64) and
    /// not a multiple of eight.
    #[test]
    fn every_solve_path_agrees() {
        for f in [13, 16, 40, 64] {
            let rows: Vec<(String, String, f32)> = (0..40)
                .flat_map(|u| (0..12).map(move |k| (u, (u * 7 + k * 5) % 60)))
                .map(|(u, i)| (format!("u{u}"), format!("i{i}"), 1.0 + (i % 3) as f32))
                .collect();
            let matrix = Interactions::from_triplets(
                rows.iter().map(|(u, i, v)| (u.as_str(), i.as_str(), *v)),
            );
            let n_items = matrix.n_items();
            let y: Vec<f32> = (0..n_items * f)
                .map(|k| ((k * 37 % 101) as f32 / 101.0 - 0.5) * 0.3)
                .collect();
            let yty = gram(&y, f, 2.0);
            let start: Vec<f32> = (0..matrix.n_users() * f)
                .map(|k| ((k * 13 % 29) as f32 / 29.0 - 0.5) * 0.1)
                .collect();
            let solve = |fma: bool| {
                let mut xs = start.clone();
                let mut s = Scratch::new(f);
                if fma {
                    solve_rows(&mut xs, 0, &matrix, &y, &yty, 2.0, 3, &mut s);
                } else {
                    solve_rows_body::<false>(&mut xs, 0, &matrix, &y, &yty, 2.0, 3, &mut s);
                }
                xs
            };
            let plain = solve(false);
            assert!(
                plain.iter().zip(&start).any(|(a, b)| (a - b).abs() > 1e-3),
                "it moved"
            );
            for (a, b) in plain.iter().zip(&solve(true)) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + a.abs()), "{a} vs {b}");
            }
        }
    }
}
