#!/usr/bin/env python3
"""Soak test: a live `onyx serve` under a bounded mix of valid and hostile requests.

    python3 tools/soak.py --onyx .build/release/onyx --seconds 60

Serves a temporary model repository (mlp and lenet from Fixtures, plus `tight`, a lenet copy with a
queue of 2 that is deliberately overloaded in bursts) on 127.0.0.1 over HTTP and gRPC with a 1 MiB
body limit, a 2 s idle timeout and at most 64 connections; one thread sends tritonclient.grpc
traffic (valid and refused calls) beside the HTTP workers. Worker threads send requests drawn from CASES over raw
sockets; a slow-client thread keeps one connection stalled mid-body at a time; every 10 s a burst
opens 150 connections at once. Reports requests, statuses, 5xx, whether the server crashed, and its
RSS after warm-up and at the end. Exits 1 when a 5xx (outside the overload burst), an unexpected
status, a crash, a stalled client the server did not close, or RSS growth of 10 % or more is seen.
"""
import argparse
import collections
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
HOST = "127.0.0.1"
MAX_BODY = 1 << 20
IDLE_TIMEOUT = 2
MAX_CONNECTIONS = 64


def fixture_tensor(name, file):
    return numpy_helper.to_array(onnx.load_tensor(os.path.join(ROOT, "Fixtures", name, "test_data_set_1", file)))


MLP_X = fixture_tensor("mlp_legacy", "input_0.pb")
MLP_Y = fixture_tensor("mlp_legacy", "output_0.pb")
LENET_X = fixture_tensor("lenet_dynamo", "input_0.pb")


def infer_json(x, name="input", datatype="FP32", data=None, shape=None):
    return json.dumps({"inputs": [{"name": name, "datatype": datatype,
                                   "shape": list(x.shape) if shape is None else shape,
                                   "data": x.flatten().tolist() if data is None else data}]}).encode()


def binary_body(x, send_bytes=None, claim_bytes=None):
    raw = x.astype(np.float32).tobytes()
    header = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape),
                                     "parameters": {"binary_data_size": claim_bytes or len(raw)}}]}).encode()
    return header, header + raw[:send_bytes if send_bytes is not None else len(raw)]


def request(method, path, body=b"", headers=None, content_length=None):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
    for key, value in (headers or {}).items():
        lines.append(f"{key}: {value}")
    if method == "POST" or body:
        lines.append(f"Content-Length: {len(body) if content_length is None else content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_response(sock):
    """(status, headers, body) of one response, or (None, {}, b"") when the connection closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None, {}, b""
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:length]


class Connection:
    """One keep-alive client connection; reconnects after the server closes it."""

    def __init__(self, port):
        self.port = port
        self.sock = None

    def exchange(self, raw, close=False):
        for attempt in range(2):
            if self.sock is None:
                self.sock = socket.create_connection((HOST, self.port), timeout=30)
            try:
                self.sock.sendall(raw)
                status, headers, body = read_response(self.sock)
            except (ConnectionError, socket.timeout):
                status, headers, body = None, {}, b""
            if status is None or close or headers.get("connection", "").lower() == "close":
                self.close()
            if status is not None or attempt == 1:
                return status, headers, body
        return None, {}, b""

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def mlp_answer_ok(body):
    try:
        data = json.loads(body)["outputs"][0]["data"]
        return np.allclose(np.array(data, np.float32).reshape(MLP_Y.shape), MLP_Y, rtol=1e-4, atol=1e-5)
    except Exception:
        return False


def case_table():
    """name → (weight, expected statuses, function(Connection) → status)."""
    x64 = MLP_X
    infer = "/v2/models/mlp/infer"
    post = lambda path, body, **kw: request("POST", path, body, **kw)
    header, full = binary_body(x64)

    def valid_json(c):
        status, _, body = c.exchange(post(infer, infer_json(x64)))
        return status if status != 200 or mlp_answer_ok(body) else "wrong answer"

    def valid_binary(c):
        status, _, _ = c.exchange(post(infer, full, headers={"Inference-Header-Content-Length": len(header)}))
        return status

    def simple(raw, close=False):
        return lambda c: c.exchange(raw, close=close)[0]

    nan_int = infer_json(x64, datatype="INT64", data=[float("nan")] + [0] * (x64.size - 1))

    def oversized_declared(c):
        # Content-Length past the limit, only the first KiB sent: 413 before the rest is read.
        return c.exchange(post(infer, b"x" * 1024, content_length=MAX_BODY * 4), close=True)[0]

    def oversized_chunked(c):
        chunk = b"[" * 65536
        pieces = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(MAX_BODY // len(chunk) + 2))
        raw = (f"POST {infer} HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n").encode() + pieces + b"0\r\n\r\n"
        try:
            return c.exchange(raw, close=True)[0]
        except BrokenPipeError:
            c.close()
            return "closed"

    cases = {
        "valid json (mlp)": (20, {200}, valid_json),
        "valid binary (mlp)": (8, {200}, valid_binary),
        "valid json (lenet)": (4, {200}, simple(post("/v2/models/lenet/infer", infer_json(LENET_X)))),
        "valid /predictions (mlp)": (4, {200}, simple(post("/predictions/mlp", json.dumps({"data": x64.tolist()}).encode()))),
        "metadata": (3, {200}, simple(request("GET", "/v2/models/lenet"))),
        "health": (2, {200}, simple(request("GET", "/v2/health/ready"))),
        "malformed json": (3, {400}, simple(post(infer, b'{"inputs":[{"name":"input",'))),
        "wrong datatype": (2, {400}, simple(post(infer, infer_json(x64.astype(np.int64), datatype="INT64")))),
        "shape/data mismatch": (2, {400}, simple(post(infer, infer_json(x64, shape=[1, 65])))),
        "unknown input": (2, {400}, simple(post(infer, infer_json(x64, name="nope")))),
        "missing input": (2, {400}, simple(post(infer, b'{"inputs":[]}'))),
        "wrong rank": (2, {400}, simple(post(infer, infer_json(x64, shape=[64])))),
        "NaN in INT64": (2, {400}, simple(post(infer, nan_int))),
        "huge number in shape": (2, {400}, simple(post(infer, infer_json(x64, shape=[1e300, 64])))),
        "1e39 in FP32 (saturates)": (2, {200}, simple(post(infer, infer_json(x64, data=[1e39] * 64)))),
        "too many elements": (1, {400}, simple(post(infer, infer_json(x64, shape=[1 << 20, 1 << 20])))),
        "oversized body (declared)": (1, {413}, oversized_declared),
        "oversized body (chunked)": (1, {413, "closed"}, oversized_chunked),
        "header length > body": (2, {400}, simple(post(infer, full, headers={"Inference-Header-Content-Length": len(full) + 1}))),
        "header length negative": (2, {400}, simple(post(infer, full, headers={"Inference-Header-Content-Length": -5}))),
        "header length not a number": (2, {400}, simple(post(infer, full, headers={"Inference-Header-Content-Length": "12ab"}))),
        "truncated binary": (2, {400}, simple(post(infer, binary_body(x64, send_bytes=100)[1],
                                                   headers={"Inference-Header-Content-Length": len(header)}))),
        "unknown model": (2, {404}, simple(post("/v2/models/ghost/infer", infer_json(x64)))),
        "unknown version": (1, {404}, simple(post("/v2/models/mlp/versions/9/infer", infer_json(x64)))),
        "garbage request line": (1, {400, "closed"}, simple(b"\x00\x01GARBAGE\r\n\r\n", close=True)),
    }
    return cases


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.by_case = collections.defaultdict(collections.Counter)
        self.unexpected = collections.Counter()
        self.errors = collections.Counter()

    def add(self, case, outcome, expected):
        with self.lock:
            self.by_case[case][outcome] += 1
            if outcome not in expected:
                self.unexpected[(case, outcome)] += 1


def worker(port, cases, deadline, tally, seed):
    rng = random.Random(seed)
    names = list(cases)
    weights = [cases[n][0] for n in names]
    connection = Connection(port)
    while time.monotonic() < deadline:
        name = rng.choices(names, weights)[0]
        _, expected, run = cases[name]
        try:
            outcome = run(connection)
        except Exception as error:  # a client-side failure is a finding too
            connection.close()
            outcome = f"client error: {type(error).__name__}"
        tally.add(name, outcome if outcome is not None else "closed", expected)
    connection.close()


def slow_clients(port, deadline, tally, closed_after):
    """Sends headers and part of the body, then stalls: the idle timeout must close the connection."""
    while time.monotonic() < deadline - IDLE_TIMEOUT - 3:
        sock = socket.create_connection((HOST, port), timeout=IDLE_TIMEOUT + 10)
        start = time.monotonic()
        try:
            sock.sendall(request("POST", "/v2/models/mlp/infer", b'{"inputs":[', content_length=4096))
            status, _, _ = read_response(sock)
            outcome = "closed" if status is None else status
        except socket.timeout:
            outcome = "still open"
        except ConnectionError:
            outcome = "closed"
        finally:
            sock.close()
        closed_after.append(time.monotonic() - start)
        tally.add("slow client (stalls mid-body)", outcome, {"closed", 408})


def connection_bursts(port, deadline, tally, size=150):
    """Every 10 s: `size` connections at once, each asking for readiness (past --max-connections they wait)."""
    while time.monotonic() + 12 < deadline:
        time.sleep(10)
        socks = []
        for _ in range(size):
            try:
                socks.append(socket.create_connection((HOST, port), timeout=30))
            except OSError as error:
                tally.add("connection burst", f"connect failed: {type(error).__name__}", {200})
        for sock in socks:
            sock.sendall(request("GET", "/v2/health/ready"))
        for sock in socks:
            try:
                status, _, _ = read_response(sock)
            except OSError:
                status = None
            tally.add("connection burst", status if status is not None else "closed", {200})
            sock.close()


def overload_bursts(port, deadline, tally, size=24):
    """Every 5 s: `size` concurrent requests to `tight` (queue capacity 2): 200 or 503 + Retry-After."""
    body = infer_json(np.repeat(LENET_X, 16, axis=0))

    def one():
        c = Connection(port)
        status, headers, _ = c.exchange(request("POST", "/v2/models/tight/infer", body), close=True)
        if status == 503 and "retry-after" not in headers:
            status = "503 without Retry-After"
        tally.add("overload burst (tight)", status if status is not None else "closed", {200, 503})

    while time.monotonic() + 7 < deadline:
        time.sleep(5)
        threads = [threading.Thread(target=one) for _ in range(size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def grpc_traffic(grpc_port, deadline, tally):
    """tritonclient.grpc beside the HTTP traffic: valid ModelInfer calls on mlp and lenet, each answer
    checked, and the refusals a client can cause (a wrong shape, an unknown model)."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(url=f"{HOST}:{grpc_port}")

    def infer(model, x):
        request = grpcclient.InferInput("input", list(x.shape), "FP32")
        request.set_data_from_numpy(x.astype(np.float32))
        return client.infer(model, [request])

    def valid_mlp():
        y = infer("mlp", MLP_X).as_numpy("output")
        return "OK" if np.allclose(y, MLP_Y, rtol=1e-4, atol=1e-5) else "wrong answer"

    def valid_lenet():
        return "OK" if infer("lenet", LENET_X).get_response().outputs else "no outputs"

    cases = {
        "grpc: mlp infer": (valid_mlp, {"OK"}),
        "grpc: lenet infer": (valid_lenet, {"OK"}),
        "grpc: wrong shape": (lambda: infer("mlp", MLP_X[:, :10]), {"StatusCode.INVALID_ARGUMENT"}),
        "grpc: unknown model": (lambda: infer("nope", MLP_X), {"StatusCode.NOT_FOUND"}),
    }
    rng = random.Random(7)
    names = list(cases)
    while time.monotonic() < deadline:
        name = rng.choices(names, [8, 2, 1, 1])[0]
        run, expected = cases[name]
        try:
            outcome = run()
        except InferenceServerException as error:
            outcome = error.status() or "no status"
        except Exception as error:  # a client-side failure is a finding too
            outcome = f"client error: {type(error).__name__}"
        tally.add(name, outcome, expected)
    client.close()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def make_repository(folder):
    for name, fixture, config in [
        ("mlp", "mlp_legacy", None),
        ("lenet", "lenet_dynamo", None),
        ("tight", "lenet_dynamo", {"queue_capacity": 2, "instance_count": 1, "max_batch_size": 1, "threads": 1}),
    ]:
        os.makedirs(os.path.join(folder, name, "1"))
        shutil.copy(os.path.join(ROOT, "Fixtures", fixture, "model.onnx"), os.path.join(folder, name, "1", "model.onnx"))
        if config:
            with open(os.path.join(folder, name, "config.json"), "w") as f:
                json.dump(config, f)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onyx", default=os.path.join(ROOT, ".build", "release", "onyx"))
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="run only the cases whose name contains TEXT (repeatable; for narrowing a finding down)")
    args = parser.parse_args()

    def free_port():
        with socket.socket() as s:
            s.bind((HOST, 0))
            return s.getsockname()[1]

    port = args.port or free_port()
    grpc_port = free_port()
    folder = tempfile.mkdtemp(prefix="onyx-soak-")
    make_repository(folder)
    command = [args.onyx, "serve", "--model-repository", folder, "--host", HOST, "--port", str(port),
               "--grpc-port", str(grpc_port),
               "--max-body-bytes", str(MAX_BODY), "--idle-timeout", str(IDLE_TIMEOUT),
               "--max-connections", str(MAX_CONNECTIONS), "--log-level", "error"]
    print("server:", " ".join(command[:1] + ["serve", "--model-repository", "TMP"] + [str(a) for a in command[4:]]))
    server = subprocess.Popen(command)
    try:
        for _ in range(200):
            try:
                c = Connection(port)
                if c.exchange(request("GET", "/v2/health/ready"), close=True)[0] == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None:
                sys.exit(f"server exited with {server.returncode} before it was ready")
            time.sleep(0.1)
        else:
            sys.exit("server did not become ready")

        selected = lambda name: not args.only or any(text in name for text in args.only)
        cases = {name: case for name, case in case_table().items() if selected(name)}
        tally = Tally()
        start = time.monotonic()
        deadline = start + args.seconds
        closed_after = []
        threads = [threading.Thread(target=worker, args=(port, cases, deadline, tally, seed))
                   for seed in range(args.workers if cases else 0)]
        for name, target, extra in [("slow client", slow_clients, (closed_after,)), ("connection burst", connection_bursts, ()),
                                    ("overload burst", overload_bursts, ())]:
            if selected(name):
                threads.append(threading.Thread(target=target, args=(port, deadline, tally) + extra))
        if selected("grpc"):
            threads.append(threading.Thread(target=grpc_traffic, args=(grpc_port, deadline, tally)))
        for t in threads:
            t.start()
        warmup = min(10.0, args.seconds / 5)
        time.sleep(warmup)
        rss_start = rss_kib(server.pid)
        rss_peak = rss_start
        while time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.5)
            if server.poll() is None:
                rss_peak = max(rss_peak, rss_kib(server.pid))
        crashed = server.poll() is not None
        rss_end = rss_kib(server.pid) if not crashed else 0
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(folder, ignore_errors=True)

    statuses = collections.Counter()
    for outcomes in tally.by_case.values():
        statuses.update(outcomes)
    total = sum(statuses.values())
    overload = tally.by_case.get("overload burst (tight)", collections.Counter())
    fives = sum(n for case, outcomes in tally.by_case.items() if case != "overload burst (tight)"
                for status, n in outcomes.items() if isinstance(status, int) and status >= 500)
    growth = (rss_end - rss_start) / rss_start if rss_start else float("inf")

    print(f"\n{total} requests in {elapsed:.1f} s ({total / elapsed:.0f}/s), {args.workers} workers + slow clients + bursts + gRPC")
    print("statuses:", ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items(), key=lambda kv: str(kv[0]))))
    print("\nper case:")
    for case in sorted(tally.by_case):
        outcomes = tally.by_case[case]
        print(f"  {case:34} " + ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items(), key=lambda kv: str(kv[0]))))
    if closed_after:
        print(f"\nslow clients closed after {min(closed_after):.1f}–{max(closed_after):.1f} s (idle timeout {IDLE_TIMEOUT} s)")
    print(f"overload burst 503s (deliberate, queue capacity 2): {overload.get(503, 0)} of {sum(overload.values())}")
    print(f"5xx outside the overload burst: {fives}")
    exit_code = server.returncode
    print(f"server crashed: {'yes' if crashed else 'no'}; exit code after SIGTERM: {exit_code}")
    print(f"RSS after {warmup:.0f} s warm-up: {rss_start / 1024:.1f} MiB, at the end: {rss_end / 1024:.1f} MiB "
          f"({growth * 100:+.1f} %), peak {rss_peak / 1024:.1f} MiB")

    failures = []
    if fives:
        failures.append(f"{fives} responses with 5xx")
    if tally.unexpected:
        failures.append("unexpected outcomes: " + ", ".join(f"{case} → {status} ×{n}" for (case, status), n in tally.unexpected.items()))
    if crashed:
        failures.append(f"server exited during the run with {exit_code}")
    elif exit_code != 0:
        failures.append(f"server exited with {exit_code} after SIGTERM")
    if growth >= 0.10:
        failures.append(f"RSS grew {growth * 100:.1f} %")
    if any(t > IDLE_TIMEOUT + 5 for t in closed_after):
        failures.append("a stalled client stayed open past the idle timeout")
    for failure in failures:
        print("FAIL:", failure)
    print("PASS" if not failures else "FAILED")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
