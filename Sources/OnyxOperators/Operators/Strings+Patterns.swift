// A fast path for the regular expressions text pipelines actually use: one character class,
// alone or repeated (`[a-zA-Z0-9_]+`, `\w+`, `\s+`, `.`), which is what skl2onnx writes for
// Tokenizer. Swift's Regex takes microseconds per match; a scan over the text's scalars takes
// nanoseconds per character. Any other pattern runs through Regex.

/// A set of Unicode scalars: ASCII ones by bitmap; every non-ASCII scalar is in or out as a whole
/// (ONNX patterns are RE2's, whose `\w`, `\d` and `\s` are ASCII).
struct ScalarClass: Sendable, Equatable {
    private var low: UInt64 = 0
    private var high: UInt64 = 0
    private var nonASCII = false

    func contains(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        if value < 64 { return low & (1 << value) != 0 }
        if value < 128 { return high & (1 << (value - 64)) != 0 }
        return nonASCII
    }

    mutating func insert(_ range: ClosedRange<UInt32>) {
        for value in range where value < 128 {
            if value < 64 { low |= 1 << value } else { high |= 1 << (value - 64) }
        }
    }

    mutating func formUnion(_ other: ScalarClass) {
        low |= other.low
        high |= other.high
        nonASCII = nonASCII || other.nonASCII
    }

    func inverted() -> ScalarClass {
        ScalarClass(low: ~low, high: ~high, nonASCII: !nonASCII)
    }

    static let word: ScalarClass = {
        var set = ScalarClass()
        set.insert(48...57)
        set.insert(65...90)
        set.insert(97...122)
        set.insert(95...95)
        return set
    }()
    static let digit: ScalarClass = {
        var set = ScalarClass()
        set.insert(48...57)
        return set
    }()
    static let space: ScalarClass = {
        var set = ScalarClass()
        for value: UInt32 in [9, 10, 11, 12, 13, 32] { set.insert(value...value) }
        return set
    }()
    /// `.`: anything but a line feed.
    static let any = ScalarClass(low: ~(1 << 10), high: ~0, nonASCII: true)
}

/// A pattern that is one character class, matched once (`.`) or as a run (`[a-z]+`).
struct ClassPattern: Sendable, Equatable {
    let scalars: ScalarClass
    let repeated: Bool

    /// Parses `source`, or returns `nil` if it is not of this simple form.
    init?(_ source: String) {
        var rest = Substring(source).unicodeScalars[...]
        var repeated = false
        if rest.last == "+" {
            repeated = true
            rest = rest.dropLast()
        }
        guard let (scalars, remainder) = Self.atom(rest), remainder.isEmpty else { return nil }
        self.scalars = scalars
        self.repeated = repeated
    }

    /// Where each match lies: leftmost first, each as long as it can be, none overlapping.
    func matches(in text: String) -> [Range<String.Index>] {
        var result: [Range<String.Index>] = []
        let view = text.unicodeScalars
        var index = view.startIndex
        while index < view.endIndex {
            guard scalars.contains(view[index]) else {
                index = view.index(after: index)
                continue
            }
            let start = index
            index = view.index(after: index)
            if repeated {
                while index < view.endIndex && scalars.contains(view[index]) { index = view.index(after: index) }
            }
            result.append(start..<index)
        }
        return result
    }

    /// One pattern matching a single scalar of any of `patterns`, if each is a single class
    /// matched once (the separators skl2onnx lists: " ", ".", ",", …).
    static func union(of patterns: [ClassPattern]) -> ClassPattern? {
        guard !patterns.isEmpty, patterns.allSatisfy({ !$0.repeated }) else { return nil }
        var scalars = ScalarClass()
        for pattern in patterns { scalars.formUnion(pattern.scalars) }
        return ClassPattern(scalars: scalars, repeated: false)
    }

    private init(scalars: ScalarClass, repeated: Bool) {
        self.scalars = scalars
        self.repeated = repeated
    }

    /// Whether the whole of `text` matches.
    func matchesWhole(_ text: String) -> Bool {
        let view = text.unicodeScalars
        guard !view.isEmpty, repeated || view.count == 1 else { return false }
        return view.allSatisfy(scalars.contains)
    }

    /// One class at the front of `source`: `.`, `\w` and kin, a bracket expression, or a plain
    /// ASCII character; and what follows it.
    private static func atom(_ source: Substring.UnicodeScalarView.SubSequence)
        -> (ScalarClass, Substring.UnicodeScalarView.SubSequence)?
    {
        guard let first = source.first else { return nil }
        let rest = source.dropFirst()
        switch first {
        case ".": return (.any, rest)
        case "\\":
            guard let escaped = rest.first, let set = escape(escaped) else { return nil }
            return (set, rest.dropFirst())
        case "[":
            return bracket(rest)
        default:
            guard first.isASCII, !"()|*+?{}^$".unicodeScalars.contains(first) else { return nil }
            var set = ScalarClass()
            set.insert(first.value...first.value)
            return (set, rest)
        }
    }

    /// `\w`, `\d`, `\s`, their negations, and escaped punctuation.
    private static func escape(_ scalar: Unicode.Scalar) -> ScalarClass? {
        switch scalar {
        case "w": return .word
        case "W": return ScalarClass.word.inverted()
        case "d": return .digit
        case "D": return ScalarClass.digit.inverted()
        case "s": return .space
        case "S": return ScalarClass.space.inverted()
        default:
            guard scalar.isASCII, !(scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)) else { return nil }
            var set = ScalarClass()
            set.insert(scalar.value...scalar.value)
            return set
        }
    }

    /// The inside of `[...]` (after the `[`): ranges, single ASCII characters and escapes, with a
    /// leading `^` for the complement.
    private static func bracket(_ source: Substring.UnicodeScalarView.SubSequence)
        -> (ScalarClass, Substring.UnicodeScalarView.SubSequence)?
    {
        var rest = source
        var negated = false
        if rest.first == "^" {
            negated = true
            rest = rest.dropFirst()
        }
        var set = ScalarClass()
        var first = true
        while let scalar = rest.first, scalar != "]" || first {
            rest = rest.dropFirst()
            first = false
            var low: UInt32
            if scalar == "\\" {
                guard let escaped = rest.first else { return nil }
                rest = rest.dropFirst()
                switch escaped {
                case "w": set.formUnion(.word); continue
                case "d": set.formUnion(.digit); continue
                case "s": set.formUnion(.space); continue
                default:
                    guard escaped.isASCII, !escaped.properties.isAlphabetic, !("0"..."9").contains(escaped) else { return nil }
                    low = escaped.value
                }
            } else {
                guard scalar.isASCII, scalar != "[" else { return nil }
                low = scalar.value
            }
            if rest.first == "-", let upper = rest.dropFirst().first, upper != "]" {
                guard upper.isASCII, upper != "\\", upper.value >= low else { return nil }
                set.insert(low...upper.value)
                rest = rest.dropFirst(2)
            } else {
                set.insert(low...low)
            }
        }
        guard rest.first == "]" else { return nil }
        return (negated ? set.inverted() : set, rest.dropFirst())
    }
}
