#!/usr/bin/env python3
"""Builds the int8 benchmark models (issue [10]) into the git-ignored Bench/ folder.

    python3 tools/make_int8_set.py [--out Bench] [--only NAME ...] [--list]
    python3 tools/bench_vs_ort.py --models Bench --only mlp_int8 bert_small_int8 --threads 1 2

Each model is an fp32 PyTorch export (random weights, eval mode, legacy exporter at opset 17)
quantized by onnxruntime.quantization, in the layout of tools/make_bench_set.py:

    Bench/<name>/model.onnx               the quantized model
    Bench/<name>/test_data_set_0/input_N.pb
    Bench/<name>/test_data_set_0/output_N.pb   onnxruntime's outputs of the quantized model

Dynamic members (`quantize_dynamic` with its defaults, uint8 activations, int8 per-channel weights):
- mlp_int8: an MLP 784-512-256-10 with ReLUs at batch 1, its linear layers exported as MatMul + Add
  (a 3-D [1, 1, 784] input makes the exporter write MatMul; quantize_dynamic would quantize a Gemm
  too, after rewriting it as MatMul + Add itself);
- bert_small_int8: a BERT encoder (transformers BertModel, hidden 256, 4 layers, 4 heads,
  intermediate 1024) over 128 tokens;
- bert_base_int8: BERT-base (hidden 768, 12 layers) over 128 tokens, the bert_base of
  make_bench_set.py quantized;
- lstm_int8: a 2-layer LSTM 64→256 over 100 steps at batch 1 with a linear read-out, its LSTMs
  becoming com.microsoft DynamicQuantizeLSTM (int8 weights per column).
Static members (`quantize_static`: uint8 activations, int8 per-channel weights, MinMax calibration
over a few random images fed through a CalibrationDataReader, after `quant_pre_process`), torchvision
models with random weights (BatchNorm statistics randomised as make_bench_set.py does):
- resnet18_int8_qdq, mobilenet_v2_int8_qdq: QuantFormat.QDQ (QuantizeLinear/DequantizeLinear pairs
  around fp32 operators);
- resnet18_int8_qop: QuantFormat.QOperator (QLinearConv, com.microsoft QLinearAdd, ...);
- efficientnet_b0_int8_qdq, mobilenet_v3_int8_qdq, mobilenet_v3_int8_qop: the same for networks with
  SiLU / HardSwish activations and squeeze-excitation blocks (QLinearSigmoid, QLinearMul,
  QLinearGlobalAveragePool and their QDQ groups);
- resnet18_int8_s8, mobilenet_v2_int8_s8: QDQ with quantize_static's defaults, int8 activations
  and per-tensor int8 weights (what a user who passes no options gets);
- yolov8n_int8_qdq: the YOLOv8n detector of tools/make_bench_set.py (Bench/yolov8n_320, made first)
  quantized the same way in QDQ (SiLU, Concat, Split, Resize and MaxPool between Q/DQ pairs);
- resnet18_fp32, mobilenet_v2_fp32: the fp32 models they were quantized from, same input.
The print-out gives, per model, onnxruntime's largest difference from the fp32 model's outputs:
how far int8 moves the results, the scale against which Onyx's difference from onnxruntime reads.
"""
import argparse
import os
import shutil
import sys
import tempfile
import warnings

import numpy as np
import onnx
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(__file__))
from export_common import randomize_batchnorm  # noqa: E402
from make_bench_set import (Logits, export_torch, fresh, import_torchvision, text_inputs, write_case,  # noqa: E402
                            TEXT_AXES)

warnings.filterwarnings("ignore")


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))

    def forward(self, x):
        return self.layers(x)


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(64, 256, num_layers=2)
        self.out = nn.Linear(256, 16)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.out(y)


def bert(hidden, layers, heads, intermediate):
    def make():
        import_torchvision()  # transformers imports it; the CPU-only wheel needs the shim
        from transformers import BertConfig, BertModel
        config = BertConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                            intermediate_size=intermediate)
        return Logits(BertModel(config), ["input_ids", "attention_mask", "token_type_ids"],
                      ["last_hidden_state", "pooler_output"])
    return make


def quantized_case(make, make_inputs, input_names, output_names, dynamic_axes):
    """A builder: exports `make()` in fp32, quantizes it dynamically, writes onnxruntime's outputs
    of the quantized model as the reference."""
    def build(out, name):
        from onnxruntime.quantization import QuantType, quantize_dynamic
        torch.manual_seed(0)
        model = make().eval()
        example = make_inputs()
        folder = fresh(out, name)
        with tempfile.TemporaryDirectory() as work:
            export_torch(model, example, work, "legacy", input_names, output_names, dynamic_axes)
            fp32 = os.path.join(work, "model.onnx")
            quantize_dynamic(fp32, os.path.join(folder, "model.onnx"), per_channel=True,
                             weight_type=QuantType.QInt8)
        with torch.no_grad():
            y = model(*example)
        ys = [y] if isinstance(y, torch.Tensor) else list(y)
        worst = write_case(folder, [t.numpy() for t in example], [t.numpy() for t in ys])
        return f"int8 vs fp32 (onnxruntime vs torch) {worst:.1e}"
    return build


def calibration_reader(input_name, shape, count=8):
    from onnxruntime.quantization import CalibrationDataReader

    class RandomImages(CalibrationDataReader):
        """`count` normal(0, 1) images, the distribution of the benchmark's own input."""
        def __init__(self):
            rng = np.random.default_rng(11)
            self.feeds = iter([{input_name: rng.standard_normal(shape).astype(np.float32)} for _ in range(count)])

        def get_next(self):
            return next(self.feeds, None)
    return RandomImages()


def vision_fp32(name):
    return lambda: randomize_batchnorm(import_torchvision().models.__dict__[name](weights=None), 0)


def static_case(name, quant_format, defaults=False):
    """A builder: exports the torchvision model `name` in fp32 (None: writes that fp32 model itself),
    quantizes it statically in `quant_format`, writes onnxruntime's outputs as the reference.
    `defaults`: quantize_static's own defaults (int8 activations and weights, per tensor) instead
    of uint8 activations and per-channel int8 weights."""
    shape = (1, 3, 224, 224)

    def build(out, folder_name):
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
        torch.manual_seed(0)
        model = vision_fp32(name)().eval()
        example = (torch.randn(shape, generator=torch.Generator().manual_seed(1234)),)
        folder = fresh(out, folder_name)
        with tempfile.TemporaryDirectory() as work:
            export_torch(model, example, work, "legacy", ["input"], ["output"], {"input": {0: "batch"}})
            fp32 = os.path.join(work, "model.onnx")
            if quant_format is None:
                shutil.copy(fp32, os.path.join(folder, "model.onnx"))
            else:
                prepared = os.path.join(work, "prepared.onnx")
                quant_pre_process(fp32, prepared)
                formats = {"qdq": QuantFormat.QDQ, "qop": QuantFormat.QOperator}
                options = {} if defaults else dict(per_channel=True, activation_type=QuantType.QUInt8,
                                                    weight_type=QuantType.QInt8)
                quantize_static(prepared, os.path.join(folder, "model.onnx"), calibration_reader("input", shape),
                                quant_format=formats[quant_format], **options)
        with torch.no_grad():
            y = model(*example)
        worst = write_case(folder, [example[0].numpy()], [y.numpy()])
        return f"{'fp32' if quant_format is None else 'int8 vs fp32'} (onnxruntime vs torch) {worst:.1e}"
    return build


def static_from_bench(source, quant_format):
    """A builder: quantizes statically the fp32 model of another Bench folder (made first by
    tools/make_bench_set.py --only SOURCE), calibrated on normal(0, 1) inputs of its test input's
    shape; the test input is that folder's."""
    def build(out, folder_name):
        from onnx import numpy_helper
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
        fp32 = os.path.join(out, source, "model.onnx")
        if not os.path.isfile(fp32):
            raise SystemExit(f"{folder_name} quantizes {fp32}: run tools/make_bench_set.py --only {source} first")
        x = numpy_helper.to_array(onnx.load_tensor(os.path.join(out, source, "test_data_set_0", "input_0.pb")))
        name = onnx.load(fp32, load_external_data=False).graph.input[0].name
        folder = fresh(out, folder_name)
        with tempfile.TemporaryDirectory() as work:
            prepared = os.path.join(work, "prepared.onnx")
            quant_pre_process(fp32, prepared)
            formats = {"qdq": QuantFormat.QDQ, "qop": QuantFormat.QOperator}
            quantize_static(prepared, os.path.join(folder, "model.onnx"), calibration_reader(name, x.shape),
                            quant_format=formats[quant_format], per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        write_case(folder, [x])
        return f"int8 from Bench/{source}"
    return build


MODELS = {
    "mlp_int8": quantized_case(MLP, lambda: (torch.randn(1, 1, 784, generator=torch.Generator().manual_seed(3)),),
                               ["input"], ["output"], {"input": {0: "batch"}}),
    "bert_small_int8": quantized_case(bert(256, 4, 4, 1024), lambda: text_inputs(30522, True),
                                      ["input_ids", "attention_mask", "token_type_ids"],
                                      ["last_hidden_state", "pooler_output"], TEXT_AXES),
    "bert_base_int8": quantized_case(bert(768, 12, 12, 3072), lambda: text_inputs(30522, True),
                                     ["input_ids", "attention_mask", "token_type_ids"],
                                     ["last_hidden_state", "pooler_output"], TEXT_AXES),
    "lstm_int8": quantized_case(Recurrent, lambda: (torch.randn(100, 1, 64, generator=torch.Generator().manual_seed(5)),),
                                ["input"], ["output"], {}),
    "resnet18_int8_qdq": static_case("resnet18", "qdq"),
    "mobilenet_v2_int8_qdq": static_case("mobilenet_v2", "qdq"),
    "resnet18_int8_qop": static_case("resnet18", "qop"),
    "efficientnet_b0_int8_qdq": static_case("efficientnet_b0", "qdq"),
    "mobilenet_v3_int8_qdq": static_case("mobilenet_v3_large", "qdq"),
    "mobilenet_v3_int8_qop": static_case("mobilenet_v3_large", "qop"),
    "yolov8n_int8_qdq": static_from_bench("yolov8n_320", "qdq"),
    "resnet18_int8_s8": static_case("resnet18", "qdq", defaults=True),
    "mobilenet_v2_int8_s8": static_case("mobilenet_v2", "qdq", defaults=True),
    "resnet18_fp32": static_case("resnet18", None),
    "mobilenet_v2_fp32": static_case("mobilenet_v2", None),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.join(os.path.dirname(__file__), "..")
    parser.add_argument("--out", default=os.path.join(root, "Bench"))
    parser.add_argument("--only", nargs="*", help="folder names to build (default: all)")
    parser.add_argument("--list", action="store_true", help="print the folder names and exit")
    args = parser.parse_args()
    selected = [(n, b) for n, b in MODELS.items() if not args.only or n in args.only]
    if args.list:
        print("\n".join(n for n, _ in selected))
        return
    for name, build in selected:
        note = build(args.out, name)
        proto = onnx.load(os.path.join(args.out, name, "model.onnx"), load_external_data=False)
        ops = {}
        for node in proto.graph.node:
            ops[node.op_type] = ops.get(node.op_type, 0) + 1
        print(f"{name}: {len(proto.graph.node)} nodes {dict(sorted(ops.items()))}, {note}", flush=True)


if __name__ == "__main__":
    main()
