//! The figures of a run beside the baseline of the same run, judged against the targets, and
//! written as a table to the terminal and as JSON, Markdown and an SVG picture to a folder.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::baseline::Baseline;
use super::fan_out::FanOut;
use super::sink::Tally;
use super::small::Small;
use super::steady::Steady;
use super::svg;
use super::{BenchArgs, Sizes};

pub struct Report {
    quick: bool,
    settings: Value,
    sizes: Sizes,
    date: String,
    load: String,
    /// The load when the last scenario ended: others' work on a shared machine shows here.
    load_end: Option<String>,
    pub baseline: Option<Baseline>,
    pub fan_out: Option<FanOut>,
    pub small: Option<Small>,
    pub steady: Option<Steady>,
}

/// One line of the table.
struct Row {
    figure: String,
    value: String,
    baseline: String,
    ratio: String,
    target: String,
    met: Option<bool>,
}

impl Report {
    pub fn new(args: &BenchArgs, sizes: Sizes) -> Report {
        Report {
            quick: args.quick,
            settings: json!({
                "prefetch": args.prefetch,
                "chunk_size": args.chunk_size,
                "render_workers": args.render_workers,
                "webhook_workers": args.webhook_workers,
                "clients": args.clients,
                "queue_type": std::env::var("NOTIFY_QUEUE_TYPE").unwrap_or_else(|_| "quorum".into()),
            }),
            sizes,
            date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            load: machine_load(),
            load_end: None,
            baseline: None,
            fan_out: None,
            small: None,
            steady: None,
        }
    }

    fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        let base = self.baseline.as_ref();
        let base_rate = base.map(|b| b.messages_per_s);
        let ratio = |value: f64, of: Option<f64>| {
            of.filter(|b| *b > 0.0)
                .map_or("–".into(), |b| format!("{:.2}×", value / b))
        };
        let shown = |of: Option<f64>, unit: &str| of.map_or("–".into(), |v| number(v, unit));

        if let Some(b) = base {
            rows.push(Row {
                figure: format!("baseline chain ({} hops) messages/s", b.hops),
                value: number(b.messages_per_s, "/s"),
                baseline: "–".into(),
                ratio: "1×".into(),
                target: "–".into(),
                met: None,
            });
            rows.push(Row {
                figure: format!("baseline chain latency p50 / p99 at {}/s", b.rate),
                value: format!(
                    "{} / {}",
                    number(b.latency.p50(), "ms"),
                    number(b.latency.p99(), "ms")
                ),
                baseline: "–".into(),
                ratio: "1×".into(),
                target: "–".into(),
                met: None,
            });
        }
        if let Some(f) = &self.fan_out {
            let met = f.deliveries_per_s >= 10_000.0
                && base_rate.is_none_or(|b| f.deliveries_per_s >= 4.0 * b);
            rows.push(Row {
                figure: format!(
                    "fan-out deliveries/s ({} × {})",
                    f.notifications, f.recipients
                ),
                value: number(f.deliveries_per_s, "/s"),
                baseline: shown(base_rate, "/s"),
                ratio: ratio(f.deliveries_per_s, base_rate),
                target: "≥ 10,000 and ≥ 4×".into(),
                met: Some(met),
            });
        }
        if let Some(s) = &self.small {
            rows.push(Row {
                figure: format!("small notifications accepted/s ({} clients)", s.clients),
                value: number(s.accepted_per_s, "/s"),
                baseline: shown(base_rate, "/s"),
                ratio: ratio(s.accepted_per_s, base_rate),
                target: "≥ 5,000".into(),
                met: Some(s.accepted_per_s >= 5_000.0),
            });
            rows.push(Row {
                figure: "small notifications delivered/s".into(),
                value: number(s.delivered_per_s, "/s"),
                baseline: shown(base_rate, "/s"),
                ratio: ratio(s.delivered_per_s, base_rate),
                target: "–".into(),
                met: None,
            });
        }
        if let Some(s) = &self.steady {
            let l = &s.latency;
            let base_p50 = base.map(|b| b.latency.p50());
            let base_p99 = base.map(|b| b.latency.p99());
            let base_max = base.map(|b| b.latency.max());
            rows.push(Row {
                figure: format!("latency p50 at {}/s", s.rate),
                value: number(l.p50(), "ms"),
                baseline: shown(base_p50, "ms"),
                ratio: ratio(l.p50(), base_p50),
                target: "≤ 10 ms".into(),
                met: Some(l.p50() <= 10.0),
            });
            rows.push(Row {
                figure: format!("latency p99 at {}/s", s.rate),
                value: number(l.p99(), "ms"),
                baseline: shown(base_p99, "ms"),
                ratio: ratio(l.p99(), base_p99),
                target: "≤ 50 ms and ≤ 3×".into(),
                met: Some(l.p99() <= 50.0 && base_p99.is_none_or(|b| l.p99() <= 3.0 * b)),
            });
            rows.push(Row {
                figure: format!("latency max at {}/s", s.rate),
                value: number(l.max(), "ms"),
                baseline: shown(base_max, "ms"),
                ratio: ratio(l.max(), base_max),
                target: "–".into(),
                met: None,
            });
        }
        let tallies = self.tallies();
        if !tallies.is_empty() {
            let lost: usize = tallies.iter().map(|(_, t)| t.lost).sum();
            let duplicated: usize = tallies.iter().map(|(_, t)| t.duplicated).sum();
            let expected: usize = tallies.iter().map(|(_, t)| t.expected).sum();
            rows.push(Row {
                figure: format!("lost / duplicated of {} deliveries", group(expected as f64)),
                value: format!("{lost} / {duplicated}"),
                baseline: "–".into(),
                ratio: "–".into(),
                target: "none".into(),
                met: Some(lost == 0 && duplicated == 0),
            });
        }
        rows
    }

    fn tallies(&self) -> Vec<(&'static str, &Tally)> {
        let mut tallies = Vec::new();
        if let Some(f) = &self.fan_out {
            tallies.push(("fan-out", &f.tally));
        }
        if let Some(s) = &self.small {
            tallies.push(("small", &s.tally));
        }
        if let Some(s) = &self.steady {
            tallies.push(("steady", &s.tally));
        }
        tallies
    }

    /// Notes the machine's load as the run ends.
    pub fn finish(&mut self) {
        self.load_end = Some(machine_load());
    }

    /// The table for the terminal: aligned columns.
    pub fn table(&self) -> String {
        let rows = self.rows();
        let header = ["figure", "value", "baseline", "ratio", "target", "met"];
        let cells: Vec<[String; 6]> = rows
            .iter()
            .map(|r| {
                [
                    r.figure.clone(),
                    r.value.clone(),
                    r.baseline.clone(),
                    r.ratio.clone(),
                    r.target.clone(),
                    met(r.met).into(),
                ]
            })
            .collect();
        let mut widths = header.map(|h| h.chars().count());
        for row in &cells {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            cells
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        };
        let mut out = format!("{}\n", self.heading());
        out.push_str(&line(&header.map(String::from)));
        out.push('\n');
        for row in &cells {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }

    fn heading(&self) -> String {
        format!(
            "notify bench{} — {}, load {} at the start, {} at the end, settings {}",
            if self.quick { " --quick" } else { "" },
            self.date,
            self.load,
            self.load_end.as_deref().unwrap_or("?"),
            self.settings
        )
    }

    fn markdown(&self) -> String {
        let mut md = format!("# {}\n\n", self.heading());
        md.push_str("| figure | value | baseline | ratio | target | met |\n");
        md.push_str("| --- | --- | --- | --- | --- | --- |\n");
        for r in self.rows() {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                r.figure,
                r.value,
                r.baseline,
                r.ratio,
                r.target,
                met(r.met)
            );
        }
        md.push_str("\nExactly once, counted at the sink by delivery id:\n\n");
        for (name, t) in self.tallies() {
            let _ = writeln!(
                md,
                "- {name}: {} expected, {} delivered, {} lost, {} duplicated",
                t.expected, t.delivered, t.lost, t.duplicated
            );
        }
        md.push_str("\n![latency](latency.svg)\n");
        md
    }

    fn json(&self) -> Value {
        let latency = |l: &super::stats::Latency| {
            json!({"count": l.count(), "p50_ms": l.p50(), "p90_ms": l.percentile(90.0),
                   "p99_ms": l.p99(), "max_ms": l.max()})
        };
        let tally = |t: &Tally| {
            json!({"expected": t.expected, "delivered": t.delivered, "lost": t.lost,
                   "duplicated": t.duplicated})
        };
        json!({
            "date": self.date,
            "load": self.load,
            "load_end": self.load_end,
            "quick": self.quick,
            "settings": self.settings,
            "sizes": {
                "baseline_messages": self.sizes.baseline_messages,
                "fan_out_notifications": self.sizes.fan_out_notifications,
                "fan_out_recipients": self.sizes.fan_out_recipients,
                "small_notifications": self.sizes.small_notifications,
                "steady_rate": self.sizes.steady_rate,
                "steady_seconds": self.sizes.steady_seconds,
            },
            "baseline": self.baseline.as_ref().map(|b| json!({
                "hops": b.hops, "message_bytes": b.message_bytes, "prefetch": b.prefetch,
                "messages": b.messages, "messages_per_s": b.messages_per_s,
                "latency_saturated": latency(&b.saturated),
                "rate": b.rate, "latency_at_rate": latency(&b.latency),
            })),
            "fan_out": self.fan_out.as_ref().map(|f| json!({
                "notifications": f.notifications, "recipients": f.recipients,
                "deliveries_per_s": f.deliveries_per_s, "accept_seconds": f.accept_seconds,
                "seconds": f.seconds, "exactly_once": tally(&f.tally), "refused": f.refused,
            })),
            "small": self.small.as_ref().map(|s| json!({
                "notifications": s.notifications, "clients": s.clients,
                "accepted_per_s": s.accepted_per_s, "delivered_per_s": s.delivered_per_s,
                "exactly_once": tally(&s.tally), "refused": s.refused,
            })),
            "steady": self.steady.as_ref().map(|s| json!({
                "rate": s.rate, "seconds": s.seconds, "latency": latency(&s.latency),
                "exactly_once": tally(&s.tally), "refused": s.refused,
            })),
            "figures": self.rows().iter().map(|r| json!({
                "figure": r.figure, "value": r.value, "baseline": r.baseline,
                "ratio": r.ratio, "target": r.target, "met": r.met,
            })).collect::<Vec<_>>(),
        })
    }

    /// Writes `report.json`, `report.md` and `latency.svg` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path) -> anyhow::Result<Vec<String>> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut series = Vec::new();
        if let Some(s) = &self.steady {
            series.push((format!("pipeline at {}/s", s.rate), &s.latency));
        }
        if let Some(b) = &self.baseline {
            series.push((format!("baseline chain at {}/s", b.rate), &b.latency));
        }
        let named: Vec<(&str, &super::stats::Latency)> =
            series.iter().map(|(n, l)| (n.as_str(), *l)).collect();
        let files = [
            (
                "report.json",
                serde_json::to_string_pretty(&self.json()).expect("JSON serializes") + "\n",
            ),
            ("report.md", self.markdown()),
            (
                "latency.svg",
                svg::latency_chart("Request to receipt, per notification", &named),
            ),
        ];
        let mut written = Vec::new();
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            written.push(path.display().to_string());
        }
        Ok(written)
    }

    /// Fails on a lost or duplicated delivery or a refused request; speed never fails a run.
    pub fn verdict(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        for (name, t) in self.tallies() {
            if !t.exact() {
                problems.push(format!(
                    "{name}: {} lost and {} duplicated of {}",
                    t.lost, t.duplicated, t.expected
                ));
            }
        }
        let refusals = [
            self.fan_out
                .as_ref()
                .map(|f| ("fan-out", f.refused, &f.first_error)),
            self.small
                .as_ref()
                .map(|s| ("small", s.refused, &s.first_error)),
            self.steady
                .as_ref()
                .map(|s| ("steady", s.refused, &s.first_error)),
        ];
        for (name, refused, first) in refusals.into_iter().flatten() {
            if refused > 0 {
                problems.push(format!(
                    "{name}: {refused} requests were not accepted, the first: {}",
                    first.as_deref().unwrap_or("?")
                ));
            }
        }
        if !problems.is_empty() {
            bail!("{}", problems.join("\n"));
        }
        Ok(())
    }
}

fn met(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "",
    }
}

/// `12,345/s` or `4.2 ms`.
fn number(value: f64, unit: &str) -> String {
    if unit == "ms" {
        format!("{value:.1} ms")
    } else {
        format!("{}{unit}", group(value))
    }
}

/// A whole number with thousands separated by commas.
fn group(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The 1-minute load average and the number of cores, as `1.20 on 2 cores`.
fn machine_load() -> String {
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{load} on {cores} cores")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(group(1234567.4), "1,234,567");
        assert_eq!(group(999.0), "999");
        assert_eq!(number(10_000.0, "/s"), "10,000/s");
        assert_eq!(number(4.25, "ms"), "4.2 ms");
    }
}
