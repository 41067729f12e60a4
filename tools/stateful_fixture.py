"""The stateful fixture (`Fixtures/stateful_gru`): one step of a GRU cell, with its hidden state as
an input (`state`) and an output (`stateN`), the shape of a streaming model such as Silero VAD
whose state goes out and comes back each chunk. `onyx serve` keeps that state per sequence.

    input  [N, 8]  FP32    state  [N, 16] FP32
    output [N, 4]  FP32    stateN [N, 16] FP32

test_data_set_0: one step, batch 2, from a non-zero state (FixtureTests runs it). stream/: 100
chunks (batch 1) from the zero state, stacked as input_0 [100, 1, 8]; output_0 [100, 1, 4] holds
PyTorch's answer to each chunk with the state carried along, output_1 [1, 16] the final state.
"""
import os
import shutil

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import numpy_helper


class GRUStep(nn.Module):
    """A GRU cell 8 -> 16 and a linear read-out 16 -> 4: (input, state) -> (output, stateN)."""

    def __init__(self):
        super().__init__()
        self.cell = nn.GRUCell(8, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x, state):
        h = self.cell(x, state)
        return self.head(h), h


def _save(folder, name, array, tensor_name):
    onnx.save_tensor(numpy_helper.from_array(array, tensor_name), os.path.join(folder, name))


def write(out_dir, seed=7):
    """Exports the fixture; returns (folder, worst |onnxruntime - PyTorch|)."""
    import onnxruntime as ort
    torch.manual_seed(seed)
    model = GRUStep().eval()
    folder = os.path.join(out_dir, "stateful_gru")
    if os.path.exists(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    path = os.path.join(folder, "model.onnx")
    torch.onnx.export(
        model, (torch.randn(1, 8), torch.zeros(1, 16)), path, dynamo=False, opset_version=17,
        input_names=["input", "state"], output_names=["output", "stateN"],
        dynamic_axes={name: {0: "batch"} for name in ("input", "state", "output", "stateN")})
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(1234)
    worst = 0.0

    # One step from a non-zero state, batch 2.
    step = os.path.join(folder, "test_data_set_0")
    os.makedirs(step)
    x, state = torch.randn(2, 8, generator=generator), torch.randn(2, 16, generator=generator)
    with torch.no_grad():
        y, h = model(x, state)
    for k, (array, name) in enumerate([(x, "input"), (state, "state")]):
        _save(step, f"input_{k}.pb", array.numpy(), name)
    for k, (array, name) in enumerate([(y, "output"), (h, "stateN")]):
        _save(step, f"output_{k}.pb", array.numpy(), name)
    got = session.run(None, {"input": x.numpy(), "state": state.numpy()})
    worst = max(worst, float(np.abs(got[0] - y.numpy()).max()), float(np.abs(got[1] - h.numpy()).max()))

    # A stream of 100 chunks from the zero state, the state carried from each chunk to the next.
    stream = os.path.join(folder, "stream")
    os.makedirs(stream)
    chunks = torch.randn(100, 1, 8, generator=generator)
    h = torch.zeros(1, 16)
    ort_h = np.zeros((1, 16), dtype=np.float32)
    outputs = []
    with torch.no_grad():
        for chunk in chunks:
            y, h = model(chunk, h)
            outputs.append(y)
            ort_y, ort_h = session.run(None, {"input": chunk.numpy(), "state": ort_h})
            worst = max(worst, float(np.abs(ort_y - y.numpy()).max()))
    _save(stream, "input_0.pb", chunks.numpy(), "input")
    _save(stream, "output_0.pb", torch.stack(outputs).numpy(), "output")
    _save(stream, "output_1.pb", h.numpy(), "stateN")
    worst = max(worst, float(np.abs(ort_h - h.numpy()).max()))
    if worst > 1e-4:
        raise SystemExit(f"{folder}: onnxruntime differs from PyTorch by {worst}")
    return folder, worst
