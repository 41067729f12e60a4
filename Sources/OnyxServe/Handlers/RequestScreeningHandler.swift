import Foundation
import Onyx

/// A sample custom handler: scores an HTTP request's features with a small classifier and
/// answers `{"label": "block" | "allow", "score": p}`.
///
/// The model takes `[batch, N]` float features and returns `[batch, 2]` logits (allow, block),
/// like `Fixtures/mlp_*`. The request body names its features:
///
/// ```json
/// {"features": {"path_length": 12, "param_count": 3, "has_sql_keywords": 1}}
/// ```
///
/// Feature names come from `features.json` (a JSON array of N names) in the model's folder, or are
/// `f0` … `f{N-1}`; features left out are 0. `threshold` in the request (default 0.5) sets the
/// block score. Serve it with `"handler": "screening"` in the model's `config.json`.
///
/// It shows the three steps a handler customises: `preprocess` (JSON → one stacked tensor),
/// `inference` (the session), `postprocess` (logits → a decision per request).
public final class RequestScreeningHandler: ModelHandler, @unchecked Sendable {
    // Set once in `initialize`; read-only afterwards.
    private var session: InferenceSession?
    private var featureNames: [String] = []
    private var featureIndex: [String: Int] = [:]
    /// The model's single `[batch, N]` input.
    public private(set) var inputs: [TensorMetadata] = []
    /// The model's single `[batch, 2]` output.
    public private(set) var outputs: [TensorMetadata] = []
    /// Requests are always stacked into one run.
    public var supportsBatching: Bool { true }

    /// Creates a handler; ``initialize(_:)`` loads the model and feature names.
    public init() {}

    /// Loads the model and `features.json` from the model's folder.
    ///
    /// - Parameter context: The model to serve.
    /// - Throws: ``HandlerError`` (500) if the model's inputs or outputs do not fit, or `features.json` is malformed; ``OnyxError`` if the model cannot be loaded.
    public func initialize(_ context: HandlerContext) async throws {
        let session = try await Compute.run { try InferenceSession(contentsOf: context.modelPath, options: context.sessionOptions) }
        guard session.inputs.count == 1, let shape = session.inputs[0].type?.shape, shape.rank == 2,
              case .fixed(let width) = shape.dimensions[1], session.outputs.count == 1 else {
            throw HandlerError(status: 500, "the screening handler needs a model with one [batch, N] input and one [batch, 2] output")
        }
        let namesFile = context.modelDirectory + "/features.json"
        if let data = FileManager.default.contents(atPath: namesFile) {
            guard let names = try? JSONDecoder().decode([String].self, from: data), names.count == width else {
                throw HandlerError(status: 500, "\(namesFile) must be a JSON array of \(width) feature names")
            }
            featureNames = names
        } else {
            featureNames = (0..<width).map { "f\($0)" }
        }
        featureIndex = Dictionary(uniqueKeysWithValues: featureNames.enumerated().map { ($1, $0) })
        self.session = session
        inputs = session.inputs.map(OnnxModelHandler.metadata)
        outputs = [TensorMetadata(name: "label", datatype: .float, shape: [-1]), TensorMetadata(name: "score", datatype: .float, shape: [-1])]
    }

    /// Per request, its feature row (or why it was refused); all rows stacked for one run.
    public struct Prepared: Sendable {
        var rows: [Result<Int, HandlerError>]
        var features: Tensor?
    }

    /// Turns each request's named features into a row of one stacked tensor.
    ///
    /// - Parameters:
    ///   - requests: The batch.
    ///   - context: The model being served.
    /// - Returns: The stacked rows; malformed requests are kept as failures, not thrown.
    /// - Throws: ``OnyxError`` if the rows cannot form a tensor.
    public func preprocess(_ requests: [HandlerRequest], context: HandlerContext) async throws -> Prepared {
        let width = featureNames.count
        var values: [Float] = []
        var rows: [Result<Int, HandlerError>] = []
        var count = 0
        for request in requests {
            guard case .object(let features)? = request.json?["features"] else {
                rows.append(.failure(.badRequest("body must be {\"features\": {name: number, ...}}")))
                continue
            }
            var row = [Float](repeating: 0, count: width)
            var failure: HandlerError?
            for (name, value) in features {
                guard let index = featureIndex[name] else {
                    failure = .badRequest("unknown feature '\(name)'")
                    break
                }
                switch value {
                case .number(let d) where d.isFinite: row[index] = Float(d)
                case .bool(let b): row[index] = b ? 1 : 0
                default: failure = .badRequest("feature '\(name)' must be a finite number or a boolean")
                }
                if failure != nil { break }
            }
            if let failure {
                rows.append(.failure(failure))
                continue
            }
            values += row
            rows.append(.success(count))
            count += 1
        }
        let features = count == 0 ? nil : try Tensor(shape: [count, width], scalars: values)
        return Prepared(rows: rows, features: features)
    }

    /// Runs the classifier on the stacked rows.
    ///
    /// - Parameters:
    ///   - prepared: The stacked rows.
    ///   - context: The model being served.
    /// - Returns: The rows and their logits, two per row.
    /// - Throws: ``HandlerError`` (503) if the handler was not initialized, or ``OnyxError`` from the run.
    public func inference(_ prepared: Prepared, context: HandlerContext) async throws -> (Prepared, [Float]) {
        guard let features = prepared.features else { return (prepared, []) }
        guard let session else { throw HandlerError(status: 503, "model is not initialized") }
        let name = session.inputs[0].name
        let logits = try await Compute.run { try session.run([name: features]) }
        return (prepared, try logits[session.outputs[0].name]!.scalars(as: Float.self))
    }

    /// Turns each row's logits into `{"label", "score"}` with the request's threshold.
    ///
    /// - Parameters:
    ///   - computed: The rows and their logits.
    ///   - requests: The batch, in order.
    ///   - context: The model being served.
    /// - Returns: One result per request, in order.
    /// - Throws: Never: a request's problem becomes its failure in the result.
    public func postprocess(_ computed: (Prepared, [Float]), requests: [HandlerRequest], context: HandlerContext) async throws
        -> [Result<HandlerResponse, HandlerError>]
    {
        let (prepared, logits) = computed
        return zip(prepared.rows, requests).map { row, request in
            row.map { index in
                let allow = logits[2 * index], block = logits[2 * index + 1]
                let score = 1 / (1 + exp(Double(allow - block)))  // softmax probability of "block"
                let threshold: Double
                if case .number(let t)? = request.json?["threshold"] { threshold = t } else { threshold = 0.5 }
                return .json(.object([
                    "label": .string(score >= threshold ? "block" : "allow"),
                    "score": .number((score * 1e6).rounded() / 1e6),
                ]))
            }
        }
    }
}
