import Foundation
import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// String tensors: the table, the public API, files, sessions and the operators that read text.
@Suite struct StringTests {
    static func value(_ name: String, _ type: DataType, _ shape: [Int]?) -> Value {
        Value(name: name, type: TensorType(dataType: type, shape: shape.map { Shape(fixed: $0) }))
    }

    static func strings(_ values: [String], _ shape: [Int]? = nil) -> Tensor {
        try! Tensor(strings: values, shape: shape ?? [values.count])
    }

    static func evaluate(_ op: String, domain: String = "", opset: Int = 20, _ inputs: [Tensor],
                         _ attributes: [String: Attribute] = [:], outputs: Int = 1) throws -> [Tensor] {
        let node = Node(name: "n", opType: op, domain: domain, inputs: inputs.indices.map { "x\($0)" },
                        outputs: (0..<outputs).map { "y\($0)" }, attributes: attributes)
        return try OperatorRegistry.evaluate(node, opset: opset, inputs: inputs)
    }

    /// A one-node model with string input `x` of `shape` (nil: any).
    static func session(_ nodes: [Node], inputs: [Value], outputs: [Value], initializers: [(String, Tensor)] = [],
                        opsets: [String: Int] = ["": 20]) throws -> InferenceSession {
        try InferenceSession(model: Model(opsetImports: opsets, graph: Graph(
            nodes: nodes, inputs: inputs, outputs: outputs, initializers: initializers)))
    }

    // MARK: - The table and the tensor

    @Test func tableInternsAndExtendsItsParent() throws {
        let session = StringTable()
        let a = session.intern("a")
        #expect(session.intern("a") == a)
        #expect(session.intern("") == 0)
        let run = StringTable(parent: session)
        #expect(run.intern("a") == a, "a run answers the session's strings with the session's handles")
        let b = run.intern("b")
        #expect(b != a && run.intern("b") == b)
        #expect(try run.string(b) == "b")
        #expect(try run.string(0) == "")
        #expect(session.lookup("b") == nil, "a run's strings stay out of the session table")
        #expect(run.extends(session) && !session.extends(run))
        let error = #expect(throws: OnyxError.self) { try run.string(99) }
        #expect(error?.code == .invalidInput)
        // A table made before its parent grew does not answer the parent's later strings.
        let late = session.intern("late")
        #expect(run.lookup("late") == nil)
        #expect(run.intern("late") != late || !run.extends(session))
    }

    @Test func tensorRoundTrips() throws {
        let t = try Tensor(strings: ["GET /", "", "ünïcödé", "GET /"], shape: [2, 2])
        #expect(t.dataType == .string && t.byteCount == 32)
        #expect(try t.strings() == ["GET /", "", "ünïcödé", "GET /"])
        #expect(try Tensor.zeros(.string, shape: [2]).strings() == ["", ""])
        let rebased = try t.rebased(into: StringTable())
        #expect(try rebased.strings() == t.strings())
        #expect(throws: OnyxError.self) { try Tensor(strings: ["a"], shape: [2]) }
        #expect(throws: OnyxError.self) { try Tensor(dataType: .string, shape: [1], bytes: UnsafeRawBufferPointer(start: nil, count: 0)) }
        #expect(throws: OnyxError.self) { try Tensor(shape: [1], scalars: [Float(1)]).strings() }
    }

    @Test func npyAndTensorProtoRoundTrip() throws {
        let t = try Tensor(strings: ["select * from users", "ok", "日本"], shape: [3])
        let npy = try Tensor(npy: t.npyBytes())
        #expect(npy.shape == [3])
        #expect(try npy.strings() == t.strings())
        let proto = try Tensor.decodeTensorProto(t.onnxTensorProtoBytes(name: "x"))
        #expect(proto.name == "x")
        #expect(try proto.tensor.strings() == t.strings())
        // NumPy's byte strings (|S) read as UTF-8.
        var header = "{'descr': '|S3', 'fortran_order': False, 'shape': (2,), }"
        header += String(repeating: " ", count: (64 - (10 + header.utf8.count + 1) % 64) % 64) + "\n"
        let bytes: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(header.utf8.count), 0] + Array(header.utf8)
            + Array("abc".utf8) + Array("d".utf8) + [0, 0]
        #expect(try Tensor(npy: bytes).strings() == ["abc", "d"])
        let short = #expect(throws: OnyxError.self) { try Tensor(npy: Array(bytes.dropLast(2))) }
        #expect(short?.message.contains("needs 6 bytes") == true)
    }

    // MARK: - Sessions

    @Test func stringsFlowThroughElementMovers() throws {
        // Gather picks strings by index, Concat joins them with a constant, Equal compares to a constant.
        let session = try Self.session(
            [
                Node(name: "gather", opType: "Gather", inputs: ["x", "picks"], outputs: ["g"]),
                Node(name: "concat", opType: "Concat", inputs: ["g", "tail"], outputs: ["y"], attributes: ["axis": .int(0)]),
                Node(name: "equal", opType: "Equal", inputs: ["y", "probe"], outputs: ["same"]),
                Node(name: "reshape", opType: "Reshape", inputs: ["y", "shape"], outputs: ["grid"]),
                Node(name: "transpose", opType: "Transpose", inputs: ["grid"], outputs: ["flipped"]),
            ],
            inputs: [Self.value("x", .string, [3])],
            outputs: [Self.value("y", .string, nil), Self.value("same", .bool, nil), Self.value("flipped", .string, nil)],
            initializers: [
                ("picks", try Tensor(shape: [3], scalars: [2, 0, 2] as [Int64])),
                ("tail", Self.strings(["end"])),
                ("probe", Self.strings(["c"])),
                ("shape", try Tensor(shape: [2], scalars: [2, 2] as [Int64])),
            ])
        for _ in 0..<2 {
            let out = try session.run(["x": Self.strings(["a", "b", "c"])])
            #expect(try out["y"]!.strings() == ["c", "a", "c", "end"])
            #expect(try out["same"]!.scalars(as: Bool.self) == [true, false, true, false])
            #expect(try out["flipped"]!.strings() == ["c", "c", "a", "end"])
        }
    }

    @Test func stringsThroughIfBranches() throws {
        let thenBranch = Graph(
            nodes: [Node(name: "upper", opType: "StringNormalizer", inputs: ["x"], outputs: ["t"],
                         attributes: ["case_change_action": .string("UPPER")])],
            inputs: [], outputs: [Self.value("t", .string, nil)])
        let elseBranch = Graph(
            nodes: [Node(name: "same", opType: "Identity", inputs: ["x"], outputs: ["e"])],
            inputs: [], outputs: [Self.value("e", .string, nil)])
        let session = try Self.session(
            [Node(name: "if", opType: "If", inputs: ["cond"], outputs: ["y"],
                  attributes: ["then_branch": .graph(thenBranch), "else_branch": .graph(elseBranch)])],
            inputs: [Self.value("cond", .bool, []), Self.value("x", .string, [2])],
            outputs: [Self.value("y", .string, nil)])
        let x = Self.strings(["abc", "Déf"])
        #expect(try session.run(["cond": Tensor(scalar: true), "x": x])["y"]!.strings() == ["ABC", "DÉF"])
        #expect(try session.run(["cond": Tensor(scalar: false), "x": x])["y"]!.strings() == ["abc", "Déf"])
    }

    @Test func numericOperatorsRefuseStrings() throws {
        let session = try Self.session(
            [Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["y"])],
            inputs: [Self.value("x", .string, [1])], outputs: [Self.value("y", .string, nil)])
        let error = #expect(throws: OnyxError.self) { try session.run(["x": Self.strings(["1"])]) }
        #expect(error?.code == .unsupportedDataType)
        #expect(error?.message.contains("string") == true, "\(String(describing: error))")
        let wrongType = #expect(throws: OnyxError.self) {
            try session.run(["x": try Tensor(shape: [1], scalars: [Float(1)])])
        }
        #expect(wrongType?.message == "input 'x' must be string, got float")
    }

    @Test func stringConstantsAndInitializersDecode() throws {
        // A model written and read back: a string initializer and a Constant of value_strings.
        let model = Model(opsetImports: ["": 20], graph: Graph(
            nodes: [
                Node(name: "words", opType: "Constant", inputs: [], outputs: ["w"], attributes: ["value_strings": .strings(["x", "yy"])]),
                Node(name: "join", opType: "StringConcat", inputs: ["w", "suffix"], outputs: ["y"]),
            ],
            inputs: [Self.value("suffix", .string, [1])], outputs: [Self.value("y", .string, nil)],
            initializers: []))
        let decoded = try Model(bytes: model.serializedBytes())
        let session = try InferenceSession(model: decoded)
        #expect(try session.run(["suffix": Self.strings(["!"])])["y"]!.strings() == ["x!", "yy!"])
    }

    // MARK: - Operators

    @Test func castBetweenStringsAndNumbers() throws {
        let text = Self.strings(["3.5", "-1e2", "INF", "-inf", "NaN", " 7 "])
        let floats = try Self.evaluate("Cast", opset: 19, [text], ["to": .int(Int(DataType.float.rawValue))])[0]
        let values = try floats.scalars(as: Float.self)
        #expect(Array(values.prefix(4)) == [3.5, -100, .infinity, -.infinity] && values[4].isNaN && values[5] == 7)
        let ints = try Self.evaluate("Cast", opset: 19, [Self.strings(["42", "-7", "100.5"])], ["to": .int(Int(DataType.int64.rawValue))])[0]
        #expect(try ints.scalars(as: Int64.self) == [42, -7, 100])
        let back = try Self.evaluate("Cast", opset: 19, [try Tensor(shape: [3], scalars: [0.1, 2, -Float.infinity])],
                                     ["to": .int(Int(DataType.string.rawValue))])[0]
        #expect(try back.strings() == ["0.1", "2.0", "-inf"])
        let error = #expect(throws: OnyxError.self) {
            try Self.evaluate("Cast", opset: 19, [Self.strings(["GET /"])], ["to": .int(Int(DataType.float.rawValue))])
        }
        #expect(error?.message == "Cast: 'GET /' is not a number")
    }

    @Test func stringNormalizer() throws {
        let x = Self.strings(["Monday", "tuesday", "MONDAY", "Wed"], [1, 4])
        let y = try Self.evaluate("StringNormalizer", opset: 10, [x],
                                  ["stopwords": .strings(["monday"]), "case_change_action": .string("LOWER")])[0]
        #expect(y.shape == [1, 2])
        #expect(try y.strings() == ["tuesday", "wed"])
        let sensitive = try Self.evaluate("StringNormalizer", opset: 10, [x],
                                          ["stopwords": .strings(["Monday"]), "is_case_sensitive": .int(1)])[0]
        #expect(try sensitive.strings() == ["tuesday", "MONDAY", "Wed"])
        let none = try Self.evaluate("StringNormalizer", opset: 10, [Self.strings(["monday"])], ["stopwords": .strings(["monday"])])[0]
        #expect(none.shape == [1])
        #expect(try none.strings() == [""])
        let bad = #expect(throws: OnyxError.self) {
            try Self.evaluate("StringNormalizer", opset: 10, [x], ["case_change_action": .string("TITLE")])
        }
        #expect(bad?.code == .invalidAttribute)
        let shape = #expect(throws: OnyxError.self) {
            try Self.evaluate("StringNormalizer", opset: 10, [Self.strings(["a", "b"], [2, 1])])
        }
        #expect(shape?.message == "StringNormalizer: X must be [C] or [1, C], got [2,1]")
    }

    @Test func stringSplitAndConcat() throws {
        let split = try Self.evaluate("StringSplit", [Self.strings(["a,b,,c", "d"])], ["delimiter": .string(",")], outputs: 2)
        #expect(split[0].shape == [2, 4])
        #expect(try split[0].strings() == ["a", "b", "", "c", "d", "", "", ""])
        #expect(try split[1].scalars(as: Int64.self) == [4, 1])
        let spaces = try Self.evaluate("StringSplit", [Self.strings(["  one two  three "])], ["maxsplit": .int(1)], outputs: 2)
        #expect(try spaces[0].strings() == ["one", "two  three"])
        let joined = try Self.evaluate("StringConcat", [Self.strings(["a", "b"], [2, 1]), Self.strings(["1", "2", "3"])])[0]
        #expect(joined.shape == [2, 3])
        #expect(try joined.strings() == ["a1", "a2", "a3", "b1", "b2", "b3"])
    }

    @Test func regexFullMatch() throws {
        let y = try Self.evaluate("RegexFullMatch", [Self.strings(["www.google.com", "www.bbc.co.uk", "union select"])],
                                  ["pattern": .string(#"www\.[\w.-]+\.\bcom\b"#)])[0]
        #expect(try y.scalars(as: Bool.self) == [true, false, false])
        let bad = #expect(throws: OnyxError.self) {
            try Self.evaluate("RegexFullMatch", [Self.strings(["a"])], ["pattern": .string("(unclosed")])
        }
        #expect(bad?.code == .invalidAttribute)
    }

    @Test func tokenizer() throws {
        func tokenize(_ x: Tensor, _ attributes: [String: Attribute]) throws -> Tensor {
            var all: [String: Attribute] = ["mark": .int(0), "mincharnum": .int(1), "pad_value": .string("#")]
            all.merge(attributes) { $1 }
            return try Self.evaluate("Tokenizer", domain: "com.microsoft", opset: 1, [x], all)[0]
        }
        let x = Self.strings(["Hello World", "I love computer science !"])
        let bySpace = try tokenize(x, ["separators": .strings([" "])])
        #expect(bySpace.shape == [2, 5])
        #expect(try bySpace.strings() == ["Hello", "World", "#", "#", "#", "I", "love", "computer", "science", "!"])
        let words = try tokenize(Self.strings(["GET /etc/passwd?id=1 OR 1=1"], [1, 1]), ["tokenexp": .string(#"\b\w\w+\b"#)])
        #expect(words.shape == [1, 1, 5])
        #expect(try words.strings() == ["GET", "etc", "passwd", "id", "OR"])
        let marked = try tokenize(Self.strings(["ab"]), ["separators": .strings([""]), "mark": .int(1)])
        #expect(try marked.strings() == ["\u{02}", "a", "b", "\u{03}"])
        let long = try tokenize(Self.strings(["a bb ccc"]), ["separators": .strings([" "]), "mincharnum": .int(2)])
        #expect(try long.strings() == ["bb", "ccc"])
        let neither = #expect(throws: OnyxError.self) { try tokenize(x, [:]) }
        #expect(neither?.code == .invalidAttribute)
    }

    @Test func tfidfOverStringTokens() throws {
        // Pool: unigrams "select", "from" and the bigram ("union", "select"); "select" is numbered once.
        let attributes: [String: Attribute] = [
            "pool_strings": .strings(["select", "from", "union", "select"]), "ngram_counts": .ints([0, 2]),
            "ngram_indexes": .ints([0, 1, 2]), "min_gram_length": .int(1), "max_gram_length": .int(2),
            "max_skip_count": .int(0), "mode": .string("TF"),
        ]
        let tokens = Self.strings(["union", "select", "a", "from", "select", "#", "#", "#"], [2, 4])
        let y = try Self.evaluate("TfIdfVectorizer", opset: 9, [tokens], attributes)[0]
        #expect(y.shape == [2, 3])
        #expect(try y.scalars(as: Float.self) == [1, 1, 1, 1, 0, 0])
        let ints = #expect(throws: OnyxError.self) {
            try Self.evaluate("TfIdfVectorizer", opset: 9, [try Tensor(shape: [1], scalars: [Int64(1)])], attributes)
        }
        #expect(ints?.message == "TfIdfVectorizer: X must be string with pool_strings, found int64")
    }

    @Test func classPatternsScanAsRegexMatches() throws {
        let texts = ["GET /etc/passwd?id=1 OR 1=1", "  ünï cödé\t-x_y.z ", "", "a-b-c", "tab\tand\nnewline", "日本 語 abc123"]
        for source in ["[a-zA-Z0-9_]+", #"\w+"#, ".", "[^a-z]", #"\s+"#, #"[a-c\-x]+"#, #"[\w.]+"#, #"[^\s]+"#, #"\d"#, "x"] {
            let simple = try #require(ClassPattern(source), "\(source) should be a class pattern")
            let regex = try Regex(source).matchingSemantics(.unicodeScalar).asciiOnlyWordCharacters().asciiOnlyDigits().asciiOnlyWhitespace()
            for text in texts {
                let expected = text.matches(of: regex).map { String(text[$0.range]) }
                #expect(simple.matches(in: text).map { String(text[$0]) } == expected, "\(source) on \(text)")
                #expect(simple.matchesWhole(text) == ((try? regex.wholeMatch(in: text)) != nil), "\(source) whole \(text)")
            }
        }
        for source in [#"\b\w\w+\b"#, "(a)+", "a|b", "[ü]+", "a+b", "[a-", "", "+", #"\p{L}+"#] {
            #expect(ClassPattern(source) == nil, "\(source) is not a single class")
        }
    }
}
