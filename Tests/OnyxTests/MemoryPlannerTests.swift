import Testing
@testable import Onyx

@Suite struct MemoryPlannerTests {
    @Test func reusesReleasedSpace() {
        var planner = MemoryPlanner()
        let a = planner.allocate(1000)
        let b = planner.allocate(500)
        #expect(a != b)
        planner.release(offset: a, byteCount: 1000)
        let c = planner.allocate(900)
        #expect(c == a)
        #expect(planner.arenaByteCount == MemoryPlanner.rounded(1000) + MemoryPlanner.rounded(500))
    }

    @Test func mergesNeighbours() {
        var planner = MemoryPlanner()
        let a = planner.allocate(256)
        let b = planner.allocate(256)
        _ = planner.allocate(64)
        planner.release(offset: a, byteCount: 256)
        planner.release(offset: b, byteCount: 256)
        #expect(planner.allocate(512) == a)
    }

    @Test func growsFromTrailingFreeBlock() {
        var planner = MemoryPlanner()
        _ = planner.allocate(128)
        let b = planner.allocate(128)
        planner.release(offset: b, byteCount: 128)
        let c = planner.allocate(1024)
        #expect(c == b)
        #expect(planner.arenaByteCount == 128 + 1024)
    }

    @Test func blocksAreAligned() {
        var planner = MemoryPlanner()
        for size in [1, 3, 65, 127, 4097] {
            #expect(planner.allocate(size) % MemoryPlanner.alignment == 0)
        }
    }
}
