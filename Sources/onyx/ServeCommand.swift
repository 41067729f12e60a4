import ArgumentParser
import Foundation
import Hummingbird
import Logging
import NIOPosix
import Onyx
import OnyxGRPC
import OnyxServe
import ServiceLifecycle

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve models over HTTP (Open Inference Protocol v2, TorchServe-style /predictions, /metrics) and optionally gRPC.",
        discussion: """
            `onyx serve MODEL.onnx` serves one model (named after the file, or --name);
            `onyx serve --model-repository DIR` serves DIR/<name>/<version>/model.onnx with optional
            DIR/<name>/config.json. --grpc-port also serves the protocol over gRPC
            (inference.GRPCInferenceService, as KServe and Triton's clients speak it) on that port.
            SIGTERM stops accepting connections, finishes the requests in flight and exits 0.
            """)

    @Argument(help: "An ONNX model file to serve.")
    var model: String?

    @Option(name: .customLong("model-repository"), help: "A folder of <name>/<version>/model.onnx.")
    var repository: String?

    @Option(help: "The served model's name (default: the file name without extension).")
    var name: String?

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on.")
    var port = 8000

    @Option(name: .customLong("grpc-port"), help: "Also serve the Open Inference Protocol over gRPC on this port (off unless given; Triton uses 8001).")
    var grpcPort: Int?

    @Option(name: .customLong("max-batch-size"), help: "Requests one batch may hold (1 turns batching off).")
    var maxBatchSize = 8

    @Option(name: .customLong("max-queue-delay-ms"), help: "How long a batch waits for more requests.")
    var maxQueueDelay = 0

    @Option(help: "Batches of one model running at once.")
    var instances = 2

    @Option(help: "Kernel threads the served models share (0: all cores); a model's config.json \"threads\" gives it its own.")
    var threads = 0

    @Option(name: .customLong("http-threads"), help: "Event-loop threads serving HTTP connections, and running models small enough to answer inline (0: one per core).")
    var httpThreads = 0

    @Option(name: .customLong("queue-capacity"), help: "Requests queued or running per model before 503.")
    var queueCapacity = 256

    @Option(name: .customLong("timeout-ms"), help: "Longest time a request may wait in the queue.")
    var timeout = 30_000

    @Option(name: .customLong("max-body-bytes"), help: "Largest request body accepted (413 beyond).")
    var maxBodyBytes = 64 << 20

    @Option(name: .customLong("idle-timeout"), help: "Seconds before an idle or stalled connection is closed.")
    var idleTimeout = 60

    @Option(name: .customLong("max-connections"), help: "Most concurrent connections.")
    var maxConnections = 1024

    @Flag(name: .customLong("enable-repository-control"), help: "Expose /v2/repository load/unload (needs --control-token).")
    var repositoryControl = false

    @Option(name: .customLong("control-token"), help: "Bearer token for repository control (or ONYX_CONTROL_TOKEN).")
    var controlToken: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func validate() throws {
        guard (model == nil) != (repository == nil) else {
            throw ValidationError("give either a MODEL file or --model-repository DIR")
        }
        guard (1...65535).contains(port) else { throw ValidationError("--port must be 1–65535") }
        guard httpThreads >= 0 else { throw ValidationError("--http-threads must be 0 (one per core) or more") }
        if let grpcPort {
            guard (1...65535).contains(grpcPort) else { throw ValidationError("--grpc-port must be 1–65535") }
            guard grpcPort != port else { throw ValidationError("--grpc-port must differ from --port") }
        }
        if repositoryControl && repository == nil {
            throw ValidationError("--enable-repository-control needs --model-repository")
        }
    }

    func run() async throws {
        var logger = Logger(label: "onyx.serve")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        PrometheusSetup.bootstrap()

        let defaults = ModelConfiguration(
            maxBatchSize: maxBatchSize, maxQueueDelayMilliseconds: maxQueueDelay, instanceCount: instances,
            queueCapacity: queueCapacity, timeoutMilliseconds: timeout)
        let threadPool = SharedThreadPool(threadCount: threads == 0 ? nil : threads)
        let models: ModelRepository
        do {
            if let repository {
                models = try await ModelRepository.open(repository, defaults: defaults, threadPool: threadPool)
            } else {
                models = ModelRepository(threadPool: threadPool)
                let path = model!
                let modelName = name ?? URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
                try await models.load(name: modelName, path: path, configuration: defaults)
            }
        } catch let error as HandlerError {
            FileHandle.standardError.write(Data("onyx: error: \(error.message)\n".utf8))
            throw ExitCode(1)
        } catch let error as OnyxError {
            FileHandle.standardError.write(Data("onyx: error: \(error.message)\n".utf8))
            throw ExitCode(1)
        }
        for served in models.allModels {
            let describe = { (list: [TensorMetadata]) in
                list.map { "\($0.name): \($0.datatype.protocolName)\($0.shape)" }.joined(separator: ", ")
            }
            var metadata: Logger.Metadata = [
                "model": "\(served.context.modelName)", "version": "\(served.context.version)",
                "inputs": "\(describe(served.inputs))", "outputs": "\(describe(served.outputs))",
                "batching": "\(served.handler.supportsBatching ? "up to \(served.context.configuration.maxBatchSize)" : "off")",
            ]
            if let sequences = served.context.configuration.sequenceBatching {
                metadata["state"] = "\(sequences.state.map { "\($0.outputName) → \($0.inputName)" }.joined(separator: ", ")) per sequence"
            }
            logger.info("model ready", metadata: metadata)
        }
        let configuration = ServerConfiguration(
            host: host, port: port, maxBodyBytes: maxBodyBytes, idleTimeoutSeconds: idleTimeout,
            maxConnections: maxConnections, repositoryControl: repositoryControl,
            controlToken: controlToken ?? ProcessInfo.processInfo.environment["ONYX_CONTROL_TOKEN"])
        // NIO's shared group has one thread per core; a group of our own when told otherwise.
        let eventLoops = httpThreads > 0 ? MultiThreadedEventLoopGroup(numberOfThreads: httpThreads) : nil
        let app = buildApplication(repository: models, configuration: configuration, logger: logger, eventLoopGroup: eventLoops)
        logger.info("listening", metadata: ["address": "http://\(host):\(port)"])
        var services: [any Service] = [app]
        if let grpcPort {
            services.append(GRPCInferenceServer(repository: models, configuration: configuration, port: grpcPort, logger: logger))
            logger.info("listening", metadata: ["address": "grpc://\(host):\(grpcPort)"])
        }
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        try await eventLoops?.shutdownGracefully()
        logger.info("stopped")
    }
}
