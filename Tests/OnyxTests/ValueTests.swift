import Foundation
import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators
import OnyxConformance

/// Sequences, maps and optionals: types, protos, sessions, and the operators on them.
@Suite struct ValueTests {
    static func tensorValue(_ name: String, _ type: DataType, _ shape: [Int]?) -> Value {
        Value(name: name, type: TensorType(dataType: type, shape: shape.map { Shape(fixed: $0) }))
    }

    static func floats(_ values: [Float], _ shape: [Int]? = nil) -> Tensor {
        try! Tensor(shape: shape ?? [values.count], scalars: values)
    }

    static func session(_ nodes: [Node], inputs: [Value], outputs: [Value], initializers: [(String, Tensor)] = [],
                        opsets: [String: Int] = ["": 18]) throws -> InferenceSession {
        try InferenceSession(model: Model(opsetImports: opsets, graph: Graph(
            nodes: nodes, inputs: inputs, outputs: outputs, initializers: initializers)))
    }

    // MARK: - Protos and types

    @Test func protosRoundTrip() throws {
        let sequence = OnnxValue.sequence([.tensor(Self.floats([1, 2])), .tensor(Self.floats([3], [1, 1]))])
        let decoded = try OnnxValue.decodeProto(sequence.onnxProtoBytes(name: "s"), as: .sequence(.tensor(.float)))
        #expect(decoded.name == "s")
        #expect(ConformanceSuiteShim.equal(decoded.value, sequence))

        let map = OnnxValue.map(keys: try Tensor(strings: ["a", "b"], shape: [2]), values: Self.floats([0.25, 0.75]))
        let maps = OnnxValue.sequence([map, map])
        let type = ValueType.sequence(.map(key: .string, value: .tensor(.float)))
        #expect(ConformanceSuiteShim.equal(try OnnxValue.decodeProto(maps.onnxProtoBytes(name: "m"), as: type).value, maps))

        for optional in [OnnxValue.optional(nil), .optional(.tensor(Self.floats([5])))] {
            let back = try OnnxValue.decodeProto(optional.onnxProtoBytes(name: "o"), as: .optional(.tensor(.float))).value
            #expect(ConformanceSuiteShim.equal(back, optional))
        }
        // The proto must match the declared type.
        let wrong = #expect(throws: OnyxError.self) {
            try OnnxValue.decodeProto(sequence.onnxProtoBytes(name: "s"), as: .sequence(.tensor(.int64)))
        }
        #expect(wrong?.message.contains("holds float") == true)
        #expect(throws: OnyxError.self) { try OnnxValue.decodeProto([0xFF, 0xFF, 0xFF], as: .sequence(.tensor(.float))) }
    }

    @Test func declaredTypesSurviveTheModelFile() throws {
        let graph = Graph(
            nodes: [Node(name: "id", opType: "Identity", inputs: ["s"], outputs: ["t"])],
            inputs: [Value(name: "s", valueType: .sequence(.map(key: .int64, value: .tensor(.float))))],
            outputs: [Value(name: "t", valueType: .optional(.sequence(.tensor(.string))))])
        let decoded = try Model(bytes: Model(opsetImports: ["": 18], graph: graph).serializedBytes())
        #expect(decoded.graph.inputs[0].valueType == .sequence(.map(key: .int64, value: .tensor(.float))))
        #expect(decoded.graph.outputs[0].valueType == .optional(.sequence(.tensor(.string))))
        #expect(decoded.graph.inputs[0].type == nil)
    }

    // MARK: - Sessions

    @Test func sequenceOperatorsThroughASession() throws {
        // [x, y] → insert z at 1 → erase the last → at(-1), length, and the whole joined along axis 0.
        let session = try Self.session(
            [
                Node(name: "make", opType: "SequenceConstruct", inputs: ["x", "y"], outputs: ["s"]),
                Node(name: "insert", opType: "SequenceInsert", inputs: ["s", "z", "one"], outputs: ["s2"]),
                Node(name: "erase", opType: "SequenceErase", inputs: ["s2"], outputs: ["s3"]),
                Node(name: "at", opType: "SequenceAt", inputs: ["s3", "minusOne"], outputs: ["last"]),
                Node(name: "length", opType: "SequenceLength", inputs: ["s3"], outputs: ["count"]),
                Node(name: "join", opType: "ConcatFromSequence", inputs: ["s3"], outputs: ["joined"], attributes: ["axis": .int(0)]),
            ],
            inputs: [Self.tensorValue("x", .float, [2]), Self.tensorValue("y", .float, [2]), Self.tensorValue("z", .float, [2])],
            outputs: [Self.tensorValue("last", .float, nil), Self.tensorValue("count", .int64, nil), Self.tensorValue("joined", .float, nil),
                      Value(name: "s3", valueType: .sequence(.tensor(.float)))],
            initializers: [("one", Tensor(scalar: Int64(1))), ("minusOne", Tensor(scalar: Int64(-1)))])
        let out = try session.run(values: ["x": .tensor(Self.floats([1, 2])), "y": .tensor(Self.floats([3, 4])),
                                           "z": .tensor(Self.floats([5, 6]))])
        #expect(try out["last"]?.tensor?.scalars(as: Float.self) == [5, 6])
        #expect(try out["count"]?.tensor?.scalars(as: Int64.self) == [2])
        #expect(try out["joined"]?.tensor?.scalars(as: Float.self) == [1, 2, 5, 6])
        #expect(out["s3"]?.sequence?.count == 2)
        // The tensor API refuses a model whose output is a sequence, and says what to use.
        let refused = #expect(throws: OnyxError.self) {
            try session.run(["x": Self.floats([1, 2]), "y": Self.floats([3, 4]), "z": Self.floats([5, 6])])
        }
        #expect(refused?.message == "output 's3' is a seq(tensor(float)), not a tensor; run the model with run(values:)")
    }

    @Test func sequenceInputsAndOptionals() throws {
        let session = try Self.session(
            [
                Node(name: "length", opType: "SequenceLength", inputs: ["s"], outputs: ["n"]),
                Node(name: "wrap", opType: "Optional", inputs: ["s"], outputs: ["o"]),
                Node(name: "has", opType: "OptionalHasElement", inputs: ["maybe"], outputs: ["present"]),
                Node(name: "split", opType: "SplitToSequence", inputs: ["x"], outputs: ["pieces"], attributes: ["keepdims": .int(0)]),
            ],
            inputs: [Value(name: "s", valueType: .sequence(.tensor(.int64))), Value(name: "maybe", valueType: .optional(.tensor(.float))),
                     Self.tensorValue("x", .float, [3, 2])],
            outputs: [Self.tensorValue("n", .int64, nil), Value(name: "o", valueType: .optional(.sequence(.tensor(.int64)))),
                      Self.tensorValue("present", .bool, nil), Value(name: "pieces", valueType: .sequence(.tensor(.float)))])
        let s = OnnxValue.sequence([.tensor(Tensor(scalar: Int64(7))), .tensor(Tensor(scalar: Int64(8))), .tensor(Tensor(scalar: Int64(9)))])
        let x = OnnxValue.tensor(Self.floats([1, 2, 3, 4, 5, 6], [3, 2]))
        for maybe in [OnnxValue.optional(nil), .optional(.tensor(Self.floats([1])))] {
            let out = try session.run(values: ["s": s, "maybe": maybe, "x": x])
            #expect(try out["n"]?.tensor?.scalars(as: Int64.self) == [3])
            #expect(try out["present"]?.tensor?.scalars(as: Bool.self) == [maybe.description != "none"])
            guard case .optional(let inner?)? = out["o"] else { Issue.record("o is not a full optional"); continue }
            #expect(inner.sequence?.count == 3)
            let pieces = out["pieces"]?.sequence ?? []
            #expect(pieces.count == 3 && pieces.allSatisfy { $0.tensor?.shape == [2] })
            #expect(try pieces.last?.tensor?.scalars(as: Float.self) == [5, 6])
        }
        // A value of the wrong type is refused with the declared type named.
        let wrong = #expect(throws: OnyxError.self) {
            try session.run(values: ["s": .sequence([.tensor(Self.floats([1]))]), "maybe": .optional(nil), "x": x])
        }
        #expect(wrong?.message == "input 's' must be seq(tensor(int64)), got seq(tensor(float))")
        let tensorAPI = #expect(throws: OnyxError.self) { try session.run(["s": Self.floats([1]), "x": Self.floats([1])]) }
        #expect(tensorAPI?.message.contains("pass it with run(values:)") == true)
    }

    @Test func zipMapGivesOneMapPerRow() throws {
        for labels in [Attribute.ints([10, 20]), .strings(["benign", "malicious"])] {
            let isString = if case .strings = labels { true } else { false }
            let session = try Self.session(
                [Node(name: "zip", opType: "ZipMap", domain: "ai.onnx.ml", inputs: ["p"], outputs: ["maps"],
                      attributes: [isString ? "classlabels_strings" : "classlabels_int64s": labels])],
                inputs: [Self.tensorValue("p", .float, [2, 2])],
                outputs: [Value(name: "maps", valueType: .sequence(.map(key: isString ? .string : .int64, value: .tensor(.float))))],
                opsets: ["": 18, "ai.onnx.ml": 1])
            let out = try session.run(values: ["p": .tensor(Self.floats([0.9, 0.1, 0.2, 0.8], [2, 2]))])
            let maps = out["maps"]?.sequence ?? []
            #expect(maps.count == 2)
            guard case .map(let keys, let values)? = maps.last else { Issue.record("not a map"); continue }
            #expect(try values.scalars(as: Float.self) == [0.2, 0.8])
            if isString {
                #expect(try keys.strings() == ["benign", "malicious"])
            } else {
                #expect(try keys.scalars(as: Int64.self) == [10, 20])
            }
        }
        let mismatch = #expect(throws: OnyxError.self) {
            try Self.session(
                [Node(name: "zip", opType: "ZipMap", domain: "ai.onnx.ml", inputs: ["p"], outputs: ["maps"],
                      attributes: ["classlabels_int64s": .ints([1, 2, 3])])],
                inputs: [Self.tensorValue("p", .float, [1, 2])],
                outputs: [Value(name: "maps", valueType: .sequence(.map(key: .int64, value: .tensor(.float))))],
                opsets: ["": 18, "ai.onnx.ml": 1]).run(values: ["p": .tensor(Self.floats([0.5, 0.5], [1, 2]))])
        }
        #expect(mismatch?.message.contains("X must be [N, 3] for 3 labels") == true)
    }

    @Test func dictVectorizerAndCastMap() throws {
        let map = OnnxValue.map(keys: try Tensor(strings: ["b", "zzz", "a"], shape: [3]), values: Self.floats([2, 9, 1]))
        let session = try Self.session(
            [Node(name: "dv", opType: "DictVectorizer", domain: "ai.onnx.ml", inputs: ["m"], outputs: ["row"],
                  attributes: ["string_vocabulary": .strings(["a", "b", "c"])])],
            inputs: [Value(name: "m", valueType: .map(key: .string, value: .tensor(.float)))],
            outputs: [Self.tensorValue("row", .float, nil)], opsets: ["": 18, "ai.onnx.ml": 1])
        let row = try session.run(values: ["m": map])["row"]?.tensor
        #expect(row?.shape == [1, 3])
        #expect(try row?.scalars(as: Float.self) == [1, 2, 0])

        let castMap = try Self.session(
            [Node(name: "cm", opType: "CastMap", domain: "ai.onnx.ml", inputs: ["m"], outputs: ["row"],
                  attributes: ["map_form": .string("SPARSE"), "max_map": .int(4)])],
            inputs: [Value(name: "m", valueType: .map(key: .int64, value: .tensor(.float)))],
            outputs: [Self.tensorValue("row", .float, nil)], opsets: ["": 18, "ai.onnx.ml": 1])
        let sparse = OnnxValue.map(keys: try Tensor(shape: [2], scalars: [3, 1] as [Int64]), values: Self.floats([0.5, 7]))
        #expect(try castMap.run(values: ["m": sparse])["row"]?.tensor?.scalars(as: Float.self) == [0, 7, 0, 0.5])
        let outside = OnnxValue.map(keys: try Tensor(shape: [1], scalars: [9] as [Int64]), values: Self.floats([1]))
        let error = #expect(throws: OnyxError.self) { try castMap.run(values: ["m": outside]) }
        #expect(error?.message.contains("key 9 is outside the 4 columns") == true)
    }

    @Test func loopCarriesASequence() throws {
        // Loop 3 times, inserting the iteration number into a carried sequence.
        let body = Graph(
            nodes: [
                Node(name: "cast", opType: "Cast", inputs: ["i"], outputs: ["f"], attributes: ["to": .int(1)]),
                Node(name: "shape", opType: "Reshape", inputs: ["f", "one"], outputs: ["item"]),
                Node(name: "insert", opType: "SequenceInsert", inputs: ["acc", "item"], outputs: ["acc_out"]),
                Node(name: "keep", opType: "Identity", inputs: ["cond"], outputs: ["cond_out"]),
            ],
            inputs: [Self.tensorValue("i", .int64, []), Self.tensorValue("cond", .bool, []),
                     Value(name: "acc", valueType: .sequence(.tensor(.float)))],
            outputs: [Self.tensorValue("cond_out", .bool, []), Value(name: "acc_out", valueType: .sequence(.tensor(.float)))],
            initializers: [("one", try Tensor(shape: [1], scalars: [Int64(1)]))])
        let session = try Self.session(
            [
                Node(name: "empty", opType: "SequenceEmpty", inputs: [], outputs: ["start"]),
                Node(name: "loop", opType: "Loop", inputs: ["trips", "", "start"], outputs: ["result"], attributes: ["body": .graph(body)]),
                Node(name: "join", opType: "ConcatFromSequence", inputs: ["result"], outputs: ["joined"], attributes: ["axis": .int(0)]),
            ],
            inputs: [Self.tensorValue("trips", .int64, [])], outputs: [Self.tensorValue("joined", .float, nil)])
        #expect(try session.run(["trips": Tensor(scalar: Int64(3))])["joined"]?.scalars(as: Float.self) == [0, 1, 2])
    }
}

/// Structural equality of values through the conformance comparison, exact tolerances.
enum ConformanceSuiteShim {
    static func equal(_ a: OnnxValue, _ b: OnnxValue) -> Bool {
        OnyxConformance.ConformanceSuite.compare(expected: a, actual: b, tolerance: .init(rtol: 0, atol: 0)) == nil
    }
}
