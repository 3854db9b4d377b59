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

/// The code that computes the first pass's integer sums. Every kernel gives the same
/// integers (the products and their sums are exact in all of them); they differ in speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    /// One product at a time; any processor.
    Plain,
    /// AVX2: `vpmaddubsw` for pairs of products in 16 bits, two groups added, then `vpmaddwd`
    /// against ones into 32-bit lanes.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-VNNI (VEX, 16 registers): one `vpdpbusd` multiplies a group and adds each item's
    /// four products into its 32-bit lane, in place of the three instructions of AVX2.
    #[cfg(target_arch = "x86_64")]
    AvxVnni,
    /// The same instruction from AVX-512 VNNI on 256-bit registers (EVEX, 32 registers).
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
}

impl Kernel {
    /// Whether this processor runs the kernel.
    fn runs(self) -> bool {
        match self {
            Kernel::Plain => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => pulp::x86::V3::try_new().is_some(),
            #[cfg(target_arch = "x86_64")]
            Kernel::AvxVnni => {
                Kernel::Avx2.runs() && std::arch::is_x86_feature_detected!("avxvnni")
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Vnni => {
                Kernel::Avx2.runs()
                    && std::arch::is_x86_feature_detected!("avx512vnni")
                    && std::arch::is_x86_feature_detected!("avx512vl")
            }
        }
    }

    /// Every kernel this processor runs for `groups` groups of factors, fastest first (the
    /// plain loop last, always).
    fn available(groups: usize) -> impl Iterator<Item = Kernel> {
        #[cfg(target_arch = "x86_64")]
        let simd: &[Kernel] = if groups <= MAX_GROUPS {
            &[Kernel::Avx512Vnni, Kernel::AvxVnni, Kernel::Avx2]
        } else {
            &[]
        };
        #[cfg(not(target_arch = "x86_64"))]
        let simd: &[Kernel] = {
            let _ = groups;
            &[]
        };
        simd.iter()
            .copied()
            .filter(|k| k.runs())
            .chain([Kernel::Plain])
    }

    /// The fastest kernel this processor runs for `groups` groups of factors.
    fn best(groups: usize) -> Kernel {
        Self::available(groups).next().unwrap_or(Kernel::Plain)
    }
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

/// Calls `hit(i, s)` for every sum `s = sums[i]` above `above`, in order. With AVX2, 32 sums
/// are compared per step and a step without a hit (most of them: hits are the few items
/// within the error bound) costs one branch.
fn scan(sums: &[i32], above: i32, hit: &mut impl FnMut(usize, i32)) {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        simd.vectorize(
            #[inline(always)]
            || scan_v3(simd, sums, above, hit),
        );
        return;
    }
    scan_scalar(sums, 0, above, hit);
}

fn scan_scalar(sums: &[i32], start: usize, above: i32, hit: &mut impl FnMut(usize, i32)) {
    for (i, &s) in sums.iter().enumerate() {
        if s > above {
            hit(start + i, s);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn scan_v3(simd: pulp::x86::V3, sums: &[i32], above: i32, hit: &mut impl FnMut(usize, i32)) {
    use std::arch::x86_64::__m256i;
    let (avx, avx2) = (simd.avx, simd.avx2);
    let t = avx._mm256_set1_epi32(above);
    let mask = |v: &[i32; 8]| {
        let v: __m256i = pulp::cast(*v);
        avx._mm256_movemask_ps(pulp::cast(avx2._mm256_cmpgt_epi32(v, t))) as u32
    };
    let (chunks, tail) = pulp::as_arrays::<32, i32>(sums);
    for (c, chunk) in chunks.iter().enumerate() {
        let (four, _) = pulp::as_arrays::<8, i32>(chunk);
        let mut hits =
            mask(&four[0]) | mask(&four[1]) << 8 | mask(&four[2]) << 16 | mask(&four[3]) << 24;
        while hits != 0 {
            let r = hits.trailing_zeros() as usize;
            hits &= hits - 1;
            hit(c * 32 + r, chunk[r]);
        }
    }
    scan_scalar(tail, chunks.len() * 32, above, hit);
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

/// The AVX2 pass: per block of eight items, per group of four factors, `vpmaddubsw` of the
/// user's four factors (broadcast) with the group's 32 bytes and `vpmaddwd` against ones give
/// each item's four products summed in its lane, on top of where the item's sum starts; the
/// sums of four blocks are stored and compared with the threshold in one go.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn pass_v3(
    simd: pulp::x86::V3,
    qf: &QuantizedFactors,
    groups: usize,
    p: &[u8],
    out: &mut [i32],
    sink: &mut impl FnMut(usize, [i32; 8], i32) -> i32,
) {
    use std::arch::x86_64::{__m256i, _MM_HINT_T0};
    let mut above = i32::MIN;
    let (avx, avx2) = (simd.avx, simd.avx2);
    let zero: __m256i = pulp::cast([0_i32; 8]);
    let mut user = [zero; MAX_GROUPS];
    for (u, four) in user.iter_mut().zip(p.chunks_exact(4)) {
        *u = avx._mm256_set1_epi32(i32::from_le_bytes([four[0], four[1], four[2], four[3]]));
    }
    let user = &user[..groups];
    let ones = avx._mm256_set1_epi16(1);
    let (chunks, _) = pulp::as_arrays::<32, i8>(qf.levels());
    let (starts, _) = pulp::as_arrays::<8, i32>(&qf.start);
    let (outs, _) = pulp::as_arrays_mut::<8, i32>(out);
    let n_blocks = starts.len().min(outs.len()).min(chunks.len() / groups);
    // Eight bits per block: which of its sums are above the threshold.
    let mask = |sums: __m256i, above: i32| {
        let hits = avx2._mm256_cmpgt_epi32(sums, avx._mm256_set1_epi32(above));
        avx._mm256_movemask_ps(pulp::cast(hits)) as u32
    };
    // How many steps ahead the levels are fetched into L1: from 10,000 items up they do not
    // fit in L2 (512 KB on the machine this was measured on), and the hardware prefetcher
    // alone left the pass waiting on them.
    const AHEAD: usize = 2;
    let whole = n_blocks / QUAD * QUAD;
    // A loop the compiler does not unroll: unrolled, it hoists every multiplication of the
    // four blocks and spills most of them to the stack.
    let group_pairs = std::hint::black_box(groups / 2);
    for quad in (0..whole).step_by(QUAD) {
        let levels = &chunks[quad * groups..(quad + QUAD) * groups];
        let mut acc: [__m256i; QUAD] = std::array::from_fn(|b| pulp::cast(starts[quad + b]));
        for pair in 0..group_pairs {
            let g = 2 * pair;
            // One cache line per block per pair of groups: the same line AHEAD steps on (a
            // prefetch never faults, so the address may run past the end).
            let ahead = levels.as_ptr().wrapping_add(AHEAD * QUAD * groups + g);
            for b in 0..QUAD {
                let line = ahead.wrapping_add(b * groups).cast::<i8>();
                simd.sse._mm_prefetch::<_MM_HINT_T0>(line);
            }
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
        above = finish_step(acc, quad, outs, above, mask, sink);
    }
    for block in whole..n_blocks {
        let levels = &chunks[block * groups..(block + 1) * groups];
        let mut acc: __m256i = pulp::cast(starts[block]);
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
        outs[block] = pulp::cast(acc);
        if mask(acc, above) != 0 {
            above = sink(block * 8, outs[block], above);
        }
    }
}

/// Blocks of eight items per step of the SIMD passes, group by group: each broadcast user
/// group is loaded once for four blocks (sixteen of them do not fit in the sixteen AVX2
/// registers; eight measured slower with VNNI's thirty-two), and the blocks' chains of
/// additions are independent.
const QUAD: usize = 4;

/// The end of a step of the SIMD passes: the sums of blocks `first..first + QUAD` stored
/// and compared with the threshold in one go (`mask`: one bit per sum above it), and one
/// branch for them all, rarely taken once the threshold is set; then every block with a hit
/// goes to the sink in order, which keeps the sums above the threshold as it rises. Returns
/// the threshold from then on.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn finish_step(
    sums: [std::arch::x86_64::__m256i; QUAD],
    first: usize,
    outs: &mut [[i32; 8]],
    mut above: i32,
    mask: impl Fn(std::arch::x86_64::__m256i, i32) -> u32,
    sink: &mut impl FnMut(usize, [i32; 8], i32) -> i32,
) -> i32 {
    let mut hits = 0;
    for (b, &sum) in sums.iter().enumerate() {
        outs[first + b] = pulp::cast(sum);
        hits |= mask(sum, above) << (8 * b);
    }
    if hits != 0 {
        for b in 0..QUAD {
            if hits >> (8 * b) & 0xff != 0 {
                above = sink((first + b) * 8, outs[first + b], above);
            }
        }
    }
    above
}

/// Runs a VNNI kernel, after checking that this processor has its instructions.
///
/// The one place the crate calls code compiled for instructions the baseline target lacks
/// without pulp's safe wrappers (pulp 0.22 has none for `vpdpbusd`): the call needs `unsafe`,
/// and is sound because the features are detected at run time first.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn pass_vnni(
    kernel: Kernel,
    qf: &QuantizedFactors,
    p: &[u8],
    out: &mut [i32],
    sink: &mut impl FnMut(usize, [i32; 8], i32) -> i32,
) {
    assert!(
        kernel.runs() && qf.groups <= MAX_GROUPS,
        "{kernel:?} asked for on a processor without it, or for {} groups",
        qf.groups
    );
    // The common widths with the group count a constant (the indexing into a block needs
    // no bounds checks); any other width through the same code with a run-time count.
    macro_rules! widths {
        ($pass:ident) => {
            match qf.groups {
                16 => $pass::<16>(qf, p, out, sink),
                8 => $pass::<8>(qf, p, out, sink),
                32 => $pass::<32>(qf, p, out, sink),
                4 => $pass::<4>(qf, p, out, sink),
                _ => $pass::<0>(qf, p, out, sink),
            }
        };
    }
    match kernel {
        // SAFETY: `kernel.runs()` above: the processor has AVX2 and AVX-VNNI.
        Kernel::AvxVnni => unsafe { widths!(pass_avx_vnni) },
        // SAFETY: `kernel.runs()` above: the processor has AVX2, AVX-512 VNNI and VL.
        Kernel::Avx512Vnni => unsafe { widths!(pass_avx512_vnni) },
        _ => unreachable!("not a VNNI kernel: {kernel:?}"),
    }
}

/// The VNNI passes, one per instruction set: per block of eight items, per group of four
/// factors, one `vpdpbusd` multiplies the user's four factors (unsigned, broadcast) by the
/// group's 32 bytes and adds each item's four products into its 32-bit lane. Each block keeps
/// two sums (even and odd groups), so eight chains of additions are in flight for four
/// blocks and the instruction's latency is hidden. `G` is the group count when it is known
/// at compile time, 0 otherwise.
macro_rules! vnni_pass {
    ($name:ident, $features:literal, $dot:ident) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        fn $name<const G: usize>(
            qf: &QuantizedFactors,
            p: &[u8],
            out: &mut [i32],
            sink: &mut impl FnMut(usize, [i32; 8], i32) -> i32,
        ) {
            use std::arch::x86_64::*;
            let groups = if G == 0 { qf.groups } else { G };
            let mut above = i32::MIN;
            let mut user = [_mm256_setzero_si256(); MAX_GROUPS];
            for (u, four) in user.iter_mut().zip(p.chunks_exact(4)) {
                *u = _mm256_set1_epi32(i32::from_le_bytes([four[0], four[1], four[2], four[3]]));
            }
            let user = &user[..groups];
            let (chunks, _) = pulp::as_arrays::<32, i8>(qf.levels());
            let (starts, _) = pulp::as_arrays::<8, i32>(&qf.start);
            let (outs, _) = pulp::as_arrays_mut::<8, i32>(out);
            let n_blocks = starts.len().min(outs.len()).min(chunks.len() / groups);
            let mask = |sums: __m256i, above: i32| {
                let hits = _mm256_cmpgt_epi32(sums, _mm256_set1_epi32(above));
                _mm256_movemask_ps(_mm256_castsi256_ps(hits)) as u32
            };
            const AHEAD: usize = 2;
            let whole = n_blocks / QUAD * QUAD;
            for quad in (0..whole).step_by(QUAD) {
                let levels = &chunks[quad * groups..(quad + QUAD) * groups];
                let mut even: [__m256i; QUAD] =
                    std::array::from_fn(|b| pulp::cast(starts[quad + b]));
                let mut odd = [_mm256_setzero_si256(); QUAD];
                for pair in 0..groups / 2 {
                    let g = 2 * pair;
                    let ahead = levels.as_ptr().wrapping_add(AHEAD * QUAD * groups + g);
                    for b in 0..QUAD {
                        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(b * groups).cast::<i8>());
                    }
                    for b in 0..QUAD {
                        even[b] = $dot(even[b], user[g], pulp::cast(levels[b * groups + g]));
                        odd[b] = $dot(odd[b], user[g + 1], pulp::cast(levels[b * groups + g + 1]));
                    }
                }
                if groups % 2 == 1 {
                    let g = groups - 1;
                    for b in 0..QUAD {
                        even[b] = $dot(even[b], user[g], pulp::cast(levels[b * groups + g]));
                    }
                }
                let sums = std::array::from_fn(|b| _mm256_add_epi32(even[b], odd[b]));
                above = finish_step(sums, quad, outs, above, mask, sink);
            }
            for block in whole..n_blocks {
                let levels = &chunks[block * groups..(block + 1) * groups];
                let mut acc: __m256i = pulp::cast(starts[block]);
                for (level, &u) in levels.iter().zip(user) {
                    acc = $dot(acc, u, pulp::cast(*level));
                }
                outs[block] = pulp::cast(acc);
                if mask(acc, above) != 0 {
                    above = sink(block * 8, outs[block], above);
                }
            }
        }
    };
}

vnni_pass!(pass_avx_vnni, "avx2,avxvnni", _mm256_dpbusd_avx_epi32);
vnni_pass!(
    pass_avx512_vnni,
    "avx2,avx512vnni,avx512vl",
    _mm256_dpbusd_epi32
);

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
                    let want = (y[i * f + j] / qf.scale).round_ties_even() as i8;
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

    /// One kernel's pass: the sums, and every `(start, sums, threshold)` handed to the sink.
    type Run = (Vec<i32>, Vec<(usize, [i32; 8], i32)>);

    #[test]
    fn every_kernel_and_the_plain_loop_agree_bit_for_bit() {
        let shapes = [
            (2_003, 64),
            (203, 64),
            (64, 32),
            (17, 100),
            (9, 30),
            (41, 16),
            (77, 128),
            (35, 12),
        ];
        for (n, f) in shapes {
            let y = random(n * f, 7 + n as u64);
            let x = random(f, 3);
            let qf = QuantizedFactors::new(&y, n, f);
            let mut p = Vec::new();
            qf.user(&x, &mut p).unwrap();
            let rows = qf.start.len();
            let kernels: Vec<Kernel> = Kernel::available(qf.groups).collect();
            assert_eq!(kernels[0], qf.kernel);
            assert_eq!(kernels.last(), Some(&Kernel::Plain));
            // Every block goes to the sink while the threshold stays at its start; with a
            // threshold from the sink, exactly the blocks with a sum above it.
            let runs: Vec<Run> = kernels
                .iter()
                .map(|&kernel| {
                    let (mut out, mut seen, mut calls) = (vec![i32::MIN; rows], Vec::new(), 0);
                    let mut sink = |start: usize, eight: [i32; 8], above: i32| {
                        seen.push((start, eight, above));
                        calls += 1;
                        if calls < 3 {
                            above
                        } else {
                            eight[0].max(above)
                        }
                    };
                    qf.pass_with(kernel, &p, &mut out, &mut sink);
                    (out, seen)
                })
                .collect();
            let plain = &runs.last().unwrap().0;
            for ((out, _), kernel) in runs.iter().zip(&kernels) {
                assert_eq!(out, plain, "{n}x{f}: {kernel:?}");
            }
            // Blocks come in order with their own sums, and a block never handed over has
            // no sum above the last threshold.
            for (out, seen) in &runs {
                assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
                let last = seen.last().map_or(i32::MIN, |s| s.2.max(s.1[0]));
                for start in (0..rows).step_by(8) {
                    match seen.iter().find(|s| s.0 == start) {
                        Some((_, eight, _)) => assert_eq!(eight[..], out[start..start + 8]),
                        None => assert!(out[start..start + 8].iter().all(|&s| s <= last)),
                    }
                }
            }
            let fast = &runs[0].0;
            // A copy sits elsewhere in memory and sums the same.
            let mut copied = vec![0; rows];
            qf.clone().pass(&p, &mut copied, &mut |_, _, above| above);
            assert_eq!(&copied, fast);
            // The sums are the offset user levels times the item levels, less the offset's
            // share.
            for i in [0, n / 2, n - 1] {
                let want: i32 = (0..f)
                    .map(|j| i32::from(qf.level(i, j)) * (i32::from(p[j]) - USER_OFFSET))
                    .sum();
                assert_eq!(fast[i], want, "{n}x{f} item {i}");
            }
            // The vector scan sees what the plain one sees, for thresholds that keep every
            // sum, about half of them, a few, and none.
            let fast = &fast[..n];
            let mut sorted = fast.to_vec();
            sorted.sort_unstable_by(|a, b| b.cmp(a));
            let some = [sorted[sorted.len() / 2], sorted[3]];
            for above in [i32::MIN, some[0], some[1], i32::MAX] {
                let run = |vector: bool| {
                    let mut seen = Vec::new();
                    let mut hit = |i: usize, s: i32| seen.push((i, s));
                    if vector {
                        scan(fast, above, &mut hit);
                    } else {
                        scan_scalar(fast, 0, above, &mut hit);
                    }
                    seen
                };
                let plain = run(false);
                assert_eq!(run(true), plain);
                let expected = fast.iter().filter(|&&s| s > above).count();
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
        let (mut scored, mut within_two_bounds) = (0, 0);
        for round in 0..30_u64 {
            let x = random(f, 1_000 + round);
            let blocked: Vec<u32> = (0..n as u32)
                .filter(|i| i % (3 + round as u32) == 1)
                .collect();
            let k = 1 + (round as usize * 7) % 40;
            let mut calls = 0;
            let score = |i: u32| {
                calls += 1;
                crate::dot(&y[i as usize * f..(i as usize + 1) * f], &x)
            };
            // The left-out items in any order, some twice, and ids past the catalog.
            let mut given = blocked.clone();
            if round % 2 == 1 {
                given.reverse();
                given.extend_from_slice(&blocked[..blocked.len() / 2]);
                given.extend([n as u32, u32::MAX]);
            }
            qf.candidates(&x, k, &given, &mut scratch, &mut { score }, &mut out)
                .unwrap();
            // Each row scored once, and what was scored is what comes back.
            assert_eq!(calls, out.len(), "round {round}");
            for &(i, s) in &out {
                assert_eq!(s, crate::dot(&y[i as usize * f..(i as usize + 1) * f], &x));
            }
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
            // Fewer rows scored exactly than lie within twice the bound of the k-th best
            // approximate score.
            let mut approx = vec![0.0; n];
            let bound = qf.scores(&x, &mut approx);
            let mut allowed: Vec<f32> = (0..n)
                .filter(|&i| blocked.binary_search(&(i as u32)).is_err())
                .map(|i| approx[i])
                .collect();
            allowed.sort_by(|a, b| b.total_cmp(a));
            let tau = allowed[k - 1];
            within_two_bounds += allowed.iter().filter(|&&s| s >= tau - 2.0 * bound).count();
            scored += out.len();
            assert!(out.len() < n / 4, "round {round}: {} candidates", out.len());
        }
        assert!(
            scored * 4 < within_two_bounds * 3,
            "{scored} rows scored, {within_two_bounds} within two bounds"
        );
        // More wanted than allowed: every allowed item.
        let x = random(f, 1);
        let score = |i: u32| crate::dot(&y[i as usize * f..(i as usize + 1) * f], &x);
        let blocked: Vec<u32> = (10..n as u32).collect();
        qf.candidates(&x, 50, &blocked, &mut scratch, &mut { score }, &mut out)
            .unwrap();
        let mut ids: Vec<u32> = out.iter().map(|c| c.0).collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..10).collect::<Vec<u32>>());
        let mut bad = random(f, 1);
        bad[3] = f32::INFINITY;
        assert!(
            qf.candidates(&bad, 5, &[], &mut scratch, &mut { score }, &mut out)
                .is_none()
        );
    }

    /// Rows that are not finite score zero in the first pass, and exact scores that are not
    /// finite do not let the exact pass stop early: the best finite items still all come
    /// back.
    #[test]
    fn rows_that_are_not_finite_do_not_hide_the_top_k() {
        let (n, f) = (500, 32);
        // Every finite score negative, so the rows that are not finite (zero in the first
        // pass) are its best.
        let mut y: Vec<f32> = random(n * f, 77).iter().map(|v| v.abs()).collect();
        let x: Vec<f32> = random(f, 78).iter().map(|v| -v.abs()).collect();
        let score_of = |y: &[f32], i: usize| crate::dot(&y[i * f..(i + 1) * f], &x);
        for i in [10, 20, 30] {
            y[i * f + 5] = f32::NAN;
        }
        let mut order: Vec<usize> = (0..n).filter(|i| ![10, 20, 30].contains(i)).collect();
        order.sort_by(|&a, &b| score_of(&y, b).total_cmp(&score_of(&y, a)));
        let qf = QuantizedFactors::new(&y, n, f);
        let (mut scratch, mut out) = (QuantScratch::default(), Vec::new());
        let k = 5;
        qf.candidates(
            &x,
            k,
            &[],
            &mut scratch,
            &mut |i| score_of(&y, i as usize),
            &mut out,
        )
        .unwrap();
        let mut got: Vec<u32> = out
            .iter()
            .filter(|(_, s)| s.is_finite())
            .map(|&(i, _)| i)
            .collect();
        got.sort_by(|&a, &b| score_of(&y, b as usize).total_cmp(&score_of(&y, a as usize)));
        got.truncate(k);
        let want: Vec<u32> = order[..k].iter().map(|&i| i as u32).collect();
        assert_eq!(got, want);
    }
}
