#!/usr/bin/env python3
"""Exports the breadth models of the operator-coverage work into the git-ignored Zoo/ folder.

    python3 tools/make_zoo.py [--out Zoo] [--only NAME ...] [--list]
    python3 tools/check_models.py --rtol 1e-3 --atol 1e-4 Zoo

- torchvision classification models (random weights, batch 1) with both exporters;
- an LSTM and a GRU sequence model (2 layers, bidirectional, batch_first) with both exporters;
- "opset 9" exports of AlexNet, VGG-11, DenseNet-121, ShuffleNet, GoogLeNet and Inception-v3 with
  the TorchScript exporter at opset_version=9: the operator versions of the Caffe2-era model zoo
  (Upsample, BatchNormalization-9, Dropout-7 …), which cannot be downloaded from this machine.

Each folder has the ONNX backend-test layout with PyTorch's own outputs, cross-checked with
onnxruntime (a model onnxruntime cannot run is reported and skipped).
"""
import argparse
import os
import sys

import torch
import torch.nn as nn
import torchvision

sys.path.insert(0, os.path.dirname(__file__))
from export_common import check_with_onnxruntime, export, folder_size, randomize_batchnorm  # noqa: E402


class SequenceModel(nn.Module):
    """A recurrent layer followed by a linear head, returning the head's output and the last hidden state."""

    def __init__(self, cell):
        super().__init__()
        self.rnn = cell(input_size=32, hidden_size=48, num_layers=2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(96, 10)

    def forward(self, x):
        y, state = self.rnn(x)
        hidden = state[0] if isinstance(state, tuple) else state
        return self.head(y), hidden


def vision(name, size=224):
    def make():
        builder = getattr(torchvision.models, name)
        extra = {"aux_logits": False, "init_weights": True} if name in ("googlenet", "inception_v3") else {}
        model = builder(weights=None, **extra)
        if name == "inception_v3":
            # Its default initialisation grows activations to ~1e13 over 94 convolutions, where
            # float32 rounding alone differs by more than any tolerance: use He initialisation.
            for module in model.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        return model
    return make, (1, 3, size, size)


VISION = ["alexnet", "vgg11", "resnet50", "densenet121", "googlenet", "shufflenet_v2_x1_0", "mobilenet_v3_small",
          "mobilenet_v3_large", "efficientnet_b0", "mnasnet1_0", "regnet_y_400mf", "squeezenet1_0", "convnext_tiny"]
MODELS = {name: vision(name) for name in VISION}
MODELS["inception_v3"] = vision("inception_v3", 299)
MODELS["lstm"] = (lambda: SequenceModel(nn.LSTM), (1, 16, 32))
MODELS["gru"] = (lambda: SequenceModel(nn.GRU), (1, 16, 32))
# (base model, exporter, opset): the old-opset exports.
OPSET9 = ["alexnet", "vgg11", "densenet121", "shufflenet_v2_x1_0", "googlenet", "inception_v3"]


def jobs():
    for name in sorted(MODELS):
        for exporter in ("legacy", "dynamo"):
            yield f"{name}_{exporter}", name, exporter, 17
    for name in OPSET9:
        yield f"{name}_opset9", name, "legacy", 9


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "Zoo"))
    parser.add_argument("--only", nargs="*", help="folder names or model names to export (default: all)")
    parser.add_argument("--list", action="store_true", help="print the folder names and exit")
    args = parser.parse_args()
    selected = [job for job in jobs() if not args.only or job[0] in args.only or job[1] in args.only]
    if args.list:
        print("\n".join(job[0] for job in selected))
        return
    for folder, base, exporter, opset in selected:
        make, shape = MODELS[base]
        torch.manual_seed(0)
        model = randomize_batchnorm(make(), 0).eval()
        try:
            path, dynamic, ops, version = export(model, torch.randn(shape), args.out, folder, exporter,
                                                 batches=(1,), opset=opset)
        except Exception as error:
            print(f"{folder}: export failed: {type(error).__name__}: {str(error)[:200]}")
            continue
        try:
            worst = f"{check_with_onnxruntime(os.path.dirname(path), tolerance=1e-3):.2e}"
        except BaseException as error:  # onnxruntime refusing a model is reported, not fatal
            worst = f"not comparable ({str(error)[:120]})"
        size = folder_size(os.path.dirname(path))
        print(f"{folder}: opset {version}, {size / 2**20:.1f} MiB, ort vs torch {worst}, "
              f"ops {dict(sorted(ops.items()))}", flush=True)


if __name__ == "__main__":
    main()
