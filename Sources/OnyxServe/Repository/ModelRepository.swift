import Foundation
import Onyx
import Synchronization

/// One loaded model version: its handler, context, batcher and metrics.
public final class ServedModel: Sendable {
    /// The handler that answers the model's requests.
    public let handler: any ModelHandler
    /// The model's name, version, files and settings.
    public let context: HandlerContext
    let metrics: ModelMetrics
    private let batcherBox = Mutex<DynamicBatcher?>(nil)
    /// The state kept per sequence, for a model with `sequence_batching`.
    let sequences: SequenceTable?
    /// The handler, when it answers requests on the caller's thread (cast once, not per request).
    private let inlineHandler: (any InlineModelHandler)?
    /// Inline answers reserved and not yet given (see ``reserveInline()``).
    private let inlineRuns = Atomic<Int>(0)
    /// Requests in ``infer(_:)``: queued in the batcher or running there.
    private let batcherLoad = Atomic<Int>(0)

    init(handler: any ModelHandler, context: HandlerContext) throws {
        self.handler = handler
        self.context = context
        let metrics = ModelMetrics(model: context.modelName)
        self.metrics = metrics
        sequences = try context.configuration.sequenceBatching.map {
            try SequenceTable(
                $0, inputs: handler.inputs, outputs: handler.outputs, modelName: context.modelName,
                maxWaiting: context.configuration.queueCapacity, metrics: metrics)
        }
        // A stateful model's requests go through its sequences, never around them.
        inlineHandler = sequences != nil ? nil : (handler as? any InlineModelHandler).flatMap { $0.answersInline ? $0 : nil }
    }

    /// The inputs clients send: the handler's, less the state the server feeds a stateful model.
    public var inputs: [TensorMetadata] {
        guard let sequences else { return handler.inputs }
        return handler.inputs.filter { !sequences.stateInputs.contains($0.name) }
    }

    /// The outputs clients get: the handler's, less the state the server keeps for a stateful model.
    public var outputs: [TensorMetadata] {
        guard let sequences else { return handler.outputs }
        return handler.outputs.filter { !sequences.stateOutputs.contains($0.name) }
    }

    var batcher: DynamicBatcher {
        batcherBox.withLock { box in
            if let existing = box { return existing }
            let created = DynamicBatcher(handler: handler, context: context, metrics: metrics)
            box = created
            return created
        }
    }

    /// The platform model metadata reports: `onnx_onyx`, or the name of a custom handler.
    package var platform: String {
        context.configuration.handler == "onnx" ? "onnx_onyx" : context.configuration.handler
    }

    /// Runs one request through the batcher (in its sequence's turn, fed its state, for a
    /// stateful model). Cancelling the calling task takes a request still queued out of the queue.
    public func infer(_ request: HandlerRequest) async throws -> HandlerResponse {
        if let sequences { return try await sequences.infer(request, batcher: batcher) }
        batcherLoad.add(1, ordering: .relaxed)
        defer { batcherLoad.subtract(1, ordering: .relaxed) }
        return try await batcher.submit(request)
    }

    /// Reserves one answer on the caller's thread (``inferNow(reserved:)``), for a model whose
    /// handler runs it inline, when it would not have waited in the batcher either: fewer inline
    /// answers under way than the model's `instance_count`, and nothing in its batcher. Otherwise
    /// `false`, and the request goes through ``infer(_:)``, where queue capacity, timeouts and
    /// cancellation apply as for any model.
    func reserveInline() -> Bool {
        guard inlineHandler != nil, batcherLoad.load(ordering: .relaxed) == 0 else { return false }
        var current = inlineRuns.load(ordering: .relaxed)
        while current < context.configuration.instanceCount {
            let (exchanged, original) = inlineRuns.compareExchange(expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    /// Gives back a reservation that will not be used (the request failed before it ran).
    func releaseInline() {
        inlineRuns.subtract(1, ordering: .relaxed)
    }

    /// Runs one request on the calling thread, bypassing the batcher, on a reservation from
    /// ``reserveInline()``, which it gives back.
    func inferNow(reserved request: HandlerRequest) -> Result<HandlerResponse, HandlerError> {
        defer { releaseInline() }
        guard let inlineHandler else { return .failure(HandlerError(status: 500, "model '\(context.modelName)' does not run inline")) }
        let started = ContinuousClock.now
        let result = inlineHandler.answerInline(request, context: context)
        metrics.recordQueue(.zero)
        metrics.recordCompute(ContinuousClock.now - started, batchSize: 1)
        return result
    }
}

/// The models a server serves: one file, or a repository folder `DIR/<name>/<version>/model.onnx`
/// with an optional `DIR/<name>/config.json`.
public final class ModelRepository: Sendable {
    /// The repository folder, when serving one (load/unload resolve names inside it only).
    public let root: String?
    /// The kernel threads every model shares (but one whose configuration sets `threads`), so that
    /// several models do not each start a thread per core.
    public let threadPool: SharedThreadPool
    private let models = Mutex<[String: [String: ServedModel]]>([:])

    /// An empty repository; models are added with ``load(name:version:path:configuration:)``.
    ///
    /// - Parameters:
    ///   - root: The repository folder, when serving one.
    ///   - threadPool: Kernel threads the models share; by default one per online CPU.
    public init(root: String? = nil, threadPool: SharedThreadPool = SharedThreadPool()) {
        self.root = root.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        self.threadPool = threadPool
    }

    /// Loads every model of a repository folder.
    public static func open(
        _ root: String, defaults: ModelConfiguration = ModelConfiguration(), threadPool: SharedThreadPool = SharedThreadPool()
    ) async throws -> ModelRepository {
        let repository = ModelRepository(root: root, threadPool: threadPool)
        for name in try repository.availableModels() {
            try await repository.loadFromRepository(name, defaults: defaults)
        }
        return repository
    }

    /// Model folders in the repository (names only).
    public func availableModels() throws -> [String] {
        guard let root else { return [] }
        let names = try FileManager.default.contentsOfDirectory(atPath: root)
        return names.filter { name in
            var isDirectory: ObjCBool = false
            return !name.hasPrefix(".") && FileManager.default.fileExists(atPath: root + "/" + name, isDirectory: &isDirectory) && isDirectory.boolValue
        }.sorted()
    }

    /// Loads (or reloads) every version of `name` from the repository folder.
    public func loadFromRepository(_ name: String, defaults: ModelConfiguration = ModelConfiguration()) async throws {
        guard let root else { throw HandlerError(status: 400, "this server has no model repository") }
        guard Self.isSafeName(name) else { throw HandlerError.badRequest("invalid model name '\(name)'") }
        let folder = root + "/" + name
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw HandlerError.notFound("the repository has no model '\(name)'")
        }
        let resolved = URL(fileURLWithPath: folder).resolvingSymlinksInPath().path
        guard resolved.hasPrefix(URL(fileURLWithPath: root).resolvingSymlinksInPath().path + "/") else {
            throw HandlerError.badRequest("model '\(name)' resolves outside the repository")
        }
        var configuration = defaults
        if FileManager.default.fileExists(atPath: folder + "/config.json") {
            configuration = try ModelConfiguration.load(folder + "/config.json")
        }
        let versions = try FileManager.default.contentsOfDirectory(atPath: folder)
            .filter { FileManager.default.fileExists(atPath: folder + "/" + $0 + "/model.onnx") && Self.isSafeName($0) }
        guard !versions.isEmpty else { throw HandlerError.notFound("model '\(name)' has no <version>/model.onnx in the repository") }
        var loaded: [String: ServedModel] = [:]
        for version in versions {
            loaded[version] = try await makeModel(
                name: name, version: version, directory: folder + "/" + version,
                path: folder + "/" + version + "/model.onnx", configuration: configuration)
        }
        models.withLock { $0[name] = loaded }
    }

    /// Loads one model file under `name`.
    public func load(name: String, version: String = "1", path: String, configuration: ModelConfiguration = ModelConfiguration()) async throws {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let model = try await makeModel(name: name, version: version, directory: directory, path: path, configuration: configuration)
        models.withLock { $0[name, default: [:]][version] = model }
    }

    func makeModel(name: String, version: String, directory: String, path: String, configuration: ModelConfiguration) async throws -> ServedModel {
        try configuration.validate("model '\(name)'")
        guard let handler = HandlerRegistry.make(configuration.handler) else {
            throw HandlerError(status: 500, "model '\(name)': unknown handler '\(configuration.handler)' (registered: \(HandlerRegistry.names.joined(separator: ", ")))")
        }
        let context = HandlerContext(
            modelName: name, version: version, modelDirectory: directory, modelPath: path, configuration: configuration,
            threadPool: threadPool)
        do {
            try await handler.initialize(context)
        } catch let error as OnyxError {
            throw HandlerError(status: 500, "model '\(name)' version \(version) failed to load: \(error.message)")
        }
        return try ServedModel(handler: handler, context: context)
    }

    /// Stops serving `name`.
    public func unload(_ name: String) -> Bool {
        models.withLock { $0.removeValue(forKey: name) != nil }
    }

    /// The model `name` at `version`, or its highest version when `version` is nil.
    public func model(_ name: String, version: String? = nil) throws -> ServedModel {
        try models.withLock { table in
            guard let versions = table[name] else { throw HandlerError.notFound("unknown model '\(name)'") }
            if let version {
                guard let model = versions[version] else {
                    throw HandlerError.notFound("model '\(name)' has no version '\(version)'")
                }
                return model
            }
            guard let latest = versions.keys.max(by: { a, b in (Int(a) ?? -1, a) < (Int(b) ?? -1, b) }),
                  let model = versions[latest] else { throw HandlerError.notFound("model '\(name)' has no versions") }
            return model
        }
    }

    /// Every served model: name → versions.
    public var index: [(name: String, versions: [String])] {
        models.withLock { table in table.keys.sorted().map { ($0, table[$0]!.keys.sorted()) } }
    }

    /// The loaded versions of `name`, sorted; empty for an unknown model.
    package func versions(of name: String) -> [String] {
        models.withLock { table in table[name]?.keys.sorted() ?? [] }
    }

    /// Every loaded version of every model.
    public var allModels: [ServedModel] {
        models.withLock { table in table.values.flatMap { $0.values } }
    }

    static func isSafeName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("/") && !name.contains("\0") && !name.hasPrefix(".")
    }
}
