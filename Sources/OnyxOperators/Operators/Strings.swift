import OnyxCore
import OnyxIR
import OnyxKernels

// String tensors reach kernels as 8-byte handles into the run's `StringTable` (see
// `KernelContext.strings`). The operators that only move elements (Reshape, Gather, Concat …)
// move handles like any 8-byte type; the ones here read and write the text.

extension OperatorRegistry {
    /// StringNormalizer, StringSplit, StringConcat, RegexFullMatch and com.microsoft Tokenizer.
    package static let stringOperators: [OperatorRegistration] = [
        OperatorRegistration("StringNormalizer", versions: 10...Int.max) { context in try StringNormalizerKernel(context) },
        OperatorRegistration("StringSplit", versions: 20...Int.max) { context in try StringSplitKernel(context) },
        OperatorRegistration("StringConcat", versions: 20...Int.max) { _ in StringConcatKernel() },
        OperatorRegistration("RegexFullMatch", versions: 20...Int.max) { context in try RegexFullMatchKernel(context) },
        OperatorRegistration("Tokenizer", domain: "com.microsoft", versions: 1...Int.max) { context in try TokenizerKernel(context) },
    ]

    /// Whether Onyx runs `opType` of `domain` (canonical: "" for ai.onnx) on string tensors.
    ///
    /// The planner refuses a string input or output anywhere else, so a numeric kernel never sees
    /// handles. The element movers here copy handles; the rest read the text.
    package static func takesStrings(domain: String, opType: String) -> Bool {
        switch domain {
        case "": stringOperatorTypes.contains(opType)
        case "ai.onnx.ml": ["ArrayFeatureExtractor", "CategoryMapper", "LabelEncoder", "LinearClassifier", "OneHotEncoder",
                            "SVMClassifier", "TreeEnsembleClassifier", "TreeEnsemble"].contains(opType)
        case "com.microsoft": opType == "Tokenizer"
        default: false
        }
    }

    private static let stringOperatorTypes: Set<String> = [
        // Element movers.
        "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split", "Slice",
        "Gather", "GatherElements", "GatherND", "Expand", "Tile", "Where", "Compress", "ReverseSequence",
        "DepthToSpace", "SpaceToDepth", "Shape", "Size", "Constant", "Optional", "OptionalHasElement", "OptionalGetElement",
        "If", "Loop", "Scan",
        // Readers of the text.
        "Cast", "CastLike", "Equal", "StringNormalizer", "StringSplit", "StringConcat", "RegexFullMatch", "TfIdfVectorizer",
    ]
}

extension NodeContext {
    /// A list-of-strings attribute (a single string counts as a list of one).
    package func strings(_ name: String) throws -> [String]? {
        switch node.attributes[name] {
        case nil: return nil
        case .strings(let values): return values
        case .string(let value): return [value]
        case let other?:
            throw attributeError("attribute '\(name)' must be strings, found \(other.kindName)")
        }
    }
}

// MARK: - Cast

/// Cast and CastLike between strings and numbers, as the spec describes: text in plain or
/// scientific notation ("3.14", "1e-5"), and "INF", "+INF", "-INF", "NaN" in any case, become
/// numbers; numbers become their shortest round-trip text ("0.1", "42", "inf"). Text that is no
/// number is an error naming it (the spec leaves it undefined).
enum StringCasting {
    static func cast(_ context: borrowing KernelContext, saturate: Bool, rounding: E8M0.Rounding) throws {
        let x = context.input(0)!, y = context.output(0)
        let count = x.elementCount
        if x.dataType == .string {
            let texts = try context.strings(ofInput: 0)
            if y.dataType.isInteger {
                let values = try texts.map { text -> Int64 in
                    let trimmed = text.trimmingASCIISpaces
                    if let exact = Int64(trimmed) { return exact }
                    guard let real = try parse(text), real.isFinite, abs(real) < 9.3e18 else {
                        throw OnyxError.invalidInput("Cast: '\(text)' is not an integer in range")
                    }
                    return Int64(real)
                }
                values.withUnsafeBytes { Casting.convert($0.baseAddress!, from: .int64, to: y.data, y.dataType, count: count) }
            } else {
                let values = try texts.map { text -> Double in
                    guard let value = try parse(text) else { throw OnyxError.invalidInput("Cast: '\(text)' is not a number") }
                    return value
                }
                values.withUnsafeBytes {
                    Casting.convert($0.baseAddress!, from: .double, to: y.data, y.dataType, count: count,
                                    saturate: saturate, rounding: rounding)
                }
            }
            return
        }
        func texts<T: CustomStringConvertible>(_: T.Type) -> [String] {
            UnsafeBufferPointer(start: x.pointer(as: T.self), count: count).map(\.description)
        }
        let values: [String]
        switch x.dataType {
        case .float: values = texts(Float.self)
        case .double: values = texts(Double.self)
        case .float16: values = UnsafeBufferPointer(start: x.pointer(as: Float16.self), count: count).map { Float($0).description }
        case .int8: values = texts(Int8.self)
        case .uint8: values = texts(UInt8.self)
        case .int16: values = texts(Int16.self)
        case .uint16: values = texts(UInt16.self)
        case .int32: values = texts(Int32.self)
        case .uint32: values = texts(UInt32.self)
        case .int64: values = texts(Int64.self)
        case .uint64: values = texts(UInt64.self)
        case .bool: values = UnsafeBufferPointer(start: x.pointer(as: UInt8.self), count: count).map { $0 != 0 ? "1" : "0" }
        case .string: values = try context.strings(ofInput: 0)
        case .int4, .int2: values = texts(Int8.self)
        case .uint4, .uint2: values = texts(UInt8.self)
        case .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1:
            // Every value of these formats is exact in Float.
            var floats = [Float](repeating: 0, count: count)
            floats.withUnsafeMutableBytes { Casting.convert(x.data, from: x.dataType, to: $0.baseAddress!, .float, count: count) }
            values = floats.map(\.description)
        }
        try context.store(values, intoOutput: 0)
    }

    /// The number a text spells, `nil` if it spells none.
    static func parse(_ text: String) throws -> Double? {
        let trimmed = text.trimmingASCIISpaces
        switch trimmed.lowercased() {
        case "inf", "+inf", "infinity", "+infinity": return .infinity
        case "-inf", "-infinity": return -.infinity
        case "nan", "+nan", "-nan": return .nan
        default: return Double(trimmed)
        }
    }
}

extension String {
    /// The text without leading and trailing spaces, tabs and line breaks.
    fileprivate var trimmingASCIISpaces: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        return String(drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}

// MARK: - StringNormalizer

/// StringNormalizer: drops stop words (whole elements) and changes case. X is [C] or [1, C];
/// the output keeps the kept elements in order, or one empty string if none is kept.
package struct StringNormalizerKernel: Kernel {
    package enum CaseChange: String { case lower = "LOWER", upper = "UPPER", none = "NONE" }

    package let caseChange: CaseChange
    package let isCaseSensitive: Bool
    /// Stop words as they are compared: lowercased unless the match is case-sensitive.
    package let stopwords: Set<String>

    package init(_ context: NodeContext) throws {
        let action = try context.string("case_change_action", default: "NONE")
        guard let caseChange = CaseChange(rawValue: action) else {
            throw context.attributeError("case_change_action '\(action)' is not LOWER, UPPER or NONE")
        }
        self.caseChange = caseChange
        isCaseSensitive = try context.int("is_case_sensitive", default: 0) != 0
        let words = try context.strings("stopwords") ?? []
        stopwords = Set(isCaseSensitive ? words : words.map { $0.lowercased() })
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil, x.dataType == .string else {
            throw OnyxError.unsupportedDataType("StringNormalizer: X must be a string tensor")
        }
        guard x.shape.count == 1 || (x.shape.count == 2 && x.shape[0] == 1) else {
            throw OnyxError.shapeMismatch("StringNormalizer: X must be [C] or [1, C], got \(shapeText(x.shape))")
        }
        guard !stopwords.isEmpty else { return [TensorDescriptor(.string, x.shape)] }
        // How many elements survive depends on the text.
        let value = try x.requireConstant(op: "StringNormalizer", what: "X (with stop words)")
        let kept = max(1, try normalized(value.strings()).count)
        return [TensorDescriptor(.string, x.shape.count == 1 ? [kept] : [1, kept])]
    }

    package func run(_ context: borrowing KernelContext) throws {
        var values = normalized(try context.strings(ofInput: 0))
        if values.isEmpty { values = [""] }
        guard values.count == context.output(0).elementCount else {
            throw OnyxError.internalError("StringNormalizer: \(values.count) strings for an output of \(context.output(0).elementCount)")
        }
        try context.store(values, intoOutput: 0)
    }

    private func normalized(_ values: [String]) -> [String] {
        values.filter { !stopwords.contains(isCaseSensitive ? $0 : $0.lowercased()) }.map { value in
            switch caseChange {
            case .lower: value.lowercased()
            case .upper: value.uppercased()
            case .none: value
            }
        }
    }
}

// MARK: - StringSplit

/// StringSplit: splits each element at `delimiter` (or at runs of whitespace when it is empty or
/// unset), at most `maxsplit` times. Y is X's shape plus an axis as long as the most pieces, padded
/// with empty strings; Z counts each element's pieces.
package struct StringSplitKernel: Kernel {
    package let delimiter: String
    package let maxSplit: Int?

    package init(_ context: NodeContext) throws {
        delimiter = try context.string("delimiter", default: "")
        maxSplit = try context.int("maxsplit")
        if let maxSplit, maxSplit < 0 { throw context.attributeError("maxsplit must be ≥ 0, got \(maxSplit)") }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil, x.dataType == .string else {
            throw OnyxError.unsupportedDataType("StringSplit: X must be a string tensor")
        }
        let value = try x.requireConstant(op: "StringSplit", what: "X")
        let widest = try value.strings().map { split($0).count }.max() ?? 0
        return [TensorDescriptor(.string, x.shape + [widest]), TensorDescriptor(.int64, x.shape)]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let pieces = try context.strings(ofInput: 0).map(split)
        let y = context.output(0), width = y.shape.last ?? 0
        let handles = y.pointer(as: Int64.self), table = try context.stringTable()
        for (i, parts) in pieces.enumerated() {
            guard parts.count <= width else { throw OnyxError.internalError("StringSplit: more pieces than planned") }
            for k in 0..<width { handles[i * width + k] = k < parts.count ? table.intern(parts[k]) : 0 }
        }
        if let z = context.optionalOutput(1) {
            let counts = z.pointer(as: Int64.self)
            for (i, parts) in pieces.enumerated() { counts[i] = Int64(parts.count) }
        }
    }

    private func split(_ text: String) -> [String] {
        if delimiter.isEmpty {
            // Whitespace runs separate; leading and trailing whitespace make no empty pieces.
            var pieces: [String] = []
            var rest = Substring(text).drop(while: \.isWhitespace)
            while !rest.isEmpty {
                if let maxSplit, pieces.count == maxSplit {
                    pieces.append(String(rest.reversed().drop(while: \.isWhitespace).reversed()))
                    break
                }
                let end = rest.firstIndex(where: \.isWhitespace) ?? rest.endIndex
                pieces.append(String(rest[..<end]))
                rest = rest[end...].drop(while: \.isWhitespace)
            }
            return pieces
        }
        var pieces: [String] = []
        var rest = Substring(text)
        while let range = rest.range(of: delimiter), maxSplit.map({ pieces.count < $0 }) ?? true {
            pieces.append(String(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        pieces.append(String(rest))
        return pieces
    }
}

// MARK: - StringConcat

/// StringConcat: X and Y joined element by element, with NumPy broadcasting.
package struct StringConcatKernel: Kernel {
    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 2, let x = inputs[0], let y = inputs[1], x.dataType == .string, y.dataType == .string else {
            throw OnyxError.unsupportedDataType("StringConcat: X and Y must be string tensors")
        }
        return [TensorDescriptor(.string, try Broadcasting.shape(x.shape, y.shape, op: "StringConcat"))]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let a = try context.strings(ofInput: 0), b = try context.strings(ofInput: 1)
        let y = context.output(0)
        var joined = [String](repeating: "", count: y.elementCount)
        BinaryBroadcastPlan.withPlan(context.input(0)!.shape, context.input(1)!.shape, output: y.shape) { plan in
            plan.forEachSegment(0..<plan.elementCount) { output, offsetA, offsetB, count in
                for i in 0..<count { joined[output + i] = a[offsetA + i * plan.stepA] + b[offsetB + i * plan.stepB] }
            }
        }
        try context.store(joined, intoOutput: 0)
    }
}

// MARK: - RegexFullMatch

/// A compiled regular expression, shared by the runs of one kernel.
///
/// ONNX patterns are RE2's, as onnxruntime runs them: matched per Unicode scalar, with ASCII
/// `\w`, `\d`, `\s` and `\b` at a change between `\w` and not-`\w` (Swift's defaults are
/// grapheme clusters, Unicode classes and UAX #29 word boundaries).
struct CompiledPattern: @unchecked Sendable {
    // Regex is not declared Sendable; matching does not mutate it.
    let regex: Regex<AnyRegexOutput>
    let source: String
    /// The same pattern as a scan, when it is one character class (see Strings+Patterns.swift).
    let simple: ClassPattern?

    init(_ source: String, node: NodeContext, attribute: String) throws {
        do {
            regex = try Regex(source)
                .matchingSemantics(.unicodeScalar)
                .wordBoundaryKind(.simple)
                .asciiOnlyWordCharacters()
                .asciiOnlyDigits()
                .asciiOnlyWhitespace()
        } catch {
            throw node.attributeError("attribute '\(attribute)' is not a regular expression Onyx can compile: '\(source)' (\(error))")
        }
        self.source = source
        simple = ClassPattern(source)
    }
}

/// RegexFullMatch: whether each element matches `pattern` as a whole.
package struct RegexFullMatchKernel: Kernel {
    let pattern: CompiledPattern

    package init(_ context: NodeContext) throws {
        guard let source = try context.string("pattern") else { throw context.attributeError("missing attribute 'pattern'") }
        pattern = try CompiledPattern(source, node: context, attribute: "pattern")
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil, x.dataType == .string else {
            throw OnyxError.unsupportedDataType("RegexFullMatch: X must be a string tensor")
        }
        return [TensorDescriptor(.bool, x.shape)]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let out = context.output(0).pointer(as: UInt8.self)
        for (i, text) in try context.strings(ofInput: 0).enumerated() {
            let matches = pattern.simple.map { $0.matchesWhole(text) } ?? ((try? pattern.regex.wholeMatch(in: text)) != nil)
            out[i] = matches ? 1 : 0
        }
    }
}

// MARK: - Tokenizer (com.microsoft)

/// Tokenizer (com.microsoft, as skl2onnx emits it before TfIdfVectorizer): splits each element
/// of X ([C] or [N, C]) into tokens and pads the rows to the most tokens with `pad_value`; Y is
/// [C, D] or [N, C, D].
///
/// - `separators` (regular expressions): the text between separator matches is a token; a
///   single empty separator makes every character a token.
/// - `tokenexp` (a regular expression): each leftmost match is a token; where none starts, the
///   search moves on one character.
/// - Tokens shorter than `mincharnum` characters are dropped; `mark` puts "\u{02}" before and
///   "\u{03}" after each element's tokens.
package struct TokenizerKernel: ValueShapedKernel {
    enum Mode {
        case separators([CompiledPattern])
        /// Separators that are character classes, scanned for.
        case simpleSeparators(ClassPattern)
        case characters
        case expression(CompiledPattern)
    }

    let mode: Mode
    let mark: Bool
    let minimumLength: Int
    let padValue: String

    package init(_ context: NodeContext) throws {
        guard let mark = try context.int("mark") else { throw context.attributeError("missing attribute 'mark'") }
        self.mark = mark != 0
        guard let minimumLength = try context.int("mincharnum"), minimumLength >= 1 else {
            throw context.attributeError("mincharnum must be given and ≥ 1")
        }
        self.minimumLength = minimumLength
        guard let padValue = try context.string("pad_value") else { throw context.attributeError("missing attribute 'pad_value'") }
        self.padValue = padValue
        let separators = try context.strings("separators")
        let expression = try context.string("tokenexp")
        switch (separators, expression) {
        case (let separators?, nil) where separators == [""]:
            mode = .characters
        case (let separators?, nil) where !separators.isEmpty:
            guard !separators.contains("") else {
                throw context.attributeError("an empty separator must be the only one (it selects character tokens)")
            }
            let patterns = try separators.map { try CompiledPattern($0, node: context, attribute: "separators") }
            let simple = patterns.compactMap(\.simple)
            if simple.count == patterns.count, let one = patterns.count == 1 ? simple[0] : ClassPattern.union(of: simple) {
                mode = .simpleSeparators(one)
            } else {
                mode = .separators(patterns)
            }
        case (nil, let expression?) where !expression.isEmpty:
            mode = .expression(try CompiledPattern(expression, node: context, attribute: "tokenexp"))
        default:
            throw context.attributeError("exactly one of 'separators' (non-empty) and 'tokenexp' must be given")
        }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try checkedInput(inputs)
        if x.shape.last == 0 { return [TensorDescriptor(.string, x.shape)] }
        let value = try x.requireConstant(op: "Tokenizer", what: "X")
        return [TensorDescriptor(.string, x.shape + [width(try value.strings().map(tokens))])]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let y = context.output(0)
        guard y.rank > context.input(0)!.rank else { return }  // an empty X
        let rows = try context.strings(ofInput: 0).map(tokens)
        let width = y.shape.last!
        guard self.width(rows) == width else { throw OnyxError.internalError("Tokenizer: token count differs from the plan") }
        store(rows, width: width, into: y.pointer(as: Int64.self), table: try context.stringTable())
    }

    package func evaluate(knowing inputs: [PlannedInput?], strings: StringTable) throws -> [(descriptor: TensorDescriptor, tensor: Tensor)] {
        let x = try checkedInput(inputs)
        if x.shape.last == 0 {
            return [(TensorDescriptor(.string, x.shape), Tensor(dataType: .string, shape: x.shape, storage: TensorStorage(byteCount: 0, strings: strings)))]
        }
        let rows = try x.requireConstant(op: "Tokenizer", what: "X").strings().map(tokens)
        let y = TensorDescriptor(.string, x.shape + [width(rows)])
        let tensor = Tensor(dataType: .string, shape: y.shape, storage: TensorStorage(byteCount: y.byteCount, strings: strings))
        store(rows, width: y.shape.last!, into: tensor.baseAddress.assumingMemoryBound(to: Int64.self), table: strings)
        return [(y, tensor)]
    }

    /// X, checked to be a string tensor `[C]` or `[N, C]`.
    private func checkedInput(_ inputs: [PlannedInput?]) throws -> PlannedInput {
        guard let x = inputs.first ?? nil, x.dataType == .string else {
            throw OnyxError.unsupportedDataType("Tokenizer: X must be a string tensor")
        }
        guard x.shape.count == 1 || x.shape.count == 2 else {
            throw OnyxError.shapeMismatch("Tokenizer: X must be [C] or [N, C], got \(shapeText(x.shape))")
        }
        return x
    }

    /// Writes each row's tokens, padded to `width` (the widest row's count), as handles in `table`.
    private func store(_ rows: [[String]], width: Int, into handles: UnsafeMutablePointer<Int64>, table: StringTable) {
        let pad = table.intern(padValue)
        for (i, row) in rows.enumerated() {
            for k in 0..<width { handles[i * width + k] = k < row.count ? table.intern(row[k]) : pad }
        }
    }

    /// The output's last extent: the most tokens of any element.
    private func width(_ rows: [[String]]) -> Int {
        rows.map(\.count).max() ?? 0
    }

    /// The tokens of one element, marks included.
    private func tokens(_ text: String) -> [String] {
        var found: [String] = []
        switch mode {
        case .characters:
            found = text.map(String.init)
        case .separators(let patterns):
            var start = text.startIndex, cursor = text.startIndex
            while cursor < text.endIndex {
                // The earliest separator match at or after the cursor; ties go to the longest.
                var best: Range<String.Index>?
                for pattern in patterns {
                    guard let match = try? pattern.regex.firstMatch(in: text[cursor...]), !match.range.isEmpty else { continue }
                    if best == nil || match.range.lowerBound < best!.lowerBound
                        || (match.range.lowerBound == best!.lowerBound && match.range.upperBound > best!.upperBound) {
                        best = match.range
                    }
                }
                guard let separator = best else { break }
                found.append(String(text[start..<separator.lowerBound]))
                start = separator.upperBound
                cursor = separator.upperBound
            }
            found.append(String(text[start...]))
        case .simpleSeparators(let pattern):
            var start = text.startIndex
            for separator in pattern.matches(in: text) {
                found.append(String(text[start..<separator.lowerBound]))
                start = separator.upperBound
            }
            found.append(String(text[start...]))
        case .expression(let pattern) where pattern.simple != nil:
            found = pattern.simple!.matches(in: text).map { String(text[$0]) }
        case .expression(let pattern):
            var cursor = text.startIndex
            while cursor < text.endIndex {
                guard let match = try? pattern.regex.firstMatch(in: text[cursor...]) else { break }
                if match.range.isEmpty {
                    cursor = text.index(after: match.range.lowerBound)
                    continue
                }
                found.append(String(text[match.range]))
                cursor = match.range.upperBound
            }
        }
        found.removeAll { $0.count < minimumLength }
        return mark ? ["\u{02}"] + found + ["\u{03}"] : found
    }
}
