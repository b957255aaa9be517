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
        try withBatch([key], build: { _ in try build() }) { try body($0[0]) }
    }

    /// Runs `body` with one prepared graph per key: distinct instances even where keys repeat,
    /// so that a batch can run them all at once. `build(i)` builds the graph of `keys[i]`.
    func withBatch<T>(_ keys: [Key], build: (Int) throws -> Graph, _ body: ([PreparedGraph]) throws -> T) throws -> T {
        var taken: [(Key, PreparedGraph)] = []
        // Whatever was checked out or built goes back to the pool, also when a build fails.
        defer {
            lock.lock()
            for (key, prepared) in taken { idle[key, default: []].append(prepared) }
            lock.unlock()
        }
        var graphs: [PreparedGraph] = []
        for (i, key) in keys.enumerated() {
            lock.lock()
            let cached = idle[key]?.popLast()
            lock.unlock()
            let prepared = try cached ?? backend.prepare(try build(i))
            taken.append((key, prepared))
            graphs.append(prepared)
        }
        return try body(graphs)
    }
}
