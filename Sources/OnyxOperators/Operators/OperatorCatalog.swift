/// What Onyx implements, for documentation and tooling (`onyx operators`).
public enum OperatorCatalog {
    /// One operator: its domain (`""` is ai.onnx), type, and the opset ranges implemented.
    public struct Entry: Sendable, Hashable {
        /// The operator's domain; `""` is ai.onnx.
        public let domain: String
        /// The operator's name, e.g. `Conv`.
        public let opType: String
        /// Opset ranges in which the implementation follows one version of the operator; the
        /// last upper bound is `Int.max` when every later opset is accepted.
        public let versions: [ClosedRange<Int>]
    }

    /// Every implemented operator, sorted by domain and name.
    public static var entries: [Entry] {
        let groups = Dictionary(grouping: OperatorRegistry.all.filter { ![NchwcFormat.domain, QuantizedNhwc.domain, QuantizedLookupTable.domain].contains($0.domain) }) { "\($0.domain)\u{0}\($0.opType)" }
        return groups.values.map { registrations in
            Entry(domain: registrations[0].domain, opType: registrations[0].opType,
                  versions: registrations.map(\.versions).sorted { $0.lowerBound < $1.lowerBound })
        }
        .sorted { ($0.domain, $0.opType) < ($1.domain, $1.opType) }
    }
}
