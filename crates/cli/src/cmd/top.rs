//! `statecraft top`: the dashboard's figures, live in the terminal — rates
//! by result status, refusals, per-stage latency, and per shard the queue's
//! depth against its capacity and its p95 wait against the target — read
//! from a running server's `GET /v1/stats` once a second (ratatui +
//! crossterm). `q`, Esc or Ctrl-C quits.
//!
//! Over a pipe (stdout not a terminal), or with `--once`, it prints one
//! snapshot — the same screen, as text — and exits.
//!
//! Layout: [`TopModel`] holds the last `/v1/stats` document and a short
//! history of samples (the same `?history=`/`?since=` cursor the dashboard
//! uses); [`draw`] renders a model into any ratatui frame (the terminal, or
//! a `TestBackend` in the tests); `run` fetches and loops.
//!
//! Invariant: the terminal is restored (raw mode off, main screen back)
//! however the loop ends — a key, an error, or a panic (ratatui's hook).

use std::collections::VecDeque;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize as _};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Cell, Chart, Dataset, GraphType, Paragraph, Row, Table};
use serde::Deserialize;
use statecraft_server::observe::Sample;

use crate::cmd::remote::{ServerOpts, http_client, http_error, problem_text};

/// Samples kept for the charts (two minutes at one per second).
const HISTORY: usize = 120;

/// Arguments of `statecraft top`.
#[derive(Debug, clap::Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub server: ServerOpts,
    /// Print one snapshot and exit (the default when stdout is not a terminal).
    #[arg(long)]
    pub once: bool,
    /// Width of the snapshot printed by --once, columns.
    #[arg(long, default_value_t = 120, value_name = "COLS")]
    pub width: u16,
}

/// `/v1/stats` as `top` reads it (fields it does not use are ignored).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StatsDoc {
    /// Server version.
    pub version: String,
    /// Seconds since the server started.
    pub uptime_s: f64,
    /// The engine's per-shard figures since start.
    pub shards: Vec<ShardDoc>,
    /// Durability figures (absent in memory).
    pub durability: Option<DurabilityDoc>,
    /// Front-end counters.
    pub server: ServerDoc,
    /// Samples and adaptive settings.
    pub observe: ObserveDoc,
    /// Keys, data-dir bytes and the hot-key cache.
    pub keyspace: KeyspaceDoc,
    /// The server process's resources.
    pub process: ProcessDoc,
}

/// The `keyspace` part of `/v1/stats` (`null` figures stay `None`).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct KeyspaceDoc {
    /// Materialized keys in the store, approximate.
    pub keys: Option<u64>,
    /// Bytes of the data directory.
    pub data_dir_bytes: Option<u64>,
    /// Keys held in the shards' memory.
    pub cache_keys: Option<u64>,
    /// Hot-key cache hit rate, 0..=1.
    pub cache_hit_rate: Option<f64>,
}

/// The `process` part of `/v1/stats`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct ProcessDoc {
    /// Resident set size, bytes.
    pub resident_memory_bytes: Option<u64>,
}

/// Bytes with a binary unit (`-` when unknown).
pub fn fmt_bytes(b: Option<u64>) -> String {
    let Some(b) = b else { return "-".into() };
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// The keyspace and memory line: keys, cache, RSS, data dir.
pub fn keyspace_line(d: &StatsDoc) -> String {
    let k = &d.keyspace;
    let opt = |v: Option<u64>| v.map_or("-".to_owned(), |v| fmt_num(v as f64));
    let hit = k
        .cache_hit_rate
        .map_or(String::new(), |r| format!(" (hit {:.0}%)", r * 100.0));
    format!(
        "keys {} · cached {}{hit} · rss {} · disk {}",
        opt(k.keys),
        opt(k.cache_keys),
        fmt_bytes(d.process.resident_memory_bytes),
        fmt_bytes(k.data_dir_bytes)
    )
}

/// A histogram summary (µs).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct SummaryDoc {
    /// Samples.
    pub count: u64,
    /// 99th percentile, µs.
    pub p99: u64,
}

/// One shard's figures since start.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct ShardDoc {
    /// Queue wait per event.
    pub queue_wait_us: SummaryDoc,
    /// Apply time per batch.
    pub apply_us: SummaryDoc,
}

/// Durability figures since start.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct DurabilityDoc {
    /// fsync latency.
    pub fsync_us: SummaryDoc,
    /// Recovery at open, ms.
    pub recovery_ms: f64,
}

/// Front-end counters.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct ServerDoc {
    /// TCP connections accepted.
    pub tcp_connections: u64,
    /// TCP connections refused.
    pub tcp_refused: u64,
}

/// The `observe` part of `/v1/stats`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ObserveDoc {
    /// Sampler interval, ms.
    pub interval_ms: u64,
    /// Adaptive capacity settings (`None`: fixed capacity).
    pub adaptive: Option<AdaptiveDoc>,
    /// The newest sample.
    pub latest: Option<Sample>,
    /// Recent samples (when asked for).
    pub samples: Option<Vec<Sample>>,
}

/// Adaptive capacity settings.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct AdaptiveDoc {
    /// Target p95 wait, ms.
    pub target_ms: f64,
    /// Smallest capacity.
    pub min: u64,
    /// Largest capacity.
    pub max: u64,
    /// Hysteresis band (0.2 = ±20 %).
    pub band: f64,
}

/// What `top` shows: the last document and the recent samples.
#[derive(Debug, Default)]
pub struct TopModel {
    /// The server, as given.
    pub server: String,
    /// The last `/v1/stats`.
    pub doc: StatsDoc,
    /// Recent samples, oldest first.
    pub history: VecDeque<Sample>,
    /// The last fetch error, shown in the header (figures stay).
    pub error: Option<String>,
}

impl TopModel {
    /// A model for `server` with nothing fetched yet.
    pub fn new(server: impl Into<String>) -> Self {
        TopModel {
            server: server.into(),
            ..TopModel::default()
        }
    }

    /// The seq of the newest sample held (the `?since=` cursor).
    pub fn last_seq(&self) -> Option<u64> {
        self.history.back().map(|s| s.seq)
    }

    /// Takes in a fetched document: appends its new samples; starts over
    /// when the server restarted (its seq went back).
    pub fn ingest(&mut self, mut doc: StatsDoc) {
        let latest = doc.observe.latest.clone();
        if let (Some(l), Some(last)) = (&latest, self.last_seq())
            && l.seq < last
        {
            self.history.clear();
        }
        let fresh = doc
            .observe
            .samples
            .take()
            .unwrap_or_else(|| latest.into_iter().collect());
        for s in fresh {
            if self.last_seq().is_none_or(|last| s.seq > last) {
                self.history.push_back(s);
            }
        }
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
        self.doc = doc;
        self.error = None;
    }
}

// ---- formatting ----------------------------------------------------------

/// 1234567 → "1.23M"; integers below 10 k as they are.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        "—".into()
    } else if a >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if a >= 1e7 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e5 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if v.fract() == 0.0 || a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Milliseconds as µs, ms or s.
pub fn fmt_ms(ms: Option<f64>) -> String {
    match ms {
        None => "—".into(),
        Some(v) if !v.is_finite() => "—".into(),
        Some(v) if v >= 1000.0 => format!("{:.2} s", v / 1e3),
        Some(v) if v >= 100.0 => format!("{v:.0} ms"),
        Some(v) if v >= 10.0 => format!("{v:.1} ms"),
        Some(v) if v >= 1.0 => format!("{v:.2} ms"),
        Some(v) => format!("{:.0} µs", v * 1e3),
    }
}

fn fmt_uptime(s: f64) -> String {
    let s = s.max(0.0) as u64;
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m {sec}s"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}

// ---- rendering -----------------------------------------------------------

const DIM: Style = Style::new().fg(Color::DarkGray);
const STATUS_COLORS: [(&str, Color); 5] = [
    ("applied", Color::Green),
    ("duplicate", Color::Blue),
    ("conflict", Color::Magenta),
    ("rejected", Color::Red),
    ("overloaded", Color::Yellow),
];
const SHARD_COLORS: [Color; 6] = [
    Color::Cyan,
    Color::LightRed,
    Color::LightGreen,
    Color::LightMagenta,
    Color::LightYellow,
    Color::LightBlue,
];

fn status_rate(s: &Sample, status: &str) -> f64 {
    let e = &s.events_per_s;
    match status {
        "applied" => e.applied,
        "duplicate" => e.duplicate,
        "conflict" => e.conflict,
        "rejected" => e.rejected,
        _ => e.overloaded,
    }
}

/// Renders the whole screen for `m` into `frame`.
pub fn draw(frame: &mut Frame, m: &TopModel) {
    let [header, kpis, charts, tables, shards, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(4),
        Constraint::Length(12),
        Constraint::Length(10),
        Constraint::Min(4),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_header(frame, header, m);
    draw_kpis(frame, kpis, m);
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(charts);
    draw_throughput(frame, left, m);
    draw_wait(frame, right, m);
    let [stages, statuses] =
        Layout::horizontal([Constraint::Percentage(62), Constraint::Percentage(38)]).areas(tables);
    draw_stages(frame, stages, m);
    draw_statuses(frame, statuses, m);
    draw_shards(frame, shards, m);
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(" q", Style::new().bold()),
            Span::styled(" quit · ", DIM),
            Span::raw(keyspace_line(&m.doc)),
            Span::styled(" · figures sampled by the server once a second · ", DIM),
            Span::styled(format!("{}/v1/stats", m.server), DIM),
        ])),
        footer,
    );
}

fn draw_header(frame: &mut Frame, area: Rect, m: &TopModel) {
    let d = &m.doc;
    let mut spans = vec![
        Span::styled(" statecraft top ", Style::new().bold()),
        Span::styled(
            format!(
                "v{} · up {} · {} shards · {} · ",
                d.version,
                fmt_uptime(d.uptime_s),
                d.shards.len(),
                if d.durability.is_some() {
                    "durable"
                } else {
                    "in memory"
                }
            ),
            DIM,
        ),
        match d.observe.adaptive {
            Some(a) => Span::styled(
                format!(
                    "adaptive: target {} ± {:.0}%, capacity {}–{}",
                    fmt_ms(Some(a.target_ms)),
                    a.band * 100.0,
                    fmt_num(a.min as f64),
                    fmt_num(a.max as f64)
                ),
                Style::new().fg(Color::Green),
            ),
            None => Span::raw("fixed capacity"),
        },
    ];
    if let Some(s) = m.history.back() {
        spans.push(Span::styled(format!(" · sample #{}", s.seq), DIM));
    }
    if let Some(e) = &m.error {
        spans.push(Span::styled(
            format!(" · {e}"),
            Style::new().fg(Color::Red).bold(),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn kpi<'a>(label: &'a str, value: String, warn: bool) -> Vec<Span<'a>> {
    let style = if warn {
        Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
    } else {
        Style::new().add_modifier(Modifier::BOLD)
    };
    vec![
        Span::styled(format!("{label} "), DIM),
        Span::styled(value, style),
        Span::raw("   "),
    ]
}

fn draw_kpis(frame: &mut Frame, area: Rect, m: &TopModel) {
    let block = Block::bordered().title(" now ").border_style(DIM);
    let Some(s) = m.history.back() else {
        frame.render_widget(
            Paragraph::new("waiting for the first sample…").block(block),
            area,
        );
        return;
    };
    let g = &s.stages_ms;
    let r = &s.refusals_per_s;
    let refused = r.overloaded + r.dropped + r.http_busy;
    let target = m.doc.observe.adaptive.map(|a| (a.target_ms, a.band));
    let wait = g.queue_wait.p95;
    let wait_over = matches!((target, wait), (Some((t, b)), Some(w)) if w > t * (1.0 + b));
    let fullest = s
        .shards
        .iter()
        .map(|sh| sh.depth as f64 / sh.capacity.max(1) as f64)
        .fold(0.0, f64::max);
    let mut line = Vec::new();
    let mut line2 = Vec::new();
    line.extend(kpi("applied/s", fmt_num(s.events_per_s.applied), false));
    line.extend(kpi("admitted/s", fmt_num(s.admitted_per_s), false));
    line.extend(kpi("refused/s", fmt_num(refused), refused > 0.0));
    line.extend(kpi("ack p99", fmt_ms(g.ack.p99), false));
    line2.extend(kpi(
        "wait p95 (worst)",
        match target {
            Some((t, _)) => format!("{} / target {}", fmt_ms(wait), fmt_ms(Some(t))),
            None => fmt_ms(wait),
        },
        wait_over,
    ));
    line2.extend(kpi(
        "fill",
        format!("{:.0}%", fullest * 100.0),
        fullest >= 0.8,
    ));
    line2.extend(kpi("fsyncs/s", fmt_num(s.fsyncs_per_s), false));
    line2.extend(kpi("tcp conns", fmt_num(s.tcp_open as f64), false));
    frame.render_widget(
        Paragraph::new(vec![Line::from(line), Line::from(line2)]).block(block),
        area,
    );
}

/// `(x, y)` points of a series over the history: x = seconds before the
/// newest sample (negative), gaps skipped.
fn points(m: &TopModel, f: impl Fn(&Sample) -> Option<f64>) -> Vec<(f64, f64)> {
    let Some(newest) = m.history.back() else {
        return Vec::new();
    };
    m.history
        .iter()
        .filter_map(|s| {
            let x = (s.unix_ms as f64 - newest.unix_ms as f64) / 1e3;
            f(s).filter(|v| v.is_finite()).map(|y| (x, y))
        })
        .collect()
}

fn y_axis(max: f64, fmt: fn(f64) -> String) -> Axis<'static> {
    let top = if max > 0.0 { max * 1.1 } else { 1.0 };
    Axis::default().bounds([0.0, top]).style(DIM).labels([
        Span::raw(fmt(0.0)),
        Span::raw(fmt(top / 2.0)),
        Span::raw(fmt(top)),
    ])
}

fn x_axis() -> Axis<'static> {
    Axis::default()
        .bounds([-(HISTORY as f64), 0.0])
        .style(DIM)
        .labels([
            Span::raw(format!("-{HISTORY}s")),
            Span::raw(format!("-{}s", HISTORY / 2)),
            Span::raw("now"),
        ])
}

/// One line of a chart.
struct Series {
    name: String,
    color: Color,
    points: Vec<(f64, f64)>,
}

/// Draws `series` as braille lines in a bordered chart titled `title`.
fn line_chart(
    frame: &mut Frame,
    area: Rect,
    title: &str,
    series: &[Series],
    fmt_y: fn(f64) -> String,
) {
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|&(_, y)| y))
        .fold(0.0, f64::max);
    let datasets = series
        .iter()
        .map(|s| {
            Dataset::default()
                .name(s.name.clone())
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::new().fg(s.color))
                .data(&s.points)
        })
        .collect();
    let chart = Chart::new(datasets)
        .block(Block::bordered().title(title).border_style(DIM))
        .x_axis(x_axis())
        .y_axis(y_axis(max, fmt_y))
        .hidden_legend_constraints((Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)));
    frame.render_widget(chart, area);
}

fn draw_throughput(frame: &mut Frame, area: Rect, m: &TopModel) {
    // Applied always; the other statuses once they happened.
    let series: Vec<Series> = STATUS_COLORS
        .iter()
        .map(|(name, color)| Series {
            name: (*name).to_owned(),
            color: *color,
            points: points(m, |s| Some(status_rate(s, name))),
        })
        .filter(|s| s.name == "applied" || s.points.iter().any(|&(_, y)| y > 0.0))
        .collect();
    line_chart(frame, area, " events/s by status ", &series, fmt_num);
}

fn draw_wait(frame: &mut Frame, area: Rect, m: &TopModel) {
    let n = m.history.back().map_or(0, |s| s.shards.len());
    let mut series: Vec<Series> = (0..n)
        .map(|i| Series {
            name: format!("shard {i}"),
            color: SHARD_COLORS[i % SHARD_COLORS.len()],
            points: points(m, |s| s.shards.get(i).map(|sh| sh.p95_wait_ms)),
        })
        .collect();
    if let Some(a) = m.doc.observe.adaptive {
        series.push(Series {
            name: "target".into(),
            color: Color::White,
            points: points(m, |_| Some(a.target_ms)),
        });
    }
    line_chart(
        frame,
        area,
        " p95 queue wait vs target (ms) ",
        &series,
        |v| format!("{v:.1}"),
    );
}

fn draw_stages(frame: &mut Frame, area: Rect, m: &TopModel) {
    let d = &m.doc;
    let worst = |f: fn(&ShardDoc) -> SummaryDoc| {
        d.shards
            .iter()
            .map(f)
            .filter(|s| s.count > 0)
            .map(|s| s.p99 as f64 / 1e3)
            .reduce(f64::max)
    };
    let since_start = [
        None,
        None,
        worst(|s| s.queue_wait_us),
        worst(|s| s.apply_us),
        d.durability
            .filter(|d| d.fsync_us.count > 0)
            .map(|d| d.fsync_us.p99 as f64 / 1e3),
        None,
    ];
    let rows: Vec<Row> = match m.history.back() {
        None => Vec::new(),
        Some(s) => {
            let g = &s.stages_ms;
            [
                ("decode", &g.decode),
                ("admit", &g.admit),
                ("queue wait", &g.queue_wait),
                ("apply", &g.apply),
                ("commit", &g.commit),
                ("ack", &g.ack),
            ]
            .into_iter()
            .zip(since_start)
            .map(|((name, f), all)| {
                Row::new(vec![
                    Cell::from(name),
                    Cell::from(fmt_num(f.count as f64)),
                    Cell::from(fmt_ms(f.mean)),
                    Cell::from(fmt_ms(f.p50)),
                    Cell::from(fmt_ms(f.p95)),
                    Cell::from(fmt_ms(f.p99)),
                    Cell::from(fmt_ms(all)),
                ])
            })
            .collect()
        }
    };
    let table = Table::new(
        rows,
        [
            Constraint::Length(11),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(12),
        ],
    )
    .header(Row::new(["stage", "count", "mean", "p50", "p95", "p99", "p99 (start)"]).style(DIM))
    .block(
        Block::bordered()
            .title(" latency per stage, last second ")
            .border_style(DIM),
    );
    frame.render_widget(table, area);
}

fn draw_statuses(frame: &mut Frame, area: Rect, m: &TopModel) {
    let rows: Vec<Row> = match m.history.back() {
        None => Vec::new(),
        Some(s) => {
            let t = &s.totals;
            let totals = [t.applied, t.duplicate, t.conflict, t.rejected, t.overloaded];
            let mut rows: Vec<Row> = STATUS_COLORS
                .iter()
                .zip(totals)
                .map(|((name, color), total)| {
                    Row::new(vec![
                        Cell::from(*name).fg(*color),
                        Cell::from(format!("{}/s", fmt_num(status_rate(s, name)))),
                        Cell::from(fmt_num(total as f64)),
                    ])
                })
                .collect();
            let r = &s.refusals_per_s;
            rows.push(Row::new(vec![
                Cell::from("dropped"),
                Cell::from(format!("{}/s", fmt_num(r.dropped))),
                Cell::from(""),
            ]));
            rows.push(Row::new(vec![
                Cell::from("http 503"),
                Cell::from(format!("{}/s", fmt_num(r.http_busy))),
                Cell::from(format!(
                    "tcp refused {}",
                    fmt_num(m.doc.server.tcp_refused as f64)
                )),
            ]));
            rows
        }
    };
    let table = Table::new(
        rows,
        [
            Constraint::Length(11),
            Constraint::Length(10),
            Constraint::Min(8),
        ],
    )
    .header(Row::new(["status", "rate", "total"]).style(DIM))
    .block(
        Block::bordered()
            .title(" results and refusals ")
            .border_style(DIM),
    );
    frame.render_widget(table, area);
}

/// A text bar of `width` cells filled to `fraction`.
fn bar(fraction: f64, width: usize) -> String {
    let filled = ((fraction.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
    format!("{}{}", "█".repeat(filled), "·".repeat(width - filled))
}

fn draw_shards(frame: &mut Frame, area: Rect, m: &TopModel) {
    let target = m.doc.observe.adaptive.map(|a| (a.target_ms, a.band));
    let rows: Vec<Row> = m.history.back().map_or_else(Vec::new, |s| {
        s.shards
            .iter()
            .map(|sh| {
                let fill = sh.depth as f64 / sh.capacity.max(1) as f64;
                let fill_color = if fill >= 0.95 {
                    Color::Red
                } else if fill >= 0.8 {
                    Color::Yellow
                } else {
                    Color::Cyan
                };
                let over = matches!(target, Some((t, b)) if sh.p95_wait_ms > t * (1.0 + b));
                Row::new(vec![
                    Cell::from(sh.shard.to_string()),
                    Cell::from(bar(fill, 16)).fg(fill_color),
                    Cell::from(format!(
                        "{} / {}",
                        fmt_num(sh.depth as f64),
                        fmt_num(sh.capacity as f64)
                    )),
                    Cell::from(format!("{:.1}%", fill * 100.0)),
                    Cell::from(fmt_ms(Some(sh.p95_wait_ms))).fg(if over {
                        Color::Yellow
                    } else {
                        Color::Reset
                    }),
                    Cell::from(target.map_or("fixed".into(), |(t, _)| fmt_ms(Some(t)))),
                    Cell::from(fmt_num(sh.admitted_per_s)),
                    Cell::from(fmt_num(sh.taken_per_s)),
                    Cell::from(fmt_num(sh.service_rate)),
                    Cell::from(fmt_num(sh.refused_per_s)),
                    Cell::from(fmt_num(sh.capacity_changes as f64)),
                ])
            })
            .collect()
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(5),
            Constraint::Length(17),
            Constraint::Length(16),
            Constraint::Length(7),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(10),
            Constraint::Length(10),
            Constraint::Length(10),
            Constraint::Length(9),
            Constraint::Length(7),
        ],
    )
    .header(
        Row::new([
            "shard",
            "fill",
            "depth / cap",
            "fill %",
            "p95 wait",
            "target",
            "admitted/s",
            "taken/s",
            "service/s",
            "refused/s",
            "resizes",
        ])
        .style(DIM),
    )
    .block(Block::bordered().title(" shard queues ").border_style(DIM));
    frame.render_widget(table, area);
}

// ---- fetching and the loop ----------------------------------------------

/// Fetches `/v1/stats` (the history first, then what is new).
async fn fetch(client: &reqwest::Client, base: &str, m: &TopModel) -> anyhow::Result<StatsDoc> {
    let query = match m.last_seq() {
        None => format!("history={HISTORY}"),
        Some(seq) => format!("since={seq}"),
    };
    let url = format!("{base}/v1/stats?{query}");
    let resp = client
        .get(&url)
        .send()
        .await
        .map_err(|e| http_error(e, base))?;
    match resp.status().as_u16() {
        200 => resp
            .json()
            .await
            .map_err(|e| http_error(e, base))
            .context("reading /v1/stats"),
        401 => anyhow::bail!("{base} wants a token: pass --token (or STATECRAFT_AUTH_TOKEN)"),
        _ => anyhow::bail!("GET {url}: {}", problem_text(resp).await),
    }
}

/// Renders `m` as plain text, `width` columns wide (the `--once` output).
pub fn snapshot_text(m: &TopModel, width: u16) -> anyhow::Result<String> {
    let shards = m.history.back().map_or(0, |s| s.shards.len()) as u16;
    let height = 1 + 4 + 12 + 10 + (shards + 3).max(4) + 1;
    let backend = ratatui::backend::TestBackend::new(width.max(60), height);
    let mut terminal = ratatui::Terminal::new(backend).context("a text terminal")?;
    terminal
        .draw(|f| draw(f, m))
        .context("rendering the snapshot")?;
    let buffer = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..buffer.area.height {
        let mut line = String::new();
        for x in 0..buffer.area.width {
            line.push_str(buffer[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    Ok(out)
}

/// Runs `statecraft top`.
pub fn run(args: TopArgs) -> anyhow::Result<ExitCode> {
    let base = args.server.http_base("top")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    let client = http_client(args.server.token.as_deref(), Some(Duration::from_secs(5)))?;
    let mut model = TopModel::new(base.clone());
    if args.once || !std::io::stdout().is_terminal() {
        runtime.block_on(async {
            let doc = fetch(&client, &base, &model).await?;
            model.ingest(doc);
            // A server up for less than one interval has no sample yet.
            if model.history.is_empty() {
                tokio::time::sleep(Duration::from_millis(1_100)).await;
                let doc = fetch(&client, &base, &model).await?;
                model.ingest(doc);
            }
            anyhow::Ok(())
        })?;
        print!("{}", snapshot_text(&model, args.width)?);
        return Ok(ExitCode::SUCCESS);
    }
    // Fail before taking over the terminal when the server is not there.
    let doc = runtime.block_on(fetch(&client, &base, &model))?;
    model.ingest(doc);
    let mut terminal = ratatui::try_init().context("setting up the terminal")?;
    let outcome = live(&runtime, &client, &base, &mut model, &mut terminal);
    let restored = ratatui::try_restore().context("restoring the terminal");
    outcome?;
    restored?;
    Ok(ExitCode::SUCCESS)
}

fn live(
    runtime: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    base: &str,
    model: &mut TopModel,
    terminal: &mut ratatui::DefaultTerminal,
) -> anyhow::Result<()> {
    use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
    let mut next_fetch = Instant::now() + Duration::from_secs(1);
    loop {
        terminal.draw(|f| draw(f, model)).context("drawing")?;
        let wait = next_fetch.saturating_duration_since(Instant::now());
        if event::poll(wait).context("reading the keyboard")? {
            if let Event::Key(k) = event::read().context("reading the keyboard")?
                && k.kind == KeyEventKind::Press
            {
                let ctrl_c =
                    k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                if ctrl_c || matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) {
                    return Ok(());
                }
            }
            continue;
        }
        next_fetch = Instant::now() + Duration::from_secs(1);
        match runtime.block_on(fetch(client, base, model)) {
            Ok(doc) => model.ingest(doc),
            Err(e) => model.error = Some(format!("{e:#}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keyspace_line_shows_unknown_figures_as_a_dash() {
        let mut d = StatsDoc::default();
        assert_eq!(keyspace_line(&d), "keys - · cached - · rss - · disk -");
        d.keyspace.keys = Some(1_500);
        d.keyspace.cache_hit_rate = Some(0.5);
        d.process.resident_memory_bytes = Some(3 << 20);
        let line = keyspace_line(&d);
        assert!(
            line.contains("rss 3.0 MiB") && line.contains("hit 50%"),
            "{line}"
        );
    }
    use statecraft_server::observe::sample::{ShardSample, StageFigure, StatusRates, StatusTotals};

    fn sample(seq: u64, applied: f64, p95: f64) -> Sample {
        let mut s = Sample {
            seq,
            unix_ms: 1_700_000_000_000 + seq * 1000,
            interval_s: 1.0,
            admitted_per_s: applied,
            events_per_s: StatusRates {
                applied,
                overloaded: 250.0,
                ..StatusRates::default()
            },
            totals: StatusTotals {
                applied: seq * 1_000,
                ..StatusTotals::default()
            },
            tcp_open: 4,
            fsyncs_per_s: 120.0,
            ..Sample::default()
        };
        s.stages_ms.ack = StageFigure {
            count: 10,
            mean: Some(2.0),
            p50: Some(1.5),
            p95: Some(4.0),
            p99: Some(7.25),
        };
        s.stages_ms.queue_wait.p95 = Some(p95);
        s.refusals_per_s.overloaded = 250.0;
        for shard in 0..2 {
            s.shards.push(ShardSample {
                shard,
                depth: 900,
                capacity: 1_000,
                p95_wait_ms: p95,
                admitted_per_s: applied / 2.0,
                taken_per_s: applied / 2.0,
                service_rate: 80_000.0,
                capacity_changes: 3,
                ..ShardSample::default()
            });
        }
        s
    }

    fn model() -> TopModel {
        let mut m = TopModel::new("http://127.0.0.1:7470");
        m.ingest(StatsDoc {
            version: "0.1.0".into(),
            uptime_s: 75.0,
            shards: vec![ShardDoc::default(); 2],
            observe: ObserveDoc {
                interval_ms: 1000,
                adaptive: Some(AdaptiveDoc {
                    target_ms: 10.0,
                    min: 64,
                    max: 65_536,
                    band: 0.2,
                }),
                samples: Some(
                    (1..=30)
                        .map(|i| sample(i, 50_000.0 + i as f64, 14.5))
                        .collect(),
                ),
                ..ObserveDoc::default()
            },
            ..StatsDoc::default()
        });
        m
    }

    #[test]
    fn the_screen_shows_every_figure() {
        let text = snapshot_text(&model(), 140).expect("renders");
        for want in [
            "statecraft top",
            "adaptive: target 10.0 ms ± 20%, capacity 64–65.5k",
            "sample #30",
            "applied/s 50.0k",
            "refused/s 250",
            "ack p99 7.25 ms",
            "wait p95 (worst) 14.5 ms / target 10.0 ms",
            "fill 90%",
            "events/s by status",
            "p95 queue wait vs target",
            "latency per stage",
            "shard queues",
            "900 / 1000",
            "90.0%",
            "overloaded",
            "keys - · cached - · rss - · disk -",
        ] {
            assert!(text.contains(want), "no `{want}` in\n{text}");
        }
        // One row per shard under the header.
        assert_eq!(text.matches("900 / 1000").count(), 2, "{text}");
    }

    #[test]
    fn new_samples_append_and_a_restart_starts_over() {
        let mut m = model();
        assert_eq!(m.last_seq(), Some(30));
        m.ingest(StatsDoc {
            observe: ObserveDoc {
                latest: Some(sample(31, 1.0, 1.0)),
                samples: Some(vec![sample(31, 1.0, 1.0)]),
                ..ObserveDoc::default()
            },
            ..StatsDoc::default()
        });
        assert_eq!(m.history.len(), 31);
        // The server restarted: its samples start again at 1.
        m.ingest(StatsDoc {
            observe: ObserveDoc {
                latest: Some(sample(2, 1.0, 1.0)),
                samples: Some(vec![sample(1, 1.0, 1.0), sample(2, 1.0, 1.0)]),
                ..ObserveDoc::default()
            },
            ..StatsDoc::default()
        });
        assert_eq!(m.last_seq(), Some(2));
        assert_eq!(m.history.len(), 2);
    }

    #[test]
    fn waiting_for_the_first_sample_renders() {
        let text = snapshot_text(&TopModel::new("http://x:1"), 100).expect("renders");
        assert!(text.contains("waiting for the first sample"), "{text}");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_num(1_234_567.0), "1.23M");
        assert_eq!(fmt_num(65_536.0), "65.5k");
        assert_eq!(fmt_num(4.0), "4");
        assert_eq!(fmt_ms(Some(0.25)), "250 µs");
        assert_eq!(fmt_ms(Some(12.34)), "12.3 ms");
        assert_eq!(fmt_ms(None), "—");
        assert_eq!(bar(0.5, 4), "██··");
    }
}
