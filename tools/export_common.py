"""Shared export helpers for tools/make_fixtures.py and tools/make_models.py.

Each model is exported twice -- TorchScript-based (`dynamo=False`, opset 17, dynamic batch axis)
and torch.export-based (`dynamo=True`) -- and written in the ONNX backend-test layout:

    <out>/<name>/model.onnx
    <out>/<name>/test_data_set_K/input_0.pb, output_0.pb

Expected outputs come from PyTorch itself, then are cross-checked with onnxruntime.
"""
import os
import shutil
import warnings
from collections import Counter

import numpy as np
import onnx
import torch
from onnx import numpy_helper

warnings.filterwarnings("ignore")


def _write_set(folder, index, input_name, output_names, x, outputs):
    data = os.path.join(folder, f"test_data_set_{index}")
    os.makedirs(data, exist_ok=True)
    onnx.save_tensor(numpy_helper.from_array(x, input_name), os.path.join(data, "input_0.pb"))
    for k, (name, y) in enumerate(zip(output_names, outputs)):
        onnx.save_tensor(numpy_helper.from_array(y, name), os.path.join(data, f"output_{k}.pb"))


def export(model, example, out_dir, name, exporter, batches=(2, 1), opset=17):
    """Exports `model` with one exporter and writes model + test data sets for each batch size.

    Returns (path, dynamic_batch, op histogram, opset).
    """
    model.eval()
    folder = os.path.join(out_dir, name)
    if os.path.exists(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    path = os.path.join(folder, "model.onnx")
    dynamic = True
    if exporter == "legacy":
        torch.onnx.export(
            model, (example,), path, dynamo=False, opset_version=opset,
            input_names=["input"], output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE)
    else:
        batch = torch.export.Dim("batch", min=1, max=1024)
        try:
            program = torch.onnx.export(model, (example,), dynamo=True, dynamic_shapes=({0: batch},),
                                        input_names=["input"], output_names=["output"], optimize=True)
        except Exception as error:  # some models refuse a symbolic batch: fall back to a static one
            print(f"  {name}: dynamic batch failed ({type(error).__name__}); exporting with a static batch")
            dynamic = False
            program = torch.onnx.export(model, (example,), dynamo=True, input_names=["input"],
                                        output_names=["output"], optimize=True)
        program.save(path, external_data=False)

    proto = onnx.load(path)
    input_name = proto.graph.input[0].name
    output_names = [o.name for o in proto.graph.output]
    sets = batches if dynamic else (example.shape[0],)
    generator = torch.Generator().manual_seed(1234)
    for index, batch in enumerate(sets):
        x = torch.randn((batch,) + tuple(example.shape[1:]), generator=generator)
        with torch.no_grad():
            y = model(x)
        ys = [y] if isinstance(y, torch.Tensor) else list(y)
        _write_set(folder, index, input_name, output_names, x.numpy(), [t.numpy() for t in ys])
    ops = Counter(n.op_type for n in proto.graph.node)
    version = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    return path, dynamic, ops, version


def check_with_onnxruntime(folder, tolerance=1e-4):
    """Runs every test set of `folder` with onnxruntime; returns the worst |ort - pytorch|."""
    import onnxruntime as ort
    session = ort.InferenceSession(os.path.join(folder, "model.onnx"), providers=["CPUExecutionProvider"])
    worst = 0.0
    for entry in sorted(os.listdir(folder)):
        if not entry.startswith("test_data_set_"):
            continue
        data = os.path.join(folder, entry)
        x = numpy_helper.to_array(onnx.load_tensor(os.path.join(data, "input_0.pb")))
        outputs = session.run(None, {session.get_inputs()[0].name: x})
        for k, got in enumerate(outputs):
            expected = numpy_helper.to_array(onnx.load_tensor(os.path.join(data, f"output_{k}.pb")))
            worst = max(worst, float(np.abs(got - expected).max()))
    if worst > tolerance:
        raise SystemExit(f"{folder}: onnxruntime differs from PyTorch by {worst} (> {tolerance})")
    return worst


def folder_size(folder):
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(folder) for f in files)


def randomize_batchnorm(model, seed):
    """Gives BatchNorm layers non-trivial running statistics so folding them is actually tested."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)
    return model
