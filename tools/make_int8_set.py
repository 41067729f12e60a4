#!/usr/bin/env python3
"""Builds the dynamic-quantized benchmark models (issue [10]) into the git-ignored Bench/ folder.

    python3 tools/make_int8_set.py [--out Bench] [--only NAME ...] [--list]
    python3 tools/bench_vs_ort.py --models Bench --only mlp_int8 bert_small_int8 --threads 1 2

Each model is an fp32 PyTorch export (random weights, eval mode, legacy exporter at opset 17)
passed through `onnxruntime.quantization.quantize_dynamic` with its defaults (uint8 activations,
int8 weights) and per-channel weights, in the layout of tools/make_bench_set.py:

    Bench/<name>/model.onnx               the quantized model
    Bench/<name>/test_data_set_0/input_N.pb
    Bench/<name>/test_data_set_0/output_N.pb   onnxruntime's outputs of the quantized model

Members:
- mlp_int8: an MLP 784-512-256-10 with ReLUs at batch 1, its linear layers exported as MatMul + Add
  (the quantizer leaves Gemm alone; a 3-D [1, 1, 784] input makes the exporter write MatMul);
- bert_small_int8: a BERT encoder (transformers BertModel, hidden 256, 4 layers, 4 heads,
  intermediate 1024) over 128 tokens;
- bert_base_int8: BERT-base (hidden 768, 12 layers) over 128 tokens, the bert_base of
  make_bench_set.py quantized.
The print-out gives, per model, onnxruntime's largest difference from the fp32 model's outputs:
how far int8 moves the results, the scale against which Onyx's difference from onnxruntime reads.
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
from make_bench_set import (Logits, export_torch, fresh, import_torchvision, text_inputs, write_case,  # noqa: E402
                            TEXT_AXES)

warnings.filterwarnings("ignore")


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))

    def forward(self, x):
        return self.layers(x)


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


MODELS = {
    "mlp_int8": quantized_case(MLP, lambda: (torch.randn(1, 1, 784, generator=torch.Generator().manual_seed(3)),),
                               ["input"], ["output"], {"input": {0: "batch"}}),
    "bert_small_int8": quantized_case(bert(256, 4, 4, 1024), lambda: text_inputs(30522, True),
                                      ["input_ids", "attention_mask", "token_type_ids"],
                                      ["last_hidden_state", "pooler_output"], TEXT_AXES),
    "bert_base_int8": quantized_case(bert(768, 12, 12, 3072), lambda: text_inputs(30522, True),
                                     ["input_ids", "attention_mask", "token_type_ids"],
                                     ["last_hidden_state", "pooler_output"], TEXT_AXES),
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
