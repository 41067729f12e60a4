/// An error raised by Onyx: a stable code plus a message naming what was wrong.
///
/// Codes are a struct rather than an enum so that new codes do not break callers
/// that switch over them.
public struct OnyxError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The category of an ``OnyxError``.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        package let raw: String
        /// The file is not an ONNX model, is truncated, or its graph is inconsistent.
        public static let invalidModel = Code(raw: "invalidModel")
        /// The model uses an operator (or operator version) that Onyx does not implement.
        public static let unsupportedOperator = Code(raw: "unsupportedOperator")
        /// The model uses a data type that the operator or Onyx does not support.
        public static let unsupportedDataType = Code(raw: "unsupportedDataType")
        /// A node's attribute is missing, of the wrong kind, or out of range.
        public static let invalidAttribute = Code(raw: "invalidAttribute")
        /// Shapes do not agree (inputs to an operator, or an input against the model).
        public static let shapeMismatch = Code(raw: "shapeMismatch")
        /// An input given to `run` is wrong: unknown, missing, or of the wrong type.
        public static let invalidInput = Code(raw: "invalidInput")
        /// A size exceeds a configured limit or overflows.
        public static let limitExceeded = Code(raw: "limitExceeded")
        /// Reading or writing a file failed.
        public static let io = Code(raw: "io")
        /// An argument to a public API is invalid.
        public static let invalidArgument = Code(raw: "invalidArgument")
        /// An internal invariant did not hold; this is a bug in Onyx.
        public static let internalError = Code(raw: "internalError")

        public var description: String { raw }
    }

    /// The category of the error.
    public let code: Code
    /// A message naming the node, value, or input involved and what was expected.
    public let message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    package static func invalidModel(_ message: String) -> OnyxError { OnyxError(.invalidModel, message) }
    package static func shapeMismatch(_ message: String) -> OnyxError { OnyxError(.shapeMismatch, message) }
    package static func invalidAttribute(_ message: String) -> OnyxError { OnyxError(.invalidAttribute, message) }
    package static func unsupportedDataType(_ message: String) -> OnyxError { OnyxError(.unsupportedDataType, message) }
    package static func invalidInput(_ message: String) -> OnyxError { OnyxError(.invalidInput, message) }
    package static func limitExceeded(_ message: String) -> OnyxError { OnyxError(.limitExceeded, message) }
    package static func internalError(_ message: String) -> OnyxError { OnyxError(.internalError, message) }
}

/// `[2,3,4]`: shapes and axis lists in error messages.
package func shapeText(_ values: [Int]) -> String {
    "[" + values.map(String.init).joined(separator: ",") + "]"
}
