#!/usr/bin/env python3
"""Turn hyperfine's JSON into the benchmark's results: a JSON file, a
markdown table and an SVG chart for the book, and a table on stdout.

  bench-report.py HYPERFINE_JSON OUT_DIR "how it was measured" [LIFECYCLE_JSON RSS_JSON]

With the life cycle's measurements (scripts/bench-lifecycle), also
lifecycle.md: `run -d` and `exec` beside runc's and crun's, and the
monitor's resident memory beside conmon's.
"""

import datetime
import json
import statistics
import sys
from pathlib import Path


def quantile(times, q):
    times = sorted(times)
    k = (len(times) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(times) - 1)
    return times[lo] + (times[hi] - times[lo]) * (k - lo)


def summarize(hyperfine, baseline=lambda name: "crun"):
    rows = []
    for r in hyperfine["results"]:
        times = r.get("times") or [r["mean"]]
        rows.append({
            "name": r["command"],
            "median_ms": round(statistics.median(times) * 1000, 3),
            "mean_ms": round(r["mean"] * 1000, 3),
            "stddev_ms": round((r.get("stddev") or 0) * 1000, 3),
            "p10_ms": round(quantile(times, 0.10) * 1000, 3),
            "p90_ms": round(quantile(times, 0.90) * 1000, 3),
            "min_ms": round(r["min"] * 1000, 3),
            "max_ms": round(r["max"] * 1000, 3),
            "runs": len(times),
        })
    for r in rows:
        crun = next((c for c in rows if c["name"] == baseline(r["name"])), None)
        r["ratio_to_crun"] = round(r["median_ms"] / crun["median_ms"], 3) if crun else None
    return rows


def lifecycle_baseline(name):
    """`myruntime exec` is compared with `crun exec`, and so on."""
    return "crun " + name.split(" ", 1)[1]


def lifecycle_table(rows, rss):
    out = table(rows)
    mine, conmon = rss.get("myruntime monitor"), rss.get("conmon")
    out += "\n| monitor | resident memory | ÷ conmon |\n|---|---:|---:|\n"
    ratio = f"{mine / conmon:.2f}" if mine and conmon else "–"
    out += f"| **myruntime's monitor** | {mine} KiB | {ratio} |\n"
    if conmon:
        out += f"| conmon (podman's, over runc) | {conmon} KiB | 1.00 |\n"
    return out


def table(rows):
    lines = [
        "| runtime | median | p10 – p90 | min – max | ÷ crun |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = f"{r['ratio_to_crun']:.2f}" if r["ratio_to_crun"] is not None else "–"
        name = f"**{r['name']}**" if r["name"].startswith("myruntime") else r["name"]
        lines.append(
            f"| {name} | {r['median_ms']:.2f} ms | {r['p10_ms']:.2f} – {r['p90_ms']:.2f} ms "
            f"| {r['min_ms']:.2f} – {r['max_ms']:.2f} ms | {ratio} |"
        )
    return "\n".join(lines) + "\n"


def svg(rows, how):
    width, left, right, bar, gap, top = 760, 150, 90, 22, 12, 56
    height = top + len(rows) * (bar + gap) + 40
    scale_max = max(r["p90_ms"] for r in rows) * 1.1
    x = lambda ms: left + (width - left - right) * ms / scale_max
    colors = {"myruntime": "#2b7bba", "runc": "#9a9a9a", "crun": "#6b6b6b"}
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="22" font-size="16" font-weight="bold">Container start latency (median; '
        f'whiskers: 10th–90th percentile)</text>',
        f'<text x="{left}" y="42" fill="#555" font-size="11">{how}</text>',
    ]
    crun = next((r for r in rows if r["name"] == "crun"), None)
    for i, r in enumerate(rows):
        y = top + i * (bar + gap)
        color = colors.get(r["name"].split(" ")[0], "#8cb8dc")
        out.append(f'<text x="{left - 8}" y="{y + bar * 0.7}" text-anchor="end">{r["name"]}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{x(r["median_ms"]) - left:.1f}" height="{bar}" fill="{color}"/>')
        mid = y + bar / 2
        out.append(f'<line x1="{x(r["p10_ms"]):.1f}" y1="{mid}" x2="{x(r["p90_ms"]):.1f}" y2="{mid}" stroke="black"/>')
        for end in (r["p10_ms"], r["p90_ms"]):
            out.append(f'<line x1="{x(end):.1f}" y1="{y + 5}" x2="{x(end):.1f}" y2="{y + bar - 5}" stroke="black"/>')
        out.append(f'<text x="{x(max(r["p90_ms"], r["median_ms"])) + 6:.1f}" y="{y + bar * 0.7}">'
                   f'{r["median_ms"]:.1f} ms</text>')
    if crun:
        cx = x(crun["median_ms"])
        bottom = top + len(rows) * (bar + gap)
        out.append(f'<line x1="{cx:.1f}" y1="{top - 6}" x2="{cx:.1f}" y2="{bottom}" stroke="#c33" '
                   f'stroke-dasharray="4 3"/>')
        out.append(f'<text x="{cx + 4:.1f}" y="{bottom + 16}" fill="#c33" font-size="11">crun</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) not in (4, 6):
        print(__doc__, file=sys.stderr)
        return 2
    hyperfine = json.load(open(argv[1]))
    out, how = Path(argv[2]), argv[3]
    rows = summarize(hyperfine)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    result = {"measured": now, "how": how, "results": rows}
    if len(argv) == 6:
        life = summarize(json.load(open(argv[4])), lifecycle_baseline)
        rss = json.load(open(argv[5]))
        result["lifecycle"] = life
        result["monitor_rss_kib"] = rss
        text = lifecycle_table(life, rss)
        (out / "lifecycle.md").write_text(f"Measured {now}: {how}.\n\n" + text)
        print(text)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "results.md").write_text(f"Measured {now}: {how}.\n\n" + table(rows))
    (out / "start-latency.svg").write_text(svg(rows, how))
    print(table(rows))
    me = next((r for r in rows if r["name"] == "myruntime"), None)
    if me and me["ratio_to_crun"] is not None:
        verdict = "no slower than crun" if me["ratio_to_crun"] <= 1.0 else "SLOWER than crun"
        print(f"myruntime / crun = {me['ratio_to_crun']:.2f}: {verdict}")
    print(f"written: {out}/results.json, results.md, start-latency.svg")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
