//! Item factors in 8-bit integers with one scale per item: a quarter of the bytes of `f32`
//! factors, for a fast approximate first pass of ALS scoring whose best candidates are then
//! scored exactly.
//!
//! `y[i][f] ≈ q[i][f] · a[i]` with `a[i] = max_f |y[i][f]| / 127`, and the user vector
//! `x[f] ≈ p[f] · b` with `b = max_f |x[f]| / 32767` (16-bit), so
//! `y[i] · x ≈ a[i] · b · Σ_f q[i][f] · p[f]`, the sum exact in 32-bit integers. On x86-64
//! with AVX2 (checked at run time) sixteen products at a time are formed with `vpmaddwd`;
//! elsewhere a plain loop computes the same integers.

/// Quantised item factors (`n` items × `f` factors, rows padded to a multiple of 16).
#[derive(Debug, Clone)]
pub struct QuantizedFactors {
    n: usize,
    f: usize,
    /// Row length after padding with zeros.
    stride: usize,
    q: Vec<i8>,
    scale: Vec<f32>,
    /// The largest scale.
    max_scale: f32,
}

impl QuantizedFactors {
    /// Quantises `factors` (`n` rows of `f`, row-major).
    pub fn new(factors: &[f32], n: usize, f: usize) -> Self {
        let stride = f.div_ceil(16) * 16;
        let mut q = vec![0_i8; n * stride];
        let mut scale = vec![0.0_f32; n];
        for i in 0..n {
            let row = &factors[i * f..(i + 1) * f];
            let top = row.iter().fold(0.0_f32, |m, v| m.max(v.abs()));
            if top > 0.0 && top.is_finite() {
                let a = top / 127.0;
                scale[i] = a;
                for (dst, v) in q[i * stride..i * stride + f].iter_mut().zip(row) {
                    *dst = (v / a).round().clamp(-127.0, 127.0) as i8;
                }
            }
        }
        let max_scale = scale.iter().fold(0.0_f32, |m, &v| m.max(v));
        Self {
            n,
            f,
            stride,
            q,
            scale,
            max_scale,
        }
    }

    pub fn n_items(&self) -> usize {
        self.n
    }

    /// Approximate `out[i] ≈ y[i] · x` for every item; returns a bound on the error of each,
    /// `|out[i] − y[i] · x| ≤ bound` (`y[i] · x` computed exactly; an `f32` dot product is
    /// itself off by far less than the bound's rounding allowance).
    pub fn scores(&self, x: &[f32], out: &mut [f32]) -> f32 {
        let top = x[..self.f].iter().fold(0.0_f32, |m, v| m.max(v.abs()));
        let n = self.n.min(out.len());
        if top == 0.0 || !top.is_finite() {
            out[..n].fill(0.0);
            return if top == 0.0 { 0.0 } else { f32::INFINITY };
        }
        let b = top / 32_767.0;
        let mut p = vec![0_i16; self.stride];
        for (dst, v) in p.iter_mut().zip(&x[..self.f]) {
            *dst = (v / b).round().clamp(-32_767.0, 32_767.0) as i16;
        }
        let sums = &mut out[..n];
        dot_rows(&self.q[..n * self.stride], self.stride, &p, sums);
        for (o, a) in sums.iter_mut().zip(&self.scale) {
            *o *= a * b;
        }
        // y = q·a + e (|e| ≤ a/2 per factor), x = p·b + d (|d| ≤ b/2), so
        // |y·x − a·b·(q·p)| ≤ a·(b/2)·‖q‖₁ + (a/2)·b·‖p‖₁ + f·a·b/4, with ‖q‖₁ ≤ 127·f; plus
        // a generous allowance for f32 rounding in both the sums and the exact scores.
        let a = self.max_scale;
        let f = self.f as f32;
        let p1: f32 = p.iter().map(|&v| f32::from(v).abs()).sum();
        let x1: f32 = x[..self.f].iter().map(|v| v.abs()).sum();
        let quantisation = a * b * (127.0 * f / 2.0 + p1 / 2.0 + f / 4.0);
        let rounding = 4.0 * f * f32::EPSILON * (127.0 * a) * x1 + 1e-30;
        1.01 * quantisation + rounding
    }
}

/// `out[i] = Σ_f q[i][f] · p[f]` (as `f32`; exact: the integer sums stay far below 2^24 ·
/// 2^7), rows of `stride` (a multiple of 16).
fn dot_rows(q: &[i8], stride: usize, p: &[i16], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        simd.vectorize(
            #[inline(always)]
            || dot_rows_v3(simd, q, stride, p, out),
        );
        return;
    }
    for (o, row) in out.iter_mut().zip(q.chunks_exact(stride)) {
        let s: i32 = row
            .iter()
            .zip(p)
            .map(|(&a, &b)| i32::from(a) * i32::from(b))
            .sum();
        *o = s as f32;
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn dot_rows_v3(simd: pulp::x86::V3, q: &[i8], stride: usize, p: &[i16], out: &mut [f32]) {
    use pulp::{i8x16, i16x16};
    use std::arch::x86_64::__m256i;
    let (p_chunks, _) = pulp::as_arrays::<16, i16>(p);
    let p_vecs: Vec<__m256i> = p_chunks
        .iter()
        .map(|c| pulp::cast::<i16x16, __m256i>(pulp::cast(*c)))
        .collect();
    let avx2 = simd.avx2;
    let row_sum = |row: &[i8]| -> __m256i {
        let (chunks, _) = pulp::as_arrays::<16, i8>(row);
        let mut acc: __m256i = pulp::cast([0_i32; 8]);
        for (c, pv) in chunks.iter().zip(&p_vecs) {
            let wide = simd.convert_i8x16_to_i16x16(pulp::cast::<[i8; 16], i8x16>(*c));
            acc = avx2._mm256_add_epi32(acc, avx2._mm256_madd_epi16(pulp::cast(wide), *pv));
        }
        acc
    };
    // Eight rows at a time: their eight partial-sum vectors are folded into one vector of
    // eight row sums (three rounds of pairwise adds and a swap of halves).
    let mut rows = q.chunks_exact(stride * 8);
    let mut outs = out.chunks_exact_mut(8);
    for (block, o) in rows.by_ref().zip(outs.by_ref()) {
        let a: [__m256i; 8] =
            std::array::from_fn(|r| row_sum(&block[r * stride..(r + 1) * stride]));
        let h01 = avx2._mm256_hadd_epi32(a[0], a[1]);
        let h23 = avx2._mm256_hadd_epi32(a[2], a[3]);
        let h45 = avx2._mm256_hadd_epi32(a[4], a[5]);
        let h67 = avx2._mm256_hadd_epi32(a[6], a[7]);
        let h0123 = avx2._mm256_hadd_epi32(h01, h23);
        let h4567 = avx2._mm256_hadd_epi32(h45, h67);
        let low = avx2._mm256_permute2x128_si256::<0x20>(h0123, h4567);
        let high = avx2._mm256_permute2x128_si256::<0x31>(h0123, h4567);
        let sums: [i32; 8] = pulp::cast(avx2._mm256_add_epi32(low, high));
        for (dst, s) in o.iter_mut().zip(sums) {
            *dst = s as f32;
        }
    }
    let done = out.len() / 8 * 8;
    for (o, row) in out[done..]
        .iter_mut()
        .zip(q[done * stride..].chunks_exact(stride))
    {
        let lanes: [i32; 8] = pulp::cast(row_sum(row));
        *o = lanes.iter().sum::<i32>() as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantised_scores_are_close_and_integer_sums_exact() {
        let (n, f) = (300, 40);
        let mut state = 12345_u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let y: Vec<f32> = (0..n * f).map(|_| next()).collect();
        let x: Vec<f32> = (0..f).map(|_| next()).collect();
        let qf = QuantizedFactors::new(&y, n, f);
        let mut approx = vec![0.0; n];
        let bound = qf.scores(&x, &mut approx);
        let mut worst = 0.0_f64;
        for i in 0..n {
            let exact: f64 = y[i * f..(i + 1) * f]
                .iter()
                .zip(&x)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum();
            let err = (f64::from(approx[i]) - exact).abs();
            worst = worst.max(err);
            assert!(
                err <= f64::from(bound),
                "item {i}: {} vs {exact} (bound {bound})",
                approx[i]
            );
        }
        // The bound is a bound, not a wild overestimate.
        assert!(
            f64::from(bound) < 50.0 * worst.max(1e-6),
            "bound {bound}, worst {worst}"
        );
        // The SIMD path and the plain loop give the same integers.
        let p: Vec<i16> = (0..qf.stride).map(|k| (k as i16 - 20) * 700).collect();
        let mut fast = vec![0.0; n];
        dot_rows(&qf.q, qf.stride, &p, &mut fast);
        for (i, row) in qf.q.chunks_exact(qf.stride).enumerate() {
            let s: i32 = row
                .iter()
                .zip(&p)
                .map(|(&a, &b)| i32::from(a) * i32::from(b))
                .sum();
            assert_eq!(fast[i], s as f32);
        }
        // A zero user vector scores zero, exactly.
        assert_eq!(qf.scores(&vec![0.0; f], &mut approx), 0.0);
        assert!(approx.iter().all(|&s| s == 0.0));
    }
}
