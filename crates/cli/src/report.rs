//! `report.html`: one self-contained page (inline SVG, no JavaScript, no outside assets) with
//! the results of a training run: the metric by model, the metric by cut-off k, the time of
//! every ALS sweep, the validation grid, and the item statistics.

use crate::train::{TrainOutcome, params_text};
use std::fmt::Write as _;

/// Escapes text for HTML and SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const PALETTE: [&str; 6] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1",
];

const W: f64 = 640.0;
const H: f64 = 300.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 50.0;

/// A "nice" upper bound for an axis.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * mag >= v {
            return step * mag;
        }
    }
    10.0 * mag
}

fn axes(svg: &mut String, title: &str, y_label: &str, y_max: f64) {
    let plot_h = H - TOP - BOTTOM;
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="{t}"><title>{t}</title><text x="{x}" y="18" font-size="14" text-anchor="middle" font-weight="bold">{t}</text>"##,
        t = esc(title),
        x = W / 2.0
    );
    for tick in 0..=4 {
        let v = y_max * f64::from(tick) / 4.0;
        let y = TOP + plot_h * (1.0 - f64::from(tick) / 4.0);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{tx}" y="{ty:.1}" font-size="11" text-anchor="end">{v}</text>"##,
            x2 = W - RIGHT,
            tx = LEFT - 6.0,
            ty = y + 4.0,
            v = trim_number(v)
        );
    }
    let _ = write!(
        svg,
        r##"<text x="14" y="{y}" font-size="11" transform="rotate(-90 14 {y})" text-anchor="middle">{l}</text>"##,
        y = TOP + plot_h / 2.0,
        l = esc(y_label)
    );
}

fn trim_number(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A bar chart of one value per label.
pub fn bar_chart(title: &str, y_label: &str, bars: &[(String, f64)]) -> String {
    let mut svg = String::new();
    let y_max = nice_max(bars.iter().map(|b| b.1).fold(0.0, f64::max));
    axes(&mut svg, title, y_label, y_max);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let slot = plot_w / bars.len().max(1) as f64;
    for (i, (label, v)) in bars.iter().enumerate() {
        let h = plot_h * (v / y_max).clamp(0.0, 1.0);
        let x = LEFT + slot * i as f64 + slot * 0.15;
        let _ = write!(
            svg,
            r##"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{c}"><title>{l}: {v:.4}</title></rect><text x="{cx:.1}" y="{ly:.1}" font-size="11" text-anchor="middle">{l}</text><text x="{cx:.1}" y="{vy:.1}" font-size="10" text-anchor="middle">{v:.4}</text>"##,
            y = TOP + plot_h - h,
            w = slot * 0.7,
            c = PALETTE[i % PALETTE.len()],
            l = esc(label),
            cx = x + slot * 0.35,
            ly = H - BOTTOM + 16.0,
            vy = TOP + plot_h - h - 4.0,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A line chart: several named series over shared x values.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    xs: &[f64],
    series: &[(String, Vec<f64>)],
) -> String {
    let mut svg = String::new();
    let y_max = nice_max(
        series
            .iter()
            .flat_map(|s| s.1.iter().copied())
            .fold(0.0, f64::max),
    );
    axes(&mut svg, title, y_label, y_max);
    let plot_w = W - LEFT - RIGHT - 110.0;
    let plot_h = H - TOP - BOTTOM;
    let x_min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let x_max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = if x_max > x_min { x_max - x_min } else { 1.0 };
    let px = |x: f64| LEFT + plot_w * (x - x_min) / span;
    let py = |y: f64| TOP + plot_h * (1.0 - (y / y_max).clamp(0.0, 1.0));
    for &x in xs {
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"##,
            px(x),
            H - BOTTOM + 16.0,
            trim_number(x)
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"##,
        LEFT + plot_w / 2.0,
        H - 12.0,
        esc(x_label)
    );
    for (i, (name, ys)) in series.iter().enumerate() {
        let c = PALETTE[i % PALETTE.len()];
        let points: Vec<String> = xs
            .iter()
            .zip(ys)
            .map(|(&x, &y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = write!(
            svg,
            r##"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"##,
            points.join(" ")
        );
        for (&x, &y) in xs.iter().zip(ys) {
            let _ = write!(
                svg,
                r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"><title>{}: {} → {y:.4}</title></circle>"##,
                px(x),
                py(y),
                esc(name),
                trim_number(x)
            );
        }
        let ly = TOP + 14.0 * i as f64 + 6.0;
        let lx = W - RIGHT - 100.0;
        let _ = write!(
            svg,
            r##"<rect x="{lx}" y="{:.1}" width="10" height="10" fill="{c}"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"##,
            ly - 8.0,
            lx + 14.0,
            ly + 1.0,
            esc(name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The whole report page.
pub fn render(outcome: &TrainOutcome, config_toml: &str) -> String {
    let k = outcome.k;
    let mut html = String::new();
    let chosen = &outcome.results[outcome.chosen];
    let _ = write!(
        html,
        r##"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Training report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}tr.chosen{{background:#eef5ff}}pre{{background:#f6f6f6;padding:1em;overflow:auto}}figure{{margin:1.5em 0}}</style></head><body>
<h1>Training report</h1>
<p>Data: <b>{users}</b> users, <b>{items}</b> items, <b>{n}</b> interactions from <code>{source}</code>.
Test split: {train} training and {test} held-out interactions. Saved model: <b>{kind}</b>{dir}.</p>"##,
        users = outcome.users,
        items = outcome.items,
        n = outcome.interactions,
        source = esc(&outcome.source),
        train = outcome.train_interactions,
        test = outcome.test_interactions,
        kind = chosen.kind,
        dir = outcome
            .artifact_dir
            .as_ref()
            .map(|d| format!(" in <code>{}</code>", esc(&d.display().to_string())))
            .unwrap_or_default(),
    );
    let _ = write!(
        html,
        "<h2>Held-out metrics at k = {k}</h2><table><tr><th>model</th><th>P@{k}</th><th>R@{k}</th><th>nDCG@{k}</th><th>MAP@{k}</th><th>coverage</th><th>validation nDCG@{k}</th><th>fit (s)</th><th>parameters</th></tr>"
    );
    for (i, r) in outcome.results.iter().enumerate() {
        let m = r.at(k);
        let _ = write!(
            html,
            "<tr{}><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{:.3}</td><td>{:.4}</td><td>{:.2}</td><td>{}</td></tr>",
            if i == outcome.chosen {
                " class=\"chosen\""
            } else {
                ""
            },
            r.kind,
            m.precision,
            m.recall,
            m.ndcg,
            m.map,
            m.coverage,
            r.validation_ndcg(),
            r.fit_seconds,
            esc(&params_text(&r.candidate))
        );
    }
    html.push_str("</table>");
    for (kind, why) in &outcome.skipped {
        let _ = write!(html, "<p>Skipped {}: {}</p>", esc(kind), esc(why));
    }

    let bars: Vec<(String, f64)> = outcome
        .results
        .iter()
        .map(|r| (r.kind.to_owned(), r.at(k).ndcg))
        .collect();
    let _ = write!(
        html,
        "<figure>{}</figure>",
        bar_chart(
            &format!("nDCG@{k} by model (test split)"),
            &format!("nDCG@{k}"),
            &bars
        )
    );
    let xs: Vec<f64> = outcome.ks.iter().map(|&k| k as f64).collect();
    for (metric, pick) in [
        (
            "nDCG",
            (|m: &marquee_models::metrics::Metrics| m.ndcg) as fn(&_) -> f64,
        ),
        ("recall", |m| m.recall),
    ] {
        let series: Vec<(String, Vec<f64>)> = outcome
            .results
            .iter()
            .map(|r| (r.kind.to_owned(), r.test.iter().map(pick).collect()))
            .collect();
        let _ = write!(
            html,
            "<figure>{}</figure>",
            line_chart(&format!("{metric}@k by model"), "k", metric, &xs, &series)
        );
    }
    if let Some(als) = outcome
        .results
        .iter()
        .find(|r| r.kind == "als" && !r.iteration_seconds.is_empty())
    {
        let bars: Vec<(String, f64)> = als
            .iteration_seconds
            .iter()
            .enumerate()
            .map(|(i, s)| ((i + 1).to_string(), *s))
            .collect();
        let _ = write!(
            html,
            "<figure>{}</figure>",
            bar_chart(
                "ALS: seconds per sweep (users then items)",
                "seconds",
                &bars
            )
        );
    }
    let neural: Vec<&crate::train::ModelResult> = outcome
        .results
        .iter()
        .filter(|r| !r.loss_curve.is_empty())
        .collect();
    for r in &neural {
        let xs: Vec<f64> = (1..=r.loss_curve.len()).map(|e| e as f64).collect();
        let series = vec![(
            r.kind.to_owned(),
            r.loss_curve.iter().map(|&l| f64::from(l)).collect(),
        )];
        let per_epoch =
            r.iteration_seconds.iter().sum::<f64>() / r.iteration_seconds.len().max(1) as f64;
        let _ = write!(
            html,
            "<figure>{}<figcaption>{}: training loss per epoch on the training split ({per_epoch:.2} s per epoch)</figcaption></figure>",
            line_chart(
                &format!("{}: training loss", r.kind),
                "epoch",
                "loss",
                &xs,
                &series
            ),
            r.kind
        );
    }
    let fit_bars: Vec<(String, f64)> = outcome
        .results
        .iter()
        .map(|r| (r.kind.to_owned(), r.fit_seconds))
        .collect();
    let _ = write!(
        html,
        "<figure>{}</figure>",
        bar_chart("Fit time on the training split", "seconds", &fit_bars)
    );

    html.push_str("<h2>Validation grid</h2><p>Parameters were chosen on a validation split cut from the training split; the test split was not used to choose.</p><table><tr><th>model</th><th>parameters</th><th>validation nDCG</th><th>validation recall</th></tr>");
    for r in &outcome.results {
        for t in &r.trials {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.4}</td></tr>",
                r.kind,
                esc(&params_text(&t.candidate)),
                t.validation.ndcg,
                t.validation.recall
            );
        }
    }
    html.push_str("</table>");

    if !outcome.top_items.is_empty() {
        html.push_str("<h2>Trending items (last 7 days against the 7 before)</h2><table><tr><th>item</th><th>trending</th><th>users</th></tr>");
        for (item, score, users) in &outcome.top_items {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{score:.1}</td><td>{users}</td></tr>",
                esc(item)
            );
        }
        html.push_str("</table>");
    }
    if !outcome.top_pairs.is_empty() {
        html.push_str(
            "<h2>Bought together</h2><table><tr><th>item</th><th>item</th><th>orders</th></tr>",
        );
        for (a, b, n) in &outcome.top_pairs {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{n}</td></tr>",
                esc(a),
                esc(b)
            );
        }
        html.push_str("</table>");
    }
    let _ = writeln!(
        html,
        "<h2>Configuration</h2><pre>{}</pre></body></html>",
        esc(config_toml)
    );
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_scale_to_the_data_and_escape_labels() {
        let svg = bar_chart("t", "y", &[("a<b".into(), 0.5), ("c".into(), 0.25)]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("a&lt;b") && !svg.contains("a<b"));
        // The axis tops out at 0.5, so the first bar fills the plot height.
        assert!(svg.contains(&format!("height=\"{:.1}\"", H - TOP - BOTTOM)));
        let line = line_chart("t", "k", "y", &[1.0, 10.0], &[("m".into(), vec![0.1, 0.2])]);
        assert_eq!(line.matches("<circle").count(), 2);
        assert_eq!(nice_max(0.38), 0.5);
        assert_eq!(nice_max(7.0), 10.0);
    }
}
