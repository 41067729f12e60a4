#!/usr/bin/env python3
"""Builds the real-model benchmark set (issue [8]) into the git-ignored Bench/ folder.

    pip install -r tools/requirements-bench.txt
    python3 tools/make_bench_set.py [--out Bench] [--only NAME ...] [--list]
    python3 tools/bench_vs_ort.py --models Bench --threads 1 --openvino

Each model gets the ONNX backend-test layout, every graph input fed from its own file:

    Bench/<name>/model.onnx
    Bench/<name>/test_data_set_0/input_N.pb   one TensorProto per graph input, named like it
    Bench/<name>/test_data_set_0/output_N.pb  onnxruntime's outputs (the reference)

Members, none downloaded from a model hub (this machine reaches PyPI only):
- ONNX files shipped inside PyPI wheels, fetched with `pip download --no-deps` and unzipped, never
  installed: PP-OCRv4 text detection and recognition and the PP-OCR direction classifier (wheel
  rapidocr-onnxruntime), Silero VAD (wheel silero-vad: an If on the sample rate around an LSTM,
  with a recurrent state tensor; and its If-less 16 kHz variant, the one OpenVINO can load);
- exports with random weights: YOLOv8n at 320×320 (ultralytics, built from yolov8n.yaml); ViT-B/16,
  GPT-2 (124M, no KV cache) and BERT-base from Hugging Face transformers configs; EfficientNet-B0,
  MobileNetV3-Large and DenseNet-121 from torchvision; a small CRNN (conv stack, BiLSTM, CTC head).
  PyTorch models are exported with both exporters (`_legacy`: dynamo=False, opset 17;
  `_dynamo`: dynamo=True), as tools/export_common.py does for the Models/ and Zoo/ sets.
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
from export_common import folder_size, randomize_batchnorm  # noqa: E402

warnings.filterwarnings("ignore")

# Wheels whose ONNX files are used as shipped (version pinned: the files change between releases).
WHEELS = {"rapidocr-onnxruntime": "1.4.4", "silero-vad": "6.2.3"}


def write_case(folder, feeds, reference=None):
    """Writes test_data_set_0 for the model in `folder`: one input_N.pb per graph input, in graph
    order, and onnxruntime's outputs as output_N.pb. Returns max |ort - reference| when a
    framework's own outputs are given, else None."""
    import onnxruntime as ort
    path = os.path.join(folder, "model.onnx")
    proto = onnx.load(path, load_external_data=False)
    initializers = {i.name for i in proto.graph.initializer}
    names = [i.name for i in proto.graph.input if i.name not in initializers]
    if len(feeds) != len(names):
        raise SystemExit(f"{folder}: graph inputs {names}, but {len(feeds)} arrays were given")
    # Feeds may be given positionally (exporters rename inputs) or by the graph's own names.
    arrays = [feeds[n] for n in names] if isinstance(feeds, dict) else list(feeds)
    data = os.path.join(folder, "test_data_set_0")
    if os.path.exists(data):
        shutil.rmtree(data)
    os.makedirs(data)
    for k, (name, array) in enumerate(zip(names, arrays)):
        onnx.save_tensor(numpy_helper.from_array(np.asarray(array), name), os.path.join(data, f"input_{k}.pb"))
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    outputs = session.run(None, dict(zip(names, arrays)))
    for k, (meta, y) in enumerate(zip(session.get_outputs(), outputs)):
        onnx.save_tensor(numpy_helper.from_array(np.asarray(y), meta.name), os.path.join(data, f"output_{k}.pb"))
    if reference is None:
        return None
    return max(float(np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64)).max())
               for got, want in zip(outputs, reference))


def fresh(out, name):
    folder = os.path.join(out, name)
    if os.path.exists(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    return folder


# ----------------------------------------------------------------------------- shipped in wheels

def wheel_file(package, member, cache):
    """Extracts `member` from the pinned wheel of `package`, downloaded once into `cache`."""
    version = WHEELS[package]
    stem = package.replace("-", "_") + "-" + version
    wheels = glob.glob(os.path.join(cache, stem + "-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", cache,
                        f"{package}=={version}"], check=True)
        wheels = glob.glob(os.path.join(cache, stem + "-*.whl"))
    with zipfile.ZipFile(wheels[0]) as archive:
        return archive.read(member)


def shipped(package, member, feeds):
    def build(out, name, cache):
        folder = fresh(out, name)
        with open(os.path.join(folder, "model.onnx"), "wb") as f:
            f.write(wheel_file(package, member, cache))
        write_case(folder, feeds())
        return None
    return build


def image(shape, seed):
    # A normalised image as PP-OCR feeds it ((pixel/255 - 0.5) / 0.5), smooth enough to have edges.
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(-1, 1, (shape[0], shape[1], shape[2] // 8, shape[3] // 8)).astype(np.float32)
    return np.repeat(np.repeat(coarse, 8, axis=2), 8, axis=3) + rng.normal(0, 0.05, shape).astype(np.float32)


def silero_feeds():
    # What silero_vad's OnnxWrapper feeds per 16 kHz chunk: 512 new samples after 64 of context.
    rng = np.random.default_rng(3)
    return {"input": (rng.normal(0, 0.1, (1, 576))).astype(np.float32),
            "state": np.zeros((2, 1, 128), np.float32),
            "sr": np.array(16000, np.int64)}


# ----------------------------------------------------------------------------- PyTorch exports

def export_torch(model, example, folder, exporter, input_names, output_names, dynamic_axes, opset=17):
    """Exports `model` called with the tuple `example` to folder/model.onnx; returns the exporter used
    ("legacy", "dynamo" or "dynamo-static" when a symbolic shape was refused)."""
    path = os.path.join(folder, "model.onnx")
    if exporter == "legacy":
        torch.onnx.export(model, example, path, dynamo=False, opset_version=opset, input_names=input_names,
                          output_names=output_names, dynamic_axes=dynamic_axes, do_constant_folding=True)
        return "legacy"
    shapes = tuple({axis: torch.export.Dim.AUTO for axis in dynamic_axes.get(name, {})} for name in input_names)
    try:
        program = torch.onnx.export(model, example, dynamo=True, dynamic_shapes=shapes, input_names=input_names,
                                    output_names=output_names, optimize=True)
        how = "dynamo"
    except Exception as error:  # some models refuse symbolic shapes: fall back to static ones
        print(f"  dynamic shapes failed ({type(error).__name__}: {str(error)[:120]}); exporting static shapes")
        program = torch.onnx.export(model, example, dynamo=True, input_names=input_names,
                                    output_names=output_names, optimize=True)
        how = "dynamo-static"
    program.save(path, external_data=False)
    return how


def torch_case(make, make_inputs, input_names, output_names, dynamic_axes):
    """A builder for one PyTorch model: `make()` returns the eval-mode module, `make_inputs()` the
    example tuple (also the test data)."""
    def build(out, name, cache, exporter):
        torch.manual_seed(0)
        model = make().eval()
        example = make_inputs()
        folder = fresh(out, name)
        how = export_torch(model, example, folder, exporter, input_names, output_names, dynamic_axes)
        with torch.no_grad():
            y = model(*example)
        ys = [y] if isinstance(y, torch.Tensor) else list(y)
        worst = write_case(folder, [t.numpy() for t in example], [t.numpy() for t in ys])
        return f"{how}, ort vs torch {worst:.1e}"
    return build


class Logits(nn.Module):
    """Calls a Hugging Face model with positional tensors and returns plain tensors, so both
    exporters see a flat signature (no ModelOutput, no KV cache)."""

    def __init__(self, model, keys, outputs):
        super().__init__()
        self.model, self.keys, self.outputs = model, keys, outputs

    def forward(self, *tensors):
        result = self.model(**dict(zip(self.keys, tensors)), return_dict=True)
        values = tuple(result[k] for k in self.outputs)
        return values[0] if len(values) == 1 else values


def hf_vit():
    import_torchvision()  # transformers imports it; the CPU-only wheel needs the shim
    from transformers import ViTConfig, ViTForImageClassification
    return Logits(ViTForImageClassification(ViTConfig(num_labels=1000)), ["pixel_values"], ["logits"])


def hf_gpt2():
    import_torchvision()  # transformers imports it; the CPU-only wheel needs the shim
    from transformers import GPT2Config, GPT2LMHeadModel
    config = GPT2Config(use_cache=False)
    return Logits(GPT2LMHeadModel(config), ["input_ids", "attention_mask"], ["logits"])


def hf_bert():
    import_torchvision()  # transformers imports it; the CPU-only wheel needs the shim
    from transformers import BertConfig, BertModel
    return Logits(BertModel(BertConfig()), ["input_ids", "attention_mask", "token_type_ids"],
                  ["last_hidden_state", "pooler_output"])


SEQ = 128


def text_inputs(vocab, with_types):
    generator = torch.Generator().manual_seed(7)
    ids = torch.randint(0, vocab, (1, SEQ), generator=generator)
    mask = torch.ones(1, SEQ, dtype=torch.int64)
    if not with_types:
        return ids, mask
    mask[:, SEQ - 16:] = 0  # a padded request
    return ids, mask, torch.zeros(1, SEQ, dtype=torch.int64)


class CRNN(nn.Module):
    """CRNN text recogniser (Shi et al.): VGG-style conv stack over a 32×128 line image, a 2-layer
    BiLSTM over the 32 columns, per-column class scores for CTC (37 classes)."""

    def __init__(self, classes=37):
        super().__init__()

        def block(cin, cout, pool):
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(pool)]
        self.cnn = nn.Sequential(*block(1, 64, 2), *block(64, 128, 2), *block(128, 256, (2, 1)),
                                 *block(256, 256, (2, 1)), nn.Conv2d(256, 512, (2, 1)), nn.ReLU(inplace=True))
        self.rnn = nn.LSTM(512, 256, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(512, classes)

    def forward(self, x):
        features = self.cnn(x).squeeze(2).permute(0, 2, 1)  # N × W × C
        y, _ = self.rnn(features)
        return self.head(y).log_softmax(-1)


_TORCHVISION_SCHEMAS = None


def import_torchvision():
    """Imports torchvision next to the CPU-only torch wheel too: PyPI's torchvision links CUDA
    libraries, its C extension then does not load, and the import fails registering fake kernels
    for nms/qnms. The exported models use no extension op, so those two are defined as schemas only."""
    global _TORCHVISION_SCHEMAS
    if _TORCHVISION_SCHEMAS is not None or "torchvision" in sys.modules:
        import torchvision
        return torchvision
    import ctypes
    import importlib.util
    spec = importlib.util.find_spec("torchvision")
    extension = glob.glob(os.path.join(spec.submodule_search_locations[0], "_C*.so"))
    try:
        if extension:
            ctypes.CDLL(extension[0])
    except OSError:
        _TORCHVISION_SCHEMAS = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            _TORCHVISION_SCHEMAS.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    import torchvision
    return torchvision


def vision(name):
    return lambda: randomize_batchnorm(getattr(import_torchvision().models, name)(weights=None), 0)


def image_input(shape):
    return lambda: (torch.randn(shape, generator=torch.Generator().manual_seed(1234)),)


IMAGE_AXES = {"input": {0: "batch"}}
TEXT_AXES = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
             "token_type_ids": {0: "batch", 1: "sequence"}}

TORCH = {
    "vit_base": torch_case(hf_vit, image_input((1, 3, 224, 224)), ["pixel_values"], ["logits"],
                           {"pixel_values": {0: "batch"}}),
    "gpt2": torch_case(hf_gpt2, lambda: text_inputs(50257, False), ["input_ids", "attention_mask"], ["logits"],
                       TEXT_AXES),
    "bert_base": torch_case(hf_bert, lambda: text_inputs(30522, True), ["input_ids", "attention_mask", "token_type_ids"],
                            ["last_hidden_state", "pooler_output"], TEXT_AXES),
    "efficientnet_b0": torch_case(vision("efficientnet_b0"), image_input((1, 3, 224, 224)), ["input"], ["output"],
                                  IMAGE_AXES),
    "mobilenet_v3_large": torch_case(vision("mobilenet_v3_large"), image_input((1, 3, 224, 224)), ["input"],
                                     ["output"], IMAGE_AXES),
    "densenet121": torch_case(vision("densenet121"), image_input((1, 3, 224, 224)), ["input"], ["output"], IMAGE_AXES),
    "crnn": torch_case(lambda: randomize_batchnorm(CRNN(), 0), image_input((1, 1, 32, 128)), ["input"], ["output"],
                       IMAGE_AXES),
}


def yolov8n(out, name, cache):
    """YOLOv8n detector, random weights built from the yolov8n.yaml architecture (no download),
    exported by ultralytics itself at 320×320 (its default opset, static shape, no simplifier)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import_torchvision()
    from ultralytics import YOLO
    folder = fresh(out, name)
    with tempfile.TemporaryDirectory() as work:
        torch.manual_seed(0)
        model = YOLO("yolov8n.yaml")
        model.model.eval()
        weights = os.path.join(work, "yolov8n.pt")
        model.save(weights)
        exported = YOLO(weights).export(format="onnx", imgsz=320, simplify=False, dynamic=False, verbose=False)
        shutil.move(exported, os.path.join(folder, "model.onnx"))
    rng = np.random.default_rng(5)
    write_case(folder, [rng.uniform(0, 1, (1, 3, 320, 320)).astype(np.float32)])
    return "ultralytics export"


def jobs():
    yield "yolov8n_320", yolov8n
    ocr = "rapidocr_onnxruntime/models/"
    yield "ppocrv4_det", shipped("rapidocr-onnxruntime", ocr + "ch_PP-OCRv4_det_infer.onnx",
                                 lambda: {"x": image((1, 3, 480, 640), 1)})
    yield "ppocrv4_rec", shipped("rapidocr-onnxruntime", ocr + "ch_PP-OCRv4_rec_infer.onnx",
                                 lambda: {"x": image((1, 3, 48, 320), 2)})
    yield "ppocr_cls", shipped("rapidocr-onnxruntime", ocr + "ch_ppocr_mobile_v2.0_cls_infer.onnx",
                               lambda: {"x": image((1, 3, 48, 192), 4)})
    yield "silero_vad", shipped("silero-vad", "silero_vad/data/silero_vad.onnx", silero_feeds)
    # The same network as the wheel ships it for OpenVINO (16 kHz only, no If), which cannot load the
    # If-wrapped one: the pair shows what the If and the sr input cost.
    yield "silero_vad_16k_noif", shipped("silero-vad", "silero_vad/data/silero_vad_openvino_16k.onnx",
                                         lambda: {k: v for k, v in silero_feeds().items() if k != "sr"})
    for base, build in TORCH.items():
        for exporter in ("legacy", "dynamo"):
            yield f"{base}_{exporter}", (lambda out, name, cache, b=build, e=exporter: b(out, name, cache, e))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.join(os.path.dirname(__file__), "..")
    parser.add_argument("--out", default=os.path.join(root, "Bench"))
    parser.add_argument("--wheels", default=os.path.join(root, "Bench", ".wheels"),
                        help="where the pinned wheels are downloaded once")
    parser.add_argument("--only", nargs="*", help="folder names or prefixes to build (default: all)")
    parser.add_argument("--list", action="store_true", help="print the folder names and exit")
    args = parser.parse_args()
    selected = [(n, b) for n, b in jobs() if not args.only or any(n == o or n.startswith(o) for o in args.only)]
    if args.list:
        print("\n".join(n for n, _ in selected))
        return
    os.makedirs(args.wheels, exist_ok=True)
    failed = []
    for name, build in selected:
        try:
            note = build(args.out, name, args.wheels)
        except Exception as error:  # one model failing to export is reported, the rest still built
            print(f"{name}: FAILED {type(error).__name__}: {str(error)[:300]}", flush=True)
            failed.append(name)
            continue
        folder = os.path.join(args.out, name)
        proto = onnx.load(os.path.join(folder, "model.onnx"), load_external_data=False)
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        inputs = [i.name for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
        print(f"{name}: opset {opset}, {folder_size(folder) / 2**20:.1f} MiB, {len(proto.graph.node)} nodes, "
              f"inputs {inputs}" + (f", {note}" if note else ""), flush=True)
    if failed:
        print("failed: " + " ".join(failed))


if __name__ == "__main__":
    main()
