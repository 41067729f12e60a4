import Synchronization

/// A dictionary behind a mutex, for registries read on every request and written rarely.
final class LockedDictionary<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private let storage: Mutex<[Key: Value]>

    init(_ initial: [Key: Value] = [:]) {
        storage = Mutex(initial)
    }

    func get(_ key: Key) -> Value? { storage.withLock { $0[key] } }
    func set(_ key: Key, _ value: Value?) { storage.withLock { $0[key] = value } }
    var keys: [Key] { storage.withLock { Array($0.keys) } }
    var values: [Value] { storage.withLock { Array($0.values) } }
}
