/// Which stateful sequence a request belongs to: Triton's `sequence_id`, `sequence_start` and
/// `sequence_end` request parameters.
public struct SequenceControl: Sendable, Equatable {
    /// A sequence's id: an unsigned integer or a string, as the protocol allows (the two kinds never
    /// name the same sequence).
    public enum ID: Hashable, Sendable, CustomStringConvertible {
        /// A numeric id (1 and up; 0 means no sequence).
        case number(UInt64)
        /// A string id (non-empty; "" means no sequence).
        case string(String)

        public var description: String {
            switch self {
            case .number(let n): String(n)
            case .string(let s): "'\(s)'"
            }
        }
    }

    /// The sequence.
    public var id: ID
    /// Whether this request starts the sequence (from the model's initial state).
    public var start: Bool
    /// Whether this request ends it (its state is dropped after the answer).
    public var end: Bool

    /// Creates a sequence control.
    ///
    /// - Parameters:
    ///   - id: The sequence.
    ///   - start: Whether the request starts it.
    ///   - end: Whether the request ends it.
    public init(id: ID, start: Bool = false, end: Bool = false) {
        self.id = id
        self.start = start
        self.end = end
    }

    /// The sequence named by request parameters, or nil when they name none (no `sequence_id`, or
    /// 0 or "" as in Triton).
    ///
    /// - Parameters:
    ///   - parameters: The request's parameters.
    ///   - exactID: The id when the protocol carried it exactly (a gRPC int64 or uint64 parameter);
    ///     JSON numbers are exact up to 2^53 only.
    /// - Throws: ``HandlerError`` (400) for an id that is not an integer ≥ 0 or a string, or flags that are not booleans.
    static func parse(_ parameters: [String: JSONValue], exactID: ID? = nil) throws -> SequenceControl? {
        func flag(_ name: String) throws -> Bool {
            switch parameters[name] {
            case nil, .null?: return false
            case .bool(let value)?: return value
            default: throw HandlerError.badRequest("parameter \(name) must be a boolean")
            }
        }
        let start = try flag("sequence_start"), end = try flag("sequence_end")
        var id = exactID
        if id == nil {
            switch parameters["sequence_id"] {
            case nil, .null?: break
            case .string(let text)?: id = text.isEmpty ? nil : .string(text)
            case .number(let value)?:
                // Above 2^53 a JSON number is no longer exact: two clients' ids could collide.
                guard value >= 0, value.rounded() == value, value <= 9_007_199_254_740_992 else {
                    throw HandlerError.badRequest(
                        "parameter sequence_id must be an integer from 0 to 2^53 or a string, got \(value) (send larger ids as strings)")
                }
                id = value == 0 ? nil : .number(UInt64(value))
            default:
                throw HandlerError.badRequest("parameter sequence_id must be an unsigned integer or a string")
            }
        }
        guard let id else {
            guard !start && !end else { throw HandlerError.badRequest("sequence_start and sequence_end need a non-zero sequence_id") }
            return nil
        }
        return SequenceControl(id: id, start: start, end: end)
    }
}

extension HandlerRequest {
    /// Reads the request parameters the server itself acts on, as both protocol fronts do:
    /// `sequence_id`/`sequence_start`/`sequence_end` into ``sequence`` and `timeout`
    /// (microseconds, Triton's; 0 for none) into ``deadline``.
    ///
    /// - Parameters:
    ///   - exactSequenceID: The sequence id when the protocol carried it exactly (gRPC).
    ///   - arrival: When the request arrived; its timeout counts from there.
    /// - Throws: ``HandlerError`` (400) naming the malformed parameter.
    package mutating func readControlParameters(exactSequenceID: SequenceControl.ID? = nil, arrival: ContinuousClock.Instant = .now) throws {
        sequence = try SequenceControl.parse(parameters, exactID: exactSequenceID)
        switch parameters["timeout"] {
        case nil, .null?: break
        case .number(let value)?:
            guard value >= 0, value.rounded() == value, value < 9.0e15 else {
                throw HandlerError.badRequest("parameter timeout must be a whole number of microseconds ≥ 0, got \(value)")
            }
            if value > 0 { tighten(deadline: arrival + .microseconds(Int64(value))) }
        default:
            throw HandlerError.badRequest("parameter timeout must be a whole number of microseconds ≥ 0")
        }
    }

    /// Sets ``deadline`` to `instant` unless it is already earlier.
    ///
    /// - Parameter instant: A time after which the answer is of no use to the client.
    public mutating func tighten(deadline instant: ContinuousClock.Instant) {
        deadline = min(deadline ?? instant, instant)
    }
}
