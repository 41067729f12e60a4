#!/usr/bin/env python3
"""Builds the small quantized-operator fixtures (issue [10]) into Fixtures/qops/ (a folder of its
own: FixtureTests' float tolerances do not apply; QuantizedContribTests reads them):

    python3 tools/make_qops_fixtures.py [--out Fixtures/qops]

- qop / qdq: a tiny CNN head with Sigmoid, LeakyRelu, Concat, two AveragePools
  (count_include_pad 1 with pads; ceil_mode 1 with count_include_pad 0) and a Softmax, quantized by
  onnxruntime.quantization.quantize_static (uint8 activations, int8 per-channel weights, MinMax
  calibration) in QuantFormat.QOperator (QLinearConv, com.microsoft QLinearSigmoid,
  QLinearLeakyRelu, QLinearConcat, QLinearAveragePool, QLinearSoftmax) and QuantFormat.QDQ
  (QuantizeLinear/DequantizeLinear around the float operators);
- lstm: a bidirectional LSTM 8→16 over 5 steps with a linear read-out, quantized by
  quantize_dynamic with op_types_to_quantize ["LSTM", "MatMul"] (com.microsoft DynamicQuantizeLSTM,
  the weights int8 per tensor);
- tables: one com.microsoft node per operator (both 8-bit types where onnxruntime takes them)
  on inputs holding every byte value: QLinearSigmoid, QLinearLeakyRelu, QLinearConcat, QLinearSoftmax,
  a channels_last QLinearAveragePool, written with onnx.helper.

Each folder holds model.onnx and test_data_set_0/input_0.pb, output_0.pb; the expected outputs are
onnxruntime's (CPU provider) for the quantized model. The print-out names the operators each model
holds.
"""
import argparse
import os
import sys
import tempfile
import warnings

import numpy as np
import onnx
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(__file__))
from make_bench_set import export_torch, fresh, write_case  # noqa: E402
from make_int8_set import calibration_reader  # noqa: E402

warnings.filterwarnings("ignore")


class Head(nn.Module):
    """x [N, 3, 12, 12] → Conv → Sigmoid ‖ LeakyRelu → Concat → AvgPool(3, 2, pad 1) →
    AvgPool(2, 2, ceil, exclusive) → Flatten → Softmax."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1)
        self.pool2 = nn.AvgPool2d(2, stride=2, ceil_mode=True, count_include_pad=False)

    def forward(self, x):
        y = self.conv(x)
        y = torch.cat([torch.sigmoid(y), nn.functional.leaky_relu(y, 0.1)], dim=1)
        y = self.pool2(self.pool(y))
        return torch.softmax(torch.flatten(y, 1), dim=-1)


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 16, bidirectional=True)
        self.out = nn.Linear(32, 4)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.out(y)


def static(out, name, quant_format):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    torch.manual_seed(0)
    model = Head().eval()
    shape = (2, 3, 12, 12)
    example = torch.randn(shape, generator=torch.Generator().manual_seed(7))
    folder = fresh(out, name)
    with tempfile.TemporaryDirectory() as work:
        export_torch(model, (example,), work, "legacy", ["input"], ["output"], {})
        prepared = os.path.join(work, "prepared.onnx")
        quant_pre_process(os.path.join(work, "model.onnx"), prepared)
        quantize_static(prepared, os.path.join(folder, "model.onnx"), calibration_reader("input", shape),
                        quant_format=quant_format, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    with torch.no_grad():
        y = model(example)
    return write_case(folder, [example.numpy()], [y.numpy()])


def lstm(out, name):
    from onnxruntime.quantization import QuantType, quantize_dynamic
    torch.manual_seed(0)
    model = Recurrent().eval()
    example = torch.randn(5, 2, 8, generator=torch.Generator().manual_seed(9))
    folder = fresh(out, name)
    with tempfile.TemporaryDirectory() as work:
        export_torch(model, (example,), work, "legacy", ["input"], ["output"], {})
        quantize_dynamic(os.path.join(work, "model.onnx"), os.path.join(folder, "model.onnx"),
                         op_types_to_quantize=["LSTM", "MatMul"], weight_type=QuantType.QInt8)
    with torch.no_grad():
        y = model(example)
    return write_case(folder, [example.numpy()], [y.numpy()])


def tables(out, name):
    """One node per operator on inputs covering every byte value, both 8-bit types: the lookup
    tables, Concat's requantization, Softmax and a channels_last AveragePool, against onnxruntime."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(3)
    consts = {}

    def const(value, dtype):
        name = f"c{len(consts)}"
        consts[name] = numpy_helper.from_array(np.array(value, dtype=dtype), name)
        return name

    def params(scale, zero, dtype):
        return [const(scale, np.float32), const(zero, dtype)]

    ms = "com.microsoft"
    nodes = [
        helper.make_node("QLinearSigmoid", ["xu"] + params(0.05, 131, np.uint8) + params(1 / 255, 0, np.uint8), ["sigmoid_u8"], domain=ms),
        helper.make_node("QLinearSigmoid", ["xs"] + params(0.043, -3, np.int8) + params(1 / 256, -128, np.int8), ["sigmoid_s8"], domain=ms),
        helper.make_node("QLinearLeakyRelu", ["xu"] + params(0.021, 140, np.uint8) + params(0.013, 30, np.uint8), ["leaky_u8"],
                         domain=ms, alpha=0.17),
        helper.make_node("QLinearLeakyRelu", ["xs"] + params(0.03, 5, np.int8) + params(0.02, -60, np.int8), ["leaky_s8"], domain=ms),
        helper.make_node("QLinearConcat", params(0.031, 120, np.uint8) + ["xu"] + params(0.05, 131, np.uint8)
                         + ["xu"] + params(0.031, 120, np.uint8) + ["xu"] + params(0.011, 7, np.uint8), ["concat_u8"],
                         domain=ms, axis=0),
        helper.make_node("QLinearSoftmax", ["mu"] + params(0.09, 100, np.uint8) + params(1 / 256, 0, np.uint8), ["softmax_u8"],
                         domain=ms, axis=-1, opset=13),
        helper.make_node("QLinearSoftmax", ["ms"] + params(0.02, 0, np.int8) + params(1 / 256, -128, np.int8), ["softmax_s8"],
                         domain=ms, axis=1, opset=13),
        helper.make_node("QLinearAveragePool", ["ps"] + params(0.04, 2, np.int8) + params(0.03, -5, np.int8), ["pool_s8"],
                         domain=ms, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=0,
                         channels_last=1),
    ]
    feeds = {
        "xu": np.arange(256, dtype=np.uint8), "xs": np.arange(-128, 128, dtype=np.int8),
        "mu": rng.integers(0, 256, (4, 64)).astype(np.uint8), "ms": rng.integers(-128, 128, (2, 48, 3)).astype(np.int8),
        "ps": rng.integers(-128, 128, (2, 7, 6, 3)).astype(np.int8),
    }
    types = {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int8): TensorProto.INT8}
    inputs = [helper.make_tensor_value_info(k, types[v.dtype], list(v.shape)) for k, v in feeds.items()]
    outputs = [helper.make_tensor_value_info(n.output[0], TensorProto.UINT8 if n.output[0].endswith("u8") else TensorProto.INT8,
                                             None) for n in nodes]
    graph = helper.make_graph(nodes, "qops_tables", inputs, outputs, initializer=list(consts.values()))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ms, 1)])
    folder = fresh(out, name)
    onnx.save(model, os.path.join(folder, "model.onnx"))
    write_case(folder, feeds)
    return None


def main():
    from onnxruntime.quantization import QuantFormat
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "Fixtures", "qops"))
    args = parser.parse_args()
    builds = {
        "qop": lambda: static(args.out, "qop", QuantFormat.QOperator),
        "qdq": lambda: static(args.out, "qdq", QuantFormat.QDQ),
        "lstm": lambda: lstm(args.out, "lstm"),
        "tables": lambda: tables(args.out, "tables"),
    }
    for name, build in builds.items():
        worst = build()
        proto = onnx.load(os.path.join(args.out, name, "model.onnx"))
        ops = {}
        for node in proto.graph.node:
            ops[node.op_type] = ops.get(node.op_type, 0) + 1
        note = "" if worst is None else f", int8 vs fp32 (onnxruntime vs torch) {worst:.1e}"
        print(f"{name}: {dict(sorted(ops.items()))}{note}", flush=True)


if __name__ == "__main__":
    main()
