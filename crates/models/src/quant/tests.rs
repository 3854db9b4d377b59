//! The int8 pass against plain computations: sums bit for bit, hand-overs to the sink,
//! candidates against a brute-force top k.

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
