#!/usr/bin/env python3
"""Writes the small fixtures under Fixtures/ (committed; each folder < 2 MB).

    python3 tools/make_fixtures.py [--out Fixtures] [--only screener|pytorch|stateful]

The stateful GRU step (tools/stateful_fixture.py): state in and out, for `onyx serve`'s sequences.
PyTorch models: random weights (fixed seeds), eval mode, both exporters; expected outputs from
PyTorch. The request screener (tools/screener.py): scikit-learn, exported with skl2onnx; expected
outputs from onnxruntime (its StringNormalizer needs the en_US.UTF-8 locale: `locale-gen`).
"""
import argparse
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(__file__))
from export_common import check_with_onnxruntime, export, folder_size, randomize_batchnorm  # noqa: E402


class ScreeningMLP(nn.Module):
    """Scores a request's 64 features: 64-128-64-2."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 2))

    def forward(self, x):
        return self.net(x)


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
                                        nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


class Residual(nn.Module):
    def __init__(self, channels, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(channels // stride, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.skip = None
        if stride != 1:
            self.skip = nn.Sequential(nn.Conv2d(channels // stride, channels, 1, stride=stride, bias=False),
                                      nn.BatchNorm2d(channels))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.skip is None else self.skip(x)))


class SmallResNet(nn.Module):
    """Stride-2 convs, BatchNormalization kept in the graph, Add skips, global pooling."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                                  nn.MaxPool2d(3, stride=2, padding=1))
        self.blocks = nn.Sequential(Residual(16, 1), Residual(32, 2))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


class DepthwiseSeparable(nn.Module):
    """Depthwise 3×3 (groups = C) + pointwise 1×1, BatchNorm, ReLU6 (exported as Clip)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU6())
        self.depthwise = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.BatchNorm2d(16), nn.ReLU6())
        self.pointwise = nn.Sequential(nn.Conv2d(16, 32, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6())
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        y = self.pointwise(self.depthwise(self.stem(x)))
        return self.head(y.mean(dim=(2, 3)))


FIXTURES = [
    ("mlp", ScreeningMLP, (1, 64)),
    ("lenet", LeNet, (1, 1, 28, 28)),
    ("resnet_small", SmallResNet, (1, 3, 32, 32)),
    ("depthwise", DepthwiseSeparable, (1, 3, 32, 32)),
]


def report(name, folder, detail):
    """Prints a written fixture's size and check; stops if it is over the 2 MB budget."""
    size = folder_size(folder)
    print(f"{name}: {size / 1024:.0f} KiB, {detail}")
    if size > 2 * 1024 * 1024:
        raise SystemExit(f"{name} is {size} bytes, over the 2 MB fixture budget")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "Fixtures"))
    parser.add_argument("--only", choices=["pytorch", "screener", "stateful"], help="write only these fixtures")
    args = parser.parse_args()
    if args.only in (None, "stateful"):
        import stateful_fixture
        folder, worst = stateful_fixture.write(args.out)
        report("stateful_gru", folder, f"onnxruntime vs PyTorch over a 100-chunk stream {worst:.2e}")
    if args.only == "stateful":
        return
    if args.only != "pytorch":
        import screener
        folder, worst = screener.write(args.out)
        report("screener", folder, f"onnxruntime vs scikit-learn probabilities {worst:.2e}")
    if args.only == "screener":
        return
    for seed, (base, make, shape) in enumerate(FIXTURES):
        for exporter in ("legacy", "dynamo"):
            torch.manual_seed(seed)
            model = randomize_batchnorm(make(), seed).eval()
            name = f"{base}_{exporter}"
            path, dynamic, ops, opset = export(model, torch.randn(shape), args.out, name, exporter)
            worst = check_with_onnxruntime(os.path.dirname(path))
            size = folder_size(os.path.dirname(path))
            print(f"{name}: opset {opset}, dynamic batch {dynamic}, {size / 1024:.0f} KiB, "
                  f"ort vs torch {worst:.2e}, ops {dict(sorted(ops.items()))}")
            if size > 2 * 1024 * 1024:
                raise SystemExit(f"{name} is {size} bytes, over the 2 MB fixture budget")


if __name__ == "__main__":
    main()
