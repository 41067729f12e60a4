#!/usr/bin/env python3
"""`onyx quantize --dynamic` against onnxruntime.quantization.quantize_dynamic on the same float models.

    python3 tools/check_quantize.py [--out Bench] [--only mlp bert_small] [--onyx .build/release/onyx]
    python3 tools/bench_vs_ort.py --models Bench --only mlp_int8_onyx mlp_int8 bert_small_int8_onyx bert_small_int8 \\
        --threads 1 --duration 2 --load-repeats 0 --onyx .build/release/onyx

For each model of tools/make_int8_set.py (an MLP 784-512-256-10 and a BERT-style encoder, random
weights, exported in fp32), writes three folders in the layout of tools/make_bench_set.py:

    Bench/<name>_fp32/          the float export, PyTorch's outputs checked against onnxruntime's
    Bench/<name>_int8_onyx/     `onyx quantize --dynamic` of it
    Bench/<name>_int8/          quantize_dynamic(per_channel=True, weight_type=QInt8) of it, with
                                onnxruntime's defaults (which also quantize Gather and Conv)

(each test_data_set_0/output_N.pb holds onnxruntime's outputs of that folder's model), then checks,
all in onnxruntime:
- against quantize_dynamic restricted to MatMul (what Onyx quantizes): the same operators, and
  every weight onnxruntime quantized has the same int8 values, scales and zero points in Onyx's
  file (exit 1 if not);
- the largest output difference between the two quantized models, and of each from the float model.
bench_vs_ort.py then times Onyx and onnxruntime on the folders side by side.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
from make_bench_set import TEXT_AXES, export_torch, fresh, text_inputs, write_case  # noqa: E402
from make_int8_set import MLP, bert  # noqa: E402

warnings.filterwarnings("ignore")

MODELS = {
    "mlp": (MLP, lambda: (torch.randn(1, 1, 784, generator=torch.Generator().manual_seed(3)),),
            ["input"], ["output"], {"input": {0: "batch"}}),
    "bert_small": (bert(256, 4, 4, 1024), lambda: text_inputs(30522, True),
                   ["input_ids", "attention_mask", "token_type_ids"], ["last_hidden_state", "pooler_output"], TEXT_AXES),
}


def run_ort(path, feeds):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, feeds)))


def histogram(path):
    counts = {}
    for node in onnx.load(path).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def compare_weights(onyx_path, ort_path):
    """(weights compared, [mismatches]) over every *_quantized / *_scale / *_zero_point initializer
    of onnxruntime's model, looked up by the same name in Onyx's."""
    onyx_weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(onyx_path).graph.initializer}
    compared, bad = 0, []
    for tensor in onnx.load(ort_path).graph.initializer:
        if not tensor.name.endswith(("_quantized", "_scale", "_zero_point")):
            continue
        want = numpy_helper.to_array(tensor)
        # onnxruntime turns a Gemm with transB into a MatMul reading "<B>_Transposed", and Onyx names the
        # quantized weight after that too; onyx builds before 2026-12-07 kept B's own name.
        got = onyx_weights.get(tensor.name, onyx_weights.get(tensor.name.replace("_Transposed", "", 1)))
        compared += 1
        if got is None:
            bad.append(f"{tensor.name}: missing from Onyx's model")
        elif got.dtype != want.dtype or got.shape != want.shape:
            bad.append(f"{tensor.name}: {got.dtype}{list(got.shape)} vs onnxruntime's {want.dtype}{list(want.shape)}")
        elif not np.array_equal(got, want):
            differing = int(np.sum(got != want))
            bad.append(f"{tensor.name}: {differing} of {want.size} values differ "
                       f"(max |Δ| {np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))):.3g})")
    return compared, bad


def max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))) for x, y in zip(a, b))


def check(name, out, onyx):
    from onnxruntime.quantization import QuantType, quantize_dynamic
    make, make_inputs, input_names, output_names, axes = MODELS[name]
    torch.manual_seed(0)
    model = make().eval()
    example = make_inputs()
    feeds = [t.numpy() for t in example]
    with torch.no_grad():
        y = model(*example)
    reference = [t.numpy() for t in ([y] if isinstance(y, torch.Tensor) else list(y))]

    fp32_folder = fresh(out, f"{name}_fp32")
    with tempfile.TemporaryDirectory() as work:
        export_torch(model, example, work, "legacy", input_names, output_names, axes)
        os.replace(os.path.join(work, "model.onnx"), os.path.join(fp32_folder, "model.onnx"))
    fp32 = os.path.join(fp32_folder, "model.onnx")
    write_case(fp32_folder, feeds, reference)

    onyx_folder = fresh(out, f"{name}_int8_onyx")
    onyx_model = os.path.join(onyx_folder, "model.onnx")
    report = subprocess.run([onyx, "quantize", "--dynamic", fp32, onyx_model], capture_output=True, text=True)
    if report.returncode != 0:
        raise SystemExit(f"{name}: onyx quantize failed:\n{report.stdout}{report.stderr}")
    print(f"{name}: onyx quantize: {report.stdout.splitlines()[0]}")
    write_case(onyx_folder, feeds)

    # What a user gets from onnxruntime: its defaults also quantize Gather (embedding tables) and Conv.
    ort_folder = fresh(out, f"{name}_int8")
    ort_model = os.path.join(ort_folder, "model.onnx")
    quantize_dynamic(fp32, ort_model, per_channel=True, weight_type=QuantType.QInt8)
    write_case(ort_folder, feeds)

    failures = []
    with tempfile.TemporaryDirectory() as work:
        # Like for like: onnxruntime quantizing MatMul alone, as Onyx does.
        matmul_only = os.path.join(work, "model.onnx")
        quantize_dynamic(fp32, matmul_only, per_channel=True, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
        if histogram(onyx_model) != histogram(matmul_only):
            failures.append(f"operators differ: Onyx {histogram(onyx_model)}, onnxruntime {histogram(matmul_only)}")
        compared, bad = compare_weights(onyx_model, matmul_only)
        failures += bad
        y_fp32, y_onyx, y_same, y_ort = (run_ort(p, feeds) for p in (fp32, onyx_model, matmul_only, ort_model))
    print(f"{name}: {compared} quantized weight tensors compared with onnxruntime's (MatMul only), {len(bad)} differ; "
          f"run by onnxruntime, max |Δ|: Onyx's int8 vs onnxruntime's MatMul-only int8 {max_diff(y_onyx, y_same):.2e}, "
          f"vs its default int8 {max_diff(y_onyx, y_ort):.2e}; vs fp32: Onyx's int8 {max_diff(y_onyx, y_fp32):.2e}, "
          f"onnxruntime's default int8 {max_diff(y_ort, y_fp32):.2e} "
          f"(fp32 outputs up to {max(float(np.max(np.abs(t))) for t in y_fp32):.2f})", flush=True)
    print(f"{name}: operators, Onyx {histogram(onyx_model)}; onnxruntime default {histogram(ort_model)}")
    for failure in failures:
        print(f"  {name}: {failure}")
    return not failures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.join(os.path.dirname(__file__), "..")
    parser.add_argument("--out", default=os.path.join(root, "Bench"))
    parser.add_argument("--only", nargs="*", help="model names (default: all): " + ", ".join(MODELS))
    parser.add_argument("--onyx", default=os.path.join(root, ".build", "release", "onyx"))
    args = parser.parse_args()
    names = [n for n in MODELS if not args.only or n in args.only]
    ok = all([check(name, args.out, args.onyx) for name in names])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
