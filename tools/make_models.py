#!/usr/bin/env python3
"""Exports the larger models of BENCHMARKS.md into the git-ignored Models/ folder.

    python3 tools/make_models.py [--out Models] [--only resnet18 ...]

torchvision resnet18, mobilenet_v2, squeezenet1_1 (random weights, 1×3×224×224), the
784-512-256-10 MLP, and a 2-layer nn.TransformerEncoder (d_model 128, 4 heads, seq 32), each with
both exporters, in the ONNX backend-test layout with PyTorch's outputs.
"""
import argparse
import os
import sys

import torch
import torch.nn as nn
import torchvision

sys.path.insert(0, os.path.dirname(__file__))
from export_common import check_with_onnxruntime, export, folder_size, randomize_batchnorm  # noqa: E402


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                                 nn.Linear(256, 10))

    def forward(self, x):
        return self.net(x)


class Transformer(nn.Module):
    def __init__(self):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model=128, nhead=4, dim_feedforward=256, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)

    def forward(self, x):
        return self.encoder(x)


MODELS = {
    "resnet18": (lambda: torchvision.models.resnet18(weights=None), (1, 3, 224, 224)),
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(weights=None), (1, 3, 224, 224)),
    "squeezenet1_1": (lambda: torchvision.models.squeezenet1_1(weights=None), (1, 3, 224, 224)),
    "mlp784": (MLP, (1, 1, 28, 28)),
    "transformer": (Transformer, (1, 32, 128)),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "Models"))
    parser.add_argument("--only", nargs="*", choices=sorted(MODELS), help="models to export (default: all)")
    parser.add_argument("--exporters", nargs="*", default=["legacy", "dynamo"], choices=["legacy", "dynamo"])
    args = parser.parse_args()
    for base in args.only or sorted(MODELS):
        make, shape = MODELS[base]
        for exporter in args.exporters:
            torch.manual_seed(0)
            model = randomize_batchnorm(make(), 0).eval()
            name = f"{base}_{exporter}"
            try:
                path, dynamic, ops, opset = export(model, torch.randn(shape), args.out, name, exporter, batches=(1,))
            except Exception as error:
                print(f"{name}: export failed: {type(error).__name__}: {error}")
                continue
            worst = check_with_onnxruntime(os.path.dirname(path), tolerance=1e-3)
            size = folder_size(os.path.dirname(path))
            print(f"{name}: opset {opset}, dynamic batch {dynamic}, {size / 2**20:.1f} MiB, "
                  f"ort vs torch {worst:.2e}, ops {dict(sorted(ops.items()))}")


if __name__ == "__main__":
    main()
