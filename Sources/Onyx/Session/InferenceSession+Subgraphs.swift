import OnyxCore
import OnyxIR
import OnyxKernels
import OnyxOperators

/// Prepares the bodies of If, Loop and Scan as sessions of their own: one thread (the enclosing
/// run already owns the pool), the enclosing session's kernel variant.
struct SessionSubgraphCompiler: SubgraphCompiler {
    func prepare(_ model: Model, isa: KernelISA) throws -> any PreparedSubgraph {
        try InferenceSession(model: model, options: SessionOptions(threadCount: 1, isa: isa))
    }
}

extension InferenceSession: PreparedSubgraph {
    package var outputCount: Int { outputs.count }

    package func outputDescriptors(for inputs: [TensorDescriptor]) throws -> [TensorDescriptor] {
        let plan = try shapePlan(for: inputs)
        // The body's output shapes wait for a value: so does the node that holds it.
        guard plan.coversGraph else {
            let step = graph.steps[plan.end]
            throw NeedsInputValues(op: step.opType, what: "subgraph's")
        }
        return try graph.outputIds.map { id in
            guard let descriptor = plan.descriptors[id] else {
                throw OnyxError.internalError("subgraph output '\(graph.valueNames[id])' has no shape")
            }
            return descriptor
        }
    }
}
