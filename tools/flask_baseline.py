"""The usual Python serving stack, as a baseline: Flask + onnxruntime, run under gunicorn.

    MODEL=Fixtures/mlp_legacy/model.onnx gunicorn -w 2 -b 127.0.0.1:9000 --chdir tools flask_baseline:app

POST /predict with {"shape": [...], "data": [...]} returns {"shape": [...], "data": [...]} for the
first output -- what people write when they wrap onnxruntime in Flask.
"""
import os

import numpy as np
import onnxruntime as ort
from flask import Flask, jsonify, request

app = Flask(__name__)
options = ort.SessionOptions()
options.intra_op_num_threads = int(os.environ.get("THREADS", "1"))
session = ort.InferenceSession(os.environ["MODEL"], options, providers=["CPUExecutionProvider"])
input_name = session.get_inputs()[0].name


@app.post("/predict")
def predict():
    body = request.get_json()
    x = np.asarray(body["data"], dtype=np.float32).reshape(body["shape"])
    y = session.run(None, {input_name: x})[0]
    return jsonify({"shape": list(y.shape), "data": y.flatten().tolist()})
