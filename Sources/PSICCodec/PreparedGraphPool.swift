import Foundation
import PSICEngine

/// Prepared graphs keyed by what they compute and the size they compute it at, pooled so that
/// concurrent encodes of same-sized images each get their own buffers while images processed one
/// after another reuse pipelines, weights and buffers.
///
/// Idle graphs are kept up to `idleBytesLimit` bytes of tensor memory, least recently used
/// dropped first: a server or a batch run sees many image sizes, and every size's graphs hold
/// buffers proportional to its pixels (GBs for a large photo), so an unbounded pool grew
/// without end.
final class PreparedGraphPool: @unchecked Sendable {
    struct Key: Hashable {
        let kind: String
        let height: Int
        let width: Int
    }

    private let backend: Backend
    let idleBytesLimit: Int
    private let lock = NSLock()
    private var idle: [Key: [Entry]] = [:]
    private var idleBytes = 0
    private var clock = 0

    private struct Entry {
        let graph: PreparedGraph
        let bytes: Int
        /// When it was last returned (larger: more recent).
        let stamp: Int
    }

    init(backend: Backend, idleBytesLimit: Int) {
        self.backend = backend
        self.idleBytesLimit = idleBytesLimit
    }

    /// Bytes held by idle graphs now (tests, diagnostics).
    var idleMemoryBytes: Int {
        lock.lock()
        defer { lock.unlock() }
        return idleBytes
    }

    /// Idle graphs now (tests, diagnostics).
    var idleCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return idle.values.reduce(0) { $0 + $1.count }
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
        defer { giveBack(taken) }
        var graphs: [PreparedGraph] = []
        for (i, key) in keys.enumerated() {
            lock.lock()
            let cached = idle[key]?.popLast()
            if let cached { idleBytes -= cached.bytes }
            lock.unlock()
            let prepared = try cached?.graph ?? prepare(try build(i))
            taken.append((key, prepared))
            graphs.append(prepared)
        }
        return try body(graphs)
    }

    /// Prepares `graph`; when the backend is out of memory while idle graphs hold some, drops
    /// them all and tries once more (a large photo after a batch of other sizes).
    private func prepare(_ graph: Graph) throws -> PreparedGraph {
        do {
            return try backend.prepare(graph)
        } catch let error as EngineError where error.isOutOfMemory && dropIdle() > 0 {
            return try backend.prepare(graph)
        }
    }

    /// Drops every idle graph; returns how many there were.
    private func dropIdle() -> Int {
        lock.lock()
        let dropped = idle
        idle = [:]
        idleBytes = 0
        lock.unlock()
        return dropped.values.reduce(0) { $0 + $1.count }  // released here, outside the lock
    }

    /// Returns graphs to the idle set, then drops the least recently returned idle graphs while
    /// the idle set is over budget (a graph alone over budget is dropped at once).
    private func giveBack(_ graphs: [(Key, PreparedGraph)]) {
        lock.lock()
        defer { lock.unlock() }
        for (key, prepared) in graphs {
            clock += 1
            let entry = Entry(graph: prepared, bytes: prepared.memoryBytes, stamp: clock)
            idle[key, default: []].append(entry)
            idleBytes += entry.bytes
        }
        while idleBytes > idleBytesLimit {
            guard let (key, index) = idle.flatMap({ key, entries in entries.indices.map { (key, $0) } })
                .min(by: { idle[$0.0]![$0.1].stamp < idle[$1.0]![$1.1].stamp }) else { break }
            let dropped = idle[key]!.remove(at: index)
            if idle[key]!.isEmpty { idle[key] = nil }
            idleBytes -= dropped.bytes
        }
    }
}
