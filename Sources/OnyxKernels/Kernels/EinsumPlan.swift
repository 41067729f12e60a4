import OnyxCore

/// An Einstein summation resolved against operand shapes: every index label with its extent,
/// each operand's stride per label (repeated labels add up to a diagonal, broadcast ellipsis
/// axes get 0), and the output's labels.
@usableFromInline package struct EinsumPlan: Equatable {
    /// A term of the equation as written: letters and at most one ellipsis.
    @usableFromInline package enum Symbol: Equatable, Sendable {
        case letter(Int)
        case ellipsis
    }

    /// The parsed equation: one term per operand and the explicit output term, if any.
    @usableFromInline package struct Equation: Equatable, Sendable {
        package var inputs: [[Symbol]]
        package var output: [Symbol]?

        /// Parses `equation` (`"ij,jk->ik"`, spaces ignored, `...` for broadcast axes).
        package init(_ equation: String) throws {
            let text = equation.filter { !$0.isWhitespace }
            let sides = text.split(separator: "->", omittingEmptySubsequences: false)
            guard sides.count <= 2 else { throw OnyxError.invalidAttribute("equation '\(equation)' has more than one '->'") }
            func term(_ part: Substring) throws -> [Symbol] {
                var symbols: [Symbol] = []
                var rest = part
                while let c = rest.first {
                    if rest.hasPrefix("...") {
                        guard !symbols.contains(.ellipsis) else {
                            throw OnyxError.invalidAttribute("term '\(part)' of '\(equation)' has more than one ellipsis")
                        }
                        symbols.append(.ellipsis)
                        rest = rest.dropFirst(3)
                        continue
                    }
                    guard let ascii = c.asciiValue, c.isLetter else {
                        throw OnyxError.invalidAttribute("'\(c)' in '\(equation)' is not a letter or '...'")
                    }
                    symbols.append(.letter(c.isLowercase ? Int(ascii) - 97 : Int(ascii) - 65 + 26))
                    rest = rest.dropFirst()
                }
                return symbols
            }
            inputs = try sides[0].split(separator: ",", omittingEmptySubsequences: false).map(term)
            output = sides.count == 2 ? try term(sides[1]) : nil
            if let output {
                var seen = Set<Int>()
                for case .letter(let l) in output where !seen.insert(l).inserted {
                    throw OnyxError.invalidAttribute("output label repeats in '\(equation)'")
                }
                let known = Set(inputs.joined().compactMap { if case .letter(let l) = $0 { l } else { nil } })
                for case .letter(let l) in output where !known.contains(l) {
                    throw OnyxError.invalidAttribute("an output label of '\(equation)' appears in no input")
                }
            }
        }
    }

    /// Extent of each label (letters 0–51, ellipsis axes from 52).
    @usableFromInline package var extents: [Int: Int]
    /// Per operand, its stride for each label it uses.
    @usableFromInline package var strides: [[Int: Int]]
    /// Per operand, its labels in axis order (repeats kept).
    package var operandLabels: [[Int]]
    @usableFromInline package var outputLabels: [Int]
    /// Labels summed over, in first-seen order.
    @usableFromInline package var summedLabels: [Int]

    package var outputShape: [Int] { outputLabels.map { extents[$0]! } }

    package init(_ equation: Equation, shapes: [[Int]]) throws {
        guard equation.inputs.count == shapes.count else {
            throw OnyxError.invalidModel("Einsum: the equation has \(equation.inputs.count) operand terms but \(shapes.count) inputs")
        }
        let ellipsisRanks = try zip(equation.inputs, shapes).map { term, shape -> Int in
            let letters = term.filter { $0 != .ellipsis }.count
            guard term.contains(.ellipsis) ? shape.count >= letters : shape.count == letters else {
                throw OnyxError.shapeMismatch("Einsum: an operand of shape \(shape) does not fit its term of \(letters) letters")
            }
            return shape.count - letters
        }
        let broadcastRank = ellipsisRanks.max() ?? 0
        extents = [:]
        strides = []
        operandLabels = []
        var order: [Int] = []
        var counts: [Int: Int] = [:]
        for (index, (term, shape)) in zip(equation.inputs, shapes).enumerated() {
            var labels: [Int] = []
            for symbol in term {
                switch symbol {
                case .letter(let l): labels.append(l)
                case .ellipsis:
                    let e = ellipsisRanks[index]
                    labels += (0..<e).map { 52 + broadcastRank - e + $0 }
                }
            }
            var stride = 1
            var operandStrides: [Int: Int] = [:]
            for (axis, label) in zip(labels.indices, labels).reversed() {
                let extent = shape[axis]
                if let known = extents[label], known != extent {
                    if label >= 52 && (known == 1 || extent == 1) {
                        extents[label] = max(known, extent)
                    } else {
                        throw OnyxError.shapeMismatch("Einsum: an index has extents \(known) and \(extent) in \(shapes)")
                    }
                } else if extents[label] == nil {
                    extents[label] = extent
                }
                // A broadcast axis of extent 1 is read at offset 0 whatever the index.
                let s = label >= 52 && extent == 1 ? 0 : stride
                operandStrides[label, default: 0] += s
                stride *= extent
            }
            for label in labels where !order.contains(label) { order.append(label) }
            for label in Set(labels) { counts[label, default: 0] += labels.filter { $0 == label }.count }
            strides.append(operandStrides)
            operandLabels.append(labels)
        }
        // An ellipsis axis broadcast to a larger extent reads offset 0 in operands of extent 1.
        for (index, shape) in shapes.enumerated() {
            for (axis, label) in operandLabels[index].enumerated() where label >= 52 && shape[axis] == 1 {
                strides[index][label] = 0
            }
        }
        if let output = equation.output {
            outputLabels = []
            for symbol in output {
                switch symbol {
                case .letter(let l): outputLabels.append(l)
                case .ellipsis: outputLabels += (0..<broadcastRank).map { 52 + $0 }
                }
            }
        } else {
            // Implicit output: the broadcast axes, then labels used once, in alphabetical (ASCII) order.
            let ascii: (Int) -> Int = { $0 < 26 ? $0 + 97 : $0 - 26 + 65 }
            outputLabels = (0..<broadcastRank).map { 52 + $0 }
                + order.filter { $0 < 52 && counts[$0] == 1 }.sorted { ascii($0) < ascii($1) }
        }
        for label in outputLabels where extents[label] == nil { extents[label] = 1 }
        let kept = outputLabels
        summedLabels = order.filter { !kept.contains($0) }
    }
}

@usableFromInline package enum Einsum {
    /// The summation by direct loops: for each output element, the sum over the summed labels
    /// of the operands' product. `A` is the accumulator type.
    @inlinable package static func direct<T, A>(
        _ plan: EinsumPlan, operands: [UnsafePointer<T>], output: UnsafeMutablePointer<T>,
        zero: A, one: A, read: (T) -> A, write: (A) -> T, add: (A, A) -> A, multiply: (A, A) -> A
    ) {
        let outer = plan.outputLabels.map { plan.extents[$0]! }
        let inner = plan.summedLabels.map { plan.extents[$0]! }
        let outerStrides = plan.strides.map { s in plan.outputLabels.map { s[$0] ?? 0 } }
        let innerStrides = plan.strides.map { s in plan.summedLabels.map { s[$0] ?? 0 } }
        let outputCount = outer.reduce(1, *), innerCount = inner.reduce(1, *)
        var outerIndex = [Int](repeating: 0, count: outer.count)
        var innerIndex = [Int](repeating: 0, count: inner.count)
        var base = [Int](repeating: 0, count: operands.count)
        var offsets = [Int](repeating: 0, count: operands.count)
        for position in 0..<outputCount {
            var sum = zero
            if innerCount > 0 {
                for o in 0..<operands.count { offsets[o] = base[o] }
                for i in innerIndex.indices { innerIndex[i] = 0 }
                for _ in 0..<innerCount {
                    var term = one
                    for o in 0..<operands.count { term = multiply(term, read(operands[o][offsets[o]])) }
                    sum = add(sum, term)
                    // Odometer over the summed labels, keeping each operand's offset.
                    var axis = inner.count - 1
                    while axis >= 0 {
                        innerIndex[axis] += 1
                        for o in 0..<operands.count { offsets[o] += innerStrides[o][axis] }
                        if innerIndex[axis] < inner[axis] { break }
                        for o in 0..<operands.count { offsets[o] -= innerStrides[o][axis] * inner[axis] }
                        innerIndex[axis] = 0
                        axis -= 1
                    }
                }
            }
            output[position] = write(sum)
            var axis = outer.count - 1
            while axis >= 0 {
                outerIndex[axis] += 1
                for o in 0..<operands.count { base[o] += outerStrides[o][axis] }
                if outerIndex[axis] < outer[axis] { break }
                for o in 0..<operands.count { base[o] -= outerStrides[o][axis] * outer[axis] }
                outerIndex[axis] = 0
                axis -= 1
            }
        }
    }

    /// Copies the elements of `source` read with `strides` over `shape` (row-major) into `destination`.
    @inlinable package static func gather<T>(_ source: UnsafePointer<T>, strides: [Int], shape: [Int], into destination: UnsafeMutablePointer<T>) {
        let count = shape.reduce(1, *)
        guard count > 0 else { return }
        var index = [Int](repeating: 0, count: shape.count)
        var offset = 0
        let last = shape.count - 1
        if last < 0 {
            destination[0] = source[0]
            return
        }
        let innerExtent = shape[last], innerStride = strides[last]
        var position = 0
        while position < count {
            if innerStride == 1 {
                (destination + position).update(from: source + offset, count: innerExtent)
            } else {
                for i in 0..<innerExtent { destination[position + i] = source[offset + i * innerStride] }
            }
            position += innerExtent
            var axis = last - 1
            while axis >= 0 {
                index[axis] += 1
                offset += strides[axis]
                if index[axis] < shape[axis] { break }
                offset -= strides[axis] * shape[axis]
                index[axis] = 0
                axis -= 1
            }
        }
    }
}
