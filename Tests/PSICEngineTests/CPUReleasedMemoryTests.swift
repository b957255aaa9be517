import Foundation
import XCTest
@testable import PSICCPU
@testable import PSICEngine

/// An idle CPU graph gives its tensors' pages back (`releaseTensorMemory`) and runs again as
/// before: same outputs, memory taken back through the same free-memory check as a prepare.
final class CPUReleasedMemoryTests: XCTestCase {
    private func conv(_ name: String, _ ci: Int, _ co: Int, _ rng: inout TestRandom) throws -> LayerOp {
        .conv2d(try Conv2dLayer(name: name, inChannels: ci, outChannels: co, kernelSize: 3, stride: 1,
                                weights: rng.floats(co * ci * 9), bias: rng.floats(co), activation: .relu))
    }

    /// x → a → half of `cat` (the other half is never written, so it must read zeros) → e → GDN.
    private func concatGraph(side: Int) throws -> (Graph, TensorID, TensorID) {
        var rng = TestRandom(seed: 5)
        var g = Graph()
        let x = g.addInput("x", shape: TensorShape(channels: 4, height: side, width: side), type: .float32)
        let cat = g.addTensor("cat", shape: TensorShape(channels: 8, height: side, width: side), type: .float32)
        let a = try g.append(try conv("a", 4, 4, &rng), input: g.whole(x))
        try g.append(try conv("b", 4, 4, &rng), input: a, output: TensorView(tensor: cat, channelOffset: 0, channels: 4))
        let e = try g.append(try conv("e", 8, 4, &rng), input: g.whole(cat))
        let gdn = try GDNLayer(name: "gdn", channels: 4, inverse: false, beta: [Float](repeating: 1, count: 4),
                               gamma: (0..<16).map { $0 % 5 == 0 ? 0.1 : 0.01 })
        let out = try g.append(.gdn(gdn), input: e)
        g.markOutput(out.tensor)
        return (g, x, out.tensor)
    }

    func testReleasedGraphRunsAgainWithTheSameOutputs() throws {
        let (g, x, out) = try concatGraph(side: 24)
        var rng = TestRandom(seed: 9)
        let input = Tensor(shape: g.shape(of: x), floats: rng.floats(4 * 24 * 24))
        for method in CPUConvolutionMethod.allCases {
            let prepared = try CPUBackend(threads: 2, convolutions: method).prepare(g)
            let first = try prepared.run(inputs: [x: input]).outputs[out]!.floats!
            let held = prepared.memoryBytes
            XCTAssertTrue(prepared.releaseTensorMemory(), "\(method)")
            XCTAssertFalse(prepared.releaseTensorMemory(), "released once")
            XCTAssertEqual(prepared.memoryBytes, 0, "no integer weights in this graph")
            let again = try prepared.run(inputs: [x: input]).outputs[out]!.floats!
            XCTAssertEqual(again, first, "\(method)")
            XCTAssertEqual(prepared.memoryBytes, held)
            XCTAssertGreaterThan(Set(first).count, 100, "a real output")
        }
    }

    func testReleasedIntegerGraphRunsAgainExactly() throws {
        var rng = TestRandom(seed: 21)
        var g = Graph()
        let x = g.addInput("x", shape: TensorShape(channels: 6, height: 10, width: 12), type: .int32)
        let a = try g.append(.intConv2d(try randomIntLayer(&rng, name: "a", transposed: true, ci: 6, co: 5, k: 5, s: 2,
                                                             activation: .none)), input: g.whole(x))
        let b = try g.append(.intConv2d(try randomIntLayer(&rng, name: "b", transposed: false, ci: 5, co: 4, k: 3, s: 1,
                                                             activation: .none, inputBound: 60_000)), input: a)
        g.markOutput(b.tensor)
        let input = Tensor(shape: g.shape(of: x), ints: (0..<720).map { _ in Int32(rng.int(-1000, 1000)) })
        let prepared = try CPUBackend(threads: 2).prepare(g)
        let first = try prepared.run(inputs: [x: input]).outputs[b.tensor]!.ints!
        let held = prepared.memoryBytes
        XCTAssertTrue(prepared.releaseTensorMemory())
        XCTAssertGreaterThan(prepared.memoryBytes, 0, "the converted weights stay")
        XCTAssertLessThan(prepared.memoryBytes, held)
        XCTAssertEqual(try prepared.run(inputs: [x: input]).outputs[b.tensor]!.ints!, first)
        XCTAssertEqual(prepared.memoryBytes, held)
    }

    /// The pages really go back: the process's resident memory falls by about the graph's
    /// tensors and scratch (here ~130 MB), and the tensors come back when it is taken back.
    func testReleaseLowersResidentMemory() throws {
        let (g, x, out) = try concatGraph(side: 1024)
        let prepared = try CPUBackend(threads: 2).prepare(g)
        let input = Tensor(shape: g.shape(of: x), floats: [Float](repeating: 0.25, count: 4 * 1024 * 1024))
        _ = try prepared.run(inputs: [x: input]).outputs[out]
        let held = prepared.memoryBytes
        XCTAssertGreaterThan(held, 64 << 20)
        let before = try Self.residentBytes()
        XCTAssertTrue(prepared.releaseTensorMemory())
        let after = try Self.residentBytes()
        XCTAssertGreaterThan(before - after, held * 3 / 4, "resident \(before >> 20) → \(after >> 20) MiB")
        // Taken back, the slabs are in before the claim ends (the claims count on it); the
        // scratch comes when a run writes it.
        try prepared.reserveTensorMemory()
        let back = try Self.residentBytes()
        let slabs = CPUMemoryPlan(g).slabBytes.reduce(0, +)
        XCTAssertGreaterThan(slabs, 32 << 20)
        XCTAssertGreaterThan(back - after, slabs * 3 / 4, "resident \(after >> 20) → \(back >> 20) MiB")
    }

    /// `populate` faults a released region back in, and it reads as zeros (what concatenation
    /// targets need), not as what was written before the release.
    func testPopulatedPagesAreResidentAndZero() throws {
        let bytes = 32 << 20
        let pages = try CPUPages(bytes: bytes)
        pages.pointer.initializeMemory(as: UInt8.self, repeating: 0xAB, count: bytes)
        pages.release()
        let released = try Self.residentBytes()
        pages.populate()
        let populated = try Self.residentBytes()
        XCTAssertGreaterThan(populated - released, bytes * 3 / 4, "resident \(released >> 20) → \(populated >> 20) MiB")
        let words = UnsafeBufferPointer(start: pages.pointer.assumingMemoryBound(to: UInt64.self), count: bytes / 8)
        XCTAssertNil(words.firstIndex { $0 != 0 })
    }

    /// Taking the memory back goes through the claims like a prepare: refused when the free
    /// memory cannot hold it (the graph stays released and can try again later).
    func testTakingMemoryBackIsCheckedAgainstTheFreeMemory() throws {
        let (g, x, out) = try concatGraph(side: 16)
        let free = LockedInt(1 << 30)
        let prepared = try CPUPreparedGraph(graph: g, threads: 1, convolutions: .im2col,
                                            availableMemory: { free.value }, claims: CPUMemoryClaims())
        let input = Tensor(shape: g.shape(of: x), floats: [Float](repeating: 0.5, count: 4 * 16 * 16))
        let first = try prepared.run(inputs: [x: input]).outputs[out]!.floats!
        XCTAssertTrue(prepared.releaseTensorMemory())
        free.value = 1024
        XCTAssertThrowsError(try prepared.run(inputs: [x: input])) { error in
            XCTAssertTrue((error as? EngineError)?.isOutOfMemory == true, "\(error)")
        }
        XCTAssertEqual(prepared.memoryBytes, 0, "still released")
        free.value = 1 << 30
        XCTAssertEqual(try prepared.run(inputs: [x: input]).outputs[out]!.floats!, first)
    }

    private static func residentBytes() throws -> Int {
        let statm = try String(contentsOfFile: "/proc/self/statm", encoding: .utf8).split(separator: " ")
        return Int(statm[1])! * CPUPages.pageSize
    }
}

/// An Int behind a lock, for closures that must be Sendable.
private final class LockedInt: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Int
    init(_ value: Int) { stored = value }
    var value: Int {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}
