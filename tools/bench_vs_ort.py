#!/usr/bin/env python3
"""Onyx vs onnxruntime, side by side in one run, on the same models and inputs.

    python3 tools/bench_vs_ort.py [--models DIR ...] [--threads 1 2] [--duration 3] [--write docs/performance.md]

For each model folder (model.onnx + test_data_set_0/input_0.pb): checks that Onyx's output agrees
with onnxruntime's, then alternates `onyx bench --json` and an onnxruntime timing loop of the same
duration, and prints p50 latencies and the Onyx/onnxruntime ratio (below 1 means Onyx is faster).
Load times are medians of --load-repeats loads each, in a fresh process on both sides. Peak RSS is the whole process on each side;
"model's share" subtracts what each process held before loading the model (Onyx: its runtime;
onnxruntime: Python, numpy and the onnxruntime library).
With --write, replaces the table between the <!-- bench_vs_ort:start/end --> markers of
docs/performance.md (appending a "Latency" section with them if absent); text around them stays.
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper


def ort_p50(model, x, threads, duration):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    start = time.perf_counter()
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - start) * 1000
    feed = {session.get_inputs()[0].name: x}
    for _ in range(5):
        session.run(None, feed)
    samples = []
    end = time.perf_counter() + duration
    while time.perf_counter() < end or len(samples) < 10:
        t = time.perf_counter()
        session.run(None, feed)
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return samples[len(samples) // 2], load_ms, session.run(None, feed)[0]


RSS_CHILD = """
import sys, numpy as np, onnxruntime as ort
from onnx import numpy_helper, load_tensor
def peak_mb():
    # VmHWM belongs to this process image; ru_maxrss would carry the parent's peak over the fork.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
model, data, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
x = numpy_helper.to_array(load_tensor(data))
before = peak_mb()
options = ort.SessionOptions()
options.intra_op_num_threads = threads
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
for _ in range(20):
    session.run(None, {session.get_inputs()[0].name: x})
print(peak_mb(), before)
"""


LOAD_CHILD = """
import sys, time
import onnxruntime as ort
options = ort.SessionOptions()
options.intra_op_num_threads = int(sys.argv[2])
start = time.perf_counter()
ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
print((time.perf_counter() - start) * 1000)
"""


def load_medians(onyx, model, data, threads, repeats):
    """Median model load time (ms) of `repeats` fresh loads on each side, alternating: single
    loads here swing by 2× with what the machine did just before.

    Both sides load in a fresh process, as a server starting up does: `onyx bench`'s load_ms, and
    a Python child timing only InferenceSession (after importing onnxruntime). A session made in
    this long-lived process would find onnxruntime's code and allocator warmed by earlier models."""
    onyx_ms, ort_ms = [], []
    for _ in range(repeats):
        out = subprocess.run([onyx, "bench", model, "--input", data, "--threads", str(threads), "--warmup", "0",
                              "--duration", "0.001", "--json"], check=True, capture_output=True, text=True).stdout
        onyx_ms.append(json.loads(out.strip().splitlines()[-1])["load_ms"])
        out = subprocess.run([sys.executable, "-c", LOAD_CHILD, model, str(threads)], check=True, capture_output=True,
                             text=True).stdout
        ort_ms.append(float(out.split()[-1]))
    return sorted(onyx_ms)[len(onyx_ms) // 2], sorted(ort_ms)[len(ort_ms) // 2]


def ort_peak_rss(model, data, threads):
    """Peak RSS (MB) of a fresh Python process that loads the model in onnxruntime and runs it,
    and how much of it the interpreter, numpy and onnxruntime took before the model was loaded."""
    out = subprocess.run([sys.executable, "-c", RSS_CHILD, model, data, str(threads)],
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def write_chart(rows, path):
    """A bar chart of the Onyx / onnxruntime p50 ratios (SVG, no plotting library needed)."""
    bar, gap, left, width = 16, 6, 230, 420
    labels = [f"{name} b{batch} t{threads}" for name, batch, threads, *_ in rows]
    ratios = [row[5] for row in rows]
    top = max(3.0, max(ratios) * 1.05)
    height = 40 + len(rows) * (bar + gap) + 30
    scale = width / top
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 60}" height="{height}" '
             'font-family="sans-serif" font-size="11">',
             f'<text x="{left}" y="18" font-size="13">Onyx p50 / onnxruntime p50 (below 1: Onyx is faster)</text>']
    for i, (label, ratio) in enumerate(zip(labels, ratios)):
        y = 30 + i * (bar + gap)
        color = "#2e7d32" if ratio <= 1 else "#c62828"
        parts.append(f'<text x="{left - 6}" y="{y + bar - 4}" text-anchor="end">{label}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{ratio * scale:.1f}" height="{bar}" fill="{color}"/>')
        parts.append(f'<text x="{left + ratio * scale + 4:.1f}" y="{y + bar - 4}">{ratio:.2f}</text>')
    axis_bottom = 30 + len(rows) * (bar + gap)
    one = left + scale
    parts.append(f'<line x1="{one:.1f}" y1="26" x2="{one:.1f}" y2="{axis_bottom}" stroke="black" stroke-dasharray="4 3"/>')
    parts.append(f'<text x="{one:.1f}" y="{axis_bottom + 14}" text-anchor="middle">1.0</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    root = os.path.join(os.path.dirname(__file__), "..")
    parser.add_argument("--models", nargs="+", default=[os.path.join(root, "Fixtures"), os.path.join(root, "Models")])
    parser.add_argument("--only", nargs="*", help="model folder names to include")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--duration", type=float, default=3)
    parser.add_argument("--load-repeats", type=int, default=3, help="fresh loads per model whose median is reported")
    parser.add_argument("--onyx", default=os.path.join(root, ".build", "release", "onyx"))
    parser.add_argument("--write", help="markdown file whose bench_vs_ort table is replaced; the ratio chart "
                        "goes next to it as performance-ratios.svg")
    args = parser.parse_args()

    rows = []
    skipped = []
    for folder_root in args.models:
        if not os.path.isdir(folder_root):
            continue
        for name in sorted(os.listdir(folder_root)):
            folder = os.path.join(folder_root, name)
            model = os.path.join(folder, "model.onnx")
            data = os.path.join(folder, "test_data_set_0", "input_0.pb")
            if not (os.path.isfile(model) and os.path.isfile(data)) or (args.only and name not in args.only):
                continue
            x = numpy_helper.to_array(onnx.load_tensor(data))
            with tempfile.TemporaryDirectory() as out:
                result = subprocess.run([args.onyx, "run", model, "--input", data, "--output-dir", out], capture_output=True, text=True)
                if result.returncode != 0:
                    print(f"{name:28s} skipped: {result.stderr.strip()}", flush=True)
                    skipped.append((name, result.stderr.strip().replace("onyx: error: ", "")))
                    continue
                got = numpy_helper.to_array(onnx.load_tensor(os.path.join(out, "output_0.pb")))
            for threads in args.threads:
                bench = subprocess.run(
                    [args.onyx, "bench", model, "--input", data, "--threads", str(threads), "--duration", str(args.duration), "--json"],
                    check=True, capture_output=True, text=True)
                onyx = json.loads(bench.stdout.strip().splitlines()[-1])
                ort_ms, ort_load, expected = ort_p50(model, x, threads, args.duration)
                agree = float(np.abs(got - expected).max())
                ort_rss, ort_base = ort_peak_rss(model, data, threads)
                onyx_load, ort_load = load_medians(args.onyx, model, data, threads, args.load_repeats)
                rows.append((name, x.shape[0], threads, onyx["p50_ms"], ort_ms, onyx["p50_ms"] / ort_ms, onyx_load, ort_load, agree,
                             onyx["peak_rss_mb"], onyx.get("base_rss_mb", 0), ort_rss, ort_base))
                print(f"{name:28s} b{x.shape[0]} t{threads}  onyx {onyx['p50_ms']:9.3f} ms  ort {ort_ms:9.3f} ms  "
                      f"ratio {onyx['p50_ms'] / ort_ms:5.2f}  load {onyx_load:7.1f}/{ort_load:7.1f} ms  max|Δ| {agree:.1e}", flush=True)

    table = ["| model | batch | threads | Onyx p50 (ms) | onnxruntime p50 (ms) | Onyx / ort | load Onyx / ort (ms) | "
             "peak RSS Onyx / Python+ort (MB) | model's share Onyx / ort (MB) | max abs diff |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, batch, threads, o, r, ratio, ol, rl, diff, rss, base, ort_rss, ort_base in rows:
        table.append(f"| {name} | {batch} | {threads} | {o:.3f} | {r:.3f} | **{ratio:.2f}** | {ol:.0f} / {rl:.0f} | "
                     f"{rss:.0f} / {ort_rss:.0f} | {rss - base:.0f} / {ort_rss - ort_base:.0f} | {diff:.1e} |")
    for name, why in skipped:
        table.append(f"| {name} | – | – | – | – | not run: {why} | – | – | – | – |")
    print("\n".join(table))
    if args.write:
        command = "python3 tools/bench_vs_ort.py " + " ".join(sys.argv[1:])
        start, end = "<!-- bench_vs_ort:start -->", "<!-- bench_vs_ort:end -->"
        generated = (f"{start}\nCommand: `{command}` (onnxruntime {ort.__version__}, "
                     f"{platform.machine()}, same inputs, alternating in one run; p50 of {args.duration:g} s each).\n\n"
                     + "\n".join(table) + f"\n{end}")
        text = open(args.write).read() if os.path.exists(args.write) else "# Performance\n"
        # Only the part between the markers is replaced: analysis written around it stays.
        if start in text and end in text:
            text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: generated, text, flags=re.S)
        else:
            text = text.rstrip() + "\n\n## Latency: Onyx vs onnxruntime\n\n" + generated + "\n"
        open(args.write, "w").write(text)
        write_chart(rows, os.path.join(os.path.dirname(os.path.abspath(args.write)), "performance-ratios.svg"))


if __name__ == "__main__":
    main()
