//! The kernels of the first pass: the plain loop, AVX2 (`vpmaddubsw` + `vpmaddwd`) and VNNI
//! (`vpdpbusd`), the one chosen at run time ([`Kernel`]), and the scan of stored sums.

use super::*;

/// The code that computes the first pass's integer sums. Every kernel gives the same
/// integers (the products and their sums are exact in all of them); they differ in speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kernel {
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
    pub(super) fn runs(self) -> bool {
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
    pub(super) fn available(groups: usize) -> impl Iterator<Item = Kernel> {
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
    pub(super) fn best(groups: usize) -> Kernel {
        Self::available(groups).next().unwrap_or(Kernel::Plain)
    }
}

/// Calls `hit(i, s)` for every sum `s = sums[i]` above `above`, in order. With AVX2, 32 sums
/// are compared per step and a step without a hit (most of them: hits are the few items
/// within the error bound) costs one branch.
pub(super) fn scan(sums: &[i32], above: i32, hit: &mut impl FnMut(usize, i32)) {
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

pub(super) fn scan_scalar(
    sums: &[i32],
    start: usize,
    above: i32,
    hit: &mut impl FnMut(usize, i32),
) {
    for (i, &s) in sums.iter().enumerate() {
        if s > above {
            hit(start + i, s);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn scan_v3(
    simd: pulp::x86::V3,
    sums: &[i32],
    above: i32,
    hit: &mut impl FnMut(usize, i32),
) {
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

/// The AVX2 pass: per block of eight items, per group of four factors, `vpmaddubsw` of the
/// user's four factors (broadcast) with the group's 32 bytes and `vpmaddwd` against ones give
/// each item's four products summed in its lane, on top of where the item's sum starts; the
/// sums of four blocks are stored and compared with the threshold in one go.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn pass_v3(
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
pub(super) const QUAD: usize = 4;

/// The end of a step of the SIMD passes: the sums of blocks `first..first + QUAD` stored
/// and compared with the threshold in one go (`mask`: one bit per sum above it), and one
/// branch for them all, rarely taken once the threshold is set; then every block with a hit
/// goes to the sink in order, which keeps the sums above the threshold as it rises. Returns
/// the threshold from then on.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn finish_step(
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
pub(super) fn pass_vnni(
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
