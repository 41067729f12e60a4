#!/usr/bin/env python3
"""Kernel throughput: GFLOP/s of one-operator models, Onyx vs onnxruntime, side by side.

    python3 tools/bench_kernels.py [--threads 1] [--duration 1] [--only NAME ...] [--write docs/performance.md]

Builds one-node models in a temporary folder — MatMul at several shapes (weights constant, as in
a model), every distinct Conv of ResNet-18 and the pointwise and depthwise convolutions typical of
MobileNetV2 — and times each with `onyx bench --json` and with onnxruntime, alternating, on the same
input. Rates count 2·M·N·K per product (bias and activation not counted). The core's peak is
measured first by tools/peak_flops.c (independent FMA chains, nothing read from memory), so every
rate is also given as a share of what the core can do.

With --write, replaces the table between <!-- bench_kernels:start/end --> in the given file.
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from bench_vs_ort import ort_p50

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

# name, (batch, channels, height, width), (filters, kernel, stride, pad, group)
CONVOLUTIONS = [
    ("resnet18.conv1 7x7/2 3→64 224²", (1, 3, 224, 224), (64, 7, 2, 3, 1)),
    ("resnet18.layer1 3x3 64→64 56²", (1, 64, 56, 56), (64, 3, 1, 1, 1)),
    ("resnet18.layer2 3x3/2 64→128 56²", (1, 64, 56, 56), (128, 3, 2, 1, 1)),
    ("resnet18.layer2 3x3 128→128 28²", (1, 128, 28, 28), (128, 3, 1, 1, 1)),
    ("resnet18.layer2 1x1/2 64→128 56²", (1, 64, 56, 56), (128, 1, 2, 0, 1)),
    ("resnet18.layer3 3x3/2 128→256 28²", (1, 128, 28, 28), (256, 3, 2, 1, 1)),
    ("resnet18.layer3 3x3 256→256 14²", (1, 256, 14, 14), (256, 3, 1, 1, 1)),
    ("resnet18.layer4 3x3/2 256→512 14²", (1, 256, 14, 14), (512, 3, 2, 1, 1)),
    ("resnet18.layer4 3x3 512→512 7²", (1, 512, 7, 7), (512, 3, 1, 1, 1)),
    ("mobilenet_v2 1x1 32→192 56²", (1, 32, 56, 56), (192, 1, 1, 0, 1)),
    ("mobilenet_v2 1x1 192→32 28²", (1, 192, 28, 28), (32, 1, 1, 0, 1)),
    ("mobilenet_v2 1x1 384→64 14²", (1, 384, 14, 14), (64, 1, 1, 0, 1)),
    ("mobilenet_v2 dw 3x3 144 56²", (1, 144, 56, 56), (144, 3, 1, 1, 144)),
    ("mobilenet_v2 dw 3x3/2 144 56²", (1, 144, 56, 56), (144, 3, 2, 1, 144)),
]

# name, M, K, N: A[M, K] (the input) × B[K, N] (constant weights)
PRODUCTS = [
    ("matmul 1×784×512 (batch-1 MLP)", 1, 784, 512),
    ("matmul 32×128×512 (transformer FFN)", 32, 128, 512),
    ("matmul 256×256×256", 256, 256, 256),
    ("matmul 512×512×512", 512, 512, 512),
    ("matmul 1024×1024×1024", 1024, 1024, 1024),
    ("matmul 197×768×768 (ViT attention projection)", 197, 768, 768),
    ("matmul 197×768×3072 (ViT FFN up)", 197, 768, 3072),
    ("matmul 197×3072×768 (ViT FFN down)", 197, 3072, 768),
    ("matmul 128×768×2304 (GPT-2 c_attn)", 128, 768, 2304),
    ("matmul 128×768×50257 (GPT-2 LM head)", 128, 768, 50257),
]


def conv_model(shape, spec):
    n, c, h, w = shape
    filters, kernel, stride, pad, group = spec
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((filters, c // group, kernel, kernel)).astype(np.float32) * 0.1
    bias = rng.standard_normal(filters).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[kernel, kernel], strides=[stride, stride],
                            pads=[pad] * 4, group=group)
    oh = (h + 2 * pad - kernel) // stride + 1
    ow = (w + 2 * pad - kernel) // stride + 1
    graph = helper.make_graph(
        [node], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, filters, oh, ow])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    flops = 2 * n * filters * oh * ow * (c // group) * kernel * kernel
    return graph, rng.standard_normal(shape).astype(np.float32), flops


def matmul_model(m, k, n):
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((k, n)).astype(np.float32) * 0.05
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        [numpy_helper.from_array(weight, "w")])
    return graph, rng.standard_normal((m, k)).astype(np.float32), 2 * m * n * k


def peak_gflops():
    """The core's FMA peak from tools/peak_flops.c, or None without a C compiler."""
    with tempfile.TemporaryDirectory() as folder:
        binary = os.path.join(folder, "peak")
        for compiler in ("clang", "cc", "gcc"):
            built = subprocess.run([compiler, "-O2", "-march=native", os.path.join(ROOT, "tools", "peak_flops.c"), "-o", binary],
                                   capture_output=True)
            if built.returncode == 0:
                out = subprocess.run([binary], capture_output=True, text=True, check=True).stdout.split()
                return float(out[0]), out[1]
    return None, None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", nargs="+", type=int, default=[1])
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--only", nargs="*", help="substrings of the case names to include")
    parser.add_argument("--onyx", default=os.path.join(ROOT, ".build", "release", "onyx"))
    parser.add_argument("--isa", help="Onyx micro-kernel variant (default: best)")
    parser.add_argument("--write", help="markdown file whose bench_kernels table is replaced")
    args = parser.parse_args()

    peak, peak_isa = peak_gflops()
    if peak:
        print(f"peak: {peak:.1f} GFLOP/s per core ({peak_isa} FMA chains)", flush=True)
    cases = [(name, *conv_model(shape, spec)) for name, shape, spec in CONVOLUTIONS]
    cases += [(name, *matmul_model(m, k, n)) for name, m, k, n in PRODUCTS]
    if args.only:
        cases = [c for c in cases if any(s in c[0] for s in args.only)]

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for index, (name, graph, x, flops) in enumerate(cases):
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
            path = os.path.join(folder, f"case{index}.onnx")
            data = os.path.join(folder, f"case{index}.pb")
            onnx.save(model, path)
            with open(data, "wb") as f:
                f.write(numpy_helper.from_array(x, "x").SerializeToString())
            for threads in args.threads:
                command = [args.onyx, "bench", path, "--input", data, "--threads", str(threads),
                           "--duration", str(args.duration), "--warmup", "20", "--json"]
                if args.isa:
                    command += ["--isa", args.isa]
                onyx = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
                ort_ms, _, _ = ort_p50(path, [data], threads, args.duration)
                onyx_ms = onyx["p50_ms"]
                row = (name, threads, flops / 1e6, onyx_ms, ort_ms, flops / onyx_ms / 1e6, flops / ort_ms / 1e6)
                rows.append(row)
                share = f"  {row[5] / (peak * threads):4.0%} of peak" if peak else ""
                print(f"{name:40s} {threads}t  {onyx_ms:8.3f} ms {ort_ms:8.3f} ms  "
                      f"onyx {row[5]:6.1f} GFLOP/s  ort {row[6]:6.1f}  ratio {onyx_ms / ort_ms:5.2f}{share}", flush=True)

    if args.write:
        command = "python3 tools/bench_kernels.py " + " ".join(sys.argv[1:])
        lines = [f"Command: `{command}` (onnxruntime {ort.__version__}, {platform.machine()}; p50 of {args.duration:g} s each, "
                 f"alternating). Peak: {peak:.1f} GFLOP/s per core ({peak_isa}, `tools/peak_flops.c`)." if peak else
                 f"Command: `{command}`.", "",
                 "| kernel | threads | MFLOP | Onyx p50 (ms) | onnxruntime p50 (ms) | Onyx GFLOP/s | ort GFLOP/s | Onyx / ort | Onyx % of peak |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for name, threads, mflop, onyx_ms, ort_ms, onyx_rate, ort_rate in rows:
            share = f"{onyx_rate / (peak * threads):.0%}" if peak else "–"
            lines.append(f"| {name} | {threads} | {mflop:.1f} | {onyx_ms:.3f} | {ort_ms:.3f} | {onyx_rate:.1f} | {ort_rate:.1f} | "
                         f"**{onyx_ms / ort_ms:.2f}** | {share} |")
        table = "\n".join(lines)
        text = open(args.write).read() if os.path.exists(args.write) else ""
        start, end = "<!-- bench_kernels:start -->", "<!-- bench_kernels:end -->"
        if start in text and end in text:
            text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: f"{start}\n{table}\n{end}", text, flags=re.S)
        else:
            text += f"\n## Kernel throughput\n\n{start}\n{table}\n{end}\n"
        with open(args.write, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
