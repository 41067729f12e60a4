import Onyx

/// The state a stateful model keeps per sequence, as Triton's sequence batcher keeps implicit
/// state: each request of a sequence gets the state its previous request left (zeros for the
/// first), and leaves the next one.
///
/// A sequence starts with a request flagged `sequence_start` and ends with one flagged
/// `sequence_end`, or when it has been idle longer than `max_sequence_idle_ms`. Its requests run
/// one at a time, in the order they arrive; those of different sequences run (and batch) together.
/// At most `max_sequences` live at once: a start beyond that gets 429; at most `queue_capacity`
/// requests of one sequence wait for their turn: one more gets 503.
actor SequenceTable {
    /// One state pair, checked against the model.
    struct StateSpec: Sendable {
        let input: String
        let output: String
        let datatype: DataType
        /// The initial state's shape; -1 takes the request's batch size.
        let dims: [Int]
    }

    private struct Entry {
        /// The state by input name; nil before the first answer (the initial state).
        var state: [String: Tensor]?
        /// Whether a request of the sequence is running (or has been handed the turn).
        var busy = true
        /// Whether a request ended the sequence while others of it were waiting.
        var ended = false
        var waiters: [(ticket: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
        var lastUsed: ContinuousClock.Instant
    }

    private let modelName: String
    private let specs: [StateSpec]
    private let idle: Duration
    private let idleMilliseconds: Int
    private let capacity: Int
    /// Most requests of one sequence waiting for their turn (the model's queue capacity).
    private let maxWaiting: Int
    private let metrics: ModelMetrics
    /// The model inputs the server feeds (clients do not send them).
    nonisolated let stateInputs: Set<String>
    /// The model outputs the server keeps (clients get them only when they ask by name).
    nonisolated let stateOutputs: Set<String>
    private var entries: [SequenceControl.ID: Entry] = [:]
    private var nextTicket: UInt64 = 0
    private var sweeper: Task<Void, Never>?

    /// Checks the configuration against the model's inputs and outputs.
    ///
    /// - Throws: ``HandlerError`` (500, failing the load) naming the state pair that does not fit.
    init(_ configuration: ModelConfiguration.SequenceBatching, inputs: [TensorMetadata], outputs: [TensorMetadata],
         modelName: String, maxWaiting: Int, metrics: ModelMetrics) throws {
        var specs: [StateSpec] = []
        for pair in configuration.state {
            let origin = "model '\(modelName)': sequence_batching state '\(pair.inputName)' → '\(pair.outputName)'"
            guard let input = inputs.first(where: { $0.name == pair.inputName }) else {
                throw HandlerError(status: 500, "\(origin): the model has no input '\(pair.inputName)' (inputs: \(inputs.map(\.name).joined(separator: ", ")))")
            }
            guard let output = outputs.first(where: { $0.name == pair.outputName }) else {
                throw HandlerError(status: 500, "\(origin): the model has no output '\(pair.outputName)' (outputs: \(outputs.map(\.name).joined(separator: ", ")))")
            }
            guard input.datatype == output.datatype, input.datatype.hasBinaryLayout, input.datatype != .string else {
                throw HandlerError(status: 500, "\(origin): the input is \(input.datatype.protocolName) and the output \(output.datatype.protocolName); "
                    + "state must be one numeric type")
            }
            let dims = pair.dims ?? input.shape
            guard !input.shape.isEmpty || pair.dims != nil, input.shape.isEmpty || dims.count == input.shape.count,
                  dims.allSatisfy({ $0 >= -1 }),
                  zip(dims, input.shape).allSatisfy({ $1 == -1 || $0 == $1 }) else {
                throw HandlerError(status: 500, "\(origin): dims \(dims) do not fit the input's shape \(input.shape)")
            }
            guard specs.allSatisfy({ $0.input != pair.inputName && $0.output != pair.outputName }) else {
                throw HandlerError(status: 500, "\(origin): the input or output is already in another state pair")
            }
            specs.append(StateSpec(input: pair.inputName, output: pair.outputName, datatype: input.datatype, dims: dims))
        }
        self.modelName = modelName
        self.specs = specs
        self.idle = .milliseconds(configuration.maxSequenceIdleMilliseconds)
        self.idleMilliseconds = configuration.maxSequenceIdleMilliseconds
        self.capacity = configuration.maxSequences
        self.maxWaiting = maxWaiting
        self.metrics = metrics
        self.stateInputs = Set(specs.map(\.input))
        self.stateOutputs = Set(specs.map(\.output))
    }

    /// Sequences alive (running, waiting or idle).
    var liveCount: Int { entries.count }

    /// Requests of sequence `id` waiting for their turn.
    func waitingCount(_ id: SequenceControl.ID) -> Int { entries[id]?.waiters.count ?? 0 }

    /// Runs `request` in its sequence's turn through `batcher`, fed the sequence's state; keeps
    /// the state it leaves, and answers without the state outputs unless the client named them.
    ///
    /// - Throws: ``HandlerError``: 400 for a request with no sequence, one that sends a state input
    ///   itself, or one whose sequence is not live and which does not start one; 429 when a new
    ///   sequence would pass `max_sequences`; what the batcher and the model throw.
    func infer(_ request: HandlerRequest, batcher: DynamicBatcher) async throws -> HandlerResponse {
        guard let control = request.sequence else {
            throw HandlerError.badRequest(
                "model '\(modelName)' keeps state per sequence: give each request a sequence_id, and its first one sequence_start")
        }
        if let input = request.inputs.first(where: { stateInputs.contains($0.name) }) {
            throw HandlerError.badRequest("input '\(input.name)' is state the server keeps for sequence \(control.id); do not send it")
        }
        let state = try await acquire(control)
        var kept: [String: Tensor]?
        let outcome: Result<HandlerResponse, any Error>
        do {
            var fed = request
            let batch = request.inputs.first?.tensor.shape.first ?? 1
            for spec in specs {
                fed.inputs.append(NamedTensor(name: spec.input, tensor: try state?[spec.input] ?? initial(spec, batch: batch)))
            }
            if var wanted = fed.requestedOutputs {
                for spec in specs where !wanted.contains(spec.output) { wanted.append(spec.output) }
                fed.requestedOutputs = wanted
            }
            guard case .tensors(var outputs) = try await batcher.submit(fed) else {
                throw HandlerError(status: 500, "model '\(modelName)' answered with JSON, which carries no state")
            }
            var next: [String: Tensor] = [:]
            for spec in specs {
                guard let output = outputs.first(where: { $0.name == spec.output }) else {
                    throw HandlerError(status: 500, "model '\(modelName)' did not return state output '\(spec.output)'")
                }
                next[spec.input] = output.tensor
            }
            let named = Set(request.requestedOutputs ?? [])
            outputs.removeAll { stateOutputs.contains($0.name) && !named.contains($0.name) }
            kept = next
            outcome = .success(.tensors(outputs))
        } catch {
            outcome = .failure(error)
        }
        release(control, state: kept)
        return try outcome.get()
    }

    /// Zeros of the state's shape, `-1` axes taking the request's batch size.
    private func initial(_ spec: StateSpec, batch: Int) throws -> Tensor {
        let shape = spec.dims.map { $0 == -1 ? batch : $0 }
        let bytes = [UInt8](repeating: 0, count: shape.reduce(1, *) * spec.datatype.byteWidth)
        return try bytes.withUnsafeBytes { try Tensor(dataType: spec.datatype, shape: shape, bytes: $0) }
    }

    /// Waits for the sequence's turn and returns its state (nil: the initial state).
    private func acquire(_ control: SequenceControl) async throws -> [String: Tensor]? {
        let id = control.id
        guard let entry = entries[id] else {
            guard control.start else { throw notLive(id) }
            if entries.count >= capacity {
                sweep(now: .now)
                guard entries.count < capacity else {
                    throw HandlerError(status: 429, "model '\(modelName)' has its maximum of \(capacity) live sequences; end one or retry later",
                                       retryAfter: 1)
                }
            }
            entries[id] = Entry(lastUsed: .now)
            scheduleSweeper()
            return nil
        }
        if entry.busy {
            guard entry.waiters.count < maxWaiting else {
                throw HandlerError.overloaded("sequence \(id) of model '\(modelName)' has \(maxWaiting) requests waiting for their turn")
            }
            nextTicket += 1
            let ticket = nextTicket
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    if Task.isCancelled {
                        continuation.resume(throwing: HandlerError.clientGone(modelName))
                        return
                    }
                    entries[id]?.waiters.append((ticket, continuation))
                }
            } onCancel: {
                Task { await self.abandon(id, ticket: ticket) }
            }
            // The turn was handed over: the entry is ours and still busy.
        } else {
            entries[id]?.busy = true
        }
        if control.start {
            entries[id]?.state = nil
            entries[id]?.ended = false
            return nil
        }
        guard let owned = entries[id], !owned.ended else {
            passTurn(id)
            throw notLive(id)
        }
        return owned.state
    }

    private func notLive(_ id: SequenceControl.ID) -> HandlerError {
        .badRequest("sequence \(id) of model '\(modelName)' is not live (never started, ended, or idle longer than "
            + "\(idleMilliseconds) ms): start it with sequence_start")
    }

    /// Keeps the state a request left (none when it failed) and hands the turn on.
    private func release(_ control: SequenceControl, state: [String: Tensor]?) {
        guard entries[control.id] != nil else { return }
        if let state { entries[control.id]?.state = state }
        if control.end {
            entries[control.id]?.ended = true
            entries[control.id]?.state = nil
        }
        passTurn(control.id)
    }

    /// Hands the turn to the next waiting request, or frees the sequence (dropping it if ended).
    private func passTurn(_ id: SequenceControl.ID) {
        guard var entry = entries[id] else { return }
        entry.lastUsed = .now
        if !entry.waiters.isEmpty {
            let next = entry.waiters.removeFirst()
            entries[id] = entry
            next.continuation.resume()
        } else if entry.ended {
            entries[id] = nil
        } else {
            entry.busy = false
            entries[id] = entry
        }
    }

    /// A waiting request whose client went away leaves the line.
    private func abandon(_ id: SequenceControl.ID, ticket: UInt64) {
        guard let index = entries[id]?.waiters.firstIndex(where: { $0.ticket == ticket }),
              let waiter = entries[id]?.waiters.remove(at: index) else { return }
        metrics.recordCancelled(.clientGone)
        waiter.continuation.resume(throwing: HandlerError.clientGone(modelName))
    }

    /// Drops the sequences idle for longer than the timeout.
    private func sweep(now: ContinuousClock.Instant) {
        entries = entries.filter { _, entry in entry.busy || now - entry.lastUsed < idle }
    }

    /// One timer while sequences live, due when the least recently used idle one expires.
    private func scheduleSweeper() {
        guard sweeper == nil, !entries.isEmpty else { return }
        let due = (entries.values.filter { !$0.busy }.map(\.lastUsed).min() ?? .now) + idle
        sweeper = Task { [weak self] in
            guard (try? await Task.sleep(until: due, clock: .continuous)) != nil else { return }
            await self?.sweeperFired()
        }
    }

    private func sweeperFired() {
        sweeper = nil
        sweep(now: .now)
        scheduleSweeper()
    }
}
