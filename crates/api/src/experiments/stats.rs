//! The statistics of an experiment's comparison with its baseline: a two-proportion z-test
//! for CTR and conversion, Welch's t-test for revenue per user, the relative lift with its
//! 95 % interval, and a verdict in plain words.

/// A comparison of a variant with the baseline.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Comparison {
    pub variant: String,
    pub baseline: String,
    /// variant / baseline − 1 (0.12 is 12 % better).
    pub lift: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub p_value: f64,
}

/// Φ, the standard normal distribution function (erfc from W. J. Cody's rational
/// approximation as given in Numerical Recipes' `erfcc`: relative error below 1.2e-7).
pub fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 {
        1.0 - 0.5 * erfc
    } else {
        0.5 * erfc
    }
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, nine coefficients).
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The regularised incomplete beta function I_x(a, b), by its continued fraction (modified
/// Lentz), using the symmetry I_x(a, b) = 1 − I_{1−x}(b, a) where that converges faster.
fn incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    if x > (a + 1.0) / (a + b + 2.0) {
        return 1.0 - incomplete_beta(1.0 - x, b, a);
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp() / a;
    let tiny = 1e-300;
    let (mut c, mut d) = (1.0, 1.0 - (a + b) * x / (a + 1.0));
    if d.abs() < tiny {
        d = tiny;
    }
    d = 1.0 / d;
    let mut f = d;
    for m in 1..500 {
        let m = f64::from(m);
        let even = m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m));
        d = 1.0 + even * d;
        d = if d.abs() < tiny { 1.0 / tiny } else { 1.0 / d };
        c = 1.0 + even / c;
        if c.abs() < tiny {
            c = tiny;
        }
        f *= c * d;
        let odd = -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0));
        d = 1.0 + odd * d;
        d = if d.abs() < tiny { 1.0 / tiny } else { 1.0 / d };
        c = 1.0 + odd / c;
        if c.abs() < tiny {
            c = tiny;
        }
        let step = c * d;
        f *= step;
        if (step - 1.0).abs() < 1e-14 {
            break;
        }
    }
    front * f
}

/// The two-sided p-value of Student's t with `df` degrees of freedom.
pub fn t_two_sided_p(t: f64, df: f64) -> f64 {
    if !t.is_finite() {
        return 0.0;
    }
    incomplete_beta(df / (df + t * t), df / 2.0, 0.5)
}

/// The t quantile leaving `tail` in each tail (bisection on [`t_two_sided_p`]).
fn t_critical(df: f64, tail: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, 1_000.0);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_two_sided_p(mid, df) > 2.0 * tail {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Successes per trial compared between the baseline (`b`) and a variant (`v`): `x` successes
/// in `n` trials, `sq` the sum over trials of (successes in the trial)² (equal to `x` when a
/// trial has at most one success, as a click on an answer usually is).
///
/// The p-value is the two-proportion z-test with the pooled variance; for trials of 0 or 1
/// successes that is p̄(1 − p̄), and for trials that can hold several (an answer with two
/// items clicked) the pooled variance of the counts per trial, so the test stays honest. The
/// interval is that of the ratio of the two rates on the log scale (Katz's method), i.e. of
/// the lift. `None` when a side has no trials or no successes (nothing to compare yet).
pub fn proportions(b: (u64, u64, f64), v: (u64, u64, f64)) -> Option<(f64, f64, f64, f64)> {
    let ((x_b, n_b, sq_b), (x_v, n_v, sq_v)) = (b, v);
    if n_b == 0 || n_v == 0 || x_b == 0 || x_v == 0 {
        return None;
    }
    let (xb, nb, xv, nv) = (x_b as f64, n_b as f64, x_v as f64, n_v as f64);
    let (pb, pv) = (xb / nb, xv / nv);
    let pooled = (xb + xv) / (nb + nv);
    let pooled_var = ((sq_b.max(xb) + sq_v.max(xv)) / (nb + nv) - pooled * pooled).max(0.0);
    let se = (pooled_var * (1.0 / nb + 1.0 / nv)).sqrt();
    let p_value = if se > 0.0 {
        2.0 * (1.0 - normal_cdf(((pv - pb) / se).abs()))
    } else {
        1.0
    };
    let var = |sq: f64, x: f64, n: f64, p: f64| (sq.max(x) / n - p * p).max(0.0);
    let ratio = pv / pb;
    let se_log =
        (var(sq_v, xv, nv, pv) / (nv * pv * pv) + var(sq_b, xb, nb, pb) / (nb * pb * pb)).sqrt();
    let z = 1.959_963_984_540_054;
    Some((
        ratio - 1.0,
        (ratio.ln() - z * se_log).exp() - 1.0,
        (ratio.ln() + z * se_log).exp() - 1.0,
        p_value,
    ))
}

/// Welch's t-test of two means given each side's count, sum and sum of squares. The interval
/// is the difference's (t quantile at Welch–Satterthwaite degrees of freedom) divided by the
/// baseline mean. `None` when a side has fewer than two values or the baseline mean is 0.
pub fn welch(
    (n_b, sum_b, sq_b): (u64, f64, f64),
    (n_v, sum_v, sq_v): (u64, f64, f64),
) -> Option<(f64, f64, f64, f64)> {
    if n_b < 2 || n_v < 2 {
        return None;
    }
    let (nb, nv) = (n_b as f64, n_v as f64);
    let (mb, mv) = (sum_b / nb, sum_v / nv);
    if mb == 0.0 {
        return None;
    }
    let var = |sq: f64, m: f64, n: f64| ((sq - n * m * m) / (n - 1.0)).max(0.0);
    let (vb, vv) = (var(sq_b, mb, nb) / nb, var(sq_v, mv, nv) / nv);
    let se = (vb + vv).sqrt();
    if se == 0.0 {
        let p = if mv == mb { 1.0 } else { 0.0 };
        return Some((mv / mb - 1.0, mv / mb - 1.0, mv / mb - 1.0, p));
    }
    let df = (vb + vv).powi(2) / (vb * vb / (nb - 1.0) + vv * vv / (nv - 1.0));
    let t = (mv - mb) / se;
    let half = t_critical(df, 0.025) * se;
    Some((
        mv / mb - 1.0,
        (mv - mb - half) / mb,
        (mv - mb + half) / mb,
        t_two_sided_p(t, df),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn the_normal_distribution_matches_its_table() {
        assert!(close(normal_cdf(0.0), 0.5, 1e-7));
        assert!(close(normal_cdf(1.959_964), 0.975, 1e-6));
        assert!(close(normal_cdf(-1.0), 0.158_655_25, 1e-6));
        assert!(close(normal_cdf(3.0), 0.998_650_1, 1e-6));
    }

    #[test]
    fn student_t_p_values_match_their_table() {
        // t = 2.228 with 10 degrees of freedom is the two-sided 5 % point; 2.086 with 20.
        assert!(close(t_two_sided_p(2.228, 10.0), 0.05, 2e-4));
        assert!(close(t_two_sided_p(2.086, 20.0), 0.05, 2e-4));
        assert!(
            close(t_two_sided_p(1.0, 1.0), 0.5, 1e-9),
            "Cauchy: P(|T|>1)"
        );
        assert!(close(t_critical(10.0, 0.025), 2.228, 1e-3));
    }

    /// Hand-computed: 200/10,000 against 260/10,000. Pooled p = 0.023, se =
    /// sqrt(0.023 · 0.977 · 2/10,000) = 0.0021199, z = 0.006/0.0021199 = 2.8303, two-sided
    /// p = 0.00465. Ratio 1.3; se of its log = sqrt(0.974/260 + 0.98/200) = 0.093009, so the
    /// interval is 1.3 · exp(±1.96 · 0.093009) − 1 = [0.0834, 0.5598].
    #[test]
    fn two_proportions_match_hand_computed_values() {
        let (lift, lo, hi, p) = proportions((200, 10_000, 200.0), (260, 10_000, 260.0)).unwrap();
        assert!(close(lift, 0.3, 1e-12));
        assert!(close(p, 0.00465, 5e-5), "{p}");
        assert!(close(lo, 0.0834, 5e-4), "{lo}");
        assert!(close(hi, 0.5598, 5e-4), "{hi}");
        assert!(proportions((0, 10, 0.0), (3, 10, 3.0)).is_none());
    }

    /// Answers with several clicks each are more variable than single clicks: the same rates
    /// with the clicks bunched two per answer give a larger p-value and a wider interval.
    #[test]
    fn bunched_successes_widen_the_test() {
        let single = proportions((200, 10_000, 200.0), (260, 10_000, 260.0)).unwrap();
        let bunched = proportions((200, 10_000, 400.0), (260, 10_000, 520.0)).unwrap();
        assert!(bunched.3 > single.3, "{bunched:?} {single:?}");
        assert!(bunched.2 - bunched.1 > single.2 - single.1);
    }

    /// Hand-computed: baseline values 1, 2, 3, 4 (mean 2.5, variance 1.6667), variant
    /// 2, 4, 6, 8 (mean 5, variance 6.6667). se = sqrt(1.6667/4 + 6.6667/4) = 1.4434,
    /// t = 1.7321, df = 8.3333² ... = (0.41667 + 1.66667)² / (0.41667²/3 + 1.66667²/3) = 4.4118;
    /// two-sided p = 0.1517.
    #[test]
    fn welch_matches_hand_computed_values() {
        let b = (4, 10.0, 30.0);
        let v = (4, 20.0, 120.0);
        let (lift, lo, hi, p) = welch(b, v).unwrap();
        assert!(close(lift, 1.0, 1e-12));
        assert!(close(p, 0.1517, 2e-3), "{p}");
        assert!(
            lo < 0.0 && hi > 1.0,
            "the interval spans no effect: {lo} {hi}"
        );
        assert!(welch((1, 1.0, 1.0), v).is_none());
    }
}
