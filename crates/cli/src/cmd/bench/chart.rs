//! `chart.svg`: the bench's results as a static SVG written by hand (no
//! JavaScript, no plotting library) — throughput bars per workload and
//! contender on a log scale, and latency percentiles (p50, p99, p99.9) per
//! contender on a log scale.
//!
//! Invariant: the output is a complete, well-formed SVG document for any
//! results, including empty ones (then it says "no data"); text is escaped.

use std::fmt::Write as _;

use super::report::{BenchResults, Peer, si};

const WIDTH: f64 = 960.0;
const LABEL_W: f64 = 330.0;
const PLOT_W: f64 = WIDTH - LABEL_W - 110.0;
const ROW_H: f64 = 20.0;
const HEADER_H: f64 = 22.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn color(peer: Peer) -> &'static str {
    match peer {
        Peer::Statecraft => "#2b6cb0",
        Peer::Redis => "#c53030",
        Peer::Python => "#2f855a",
    }
}

/// A log10 axis from `lo` to `hi` (powers of ten).
struct LogAxis {
    lo: f64,
    hi: f64,
}

impl LogAxis {
    fn fit(values: impl Iterator<Item = f64>) -> Option<LogAxis> {
        let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
        for v in values.filter(|v| v.is_finite() && *v > 0.0) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !lo.is_finite() {
            return None;
        }
        let lo = 10f64.powf(lo.log10().floor());
        let hi = 10f64.powf(hi.log10().ceil()).max(lo * 10.0);
        Some(LogAxis { lo, hi })
    }

    /// x offset within the plot for `v`.
    fn x(&self, v: f64) -> f64 {
        let v = v.clamp(self.lo, self.hi);
        (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10()) * PLOT_W
    }

    fn ticks(&self) -> Vec<f64> {
        let mut t = Vec::new();
        let mut v = self.lo;
        while v <= self.hi * 1.0001 {
            t.push(v);
            v *= 10.0;
        }
        t
    }
}

/// Draws the vertical grid and tick labels of `axis` between `top` and `bottom`.
fn grid(out: &mut String, axis: &LogAxis, top: f64, bottom: f64, fmt: impl Fn(f64) -> String) {
    for t in axis.ticks() {
        let x = LABEL_W + axis.x(t);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{bottom:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="#555">{}</text>"##,
            bottom + 12.0,
            esc(&fmt(t))
        );
    }
}

/// The whole chart.
pub fn svg(r: &BenchResults) -> String {
    let mut body = String::new();
    let mut y = 30.0;
    let _ = writeln!(
        body,
        r#"<text x="10" y="20" font-size="15" font-weight="bold">statecraft bench {} — throughput (events/s, median of runs, log scale)</text>"#,
        esc(&r.started_at)
    );
    let throughput = r
        .workloads
        .iter()
        .flat_map(|w| w.contenders.iter())
        .filter_map(|c| c.median.as_ref().map(|m| m.events_per_s));
    match LogAxis::fit(throughput) {
        None => {
            let _ = writeln!(
                body,
                r#"<text x="10" y="{:.0}" font-size="12">no data</text>"#,
                y + 16.0
            );
            y += 30.0;
        }
        Some(axis) => {
            let top = y;
            for w in &r.workloads {
                if w.contenders.iter().all(|c| c.median.is_none()) {
                    continue;
                }
                y += HEADER_H;
                let _ = writeln!(
                    body,
                    r#"<text x="10" y="{:.1}" font-size="12" font-weight="bold">{} {}</text>"#,
                    y - 6.0,
                    esc(&w.id),
                    esc(&w.title)
                );
                for c in &w.contenders {
                    let Some(m) = &c.median else { continue };
                    let wbar = axis.x(m.events_per_s).max(1.0);
                    let _ = writeln!(
                        body,
                        r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text><rect x="{LABEL_W}" y="{:.1}" width="{wbar:.1}" height="{:.1}" fill="{}"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
                        LABEL_W - 6.0,
                        y + 14.0,
                        esc(&c.name),
                        y + 3.0,
                        ROW_H - 6.0,
                        color(c.peer),
                        LABEL_W + wbar + 4.0,
                        y + 14.0,
                        esc(&si(m.events_per_s))
                    );
                    y += ROW_H;
                }
            }
            grid(&mut body, &axis, top, y, si);
            y += 30.0;
        }
    }

    // Latency.
    y += 10.0;
    let _ = writeln!(
        body,
        r#"<text x="10" y="{:.1}" font-size="15" font-weight="bold">latency per event, ms (median of runs, log scale): p50 · p99 · p99.9</text>"#,
        y
    );
    y += 10.0;
    let lat_values = r
        .workloads
        .iter()
        .flat_map(|w| w.contenders.iter())
        .filter_map(|c| c.median.as_ref().and_then(|m| m.latency))
        .flat_map(|l| [l.p50_ms, l.p99_ms, l.p999_ms]);
    match LogAxis::fit(lat_values) {
        None => {
            let _ = writeln!(
                body,
                r#"<text x="10" y="{:.0}" font-size="12">no latency data</text>"#,
                y + 16.0
            );
            y += 30.0;
        }
        Some(axis) => {
            let top = y;
            for w in &r.workloads {
                for c in &w.contenders {
                    let Some(l) = c.median.as_ref().and_then(|m| m.latency) else {
                        continue;
                    };
                    let _ = writeln!(
                        body,
                        r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{} {}</text>"#,
                        LABEL_W - 6.0,
                        y + 14.0,
                        esc(&w.id),
                        esc(&c.name)
                    );
                    for (i, (v, opacity)) in [(l.p50_ms, 1.0), (l.p99_ms, 0.6), (l.p999_ms, 0.3)]
                        .into_iter()
                        .enumerate()
                    {
                        let _ = writeln!(
                            body,
                            r#"<rect x="{LABEL_W}" y="{:.1}" width="{:.1}" height="4" fill="{}" fill-opacity="{opacity}"/>"#,
                            y + 4.0 + i as f64 * 5.0,
                            axis.x(v).max(1.0),
                            color(c.peer)
                        );
                    }
                    let _ = writeln!(
                        body,
                        r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#333">{} · {} · {}</text>"##,
                        LABEL_W + axis.x(l.p999_ms) + 4.0,
                        y + 14.0,
                        super::report::ms(l.p50_ms),
                        super::report::ms(l.p99_ms),
                        super::report::ms(l.p999_ms)
                    );
                    y += ROW_H;
                }
            }
            grid(&mut body, &axis, top, y, |v| {
                if v < 1.0 {
                    format!("{v}")
                } else {
                    format!("{v:.0}")
                }
            });
            y += 30.0;
        }
    }
    // Legend.
    let mut x = 10.0;
    for (peer, name) in [
        (Peer::Statecraft, "Statecraft"),
        (Peer::Redis, "Redis"),
        (Peer::Python, "Python asyncio"),
    ] {
        let _ = writeln!(
            body,
            r#"<rect x="{x:.0}" y="{:.0}" width="12" height="12" fill="{}"/><text x="{:.0}" y="{:.0}" font-size="11">{name}</text>"#,
            y,
            color(peer),
            x + 16.0,
            y + 10.0
        );
        x += 130.0;
    }
    y += 24.0;
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0}" height="{y:.0}" viewBox="0 0 {WIDTH:.0} {y:.0}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
{body}</svg>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::super::report::{Contender, MedianFigure, WorkloadResult};
    use super::*;
    use crate::cmd::load::recorder::Latency;

    fn results(with_data: bool) -> BenchResults {
        let mut c = Contender::new("statecraft <tcp> & co", Peer::Statecraft);
        if with_data {
            c.median = Some(MedianFigure {
                runs: 1,
                events_per_s: 2.5e6,
                latency: Some(Latency {
                    p50_ms: 0.4,
                    p99_ms: 1.5,
                    p999_ms: 3.0,
                    ..Latency::default()
                }),
                ..MedianFigure::default()
            });
        }
        BenchResults {
            started_at: "2026-11-25T16:00:00Z".into(),
            seconds: 1.0,
            machine: Default::default(),
            settings: serde_json::Value::Null,
            limits: None,
            workloads: vec![WorkloadResult {
                id: "W1".into(),
                title: "counters".into(),
                shape: String::new(),
                contenders: vec![c],
                ratios: vec![],
                notes: vec![],
            }],
            targets: vec![],
            notes: vec![],
        }
    }

    #[test]
    fn chart_is_one_svg_document_with_escaped_labels() {
        let s = svg(&results(true));
        assert!(s.starts_with("<?xml"));
        assert!(s.trim_end().ends_with("</svg>"));
        assert!(s.contains("statecraft &lt;tcp&gt; &amp; co"));
        assert!(!s.contains("<tcp>"));
        assert!(s.contains("2.50 M"));
        assert_eq!(s.matches("<svg").count(), 1);
        let empty = svg(&results(false));
        assert!(empty.contains("no data") && empty.trim_end().ends_with("</svg>"));
    }
}
