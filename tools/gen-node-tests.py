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
import re
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


# Cast/CastLike from a float type to a 2- or 4-bit integer type. ONNX says such a cast keeps the
# low bits ("we truncate bits which can't be stored"); onnx's generator takes the expected values
# from ml_dtypes' astype, which since ml_dtypes 0.5.4 (the oldest onnx 1.23.2 accepts) writes 0 for
# out-of-range inputs on some CPUs (seen on an Intel Xeon) and the low bits on others (AMD Zen 4,
# and ml_dtypes 0.5.1 everywhere). Those expected outputs are rewritten from the inputs, by the
# spec, so the suite is the same on every machine.
LOW_BIT_CAST = re.compile(r"^test_cast(like)?_(FLOAT16|FLOAT|BFLOAT16|DOUBLE)_to_(U?INT[24])(_expanded)?$")


def low_bits_cast_output(input_tensor, output_tensor, target):
    """The spec's output of casting `input_tensor` to `target` (INT4, UINT4, INT2, UINT2)."""
    from onnx import helper, numpy_helper

    bits = int(target[-1])
    values = np.trunc(numpy_helper.to_array(input_tensor).astype(np.float64)).astype(np.int64) & ((1 << bits) - 1)
    if not target.startswith("U"):
        values = np.where(values >= 1 << (bits - 1), values - (1 << bits), values)
    dtype = helper.tensor_dtype_to_np_dtype(output_tensor.data_type)
    small = values.astype(np.int8).astype(dtype)  # every value is in range now
    packed = numpy_helper._pack_4bitx2(small) if bits == 4 else numpy_helper._pack_2bitx4(small)
    return helper.make_tensor(output_tensor.name, output_tensor.data_type, list(output_tensor.dims),
                              vals=packed.tobytes(), raw=True)


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
        low_bits = LOW_BIT_CAST.match(case.name)
        for index, (inputs, outputs) in enumerate(case.data_sets):
            if low_bits:
                outputs = [low_bits_cast_output(inputs[0], outputs[0], low_bits.group(3))]
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
