import Foundation
import Onyx
import OnyxServe

/// A minimal custom handler: takes the model's own input over the Open Inference Protocol, runs
/// the classifier, and answers with class probabilities (softmax of the logits) and the most
/// likely class instead of raw logits.
///
/// Each request is checked and run on its own, so one bad request fails alone.
final class ProbabilitiesHandler: ModelHandler, @unchecked Sendable {
    // Set once in `initialize`, read-only afterwards (hence `@unchecked Sendable`).
    private var session: InferenceSession?
    private(set) var inputs: [TensorMetadata] = []
    private(set) var outputs: [TensorMetadata] = []

    func initialize(_ context: HandlerContext) async throws {
        let session = try await Compute.run {
            try InferenceSession(contentsOf: context.modelPath, options: SessionOptions(threadCount: max(1, context.configuration.threads)))
        }
        guard session.inputs.count == 1, session.outputs.count == 1, let type = session.inputs[0].type,
              let shape = type.shape, shape.rank == 2 else {
            throw HandlerError(status: 500, "\(context.modelName): expected one [batch, N] input and one [batch, classes] output")
        }
        self.session = session
        let extents = shape.dimensions.map { dimension -> Int in
            if case .fixed(let n) = dimension { return n }
            return -1
        }
        inputs = [TensorMetadata(name: session.inputs[0].name, datatype: type.dataType, shape: extents)]
        outputs = [
            TensorMetadata(name: "probabilities", datatype: .float, shape: [-1, -1]),
            TensorMetadata(name: "label", datatype: .int64, shape: [-1]),
        ]
    }

    /// The request's input tensor, or why it was refused.
    func preprocess(_ requests: [HandlerRequest], context: HandlerContext) async throws -> [Result<Tensor, HandlerError>] {
        guard let expected = inputs.first else { throw HandlerError(status: 503, "model is not initialized") }
        return requests.map { request in
            guard request.inputs.count == 1, let given = request.inputs.first, given.name == expected.name else {
                return .failure(.badRequest("send exactly one input named '\(expected.name)'"))
            }
            guard given.tensor.dataType == expected.datatype, given.tensor.rank == 2 else {
                return .failure(.badRequest("'\(expected.name)' must be \(expected.datatype.protocolName) with shape [n, \(expected.shape[1])]"))
            }
            return .success(given.tensor)
        }
    }

    /// Logits per request (the session checks shapes and throws ``OnyxError`` on a mismatch).
    func inference(_ prepared: [Result<Tensor, HandlerError>], context: HandlerContext) async throws -> [Result<Tensor, HandlerError>] {
        guard let session else { throw HandlerError(status: 503, "model is not initialized") }
        let inputName = session.inputs[0].name, outputName = session.outputs[0].name
        var results: [Result<Tensor, HandlerError>] = []
        for item in prepared {
            guard case .success(let features) = item else { results.append(item); continue }
            do {
                // The async run: computes on the session's own queue, so the server's tasks keep running.
                let logits = try await session.run([inputName: features])
                guard let tensor = logits[outputName] else { throw HandlerError(status: 500, "the model returned no '\(outputName)'") }
                results.append(.success(tensor))
            } catch let error as OnyxError {
                results.append(.failure(.badRequest(error.message)))
            }
        }
        return results
    }

    func postprocess(_ computed: [Result<Tensor, HandlerError>], requests: [HandlerRequest], context: HandlerContext) async throws
        -> [Result<HandlerResponse, HandlerError>]
    {
        try zip(computed, requests).map { item, request in
            guard case .success(let logits) = item else {
                if case .failure(let error) = item { return .failure(error) }
                return .failure(HandlerError(status: 500, "unreachable"))
            }
            let rows = logits.shape[0], classes = logits.shape[1]
            let values = try logits.scalars(as: Float.self)
            var probabilities = [Float](repeating: 0, count: values.count)
            var labels = [Int64](repeating: 0, count: rows)
            for row in 0..<rows {
                let slice = values[(row * classes)..<((row + 1) * classes)]
                let largest = slice.max() ?? 0
                let exps = slice.map { exp($0 - largest) }  // shifted so exp never overflows
                let total = exps.reduce(0, +)
                for (k, e) in exps.enumerated() { probabilities[row * classes + k] = e / total }
                labels[row] = Int64(slice.firstIndex(of: largest).map { $0 - slice.startIndex } ?? 0)
            }
            var named = [
                NamedTensor(name: "probabilities", tensor: try Tensor(shape: [rows, classes], scalars: probabilities)),
                NamedTensor(name: "label", tensor: try Tensor(shape: [rows], scalars: labels)),
            ]
            if let wanted = request.requestedOutputs {
                named = named.filter { wanted.contains($0.name) }
            }
            return .success(.tensors(named))
        }
    }
}
