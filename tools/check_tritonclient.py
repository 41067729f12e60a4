#!/usr/bin/env python3
"""Checks a running Onyx server with Triton's own client (tritonclient.http), unmodified.

    python3 tools/check_tritonclient.py --url localhost:8000 --model mlp --fixture Fixtures/mlp_legacy

Starts nothing itself. Runs health, server and model metadata, and inference with JSON and with
binary tensors against every test data set of the fixture, comparing every output with the
expected one (floats within rtol/atol; integers, bools and BYTES exactly).
Prints 'N passed, M failed' and exits non-zero on any failure.
"""
import argparse
import os
import sys

import numpy as np
import onnx
import tritonclient.http as httpclient
from onnx import numpy_helper


class Checks:
    """Prints each check as it runs; `finish` prints 'N passed, M failed' and exits with the verdict."""

    def __init__(self):
        self.results = []

    def __call__(self, name, ok, detail=""):
        self.results.append(bool(ok))
        print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")

    def finish(self):
        passed = sum(self.results)
        print(f"{passed} passed, {len(self.results) - passed} failed")
        sys.exit(0 if passed == len(self.results) else 1)


def load_cases(fixture, output_count):
    """(name, input, expected outputs) for each test_data_set_N of a fixture folder."""
    cases = []
    for data_set in sorted(d for d in os.listdir(fixture) if d.startswith("test_data_set_")):
        folder = os.path.join(fixture, data_set)
        x = numpy_helper.to_array(onnx.load_tensor(os.path.join(folder, "input_0.pb")))
        expected = [numpy_helper.to_array(onnx.load_tensor(os.path.join(folder, f"output_{k}.pb")))
                    for k in range(output_count)]
        cases.append((data_set, x, expected))
    return cases


def compare(result, output_names, expected, rtol, atol):
    """Whether every output of a client's result matches (floats within rtol/atol, the rest
    exactly), and the largest float error."""
    ok, worst = True, 0.0
    for name, want in zip(output_names, expected):
        got = result.as_numpy(name)
        if got is None or got.shape != want.shape:
            ok, worst = False, float("nan")
        elif want.dtype.kind == "f":
            worst = max(worst, float(np.abs(got - want).max(initial=0)))
            ok = ok and bool(np.all(np.abs(got - want) <= atol + rtol * np.abs(want)))
        else:
            ok = ok and bool(np.array_equal(got, want))
    return ok, worst


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="localhost:8000")
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--fixture", default=os.path.join(os.path.dirname(__file__), "..", "Fixtures", "mlp_legacy"))
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--atol", type=float, default=1e-5)
    args = parser.parse_args()

    client = httpclient.InferenceServerClient(args.url)
    check = Checks()

    check("server live", client.is_server_live())
    check("server ready", client.is_server_ready())
    check("model ready", client.is_model_ready(args.model))
    server = client.get_server_metadata()
    check("server metadata", "binary_tensor_data" in server.get("extensions", []), str(server))
    metadata = client.get_model_metadata(args.model)
    check("model metadata", metadata["name"] == args.model and len(metadata["inputs"]) >= 1, str(metadata))

    input_meta = metadata["inputs"][0]
    output_names = [o["name"] for o in metadata["outputs"]]
    for data_set, x, expected in load_cases(args.fixture, len(output_names)):
        for binary in (False, True):
            tensor = httpclient.InferInput(input_meta["name"], list(x.shape), input_meta["datatype"])
            tensor.set_data_from_numpy(x, binary_data=binary)
            requested = [httpclient.InferRequestedOutput(name, binary_data=binary) for name in output_names]
            result = client.infer(args.model, [tensor], outputs=requested, request_id=f"{data_set}-{binary}")
            ok, worst = compare(result, output_names, expected, args.rtol, args.atol)
            same_id = result.get_response().get("id") == f"{data_set}-{binary}"
            check(f"infer {data_set} {'binary' if binary else 'JSON'}", ok and same_id, f"max error {worst:.3g}")

    try:
        client.get_model_metadata("no-such-model")
        check("unknown model is an error", False)
    except httpclient.InferenceServerException as error:
        check("unknown model is an error", "unknown model" in str(error), str(error))

    check.finish()


if __name__ == "__main__":
    main()
