@testable import PSICCodec
import PSICEngine
import XCTest

/// A backend whose prepared graphs only count their preparations: the pool's seam.
private final class CountingBackend: Backend, @unchecked Sendable {
    let name = "counting"
    var prepared = 0

    final class Prepared: PreparedGraph {
        let graph: Graph
        init(graph: Graph) { self.graph = graph }
        func run(inputs: [TensorID: Tensor], collectTimings: Bool) throws -> GraphResult {
            GraphResult(outputs: [:], timings: [])
        }
    }

    func prepare(_ graph: Graph) throws -> PreparedGraph {
        prepared += 1
        return Prepared(graph: graph)
    }
}

/// A graph of one float input of `side`×`side`×1: `side² · 4` bytes of tensor memory.
private func graph(side: Int) -> Graph {
    var g = Graph()
    let x = g.addInput("x", shape: TensorShape(channels: 1, height: side, width: side), type: .float32)
    g.markOutput(x)
    return g
}

/// A backend with room for `room` live prepared graphs: preparing one more is out of memory,
/// as on a machine whose memory idle graphs hold.
private final class RoomBackend: Backend, @unchecked Sendable {
    let name = "room"
    let room: Int
    /// Runs out of device memory (a GPU) instead of host memory.
    let device: Bool
    var live = 0
    init(room: Int, device: Bool = false) { (self.room, self.device) = (room, device) }

    final class Prepared: PreparedGraph {
        let graph: Graph
        let backend: RoomBackend
        init(graph: Graph, backend: RoomBackend) { (self.graph, self.backend) = (graph, backend) }
        deinit { backend.live -= 1 }
        func run(inputs: [TensorID: Tensor], collectTimings: Bool) throws -> GraphResult {
            GraphResult(outputs: [:], timings: [])
        }
    }

    func prepare(_ graph: Graph) throws -> PreparedGraph {
        guard live < room else {
            if device { throw EngineError.outOfDeviceMemory(backend: name, bytes: graph.largestTensorBytes) }
            throw EngineError.outOfMemory(backend: name, bytes: graph.largestTensorBytes, available: 0)
        }
        live += 1
        return Prepared(graph: graph, backend: self)
    }
}

/// A backend whose graphs can give their memory back, as the CPU's do: a released graph holds
/// nothing until `reserveTensorMemory`, which fails while `refuse` is set.
private final class ReleasingBackend: Backend, @unchecked Sendable {
    let name = "releasing"
    var prepared = 0
    var refuse = false

    final class Prepared: PreparedGraph {
        let graph: Graph
        let backend: ReleasingBackend
        var released = false
        init(graph: Graph, backend: ReleasingBackend) { (self.graph, self.backend) = (graph, backend) }
        var memoryBytes: Int { released ? 0 : graph.tensors.reduce(0) { $0 + $1.shape.count * 4 } }
        func releaseTensorMemory() -> Bool {
            defer { released = true }
            return !released
        }
        func reserveTensorMemory() throws {
            guard released else { return }
            if backend.refuse { throw EngineError.outOfMemory(backend: backend.name, bytes: 1, available: 0) }
            released = false
        }
        func run(inputs: [TensorID: Tensor], collectTimings: Bool) throws -> GraphResult {
            GraphResult(outputs: [:], timings: [])
        }
    }

    func prepare(_ graph: Graph) throws -> PreparedGraph {
        prepared += 1
        return Prepared(graph: graph, backend: self)
    }
}

final class PreparedGraphPoolTests: XCTestCase {
    func testOutOfMemoryDropsIdleGraphsAndRetries() throws {
        let backend = RoomBackend(room: 2)
        let pool = PreparedGraphPool(backend: backend, idleBytesLimit: 1 << 30)
        try pool.with(key(8), build: { graph(side: 8) }) { _ in }
        try pool.with(key(16), build: { graph(side: 16) }) { _ in }
        XCTAssertEqual(pool.idleCount, 2)
        // A third size: no room until the idle graphs go.
        try pool.with(key(32), build: { graph(side: 32) }) { _ in }
        XCTAssertEqual(backend.live, 1)
        XCTAssertEqual(pool.idleCount, 1)
        XCTAssertEqual(pool.idleMemoryBytes, 32 * 32 * 4)
        // Two at once need room for two: the idle one goes, the batch runs.
        try pool.withBatch([key(64), key(64)], build: { _ in graph(side: 64) }) { XCTAssertEqual($0.count, 2) }
        // With nothing idle to drop, the error reaches the caller.
        let full = RoomBackend(room: 1)
        let strict = PreparedGraphPool(backend: full, idleBytesLimit: 1 << 30)
        XCTAssertThrowsError(try strict.withBatch([key(8), key(8)], build: { _ in graph(side: 8) }) { _ in }) { error in
            guard case EngineError.outOfMemory = error else { return XCTFail("\(error)") }
        }
    }

    /// A GPU out of memory is retried the same way.
    func testDeviceOutOfMemoryDropsIdleGraphsAndRetries() throws {
        let backend = RoomBackend(room: 1, device: true)
        let pool = PreparedGraphPool(backend: backend, idleBytesLimit: 1 << 30)
        try pool.with(key(8), build: { graph(side: 8) }) { _ in }
        try pool.with(key(16), build: { graph(side: 16) }) { _ in }
        XCTAssertEqual(backend.live, 1)
        XCTAssertEqual(pool.idleMemoryBytes, 16 * 16 * 4)
        XCTAssertThrowsError(try pool.withBatch([key(8), key(8)], build: { _ in graph(side: 8) }) { _ in }) { error in
            guard case EngineError.outOfDeviceMemory = error else { return XCTFail("\(error)") }
        }
    }

    private func key(_ side: Int) -> PreparedGraphPool.Key { .init(kind: "test", height: side, width: side) }


    func testReusesGraphsOfTheSameSize() throws {
        let backend = CountingBackend()
        let pool = PreparedGraphPool(backend: backend, idleBytesLimit: 1 << 20)
        for _ in 0..<3 { try pool.with(key(8), build: { graph(side: 8) }) { _ in } }
        XCTAssertEqual(backend.prepared, 1)
        XCTAssertEqual(pool.idleCount, 1)
        XCTAssertEqual(pool.idleMemoryBytes, 8 * 8 * 4)
    }

    func testIdleMemoryStaysWithinTheLimitLeastRecentlyUsedFirst() throws {
        let backend = CountingBackend()
        // Room for two 16×16 graphs (1 KiB each), not three.
        let pool = PreparedGraphPool(backend: backend, idleBytesLimit: 2048)
        func use(_ kind: String) throws {
            try pool.with(.init(kind: kind, height: 16, width: 16), build: { graph(side: 16) }) { _ in }
        }
        try use("a"); try use("b"); try use("a")
        XCTAssertEqual(backend.prepared, 2)
        try use("c")  // three idle: "b", the least recently used, is dropped
        XCTAssertEqual(pool.idleCount, 2)
        XCTAssertEqual(pool.idleMemoryBytes, 2048)
        try use("a"); try use("c")
        XCTAssertEqual(backend.prepared, 3)
        try use("b")
        XCTAssertEqual(backend.prepared, 4)
    }

    /// Over the limit, graphs that can release their memory are kept released instead of
    /// dropped: reusing one prepares nothing and takes its memory back.
    func testOverTheLimitGraphsReleaseTheirMemoryBeforeBeingDropped() throws {
        let backend = ReleasingBackend()
        let pool = PreparedGraphPool(backend: backend, idleBytesLimit: 2048, idleCountLimit: 3)
        func use(_ kind: String) throws -> ReleasingBackend.Prepared {
            try pool.with(.init(kind: kind, height: 16, width: 16), build: { graph(side: 16) }) { $0 as! ReleasingBackend.Prepared }
        }
        let a = try use("a")
        _ = try use("b"); _ = try use("c")  // three of 1 KiB idle: "a", the least recently used, releases
        XCTAssertEqual(pool.idleCount, 3)
        XCTAssertEqual(pool.idleMemoryBytes, 2048)
        XCTAssertTrue(a.released)
        XCTAssertTrue(try use("a") === a, "kept, not prepared again")
        XCTAssertEqual(backend.prepared, 3)
        XCTAssertEqual(pool.idleMemoryBytes, 2048, "a took its memory back; b, now the oldest, released")
        _ = try use("d")  // a fourth idle graph: over the count, the oldest ("b") is dropped
        XCTAssertEqual(pool.idleCount, 3)
        _ = try use("b")
        XCTAssertEqual(backend.prepared, 5)
        // releaseIdle empties the idle memory without dropping anything.
        pool.releaseIdle()
        XCTAssertEqual(pool.idleMemoryBytes, 0)
        XCTAssertEqual(pool.idleCount, 3)
    }

    /// A released graph that cannot take its memory back makes the pool drop its other idle
    /// graphs and try once more, like a prepare; when that fails too, the error reaches the caller.
    func testTakingMemoryBackFailsLikeAPrepare() throws {
        let backend = ReleasingBackend()
        let pool = PreparedGraphPool(backend: backend, idleBytesLimit: 1 << 20)
        let k = PreparedGraphPool.Key(kind: "a", height: 16, width: 16)
        try pool.with(k, build: { graph(side: 16) }) { _ in }
        try pool.with(.init(kind: "b", height: 16, width: 16), build: { graph(side: 16) }) { _ in }
        pool.releaseIdle()
        backend.refuse = true
        XCTAssertThrowsError(try pool.with(k, build: { graph(side: 16) }) { _ in }) { error in
            XCTAssertTrue((error as? EngineError)?.isOutOfMemory == true)
        }
        XCTAssertEqual(pool.idleCount, 1, "b was dropped to make room; a went back, released")
        backend.refuse = false
        try pool.with(k, build: { graph(side: 16) }) { _ in }
        XCTAssertEqual(backend.prepared, 2)
    }

    func testGraphLargerThanTheLimitIsNotKept() throws {
        let backend = CountingBackend()
        let pool = PreparedGraphPool(backend: backend, idleBytesLimit: 100)
        for _ in 0..<2 { try pool.with(key(64), build: { graph(side: 64) }) { _ in } }
        XCTAssertEqual(backend.prepared, 2)
        XCTAssertEqual(pool.idleCount, 0)
        XCTAssertEqual(pool.idleMemoryBytes, 0)
    }

    func testBatchTakesDistinctInstancesAndKeepsThem() throws {
        let backend = CountingBackend()
        let pool = PreparedGraphPool(backend: backend, idleBytesLimit: 1 << 20)
        try pool.withBatch([key(8), key(8), key(9)], build: { i in graph(side: i == 2 ? 9 : 8) }) { graphs in
            XCTAssertFalse(graphs[0] === graphs[1])
        }
        try pool.withBatch([key(8), key(8)], build: { _ in graph(side: 8) }) { _ in }
        XCTAssertEqual(backend.prepared, 3)
        XCTAssertEqual(pool.idleCount, 3)
    }
}
