#!/usr/bin/env python3
"""scikit-learn pipelines exported with skl2onnx: Onyx against onnxruntime.

    python3 tools/check_sklearn.py [--onyx PATH] [--keep DIR]     cross-check every pipeline
    python3 tools/check_sklearn.py --write-fixtures                 regenerate Fixtures/sklearn/
    python3 tools/check_sklearn.py --bench [--duration 2]           time the tree ensembles
    python3 tools/check_sklearn.py --serve                          the classifiers through `onyx serve`

The cross-check trains small models on seeded synthetic data, exports each for ai.onnx.ml opset 1
and 3 (skl2onnx writes the lowest opset a model needs, so "3→1" rows are opset-1 files), each
classifier also with its default ZipMap (output_probability: one map label → probability per row)
and with string class labels, runs onnxruntime and `onyx run` on the same
held-out rows and compares every output: labels and other integer outputs exactly, float outputs
within rtol 1e-3 / atol 1e-4. Then it checks hand-built one-operator models for what sklearn
exports do not reach (every post_transform and aggregate, base values, the two-class cases,
missing values, every branch mode, opset 3's *_as_tensor, TreeEnsemble 5, other input types). It
exits non-zero if anything fails.

--write-fixtures writes four tiny models with their inputs and onnxruntime's outputs in the
ONNX backend-test layout (model.onnx, test_data_set_0/input_0.pb, output_K.pb), which
Tests/OnyxTests/TraditionalMLFixtureTests.swift runs.

--bench trains a 100-tree RandomForestClassifier and a 300-tree GradientBoostingClassifier and
times each at batch 1 and 1000 on one thread: `onyx bench --threads 1 --duration D` (p50) against
an onnxruntime loop of the same duration (median), alternating --rounds times and keeping each
side's best, and prints the Onyx / onnxruntime ratio. onnxruntime is timed from Python, so its
batch-1 times include the binding's overhead (some microseconds).
Build the CLI in release first: `swift build -c release --product onyx`.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

warnings.filterwarnings("ignore")

from sklearn.base import is_classifier  # noqa: E402
from sklearn.datasets import make_classification, make_regression  # noqa: E402
from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor,  # noqa: E402
                              RandomForestClassifier, RandomForestRegressor)
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import Normalizer, OneHotEncoder, StandardScaler  # noqa: E402
from sklearn.svm import SVC, SVR  # noqa: E402
from skl2onnx import to_onnx  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RTOL, ATOL = 1e-3, 1e-4
OPSETS = {1: {"": 17, "ai.onnx.ml": 1}, 3: {"": 18, "ai.onnx.ml": 3}}


# MARK: - Data and models

def classification(classes, n=400, features=8, seed=0):
    X, y = make_classification(n, features, n_informative=min(5, features - 1), n_redundant=min(1, features - 3), n_classes=classes,
                               n_clusters_per_class=1, random_state=seed)
    return X.astype(np.float32), y


def regression(n=400, features=8, seed=0):
    X, y = make_regression(n, features, n_informative=min(6, features), noise=5.0, random_state=seed)
    return X.astype(np.float32), y.astype(np.float32)


def labelled(y, labels):
    """y with classes 0, 1, … renamed to `labels` (so label outputs are not just indices)."""
    return np.asarray(labels, dtype=np.int64)[y]


def pipelines():
    """(name, fitted model, held-out X) for the cross-check."""
    Xb, yb = classification(2)
    Xm, ym = classification(3, seed=1)
    Xr, yr = regression()
    Xi = Xr.copy()
    rng = np.random.RandomState(0)
    Xi[rng.rand(*Xi.shape) < 0.1] = np.nan
    ints = rng.randint(0, 5, size=(400, 3)).astype(np.int64)
    train, test = slice(0, 300), slice(300, 400)
    yield "scaler+logreg binary", make_pipeline(StandardScaler(), LogisticRegression()).fit(Xb[train], labelled(yb, [3, 7])[train]), Xb[test]
    yield "scaler+logreg multiclass", make_pipeline(StandardScaler(), LogisticRegression()).fit(Xm[train], ym[train]), Xm[test]
    yield "linear regression", LinearRegression().fit(Xr[train], yr[train]), Xr[test]
    yield "random forest classifier binary", RandomForestClassifier(20, max_depth=6, random_state=0).fit(Xb[train], labelled(yb, [3, 7])[train]), Xb[test]
    yield "random forest classifier multiclass", RandomForestClassifier(20, max_depth=6, random_state=0).fit(Xm[train], ym[train]), Xm[test]
    yield "random forest regressor", RandomForestRegressor(20, max_depth=6, random_state=0).fit(Xr[train], yr[train]), Xr[test]
    yield "gradient boosting classifier binary", GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0).fit(Xb[train], labelled(yb, [3, 7])[train]), Xb[test]
    yield "gradient boosting classifier multiclass", GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0).fit(Xm[train], ym[train]), Xm[test]
    yield "gradient boosting regressor", GradientBoostingRegressor(n_estimators=30, max_depth=3, random_state=0).fit(Xr[train], yr[train]), Xr[test]
    yield "svc probability binary", SVC(probability=True, random_state=0).fit(Xb[train], labelled(yb, [3, 7])[train]), Xb[test]
    yield "svc probability multiclass", SVC(probability=True, random_state=0).fit(Xm[train], ym[train]), Xm[test]
    yield "svc binary", SVC().fit(Xb[train], yb[train]), Xb[test]
    yield "svc multiclass", SVC().fit(Xm[train], ym[train]), Xm[test]
    yield "svc poly multiclass", SVC(kernel="poly", degree=3).fit(Xm[train], ym[train]), Xm[test]
    yield "svr", SVR().fit(Xr[train], yr[train]), Xr[test]
    yield "svr linear", SVR(kernel="linear").fit(Xr[train], yr[train]), Xr[test]
    for norm in ("l1", "l2", "max"):
        yield f"normalizer {norm}", Normalizer(norm=norm).fit(Xr[train]), Xr[test]
    yield "one-hot encoder (ints)", OneHotEncoder(sparse_output=False, handle_unknown="ignore").fit(ints[train]), ints[test]
    yield "simple imputer + random forest regressor", make_pipeline(SimpleImputer(), RandomForestRegressor(10, max_depth=5, random_state=0)).fit(Xi[train], yr[train]), Xi[test]
    # Double inputs: skl2onnx writes the thresholds and weights as *_as_tensor doubles (opset 3).
    X64b, X64r = Xb.astype(np.float64), Xr.astype(np.float64)
    yield "random forest classifier binary (double)", RandomForestClassifier(20, max_depth=6, random_state=0).fit(X64b[train], yb[train]), X64b[test]
    yield "random forest regressor (double)", RandomForestRegressor(20, max_depth=6, random_state=0).fit(X64r[train], yr[train]), X64r[test]
    yield "gradient boosting regressor (double)", GradientBoostingRegressor(n_estimators=30, max_depth=3, random_state=0).fit(X64r[train], yr[train]), X64r[test]


def export(model, X, opset, zipmap=False):
    """The ONNX bytes of `model` for these opsets (classifiers with or without ZipMap), or None if
    skl2onnx cannot export it for them."""
    options = {id(model): {"zipmap": zipmap}} if is_classifier(model) else None
    if options is None and hasattr(model, "steps") and is_classifier(model.steps[-1][1]):
        options = {id(model.steps[-1][1]): {"zipmap": zipmap}}
    try:
        return to_onnx(model, X[:1], options=options, target_opset=opset).SerializeToString()
    except Exception as error:  # an opset skl2onnx cannot target for this model
        print(f"    (skl2onnx: {str(error).splitlines()[0][:100]})")
        return None


def variants():
    """Every pipeline, and each classifier again with ZipMap and with string class labels."""
    for name, model, X in pipelines():
        yield name, model, X, False
        if is_classifier(model):
            yield name + " +zipmap", model, X, True
    for name, model, X in string_label_pipelines():
        yield name, model, X, False
        yield name + " +zipmap", model, X, True


def string_label_pipelines():
    """Classifiers trained on string labels: their label output is a string tensor."""
    X, y = classification(3, seed=5)
    names = np.array(["benign", "probe", "attack"])[y]
    train, test = slice(0, 300), slice(300, 400)
    yield "logistic regression, string labels", make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X[train], names[train]), X[test]
    yield "random forest, string labels", RandomForestClassifier(10, max_depth=5, random_state=0).fit(X[train], names[train]), X[test]


# MARK: - Hand-built single operators

def node_model(op, attributes, inputs, outputs, ml_opset):
    """A one-node model of `op` (ai.onnx.ml): inputs/outputs are (name, element type, shape)."""
    from onnx import helper
    node = helper.make_node(op, [i[0] for i in inputs], [o[0] for o in outputs], domain="ai.onnx.ml", **attributes)
    graph = helper.make_graph([node], op, [helper.make_tensor_value_info(*i) for i in inputs],
                              [helper.make_tensor_value_info(*o) for o in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("ai.onnx.ml", ml_opset)])
    model.ir_version = 9
    return model.SerializeToString()


def random_trees(rng, trees, depth, features, modes=("BRANCH_LEQ",), missing=False):
    """Legacy tree attributes (nodes_*) for random trees, each tree's nodes listed root first, the
    rest shuffled; returns (attributes, leaves as (tree, node) pairs)."""
    from onnx import TensorProto  # noqa: F401
    attrs = {k: [] for k in ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes", "nodes_values",
                             "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true")}
    leaves = []
    for tree in range(trees):
        rows = []

        def grow(level):
            node_id = len(rows)
            rows.append(None)
            if level == depth or (level > 1 and rng.rand() < 0.25):
                rows[node_id] = (node_id, 0, "LEAF", 0.0, 0, 0, 0)
                leaves.append((tree, node_id))
                return node_id
            mode = modes[rng.randint(len(modes))]
            feature = int(rng.randint(features))
            value = float(np.float32(rng.randint(-4, 5) / 2 if mode in ("BRANCH_EQ", "BRANCH_NEQ") else rng.randn()))
            true_child = grow(level + 1)
            false_child = grow(level + 1)
            rows[node_id] = (node_id, feature, mode, value, true_child, false_child, int(missing and rng.rand() < 0.5))
            return node_id

        grow(0)
        order = [0] + list(rng.permutation(np.arange(1, len(rows))))
        for i in order:
            node_id, feature, mode, value, t, f, m = rows[i]
            for key, v in zip(("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes", "nodes_values",
                               "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true"),
                              (tree, node_id, feature, mode, value, t, f, m)):
                attrs[key].append(v)
    if not missing:
        del attrs["nodes_missing_value_tracks_true"]
    return attrs, leaves


def leaf_weights(rng, leaves, targets, prefix, per_leaf, positive=False):
    """Weights for each leaf: `per_leaf(rng)` distinct targets each (0 allowed)."""
    ids, nodes, trees, weights = [], [], [], []
    for tree, node in leaves:
        for target in sorted(rng.choice(targets, size=min(per_leaf(rng), targets), replace=False)):
            ids.append(int(target))
            nodes.append(node)
            trees.append(tree)
            weights.append(float(np.float32(rng.rand() if positive else rng.randn())))
    return {f"{prefix}_ids": ids, f"{prefix}_nodeids": nodes, f"{prefix}_treeids": trees, f"{prefix}_weights": weights}


def as_tensors(attributes, names, element):
    """Moves float lists to their *_as_tensor form (opset 3) of `element` type (onnxruntime reads
    them in the input's precision)."""
    from onnx import helper
    out = dict(attributes)
    for name in names:
        if name in out:
            values = out.pop(name)
            out[f"{name}_as_tensor"] = helper.make_tensor(f"{name}_as_tensor", element, [len(values)], values)
    return out


def synthetic_cases():
    """(name, model bytes, feeds[, "onnx.reference"]) for one-operator models with hand-made
    attributes: the tree, linear and SVM special cases sklearn exports do not reach. They are
    checked against onnxruntime, or against onnx's reference implementation where marked."""
    from onnx import TensorProto as T, helper
    rng = np.random.RandomState(7)
    F = 5
    X = rng.randn(60, F).astype(np.float32)
    X[rng.rand(60, F) < 0.1] = np.nan
    Xq = np.round(rng.randn(60, F) * 2).astype(np.float32) / 2  # hits BRANCH_EQ thresholds
    transforms = ("NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT")

    for targets in (1, 3):
        for aggregate in ("SUM", "AVERAGE", "MIN", "MAX"):
            for transform in transforms:
                for base in (False, True):
                    attrs, leaves = random_trees(rng, 6, 4, F, missing=True)
                    attrs.update(leaf_weights(rng, leaves, targets, "target", lambda r: r.randint(0, 3)))
                    attrs.update(n_targets=targets, aggregate_function=aggregate, post_transform=transform)
                    if base:
                        attrs["base_values"] = [float(v) for v in rng.randn(targets).astype(np.float32)]
                    model = node_model("TreeEnsembleRegressor", attrs, [("X", T.FLOAT, [None, F])], [("Y", T.FLOAT, [None, targets])], 1)
                    yield f"regressor {targets} targets {aggregate} {transform}{' base' if base else ''}", model, {"X": X}
    for modes, inputs in ((("BRANCH_LT",), X), (("BRANCH_GTE", "BRANCH_GT"), X), (("BRANCH_EQ", "BRANCH_NEQ", "BRANCH_LEQ", "BRANCH_LT"), Xq)):
        attrs, leaves = random_trees(rng, 8, 5, F, modes=modes, missing=True)
        attrs.update(leaf_weights(rng, leaves, 2, "target", lambda r: 1 + r.randint(0, 2)))
        attrs.update(n_targets=2, post_transform="NONE")
        yield f"regressor modes {','.join(m[7:] for m in modes)}", node_model("TreeEnsembleRegressor", attrs, [("X", T.FLOAT, [None, F])], [("Y", T.FLOAT, [None, 2])], 1), {"X": inputs}
    # Opset 3: thresholds, weights and base values as double tensors, float and double inputs.
    for dtype, elem in ((np.float32, T.FLOAT), (np.float64, T.DOUBLE)):
        attrs, leaves = random_trees(rng, 5, 4, F)
        attrs.update(leaf_weights(rng, leaves, 2, "target", lambda r: 2))
        attrs.update(n_targets=2, base_values=[0.25, -0.5])
        attrs = as_tensors(attrs, ["nodes_values", "target_weights", "base_values"], elem)
        yield f"regressor as_tensor {np.dtype(dtype).name}", node_model("TreeEnsembleRegressor", attrs, [("X", elem, [None, F])], [("Y", T.FLOAT, [None, 2])], 3), {"X": X.astype(dtype)}

    # Classifiers: two classes weighted through one class or both, positive or mixed weights, every base form.
    for weighted in ((0,), (1,), (0, 1)):
        # With both classes weighted onnxruntime writes the labels 1 and 0 themselves, whatever the
        # class labels (Onyx writes class label 1 or 0): labels [0, 1] keep the outputs comparable.
        labels = [0, 1] if len(weighted) == 2 else [4, 9]
        for positive in (True, False):
            for base in ([], [0.3], [0.1, -0.2]):
                for transform in transforms:
                    if transform == "PROBIT" and len(weighted) == 1 and len(base) < 2:
                        continue  # onnxruntime leaves the second column unwritten (Onyx writes 0)
                    attrs, leaves = random_trees(rng, 5, 3, F)
                    # With both classes weighted every leaf weighs both: a row without a class-1 weight
                    # makes onnxruntime leave its second score unwritten.
                    w = leaf_weights(rng, leaves, len(weighted), "class", lambda r: 2, positive=positive)
                    w["class_ids"] = [weighted[i] for i in w["class_ids"]]
                    attrs.update(w, classlabels_int64s=labels, post_transform=transform)
                    if base:
                        attrs["base_values"] = base
                    model = node_model("TreeEnsembleClassifier", attrs, [("X", T.FLOAT, [None, F])],
                                       [("label", T.INT64, [None]), ("scores", T.FLOAT, [None, 2])], 1)
                    yield f"classifier 2 classes ids {weighted} {'positive' if positive else 'mixed'} base {len(base)} {transform}", model, {"X": X}
    for transform in transforms:
        for base in (False, True):
            attrs, leaves = random_trees(rng, 6, 4, F, missing=True)
            attrs.update(leaf_weights(rng, leaves, 4, "class", lambda r: r.randint(0, 3)), classlabels_int64s=[10, 20, 30, 40], post_transform=transform)
            if base:
                attrs["base_values"] = [float(v) for v in rng.randn(4).astype(np.float32)]
            model = node_model("TreeEnsembleClassifier", attrs, [("X", T.FLOAT, [None, F])],
                               [("label", T.INT64, [None]), ("scores", T.FLOAT, [None, 4])], 1)
            yield f"classifier 4 classes sparse {transform}{' base' if base else ''}", model, {"X": X}
    for dtype, elem in ((np.int64, T.INT64), (np.int32, T.INT32), (np.float64, T.DOUBLE)):
        attrs, leaves = random_trees(rng, 6, 4, F)
        attrs.update(leaf_weights(rng, leaves, 3, "class", lambda r: 3, positive=True), classlabels_int64s=[0, 1, 2], post_transform="SOFTMAX")
        model = node_model("TreeEnsembleClassifier", attrs, [("X", elem, [None, F])], [("label", T.INT64, [None]), ("scores", T.FLOAT, [None, 3])], 1)
        yield f"classifier input {np.dtype(dtype).name}", model, {"X": (rng.randn(40, F) * 2).astype(dtype)}

    # TreeEnsemble (opset 5). onnxruntime 1.32 reads post_transform 1 as LOGISTIC and 2 as SOFTMAX (the
    # spec: 1 SOFTMAX, 2 LOGISTIC), and disagrees with the ONNX reference implementation (and Onyx)
    # once a tree has BRANCH_MEMBER nodes: those models are checked against onnx.reference instead,
    # which applies no post_transform, gives a target no leaf reaches ±FLT_MAX under MIN/MAX (one
    # target here), stops a member list at 0 (no 0 members here) and reads the member lists in tree
    # order (nodes are numbered in that order here).
    for targets, aggregate, transform, with_members in ((1, 1, 0, True), (3, 1, 0, True), (2, 0, 0, True), (1, 3, 0, True), (1, 2, 0, True),
                                                        (1, 1, 0, False), (2, 0, 3, False), (2, 3, 0, False), (2, 2, 4, False)):
        branches, leaf_w, leaf_t, roots, modes, splits, features_, t_ids, f_ids, t_leaf, f_leaf, members, missing = ([] for _ in range(13))

        def grow(level):
            index = len(branches)
            branches.append(None)
            mode = int(rng.choice([0, 1, 2, 3, 6] if with_members else [0, 1, 2, 3, 4, 5]))
            entry = {"mode": mode, "feature": int(rng.randint(F)), "split": float(np.float32(rng.randn()))}
            if mode == 6:
                # onnxruntime takes only integer members.
                members.extend([float(v) for v in rng.choice([-2.0, -1.0, 1.0, 2.0], size=2, replace=False)] + [float("nan")])
            for side in ("true", "false"):
                if level >= 2 or rng.rand() < 0.3:
                    entry[side] = (len(leaf_w), 1)
                    leaf_w.append(float(np.float32(rng.randn())))
                    leaf_t.append(int(rng.randint(targets)))
                else:
                    entry[side] = (grow(level + 1), 0)
            branches[index] = entry
            return index

        for tree in range(4):
            roots.append(grow(0))
        for b in branches:
            modes.append(b["mode"]); features_.append(b["feature"]); splits.append(b["split"])
            t_ids.append(b["true"][0]); t_leaf.append(b["true"][1]); f_ids.append(b["false"][0]); f_leaf.append(b["false"][1])
            missing.append(int(rng.rand() < 0.3))
        attrs = dict(
            nodes_featureids=features_, nodes_truenodeids=t_ids, nodes_falsenodeids=f_ids, nodes_trueleafs=t_leaf, nodes_falseleafs=f_leaf,
            nodes_modes=helper.make_tensor("nodes_modes", T.UINT8, [len(modes)], modes),
            nodes_splits=helper.make_tensor("nodes_splits", T.FLOAT, [len(splits)], splits),
            nodes_missing_value_tracks_true=missing, leaf_targetids=leaf_t,
            leaf_weights=helper.make_tensor("leaf_weights", T.FLOAT, [len(leaf_w)], leaf_w), tree_roots=roots,
            n_targets=targets, aggregate_function=aggregate, post_transform=transform)
        if members:
            attrs["membership_values"] = helper.make_tensor("membership_values", T.FLOAT, [len(members)], members)
        model = node_model("TreeEnsemble", attrs, [("X", T.FLOAT, [None, F])], [("Y", T.FLOAT, [None, targets])], 5)
        yield (f"TreeEnsemble-5 {targets} targets agg {aggregate} transform {transform}{' members' if with_members else ''}", model, {"X": Xq},
               "onnx.reference" if with_members else "onnxruntime")

    # Linear models.
    for transform in transforms:
        if transform != "PROBIT":  # onnxruntime scrambles the rows of a two-column PROBIT result
            attrs = dict(coefficients=[float(v) for v in rng.randn(F).astype(np.float32)], intercepts=[0.1],
                         classlabels_ints=[3, 8], post_transform=transform)
            yield f"linear classifier one score {transform}", node_model(
                "LinearClassifier", attrs, [("X", T.FLOAT, [None, F])], [("label", T.INT64, [None]), ("scores", T.FLOAT, [None, 2])], 1), {"X": np.nan_to_num(X)}
        attrs = dict(coefficients=[float(v) for v in rng.randn(3 * F).astype(np.float32)], intercepts=[0.1, -0.2, 0.3],
                     classlabels_ints=[1, 2, 3], post_transform=transform)
        yield f"linear classifier 3 classes {transform}", node_model(
            "LinearClassifier", attrs, [("X", T.INT64, [None, F])], [("label", T.INT64, [None]), ("scores", T.FLOAT, [None, 3])], 1), {"X": rng.randint(-3, 4, size=(30, F)).astype(np.int64)}
        for targets in (1, 2):
            attrs = dict(coefficients=[float(v) for v in (rng.randn(targets * F) / 4).astype(np.float32)], intercepts=[0.5] * targets,
                         targets=targets, post_transform=transform)
            yield f"linear regressor {targets} targets {transform}", node_model(
                "LinearRegressor", attrs, [("X", T.FLOAT, [None, F])], [("Y", T.FLOAT, [None, targets])], 1), {"X": np.nan_to_num(X)}
    # SVMs: a liblinear classifier (no support vectors) and every kernel of the regressor.
    for classes, positive in ((2, True), (2, False), (3, False)):
        for transform in ("NONE", "LOGISTIC", "SOFTMAX"):
            coefficients = rng.rand(classes * F) if positive else rng.randn(classes * F)
            attrs = dict(coefficients=[float(v) for v in coefficients.astype(np.float32) / 4], rho=[0.05],
                         classlabels_ints=list(range(10, 10 + classes)), post_transform=transform, kernel_type="LINEAR",
                         kernel_params=[0.0, 0.0, 0.0])
            yield f"svm classifier linear {classes} classes {'positive' if positive else 'mixed'} {transform}", node_model(
                "SVMClassifier", attrs, [("X", T.FLOAT, [None, F])], [("label", T.INT64, [None]), ("scores", T.FLOAT, [None, classes])], 1), {"X": np.nan_to_num(X)}
    for kernel in ("LINEAR", "POLY", "RBF", "SIGMOID"):
        for one_class in (0, 1):
            vectors = 6
            attrs = dict(coefficients=[float(v) for v in rng.randn(vectors).astype(np.float32)], rho=[0.1], n_supports=vectors,
                         support_vectors=[float(v) for v in rng.randn(vectors * F).astype(np.float32)], kernel_type=kernel,
                         kernel_params=[0.3, 0.5, 3.0], one_class=one_class)
            yield f"svm regressor {kernel}{' one_class' if one_class else ''}", node_model(
                "SVMRegressor", attrs, [("X", T.FLOAT, [None, F])], [("Y", T.FLOAT, [None, 1])], 1), {"X": np.nan_to_num(X)}

    # Feature transforms on other element types.
    ints = rng.randint(-5, 6, size=(20, 3)).astype(np.int64)
    yield "scaler int64", node_model("Scaler", dict(offset=[1.0, 2.0, -1.0], scale=[0.5, 2.0, 1.5]), [("X", T.INT64, [None, 3])], [("Y", T.FLOAT, [None, 3])], 1), {"X": ints}
    yield "scaler double", node_model("Scaler", dict(offset=[0.5], scale=[3.0]), [("X", T.DOUBLE, [None, 3])], [("Y", T.FLOAT, [None, 3])], 1), {"X": ints.astype(np.float64)}
    yield "imputer int64", node_model("Imputer", dict(imputed_value_int64s=[7, 8, 9], replaced_value_int64=0), [("X", T.INT64, [None, 3])], [("Y", T.INT64, [None, 3])], 1), {"X": ints}
    yield "imputer float nan", node_model("Imputer", dict(imputed_value_floats=[-1.0], replaced_value_float=float("nan")), [("X", T.FLOAT, [None, F])], [("Y", T.FLOAT, [None, F])], 1), {"X": X}
    yield "normalizer int32", node_model("Normalizer", dict(norm="L2"), [("X", T.INT32, [None, 3])], [("Y", T.FLOAT, [None, 3])], 1), {"X": ints.astype(np.int32)}
    yield "one-hot float", node_model("OneHotEncoder", dict(cats_int64s=[2, -1, 0, 5]), [("X", T.FLOAT, [None, 3])], [("Y", T.FLOAT, [None, 3, 4])], 1), {"X": ints.astype(np.float32)}
    yield "feature vectorizer", node_model("FeatureVectorizer", dict(inputdimensions=[2, 4]), [("A", T.INT64, [None, 3]), ("B", T.INT64, [None, 2])], [("Y", T.FLOAT, [None, 6])], 1), {"A": ints, "B": ints[:, :2] * 3}
    yield "label encoder int64→float", node_model("LabelEncoder", dict(keys_int64s=[-1, 0, 3], values_floats=[0.5, 1.5, 2.5], default_float=-9.0), [("X", T.INT64, [None, 3])], [("Y", T.FLOAT, [None, 3])], 2), {"X": ints}
    yield "label encoder float→int64", node_model("LabelEncoder", dict(keys_floats=[-1.0, 0.0, 3.0], values_int64s=[5, 6, 7]), [("X", T.FLOAT, [None, 3])], [("Y", T.INT64, [None, 3])], 2), {"X": ints.astype(np.float32)}
    keys = helper.make_tensor("keys_tensor", T.INT64, [3], [1, 2, 4])
    values = helper.make_tensor("values_tensor", T.DOUBLE, [3], [0.25, 0.5, 1.0])
    default = helper.make_tensor("default_tensor", T.DOUBLE, [1], [-1.0])
    yield "label encoder tensors int64→double", node_model("LabelEncoder", dict(keys_tensor=keys, values_tensor=values, default_tensor=default), [("X", T.INT64, [None, 3])], [("Y", T.DOUBLE, [None, 3])], 4), {"X": ints}


# MARK: - Running both

def onyx_binary(path):
    if path:
        return path
    for build in ("release", "debug"):
        candidate = os.path.join(ROOT, ".build", build, "onyx")
        if os.path.exists(candidate):
            return candidate
    sys.exit("no onyx binary: run `swift build -c release --product onyx` or pass --onyx")


def run_onyx(onyx, model_path, feeds, folder):
    """Onyx's outputs (in graph output order) from `onyx run --output-dir`."""
    args = [onyx, "run", model_path]
    for name, array in feeds.items():
        path = os.path.join(folder, f"{name}.npy")
        np.save(path, array)
        args += ["--input", f"{name}={path}"]
    out_dir = os.path.join(folder, "onyx_out")
    shutil.rmtree(out_dir, ignore_errors=True)
    result = subprocess.run(args + ["--output-dir", out_dir], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError((result.stderr or result.stdout).strip().splitlines()[-1])
    declared = onnx.load(model_path).graph.output
    outputs = []
    while os.path.exists(os.path.join(out_dir, f"output_{len(outputs)}.pb")):
        is_sequence = declared[len(outputs)].type.HasField("sequence_type")
        outputs.append(read_value(os.path.join(out_dir, f"output_{len(outputs)}.pb"), is_sequence))
    return outputs


def read_value(path, is_sequence):
    """A TensorProto as an array, or a SequenceProto of maps (ZipMap's output) as a list of dicts."""
    with open(path, "rb") as f:
        data = f.read()
    if is_sequence:
        sequence = onnx.SequenceProto()
        sequence.ParseFromString(data)
        return [numpy_helper.to_dict(m) for m in sequence.map_values]
    tensor = onnx.TensorProto()
    tensor.ParseFromString(data)
    array = numpy_helper.to_array(tensor)
    return array.astype(str) if array.dtype == object else array


def maps_as_array(maps):
    """A list of {label: probability} maps as (labels, [rows, classes] probabilities)."""
    labels = sorted(maps[0].keys()) if maps else []
    return labels, np.array([[m[k] for k in labels] for m in maps], dtype=np.float64)


def compare(expected, actual):
    """(ok, worst |Δ| of float outputs, note)."""
    if len(expected) != len(actual):
        return False, float("nan"), f"{len(actual)} outputs, expected {len(expected)}"
    worst = 0.0
    for k, (e, a) in enumerate(zip(expected, actual)):
        if isinstance(e, list):  # ZipMap: the same labels in every map, probabilities within tolerance
            if not isinstance(a, list) or len(a) != len(e):
                return False, float("nan"), f"output {k}: not a sequence of {len(e)} maps"
            (el, ep), (al, ap) = maps_as_array([{str(x): v for x, v in m.items()} for m in e]), \
                maps_as_array([{(x.decode() if isinstance(x, bytes) else str(x)): v for x, v in m.items()} for m in a])
            if el != al:
                return False, float("nan"), f"output {k}: map labels {al}, expected {el}"
            e, a = ep, ap
        e, a = np.asarray(e), np.asarray(a)
        if e.dtype.kind in "OSU" or a.dtype.kind in "OSU":
            if not np.array_equal(e.astype(str), a.astype(str)):
                return False, worst, f"output {k}: string labels differ"
            continue
        if e.shape != a.shape:
            return False, float("nan"), f"output {k}: shape {a.shape}, expected {e.shape}"
        if e.dtype.kind in "iub":
            if not np.array_equal(e, a):
                return False, worst, f"output {k}: {int(np.sum(e != a))} of {e.size} labels differ"
            continue
        e64, a64 = e.astype(np.float64), a.astype(np.float64)
        if e64.size:
            worst = max(worst, float(np.nanmax(np.abs(e64 - a64))))
        if not np.allclose(a64, e64, rtol=RTOL, atol=ATOL, equal_nan=True):
            bad = ~np.isclose(a64, e64, rtol=RTOL, atol=ATOL, equal_nan=True)
            return False, worst, f"output {k}: {int(bad.sum())} of {e.size} values outside rtol {RTOL}/atol {ATOL}"
    return True, worst, ""


def ort_session(model_bytes, threads=1):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def cross_check(onyx, keep, verbose):
    folder = keep or tempfile.mkdtemp(prefix="check_sklearn_")
    os.makedirs(folder, exist_ok=True)
    failures = checked = 0
    print(f"{'pipeline':44} {'ml':>4} {'ops':40} {'result':6} {'max |Δ|':>9}")
    for name, model, X, zipmap in variants():
        for ml, opset in OPSETS.items():
            model_bytes = export(model, X, opset, zipmap=zipmap)
            if model_bytes is None:
                continue
            proto = onnx.load_from_string(model_bytes)
            ops = ",".join(sorted({n.op_type for n in proto.graph.node if n.domain == "ai.onnx.ml"}))
            # skl2onnx writes the lowest ai.onnx.ml opset the model needs: "3→1" when asked for 3.
            written = next((o.version for o in proto.opset_import if o.domain == "ai.onnx.ml"), ml)
            label = f"{ml}" if written == ml else f"{ml}→{written}"
            case = os.path.join(folder, f"{name.replace(' ', '_').replace('+', '_')}_ml{ml}")
            os.makedirs(case, exist_ok=True)
            path = os.path.join(case, "model.onnx")
            with open(path, "wb") as f:
                f.write(model_bytes)
            try:
                session = ort_session(model_bytes)
            except Exception as error:  # the reference cannot load this export: nothing to compare
                print(f"{name:44} {label:>4} {ops[:40]:40} {'skip':6} {'':9} onnxruntime: {str(error).splitlines()[0][-90:]}")
                continue
            feeds = {session.get_inputs()[0].name: X}
            expected = session.run(None, feeds)
            try:
                actual = run_onyx(onyx, path, feeds, case)
                ok, worst, note = compare(expected, actual)
            except RuntimeError as error:
                ok, worst, note = False, float("nan"), str(error)
            failures += not ok
            print(f"{name:44} {label:>4} {ops[:40]:40} {'ok' if ok else 'FAIL':6} {worst:9.2e} {note}")
    print()
    for name, model_bytes, feeds, *reference in synthetic_cases():
        case = os.path.join(folder, "single_" + "".join(c if c.isalnum() else "_" for c in name))
        os.makedirs(case, exist_ok=True)
        path = os.path.join(case, "model.onnx")
        with open(path, "wb") as f:
            f.write(model_bytes)
        try:
            if reference == ["onnx.reference"]:
                from onnx.reference import ReferenceEvaluator
                expected = ReferenceEvaluator(onnx.load_from_string(model_bytes)).run(None, feeds)
            else:
                expected = ort_session(model_bytes).run(None, feeds)
        except Exception as error:
            print(f"{name:88} {'skip':6} onnxruntime: {str(error).splitlines()[0][-90:]}")
            continue
        try:
            ok, worst, note = compare(expected, run_onyx(onyx, path, feeds, case))
        except RuntimeError as error:
            ok, worst, note = False, float("nan"), str(error)
        failures += not ok
        checked += 1
        if not ok or verbose:
            print(f"{name:88} {'ok' if ok else 'FAIL':6} {worst:9.2e} {note}")
    print(f"{checked} hand-built single-operator models checked")
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{failures} failing" if failures else "\nall pipelines agree")
    return 1 if failures else 0


# MARK: - Serving

def serve_check(onyx, verbose):
    """Each classifier (with and without ZipMap, int and string labels) behind `onyx serve`, called
    with tritonclient.http (binary and JSON tensors), against onnxruntime's outputs."""
    import json
    import socket
    import tritonclient.http as httpclient

    folder = tempfile.mkdtemp(prefix="check_sklearn_serve_")
    failures = 0
    cases = [(n, m, X, z) for n, m, X, z in variants() if is_classifier(m)]
    print(f"{'classifier (onyx serve + tritonclient)':50} {'result':6} {'max |Δ|':>9}")
    for index, (name, model, X, zipmap) in enumerate(cases):
        model_bytes = export(model, X, OPSETS[1], zipmap=zipmap)
        if model_bytes is None:
            continue
        path = os.path.join(folder, f"m{index}.onnx")
        with open(path, "wb") as f:
            f.write(model_bytes)
        session = ort_session(model_bytes)
        rows = X[:16]
        expected = session.run(None, {session.get_inputs()[0].name: rows})
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = subprocess.Popen([onyx, "serve", path, "--name", "m", "--port", str(port), "--log-level", "warning"])
        try:
            client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
            for _ in range(100):
                try:
                    if client.is_model_ready("m"):
                        break
                except Exception:
                    pass
                time.sleep(0.1)
            metadata = client.get_model_metadata("m")
            outputs = [o["name"] for o in metadata["outputs"]]
            worst, ok, note = 0.0, True, ""
            for binary in (True, False):
                datatype = "FP64" if rows.dtype == np.float64 else "FP32"
                tensor = httpclient.InferInput(session.get_inputs()[0].name, list(rows.shape), datatype)
                tensor.set_data_from_numpy(rows, binary_data=binary)
                result = client.infer("m", [tensor], outputs=[httpclient.InferRequestedOutput(o, binary_data=binary) for o in outputs])
                actual = []
                for o in outputs:
                    value = result.as_numpy(o)
                    if zipmap and value is not None and value.dtype == object and o == outputs[-1]:
                        value = [json.loads(v.decode() if isinstance(v, bytes) else v) for v in value]
                    elif value is not None and value.dtype == object:
                        value = np.array([v.decode() if isinstance(v, bytes) else v for v in value])
                    actual.append(value)
                good, delta, why = compare(expected, actual)
                worst = max(worst, delta) if delta == delta else worst
                ok, note = ok and good, note or why
            failures += not ok
            print(f"{name:50} {'ok' if ok else 'FAIL':6} {worst:9.2e} {note}")
        finally:
            server.terminate()
            server.wait()
    shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{failures} failing" if failures else "\nall served classifiers agree")
    return 1 if failures else 0


# MARK: - Fixtures

def fixture_models():
    """(folder name, model bytes, X): four tiny exports covering the linear, tree and SVM paths."""
    Xb, yb = classification(2, n=120, features=5, seed=2)
    Xm, ym = classification(3, n=90, features=4, seed=3)
    Xr, yr = regression(n=120, features=5, seed=4)
    logreg = make_pipeline(StandardScaler(), LogisticRegression()).fit(Xm[:70], ym[:70])
    gbc = GradientBoostingClassifier(n_estimators=12, max_depth=3, random_state=0).fit(Xb[:100], labelled(yb, [3, 7])[:100])
    svc = SVC(probability=True, random_state=0).fit(Xm[:70], ym[:70])
    forest = RandomForestRegressor(8, max_depth=4, random_state=0).fit(Xr[:100], yr[:100])

    def zipless(model):
        step = model.steps[-1][1] if hasattr(model, "steps") else model
        return {id(step): {"zipmap": False}} if is_classifier(step) else None

    yield "logreg_multiclass", to_onnx(logreg, Xm[:1], options=zipless(logreg), target_opset=OPSETS[1]), Xm[70:78]
    yield "gbc_binary", to_onnx(gbc, Xb[:1], options=zipless(gbc), target_opset=OPSETS[3]), Xb[100:108]
    yield "svc_probability", to_onnx(svc, Xm[:1], options=zipless(svc), target_opset=OPSETS[1]), Xm[70:78]
    yield "forest_regressor", to_onnx(forest, Xr[:1], target_opset=OPSETS[1]), Xr[100:108]


def write_fixtures():
    root = os.path.join(ROOT, "Fixtures", "sklearn")
    for name, proto, X in fixture_models():
        folder = os.path.join(root, name)
        shutil.rmtree(folder, ignore_errors=True)
        data = os.path.join(folder, "test_data_set_0")
        os.makedirs(data)
        onnx.save(proto, os.path.join(folder, "model.onnx"))
        session = ort_session(proto.SerializeToString())
        input_name = session.get_inputs()[0].name
        with open(os.path.join(data, "input_0.pb"), "wb") as f:
            f.write(numpy_helper.from_array(X, input_name).SerializeToString())
        for k, (info, value) in enumerate(zip(session.get_outputs(), session.run(None, {input_name: X}))):
            with open(os.path.join(data, f"output_{k}.pb"), "wb") as f:
                f.write(numpy_helper.from_array(np.asarray(value), info.name).SerializeToString())
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)
        ops = sorted({n.op_type for n in proto.graph.node})
        print(f"{name}: {size / 1024:.1f} KB, {', '.join(ops)}")
    return 0


# MARK: - Benchmark

def ort_median_ms(model_bytes, feeds, duration):
    session = ort_session(model_bytes, threads=1)
    for _ in range(5):
        session.run(None, feeds)
    samples = []
    end = time.perf_counter() + duration
    while time.perf_counter() < end or len(samples) < 10:
        start = time.perf_counter()
        session.run(None, feeds)
        samples.append((time.perf_counter() - start) * 1000)
    return float(np.median(samples))


def onyx_p50_ms(onyx, path, name, input_path, duration):
    import json
    out = subprocess.run([onyx, "bench", path, "--input", f"{name}={input_path}", "--threads", "1",
                          "--duration", str(duration), "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["p50_ms"]


def bench(onyx, duration, rounds):
    X, y = classification(2, n=2000, features=20, seed=5)
    models = [
        ("RandomForestClassifier(100)", RandomForestClassifier(100, random_state=0).fit(X[:1000], y[:1000])),
        ("GradientBoostingClassifier(300)", GradientBoostingClassifier(n_estimators=300, random_state=0).fit(X[:1000], y[:1000])),
    ]
    folder = tempfile.mkdtemp(prefix="bench_sklearn_")
    print(f"best p50 of {rounds} alternating rounds of {duration} s each, one thread")
    print(f"{'model':32} {'batch':>5} {'onyx ms':>9} {'ort ms':>9} {'onyx/ort':>8}")
    for name, model in models:
        proto = to_onnx(model, X[:1], options={id(model): {"zipmap": False}}, target_opset=OPSETS[1])
        path = os.path.join(folder, "model.onnx")
        onnx.save(proto, path)
        nodes = sum(len(onnx.helper.get_attribute_value(a)) for n in proto.graph.node for a in n.attribute if a.name == "nodes_nodeids")
        for batch in (1, 1000):
            rows = X[1000:1000 + batch]
            input_path = os.path.join(folder, f"x{batch}.npy")
            np.save(input_path, rows)
            input_name = proto.graph.input[0].name
            # Alternate the two so a busy moment of the machine hits both; keep each side's best.
            onyx_ms, ort_ms = [], []
            for _ in range(rounds):
                onyx_ms.append(onyx_p50_ms(onyx, path, input_name, input_path, duration))
                ort_ms.append(ort_median_ms(proto.SerializeToString(), {input_name: rows}, duration))
            print(f"{name:32} {batch:>5} {min(onyx_ms):9.4f} {min(ort_ms):9.4f} {min(onyx_ms) / min(ort_ms):8.2f}   ({nodes} nodes)")
    shutil.rmtree(folder, ignore_errors=True)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onyx", help="the onyx binary (default: .build/release/onyx, else .build/debug/onyx)")
    parser.add_argument("--keep", help="keep the exported models and outputs in this folder")
    parser.add_argument("--verbose", action="store_true", help="list every hand-built model, not just failures")
    parser.add_argument("--write-fixtures", action="store_true", help="regenerate Fixtures/sklearn/")
    parser.add_argument("--bench", action="store_true", help="time the tree ensembles against onnxruntime")
    parser.add_argument("--serve", action="store_true", help="check the classifiers through onyx serve with tritonclient")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per timing (--bench)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timings per side; the best counts (--bench)")
    args = parser.parse_args()
    if args.write_fixtures:
        return write_fixtures()
    if args.bench:
        return bench(onyx_binary(args.onyx), args.duration, args.rounds)
    if args.serve:
        return serve_check(onyx_binary(args.onyx), args.verbose)
    return cross_check(onyx_binary(args.onyx), args.keep, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
