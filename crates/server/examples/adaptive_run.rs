//! A real run of adaptive capacity, drawn: one shard whose consumer applies
//! an event in a fixed busy time (a slow consumer), an open-loop producer
//! that steps its offered rate from below the service rate to three times it
//! and back, the `reject` overflow policy — once with the adaptive
//! controller, once with the same queue at a fixed capacity, same trace.
//! Every 100 ms it samples the shard's capacity, depth and p95 queue wait
//! (`Engine::stats`), and at the end it writes an SVG chart (capacity and
//! depth; p95 wait against the target) and prints a summary per run
//! (admitted events/s during the step, p99 latency of admitted events).
//!
//! This is the command behind `docs/img/adaptive-run.svg`:
//!
//! ```sh
//! cargo run --release -p statecraft-server --example adaptive_run -- docs/img/adaptive-run.svg
//! ```
//!
//! Optional arguments after the path: `apply_us=20 target_ms=10 low=20000
//! high=150000 capacity=20000 min=16 note=TEXT` (a line under the title).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use statecraft_engine::{AckMode, Engine, Event, EventResult, OverflowPolicy};

/// The run's settings (`key=value` arguments).
#[derive(Debug, Clone)]
struct Settings {
    /// A line printed under the chart's title (what build ran, …).
    note: String,
    apply_us: u64,
    target_ms: u64,
    low: f64,
    high: f64,
    capacity: usize,
    min: usize,
}

/// The offered load: (from s, to s, events/s).
fn phases(s: &Settings) -> [(f64, f64, f64); 3] {
    [(0.0, 3.0, s.low), (3.0, 10.0, s.high), (10.0, 14.0, s.low)]
}

const END_S: f64 = 14.0;
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
const CHUNK: usize = 50;

/// One 100 ms sample of the shard.
#[derive(Debug, Clone, Copy, Default)]
struct Point {
    t: f64,
    capacity: f64,
    depth: f64,
    p95_ms: f64,
}

/// What one run measured.
#[derive(Debug, Default)]
struct Run {
    points: Vec<Point>,
    admitted_in_step: u64,
    refused_in_step: u64,
    /// Latency of admitted events (submit → applied), µs.
    latency: Option<Histogram<u64>>,
    /// Latency of events admitted during the step only, µs.
    latency_step: Option<Histogram<u64>>,
    /// p95 latency (ms) of the events admitted in each 100 ms, by submit
    /// time: `(bucket midpoint s, ms)`. Measured by the producer, so it does
    /// not depend on the engine's own statistics.
    ack_p95: Vec<(f64, f64)>,
}

async fn run(settings: Settings, adaptive: bool) -> Result<Run, Box<dyn std::error::Error>> {
    let mut builder = Engine::builder()
        .shards(1)
        .queue_capacity(settings.capacity)
        .overflow(OverflowPolicy::Reject)
        .max_batch(1024)
        .apply_delay(Duration::from_micros(settings.apply_us))
        .apply_delay_busy(true);
    if adaptive {
        builder = builder.adaptive(
            Duration::from_millis(settings.target_ms),
            settings.min,
            settings.capacity,
        );
    }
    let engine = builder.open().await?;
    let new_hist = || Histogram::<u64>::new_with_bounds(1, 600_000_000, 3);
    let latency = Arc::new(Mutex::new(new_hist()?));
    let latency_step = Arc::new(Mutex::new(new_hist()?));
    let n_buckets = (END_S / SAMPLE_EVERY.as_secs_f64()).ceil() as usize + 1;
    let mut per_bucket = Vec::with_capacity(n_buckets);
    for _ in 0..n_buckets {
        per_bucket.push(new_hist()?);
    }
    let buckets = Arc::new(Mutex::new(per_bucket));
    let began = Instant::now();

    // The sampler: every 100 ms, the shard's figures.
    let sampler = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            let mut points = Vec::new();
            loop {
                tick.tick().await;
                let t = began.elapsed().as_secs_f64();
                if t > END_S {
                    break points;
                }
                let stats = engine.stats();
                if let Some(s) = stats.shards.first() {
                    points.push(Point {
                        t,
                        capacity: s.queue.capacity as f64,
                        depth: s.queue.depth as f64,
                        p95_ms: s.recent_wait_p95_us as f64 / 1e3,
                    });
                }
            }
        })
    };

    // The producer: open loop, every millisecond sends what is due.
    let mut sent = 0f64;
    let mut due = 0f64;
    let mut last = 0f64;
    let mut key = 0u64;
    let counts = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let mut waiters: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let step = phases(&settings)[1];
    while last < END_S {
        tick.tick().await;
        let now = began.elapsed().as_secs_f64().min(END_S);
        for (from, to, rate) in phases(&settings) {
            let (a, b) = (last.max(from), now.min(to));
            if b > a {
                due += (b - a) * rate;
            }
        }
        last = now;
        let in_step = now >= step.0 && now < step.1;
        while sent + 1.0 <= due {
            let n = ((due - sent) as usize).min(CHUNK);
            let events: Vec<Event> = (0..n)
                .map(|_| {
                    key = (key + 7_919) % 10_000;
                    Event::incr(format!("k{key}"), 1)
                })
                .collect();
            sent += n as f64;
            let submitted = Instant::now();
            let ticket = engine.enqueue(events, AckMode::Applied).await?;
            // Waited for off the producer's path (open loop). `reject`
            // answers refusals at once; admitted events are timed until
            // applied.
            let latency = Arc::clone(&latency);
            let latency_step = Arc::clone(&latency_step);
            let buckets = Arc::clone(&buckets);
            let bucket = (now / SAMPLE_EVERY.as_secs_f64()) as usize;
            let counts = Arc::clone(&counts);
            waiters.push(tokio::spawn(async move {
                let results = ticket.wait().await;
                let us = submitted.elapsed().as_micros().max(1) as u64;
                let refused = results
                    .iter()
                    .filter(|r| matches!(r, EventResult::Overloaded))
                    .count() as u64;
                let admitted = results.len() as u64 - refused;
                if in_step {
                    counts.0.fetch_add(admitted, Ordering::Relaxed);
                    counts.1.fetch_add(refused, Ordering::Relaxed);
                }
                if admitted > 0 {
                    if let Ok(mut h) = latency.lock() {
                        let _ = h.record_n(us, admitted);
                    }
                    if in_step && let Ok(mut h) = latency_step.lock() {
                        let _ = h.record_n(us, admitted);
                    }
                    if let Ok(mut b) = buckets.lock()
                        && let Some(h) = b.get_mut(bucket)
                    {
                        let _ = h.record_n(us, admitted);
                    }
                }
            }));
        }
        waiters.retain(|w| !w.is_finished());
    }
    for w in waiters {
        w.await?;
    }
    let (admitted_in_step, refused_in_step) = (
        counts.0.load(Ordering::Relaxed),
        counts.1.load(Ordering::Relaxed),
    );
    let points = sampler.await?;
    engine.shutdown().await?;
    let latency = Arc::try_unwrap(latency)
        .ok()
        .and_then(|m| m.into_inner().ok());
    let latency_step = Arc::try_unwrap(latency_step)
        .ok()
        .and_then(|m| m.into_inner().ok());
    let step_s = SAMPLE_EVERY.as_secs_f64();
    let ack_p95 = buckets
        .lock()
        .map(|b| {
            b.iter()
                .enumerate()
                .filter(|(_, h)| h.len() >= 20)
                .map(|(i, h)| {
                    (
                        (i as f64 + 0.5) * step_s,
                        h.value_at_quantile(0.95) as f64 / 1e3,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Run {
        ack_p95,
        points,
        admitted_in_step,
        refused_in_step,
        latency,
        latency_step,
    })
}

// ---- the SVG -------------------------------------------------------------

const W: f64 = 1080.0;
const H: f64 = 720.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 24.0;

struct Panel {
    top: f64,
    height: f64,
    lo: f64,
    hi: f64,
}

impl Panel {
    fn x(t: f64) -> f64 {
        LEFT + t / END_S * (W - LEFT - RIGHT)
    }
    fn y(&self, v: f64) -> f64 {
        let v = v.clamp(self.lo, self.hi);
        let f = (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10());
        self.top + self.height * (1.0 - f)
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn polyline(out: &mut String, p: &Panel, pts: &[(f64, f64)], style: &str) {
    let mut d = String::new();
    for (i, (t, v)) in pts.iter().enumerate() {
        let _ = write!(
            d,
            "{}{:.1},{:.1} ",
            if i == 0 { "M" } else { "L" },
            Panel::x(*t),
            p.y(*v)
        );
    }
    let _ = writeln!(out, r#"<path d="{}" fill="none" {style}/>"#, d.trim_end());
}

fn area(out: &mut String, p: &Panel, pts: &[(f64, f64)], fill: &str) {
    if pts.is_empty() {
        return;
    }
    let base = p.top + p.height;
    let mut d = format!("M{:.1},{base:.1} ", Panel::x(pts[0].0));
    for (t, v) in pts {
        let _ = write!(d, "L{:.1},{:.1} ", Panel::x(*t), p.y(*v));
    }
    let _ = write!(d, "L{:.1},{base:.1} Z", Panel::x(pts[pts.len() - 1].0));
    let _ = writeln!(out, r#"<path d="{d}" fill="{fill}" stroke="none"/>"#);
}

fn axes(out: &mut String, p: &Panel, title: &str, fmt: fn(f64) -> String) {
    let _ = writeln!(
        out,
        r##"<text x="{LEFT}" y="{:.1}" class="title">{}</text>"##,
        p.top - 8.0,
        esc(title)
    );
    let mut v = p.lo;
    while v <= p.hi * 1.001 {
        let y = p.y(v);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" class="grid"/><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            fmt(v)
        );
        v *= 10.0;
    }
    for s in 0..=END_S as u32 {
        let x = Panel::x(s as f64);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" class="grid"/>"##,
            p.top,
            p.top + p.height
        );
        if s % 2 == 0 {
            let _ = writeln!(
                out,
                r##"<text x="{x:.1}" y="{:.1}" class="tick" text-anchor="middle">{s} s</text>"##,
                p.top + p.height + 15.0
            );
        }
    }
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" class="frame"/>"##,
        p.top,
        W - LEFT - RIGHT,
        p.height
    );
}

fn legend(out: &mut String, x: f64, y: f64, items: &[(&str, &str)]) {
    let mut cx = x;
    for (label, style) in items {
        let _ = writeln!(
            out,
            r##"<line x1="{cx:.1}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" {style}/><text x="{:.1}" y="{:.1}" class="legend">{}</text>"##,
            cx + 22.0,
            cx + 27.0,
            y + 4.0,
            esc(label)
        );
        cx += 36.0 + label.chars().count() as f64 * 6.6;
    }
}

fn fmt_count(v: f64) -> String {
    if v >= 1000.0 {
        format!("{}k", v / 1000.0)
    } else {
        format!("{v}")
    }
}

fn fmt_ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{} s", v / 1000.0)
    } else if v >= 1.0 {
        format!("{v} ms")
    } else {
        format!("{} µs", v * 1000.0)
    }
}

fn svg(s: &Settings, adaptive: &Run, fixed: &Run, summary: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif">
<style>
  .bg {{ fill: #ffffff; }} .title {{ font-size: 14px; font-weight: 600; fill: #1f2328; }}
  .head {{ font-size: 16px; font-weight: 700; fill: #1f2328; }} .note {{ font-size: 12px; fill: #59636e; }}
  .tick {{ font-size: 11px; fill: #59636e; }} .legend {{ font-size: 12px; fill: #1f2328; }}
  .grid {{ stroke: #d0d7de; stroke-width: 0.6; }} .frame {{ stroke: #8c959f; stroke-width: 0.8; }}
  .step {{ fill: #fff1e5; }} .steptext {{ font-size: 11px; fill: #bc4c00; }}
</style>
<rect class="bg" width="{W}" height="{H}"/>"##
    );
    let step = phases(s)[1];
    let _ = writeln!(
        out,
        r##"<text x="{LEFT}" y="24" class="head">Adaptive capacity, a real run: one shard, {} µs per event (≈ {}k events/s), target p95 {} ms</text>
<text x="{LEFT}" y="42" class="note">Offered {}k/s, then {}k/s from {} s to {} s (≈ {:.0}× what the consumer serves), then {}k/s; overflow = reject.</text>
<text x="{LEFT}" y="57" class="note">The same trace also went through the same queue at a fixed capacity of {} events (grey). Sampled every 100 ms. {}</text>"##,
        s.apply_us,
        1_000 / s.apply_us.max(1),
        s.target_ms,
        s.low / 1e3,
        s.high / 1e3,
        step.0,
        step.1,
        s.high / (1e6 / s.apply_us.max(1) as f64),
        s.low / 1e3,
        s.capacity,
        esc(&s.note)
    );
    let top = Panel {
        top: 96.0,
        height: 200.0,
        lo: 10.0,
        hi: 100_000.0,
    };
    let bottom = Panel {
        top: 372.0,
        height: 200.0,
        lo: 0.1,
        hi: 10_000.0,
    };
    for p in [&top, &bottom] {
        let _ = writeln!(
            out,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" class="step"/>"##,
            Panel::x(step.0),
            p.top,
            Panel::x(step.1) - Panel::x(step.0),
            p.height
        );
    }
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="{:.1}" class="steptext" text-anchor="middle">overload step: {}k/s offered</text>"##,
        (Panel::x(step.0) + Panel::x(step.1)) / 2.0,
        top.top + 14.0,
        s.high / 1e3
    );
    axes(
        &mut out,
        &top,
        "Queue capacity and depth (events, log scale)",
        fmt_count,
    );
    let pts = |r: &Run, f: fn(&Point) -> f64| -> Vec<(f64, f64)> {
        r.points.iter().map(|p| (p.t, f(p).max(0.0))).collect()
    };
    area(
        &mut out,
        &top,
        &pts(adaptive, |p| p.depth.max(10.0)),
        "rgba(9,105,218,0.22)",
    );
    polyline(
        &mut out,
        &top,
        &pts(fixed, |p| p.depth.max(10.0)),
        r##"stroke="#8c959f" stroke-width="1.4" stroke-dasharray="5 3""##,
    );
    polyline(
        &mut out,
        &top,
        &pts(fixed, |p| p.capacity),
        r##"stroke="#8c959f" stroke-width="1.6""##,
    );
    polyline(
        &mut out,
        &top,
        &pts(adaptive, |p| p.depth.max(10.0)),
        r##"stroke="#0969da" stroke-width="1.2""##,
    );
    polyline(
        &mut out,
        &top,
        &pts(adaptive, |p| p.capacity),
        r##"stroke="#1f2328" stroke-width="2.2""##,
    );
    legend(
        &mut out,
        LEFT + 8.0,
        top.top + top.height + 34.0,
        &[
            (
                "adaptive capacity",
                r##"stroke="#1f2328" stroke-width="2.2""##,
            ),
            ("adaptive depth", r##"stroke="#0969da" stroke-width="4""##),
            ("fixed capacity", r##"stroke="#8c959f" stroke-width="1.6""##),
            (
                "fixed depth",
                r##"stroke="#8c959f" stroke-width="1.4" stroke-dasharray="5 3""##,
            ),
        ],
    );

    axes(
        &mut out,
        &bottom,
        "Waits vs the target (ms, log): p95 of admitted events (submit → applied) per 100 ms; the controller's p95 queue wait",
        fmt_ms,
    );
    let target = s.target_ms as f64;
    let band = 0.2;
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{:.1}" width="{:.1}" height="{:.1}" fill="rgba(26,127,55,0.15)"/>"##,
        bottom.y(target * (1.0 + band)),
        W - LEFT - RIGHT,
        bottom.y(target * (1.0 - band)) - bottom.y(target * (1.0 + band))
    );
    polyline(
        &mut out,
        &bottom,
        &[(0.0, target), (END_S, target)],
        r##"stroke="#1a7f37" stroke-width="1.6" stroke-dasharray="7 4""##,
    );
    let floor = |v: &[(f64, f64)]| -> Vec<(f64, f64)> {
        v.iter().map(|&(t, ms)| (t, ms.max(0.1))).collect()
    };
    polyline(
        &mut out,
        &bottom,
        &floor(&fixed.ack_p95),
        r##"stroke="#8c959f" stroke-width="1.8" stroke-dasharray="5 3""##,
    );
    polyline(
        &mut out,
        &bottom,
        &pts(adaptive, |p| p.p95_ms.max(0.1)),
        r##"stroke="#bc4c00" stroke-width="1.2""##,
    );
    polyline(
        &mut out,
        &bottom,
        &floor(&adaptive.ack_p95),
        r##"stroke="#cf222e" stroke-width="2.2""##,
    );
    legend(
        &mut out,
        LEFT + 8.0,
        bottom.top + bottom.height + 34.0,
        &[
            (
                "adaptive: admitted events p95",
                r##"stroke="#cf222e" stroke-width="2.2""##,
            ),
            (
                "adaptive: controller's p95 queue wait",
                r##"stroke="#bc4c00" stroke-width="1.2""##,
            ),
            (
                "fixed: admitted events p95",
                r##"stroke="#8c959f" stroke-width="1.8" stroke-dasharray="5 3""##,
            ),
            (
                "target (band ±20 %)",
                r##"stroke="#1a7f37" stroke-width="1.6" stroke-dasharray="7 4""##,
            ),
        ],
    );
    let mut y = H - 44.0;
    for line in summary {
        let _ = writeln!(
            out,
            r##"<text x="{LEFT}" y="{y:.1}" class="note">{}</text>"##,
            esc(line)
        );
        y += 15.0;
    }
    out.push_str("</svg>\n");
    out
}

fn quantile_ms(h: &Option<Histogram<u64>>, q: f64) -> f64 {
    h.as_ref()
        .filter(|h| !h.is_empty())
        .map_or(0.0, |h| h.value_at_quantile(q) as f64 / 1e3)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| "docs/img/adaptive-run.svg".into());
    let mut s = Settings {
        note: String::new(),
        apply_us: 20,
        target_ms: 10,
        low: 20_000.0,
        high: 150_000.0,
        capacity: 20_000,
        min: 16,
    };
    for a in args {
        let (k, v) = a.split_once('=').ok_or("arguments are key=value")?;
        match k {
            "apply_us" => s.apply_us = v.parse()?,
            "target_ms" => s.target_ms = v.parse()?,
            "low" => s.low = v.parse()?,
            "high" => s.high = v.parse()?,
            "capacity" => s.capacity = v.parse()?,
            "min" => s.min = v.parse()?,
            "note" => s.note = v.to_owned(),
            _ => return Err(format!("unknown argument {k}").into()),
        }
    }
    eprintln!("adaptive run: {s:?}");
    let adaptive = run(s.clone(), true).await?;
    eprintln!("fixed run …");
    let fixed = run(s.clone(), false).await?;
    let step = phases(&s)[1];
    let secs = step.1 - step.0;
    let mut summary = Vec::new();
    for (name, r) in [("adaptive", &adaptive), ("fixed   ", &fixed)] {
        summary.push(format!(
            "{name}: during the step {:.0} admitted/s, {:.0} refused/s; admitted events (submit → applied): p50 {:.1} ms, p99 {:.1} ms in the step, p99 {:.1} ms in all",
            r.admitted_in_step as f64 / secs,
            r.refused_in_step as f64 / secs,
            quantile_ms(&r.latency_step, 0.50),
            quantile_ms(&r.latency_step, 0.99),
            quantile_ms(&r.latency, 0.99),
        ));
    }
    for line in &summary {
        println!("{line}");
    }
    println!(
        "t_s,adaptive_capacity,adaptive_depth,adaptive_queue_wait_p95_ms,fixed_depth,fixed_queue_wait_p95_ms"
    );
    for (a, f) in adaptive.points.iter().zip(&fixed.points) {
        println!(
            "{:.1},{},{},{:.3},{},{:.3}",
            a.t, a.capacity, a.depth, a.p95_ms, f.depth, f.p95_ms
        );
    }
    println!("run,t_s,admitted_p95_ms");
    for (name, r) in [("adaptive", &adaptive), ("fixed", &fixed)] {
        for (t, ms) in &r.ack_p95 {
            println!("{name},{t:.2},{ms:.3}");
        }
    }
    if let Some(dir) = std::path::Path::new(&path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, svg(&s, &adaptive, &fixed, &summary))?;
    eprintln!("wrote {path}");
    Ok(())
}
