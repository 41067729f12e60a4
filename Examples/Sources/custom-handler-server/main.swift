// Serves a model through a custom `ModelHandler` with OnyxServe: the Open Inference Protocol v2,
// TorchServe-style /predictions and /metrics, as `onyx serve` does, but with this program's handler.
//
//     swift run --package-path Examples custom-handler-server [MODEL] [--port 8080]
//     curl localhost:8080/v2/models/mlp/infer -d '{"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [...]}]}'
//
// SIGTERM or Ctrl-C drains the requests in flight and exits.

import Foundation
import Hummingbird
import Logging
import OnyxServe

let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

var modelPath = repositoryRoot.appendingPathComponent("Fixtures/mlp_legacy/model.onnx").path
var port = 8080
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    if argument == "--port", let text = arguments.popFirst(), let value = Int(text), (1...65535).contains(value) {
        port = value
    } else if !argument.hasPrefix("-") {
        modelPath = argument
    } else {
        FileHandle.standardError.write(Data("usage: custom-handler-server [MODEL] [--port N]\n".utf8))
        exit(2)
    }
}

var logger = Logger(label: "custom-handler-server")
logger.logLevel = .info

// Register the handler under a name, then pick it per model (`"handler": "probabilities"` in a
// repository's config.json does the same for `onyx serve --model-repository`).
HandlerRegistry.register("probabilities") { ProbabilitiesHandler() }
PrometheusSetup.bootstrap()

let repository = ModelRepository()
do {
    try await repository.load(name: "mlp", path: modelPath, configuration: ModelConfiguration(handler: "probabilities", threads: 1))
} catch {
    FileHandle.standardError.write(Data("custom-handler-server: \(error)\n".utf8))
    exit(1)
}

let app = buildApplication(repository: repository, configuration: ServerConfiguration(port: port), logger: logger)
logger.info("serving 'mlp' with the probabilities handler", metadata: ["address": "http://127.0.0.1:\(port)"])
try await app.runService()
