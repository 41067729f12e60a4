extension OperatorRegistry {
    /// Comparisons, logical and bitwise ops, Where, variadic Max/Min/Sum/Mean, Pow, Mod.
    static let comparisonOperators: [OperatorRegistration] = []
}
