#!/usr/bin/env python3
"""Checks a running Onyx gRPC front with Triton's own client (tritonclient.grpc), unmodified.

    python3 tools/check_tritonclient_grpc.py --url localhost:8001 --model mlp --fixture Fixtures/mlp_legacy

Starts nothing itself. Runs health, server and model metadata, inference against every test data
set of the fixture (as tools/check_tritonclient.py compares them), --concurrent async_infer calls
at once (each answer checked against its own input), and an unknown model (NOT_FOUND).
Prints 'N passed, M failed' and exits non-zero on any failure.
"""
import argparse
import os
import threading
import time

import tritonclient.grpc as grpcclient

from check_tritonclient import Checks, compare, load_cases


def wait_until_live(client, seconds=10):
    """Polls the server until it answers ServerLive: the gRPC port may open a moment after HTTP's."""
    for _ in range(int(seconds * 10)):
        try:
            if client.is_server_live():
                return
        except grpcclient.InferenceServerException:
            time.sleep(0.1)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="localhost:8001")
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--fixture", default=os.path.join(os.path.dirname(__file__), "..", "Fixtures", "mlp_legacy"))
    parser.add_argument("--concurrent", type=int, default=64)
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--atol", type=float, default=1e-5)
    args = parser.parse_args()

    client = grpcclient.InferenceServerClient(args.url)
    check = Checks()
    wait_until_live(client)

    check("server live", client.is_server_live())
    check("server ready", client.is_server_ready())
    check("model ready", client.is_model_ready(args.model))
    check("unknown model not ready", not client.is_model_ready("no-such-model"))
    server = client.get_server_metadata(as_json=True)
    check("server metadata", server.get("name") == "onyx", str(server))
    metadata = client.get_model_metadata(args.model, as_json=True)
    check("model metadata", metadata["name"] == args.model and len(metadata["inputs"]) >= 1, str(metadata))

    input_meta = metadata["inputs"][0]
    output_names = [o["name"] for o in metadata["outputs"]]

    def request(x):
        tensor = grpcclient.InferInput(input_meta["name"], list(x.shape), input_meta["datatype"])
        tensor.set_data_from_numpy(x)
        return [tensor], [grpcclient.InferRequestedOutput(name) for name in output_names]

    cases = load_cases(args.fixture, len(output_names))
    for data_set, x, expected in cases:
        inputs, outputs = request(x)
        result = client.infer(args.model, inputs, outputs=outputs, request_id=data_set)
        ok, worst = compare(result, output_names, expected, args.rtol, args.atol)
        check(f"infer {data_set}", ok and result.get_response().id == data_set, f"max error {worst:.3g}")

    # Concurrent calls through the dynamic batcher.
    done = threading.Semaphore(0)
    answers = [None] * args.concurrent

    def answered(index, result, error):
        answers[index] = (result, error)
        done.release()

    for i in range(args.concurrent):
        inputs, outputs = request(cases[i % len(cases)][1])
        client.async_infer(args.model, inputs, lambda result, error, i=i: answered(i, result, error),
                           outputs=outputs, request_id=f"async-{i}", client_timeout=60)
    finished = all(done.acquire(timeout=60) for _ in range(args.concurrent))
    correct = 0
    for i, answer in enumerate(answers):
        if answer is not None and answer[1] is None:
            ok, _ = compare(answer[0], output_names, cases[i % len(cases)][2], args.rtol, args.atol)
            correct += ok and answer[0].get_response().id == f"async-{i}"
    errors = sorted({str(a[1]) for a in answers if a is not None and a[1] is not None})
    check(f"{args.concurrent} concurrent async_infer", finished and correct == args.concurrent,
          f"{correct} correct" + (f"; errors: {errors[:3]}" if errors else ""))

    try:
        inputs, outputs = request(cases[0][1])
        client.infer("no-such-model", inputs, outputs=outputs)
        check("unknown model is NOT_FOUND", False)
    except grpcclient.InferenceServerException as error:
        check("unknown model is NOT_FOUND", error.status() == "StatusCode.NOT_FOUND" and "unknown model" in error.message(), str(error))

    client.close()
    check.finish()


if __name__ == "__main__":
    main()
