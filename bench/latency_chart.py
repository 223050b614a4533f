#!/usr/bin/env python3
"""Latency over time as an SVG, from CSV files written by the w6 example's
fixed-rate mode (`W3_SERIES=path`): `scheduled_ms,latency_us` per batch.

    python3 bench/latency_chart.py out.svg "title" before.csv:before after.csv:after

Each series is drawn as the max latency per 100 ms window (a stall shows as a
spike), on a log scale; the legend gives each series' p50 / p99 / p99.9 / max.
No dependencies beyond the standard library.
"""
import math
import sys

COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd"]


def load(path):
    rows = []
    with open(path) as f:
        next(f)
        for line in f:
            a, b = line.strip().split(",")
            rows.append((float(a), int(b) / 1000.0))
    return rows


def pct(sorted_vals, q):
    if not sorted_vals:
        return 0.0
    i = min(len(sorted_vals) - 1, max(0, math.ceil(q * len(sorted_vals)) - 1))
    return sorted_vals[i]


def main():
    out, title, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
    series = []
    for spec in specs:
        path, _, label = spec.partition(":")
        rows = load(path)
        lat = sorted(r[1] for r in rows)
        stats = (pct(lat, 0.5), pct(lat, 0.99), pct(lat, 0.999), lat[-1] if lat else 0)
        windows = {}
        for t, ms in rows:
            w = int(t // 100)
            windows[w] = max(windows.get(w, 0.0), ms)
        series.append((label or path, sorted(windows.items()), stats))
    W, H, L, R, T, B = 900, 420, 70, 20, 40, 90
    tmax = max((w[-1][0] for _, w, _ in series if w), default=1) * 100 + 100
    ymin, ymax = 0.05, max(max(ms for _, ms in w) for _, w, _ in series) * 1.5
    ly0, ly1 = math.log10(ymin), math.log10(ymax)

    def x(t):
        return L + (W - L - R) * t / tmax

    def y(ms):
        v = math.log10(max(ms, ymin))
        return T + (H - T - B) * (1 - (v - ly0) / (ly1 - ly0))

    p = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W/2}" y="20" text-anchor="middle" font-size="14">{title}</text>']
    d = 10 ** math.floor(ly0)
    while d <= ymax:
        for m in (1, 2, 5):
            v = d * m
            if ymin <= v <= ymax:
                p.append(f'<line x1="{L}" x2="{W-R}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>')
                p.append(f'<text x="{L-6}" y="{y(v)+4:.1f}" text-anchor="end">{v:g}</text>')
        d *= 10
    step = max(1, int(tmax / 1000 / 10)) * 1000
    t = 0
    while t <= tmax:
        p.append(f'<text x="{x(t):.1f}" y="{H-B+16}" text-anchor="middle">{t/1000:g}</text>')
        t += step
    p.append(f'<text x="{(L+W-R)/2}" y="{H-B+32}" text-anchor="middle">seconds (scheduled time)</text>')
    p.append(f'<text x="16" y="{(T+H-B)/2}" transform="rotate(-90 16 {(T+H-B)/2})" text-anchor="middle">ack latency, ms (max per 100 ms, log)</text>')
    p.append(f'<rect x="{L}" y="{T}" width="{W-L-R}" height="{H-T-B}" fill="none" stroke="#888"/>')
    for i, (label, w, st) in enumerate(series):
        c = COLORS[i % len(COLORS)]
        pts = " ".join(f"{x(k*100+50):.1f},{y(v):.1f}" for k, v in w)
        p.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{pts}"/>')
        ly = H - B + 48 + 16 * i
        p.append(f'<line x1="{L}" x2="{L+24}" y1="{ly-4}" y2="{ly-4}" stroke="{c}" stroke-width="3"/>')
        p.append(f'<text x="{L+30}" y="{ly}">{label}: p50 {st[0]:.2f} ms, p99 {st[1]:.2f} ms, p99.9 {st[2]:.2f} ms, max {st[3]:.2f} ms</text>')
    p.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(p) + "\n")


if __name__ == "__main__":
    main()
