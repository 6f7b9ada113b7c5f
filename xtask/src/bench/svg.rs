//! The latency distribution as an SVG picture: latency on a log scale against the percentile
//! on a "nines" scale (50, 90, 99, 99.9), one line per series, so that the tail is as readable
//! as the median.

use std::fmt::Write as _;

use super::stats::Latency;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
/// Points drawn per series at most.
const POINTS: usize = 1_500;
const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// Draws each `(name, latency)` series; empty series are left out.
pub fn latency_chart(title: &str, series: &[(&str, &Latency)]) -> String {
    let series: Vec<_> = series.iter().filter(|(_, l)| l.count() > 0).collect();
    let max_nines = series
        .iter()
        .map(|(_, l)| (l.count() as f64).log10())
        .fold(1.0_f64, f64::max)
        .min(4.0);
    let lowest = series
        .iter()
        .filter_map(|(_, l)| l.sorted_ms.first().copied())
        .fold(f64::INFINITY, f64::min)
        .max(0.01);
    // With no latency measured at all, an empty chart over 1 to 10 ms.
    let lowest = if lowest.is_finite() { lowest } else { 1.0 };
    let highest = series
        .iter()
        .map(|(_, l)| l.max())
        .fold(0.0_f64, f64::max)
        .max(lowest * 10.0);
    let (y_low, y_high) = (lowest.log10().floor(), highest.log10().ceil());

    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x_of = |nines: f64| LEFT + plot_w * (nines / max_nines).min(1.0);
    let y_of = |ms: f64| {
        let v = ms.max(lowest).log10();
        TOP + plot_h * (1.0 - (v - y_low) / (y_high - y_low))
    };

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="22" font-size="14">{}</text>"#,
        escape(title)
    );

    // The grid: a line per power of ten of latency, one per nine of percentile.
    let mut decade = y_low;
    while decade <= y_high {
        for step in [1.0, 2.0, 5.0] {
            let ms = 10f64.powf(decade) * step;
            if ms.log10() > y_high + 1e-9 {
                break;
            }
            let y = y_of(ms);
            let _ = writeln!(
                svg,
                r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                WIDTH - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                format_ms(ms)
            );
        }
        decade += 1.0;
    }
    let mut nines = 0.0;
    while nines <= max_nines + 1e-9 {
        let x = x_of(nines);
        let label = 100.0 * (1.0 - 10f64.powf(-nines));
        let label = format!("{label:.*}", (nines as usize).saturating_sub(2));
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">p{label}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 16.0,
        );
        nines += 1.0;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text><text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">latency (ms)</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 10.0,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );

    // One line per series, and its legend.
    for (index, (name, latency)) in series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let n = latency.count();
        let stride = n.div_ceil(POINTS).max(1);
        let mut points = String::new();
        for (i, ms) in latency.sorted_ms.iter().enumerate() {
            if i % stride != 0 && i != n - 1 {
                continue;
            }
            let fraction = i as f64 / n as f64;
            let nines = -(1.0 - fraction).max(1e-9).log10();
            let _ = write!(points, "{:.1},{:.1} ", x_of(nines), y_of(*ms));
        }
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.trim_end()
        );
        let y = TOP + 16.0 + 18.0 * index as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="14" height="4" fill="{colour}"/><text x="{:.1}" y="{:.1}">{} (p50 {}, p99 {}, max {})</text>"#,
            LEFT + 12.0,
            y - 4.0,
            LEFT + 32.0,
            y,
            escape(name),
            format_ms(latency.p50()),
            format_ms(latency.p99()),
            format_ms(latency.max())
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn format_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{} s", trim_number(ms / 1000.0))
    } else {
        format!("{} ms", trim_number(ms))
    }
}

fn trim_number(value: f64) -> String {
    let text = if value >= 10.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_has_a_line_and_a_legend_per_series() {
        let a = Latency::new((1..=1000).map(|i| f64::from(i) / 100.0).collect());
        let b = Latency::new(vec![3.0, 4.0, 40.0]);

        let svg = latency_chart("latency", &[("pipeline", &a), ("baseline", &b)]);

        assert!(svg.starts_with("<svg"), "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(
            svg.contains("pipeline (p50 5 ms, p99 9.9 ms, max 10 ms)"),
            "{svg}"
        );
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn a_run_without_latency_draws_an_empty_chart() {
        let none = Latency::new(Vec::new());
        let svg = latency_chart("latency", &[("pipeline", &none)]);
        assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 0);
    }

    #[test]
    fn numbers_lose_trailing_zeros() {
        assert_eq!(trim_number(5.0), "5");
        assert_eq!(trim_number(99.9), "100");
        assert_eq!(trim_number(0.25), "0.25");
        assert_eq!(format_ms(1500.0), "1.5 s");
    }
}
