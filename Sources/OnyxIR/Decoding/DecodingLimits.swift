/// Bounds on what the decoder accepts, checked before anything is allocated.
public struct DecodingLimits: Sendable {
    /// Largest model file (bytes) read into memory.
    public var maxModelBytes: Int
    /// Largest single tensor (bytes).
    public var maxTensorBytes: Int
    /// Largest sum of all tensor bytes in the model.
    public var maxTotalTensorBytes: Int
    /// Deepest nesting of graphs inside attributes.
    public var maxGraphDepth: Int
    /// Largest rank of a tensor or declared shape.
    public var maxRank: Int

    /// Creates decoding limits.
    ///
    /// - Parameters:
    ///   - maxModelBytes: Largest model file (bytes) read into memory.
    ///   - maxTensorBytes: Largest single tensor (bytes).
    ///   - maxTotalTensorBytes: Largest sum of all tensor bytes in the model.
    ///   - maxGraphDepth: Deepest nesting of graphs inside attributes.
    ///   - maxRank: Largest rank of a tensor or declared shape.
    public init(
        maxModelBytes: Int = 4 << 30,
        maxTensorBytes: Int = 4 << 30,
        maxTotalTensorBytes: Int = 16 << 30,
        maxGraphDepth: Int = 16,
        maxRank: Int = 32
    ) {
        self.maxModelBytes = maxModelBytes
        self.maxTensorBytes = maxTensorBytes
        self.maxTotalTensorBytes = maxTotalTensorBytes
        self.maxGraphDepth = maxGraphDepth
        self.maxRank = maxRank
    }
}
