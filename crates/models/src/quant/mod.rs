//! Item factors in 7-bit integers (one byte each) under one scale, for a fast first pass of
//! factor-model scoring in integers whose candidates are then scored exactly.
//!
//! `y[i] = a · q[i] + r[i]` with `a = max_{i,f} |y[i][f]| / 63` (`q` in −63..=63, `r` the
//! rounding left over), and per request the user vector `x = b · p + d` with `b =
//! max_f |x[f]| / 63` (`p` in −63..=63). Then
//!
//! `y[i] · x = a · b · (q[i] · p) + a · (q[i] · d) + r[i] · x`
//!
//! where the integer dot product is exact and the other two terms are bounded through
//! norms kept from quantisation (`‖a q‖₁`, `‖a q‖₂`, `‖r‖∞`, `‖r‖₂` at their largest over the
//! items) and the request's `‖d‖` and `‖x‖`. The bound takes the largest of each norm over
//! the items, so a scale per item would not narrow it; one scale for all keeps the whole
//! pass in integers: the running threshold, the comparisons and the stored sums.
//!
//! Layout: items in blocks of eight, and within a block the factors in groups of four, each
//! group 32 bytes holding four factors of each of the eight items in turn. On x86-64 with
//! AVX2 (checked at run time) one `vpmaddubsw` then multiplies a group of all eight items by
//! the user's four factors broadcast, leaving 16-bit sums of pairs of products; the sums of
//! two groups are added in 16 bits and one `vpmaddwd` against ones adds each item's pairs
//! into its own 32-bit lane: the eight sums of a block come out side by side, with no
//! horizontal additions. The user vector goes in as unsigned bytes `p + 64` (1..=127), and
//! the 64 · Σq[i] this adds is where each item's sum starts from, negated. Four products of
//! at most 127 · 63 sum to at most 32,004, so the 16-bit sums never saturate. With 8-bit
//! items (127 · 127) the sums of two groups could, and each group would need its own
//! `vpmaddwd`: a third more multiplications, which set the pace of the pass on the
//! development machine, for a bound about half as wide (45 candidates for the exact pass of
//! a top 10 of 10,000 random factors instead of 70). Where the processor has VNNI (AVX-512
//! VNNI, or AVX-VNNI; checked at run time), one `vpdpbusd` per group does the multiplication
//! and both additions, straight into each item's 32-bit lane: two instructions per two groups
//! where AVX2 takes five, and the same integers. Elsewhere a plain loop computes them.

mod kernels;
#[cfg(test)]
mod tests;

use kernels::*;

/// The user offset that makes the quantised user vector unsigned.
const USER_OFFSET: i32 = 64;
/// Largest magnitude of a quantised user factor.
const USER_LEVELS: f32 = 63.0;
/// Largest magnitude of a quantised item factor.
const ITEM_LEVELS: f32 = 63.0;

/// Factor groups the AVX2 pass keeps the broadcast user vector for (256 factors).
const MAX_GROUPS: usize = 64;

/// Quantised item factors (`n` items × `f` factors; factors padded with zeros to a multiple
/// of 4, items to a multiple of 8), in the block layout above.
#[derive(Debug)]
pub struct QuantizedFactors {
    n: usize,
    f: usize,
    /// Groups of four factors.
    groups: usize,
    /// The fastest kernel this processor runs for them, chosen once here rather than per
    /// request.
    kernel: Kernel,
    /// The levels, starting at the first 64-byte boundary of the buffer (so no 32-byte
    /// load straddles two cache lines); see [`QuantizedFactors::levels`].
    q: Vec<i8>,
    len: usize,
    /// `a`, the value of one item level (0 when every factor is zero or not finite).
    scale: f32,
    /// Per item (padded rows: 0), `−USER_OFFSET · Σ_f q[i][f]`: where its sum starts, so the
    /// user offset's share comes out again.
    start: Vec<i32>,
    /// Largest `‖a q‖₁`, `‖a q‖₂`, `‖r‖∞`, `‖r‖₂` and `|y|` over the items.
    max_l1: f64,
    max_l2: f64,
    max_residual: f64,
    max_residual_l2: f64,
    max_abs: f64,
}

/// A request's quantised user vector: the value of one unit of the integer sums (`a · b`,
/// exact in `f64`) and the bound on every item's score error.
struct User {
    unit: f64,
    bound: f32,
}

/// Scratch space of [`QuantizedFactors::candidates`], kept between requests so a request
/// allocates nothing.
#[derive(Debug, Default)]
pub struct QuantScratch {
    user: Vec<u8>,
    sums: Vec<i32>,
    best: Vec<i32>,
    near: Vec<(u32, i32)>,
    /// One bit per item: left out of this request.
    left_out: Vec<u64>,
}

impl QuantizedFactors {
    /// Quantises `factors` (`n` rows of `f`, row-major). Rows with a factor that is not
    /// finite are left at zero: their exact score is not finite either, and the exact pass
    /// never answers with one.
    pub fn new(factors: &[f32], n: usize, f: usize) -> Self {
        let groups = f.div_ceil(4).max(1);
        let rows = n.div_ceil(8) * 8;
        let len = rows * groups * 4;
        let mut q = vec![0_i8; len + LINE];
        let at = aligned_start(&q);
        let levels = &mut q[at..at + len];
        let mut start = vec![0_i32; rows];
        let finite = |row: &[f32]| row.iter().all(|v| v.is_finite());
        let max_abs = (0..n)
            .map(|i| &factors[i * f..(i + 1) * f])
            .filter(|row| finite(row))
            .flatten()
            .fold(0.0_f32, |m, v| m.max(v.abs()));
        let a = max_abs / ITEM_LEVELS;
        let (mut max_l1, mut max_l2, mut max_residual, mut max_residual_l2) =
            (0.0_f64, 0.0_f64, 0.0_f64, 0.0_f64);
        for i in 0..n {
            let row = &factors[i * f..(i + 1) * f];
            if a == 0.0 || !finite(row) {
                continue;
            }
            let (mut l1, mut l2, mut res, mut res2, mut sum) = (0.0, 0.0, 0.0_f64, 0.0, 0_i32);
            for (j, &v) in row.iter().enumerate() {
                let level = (v / a).round_ties_even().clamp(-ITEM_LEVELS, ITEM_LEVELS);
                levels[position(groups, i, j)] = level as i8;
                sum += level as i32;
                let approx = f64::from(a) * f64::from(level);
                let residual = (f64::from(v) - approx).abs();
                l1 += approx.abs();
                l2 += approx * approx;
                res = res.max(residual);
                res2 += residual * residual;
            }
            start[i] = -USER_OFFSET * sum;
            max_l1 = max_l1.max(l1);
            max_l2 = max_l2.max(l2.sqrt());
            max_residual = max_residual.max(res);
            max_residual_l2 = max_residual_l2.max(res2.sqrt());
        }
        Self {
            n,
            f,
            groups,
            kernel: Kernel::best(groups),
            q,
            len,
            scale: a,
            start,
            max_l1,
            max_l2,
            max_residual,
            max_residual_l2,
            max_abs: f64::from(max_abs),
        }
    }

    /// The levels in the block layout.
    fn levels(&self) -> &[i8] {
        let at = aligned_start(&self.q);
        &self.q[at..at + self.len]
    }

    pub fn n_items(&self) -> usize {
        self.n
    }

    /// The quantised factor `j` of item `i`.
    #[cfg(test)]
    fn level(&self, i: usize, j: usize) -> i8 {
        self.levels()[position(self.groups, i, j)]
    }

    /// Quantises `x` into `p` (unsigned, offset); `None` when `x` is not finite.
    fn user(&self, x: &[f32], p: &mut Vec<u8>) -> Option<User> {
        let x = &x[..self.f];
        if !x.iter().all(|v| v.is_finite()) {
            return None;
        }
        let top = x.iter().fold(0.0_f32, |m, v| m.max(v.abs()));
        p.clear();
        p.resize(self.groups * 4, USER_OFFSET as u8);
        if top == 0.0 {
            return Some(User {
                unit: 0.0,
                bound: 0.0,
            });
        }
        let b = top / USER_LEVELS;
        let (mut d_max, mut d2, mut x1, mut x2) = (0.0_f64, 0.0_f64, 0.0_f64, 0.0_f64);
        for (dst, &v) in p.iter_mut().zip(x) {
            let level = round_small(v / b).clamp(-USER_LEVELS, USER_LEVELS);
            *dst = (level as i32 + USER_OFFSET) as u8;
            let d = (f64::from(v) - f64::from(b) * f64::from(level)).abs();
            d_max = d_max.max(d);
            d2 += d * d;
            x1 += f64::from(v).abs();
            x2 += f64::from(v) * f64::from(v);
        }
        // |a q · d| ≤ min(‖a q‖₁ ‖d‖∞, ‖a q‖₂ ‖d‖₂); |r · x| ≤ min(‖r‖∞ ‖x‖₁, ‖r‖₂ ‖x‖₂).
        let user_term = (self.max_l1 * d_max).min(self.max_l2 * d2.sqrt());
        let item_term = (self.max_residual * x1).min(self.max_residual_l2 * x2.sqrt());
        // f32 rounding, generously: in the exact f32 dot product the approximate score is
        // compared with (and in an approximate score handed out as an f32).
        let f = self.f as f64;
        let rounding = 4.0 * f * f64::from(f32::EPSILON) * self.max_abs * x1 + 1e-30;
        let bound = (1.01 * (user_term + item_term) + rounding) as f32;
        Some(User {
            // Both f32: the product is exact in f64.
            unit: f64::from(self.scale) * f64::from(b),
            bound: bound * (1.0 + 4.0 * f32::EPSILON),
        })
    }

    /// Approximate `out[i] ≈ y[i] · x` for every item; returns a bound on the error of each,
    /// `|out[i] − y[i] · x| ≤ bound` (`y[i] · x` exact, or as an `f32` dot product computes
    /// it). Infinite when `x` is not finite (`out` then all zero).
    pub fn scores(&self, x: &[f32], out: &mut [f32]) -> f32 {
        let n = self.n.min(out.len());
        let mut p = Vec::new();
        let Some(user) = self.user(x, &mut p) else {
            out[..n].fill(0.0);
            return f32::INFINITY;
        };
        let mut sums = vec![0; self.start.len()];
        self.pass(&p, &mut sums, &mut |_, _, above| above);
        for (o, &s) in out[..n].iter_mut().zip(&sums) {
            *o = (user.unit * f64::from(s)) as f32;
        }
        user.bound
    }

    /// Into `out` (cleared; `(item, exact score)`, in no order): every item not in `blocked`
    /// (in any order) that could be among the `k` best by exact score, scored by
    /// `exact(item)`, so that the best `k` of `out` are the exact top k. `None` when `x` is
    /// not finite.
    ///
    /// The approximate scores of every item go into the scratch, the `k`-th best of them
    /// over the items not left out kept as they go (a running threshold, so few items are
    /// looked at twice). Then the items within twice the error bound of that `k`-th best
    /// could be in the top k. Of those, the `k` best by approximate score are scored exactly
    /// first: the exact top k scores at least as well as the worst of them, so the rest need
    /// only be within one bound of that — about half as many rows scored exactly.
    ///
    /// `exact` is a `dyn` so that this function is compiled in this crate: instantiated in
    /// the engine's, the AVX2 pass was not inlined into its target-feature frame and ran its
    /// intrinsics as calls, 30 times slower.
    pub fn candidates(
        &self,
        x: &[f32],
        k: usize,
        blocked: &[u32],
        scratch: &mut QuantScratch,
        exact: &mut dyn FnMut(u32) -> f32,
        out: &mut Vec<(u32, f32)>,
    ) -> Option<()> {
        out.clear();
        let QuantScratch {
            user,
            sums,
            best,
            near,
            left_out,
        } = scratch;
        let quantised = self.user(x, user)?;
        sums.resize(self.start.len(), 0);
        let k = k.max(1);
        let n = self.n;
        // A bit per item rather than a binary search per look: the looks come in the pass
        // and the scan, where a chain of dependent loads holds up what follows.
        left_out.clear();
        left_out.resize(n.div_ceil(64), 0);
        for &b in blocked.iter().filter(|&&b| (b as usize) < n) {
            left_out[b as usize / 64] |= 1 << (b % 64);
        }
        let left_out = &*left_out;
        let allowed = |i: usize| i < n && left_out[i / 64] >> (i % 64) & 1 == 0;
        best.clear();
        self.pass(user, sums, &mut |start, eight, mut above| {
            for (r, &s) in eight.iter().enumerate() {
                if s > above && allowed(start + r) {
                    let at = best.partition_point(|&b| b >= s);
                    best.insert(at, s);
                    best.truncate(k);
                    if best.len() == k {
                        above = best[k - 1];
                    }
                }
            }
            above
        });
        // In units of the sums, rounded outwards (the sums are exact; so are their
        // differences from these, in f64).
        let slack = |bounds: f64| {
            if quantised.unit > 0.0 {
                bounds * f64::from(quantised.bound) / quantised.unit
            } else {
                f64::INFINITY
            }
        };
        let floor = |v: f64| v.floor().max(f64::from(i32::MIN)) as i32;
        let loose = match best.get(k - 1) {
            Some(&tau) => floor(f64::from(tau) - slack(2.0) - 1.0),
            None => i32::MIN,
        };
        near.clear();
        scan(&sums[..n], loose, &mut |i, s| {
            if allowed(i) {
                near.push((i as u32, s));
            }
        });
        if near.len() <= k {
            out.extend(near.iter().map(|&(i, _)| (i, exact(i))));
            return Some(());
        }
        near.select_nth_unstable_by(k - 1, |a, b| b.1.cmp(&a.1));
        let (first, rest) = near.split_at(k);
        out.extend(first.iter().map(|&(i, _)| (i, exact(i))));
        // Every item of the exact top k scores exactly at least as well as the worst of k
        // answerable items, so approximately at least that less the bound. (A score that is
        // not finite never answers: with one among the k, the rest are all scored.)
        let worst = out
            .iter()
            .try_fold(f32::INFINITY, |m, &(_, s)| s.is_finite().then(|| m.min(s)));
        let tight = match worst {
            Some(w) if quantised.unit > 0.0 => {
                floor(f64::from(w) / quantised.unit - slack(1.0) - 1.0)
            }
            _ => i32::MIN,
        };
        out.extend(
            rest.iter()
                .filter(|&&(_, s)| s > tight)
                .map(|&(i, _)| (i, exact(i))),
        );
        Some(())
    }

    /// The integer sum of every item (padded rows included) into `out`; the blocks of
    /// eight with a sum above a running threshold (initially `i32::MIN`: every block) go to
    /// `sink(start, sums, above)` in order, which returns the threshold from then on. (A
    /// block may be handed over whose sums the threshold rose above a few blocks before;
    /// the sink compares each sum itself.) Computed by the kernel chosen at quantisation;
    /// every kernel gives the same integers.
    fn pass(&self, p: &[u8], out: &mut [i32], sink: &mut impl FnMut(usize, [i32; 8], i32) -> i32) {
        self.pass_with(self.kernel, p, out, sink);
    }

    /// [`QuantizedFactors::pass`] by the given kernel, which this processor must run.
    fn pass_with(
        &self,
        kernel: Kernel,
        p: &[u8],
        out: &mut [i32],
        sink: &mut impl FnMut(usize, [i32; 8], i32) -> i32,
    ) {
        match kernel {
            Kernel::Plain => self.pass_scalar(p, out, sink),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                let simd = pulp::x86::V3::try_new().expect("the AVX2 kernel needs AVX2");
                assert!(self.groups <= MAX_GROUPS, "{} groups", self.groups);
                // The common widths with the group count a constant (the indexing into a
                // block needs no bounds checks); any other width through the same code with
                // a run-time count.
                macro_rules! widths {
                    ($($g:literal)*) => {
                        match self.groups {
                            $($g => simd.vectorize(
                                #[inline(always)]
                                || pass_v3(simd, self, $g, p, out, sink),
                            ),)*
                            groups => simd.vectorize(
                                #[inline(always)]
                                || pass_v3(simd, self, groups, p, out, sink),
                            ),
                        }
                    };
                }
                widths!(4 8 16 32);
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::AvxVnni | Kernel::Avx512Vnni => pass_vnni(kernel, self, p, out, sink),
        }
    }

    /// The same integers as the AVX2 pass, one product at a time.
    fn pass_scalar(
        &self,
        p: &[u8],
        out: &mut [i32],
        sink: &mut impl FnMut(usize, [i32; 8], i32) -> i32,
    ) {
        let mut above = i32::MIN;
        let block_len = self.groups * 32;
        for (block, (bytes, sums)) in self
            .levels()
            .chunks_exact(block_len)
            .zip(out.chunks_exact_mut(8))
            .enumerate()
        {
            for (r, sum) in sums.iter_mut().enumerate() {
                *sum = self.start[block * 8 + r];
            }
            for (group, user) in bytes.chunks_exact(32).zip(p.chunks_exact(4)) {
                for (sum, item) in sums.iter_mut().zip(group.chunks_exact(4)) {
                    *sum += item
                        .iter()
                        .zip(user)
                        .map(|(&a, &c)| i32::from(a) * i32::from(c))
                        .sum::<i32>();
                }
            }
            if sums.iter().any(|&s| s > above) {
                let eight = [0, 1, 2, 3, 4, 5, 6, 7].map(|r| sums[r]);
                above = sink(block * 8, eight, above);
            }
        }
    }
}

/// `v` rounded to the nearest integer, ties to even, for `|v| < 2²²` (the user's levels):
/// adding and taking off 1.5 · 2²³ leaves no fraction bits. The same as `round_ties_even`,
/// which the x86-64 baseline (no SSE4.1) compiles to a call into libm.
#[inline(always)]
fn round_small(v: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0;
    (v + SHIFT) - SHIFT
}

/// A cache line.
const LINE: usize = 64;

/// Where the levels start in a buffer of `len + LINE` bytes: its first cache-line boundary.
fn aligned_start(q: &[i8]) -> usize {
    q.as_ptr().align_offset(LINE).min(LINE - 1)
}

impl Clone for QuantizedFactors {
    /// A copy whose levels sit on its own buffer's first cache-line boundary.
    fn clone(&self) -> Self {
        let mut q = vec![0_i8; self.len + LINE];
        let at = aligned_start(&q);
        q[at..at + self.len].copy_from_slice(self.levels());
        Self {
            q,
            start: self.start.clone(),
            ..*self
        }
    }
}

/// Where factor `j` of item `i` lives in the block layout.
fn position(groups: usize, i: usize, j: usize) -> usize {
    (i / 8) * groups * 32 + (j / 4) * 32 + (i % 8) * 4 + j % 4
}
