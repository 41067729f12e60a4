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
}
