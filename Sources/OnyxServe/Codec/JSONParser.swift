/// A JSON parser over bytes, tuned for tensor payloads: numbers are parsed without building
/// strings, and arrays of numbers become ``NumberArray``s.
///
/// Bounded: nesting deeper than `maxDepth` and documents with more than `maxElements` numbers are
/// refused, so a hostile body cannot exhaust the stack or memory beyond its own size.
public struct JSONParser {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0
    private var depth = 0
    private var numberCount = 0
    /// Deepest nesting of arrays and objects accepted.
    public let maxDepth: Int
    /// Most numbers accepted in the whole document.
    public let maxElements: Int

    /// Parses a complete JSON document.
    ///
    /// - Parameters:
    ///   - bytes: The document (UTF-8).
    ///   - maxDepth: Deepest nesting of arrays and objects accepted.
    ///   - maxElements: Most numbers accepted in the whole document.
    /// - Throws: ``JSONSyntaxError``.
    public static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 64, maxElements: Int = 1 << 28) throws -> JSONValue {
        var parser = JSONParser(bytes: bytes.bindMemory(to: UInt8.self), maxDepth: maxDepth, maxElements: maxElements)
        parser.skipWhitespace()
        let value = try parser.value()
        parser.skipWhitespace()
        guard parser.index == parser.bytes.count else { throw parser.error("unexpected content after the document") }
        return value
    }

    /// Parses a complete JSON document held in an array.
    ///
    /// - Parameters:
    ///   - bytes: The document (UTF-8).
    ///   - maxDepth: Deepest nesting of arrays and objects accepted.
    ///   - maxElements: Most numbers accepted in the whole document.
    /// - Returns: The document's value.
    /// - Throws: ``JSONSyntaxError`` naming the byte offset of the first problem.
    public static func parse(_ bytes: [UInt8], maxDepth: Int = 64, maxElements: Int = 1 << 28) throws -> JSONValue {
        try bytes.withUnsafeBytes { try parse($0, maxDepth: maxDepth, maxElements: maxElements) }
    }

    private init(bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int, maxElements: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
        self.maxElements = maxElements
    }

    private func error(_ message: String) -> JSONSyntaxError { JSONSyntaxError(message: message, offset: index) }

    @inline(__always)
    private mutating func skipWhitespace() {
        while index < bytes.count {
            let b = bytes[index]
            guard b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 else { return }
            index += 1
        }
    }

    private mutating func value() throws -> JSONValue {
        guard index < bytes.count else { throw error("unexpected end of input") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "N"), UInt8(ascii: "I"):
            var integer: Int64?
            let d = try number(&integer)
            return .number(d)
        default:
            throw error("unexpected character '\(Character(Unicode.Scalar(bytes[index])))'")
        }
    }

    private mutating func literal(_ word: StaticString) throws {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw error("unexpected end of input") }
        for i in 0..<count where bytes[index + i] != word.utf8Start[i] { throw error("invalid literal") }
        index += count
    }

    private mutating func enter() throws {
        depth += 1
        guard depth <= maxDepth else { throw error("nesting deeper than \(maxDepth)") }
    }

    private mutating func object() throws -> JSONValue {
        try enter()
        defer { depth -= 1 }
        index += 1
        var members: [String: JSONValue] = [:]
        skipWhitespace()
        if index < bytes.count && bytes[index] == UInt8(ascii: "}") {
            index += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("expected a member name") }
            let key = try string()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'") }
            index += 1
            skipWhitespace()
            members[key] = try value()
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input in an object") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
            throw error("expected ',' or '}'")
        }
    }

    private mutating func array() throws -> JSONValue {
        try enter()
        defer { depth -= 1 }
        index += 1
        skipWhitespace()
        if index < bytes.count && bytes[index] == UInt8(ascii: "]") {
            index += 1
            return .array([])
        }
        // A run of numbers: the tensor fast path.
        if index < bytes.count, Self.startsNumber(bytes[index]) {
            var doubles: [Double] = []
            var integers: [Int64]? = []
            while true {
                var integer: Int64?
                let d = try number(&integer)
                doubles.append(d)
                if integers != nil {
                    if let integer { integers!.append(integer) } else { integers = nil }
                }
                numberCount += 1
                guard numberCount <= maxElements else { throw error("more than \(maxElements) numbers") }
                skipWhitespace()
                guard index < bytes.count else { throw error("unexpected end of input in an array") }
                if bytes[index] == UInt8(ascii: "]") {
                    index += 1
                    return .numbers(NumberArray(doubles: doubles, integers: integers))
                }
                guard bytes[index] == UInt8(ascii: ",") else { throw error("expected ',' or ']'") }
                index += 1
                skipWhitespace()
                guard index < bytes.count, Self.startsNumber(bytes[index]) else {
                    // Mixed array: fall back to general elements for the rest.
                    var elements = doubles.map { JSONValue.number($0) }
                    return .array(try arrayRest(&elements))
                }
            }
        }
        var elements: [JSONValue] = []
        return .array(try arrayRest(&elements))
    }

    private mutating func arrayRest(_ elements: inout [JSONValue]) throws -> [JSONValue] {
        while true {
            skipWhitespace()
            elements.append(try value())
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input in an array") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "]") { index += 1; return elements }
            throw error("expected ',' or ']'")
        }
    }

    @inline(__always)
    private static func startsNumber(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "-")
            || b == UInt8(ascii: "N") || b == UInt8(ascii: "I")
    }

    private mutating func string() throws -> String {
        index += 1
        let start = index
        var plain = true
        while index < bytes.count {
            let b = bytes[index]
            if b == UInt8(ascii: "\"") {
                if plain {
                    let s = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                    index += 1
                    return s
                }
                break
            }
            if b == UInt8(ascii: "\\") { plain = false; index += 2; continue }
            if b < 0x20 { throw error("control character in a string") }
            index += 1
        }
        guard index < bytes.count else { throw error("unterminated string") }
        // Escapes present: decode them.
        var out: [UInt8] = []
        var i = start
        while i < index {
            let b = bytes[i]
            if b != UInt8(ascii: "\\") { out.append(b); i += 1; continue }
            guard i + 1 < index else { throw error("bad escape") }
            let e = bytes[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                guard i + 4 <= index, let code = UInt32(String(decoding: UnsafeBufferPointer(rebasing: bytes[i..<(i + 4)]), as: UTF8.self), radix: 16) else {
                    throw error("bad \\u escape")
                }
                i += 4
                var scalar = code
                if (0xD800..<0xDC00).contains(code), i + 6 <= index, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u"),
                   let low = UInt32(String(decoding: UnsafeBufferPointer(rebasing: bytes[(i + 2)..<(i + 6)]), as: UTF8.self), radix: 16),
                   (0xDC00..<0xE000).contains(low) {
                    scalar = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
                }
                out.append(contentsOf: String(Character(Unicode.Scalar(scalar) ?? "\u{FFFD}")).utf8)
            default: throw error("bad escape")
            }
        }
        index += 1
        return String(decoding: out, as: UTF8.self)
    }

    private static let powersOfTen: [Double] = (0...22).map { p in (0..<p).reduce(1.0) { r, _ in r * 10 } }

    #if arch(x86_64)
    /// 10⁰ … 10²⁷, each exact in Float80 (5²⁷ < 2⁶⁴).
    private static let powersOfTen80: [Float80] = (0...27).map { p in (0..<p).reduce(Float80(1)) { r, _ in r * 10 } }
    #endif

    /// `mantissa × 10^exponent` correctly rounded to Double, for up to 19 significant digits (how
    /// numpy and Python print a float32 as a double: 17): the product or quotient in Float80's
    /// 64-bit precision is within half a Float80 ulp of the exact value, so rounding it to Double
    /// gives the correctly rounded result unless it lies within one Float80 ulp of a point halfway
    /// between two doubles. Then, and where Float80 does not exist, `nil`: strtod decides.
    static func decimal(_ mantissa: UInt64, timesTenTo exponent: Int) -> Double? {
        #if arch(x86_64)
        guard exponent >= -27 && exponent <= 27 else { return nil }
        let power = powersOfTen80[abs(exponent)]
        let value = exponent < 0 ? Float80(mantissa) / power : Float80(mantissa) * power
        // The 11 fraction bits Float80 has below Double's 52; 0x400 is the halfway point.
        let below = value.significandBitPattern & 0x7FF
        guard below < 0x3FF || below > 0x401 else { return nil }
        return Double(value)
        #else
        return nil
        #endif
    }

    /// Parses a number; `integer` is set when the token is an integer that fits in Int64.
    @inline(__always)
    private mutating func number(_ integer: inout Int64?) throws -> Double {
        let start = index
        // JSON has no NaN/Infinity; Python's json writes these tokens, so accept them.
        if bytes[index] == UInt8(ascii: "N") { try literal("NaN"); return .nan }
        if bytes[index] == UInt8(ascii: "I") { try literal("Infinity"); return .infinity }
        var negative = false
        if bytes[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
            if index < bytes.count && bytes[index] == UInt8(ascii: "I") { try literal("Infinity"); return -.infinity }
        }
        // Up to 19 significant digits (leading zeros are not) go into the mantissa; `truncated`
        // tells whether a nonzero digit did not fit, so that only strtod can round the number.
        var mantissa: UInt64 = 0
        var digits = 0
        var dropped = 0
        var truncated = false
        let integerStart = index
        while index < bytes.count {
            let d = bytes[index] &- UInt8(ascii: "0")
            guard d < 10 else { break }
            if digits < 19 {
                mantissa = mantissa &* 10 &+ UInt64(d)
                if mantissa != 0 { digits += 1 }
            } else {
                dropped += 1
                truncated = truncated || d != 0
            }
            index += 1
        }
        guard index > integerStart else { throw error("expected a digit") }
        var exponent = dropped
        var isInteger = true
        if index < bytes.count && bytes[index] == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            let fractionStart = index
            while index < bytes.count {
                let d = bytes[index] &- UInt8(ascii: "0")
                guard d < 10 else { break }
                if digits < 19 {
                    mantissa = mantissa &* 10 &+ UInt64(d)
                    if mantissa != 0 { digits += 1 }
                    exponent -= 1
                } else {
                    truncated = truncated || d != 0
                }
                index += 1
            }
            guard index > fractionStart else { throw error("expected a digit after '.'") }
        }
        if index < bytes.count && (bytes[index] | 0x20) == UInt8(ascii: "e") {
            isInteger = false
            index += 1
            var exponentNegative = false
            if index < bytes.count && (bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+")) {
                exponentNegative = bytes[index] == UInt8(ascii: "-")
                index += 1
            }
            var e = 0
            let exponentStart = index
            while index < bytes.count {
                let d = bytes[index] &- UInt8(ascii: "0")
                guard d < 10 else { break }
                if e < 100_000 { e = e * 10 + Int(d) }
                index += 1
            }
            guard index > exponentStart else { throw error("expected exponent digits") }
            exponent += exponentNegative ? -e : e
        }
        if isInteger && dropped == 0 && mantissa <= UInt64(Int64.max) {
            integer = negative ? -Int64(mantissa) : Int64(mantissa)
        } else if isInteger && dropped == 0 && negative && mantissa == UInt64(Int64.max) + 1 {
            integer = Int64.min
        }
        // Exact fast path: the mantissa and the power of ten are both exact doubles.
        if mantissa <= (1 << 53) && exponent >= -22 && exponent <= 22 && !truncated {
            var value = Double(mantissa)
            value = exponent < 0 ? value / Self.powersOfTen[-exponent] : value * Self.powersOfTen[exponent]
            return negative ? -value : value
        }
        if !truncated, let value = Self.decimal(mantissa, timesTenTo: exponent) {
            return negative ? -value : value
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let value = Double(text) else { throw error("bad number '\(text)'") }
        return value
    }
}
