import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// Identity, Dropout, Constant, Cast and CastLike against hand-computed results.
@Suite struct TensorOperatorTests {
    // MARK: - Helpers

    static func f(_ shape: [Int], _ values: [Float]) -> Tensor { try! Tensor(shape: shape, scalars: values) }

    static func node(_ op: String, _ inputs: [Tensor?], _ attributes: [String: Attribute], outputs: Int) -> Node {
        Node(
            name: op.lowercased(), opType: op,
            inputs: inputs.enumerated().map { $0.element == nil ? "" : "in\($0.offset)" },
            outputs: (0..<outputs).map { "out\($0)" }, attributes: attributes)
    }

    static func run(
        _ op: String, opset: Int = 17, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:],
        outputs: Int = 1, threads: Int = 1
    ) throws -> [Tensor] {
        try OperatorRegistry.evaluate(node(op, inputs, attributes, outputs: outputs), opset: opset, inputs: inputs, threads: threads)
    }

    static func kernel(_ op: String, opset: Int = 17, _ attributes: [String: Attribute] = [:], constants: [Tensor?] = []) throws -> any Kernel {
        let registration = try #require(OperatorRegistry.registration(domain: "", opType: op, opset: opset))
        let n = node(op, constants, attributes, outputs: 1)
        return try registration.make(NodeContext(node: n, opset: opset, constantInputs: constants, isa: .preferred))
    }

    /// Plans with `inputs` as run-time values (no constants) and runs.
    static func runWithoutConstants(_ kernel: any Kernel, _ inputs: [Tensor], outputs count: Int) throws -> [Tensor] {
        let planned = inputs.map { PlannedInput(descriptor: TensorDescriptor($0.dataType, $0.shape), constant: nil) }
        let descriptors = try kernel.outputDescriptors(for: planned)
        let outputs = descriptors.prefix(count).map { Tensor(zeros: $0.dataType, shape: $0.shape) }
        let inputViews: [TensorView?] = inputs.map { TensorView(dataType: $0.dataType, shape: $0.shape, data: $0.baseAddress) }
        let outputViews: [TensorView?] = outputs.map { TensorView(dataType: $0.dataType, shape: $0.shape, data: $0.baseAddress) }
        try withExtendedLifetime((inputs, outputs)) {
            try inputViews.withUnsafeBufferPointer { i in
                try outputViews.withUnsafeBufferPointer { o in
                    try kernel.run(KernelContext(inputs: i, outputs: o, workspace: nil, pool: ComputePool(threadCount: 1)))
                }
            }
        }
        return outputs
    }

    static func bytes(_ t: Tensor) -> [UInt8] { t.withUnsafeBytes { Array($0) } }

    static func message(_ body: () throws -> Void) -> String {
        do { try body() } catch let error as OnyxError { return error.message } catch { return "\(error)" }
        return "no error"
    }

    /// `values` as a tensor of `type` (each value must be representable in it).
    static func tensor(_ type: DataType, _ values: [Double]) -> Tensor {
        let shape = [values.count]
        switch type {
        case .float: return try! Tensor(shape: shape, scalars: values.map { Float($0) })
        case .double: return try! Tensor(shape: shape, scalars: values)
        case .float16: return try! Tensor(shape: shape, scalars: values.map { Float16($0) })
        case .int8: return try! Tensor(shape: shape, scalars: values.map { Int8($0) })
        case .uint8: return try! Tensor(shape: shape, scalars: values.map { UInt8($0) })
        case .int16: return try! Tensor(shape: shape, scalars: values.map { Int16($0) })
        case .uint16: return try! Tensor(shape: shape, scalars: values.map { UInt16($0) })
        case .int32: return try! Tensor(shape: shape, scalars: values.map { Int32($0) })
        case .uint32: return try! Tensor(shape: shape, scalars: values.map { UInt32($0) })
        case .int64: return try! Tensor(shape: shape, scalars: values.map { Int64($0) })
        case .uint64: return try! Tensor(shape: shape, scalars: values.map { UInt64($0) })
        case .bool: return try! Tensor(shape: shape, scalars: values.map { $0 != 0 })
        case .string: return try! Tensor(strings: values.map(\.description), shape: shape)
        case .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1,
             .int4, .uint4, .int2, .uint2:
            return try! Tensor(converting: try! Tensor(shape: shape, scalars: values), to: type)
        }
    }

    /// Whether `type` holds `value` exactly (for the types narrower than 8-bit integers and
    /// float16; every other type holds the small integers the tests use).
    static func holds(_ type: DataType, _ value: Double) -> Bool {
        switch type {
        case .int4: (-8...7).contains(value)
        case .uint4: (0...15).contains(value)
        case .int2: (-2...1).contains(value)
        case .uint2: (0...3).contains(value)
        case .float4e2m1: [0, 0.5, 1, 1.5, 2, 3, 4, 6].contains(abs(value))
        // 3 significant bits at most (E5M2 has 3, E4M3 4), and within the fnuz formats' ranges.
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz: [0, 1, 2, 3, 7, 128].contains(abs(value))
        case .float8e8m0: value > 0 && value.significand == 1
        default: true
        }
    }

    /// The elements of `t` as Doubles (bool as 0/1).
    static func doubles(_ t: Tensor) throws -> [Double] {
        switch t.dataType {
        case .float: return try t.scalars(as: Float.self).map { Double($0) }
        case .double: return try t.scalars(as: Double.self)
        case .float16: return try t.scalars(as: Float16.self).map { Double($0) }
        case .int8: return try t.scalars(as: Int8.self).map { Double($0) }
        case .uint8: return try t.scalars(as: UInt8.self).map { Double($0) }
        case .int16: return try t.scalars(as: Int16.self).map { Double($0) }
        case .uint16: return try t.scalars(as: UInt16.self).map { Double($0) }
        case .int32: return try t.scalars(as: Int32.self).map { Double($0) }
        case .uint32: return try t.scalars(as: UInt32.self).map { Double($0) }
        case .int64: return try t.scalars(as: Int64.self).map { Double($0) }
        case .uint64: return try t.scalars(as: UInt64.self).map { Double($0) }
        case .bool: return try t.scalars(as: Bool.self).map { $0 ? 1 : 0 }
        case .string: return try t.strings().map { Double($0) ?? .nan }
        case .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1,
             .int4, .uint4, .int2, .uint2:
            return try Tensor(converting: t, to: .double).scalars(as: Double.self)
        }
    }

    static func cast(_ x: Tensor, to type: DataType, opset: Int = 13, threads: Int = 1) throws -> Tensor {
        try run("Cast", opset: opset, [x], ["to": .int(Int(type.rawValue))], threads: threads)[0]
    }

    // MARK: - Identity

    @Test(arguments: DataType.allCases)
    func identityPassesEveryType(type: DataType) throws {
        let x = Self.tensor(type, [0, 1, 2, 3, 1, 0])
        let y = try Self.run("Identity", [x])[0]
        #expect(y.dataType == type && y.shape == [6] && Self.bytes(y) == Self.bytes(x))
        #expect(try Self.kernel("Identity").aliasing == .view(input: 0))
    }

    // MARK: - Dropout

    @Test func dropoutIsIdentityWithAnAllTrueMask() throws {
        let x = Self.f([2, 3], [1, -2, 3, -4, 5, -6])
        for opset in [10, 12, 13, 22] {
            let outputs = try Self.run("Dropout", opset: opset, [x], outputs: 2)
            #expect(Self.bytes(outputs[0]) == Self.bytes(x))
            #expect(outputs[1].dataType == .bool && outputs[1].shape == [2, 3])
            #expect(try outputs[1].scalars(as: Bool.self) == Array(repeating: true, count: 6))
        }
        // Opset 12+: ratio and training_mode inputs; training_mode false is inference.
        let explicit = try Self.run("Dropout", opset: 13, [x, Self.f([], [0.5]), Tensor(scalar: false)], outputs: 2)
        #expect(Self.bytes(explicit[0]) == Self.bytes(x))
        #expect(try explicit[1].scalars(as: Bool.self).allSatisfy { $0 })
        // Before opset 10 the mask has the input's type and holds ones.
        let old = try Self.run("Dropout", opset: 7, [x], ["ratio": .float(0.3)], outputs: 2)
        #expect(old[1].dataType == .float)
        #expect(try old[1].scalars(as: Float.self) == Array(repeating: 1, count: 6))
        let half = try Self.run("Dropout", opset: 6, [try Tensor(shape: [5], scalars: [Float16](repeating: 3, count: 5))],
                                ["is_test": .int(1)], outputs: 2)
        #expect(try half[1].scalars(as: Float16.self) == Array(repeating: 1, count: 5))
        // Only output 0.
        let single = try Self.run("Dropout", opset: 13, [x, Self.f([], [0.1])])
        #expect(Self.bytes(single[0]) == Self.bytes(x))
        let kernel = try Self.kernel("Dropout", opset: 13)
        #expect(kernel.aliasing == .view(input: 0))
        #expect(kernel.readsData(ofInput: 1) == false)
    }

    @Test func dropoutTrainingMode() throws {
        let count = 2000
        let x = try Tensor(shape: [count], scalars: (0..<count).map { Float($0 % 7) + 1 })
        let on = Tensor(scalar: true)
        func train(_ seed: Int?, ratio: Float = 0.25) throws -> [Tensor] {
            try Self.run("Dropout", opset: 13, [x, Self.f([], [ratio]), on], seed.map { ["seed": .int($0)] } ?? [:], outputs: 2)
        }
        let first = try train(7)
        let y = try first[0].scalars(as: Float.self), mask = try first[1].scalars(as: Bool.self), input = try x.scalars(as: Float.self)
        for i in 0..<count {
            #expect(mask[i] ? y[i] == input[i] / 0.75 : y[i] == 0, "element \(i)")
        }
        let kept = Double(mask.filter { $0 }.count) / Double(count)
        #expect(kept > 0.7 && kept < 0.8, "kept \(kept) of the elements at ratio 0.25")
        // The seed makes the draw repeatable; ratio 0 is the identity.
        #expect(try train(7)[1].scalars(as: Bool.self) == mask)
        #expect(Self.bytes(try train(nil, ratio: 0)[0]) == Self.bytes(x))
        let badRatio = Self.message { _ = try train(1, ratio: 1) }
        #expect(badRatio.contains("ratio must be in [0, 1)"), "\(badRatio)")
        let badFlag = Self.message { _ = try Self.run("Dropout", opset: 13, [x, Self.f([], [0.5]), Self.f([], [1])]) }
        #expect(badFlag.contains("training_mode must be a bool scalar"), "\(badFlag)")

        // A training_mode that arrives with the run: the output cannot be a view of the input.
        let registration = try #require(OperatorRegistry.registration(domain: "", opType: "Dropout", opset: 13))
        let node = Node(name: "d", opType: "Dropout", inputs: ["x", "r", "t"], outputs: ["y", "m"])
        let kernel = try registration.make(NodeContext(node: node, opset: 13, constantInputs: [nil, nil, nil], isa: .preferred))
        #expect(kernel.aliasing == .none)
        #expect(kernel.readsData(ofInput: 2))
        let off = try Self.runWithoutConstants(kernel, [x, Self.f([], [0.5]), Tensor(scalar: false)], outputs: 2)
        #expect(Self.bytes(off[0]) == Self.bytes(x))
    }

    // MARK: - Constant

    @Test func constantFromEachAttribute() throws {
        let value = Self.f([2, 2], [1, 2, 3, 4])
        let fromTensor = try Self.run("Constant", opset: 9, [], ["value": .tensor(value)])[0]
        #expect(fromTensor.shape == [2, 2] && Self.bytes(fromTensor) == Self.bytes(value))
        let i8 = try Tensor(shape: [3], scalars: [Int8(-1), 0, 7])
        #expect(try Self.run("Constant", [], ["value": .tensor(i8)])[0].scalars(as: Int8.self) == [-1, 0, 7])

        let float = try Self.run("Constant", opset: 12, [], ["value_float": .float(2.5)])[0]
        #expect(float.shape == [])
        #expect(try float.scalars(as: Float.self) == [2.5])
        let floats = try Self.run("Constant", opset: 12, [], ["value_floats": .floats([1, -2])])[0]
        #expect(floats.shape == [2])
        #expect(try floats.scalars(as: Float.self) == [1, -2])
        let int = try Self.run("Constant", opset: 12, [], ["value_int": .int(-7)])[0]
        #expect(int.shape == [] && int.dataType == .int64)
        #expect(try int.scalars(as: Int64.self) == [-7])
        let ints = try Self.run("Constant", opset: 13, [], ["value_ints": .ints([4, 5, 6])])[0]
        #expect(ints.shape == [3])
        #expect(try ints.scalars(as: Int64.self) == [4, 5, 6])
        let none = try Self.run("Constant", opset: 13, [], ["value_ints": .ints([])])[0]
        #expect(none.shape == [0])
    }

    @Test func constantStringsAndRefusesSparseAndAmbiguity() throws {
        let string = try Self.run("Constant", opset: 12, [], ["value_string": .string("hi")])[0]
        #expect(string.shape == [])
        #expect(try string.strings() == ["hi"])
        #expect(try Self.run("Constant", opset: 12, [], ["value_strings": .strings(["a", "b"])])[0].strings() == ["a", "b"])
        let sparse = Self.message { _ = try Self.run("Constant", opset: 13, [], ["sparse_value": .tensor(Self.f([1], [1]))]) }
        #expect(sparse.contains("sparse_value is not supported"), "\(sparse)")
        #expect(throws: OnyxError.self) { try Self.run("Constant", [], [:]) }
        let two = Self.message { _ = try Self.run("Constant", [], ["value_int": .int(1), "value_float": .float(1)]) }
        #expect(two.contains("exactly one"), "\(two)")
        #expect(throws: OnyxError.self) { try Self.run("Constant", [], ["value_ints": .floats([1.5])]) }
    }

    // MARK: - Cast

    /// Every pair of types on values all of them hold exactly.
    @Test(arguments: DataType.allCases)
    func castBetweenEveryPair(from: DataType) throws {
        let all: [Double] = [0, 1, 2, 3, 7, 100, 127, 0, 1]
        for to in DataType.allCases {
            // The values both types hold (bool reads any of them).
            let values = all.filter { Self.holds(from, $0) && Self.holds(to, $0) }
            let x = Self.tensor(from, values)
            let y = try Self.cast(x, to: to, opset: 25)
            #expect(y.dataType == to && y.shape == x.shape)
            let expected = from == .bool || to == .bool ? values.map { $0 != 0 ? 1.0 : 0 } : values
            #expect(try Self.doubles(y) == expected, "\(from) → \(to)")
        }
        // Signed types keep negative values through every signed and float type that holds them.
        if from == .float || from == .double || from == .float16 || (from.isInteger && from.isNative && ![.uint8, .uint16, .uint32, .uint64].contains(from)) {
            let negative = Self.tensor(from, [-1, -2, -100, -128])
            for to in DataType.allCases where (to.isFloatingPoint && to.isNative) || [.bfloat16, .int8, .int16, .int32, .int64].contains(to) {
                #expect(try Self.doubles(Self.cast(negative, to: to)) == [-1, -2, -100, -128], "\(from) → \(to)")
            }
            #expect(try Self.cast(negative, to: .bool).scalars(as: Bool.self) == [true, true, true, true])
        }
    }

    @Test func castFloatToIntegerTruncatesTowardZero() throws {
        let x = Self.f([8], [2.7, -2.7, 0.5, -0.5, 1e9, -1e9, 126.99, -127.99])
        #expect(try Self.cast(x, to: .int32).scalars(as: Int32.self) == [2, -2, 0, 0, 1_000_000_000, -1_000_000_000, 126, -127])
        #expect(try Self.cast(x, to: .int64).scalars(as: Int64.self) == [2, -2, 0, 0, 1_000_000_000, -1_000_000_000, 126, -127])
        let d = try Tensor(shape: [3], scalars: [3.999999, -3.999999, 4_000_000_000.5])
        #expect(try Self.cast(d, to: .int64).scalars(as: Int64.self) == [3, -3, 4_000_000_000])
        #expect(try Self.cast(d, to: .uint32).scalars(as: UInt32.self) == [3, 0, 4_000_000_000])
        let h = try Tensor(shape: [3], scalars: [Float16(-5.75), Float16(65504), Float16(0.999)])
        #expect(try Self.cast(h, to: .int16).scalars(as: Int16.self) == [-5, Int16.max, 0])
        #expect(try Self.cast(h, to: .int32).scalars(as: Int32.self) == [-5, 65504, 0])
    }

    /// C leaves these undefined; Onyx clamps and maps NaN to 0, and never traps.
    @Test func castOutOfRangeAndNaNDoNotCrash() throws {
        let x = Self.f([6], [.nan, .infinity, -.infinity, 3e9, -3e9, 300])
        #expect(try Self.cast(x, to: .int32).scalars(as: Int32.self) == [0, .max, .min, .max, .min, 300])
        #expect(try Self.cast(x, to: .uint8).scalars(as: UInt8.self) == [0, 255, 0, 255, 0, 255])
        #expect(try Self.cast(x, to: .int8).scalars(as: Int8.self) == [0, 127, -128, 127, -128, 127])
        #expect(try Self.cast(x, to: .int64).scalars(as: Int64.self) == [0, .max, .min, 3_000_000_000, -3_000_000_000, 300])
        #expect(try Self.cast(x, to: .uint64).scalars(as: UInt64.self) == [0, .max, 0, 3_000_000_000, 0, 300])
        let big = try Tensor(shape: [2], scalars: [Double(Int64.max), 1e300])
        #expect(try Self.cast(big, to: .int64).scalars(as: Int64.self) == [.max, .max])
        #expect(try Self.cast(big, to: .float).scalars(as: Float.self)[1] == .infinity)
        #expect(try Self.cast(Self.f([1], [.nan]), to: .float16).scalars(as: Float16.self)[0].isNaN)
        #expect(try Self.cast(Self.f([1], [.nan]), to: .double).scalars(as: Double.self)[0].isNaN)
    }

    @Test func castIntegerToIntegerWraps() throws {
        let x = try Tensor(shape: [5], scalars: [Int32(300), -1, -129, 65536, Int32.min])
        #expect(try Self.cast(x, to: .uint8).scalars(as: UInt8.self) == [44, 255, 127, 0, 0])
        #expect(try Self.cast(x, to: .int8).scalars(as: Int8.self) == [44, -1, 127, 0, 0])
        #expect(try Self.cast(x, to: .uint16).scalars(as: UInt16.self) == [300, 65535, 65407, 0, 0])
        #expect(try Self.cast(x, to: .uint64).scalars(as: UInt64.self) == [300, .max, UInt64.max - 128, 65536, UInt64(bitPattern: Int64(Int32.min))])
        let u = try Tensor(shape: [2], scalars: [UInt64.max, UInt64(1) << 63])
        #expect(try Self.cast(u, to: .int64).scalars(as: Int64.self) == [-1, .min])
        #expect(try Self.cast(u, to: .double).scalars(as: Double.self) == [18446744073709551616.0, 9223372036854775808.0])
        let large = try Tensor(shape: [2], scalars: [Int64(1) << 53 + 1, Int64(16_777_217)])
        #expect(try Self.cast(large, to: .double).scalars(as: Double.self) == [9007199254740992, 16_777_217])
        #expect(try Self.cast(large, to: .float).scalars(as: Float.self) == [9007199254740992, 16_777_216])
    }

    @Test func castFloat16RoundTrips() throws {
        // Every finite float16 survives float16 → float → float16 and float16 → double → float16.
        var all: [Float16] = []
        for bits in UInt16.min...UInt16.max {
            let h = Float16(bitPattern: bits)
            if h.isFinite { all.append(h) }
        }
        let halves = try Tensor(shape: [all.count], scalars: all)
        for wide in [DataType.float, .double] {
            let widened = try Self.cast(halves, to: wide)
            #expect(try Self.doubles(widened) == all.map { Double($0) })
            let back = try Self.cast(widened, to: .float16)
            #expect(Self.bytes(back) == Self.bytes(halves), "float16 → \(wide) → float16")
        }
        // float → float16 rounds to nearest even; overflow goes to infinity; tiny values to subnormals or zero.
        let x = Self.f([7], [1.0 / 3, 65504, 65520, -1e6, 1e-7, 1e-9, 2049])
        let h = try Self.cast(x, to: .float16).scalars(as: Float16.self)
        #expect(h[0] == Float16(0.33325195) && h[1] == 65504 && h[2] == .infinity && h[3] == -.infinity)
        #expect(h[4] == Float16(bitPattern: 2) && h[5] == 0 && h[6] == 2048)
        // Integers into float16.
        let ints = try Tensor(shape: [4], scalars: [Int64(-3), 2049, 70000, 1 << 40])
        #expect(try Self.cast(ints, to: .float16).scalars(as: Float16.self) == [-3, 2048, .infinity, .infinity])
        #expect(try Self.cast(try Tensor(shape: [2], scalars: [Float16(-2.5), Float16(200.75)]), to: .int8).scalars(as: Int8.self) == [-2, 127])
    }

    /// The bit-level float → half conversion against Swift's own, on a sweep of bit patterns and on
    /// every halfway point between neighbouring halves (where ties-to-even decides).
    @Test func castFloatToFloat16MatchesSwiftConversion() throws {
        var samples: [Float] = []
        for bits in stride(from: UInt32(0), to: UInt32.max - 40_000, by: 40_009) { samples.append(Float(bitPattern: bits)) }
        for bits in UInt16(0)..<0x7C00 {
            let low = Float(Float16(bitPattern: bits)), high = Float(Float16(bitPattern: bits + 1))
            let middle = (low + high) / 2  // exact in Float
            samples += [middle, middle.nextDown, middle.nextUp, -middle, low, -high]
        }
        samples += [.infinity, -.infinity, .nan, 65504, 65519.99, 65520, 1e-8, -0.0, .leastNonzeroMagnitude]
        let x = try Tensor(shape: [samples.count], scalars: samples)
        let y = try Self.cast(x, to: .float16).scalars(as: Float16.self)
        var mismatches = 0
        for (f, h) in zip(samples, y) {
            let expected = Float16(f)
            if expected.isNaN ? !h.isNaN : expected.bitPattern != h.bitPattern {
                mismatches += 1
                if mismatches <= 5 { Issue.record("float \(f) (0x\(String(f.bitPattern, radix: 16))) → \(h), expected \(expected)") }
            }
        }
        #expect(mismatches == 0)
        // And half → float is exact for every half, NaNs included.
        let halves = (UInt16.min...UInt16.max).map { Float16(bitPattern: $0) }
        let widened = try Self.cast(try Tensor(shape: [halves.count], scalars: halves), to: .float).scalars(as: Float.self)
        #expect(zip(halves, widened).allSatisfy { h, f in h.isNaN ? f.isNaN : Float(h).bitPattern == f.bitPattern })
    }

    @Test func castToAndFromBool() throws {
        let x = Self.f([6], [0, -0.0, 0.5, -3, .nan, .infinity])
        #expect(try Self.cast(x, to: .bool).scalars(as: Bool.self) == [false, false, true, true, true, true])
        let ints = try Tensor(shape: [4], scalars: [Int64(0), 256, -1, 1 << 40])
        #expect(try Self.cast(ints, to: .bool).scalars(as: Bool.self) == [false, true, true, true])
        let flags = try Tensor(shape: [3], scalars: [true, false, true])
        #expect(try Self.cast(flags, to: .float).scalars(as: Float.self) == [1, 0, 1])
        #expect(try Self.cast(flags, to: .int64).scalars(as: Int64.self) == [1, 0, 1])
        #expect(try Self.cast(flags, to: .float16).scalars(as: Float16.self) == [1, 0, 1])
        // A bool byte other than 0/1 still reads as true.
        let odd = try [UInt8(0), 2, 255].withUnsafeBytes { try Tensor(dataType: .bool, shape: [3], bytes: $0) }
        #expect(try Self.cast(odd, to: .int32).scalars(as: Int32.self) == [0, 1, 1])
        #expect(Self.bytes(try Self.cast(odd, to: .uint8)) == [0, 1, 1])
    }

    @Test func castDoubleToFloatRounds() throws {
        let d = try Tensor(shape: [3], scalars: [0.1, 1e39, 1.0000000596046448])
        let f = try Self.cast(d, to: .float).scalars(as: Float.self)
        #expect(f[0] == Float(0.1) && f[1] == .infinity && f[2] == 1)
    }

    @Test func castAttributesAndErrors() throws {
        let x = Self.f([2], [1.5, -1.5])
        // Opset 19 adds `saturate`, which only matters for float8.
        #expect(try Self.run("Cast", opset: 19, [x], ["to": .int(7), "saturate": .int(0)])[0].scalars(as: Int64.self) == [1, -1])
        #expect(try Self.run("Cast", opset: 21, [x], ["to": .int(1)])[0].scalars(as: Float.self) == [1.5, -1.5])
        #expect(try Self.run("Cast", [x], ["to": .int(8)])[0].strings() == ["1.5", "-1.5"])
        #expect(throws: OnyxError.self) { try Self.run("Cast", opset: 25, [x], ["to": .int(27)]) }  // float6e2m3
        #expect(throws: OnyxError.self) { try Self.run("Cast", opset: 24, [x], ["to": .int(24), "round_mode": .string("odd")]) }
        #expect(throws: OnyxError.self) { try Self.run("Cast", [x], ["to": .int(1 << 40)]) }
        #expect(throws: OnyxError.self) { try Self.run("Cast", [x]) }
        // CastLike takes the type of its second input.
        let like = try Self.run("CastLike", opset: 15, [x, try Tensor(shape: [0], scalars: [Int16]())])[0]
        #expect(like.dataType == .int16)
        #expect(try like.scalars(as: Int16.self) == [1, -1])
        #expect(try Self.kernel("CastLike", opset: 15).readsData(ofInput: 1) == false)
    }

    @Test func largeCastUsesThreads() throws {
        let n = 300_001
        let x = Self.f([n], (0..<n).map { Float($0 % 1000) - 499.5 })
        let y = try Self.cast(x, to: .float16, threads: 2)
        let back = try Self.cast(y, to: .int32, threads: 2).scalars(as: Int32.self)
        for i in stride(from: 0, to: n, by: 997) {
            #expect(back[i] == Int32((Float(i % 1000) - 499.5).rounded(.towardZero)))
        }
        #expect(back[n - 1] == Int32((Float((n - 1) % 1000) - 499.5).rounded(.towardZero)))
    }
}
