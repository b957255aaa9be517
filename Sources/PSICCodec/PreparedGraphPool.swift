import Foundation
import PSICEngine

/// Prepared graphs keyed by what they compute and the size they compute it at, pooled so that
/// concurrent encodes of same-sized images each get their own buffers while images processed one
/// after another reuse pipelines, weights and buffers.
final class PreparedGraphPool: @unchecked Sendable {
    struct Key: Hashable {
        let kind: String
        let height: Int
        let width: Int
    }

    private let backend: Backend
    private let lock = NSLock()
    private var idle: [Key: [PreparedGraph]] = [:]

    init(backend: Backend) {
        self.backend = backend
    }

    /// Runs `body` with a prepared graph for `key`, building it with `build` when none is idle.
    func with<T>(_ key: Key, build: () throws -> Graph, _ body: (PreparedGraph) throws -> T) throws -> T {
        lock.lock()
        let cached = idle[key]?.popLast()
        lock.unlock()
        let prepared = try cached ?? backend.prepare(try build())
        defer {
            lock.lock()
            idle[key, default: []].append(prepared)
            lock.unlock()
        }
        return try body(prepared)
    }
}
