import Synchronization

/// The strings that the elements of string tensors stand for.
///
/// A string tensor stores one 8-byte handle per element, an index into a table. So the executor
/// moves, slices, gathers and plans memory for strings exactly as it does for `int64`, and only
/// the operators that look at text (StringNormalizer, Cast, LabelEncoder …) go to the table.
///
/// Two rules make handles safe to compare and to zero-fill:
/// - Handle 0 is the empty string in every table, so zeroed bytes are a tensor of empty strings.
/// - A table gives equal strings equal handles (it interns), and a table made with a `parent`
///   answers the parent's strings with the parent's handles. A run's table has the session's
///   table as parent: constants and run values share one numbering.
///
/// A table only grows, under a lock. Handles a table did not hand out are an error to resolve,
/// never an out-of-bounds read.
public final class StringTable: Sendable {
    private struct Entries {
        var strings: [String] = [""]
        var handles: [String: Int64] = ["": 0]
    }

    /// The table whose first `inherited` strings this one shares.
    private let parent: StringTable?
    /// How many of the parent's strings this table answers for (the parent's count when it was made).
    private let inherited: Int
    private let entries: Mutex<Entries>

    /// An empty table: handle 0, the empty string, only.
    public convenience init() {
        self.init(parent: nil)
    }

    /// A table that answers `parent`'s strings, as they are now, with `parent`'s handles and adds
    /// its own after them.
    public init(parent: StringTable?) {
        self.parent = parent
        self.inherited = parent?.count ?? 0
        var own = Entries()
        if parent != nil {
            // The parent holds the empty string at 0; this table's own handles start after.
            own.strings = []
            own.handles = [:]
        }
        self.entries = Mutex(own)
    }

    /// How many strings the table (with what it inherits) holds.
    public var count: Int {
        inherited + entries.withLock { $0.strings.count }
    }

    /// The handle of `string`, adding it if the table does not have it yet.
    public func intern(_ string: String) -> Int64 {
        if let parent, let handle = parent.lookup(string), handle < inherited { return handle }
        return entries.withLock { entries in
            if let handle = entries.handles[string] { return handle }
            let handle = Int64(inherited + entries.strings.count)
            entries.strings.append(string)
            entries.handles[string] = handle
            return handle
        }
    }

    /// The handles of `strings`, in order, adding the ones the table lacks.
    public func intern<S: Sequence<String>>(contentsOf strings: S) -> [Int64] {
        strings.map(intern)
    }

    /// The handle of `string` if the table holds it.
    public func lookup(_ string: String) -> Int64? {
        if let parent, let handle = parent.lookup(string), handle < inherited { return handle }
        return entries.withLock { $0.handles[string] }
    }

    /// The string that `handle` stands for.
    ///
    /// - Throws: ``OnyxError`` with code `.invalidInput` for a handle the table never handed out.
    public func string(_ handle: Int64) throws -> String {
        if handle >= 0 && handle < inherited, let parent { return try parent.string(handle) }
        let local = Int(truncatingIfNeeded: handle) - inherited
        return try entries.withLock { entries in
            guard handle >= 0, local >= 0, local < entries.strings.count else {
                throw OnyxError.invalidInput("string handle \(handle) is not in the table of \(inherited + entries.strings.count) strings")
            }
            return entries.strings[local]
        }
    }

    /// The strings that `handles` stand for, in order.
    public func strings<C: Collection<Int64>>(_ handles: C) throws -> [String] {
        try handles.map(string)
    }

    /// Whether this table answers every handle `other` hands out with the same string: it is
    /// `other`, or `other` is an ancestor whose strings it inherited in full.
    package func extends(_ other: StringTable) -> Bool {
        var table: StringTable? = self
        var reach = Int.max
        while let current = table {
            if current === other { return current.count <= reach }
            reach = min(reach, current.inherited)
            table = current.parent
        }
        return false
    }
}
