import Foundation
import Onyx
import Testing
@testable import OnyxServe

/// Hostile `/infer` bodies straight into the decoder the routes use: each must end in a 400 naming
/// the problem, never a trap, a hang or an allocation past the element limit. Inputs the fuzzers
/// (`tools/fuzz.sh json|binary`) found are kept here byte for byte.
@Suite struct HostileRequestTests {
    static let limit = 1 << 16

    /// The error message for `body`, or "no error".
    static func outcome(_ body: [UInt8], headerLength: Int? = nil, limit: Int = limit) -> String {
        do {
            _ = try InferenceProtocol.decodeRequest(body, headerLength: headerLength, maxElements: limit)
            return "no error"
        } catch let error as HandlerError {
            #expect(error.status == 400, "\(error.message)")
            return error.message
        } catch {
            return "unexpected \(type(of: error)): \(error)"
        }
    }

    static func outcome(_ text: String, headerLength: Int? = nil, limit: Int = limit) -> String {
        outcome(Array(text.utf8), headerLength: headerLength, limit: limit)
    }

    static func input(shape: String, datatype: String = "FP32", rest: String) -> String {
        "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"\(datatype)\",\"shape\":\(shape),\(rest)}]}"
    }

    @Test func deepNestingIsRefusedNotRecursedInto() {
        let depth = 100_000
        let body = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        #expect(Self.outcome(body).contains("nesting deeper than 64"))
        let objects = String(repeating: "{\"a\":", count: depth) + "1" + String(repeating: "}", count: depth)
        #expect(Self.outcome(objects).contains("nesting deeper than 64"))
    }

    @Test func shapesThatOverflowOrExceedTheLimit() {
        let cases: [(String, String)] = [
            ("[4294967296,4294967296]", "more than the limit"),
            ("[3037000500,3037000500,2]", "more than the limit"),
            ("[65537]", "more than the limit"),
            ("[-1]", "non-negative integers"),
            ("[1.5]", "non-negative integers"),
            ("[1e300]", "non-negative integers"),
            ("[\"2\"]", "non-negative integers"),
        ]
        for (shape, expected) in cases {
            let message = Self.outcome(Self.input(shape: shape, rest: "\"data\":[1]"))
            #expect(message.contains(expected), "shape \(shape): \(message)")
            let binary = Self.outcome(Self.input(shape: shape, rest: "\"parameters\":{\"binary_data_size\":0}"), headerLength: nil)
            #expect(binary.contains(expected) || binary.contains("binary"), "binary shape \(shape): \(binary)")
        }
    }

    @Test func zeroElementTensorsWithHugeExtentsAreRefused() {
        // 0 × 2^40 × 2^40 holds no elements, but strides and later products over the trailing
        // extents overflow: such shapes are refused like any shape past the limit.
        let message = Self.outcome(Self.input(shape: "[0,1099511627776,1099511627776]", rest: "\"data\":[]"))
        #expect(message.contains("1099511627776"), "\(message)")
        let header = Self.input(shape: "[0,1099511627776,1099511627776]", rest: "\"parameters\":{\"binary_data_size\":0}")
        let binary = Self.outcome(Array(header.utf8), headerLength: header.utf8.count)
        #expect(binary.contains("1099511627776"), "\(binary)")
        // An empty tensor of sane extents is still fine.
        #expect(Self.outcome(Self.input(shape: "[0,3]", rest: "\"data\":[]")) == "no error")
    }

    @Test func tooManyNumbersAreRefusedWhileParsing() {
        let numbers = Array(repeating: "1", count: 100).joined(separator: ",")
        let message = Self.outcome(Self.input(shape: "[100]", rest: "\"data\":[\(numbers)]"), limit: 10)
        #expect(message.contains("more than 10 numbers"), "\(message)")
        // Nested arrays of booleans are not numbers to the parser, but the flattening counts them.
        let bools = Array(repeating: "[true]", count: 100).joined(separator: ",")
        let nested = Self.outcome(Self.input(shape: "[100]", datatype: "BOOL", rest: "\"data\":[\(bools)]"), limit: 10)
        #expect(nested.contains("limit of 10"), "\(nested)")
    }

    @Test func headerLengthsThatDoNotFitTheBody() {
        let json = Self.input(shape: "[1]", rest: "\"parameters\":{\"binary_data_size\":4}")
        let body = Array(json.utf8) + [0, 0, 128, 63]
        #expect(Self.outcome(body, headerLength: json.utf8.count) == "no error")
        #expect(Self.outcome(body, headerLength: body.count + 1).contains("does not fit"))
        #expect(Self.outcome(body, headerLength: -1).contains("does not fit"))
        #expect(Self.outcome(body, headerLength: Int.max).contains("does not fit"))
        #expect(Self.outcome(body, headerLength: json.utf8.count - 1).contains("JSON"))
        #expect(Self.outcome(body, headerLength: 0).contains("JSON"))
        // Binary data that no input claims, and sizes running past the end.
        #expect(Self.outcome(body + [1], headerLength: json.utf8.count).contains("no input claims"))
        let long = Self.input(shape: "[1]", rest: "\"parameters\":{\"binary_data_size\":1000000}")
        #expect(Self.outcome(Array(long.utf8) + [0, 0, 128, 63], headerLength: long.utf8.count).contains("runs past the end"))
        let negative = Self.input(shape: "[1]", rest: "\"parameters\":{\"binary_data_size\":-4}")
        #expect(Self.outcome(Array(negative.utf8), headerLength: negative.utf8.count).contains("non-negative"))
    }

    @Test func binaryDataMustMatchTheShapeAndType() {
        let json = Self.input(shape: "[2]", datatype: "BOOL", rest: "\"parameters\":{\"binary_data_size\":2}")
        #expect(Self.outcome(Array(json.utf8) + [1, 2], headerLength: json.utf8.count).contains("0 or 1"))
        let wrong = Self.input(shape: "[3]", datatype: "INT64", rest: "\"parameters\":{\"binary_data_size\":16}")
        #expect(Self.outcome(Array(wrong.utf8) + [UInt8](repeating: 0, count: 16), headerLength: wrong.utf8.count).contains("needs 24 bytes"))
    }

    @Test func malformedJSONAndStrings() {
        let bodies: [[UInt8]] = [
            [], Array("{".utf8), Array("\"".utf8), Array("\"\\".utf8), Array("\"\\u12".utf8), Array("[1,".utf8),
            Array("-".utf8), Array("1e".utf8), Array("1.".utf8), Array("NaNx".utf8), Array("[-Infinit]".utf8),
            [0xFF, 0xFE], Array("{\"inputs\":[{\"name\":\"\\ud800\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}],\"x\":\"\u{1}\"}".utf8),
        ]
        for body in bodies {
            #expect(Self.outcome(body) != "no error", "\(body)")
        }
        // Lone surrogates become U+FFFD rather than a trap.
        let lone = "{\"id\":\"\\udc00\\ud800\",\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}]}"
        #expect(Self.outcome(lone) == "no error")
    }

    @Test func valuesOutOfRangeForTheDatatype() {
        let cases: [(String, String, String)] = [
            ("UINT8", "[256]", "out of range"),
            ("INT8", "[-129]", "out of range"),
            ("UINT64", "[-1]", "out of range"),
            ("INT64", "[9223372036854775808]", "must be integers"),
            ("INT32", "[1.5]", "must be integers"),
            ("BOOL", "[2]", "true/false"),
            ("FP32", "[\"a\"]", "only numbers or booleans"),
            ("FP32", "[null]", "only numbers or booleans"),
            ("BYTES", "[1]", "BYTES data must be strings"),
        ]
        for (type, data, expected) in cases {
            let message = Self.outcome(Self.input(shape: "[1]", datatype: type, rest: "\"data\":\(data)"))
            #expect(message.contains(expected), "\(type) \(data): \(message)")
        }
        // Huge doubles saturate to ±inf for FP32/FP16, as a float conversion does.
        #expect(Self.outcome(Self.input(shape: "[2]", datatype: "FP16", rest: "\"data\":[1e300,-1e300]")) == "no error")
    }

    @Test func nanAndInfinityOnlyWhereAFloatIsExpected() {
        let cases: [(String, String, String, String)] = [
            ("INT32", "[1]", "[NaN]", "must be integers"),
            ("INT64", "[2]", "[Infinity,1]", "must be integers"),
            ("UINT8", "[1]", "[-Infinity]", "must be integers"),
            ("BOOL", "[1]", "[NaN]", "true/false"),
            ("FP32", "[NaN]", "[1]", "non-negative integers"),
            ("FP32", "[Infinity]", "[1]", "non-negative integers"),
        ]
        for (type, shape, data, expected) in cases {
            let message = Self.outcome(Self.input(shape: shape, datatype: type, rest: "\"data\":\(data)"))
            #expect(message.contains(expected), "\(type) \(shape) \(data): \(message)")
        }
        let size = Self.input(shape: "[1]", rest: "\"parameters\":{\"binary_data_size\":NaN}")
        #expect(Self.outcome(Array(size.utf8) + [0, 0, 128, 63], headerLength: size.utf8.count) != "no error")
        for type in ["FP32", "FP64", "FP16"] {
            #expect(Self.outcome(Self.input(shape: "[3]", datatype: type, rest: "\"data\":[NaN,Infinity,-Infinity]")) == "no error")
        }
    }

    @Test func dataLengthMustMatchTheShape() {
        for (shape, data, expected) in [("[2,3]", "[1,2,3,4,5]", "needs 6 elements but \"data\" has 5"),
                                        ("[2,3]", "[1,2,3,4,5,6,7]", "needs 6 elements but \"data\" has 7"),
                                        ("[]", "[]", "needs 1 elements but \"data\" has 0"),
                                        ("[0]", "[1]", "needs 0 elements but \"data\" has 1")] {
            let message = Self.outcome(Self.input(shape: shape, rest: "\"data\":\(data)"))
            #expect(message.contains(expected), "\(shape) \(data): \(message)")
        }
    }
}
