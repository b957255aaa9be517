import Foundation
import PSICEngine

/// Prepared graphs keyed by what they compute and the size they compute it at, pooled so that
/// concurrent encodes of same-sized images each get their own buffers while images processed one
/// after another reuse pipelines, weights and buffers.
///
/// Idle graphs are kept up to `idleBytesLimit` bytes of tensor memory: a server or a batch run
/// sees many image sizes, and every size's graphs hold buffers proportional to its pixels (GBs
/// for a large photo), so an unbounded pool grew without end. Over the limit, the least
/// recently used idle graphs first give their tensor memory back (`releaseTensorMemory`: the
/// CPU's keep their prepared layers and take the memory again on their next run), and are
/// dropped when that is not enough or more than `idleCountLimit` graphs are idle.
final class PreparedGraphPool: @unchecked Sendable {
    struct Key: Hashable {
        let kind: String
        let height: Int
        let width: Int
    }

    private let backend: Backend
    let idleBytesLimit: Int
    /// Idle graphs kept at most, released or not (a released graph still holds its kernels and
    /// converted weights).
    let idleCountLimit: Int
    private let lock = NSLock()
    /// Idle graphs, least recently returned first (at most `idleCountLimit`, so scans are short).
    private var idle: [Entry] = []
    private var idleBytes = 0

    private struct Entry {
        let key: Key
        let graph: PreparedGraph
        var bytes: Int
    }

    init(backend: Backend, idleBytesLimit: Int, idleCountLimit: Int = 128) {
        self.backend = backend
        self.idleBytesLimit = idleBytesLimit
        self.idleCountLimit = idleCountLimit
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
        return idle.count
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
            let cached = idle.lastIndex { $0.key == key }.map { idle.remove(at: $0) }
            if let cached { idleBytes -= cached.bytes }
            lock.unlock()
            let prepared: PreparedGraph
            if let cached {
                taken.append((key, cached.graph))
                try reserve(cached.graph)
                prepared = cached.graph
            } else {
                prepared = try prepare(try build(i))
                taken.append((key, prepared))
            }
            graphs.append(prepared)
        }
        return try body(graphs)
    }

    /// Prepares `graph` (a large photo after a batch of other sizes may need idle graphs dropped).
    private func prepare(_ graph: Graph) throws -> PreparedGraph {
        try droppingIdleOnOutOfMemory { try backend.prepare(graph) }
    }

    /// Takes back a released graph's memory.
    private func reserve(_ graph: PreparedGraph) throws {
        try droppingIdleOnOutOfMemory { try graph.reserveTensorMemory() }
    }

    /// Runs `body`; when it is out of memory while idle graphs hold some, drops them all and
    /// runs it once more.
    private func droppingIdleOnOutOfMemory<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as EngineError where error.isOutOfMemory && dropIdle() > 0 {
            return try body()
        }
    }

    /// Releases every idle graph's tensor memory (an image about to need more than is free).
    func releaseIdle() {
        lock.lock()
        defer { lock.unlock() }
        for i in idle.indices { releaseLocked(i) }
    }

    /// Has idle entry `i` release its tensor memory and recounts its bytes. Call with the lock held.
    private func releaseLocked(_ i: Int) {
        guard idle[i].graph.releaseTensorMemory() else { return }
        let bytes = idle[i].graph.memoryBytes
        idleBytes += bytes - idle[i].bytes
        idle[i].bytes = bytes
    }

    /// Drops every idle graph; returns how many there were.
    private func dropIdle() -> Int {
        lock.lock()
        let dropped = idle
        idle = []
        idleBytes = 0
        lock.unlock()
        return dropped.count  // released here, outside the lock
    }

    /// Returns graphs to the idle set. While the idle set is over budget, the least recently
    /// returned graphs release their tensor memory, then, if still over (or over the count),
    /// are dropped (a graph alone over budget that cannot release is dropped at once).
    private func giveBack(_ graphs: [(Key, PreparedGraph)]) {
        lock.lock()
        for (key, prepared) in graphs {
            let entry = Entry(key: key, graph: prepared, bytes: prepared.memoryBytes)
            idle.append(entry)
            idleBytes += entry.bytes
        }
        var i = 0
        while idleBytes > idleBytesLimit, i < idle.count {
            releaseLocked(i)
            i += 1
        }
        var dropCount = 0
        while idleBytes > idleBytesLimit || idle.count - dropCount > idleCountLimit, dropCount < idle.count {
            idleBytes -= idle[dropCount].bytes
            dropCount += 1
        }
        let dropped = Array(idle.prefix(dropCount))
        idle.removeFirst(dropCount)
        lock.unlock()
        withExtendedLifetime(dropped) {}  // released here, outside the lock
    }
}
