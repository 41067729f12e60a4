#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// DFT, STFT, the window functions and MelWeightMatrix on hand-checked values and error cases.
@Suite struct SignalTests {
    static func run(_ op: String, opset: Int, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:]) throws -> Tensor {
        let node = Node(
            name: "n", opType: op, inputs: inputs.enumerated().map { $0.element == nil ? "" : "x\($0.offset)" },
            outputs: ["y"], attributes: attributes)
        return try OperatorRegistry.evaluate(node, opset: opset, inputs: inputs)[0]
    }

    static func t<T: TensorElement>(_ shape: [Int], _ values: [T]) -> Tensor { try! Tensor(shape: shape, scalars: values) }
    static func i64(_ value: Int) -> Tensor { Tensor(scalar: Int64(value)) }

    static func close(_ a: [Float], _ b: [Float], tolerance: Float = 1e-4) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= tolerance }
    }

    static func message(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch let error as OnyxError {
            return error.message
        } catch {
            return "\(error)"
        }
    }

    /// A naive complex DFT of interleaved (re, im) values.
    static func naiveDFT(_ x: [Float], inverse: Bool = false) -> [Float] {
        let n = x.count / 2
        var out: [Float] = []
        for k in 0..<n {
            var re = 0.0, im = 0.0
            for t in 0..<n {
                let angle = (inverse ? 2 : -2) * Double.pi * Double(k * t) / Double(n)
                re += Double(x[2 * t]) * cos(angle) - Double(x[2 * t + 1]) * sin(angle)
                im += Double(x[2 * t]) * sin(angle) + Double(x[2 * t + 1]) * cos(angle)
            }
            let scale = inverse ? 1 / Double(n) : 1
            out += [Float(re * scale), Float(im * scale)]
        }
        return out
    }

    static func signal(_ count: Int) -> [Float] { (0..<count).map { Float(($0 * 37) % 11) - 5 } }

    // MARK: - DFT

    @Test func dftOfImpulseIsFlat() throws {
        let x = Self.t([1, 4, 1], [1, 0, 0, 0] as [Float])
        let y = try Self.run("DFT", opset: 20, [x])
        #expect(y.shape == [1, 4, 2])
        #expect(try y.scalars(as: Float.self) == [1, 0, 1, 0, 1, 0, 1, 0])
    }

    @Test func dftOfOddLengthByHand() throws {
        let y = try Self.run("DFT", opset: 17, [Self.t([1, 3, 1], [1, 2, 3] as [Float])])
        let h: Float = 0.866_025_4
        #expect(Self.close(try y.scalars(as: Float.self), [6, 0, -1.5, h, -1.5, -h]))
    }

    @Test(arguments: [1, 2, 5, 7, 8, 16, 17])
    func dftMatchesNaiveForwardAndInverse(length: Int) throws {
        let values = Self.signal(2 * length)
        let x = Self.t([1, length, 2], values)
        let forward = try Self.run("DFT", opset: 20, [x, nil, Self.i64(1)])
        #expect(Self.close(try forward.scalars(as: Float.self), Self.naiveDFT(values), tolerance: 1e-3))
        let inverse = try Self.run("DFT", opset: 17, [x], ["inverse": .int(1)])
        #expect(Self.close(try inverse.scalars(as: Float.self), Self.naiveDFT(values, inverse: true), tolerance: 1e-4))
    }

    @Test func dftAxisAttributeAndInputAgree() throws {
        let values = Self.signal(3 * 4 * 2)
        let x = Self.t([3, 4, 2], values)
        let old = try Self.run("DFT", opset: 17, [x], ["axis": .int(0)])
        let new = try Self.run("DFT", opset: 20, [x, nil, Self.i64(-3)])
        #expect(old.shape == [3, 4, 2])
        #expect(try old.scalars(as: Float.self) == new.scalars(as: Float.self))
        // Along axis 0: column j of the 3×4 grid is one signal.
        func column(_ all: [Float]) -> [Float] {
            var picked: [Float] = []
            for row in 0..<3 {
                let at: Int = (row * 4 + 1) * 2
                picked.append(all[at])
                picked.append(all[at + 1])
            }
            return picked
        }
        let expected = Self.naiveDFT(column(values))
        #expect(Self.close(column(try old.scalars(as: Float.self)), expected, tolerance: 1e-4))
    }

    @Test func rfftAndIrfftRoundTrip() throws {
        let real: [Double] = [3, -1, 4, 1, -5, 9, 2, -6]
        let x = Self.t([1, 8, 1], real)
        let spectrum = try Self.run("DFT", opset: 20, [x], ["onesided": .int(1)])
        #expect(spectrum.shape == [1, 5, 2])
        #expect(try spectrum.scalars(as: Double.self).prefix(2) == [7, 0])
        let back = try Self.run("DFT", opset: 20, [spectrum], ["onesided": .int(1), "inverse": .int(1)])
        #expect(back.shape == [1, 8, 1])
        #expect(zip(try back.scalars(as: Double.self), real).allSatisfy { abs($0 - $1) < 1e-12 })
    }

    @Test func dftLengthPadsAndTruncates() throws {
        let x = Self.t([1, 3, 1], [1, 1, 1] as [Float])
        let padded = try Self.run("DFT", opset: 20, [x, Self.i64(4)])
        #expect(Self.close(try padded.scalars(as: Float.self), [3, 0, 0, -1, 1, 0, 0, 1]))
        let truncated = try Self.run("DFT", opset: 17, [x, Self.i64(2)])
        #expect(Self.close(try truncated.scalars(as: Float.self), [2, 0, 0, 0]))
    }

    @Test func dftFloat16() throws {
        let y = try Self.run("DFT", opset: 20, [Self.t([1, 2, 1], [1, 3] as [Float16])])
        #expect(try y.scalars(as: Float16.self) == [4, 0, -2, 0])
    }

    @Test func dftErrors() {
        let x = Self.t([1, 4, 2], [Float](repeating: 0, count: 8))
        #expect(Self.message { _ = try Self.run("DFT", opset: 20, [x, nil, Self.i64(-1)]) }
                == "DFT: axis -1 is out of range for rank 3 (expected -3...-2 or 0...1)")
        #expect(Self.message { _ = try Self.run("DFT", opset: 20, [Self.t([4, 3], [Float](repeating: 0, count: 12))]) }
                == "DFT: input must be [..., 1] (real) or [..., 2] (complex) with at least one signal axis, got [4,3]")
        #expect(Self.message { _ = try Self.run("DFT", opset: 20, [Self.t([1, 2, 1], [1, 2] as [Int32])]) }
                == "DFT supports float, double and float16, got int32")
        #expect(Self.message { _ = try Self.run("DFT", opset: 20, [x, Self.i64(0)]) } == "DFT: dft_length must be ≥ 1, got 0")
    }

    // MARK: - STFT

    @Test func stftOfConstantSignal() throws {
        let signal = Self.t([1, 8, 1], [Float](repeating: 1, count: 8))
        let y = try Self.run("STFT", opset: 17, [signal, Self.i64(4), nil, Self.i64(4)])
        #expect(y.shape == [1, 2, 3, 2])
        #expect(Self.close(try y.scalars(as: Float.self), [4, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0]))
        let full = try Self.run("STFT", opset: 17, [signal, Self.i64(2), nil, Self.i64(4)], ["onesided": .int(0)])
        #expect(full.shape == [1, 3, 4, 2])
    }

    @Test func stftAppliesWindow() throws {
        let signal = Self.t([1, 4, 1], [1, 2, 3, 4] as [Double])
        let window = Self.t([2], [0.5, 2] as [Double])
        let y = try Self.run("STFT", opset: 17, [signal, Self.i64(2), window])
        // Frames [1,2] and [3,4] weighted to [0.5,4] and [1.5,8]: bins (sum, difference).
        #expect(try y.scalars(as: Double.self) == [4.5, 0, -3.5, 0, 9.5, 0, -6.5, 0])
        #expect(Self.message { _ = try Self.run("STFT", opset: 17, [signal, Self.i64(1), nil, Self.i64(5)]) }
                == "STFT: frame_length 5 must be in 1...4 (the signal length)")
        #expect(Self.message { _ = try Self.run("STFT", opset: 17, [signal, Self.i64(0), window]) }
                == "STFT: frame_step must be ≥ 1, got 0")
    }

    // MARK: - Windows, MelWeightMatrix

    @Test func windows() throws {
        let hann = try Self.run("HannWindow", opset: 17, [Self.i64(4)])
        #expect(Self.close(try hann.scalars(as: Float.self), [0, 0.5, 1, 0.5], tolerance: 1e-6))
        let symmetric = try Self.run("HannWindow", opset: 17, [Self.i64(5)], ["periodic": .int(0)])
        #expect(Self.close(try symmetric.scalars(as: Float.self), [0, 0.5, 1, 0.5, 0], tolerance: 1e-6))
        let hamming = try Self.run("HammingWindow", opset: 17, [Self.i64(3)], ["periodic": .int(0)])
        #expect(Self.close(try hamming.scalars(as: Float.self), [4.0 / 46, 1, 4.0 / 46], tolerance: 1e-6))
        let blackman = try Self.run("BlackmanWindow", opset: 17, [Self.i64(4)],
                                    ["output_datatype": .int(Int(DataType.double.rawValue))])
        #expect(zip(try blackman.scalars(as: Double.self), [0, 0.34, 1, 0.34]).allSatisfy { abs($0 - $1) < 1e-12 })
        let integer = try Self.run("BlackmanWindow", opset: 17, [Self.t([], [Int32(5)])],
                                   ["periodic": .int(0), "output_datatype": .int(Int(DataType.int32.rawValue))])
        #expect(try integer.scalars(as: Int32.self) == [0, 0, 1, 0, 0])
        #expect(Self.message { _ = try Self.run("HannWindow", opset: 17, [Self.i64(-1)]) } == "HannWindow: size must be ≥ 0, got -1")
        #expect(Self.message {
            _ = try Self.run("HannWindow", opset: 17, [Self.i64(3)], ["output_datatype": .int(Int(DataType.bool.rawValue))])
        }?.hasSuffix("output_datatype bool is not one of float, uint8, int8, uint16, int16, int32, int64, float16, double, uint32, uint64, bfloat16") == true)
    }

    @Test func melWeightMatrix() throws {
        let y = try Self.run("MelWeightMatrix", opset: 17, [
            Self.t([], [Int32(8)]), Self.t([], [Int32(16)]), Self.t([], [Int32(8192)]),
            Self.t([], [Float(0)]), Self.t([], [Float(4096)]),
        ])
        #expect(y.shape == [9, 8])
        var expected = [Float](repeating: 0, count: 72)
        for (row, column) in [(0, 0), (0, 1), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7)] { expected[row * 8 + column] = 1 }
        #expect(try y.scalars(as: Float.self) == expected)
        #expect(Self.message {
            _ = try Self.run("MelWeightMatrix", opset: 17, [
                Self.t([], [Int32(8)]), Self.t([], [Int32(16)]), Self.t([], [Int32(0)]),
                Self.t([], [Float(0)]), Self.t([], [Float(4096)]),
            ])
        } == "MelWeightMatrix: sample_rate must be positive, got 0")
    }
}
