#!/usr/bin/env python3
"""SIGTERM drain check: requests in flight when `onyx serve` gets SIGTERM all get correct answers,
and the server exits 0.

    python3 tools/check_sigterm.py --onyx .build/debug/onyx --port 8011 [--grpc-port 8013]

Starts `onyx serve` on Fixtures/mlp_legacy with a 300 ms batch delay, so requests are still queued
when the signal arrives; sends 16 concurrent requests (and, with --grpc-port, 16 more over gRPC
with tritonclient.grpc), then SIGTERM. Loopback only.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import onnx
from onnx import numpy_helper


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    root = os.path.join(os.path.dirname(__file__), "..")
    parser.add_argument("--onyx", default=os.path.join(root, ".build", "debug", "onyx"))
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--grpc-port", type=int, help="also serve gRPC there and send requests to it")
    args = parser.parse_args()

    fixture = os.path.join(root, "Fixtures", "mlp_legacy")
    server = subprocess.Popen(
        [args.onyx, "serve", os.path.join(fixture, "model.onnx"), "--name", "mlp", "--port", str(args.port),
         "--max-batch-size", "64", "--max-queue-delay-ms", "300", "--log-level", "warning"]
        + (["--grpc-port", str(args.grpc_port)] if args.grpc_port else []))
    url = f"http://127.0.0.1:{args.port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/v2/health/ready", timeout=1)
            break
        except Exception:
            time.sleep(0.1)
    else:
        server.kill()
        sys.exit("server did not become ready")

    x = numpy_helper.to_array(onnx.load_tensor(os.path.join(fixture, "test_data_set_1", "input_0.pb")))
    expected = numpy_helper.to_array(onnx.load_tensor(os.path.join(fixture, "test_data_set_1", "output_0.pb")))
    body = json.dumps({"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                                   "data": x.flatten().tolist()}]}).encode()
    results = []
    lock = threading.Lock()

    def send():
        try:
            request = urllib.request.Request(url + "/v2/models/mlp/infer", data=body, method="POST")
            with urllib.request.urlopen(request, timeout=10) as response:
                data = json.loads(response.read())["outputs"][0]["data"]
                ok = np.allclose(np.array(data, np.float32).reshape(expected.shape), expected, rtol=1e-4, atol=1e-5)
                outcome = ("ok" if ok else "wrong answer")
        except Exception as error:
            outcome = f"error: {error}"
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=send) for _ in range(16)]
    if args.grpc_port:
        import tritonclient.grpc as grpcclient
        from check_tritonclient_grpc import wait_until_live

        client = grpcclient.InferenceServerClient(f"127.0.0.1:{args.grpc_port}")
        wait_until_live(client)

        def send_grpc():
            try:
                tensor = grpcclient.InferInput("input", list(x.shape), "FP32")
                tensor.set_data_from_numpy(x)
                got = client.infer("mlp", [tensor], client_timeout=10).as_numpy("output")
                outcome = "ok" if np.allclose(got, expected, rtol=1e-4, atol=1e-5) else "wrong answer (gRPC)"
            except Exception as error:
                outcome = f"error (gRPC): {error}"
            with lock:
                results.append(outcome)

        threads += [threading.Thread(target=send_grpc) for _ in range(16)]
    for t in threads:
        t.start()
    time.sleep(0.1)  # requests are now waiting in the batcher
    server.send_signal(signal.SIGTERM)
    for t in threads:
        t.join()
    code = server.wait(timeout=20)
    answered = results.count("ok")
    print(f"in flight at SIGTERM: {len(results)}, answered correctly: {answered}, exit code: {code}")
    for outcome in results:
        if outcome != "ok":
            print("  ", outcome)
    failed = (len(results) - answered) + (1 if code != 0 else 0)
    print(f"{answered + (1 if code == 0 else 0)} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
