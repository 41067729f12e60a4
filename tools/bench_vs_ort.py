#!/usr/bin/env python3
"""Onyx vs onnxruntime, side by side in one run, on the same models and inputs.

    python3 tools/bench_vs_ort.py [--models DIR ...] [--threads 1 2] [--duration 3] [--rounds 3] [--onyx PATH] [--openvino]
                                  [--write docs/performance.md]

For each model folder (model.onnx + test_data_set_0/input_N.pb, one TensorProto per graph input, of
any dtype; all of them are fed, to onnxruntime by name and to Onyx as repeated --input files): checks
that Onyx's outputs agree with onnxruntime's (max |Δ| over all outputs), then alternates
`onyx bench --json` and an onnxruntime timing loop of the same duration for --rounds rounds, and
prints each side's median p50 and the Onyx/onnxruntime ratio (below 1 means Onyx is faster). With --openvino, OpenVINO (CPU
device, f32 inference precision, one stream of the same thread count) is timed the same way in the
same run, printed as its own OpenVINO/onnxruntime ratio.
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


def input_files(folder):
    """test_data_set_0/input_N.pb of a model folder, in N order (empty when there is no input_0.pb)."""
    data = os.path.join(folder, "test_data_set_0")
    files = []
    while os.path.isfile(os.path.join(data, f"input_{len(files)}.pb")):
        files.append(os.path.join(data, f"input_{len(files)}.pb"))
    return files


def load_feeds(files, input_names):
    """The input tensors keyed by graph input name: by the name stored in each TensorProto where it
    is one of the graph's inputs, else by position (as `onyx run --input FILE` binds them)."""
    feeds, loose = {}, []
    for path in files:
        proto = onnx.load_tensor(path)
        array = numpy_helper.to_array(proto)
        if proto.name in input_names and proto.name not in feeds:
            feeds[proto.name] = array
        else:
            loose.append(array)
    for name in input_names:
        if name not in feeds and loose:
            feeds[name] = loose.pop(0)
    return feeds


def timed_p50(run, duration):
    for _ in range(5):
        run()
    samples = []
    end = time.perf_counter() + duration
    while time.perf_counter() < end or len(samples) < 10:
        t = time.perf_counter()
        run()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return samples[len(samples) // 2]


def ort_session(model, files, threads):
    """An onnxruntime session on the model, its load time (ms, this process) and its feed."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    start = time.perf_counter()
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - start) * 1000
    return session, load_ms, load_feeds(files, [i.name for i in session.get_inputs()])


def median(values):
    return sorted(values)[len(values) // 2]


def openvino_p50(model, files, threads, duration):
    """p50 (ms) and all outputs of OpenVINO on the CPU device: f32 inference precision (no bf16
    downcast), one stream of `threads` threads, one synchronous infer request."""
    import openvino as ov
    core = ov.Core()
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "NUM_STREAMS": "1",
                                                  "INFERENCE_NUM_THREADS": str(threads)})
    names = [next(iter(port.get_names()), "") for port in compiled.inputs]
    feeds = load_feeds(files, names)
    request = compiled.create_infer_request()
    inputs = {k: np.ascontiguousarray(feeds[name]) for k, name in enumerate(names)}
    p50 = timed_p50(lambda: request.infer(inputs), duration)
    result = request.infer(inputs)
    return p50, [np.asarray(result[port]) for port in compiled.outputs]


def max_abs_diff(got, expected):
    """Largest |got - expected| over all outputs (inf when shapes or counts differ)."""
    if len(got) != len(expected):
        return float("inf")
    worst = 0.0
    for a, b in zip(got, expected):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return float("inf")
        if a.size:
            worst = max(worst, float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()))
    return worst


def onyx_inputs(files):
    return [arg for path in files for arg in ("--input", path)]


RSS_CHILD = """
import sys, numpy as np, onnxruntime as ort
from onnx import numpy_helper, load_tensor
def peak_mb():
    # VmHWM belongs to this process image; ru_maxrss would carry the parent's peak over the fork.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
model, threads, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
tensors = [(t.name, numpy_helper.to_array(t)) for t in map(load_tensor, files)]
before = peak_mb()
options = ort.SessionOptions()
options.intra_op_num_threads = threads
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
names = [i.name for i in session.get_inputs()]
named = {name: x for name, x in tensors if name in names}
loose = [x for name, x in tensors if name not in names]
feed = {n: named[n] if n in named else loose.pop(0) for n in names}
for _ in range(20):
    session.run(None, feed)
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


def load_medians(onyx, model, files, threads, repeats):
    """Median model load time (ms) of `repeats` fresh loads on each side, alternating: single
    loads here swing by 2× with what the machine did just before.

    Both sides load in a fresh process, as a server starting up does: `onyx bench`'s load_ms, and
    a Python child timing only InferenceSession (after importing onnxruntime). A session made in
    this long-lived process would find onnxruntime's code and allocator warmed by earlier models."""
    onyx_ms, ort_ms = [], []
    for _ in range(repeats):
        out = subprocess.run([onyx, "bench", model, *onyx_inputs(files), "--threads", str(threads), "--warmup", "0",
                              "--duration", "0.001", "--json"], check=True, capture_output=True, text=True).stdout
        onyx_ms.append(json.loads(out.strip().splitlines()[-1])["load_ms"])
        out = subprocess.run([sys.executable, "-c", LOAD_CHILD, model, str(threads)], check=True, capture_output=True,
                             text=True).stdout
        ort_ms.append(float(out.split()[-1]))
    return sorted(onyx_ms)[len(onyx_ms) // 2], sorted(ort_ms)[len(ort_ms) // 2]


def ort_peak_rss(model, files, threads):
    """Peak RSS (MB) of a fresh Python process that loads the model in onnxruntime and runs it,
    and how much of it the interpreter, numpy and onnxruntime took before the model was loaded."""
    out = subprocess.run([sys.executable, "-c", RSS_CHILD, model, str(threads), *files],
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
    parser.add_argument("--duration", type=float, default=3, help="seconds of timed runs per side and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds per model and thread count; "
                        "each side's median p50 is reported")
    parser.add_argument("--load-repeats", type=int, default=3, help="fresh loads per model whose median is reported; "
                        "0: Onyx's load is the timed `onyx bench` run's own and onnxruntime's one fresh load (each extra "
                        "`onyx bench` also makes 200 untimed runs for its heap-growth figure: minutes on BERT-size models)")
    parser.add_argument("--onyx", default=os.path.join(root, ".build", "release", "onyx"), help="the onyx binary")
    parser.add_argument("--openvino", action="store_true", help="also time OpenVINO (CPU, f32, one stream) and "
                        "print OpenVINO / onnxruntime next to Onyx / onnxruntime")
    parser.add_argument("--write", help="markdown file whose bench_vs_ort table is replaced; the ratio chart "
                        "goes next to it as performance-ratios.svg")
    args = parser.parse_args()

    rows = []
    skipped = []
    openvino_failed = {}
    for folder_root in args.models:
        if not os.path.isdir(folder_root):
            continue
        for name in sorted(os.listdir(folder_root)):
            folder = os.path.join(folder_root, name)
            model = os.path.join(folder, "model.onnx")
            files = input_files(folder)
            if not (os.path.isfile(model) and files) or (args.only and name not in args.only):
                continue
            first = numpy_helper.to_array(onnx.load_tensor(files[0]))
            batch = first.shape[0] if first.ndim else 1
            with tempfile.TemporaryDirectory() as out:
                result = subprocess.run([args.onyx, "run", model, *onyx_inputs(files), "--output-dir", out],
                                        capture_output=True, text=True)
                if result.returncode != 0:
                    why = result.stderr.strip() or f"exit status {result.returncode}"
                    print(f"{name:28s} skipped: {why}", flush=True)
                    skipped.append((name, why.replace("onyx: error: ", "")))
                    continue
                got = []
                while os.path.isfile(os.path.join(out, f"output_{len(got)}.pb")):
                    got.append(numpy_helper.to_array(onnx.load_tensor(os.path.join(out, f"output_{len(got)}.pb"))))
            for threads in args.threads:
                # Rounds of Onyx then onnxruntime, each side's median p50 reported: on a shared VM a
                # core can run slow for tens of seconds, and alternating puts both sides in each window.
                session, ort_load, feed = ort_session(model, files, threads)
                onyx_runs, ort_runs, why = [], [], None
                for _ in range(args.rounds):
                    bench = subprocess.run(
                        [args.onyx, "bench", model, *onyx_inputs(files), "--threads", str(threads),
                         "--duration", str(args.duration), "--json"], capture_output=True, text=True)
                    if bench.returncode != 0:
                        why = bench.stderr.strip() or f"exit status {bench.returncode}"
                        break
                    onyx_runs.append(json.loads(bench.stdout.strip().splitlines()[-1]))
                    ort_runs.append(timed_p50(lambda: session.run(None, feed), args.duration))
                if why is not None:
                    print(f"{name:28s} t{threads} bench failed: {why}", flush=True)
                    skipped.append((name, "bench: " + why.replace("onyx: error: ", "")))
                    continue
                onyx = sorted(onyx_runs, key=lambda run: run["p50_ms"])[len(onyx_runs) // 2]
                ort_ms, expected = median(ort_runs), session.run(None, feed)
                del session
                agree = max_abs_diff(got, expected)
                ov_ms, ov_agree = None, None
                if args.openvino:
                    try:
                        ov_ms, ov_outputs = openvino_p50(model, files, threads, args.duration)
                        ov_agree = max_abs_diff(ov_outputs, expected)
                    except Exception as error:  # OpenVINO refusing a model is reported, not fatal
                        lines = [l.strip() for l in str(error).splitlines() if l.strip()]
                        # OpenVINO's messages open with source locations; the summary line says what failed.
                        why = next((l for l in lines if "failed for" in l), lines[-1] if lines else type(error).__name__)
                        print(f"{name:28s} OpenVINO failed: {why[:200]}", flush=True)
                        openvino_failed[name] = why[:200]
                ort_rss, ort_base = ort_peak_rss(model, files, threads)
                if args.load_repeats > 0:
                    onyx_load, ort_load = load_medians(args.onyx, model, files, threads, args.load_repeats)
                else:
                    out = subprocess.run([sys.executable, "-c", LOAD_CHILD, model, str(threads)], check=True,
                                         capture_output=True, text=True).stdout
                    onyx_load, ort_load = onyx["load_ms"], float(out.split()[-1])
                rows.append((name, batch, threads, onyx["p50_ms"], ort_ms, onyx["p50_ms"] / ort_ms, onyx_load, ort_load, agree,
                             onyx["peak_rss_mb"], onyx.get("base_rss_mb", 0), ort_rss, ort_base, ov_ms, ov_agree))
                openvino = ""
                if args.openvino:
                    openvino = (f"  openvino {ov_ms:9.3f} ms  ov/ort {ov_ms / ort_ms:5.2f}" if ov_ms is not None
                                else "  openvino    failed")
                print(f"{name:28s} b{batch} t{threads}  onyx {onyx['p50_ms']:9.3f} ms  ort {ort_ms:9.3f} ms  "
                      f"ratio {onyx['p50_ms'] / ort_ms:5.2f}{openvino}  load {onyx_load:7.1f}/{ort_load:7.1f} ms  "
                      f"max|Δ| {agree:.1e}", flush=True)

    ov_head, ov_rule = ("OpenVINO p50 (ms) | OpenVINO / ort | ", "---|---|") if args.openvino else ("", "")
    table = [f"| model | batch | threads | Onyx p50 (ms) | onnxruntime p50 (ms) | Onyx / ort | {ov_head}load Onyx / ort (ms) | "
             "peak RSS Onyx / Python+ort (MB) | model's share Onyx / ort (MB) | max abs diff |",
             f"|---|---|---|---|---|---|{ov_rule}---|---|---|---|"]
    for name, batch, threads, o, r, ratio, ol, rl, diff, rss, base, ort_rss, ort_base, ov, ov_diff in rows:
        ov_cells = ""
        if args.openvino:
            ov_cells = f"{ov:.3f} | **{ov / r:.2f}** | " if ov is not None else "failed | – | "
        table.append(f"| {name} | {batch} | {threads} | {o:.3f} | {r:.3f} | **{ratio:.2f}** | {ov_cells}{ol:.0f} / {rl:.0f} | "
                     f"{rss:.0f} / {ort_rss:.0f} | {rss - base:.0f} / {ort_rss - ort_base:.0f} | {diff:.1e} |")
    for name, why in skipped:
        why = " ".join(why.split()).replace("|", "\\|")
        table.append(f"| {name} | – | – | – | – | not run: {why} | {'– | – | ' if args.openvino else ''}– | – | – | – |")
    for name, why in openvino_failed.items():
        table.append(f"\nOpenVINO could not run {name}: {why}")
    print("\n".join(table))
    if args.write:
        command = "python3 tools/bench_vs_ort.py " + " ".join(sys.argv[1:])
        start, end = "<!-- bench_vs_ort:start -->", "<!-- bench_vs_ort:end -->"
        generated = (f"{start}\nCommand: `{command}` (onnxruntime {ort.__version__}, "
                     f"{platform.machine()}, same inputs, alternating in one run; median of {args.rounds} rounds' p50s "
                     f"of {args.duration:g} s each).\n\n"
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
