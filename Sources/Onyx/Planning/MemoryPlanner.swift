/// Assigns byte offsets in one arena to buffers with known lifetimes, reusing freed space.
///
/// Buffers are allocated and released in step order; a released block is merged with its free
/// neighbours and handed to the next request that fits it best.
struct MemoryPlanner {
    static let alignment = 64

    private var freeBlocks: [(offset: Int, size: Int)] = []
    /// The arena size needed so far.
    private(set) var arenaByteCount = 0

    /// Returns the offset of a new block of at least `byteCount` bytes.
    mutating func allocate(_ byteCount: Int) -> Int {
        let size = Self.rounded(byteCount)
        var best: Int?
        for (i, block) in freeBlocks.enumerated() where block.size >= size {
            if best == nil || block.size < freeBlocks[best!].size { best = i }
        }
        if let i = best {
            let block = freeBlocks[i]
            if block.size == size {
                freeBlocks.remove(at: i)
            } else {
                freeBlocks[i] = (block.offset + size, block.size - size)
            }
            return block.offset
        }
        // Grow the arena, absorbing a free block that ends at the current end.
        if let last = freeBlocks.indices.last(where: { freeBlocks[$0].offset + freeBlocks[$0].size == arenaByteCount }) {
            let block = freeBlocks.remove(at: last)
            arenaByteCount = block.offset + size
            return block.offset
        }
        let offset = arenaByteCount
        arenaByteCount += size
        return offset
    }

    /// Returns a block to the free list.
    mutating func release(offset: Int, byteCount: Int) {
        var start = offset
        var size = Self.rounded(byteCount)
        // Merge with neighbours (repeatedly: a merge can make another block adjacent) so large
        // later requests can reuse the space.
        var merged = true
        while merged {
            merged = false
            if let i = freeBlocks.firstIndex(where: { $0.offset + $0.size == start || start + size == $0.offset }) {
                let block = freeBlocks.remove(at: i)
                start = min(start, block.offset)
                size += block.size
                merged = true
            }
        }
        freeBlocks.append((start, size))
    }

    static func rounded(_ byteCount: Int) -> Int {
        max(alignment, (byteCount + alignment - 1) / alignment * alignment)
    }
}
