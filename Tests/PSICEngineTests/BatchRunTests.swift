import Foundation
import XCTest
@testable import PSICEngine
import PSICCPU
@testable import PSICVulkan

/// `Backend.runBatch` must give exactly what running each prepared graph alone gives, for
/// graphs of different shapes in one batch, and when one graph appears twice.
final class BatchRunTests: XCTestCase {
    private func graphs(_ rng: inout TestRandom) throws -> [(Graph, TensorID, TensorID)] {
        var out: [(Graph, TensorID, TensorID)] = []
        let analysis = try VulkanTransformTests.analysis(n: 8, c: 8, rng: &rng)
        let ints = [try randomIntLayer(&rng, name: "i0", transposed: false, ci: 6, co: 8, k: 3, s: 1,
                                       activation: .leakyReLU(slopeNumerator: 32))]
        for (h, w) in [(32, 48), (16, 16)] {
            var g = Graph()
            let x = g.addInput("x", shape: TensorShape(channels: 3, height: h, width: w), type: .float32)
            var v = g.whole(x)
            for op in analysis { v = try g.append(op, input: v) }
            g.markOutput(v.tensor)
            out.append((g, x, v.tensor))
            var gi = Graph()
            let xi = gi.addInput("xi", shape: TensorShape(channels: 6, height: h / 4, width: w / 4), type: .int32)
            var vi = gi.whole(xi)
            for l in ints { vi = try gi.append(.intConv2d(l), input: vi) }
            gi.markOutput(vi.tensor)
            out.append((gi, xi, vi.tensor))
        }
        return out
    }

    private func check(_ backend: Backend) throws {
        var rng = TestRandom(seed: 11)
        let gs = try graphs(&rng)
        let inputs = gs.map { g, x, _ -> Tensor in
            let shape = g.shape(of: x)
            return g.tensors[x.index].scalarType == .float32
                ? Tensor(shape: shape, floats: rng.floats(shape.count))
                : Tensor(shape: shape, ints: (0..<shape.count).map { _ in Int32(rng.int(-1000, 1000)) })
        }
        let prepared = try gs.map { try backend.prepare($0.0) }
        let runs = zip(prepared, zip(gs, inputs)).map { p, gi in BatchRun(graph: p, inputs: [gi.0.1: gi.1]) }
        let batched = try backend.runBatch(runs)
        for (i, (g, x, y)) in gs.enumerated() {
            let alone = try backend.prepare(g).run(inputs: [x: inputs[i]]).outputs[y]!
            XCTAssertEqual(batched[i].outputs[y]?.storage, alone.storage, "graph \(i) differs when batched")
        }
        // The same prepared graph twice: it owns one set of buffers, so the runs go one by one.
        let (g0, x0, y0) = gs[1]
        let other = Tensor(shape: g0.shape(of: x0), ints: (0..<g0.shape(of: x0).count).map { _ in Int32(rng.int(-1000, 1000)) })
        let twice = try backend.runBatch([BatchRun(graph: prepared[1], inputs: [x0: inputs[1]]),
                                          BatchRun(graph: prepared[1], inputs: [x0: other])])
        XCTAssertEqual(twice[0].outputs[y0]?.storage, try backend.prepare(g0).run(inputs: [x0: inputs[1]]).outputs[y0]?.storage)
        XCTAssertEqual(twice[1].outputs[y0]?.storage, try backend.prepare(g0).run(inputs: [x0: other]).outputs[y0]?.storage)
    }

    func testCPUBatchEqualsSingleRuns() throws {
        try check(CPUBackend())
    }

    func testVulkanBatchEqualsSingleRuns() throws {
        try check(try SharedVulkan.get())
    }
    /// Several threads preparing, recording and running graphs at once (what `psic encode -j 2`
    /// and library users do): every result must equal the serial one. Under the validation
    /// layer (Tools/scripts/vulkan-sync-check.sh) this also checks that command pools are never
    /// used from two threads at once. Both memory paths: mapped, and staging (a discrete GPU's,
    /// where preparing a graph records a fill).
    func testVulkanGraphsPreparedAndRunOnSeveralThreads() throws {
        for backend in [try SharedVulkan.get(), try VulkanBackend(device: nil, forceStaging: true)] {
            var rng = TestRandom(seed: 5)
            let ints = [try randomIntLayer(&rng, name: "i0", transposed: false, ci: 6, co: 8, k: 3, s: 1,
                                           activation: .leakyReLU(slopeNumerator: 32))]
            // Each thread its own sizes, so that every prepare records a new command buffer.
            let sizes = (0..<16).map { (8 + 4 * $0, 12 + 4 * ($0 % 3)) }
            let cases = try sizes.map { h, w -> (Graph, TensorID, TensorID, Tensor) in
                var g = Graph()
                let x = g.addInput("x", shape: TensorShape(channels: 6, height: h, width: w), type: .int32)
                var v = g.whole(x)
                for l in ints { v = try g.append(.intConv2d(l), input: v) }
                g.markOutput(v.tensor)
                return (g, x, v.tensor, Tensor(shape: g.shape(of: x), ints: (0..<(6 * h * w)).map { _ in Int32(rng.int(-1000, 1000)) }))
            }
            let expected = try cases.map { g, x, y, input in try CPUBackend().prepare(g).run(inputs: [x: input]).outputs[y]! }
            let results = LockedResults(count: cases.count * 3)
            DispatchQueue.concurrentPerform(iterations: cases.count) { i in
                let (g, x, y, input) = cases[i]
                do {
                    // A new graph each round: each records its own command buffer.
                    for round in 0..<3 { results.set(i * 3 + round, try backend.prepare(g).run(inputs: [x: input]).outputs[y]) }
                } catch {
                    results.fail(error)
                }
            }
            XCTAssertNil(results.error.map { "\($0)" })
            for i in 0..<(cases.count * 3) {
                XCTAssertEqual(results.values[i]?.storage, expected[i / 3].storage, "case \(i / 3), run \(i % 3) on \(backend.name)")
            }
        }
    }

    /// A backend that outlives its models (a server reloading one, a library user opening many)
    /// must not keep every model's uploaded weights: the cache drops a released layer's entries,
    /// while a prepared graph that still runs keeps its own.
    func testReleasedLayersLeaveTheParameterCache() throws {
        let backend = try VulkanBackend(device: nil, forceStaging: false)
        var rng = TestRandom(seed: 3)
        func model() throws -> (Graph, TensorID, TensorID) {
            let layer = try randomIntLayer(&rng, name: "i0", transposed: false, ci: 6, co: 8, k: 3, s: 1, activation: .relu)
            var g = Graph()
            let x = g.addInput("x", shape: TensorShape(channels: 6, height: 8, width: 8), type: .int32)
            let v = try g.append(.intConv2d(layer), input: g.whole(x))
            g.markOutput(v.tensor)
            return (g, x, v.tensor)
        }
        let input = Tensor(shape: TensorShape(channels: 6, height: 8, width: 8), ints: (0..<384).map { Int32($0 % 97 - 48) })
        let (kept, kx, ky) = try model()
        let keptGraph = try backend.prepare(kept)
        let expected = try CPUBackend().prepare(kept).run(inputs: [kx: input]).outputs[ky]
        for _ in 0..<20 {
            let (g, x, y) = try model()
            XCTAssertNotNil(try backend.prepare(g).run(inputs: [x: input]).outputs[y])
        }
        // The kept graph's entry, the last model's (released, dropped at the next upload) at most.
        XCTAssertLessThanOrEqual(backend.cachedParameterCount, 2)
        XCTAssertEqual(try keptGraph.run(inputs: [kx: input]).outputs[ky]?.storage, expected?.storage)
    }
}

/// Results written from several threads.
private final class LockedResults: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var values: [Tensor?]
    private(set) var error: Error?
    init(count: Int) { values = [Tensor?](repeating: nil, count: count) }
    func set(_ i: Int, _ t: Tensor?) { lock.lock(); values[i] = t; lock.unlock() }
    func fail(_ e: Error) { lock.lock(); error = e; lock.unlock() }
}
