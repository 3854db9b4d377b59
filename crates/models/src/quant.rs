//! Item factors in 7-bit integers (one byte each) with one scale per item: a quarter of the
//! bytes of `f32` factors, for a fast approximate first pass of factor-model scoring whose
//! candidates are then scored exactly.
//!
//! `y[i] = a[i] · q[i] + r[i]` with `a[i] = max_f |y[i][f]| / 63` (`q` in −63..=63, `r` the
//! rounding left over), and per request the user vector `x = b · p + d` with `b =
//! max_f |x[f]| / 63` (`p` in −63..=63). Then
//!
//! `y[i] · x = a[i] · b · (q[i] · p) + a[i] · (q[i] · d) + r[i] · x`
//!
//! where the integer dot product is exact and the other two terms are bounded through
//! norms kept from quantisation (`‖a q‖₁`, `‖a q‖₂`, `‖r‖∞`, `‖r‖₂` at their largest over the
//! items) and the request's `‖d‖` and `‖x‖`.
//!
//! Layout: items in blocks of eight, and within a block the factors in groups of four, each
//! group 32 bytes holding four factors of each of the eight items in turn. On x86-64 with
//! AVX2 (checked at run time) one `vpmaddubsw` then multiplies a group of all eight items by
//! the user's four factors broadcast, leaving 16-bit sums of pairs of products; the sums of
//! two groups are added in 16 bits and one `vpmaddwd` against ones adds each item's pairs
//! into its own 32-bit lane: the eight sums of a block come out side by side, with no
//! horizontal additions. The user vector goes in as unsigned bytes `p + 64` (1..=127), and
//! the 64 · Σq[i] this adds is kept per item and taken off. Four products of at most
//! 127 · 63 sum to at most 32,004, so the 16-bit sums never saturate. With 8-bit items
//! (127 · 127) the sums of two groups could, and each group would need its own `vpmaddwd`: a
//! third more multiplications, which set the pace of the pass on the development machine,
//! for a bound about half as wide (45 candidates for the exact pass of a top 10 of 10,000
//! random factors instead of 70). Elsewhere a plain loop computes the same integers and the
//! same floating-point scores.

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
    /// The levels, starting at the first 64-byte boundary of the buffer (so no 32-byte
    /// load straddles two cache lines); see [`QuantizedFactors::levels`].
    q: Vec<i8>,
    len: usize,
    /// Per item (padded rows: 0), `a[i]`.
    scale: Vec<f32>,
    /// Per item, `USER_OFFSET · Σ_f q[i][f]`.
    offset: Vec<i32>,
    /// Largest `‖a q‖₁`, `‖a q‖₂`, `‖r‖∞`, `‖r‖₂` and `|y|` over the items.
    max_l1: f64,
    max_l2: f64,
    max_residual: f64,
    max_residual_l2: f64,
    max_abs: f64,
}

/// A request's quantised user vector and the bound on every item's score error.
struct User {
    b: f32,
    bound: f32,
}

/// Scratch space of [`QuantizedFactors::candidates`], kept between requests so a request
/// allocates nothing.
#[derive(Debug, Default)]
pub struct QuantScratch {
    user: Vec<u8>,
    scores: Vec<f32>,
    best: Vec<f32>,
}

impl QuantizedFactors {
    /// Quantises `factors` (`n` rows of `f`, row-major).
    pub fn new(factors: &[f32], n: usize, f: usize) -> Self {
        let groups = f.div_ceil(4).max(1);
        let rows = n.div_ceil(8) * 8;
        let len = rows * groups * 4;
        let mut q = vec![0_i8; len + LINE];
        let start = aligned_start(&q);
        let levels = &mut q[start..start + len];
        let mut scale = vec![0.0_f32; rows];
        let mut offset = vec![0_i32; rows];
        let (mut max_l1, mut max_l2, mut max_residual, mut max_residual_l2, mut max_abs) =
            (0.0_f64, 0.0_f64, 0.0_f64, 0.0_f64, 0.0_f64);
        for i in 0..n {
            let row = &factors[i * f..(i + 1) * f];
            let top = row.iter().fold(0.0_f32, |m, v| m.max(v.abs()));
            if !(top > 0.0 && top.is_finite()) {
                // A zero row scores zero exactly; a non-finite one is never a candidate
                // of the exact pass either way (its exact score is not finite).
                continue;
            }
            let a = top / ITEM_LEVELS;
            scale[i] = a;
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
            offset[i] = USER_OFFSET * sum;
            max_l1 = max_l1.max(l1);
            max_l2 = max_l2.max(l2.sqrt());
            max_residual = max_residual.max(res);
            max_residual_l2 = max_residual_l2.max(res2.sqrt());
            max_abs = max_abs.max(f64::from(top));
        }
        Self {
            n,
            f,
            groups,
            q,
            len,
            scale,
            offset,
            max_l1,
            max_l2,
            max_residual,
            max_residual_l2,
            max_abs,
        }
    }

    /// The levels in the block layout.
    fn levels(&self) -> &[i8] {
        let start = aligned_start(&self.q);
        &self.q[start..start + self.len]
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
            return Some(User { b: 0.0, bound: 0.0 });
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
        // f32 rounding, generously: in the approximate score (three roundings of a number at
        // most Σ|y||x|) and in the exact f32 dot product it is compared with.
        let f = self.f as f64;
        let rounding = 4.0 * f * f64::from(f32::EPSILON) * self.max_abs * x1 + 1e-30;
        let bound = (1.01 * (user_term + item_term) + rounding) as f32;
        Some(User {
            b,
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
        let mut all = vec![0.0; self.scale.len()];
        self.pass(&p, user.b, &mut all, &mut |_, _, _, t| t);
        out[..n].copy_from_slice(&all[..n]);
        user.bound
    }

    /// Into `out` (cleared; `(item, approximate score)`, in no order): every item not in
    /// `blocked` (sorted ascending) that could be among the `k` best by exact score `y[i] · x`
    /// — the items whose approximate score is within twice the error bound of the `k`-th
    /// best approximate score. Scoring `out` exactly and taking its best `k` gives the exact
    /// top k. `None` when `x` is not finite.
    ///
    /// Two passes: the approximate scores of every item, stored, with the `k`-th best of them
    /// over the items not left out kept as they go (a running threshold, so few items are
    /// looked at twice); then every item within the slack of it.
    pub fn candidates(
        &self,
        x: &[f32],
        k: usize,
        blocked: &[u32],
        scratch: &mut QuantScratch,
        out: &mut Vec<(u32, f32)>,
    ) -> Option<f32> {
        out.clear();
        let QuantScratch { user, scores, best } = scratch;
        let quantised = self.user(x, user)?;
        scores.resize(self.scale.len(), 0.0);
        let k = k.max(1);
        let n = self.n;
        let allowed = |i: usize| i < n && blocked.binary_search(&(i as u32)).is_err();
        best.clear();
        self.pass(
            user,
            quantised.b,
            scores,
            &mut |start, eight, mut mask, mut threshold| {
                while mask != 0 {
                    let r = mask.trailing_zeros() as usize;
                    mask &= mask - 1;
                    let s = eight[r];
                    if s >= threshold && allowed(start + r) {
                        let at = best.partition_point(|&b| b >= s);
                        best.insert(at, s);
                        best.truncate(k);
                        if best.len() == k {
                            threshold = best[k - 1];
                        }
                    }
                }
                threshold
            },
        );
        let scores = &scores[..self.n];
        let threshold = match best.get(k - 1) {
            // The rounding of the subtraction allowed for, downwards.
            Some(&tau) => tau - 2.0 * quantised.bound - tau.abs() * 4.0 * f32::EPSILON,
            None => f32::NEG_INFINITY,
        };
        scan(scores, threshold, &mut |i, s| {
            if allowed(i) {
                out.push((i as u32, s));
            }
        });
        Some(quantised.bound)
    }

    /// The approximate score of every item (padded rows included) into `out`; the blocks of
    /// eight with a score at or above a running threshold (initially −∞: every block) go to
    /// `sink(start, scores, mask, threshold)`, which returns the threshold from then on.
    fn pass(
        &self,
        p: &[u8],
        b: f32,
        out: &mut [f32],
        sink: &mut impl FnMut(usize, [f32; 8], u32, f32) -> f32,
    ) {
        #[cfg(target_arch = "x86_64")]
        if self.groups <= MAX_GROUPS
            && let Some(simd) = pulp::x86::V3::try_new()
        {
            // The common widths with the group count a constant (the indexing into a block
            // needs no bounds checks); any other width through the same code with a run-time
            // count.
            macro_rules! widths {
                ($($g:literal)*) => {
                    match self.groups {
                        $($g => simd.vectorize(
                            #[inline(always)]
                            || pass_v3(simd, self, $g, p, b, out, sink),
                        ),)*
                        groups => simd.vectorize(
                            #[inline(always)]
                            || pass_v3(simd, self, groups, p, b, out, sink),
                        ),
                    }
                };
            }
            widths!(4 8 16 32);
            return;
        }
        self.pass_scalar(p, b, out, sink);
    }

    /// The same integers and scores as the AVX2 pass, one product at a time.
    fn pass_scalar(
        &self,
        p: &[u8],
        b: f32,
        out: &mut [f32],
        sink: &mut impl FnMut(usize, [f32; 8], u32, f32) -> f32,
    ) {
        let mut threshold = f32::NEG_INFINITY;
        let block_len = self.groups * 32;
        for (block, (bytes, scores)) in self
            .levels()
            .chunks_exact(block_len)
            .zip(out.chunks_exact_mut(8))
            .enumerate()
        {
            let mut sums = [0_i32; 8];
            for (group, user) in bytes.chunks_exact(32).zip(p.chunks_exact(4)) {
                for (sum, item) in sums.iter_mut().zip(group.chunks_exact(4)) {
                    *sum += item
                        .iter()
                        .zip(user)
                        .map(|(&a, &c)| i32::from(a) * i32::from(c))
                        .sum::<i32>();
                }
            }
            let mut mask = 0;
            for (r, s) in scores.iter_mut().enumerate() {
                let i = block * 8 + r;
                *s = ((sums[r] - self.offset[i]) as f32 * self.scale[i]) * b;
                if *s >= threshold {
                    mask |= 1 << r;
                }
            }
            if mask != 0 {
                let eight = [0, 1, 2, 3, 4, 5, 6, 7].map(|r| scores[r]);
                threshold = sink(block * 8, eight, mask, threshold);
            }
        }
    }
}

/// Calls `hit(i, s)` for every score `s = scores[i]` at or above `threshold`, in order.
/// With AVX2, 32 scores are compared per step and a step without a hit (most of them: hits
/// are the few items within the error bound) costs one branch.
fn scan(scores: &[f32], threshold: f32, hit: &mut impl FnMut(usize, f32)) {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        simd.vectorize(
            #[inline(always)]
            || scan_v3(simd, scores, threshold, hit),
        );
        return;
    }
    scan_scalar(scores, 0, threshold, hit);
}

fn scan_scalar(scores: &[f32], start: usize, threshold: f32, hit: &mut impl FnMut(usize, f32)) {
    for (i, &s) in scores.iter().enumerate() {
        if s >= threshold {
            hit(start + i, s);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn scan_v3(simd: pulp::x86::V3, scores: &[f32], threshold: f32, hit: &mut impl FnMut(usize, f32)) {
    use std::arch::x86_64::__m256;
    let avx = simd.avx;
    let t = avx._mm256_set1_ps(threshold);
    // _CMP_GE_OQ: false for NaN.
    let mask = |v: &[f32; 8]| {
        let v: __m256 = pulp::cast(*v);
        avx._mm256_movemask_ps(avx._mm256_cmp_ps::<29>(v, t)) as u32
    };
    let (chunks, tail) = pulp::as_arrays::<32, f32>(scores);
    for (c, chunk) in chunks.iter().enumerate() {
        let (four, _) = pulp::as_arrays::<8, f32>(chunk);
        let mut hits =
            mask(&four[0]) | mask(&four[1]) << 8 | mask(&four[2]) << 16 | mask(&four[3]) << 24;
        while hits != 0 {
            let r = hits.trailing_zeros() as usize;
            hits &= hits - 1;
            hit(c * 32 + r, chunk[r]);
        }
    }
    scan_scalar(tail, chunks.len() * 32, threshold, hit);
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
        let start = aligned_start(&q);
        q[start..start + self.len].copy_from_slice(self.levels());
        Self {
            q,
            scale: self.scale.clone(),
            offset: self.offset.clone(),
            ..*self
        }
    }
}

/// Where factor `j` of item `i` lives in the block layout.
fn position(groups: usize, i: usize, j: usize) -> usize {
    (i / 8) * groups * 32 + (j / 4) * 32 + (i % 8) * 4 + j % 4
}

/// The AVX2 pass: per block of eight items, per group of four factors, `vpmaddubsw` of the
/// user's four factors (broadcast) with the group's 32 bytes and `vpmaddwd` against ones give
/// each item's four products summed in its lane; then the eight sums are scaled and compared
/// with the threshold in one go.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn pass_v3(
    simd: pulp::x86::V3,
    qf: &QuantizedFactors,
    groups: usize,
    p: &[u8],
    b: f32,
    out: &mut [f32],
    sink: &mut impl FnMut(usize, [f32; 8], u32, f32) -> f32,
) {
    use std::arch::x86_64::{__m256, __m256i};
    let mut threshold = f32::NEG_INFINITY;
    let (avx, avx2) = (simd.avx, simd.avx2);
    let zero: __m256i = pulp::cast([0_i32; 8]);
    let mut user = [zero; MAX_GROUPS];
    for (u, four) in user.iter_mut().zip(p.chunks_exact(4)) {
        *u = avx._mm256_set1_epi32(i32::from_le_bytes([four[0], four[1], four[2], four[3]]));
    }
    let user = &user[..groups];
    let ones = avx._mm256_set1_epi16(1);
    let bv = avx._mm256_set1_ps(b);
    let (chunks, _) = pulp::as_arrays::<32, i8>(qf.levels());
    let (scales, _) = pulp::as_arrays::<8, f32>(&qf.scale);
    let (offsets, _) = pulp::as_arrays::<8, i32>(&qf.offset);
    let (outs, _) = pulp::as_arrays_mut::<8, f32>(out);
    const QUEUE: usize = 32;
    let mut queue = [(0_usize, [0.0_f32; 8], 0_u32); QUEUE + 1];
    let mut queued = 0;
    let n_blocks = scales
        .len()
        .min(offsets.len())
        .min(outs.len())
        .min(chunks.len() / groups);
    // A block's integer sums (offset included) to scores, stored and compared.
    macro_rules! finish {
        ($block:expr, $sums:expr) => {{
            let block: usize = $block;
            let sums = avx2._mm256_sub_epi32($sums, pulp::cast(offsets[block]));
            let scores: __m256 = avx._mm256_mul_ps(
                avx._mm256_mul_ps(avx._mm256_cvtepi32_ps(sums), pulp::cast(scales[block])),
                bv,
            );
            outs[block] = pulp::cast(scores);
            // _CMP_GE_OQ: false for NaN.
            let hits = avx._mm256_cmp_ps::<29>(scores, avx._mm256_set1_ps(threshold));
            let mask = avx._mm256_movemask_ps(hits) as u32;
            // Blocks with hits are queued without a branch (the slot is written every time
            // and kept only when there is a hit) and handed over when the queue is full: a
            // branch per hit would be mispredicted and throw away the blocks in flight
            // behind it.
            queue[queued] = (block * 8, pulp::cast(scores), mask);
            queued += usize::from(mask != 0);
            if queued == QUEUE {
                for &(start, scores, mask) in &queue[..QUEUE] {
                    threshold = sink(start, scores, mask, threshold);
                }
                queued = 0;
            }
        }};
    }
    // Four blocks at a time, group by group: each broadcast user group is loaded once for
    // four blocks (sixteen of them do not fit in the sixteen registers), and the four
    // blocks' chains of additions are independent.
    const QUAD: usize = 4;
    let whole = n_blocks / QUAD * QUAD;
    // A loop the compiler does not unroll: unrolled, it hoists every multiplication of the
    // four blocks and spills most of them to the stack.
    let group_pairs = std::hint::black_box(groups / 2);
    for quad in (0..whole).step_by(QUAD) {
        let levels = &chunks[quad * groups..(quad + QUAD) * groups];
        let mut acc = [zero; QUAD];
        for pair in 0..group_pairs {
            let g = 2 * pair;
            let (u0, u1) = (user[g], user[g + 1]);
            for (b, acc) in acc.iter_mut().enumerate() {
                let t0 = avx2._mm256_maddubs_epi16(u0, pulp::cast(levels[b * groups + g]));
                let t1 = avx2._mm256_maddubs_epi16(u1, pulp::cast(levels[b * groups + g + 1]));
                let t = avx2._mm256_add_epi16(t0, t1);
                *acc = avx2._mm256_add_epi32(*acc, avx2._mm256_madd_epi16(t, ones));
            }
        }
        if groups % 2 == 1 {
            let u = user[groups - 1];
            for (b, acc) in acc.iter_mut().enumerate() {
                let t = avx2._mm256_maddubs_epi16(u, pulp::cast(levels[b * groups + groups - 1]));
                *acc = avx2._mm256_add_epi32(*acc, avx2._mm256_madd_epi16(t, ones));
            }
        }
        for (b, acc) in acc.into_iter().enumerate() {
            finish!(quad + b, acc);
        }
    }
    for block in whole..n_blocks {
        let levels = &chunks[block * groups..(block + 1) * groups];
        let mut acc = zero;
        let pairs = levels.chunks_exact(2).zip(user.chunks_exact(2));
        for (level, u) in pairs {
            let t0 = avx2._mm256_maddubs_epi16(u[0], pulp::cast(level[0]));
            let t1 = avx2._mm256_maddubs_epi16(u[1], pulp::cast(level[1]));
            let t = avx2._mm256_add_epi16(t0, t1);
            acc = avx2._mm256_add_epi32(acc, avx2._mm256_madd_epi16(t, ones));
        }
        if groups % 2 == 1 {
            let t = avx2._mm256_maddubs_epi16(user[groups - 1], pulp::cast(levels[groups - 1]));
            acc = avx2._mm256_add_epi32(acc, avx2._mm256_madd_epi16(t, ones));
        }
        finish!(block, acc);
    }
    for &(start, scores, mask) in &queue[..queued] {
        threshold = sink(start, scores, mask, threshold);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect()
    }

    fn exact(y: &[f32], x: &[f32], i: usize) -> f64 {
        let f = x.len();
        y[i * f..(i + 1) * f]
            .iter()
            .zip(x)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum()
    }

    #[test]
    fn quantised_scores_are_within_a_tight_bound() {
        for (n, f) in [(300, 40), (61, 64), (100, 7), (40, 130)] {
            let y = random(n * f, 12345 + f as u64);
            let x = random(f, 99);
            let qf = QuantizedFactors::new(&y, n, f);
            let mut approx = vec![0.0; n];
            let bound = qf.scores(&x, &mut approx);
            let mut worst = 0.0_f64;
            for (i, &a) in approx.iter().enumerate() {
                let err = (f64::from(a) - exact(&y, &x, i)).abs();
                worst = worst.max(err);
                assert!(
                    err <= f64::from(bound),
                    "{n}x{f} item {i}: error {err}, bound {bound}"
                );
            }
            // Every factor sits where the block layout says.
            for i in [0, n / 2, n - 1] {
                for j in 0..f {
                    let want = (y[i * f + j] / qf.scale[i]).round_ties_even() as i8;
                    assert_eq!(qf.level(i, j), want, "{n}x{f} item {i} factor {j}");
                }
            }
            // The bound is a bound, not a wild overestimate.
            assert!(
                f64::from(bound) < 20.0 * worst,
                "{n}x{f}: bound {bound}, worst {worst}"
            );
            // A zero user vector scores zero, exactly; a non-finite one has no bound.
            assert_eq!(qf.scores(&vec![0.0; f], &mut approx), 0.0);
            assert!(approx.iter().all(|&s| s == 0.0));
            let mut bad = x.clone();
            bad[0] = f32::NAN;
            assert!(qf.scores(&bad, &mut approx).is_infinite());
        }
    }

    #[test]
    fn the_simd_pass_and_the_plain_loop_agree_bit_for_bit() {
        for (n, f) in [(203, 64), (64, 32), (17, 100), (9, 30)] {
            let y = random(n * f, 7 + n as u64);
            let x = random(f, 3);
            let qf = QuantizedFactors::new(&y, n, f);
            let mut p = Vec::new();
            let user = qf.user(&x, &mut p).unwrap();
            let mut fast = vec![f32::NAN; qf.scale.len()];
            let mut plain = vec![f32::NAN; qf.scale.len()];
            qf.pass(&p, user.b, &mut fast, &mut |_, _, _, t| t);
            qf.pass_scalar(&p, user.b, &mut plain, &mut |_, _, _, t| t);
            assert!(fast.iter().all(|s| s.is_finite()));
            // A copy sits elsewhere in memory and scores the same.
            let mut copied = vec![f32::NAN; qf.scale.len()];
            qf.clone()
                .pass(&p, user.b, &mut copied, &mut |_, _, _, t| t);
            assert_eq!(copied, fast);
            assert_eq!(
                fast.iter().map(|s| s.to_bits()).collect::<Vec<_>>(),
                plain.iter().map(|s| s.to_bits()).collect::<Vec<_>>()
            );
            // The vector scan sees what the plain one sees, for thresholds that keep every
            // score, about half of them, a few, and none.
            let mut sorted = fast.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            let some = [sorted[sorted.len() / 2], sorted[3]];
            for threshold in [f32::NEG_INFINITY, some[0], some[1], f32::INFINITY] {
                let run = |vector: bool| {
                    let mut seen = Vec::new();
                    let mut hit = |i: usize, s: f32| seen.push((i, s.to_bits()));
                    if vector {
                        scan(&fast, threshold, &mut hit);
                    } else {
                        scan_scalar(&fast, 0, threshold, &mut hit);
                    }
                    seen
                };
                let plain = run(false);
                assert_eq!(run(true), plain);
                let expected = fast.iter().filter(|&&s| s >= threshold).count();
                assert_eq!(plain.len(), expected);
            }
        }
    }

    /// Scoring the candidates exactly gives the exact top k, whatever is left out, including
    /// when scores are close together (a user vector nearly orthogonal to most items).
    #[test]
    fn small_rounding_matches_the_standard_one() {
        let mut v = -70.0_f32;
        while v <= 70.0 {
            for w in [v, v + 0.5, v - 0.5, v + 0.499_999_97, v + 1e-3] {
                assert_eq!(round_small(w), w.round_ties_even(), "{w}");
            }
            v += 0.25;
        }
    }

    #[test]
    fn candidates_contain_the_exact_top_k() {
        let (n, f) = (3_000, 48);
        let mut y = random(n * f, 5);
        // Near-duplicates of one item, so many scores tie within the error bound.
        for i in (0..n).step_by(7) {
            for c in 0..f {
                y[i * f + c] = y[c] + 1e-4 * y[i * f + c];
            }
        }
        let qf = QuantizedFactors::new(&y, n, f);
        let (mut scratch, mut out) = (QuantScratch::default(), Vec::new());
        for round in 0..30_u64 {
            let x = random(f, 1_000 + round);
            let blocked: Vec<u32> = (0..n as u32)
                .filter(|i| i % (3 + round as u32) == 1)
                .collect();
            let k = 1 + (round as usize * 7) % 40;
            qf.candidates(&x, k, &blocked, &mut scratch, &mut out)
                .unwrap();
            let mut got: Vec<(u32, f64)> = out
                .iter()
                .map(|&(i, _)| (i, exact(&y, &x, i as usize)))
                .collect();
            got.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            got.truncate(k);
            let mut want: Vec<(u32, f64)> = (0..n as u32)
                .filter(|i| blocked.binary_search(i).is_err())
                .map(|i| (i, exact(&y, &x, i as usize)))
                .collect();
            want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            want.truncate(k);
            assert_eq!(got, want, "round {round}");
            assert!(out.len() < n / 4, "round {round}: {} candidates", out.len());
        }
        // More wanted than allowed: every allowed item.
        let blocked: Vec<u32> = (10..n as u32).collect();
        qf.candidates(&random(f, 1), 50, &blocked, &mut scratch, &mut out)
            .unwrap();
        let mut ids: Vec<u32> = out.iter().map(|c| c.0).collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..10).collect::<Vec<u32>>());
        let mut bad = random(f, 1);
        bad[3] = f32::INFINITY;
        assert!(
            qf.candidates(&bad, 5, &[], &mut scratch, &mut out)
                .is_none()
        );
    }
}
