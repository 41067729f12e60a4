#!/usr/bin/env python3
"""Writes the ONNX backend node test cases in the standard layout, for `onyx test`.

    python3 tools/gen-node-tests.py [OUT_DIR]     (default: Generated/node, git-ignored)

Each case becomes OUT_DIR/<case>/model.onnx with test_data_set_N/input_K.pb and output_K.pb.
The cases come from `onnx.backend.test.case.node.collect_testcases` of the pinned onnx release
(tools/requirements-ci.txt), so the suite is the one onnxruntime is measured against. Inputs
and outputs that are sequences, maps or optionals are written as SequenceProto, MapProto or
OptionalProto, as onnx's own generator does; `onyx test` reports those cases as unsupported.
"""

import os
import shutil
import sys
import warnings

import numpy as np

PINNED_ONNX = "1.23.2"


def serialized(value, value_info):
    """The protobuf bytes of one input or output, by the graph's declared kind."""
    from onnx import TensorProto, numpy_helper

    kind = value_info.type.WhichOneof("value")
    if kind == "sequence_type":
        return numpy_helper.from_list(value, value_info.name).SerializeToString()
    if kind == "map_type":
        return numpy_helper.from_dict(value, value_info.name).SerializeToString()
    if kind == "optional_type":
        return numpy_helper.from_optional(value, value_info.name).SerializeToString()
    if isinstance(value, TensorProto):
        return value.SerializeToString()
    return numpy_helper.from_array(np.asarray(value), value_info.name).SerializeToString()


def main() -> int:
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "Generated", "node")
    import onnx
    from onnx.backend.test.case.node import collect_testcases

    if onnx.__version__ != PINNED_ONNX:
        print(f"gen-node-tests: onnx {onnx.__version__} is installed; the suite is pinned to {PINNED_ONNX} "
              f"(pip install onnx=={PINNED_ONNX})", file=sys.stderr)
        return 1

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the case generators overflow on purpose (casts, log(0))
        cases = collect_testcases()

    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    written = 0
    for case in cases:
        if case.model is None or not case.data_sets:
            continue
        folder = os.path.join(out, case.name)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "model.onnx"), "wb") as f:
            f.write(case.model.SerializeToString())
        graph = case.model.graph
        for index, (inputs, outputs) in enumerate(case.data_sets):
            data_set = os.path.join(folder, f"test_data_set_{index}")
            os.makedirs(data_set)
            for k, value in enumerate(inputs):
                with open(os.path.join(data_set, f"input_{k}.pb"), "wb") as f:
                    f.write(serialized(value, graph.input[k]))
            for k, value in enumerate(outputs):
                with open(os.path.join(data_set, f"output_{k}.pb"), "wb") as f:
                    f.write(serialized(value, graph.output[k]))
        written += 1
    print(f"gen-node-tests: wrote {written} node cases (onnx {onnx.__version__}) to {os.path.normpath(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
