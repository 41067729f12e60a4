import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

@Suite struct TensorTests {
    @Test func roundTripsScalars() throws {
        let t = try Tensor(shape: [2, 3], scalars: [Float](repeating: 1.5, count: 6))
        #expect(t.shape == [2, 3])
        #expect(t.dataType == .float)
        #expect(try t.scalars(as: Float.self) == [Float](repeating: 1.5, count: 6))
    }

    @Test func rejectsCountMismatch() {
        #expect(throws: OnyxError.self) { try Tensor(shape: [2, 2], scalars: [Float](repeating: 0, count: 3)) }
    }

    @Test func copyOnWrite() throws {
        let a = try Tensor(shape: [2], scalars: [Int64(1), 2])
        var b = a
        b.withUnsafeMutableBytes { $0.storeBytes(of: Int64(7), as: Int64.self) }
        #expect(try a.scalars(as: Int64.self) == [1, 2])
        #expect(try b.scalars(as: Int64.self) == [7, 2])
    }
}
