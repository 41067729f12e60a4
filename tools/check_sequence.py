#!/usr/bin/env python3
"""Checks a running `onyx serve`'s stateful sequences with Triton's own clients, unmodified.

    python3 tools/check_sequence.py --http-url localhost:8000 --grpc-url localhost:8001 \\
        --model gru --fixture Fixtures/stateful_gru

The model is served with `"sequence_batching": {"state": [{"input_name": "state", "output_name":
"stateN"}]}` in its config.json. Starts nothing itself. Streams chunks through two interleaved
sequences (a numeric and a string sequence_id, the second starting --lag chunks after the first)
over HTTP (tritonclient.http) and gRPC (tritonclient.grpc), and compares each answer with the
model run chunk by chunk, the state carried from each chunk to the next: with --fixture, the
chunks of its stream/ folder and PyTorch's answers; with --model-file, --chunks random chunks and
onnxruntime running that file locally. Then checks that an ended sequence cannot be continued.
For Silero VAD (tools/make_bench_set.py --only silero_vad):

    --model vad --model-file Bench/silero_vad/model.onnx --chunk-shape 1,576 --fixed sr=16000:INT64

Prints 'N passed, M failed' and exits non-zero on any failure.
"""
import argparse
import os

import numpy as np
import onnx
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from onnx import numpy_helper

from check_tritonclient import Checks
from check_tritonclient_grpc import wait_until_live

NUMPY = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(double)": np.float64}
PROTOCOL = {np.float32: "FP32", np.int64: "INT64", np.int32: "INT32", np.float64: "FP64"}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--http-url", default="localhost:8000")
    parser.add_argument("--grpc-url", default="localhost:8001")
    parser.add_argument("--model", default="gru")
    parser.add_argument("--fixture", help="a folder whose stream/ holds input_0 [chunks, ...] and output_0, PyTorch's answers")
    parser.add_argument("--model-file", help="without --fixture: the served model file, run locally with onnxruntime")
    parser.add_argument("--state", default="state:stateN", help="INPUT:OUTPUT state pairs, comma-separated")
    parser.add_argument("--chunks", type=int, default=100)
    parser.add_argument("--lag", type=int, default=37)
    parser.add_argument("--chunk-shape", help="the streamed input's shape (default: its declared shape, unknown axes 1)")
    parser.add_argument("--fixed", action="append", default=[], help="NAME=VALUE:DATATYPE, an input sent unchanged with every chunk")
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--atol", type=float, default=1e-5)
    args = parser.parse_args()

    pairs = [tuple(p.split(":")) for p in args.state.split(",")]
    state_names = {name for pair in pairs for name in pair}
    fixed = {}
    for entry in args.fixed:
        name, rest = entry.split("=")
        value, datatype = rest.split(":")
        fixed[name] = np.array(float(value)).astype({"INT64": np.int64, "INT32": np.int32, "FP32": np.float32}[datatype])
    if args.fixture:
        stream = os.path.join(args.fixture, "stream")
        chunks = list(numpy_helper.to_array(onnx.load_tensor(os.path.join(stream, "input_0.pb"))))
        reference = [{"output": y} for y in numpy_helper.to_array(onnx.load_tensor(os.path.join(stream, "output_0.pb")))]
    else:
        chunks, reference = onnxruntime_reference(args, pairs, fixed)
    check = Checks()

    for front, module, url in (("http", httpclient, args.http_url), ("grpc", grpcclient, args.grpc_url)):
        client = module.InferenceServerClient(url)
        if front == "grpc":
            wait_until_live(client)
        metadata = client.get_model_metadata(args.model) if front == "http" else client.get_model_metadata(args.model, as_json=True)
        inputs = [t["name"] for t in metadata["inputs"] if t["name"] not in fixed]
        names = set(inputs) | {t["name"] for t in metadata["outputs"]}
        check(f"{front}: state is not in the metadata", not (names & state_names), str(names))

        def send(sequence_id, index, **flags):
            tensors = []
            for name, value in [(inputs[0], chunks[index])] + list(fixed.items()):
                tensor = module.InferInput(name, list(value.shape), PROTOCOL[value.dtype.type])
                tensor.set_data_from_numpy(value)
                tensors.append(tensor)
            return client.infer(args.model, tensors, sequence_id=sequence_id, **flags)

        worst, mismatched = 0.0, []
        last = len(chunks) - 1
        for step in range(len(chunks) + args.lag):
            for sequence_id, index in ((1001, step), ("stream-b", step - args.lag)):
                if not 0 <= index <= last:
                    continue
                result = send(sequence_id, index, sequence_start=index == 0, sequence_end=index == last)
                for name, want in reference[index].items():
                    got = result.as_numpy(name)
                    if got is None or got.shape != want.shape or not np.allclose(got, want, rtol=args.rtol, atol=args.atol):
                        mismatched.append(f"{sequence_id} chunk {index} {name}")
                    else:
                        worst = max(worst, float(np.abs(got - want).max()))
        check(f"{front}: {len(chunks)} chunks in each of two interleaved sequences match the model run chunk by chunk",
              not mismatched, f"worst difference {worst:.2e}" if not mismatched else ", ".join(mismatched[:5]))
        try:
            send(1001, 0)
            check(f"{front}: an ended sequence cannot be continued", False, "answered")
        except module.InferenceServerException as error:
            check(f"{front}: an ended sequence cannot be continued", "is not live" in str(error), str(error))
    check.finish()


def onnxruntime_reference(args, pairs, fixed):
    """Random chunks and onnxruntime's answers to them, run locally one by one with the state carried along."""
    import onnxruntime as ort
    session = ort.InferenceSession(args.model_file, providers=["CPUExecutionProvider"])
    inputs = {i.name: i for i in session.get_inputs()}
    state_inputs = {i for i, _ in pairs}
    streamed = [n for n in inputs if n not in state_inputs and n not in fixed]
    assert len(streamed) == 1, f"one streamed input expected, got {streamed}"
    streamed = streamed[0]
    shape = ([int(d) for d in args.chunk_shape.split(",")] if args.chunk_shape
             else [d if isinstance(d, int) else 1 for d in inputs[streamed].shape])
    rng = np.random.default_rng(11)
    chunks = [rng.normal(0, 0.5, shape).astype(NUMPY[inputs[streamed].type]) for _ in range(args.chunks)]
    state = {i: np.zeros([d if isinstance(d, int) else shape[0] for d in inputs[i].shape], NUMPY[inputs[i].type])
             for i, _ in pairs}
    names = [o.name for o in session.get_outputs()]
    reference = []
    for chunk in chunks:
        result = dict(zip(names, session.run(None, {streamed: chunk, **fixed, **state})))
        state = {i: result[o] for i, o in pairs}
        reference.append({name: value for name, value in result.items() if name not in {o for _, o in pairs}})
    return chunks, reference


if __name__ == "__main__":
    main()
