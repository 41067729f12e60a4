/// A parsed JSON document, with runs of numbers kept as flat numeric arrays.
///
/// Tensor payloads are large arrays of numbers; parsing them into one `[Double]` (and, when every
/// token is an integer, an exact `[Int64]`) instead of one enum case per element is what makes
/// request decoding fast. Everything else (the envelope) is small.
public indirect enum JSONValue: Sendable, Equatable {
    /// `null`.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// A number outside an all-number array.
    case number(Double)
    /// A string, escapes decoded.
    case string(String)
    /// An array that is empty or holds something other than numbers.
    case array([JSONValue])
    /// An array whose elements are all numbers.
    case numbers(NumberArray)
    /// An object; a repeated key keeps its last value.
    case object([String: JSONValue])

    /// The member named `key` of an object.
    ///
    /// - Parameter key: The member's name.
    /// - Returns: The member, or `nil` if there is none or the value is not an object.
    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    /// The string, if the value is one.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The boolean, if the value is one.
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// An integer value (a number with no fractional part).
    public var intValue: Int? {
        if case .number(let d) = self, d.rounded() == d, abs(d) < 9.0e15 { return Int(d) }
        return nil
    }

    /// The elements, if the value is an array (numbers included, one value each).
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
    /// The values as doubles.
    public var doubles: [Double]
    /// The same values exactly, when every token was an integer that fits in Int64.
    public var integers: [Int64]?

    /// Creates a run of numbers.
    ///
    /// - Parameters:
    ///   - doubles: The values as doubles.
    ///   - integers: The same values exactly as integers, or `nil` if any is not an integer.
    public init(doubles: [Double], integers: [Int64]?) {
        self.doubles = doubles
        self.integers = integers
    }
}

/// A JSON syntax error with the byte offset where it was found.
public struct JSONSyntaxError: Error, Sendable, CustomStringConvertible {
    /// What was wrong.
    public let message: String
    /// The byte offset where it was found.
    public let offset: Int
    public var description: String { "malformed JSON at byte \(offset): \(message)" }
}
