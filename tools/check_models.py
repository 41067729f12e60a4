#!/usr/bin/env python3
"""Runs `onyx run` on every model folder under the given roots and compares with the expected outputs.

    python3 tools/check_models.py [--onyx .build/release/onyx] [--rtol 1e-4] [--atol 1e-5] Models Fixtures

Prints one line per test data set and exits non-zero if any differs beyond atol + rtol·|expected|.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("roots", nargs="+")
    parser.add_argument("--onyx", default=os.path.join(os.path.dirname(__file__), "..", ".build", "release", "onyx"))
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--atol", type=float, default=1e-5)
    args = parser.parse_args()
    failures = 0
    total = 0
    for root in args.roots:
        for name in sorted(os.listdir(root)):
            folder = os.path.join(root, name)
            if not os.path.isfile(os.path.join(folder, "model.onnx")):
                continue
            for entry in sorted(os.listdir(folder)):
                if not entry.startswith("test_data_set_"):
                    continue
                data = os.path.join(folder, entry)
                inputs = sorted(f for f in os.listdir(data) if f.startswith("input_"))
                total += 1
                with tempfile.TemporaryDirectory() as out:
                    command = [args.onyx, "run", os.path.join(folder, "model.onnx"), "--output-dir", out]
                    for f in inputs:
                        command += ["--input", os.path.join(data, f)]
                    result = subprocess.run(command, capture_output=True, text=True)
                    if result.returncode != 0:
                        print(f"FAIL {name}/{entry}: {result.stderr.strip()}")
                        failures += 1
                        continue
                    worst = 0.0
                    ok = True
                    for f in sorted(f for f in os.listdir(data) if f.startswith("output_")):
                        expected = numpy_helper.to_array(onnx.load_tensor(os.path.join(data, f)))
                        got = numpy_helper.to_array(onnx.load_tensor(os.path.join(out, f)))
                        if got.shape != expected.shape:
                            print(f"FAIL {name}/{entry}/{f}: shape {got.shape} != {expected.shape}")
                            ok = False
                            continue
                        excess = np.abs(got - expected) - (args.atol + args.rtol * np.abs(expected))
                        worst = max(worst, float(np.abs(got - expected).max()))
                        if excess.max() > 0:
                            ok = False
                    print(f"{'ok  ' if ok else 'FAIL'} {name}/{entry}: max |onyx - pytorch| = {worst:.3g}")
                    failures += 0 if ok else 1
    print(f"{total - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
