/// A parsed JSON document, with runs of numbers kept as flat numeric arrays.
///
/// Tensor payloads are large arrays of numbers; parsing them into one `[Double]` (and, when every
/// token is an integer, an exact `[Int64]`) instead of one enum case per element is what makes
/// request decoding fast. Everything else (the envelope) is small.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    /// An array whose elements are all numbers.
    case numbers(NumberArray)
    case object([String: JSONValue])

    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// An integer value (a number with no fractional part).
    public var intValue: Int? {
        if case .number(let d) = self, d.rounded() == d, abs(d) < 9.0e15 { return Int(d) }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        switch self {
        case .array(let a): return a
        case .numbers(let n): return n.doubles.map { .number($0) }
        default: return nil
        }
    }
}

/// A flat run of JSON numbers.
public struct NumberArray: Sendable, Equatable {
    public var doubles: [Double]
    /// The same values exactly, when every token was an integer that fits in Int64.
    public var integers: [Int64]?

    public init(doubles: [Double], integers: [Int64]?) {
        self.doubles = doubles
        self.integers = integers
    }
}

/// A JSON syntax error with the byte offset where it was found.
public struct JSONSyntaxError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public let offset: Int
    public var description: String { "malformed JSON at byte \(offset): \(message)" }
}
