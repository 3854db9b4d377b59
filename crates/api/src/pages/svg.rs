//! Inline SVG charts, drawn in Rust: vertical bars (one series) and grouped bars (several
//! series per category). They scale to their container's width and carry a text alternative
//! (`role="img"`, a `<title>`, and each bar's value as a tooltip).

use maud::{Markup, html};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 44.0;
/// Series colours (colour-blind safe: blue, orange, grey, teal).
const COLOURS: [&str; 4] = ["#2563eb", "#ea7317", "#7b8794", "#0f9d8f"];

/// One category on the x axis with a value per series.
pub(crate) struct Group {
    pub label: String,
    pub values: Vec<f64>,
}

/// A bar chart: one bar per group and series (`rect.bar`; values that are not finite, such
/// as a metric a version lacks, get none), the y axis from 0 to the largest value, labelled
/// with `fmt`. `series` names the series (a legend is drawn for more than one).
pub(crate) fn bars(
    title: &str,
    series: &[&str],
    groups: &[Group],
    fmt: &dyn Fn(f64) -> String,
) -> Markup {
    let top = top_of(groups);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / groups.len().max(1) as f64;
    let n = series.len().max(1) as f64;
    let bar_w = (slot * 0.8 / n).max(1.0);
    // Show at most ~12 x labels, so long histories stay legible.
    let label_every = groups.len().div_ceil(12).max(1);
    let y = |v: f64| TOP + plot_h * (1.0 - (v / top).clamp(0.0, 1.0));
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(title)
            xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            @for frac in [0.0, 0.5, 1.0] {
                line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y(top * frac)) y2=(y(top * frac))
                    stroke="#e4e7eb" {}
                text x=(LEFT - 6.0) y=(y(top * frac) + 4.0) text-anchor="end" { (fmt(top * frac)) }
            }
            @for (g, group) in groups.iter().enumerate() {
                @for (s, value) in group.values.iter().enumerate().filter(|(_, v)| v.is_finite()) {
                    @let v = value.max(0.0);
                    @let x = LEFT + slot * g as f64 + slot * 0.1 + bar_w * s as f64;
                    rect.bar x=(fmt1(x)) y=(fmt1(y(v))) width=(fmt1(bar_w)) height=(fmt1(y(0.0) - y(v)))
                        fill=(COLOURS[s % COLOURS.len()]) data-value=(v) {
                        title { (group.label) ": " (series.get(s).copied().unwrap_or("")) " " (fmt(v)) }
                    }
                }
                @if g % label_every == 0 {
                    text x=(fmt1(LEFT + slot * (g as f64 + 0.5))) y=(HEIGHT - BOTTOM + 16.0)
                        text-anchor="middle" { (group.label) }
                }
            }
            @if series.len() > 1 {
                @for (s, name) in series.iter().enumerate() {
                    rect x=(LEFT + 150.0 * s as f64) y=(HEIGHT - 14.0) width="10" height="10"
                        fill=(COLOURS[s % COLOURS.len()]) {}
                    text x=(LEFT + 14.0 + 150.0 * s as f64) y=(HEIGHT - 5.0) { (name) }
                }
            }
        }
    }
}

/// A line chart: one polyline per series over the groups (x: the groups in order; y: from 0
/// to the largest value, labelled with `fmt`), a dot with its value as a tooltip at each
/// point; values that are not finite break no line but draw no dot.
pub(crate) fn lines(
    title: &str,
    series: &[&str],
    groups: &[Group],
    fmt: &dyn Fn(f64) -> String,
) -> Markup {
    let top = top_of(groups);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let step = plot_w / groups.len().max(1) as f64;
    let x = |g: usize| LEFT + step * (g as f64 + 0.5);
    let y = |v: f64| TOP + plot_h * (1.0 - (v / top).clamp(0.0, 1.0));
    let label_every = groups.len().div_ceil(12).max(1);
    let points = |s: usize| -> Vec<(usize, f64)> {
        groups
            .iter()
            .enumerate()
            .filter_map(|(g, group)| {
                let v = *group.values.get(s)?;
                v.is_finite().then_some((g, v.max(0.0)))
            })
            .collect()
    };
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(title)
            xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            @for frac in [0.0, 0.5, 1.0] {
                line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y(top * frac)) y2=(y(top * frac))
                    stroke="#e4e7eb" {}
                text x=(LEFT - 6.0) y=(y(top * frac) + 4.0) text-anchor="end" { (fmt(top * frac)) }
            }
            @for (s, name) in series.iter().enumerate() {
                @let pts = points(s);
                @let colour = COLOURS[s % COLOURS.len()];
                polyline.line fill="none" stroke=(colour) stroke-width="2"
                    points=(pts.iter().map(|&(g, v)| format!("{},{}", fmt1(x(g)), fmt1(y(v)))).collect::<Vec<_>>().join(" ")) {}
                @for (g, v) in pts {
                    circle.point cx=(fmt1(x(g))) cy=(fmt1(y(v))) r="3" fill=(colour) data-value=(v) {
                        title { (groups[g].label) ": " (name) " " (fmt(v)) }
                    }
                }
            }
            @for (g, group) in groups.iter().enumerate() {
                @if g % label_every == 0 {
                    text x=(fmt1(x(g))) y=(HEIGHT - BOTTOM + 16.0) text-anchor="middle" { (group.label) }
                }
            }
            @for (s, name) in series.iter().enumerate() {
                rect x=(LEFT + 150.0 * s as f64) y=(HEIGHT - 14.0) width="10" height="10"
                    fill=(COLOURS[s % COLOURS.len()]) {}
                text x=(LEFT + 14.0 + 150.0 * s as f64) y=(HEIGHT - 5.0) { (name) }
            }
        }
    }
}

/// The largest finite value of the groups (1 when there is none above 0): the y axis' top.
fn top_of(groups: &[Group]) -> f64 {
    let top = groups
        .iter()
        .flat_map(|g| g.values.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    if top > 0.0 { top } else { 1.0 }
}

fn fmt1(v: f64) -> String {
    format!("{v:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_put_each_point_at_its_value() {
        let groups: Vec<Group> = [("d1", 0.5), ("d2", 1.0), ("d3", f64::NAN)]
            .into_iter()
            .map(|(l, v)| Group {
                label: l.into(),
                values: vec![v],
            })
            .collect();
        let svg = lines("CTR", &["ctr"], &groups, &|v| format!("{v:.2}")).into_string();
        assert_eq!(svg.matches("<circle").count(), 2, "{svg}");
        let plot_h = HEIGHT - TOP - BOTTOM;
        assert!(
            svg.contains(&format!("cy=\"{TOP:.1}\"")),
            "the top value: {svg}"
        );
        assert!(
            svg.contains(&format!("cy=\"{:.1}\"", TOP + plot_h / 2.0)),
            "{svg}"
        );
        assert!(!svg.contains("NaN"), "{svg}");
    }

    #[test]
    fn bars_are_as_tall_as_their_values_and_escaped() {
        let groups = vec![
            Group {
                label: "2024-01".into(),
                values: vec![50.0],
            },
            Group {
                label: "<b>".into(),
                values: vec![100.0],
            },
        ];
        let svg = bars("Revenue", &["revenue"], &groups, &|v| format!("{v:.0}")).into_string();
        let plot_h = HEIGHT - TOP - BOTTOM;
        assert!(svg.contains(&format!("height=\"{plot_h:.1}\"")), "{svg}");
        assert!(
            svg.contains(&format!("height=\"{:.1}\"", plot_h / 2.0)),
            "{svg}"
        );
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"), "{svg}");
        // No data: no division by zero, no NaN; a missing value draws no bar.
        let empty = bars("None", &["a", "b"], &[], &|v| v.to_string()).into_string();
        assert!(!empty.contains("NaN"), "{empty}");
        let gap = vec![Group {
            label: "v1".into(),
            values: vec![f64::NAN, 0.5],
        }];
        let one = bars("Gap", &["a", "b"], &gap, &|v| v.to_string()).into_string();
        assert_eq!(one.matches("class=\"bar\"").count(), 1, "{one}");
        assert!(!one.contains("NaN"), "{one}");
    }
}
