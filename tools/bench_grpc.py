#!/usr/bin/env python3
"""ModelInfer throughput over gRPC against the HTTP binary-tensor path, with Triton's own clients.

    python3 tools/bench_grpc.py MODEL.onnx [--duration 10] [--concurrency 4] [--onyx .build/release/onyx]

Starts `onyx serve MODEL --grpc-port`, then, alternately and twice each, keeps --concurrency
threads sending one request at a time for --duration seconds: tritonclient.http with binary
tensors (`binary_data=True` both ways) and tritonclient.grpc (raw_input_contents). The input is
random, batch 1, shaped as the model's first input with dynamic axes set to 1 (or --shape).
Prints requests/s, p50/p99 latency, and the CPU time per request of the server process and of
this (client) process per client, and the gRPC / HTTP throughput ratio. Clients and server share
the machine, so both CPU costs bound the throughput.
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
import onnx
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from check_tritonclient_grpc import wait_until_live

TYPES = {onnx.TensorProto.FLOAT: ("FP32", np.float32), onnx.TensorProto.INT64: ("INT64", np.int64)}


def model_input(path, shape):
    graph = onnx.load(path, load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    value = next(v for v in graph.input if v.name not in initializers)
    datatype, dtype = TYPES[value.type.tensor_type.elem_type]
    dims = shape or [d.dim_value if d.dim_value > 0 else 1 for d in value.type.tensor_type.shape.dim]
    return value.name, datatype, np.random.default_rng(0).standard_normal(dims).astype(dtype), [o.name for o in graph.output]


def cpu_seconds(pid):
    """User + system CPU seconds used so far by process `pid` (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(kind, url, name, datatype, data, output_names, duration, concurrency, server_pid):
    latencies, errors = [], []
    lock = threading.Lock()
    stop = time.perf_counter() + duration

    def worker():
        module = grpcclient if kind == "grpc" else httpclient
        client = module.InferenceServerClient(url=url)
        request = module.InferInput(name, list(data.shape), datatype)
        if kind == "grpc":
            request.set_data_from_numpy(data)
            outputs = None
        else:
            request.set_data_from_numpy(data, binary_data=True)
            outputs = [httpclient.InferRequestedOutput(o, binary_data=True) for o in output_names]
        mine = []
        while time.perf_counter() < stop:
            start = time.perf_counter()
            try:
                client.infer("m", [request], outputs=outputs)
            except Exception as error:  # noqa: BLE001 - counted and reported
                with lock:
                    errors.append(str(error))
                continue
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    server_began, client_began = cpu_seconds(server_pid), own_cpu_seconds()
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    server_cpu, client_cpu = cpu_seconds(server_pid) - server_began, own_cpu_seconds() - client_began
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")  # noqa: E731
    per_request = lambda seconds: seconds * 1000 / max(1, len(latencies))  # noqa: E731
    return {"rps": len(latencies) / elapsed, "p50": p(0.5), "p99": p(0.99), "errors": len(errors),
            "server_cpu": per_request(server_cpu), "client_cpu": per_request(client_cpu),
            "first_error": errors[0] if errors else ""}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--shape", type=int, nargs="*")
    parser.add_argument("--onyx", default=os.path.join(os.path.dirname(__file__), "..", ".build", "release", "onyx"))
    parser.add_argument("--port", type=int, default=18710)
    parser.add_argument("--threads", type=int, default=0, help="onyx serve --threads")
    args = parser.parse_args()

    name, datatype, data, output_names = model_input(args.model, args.shape)
    http_url, grpc_url = f"127.0.0.1:{args.port}", f"127.0.0.1:{args.port + 1}"
    server = subprocess.Popen([args.onyx, "serve", args.model, "--name", "m", "--port", str(args.port),
                               "--grpc-port", str(args.port + 1), "--threads", str(args.threads), "--log-level", "warning"])
    try:
        wait_until_live(grpcclient.InferenceServerClient(url=grpc_url), seconds=60)
        results = {"http": [], "grpc": []}
        for _ in range(args.rounds):
            for kind in ("http", "grpc"):
                results[kind].append(run(kind, http_url if kind == "http" else grpc_url, name, datatype, data,
                                         output_names, args.duration, args.concurrency, server.pid))
        print(f"model: {args.model}, input {name} {datatype}{list(data.shape)} ({data.nbytes} bytes), "
              f"{args.concurrency} client threads, {args.rounds} x {args.duration:g} s each, alternated")
        print()
        print("| client | requests/s | p50 (ms) | p99 (ms) | server CPU (ms/req) | client CPU (ms/req) | errors |")
        print("|---|---|---|---|---|---|---|")
        medians = {}
        for kind, label in (("http", "tritonclient.http, binary tensors"), ("grpc", "tritonclient.grpc")):
            rounds = results[kind]
            medians[kind] = statistics.median(r["rps"] for r in rounds)
            print(f"| {label} | {medians[kind]:.1f} | {statistics.median(r['p50'] for r in rounds):.2f} | "
                  f"{statistics.median(r['p99'] for r in rounds):.2f} | "
                  f"{statistics.median(r['server_cpu'] for r in rounds):.2f} | "
                  f"{statistics.median(r['client_cpu'] for r in rounds):.2f} | {sum(r['errors'] for r in rounds)} |")
            for r in rounds:
                if r["errors"]:
                    print(f"  {kind}: {r['first_error']}", file=sys.stderr)
        print()
        if medians["http"] > 0:
            print(f"gRPC / HTTP throughput: {medians['grpc'] / medians['http']:.2f}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
