import XCTest
@testable import PSICEngine
import PSICCPU
@testable import PSICVulkan

/// The determinism property of DESIGN.md: the integer networks give identical results on the
/// Vulkan and CPU backends; the float transforms agree closely.
final class VulkanCPUAgreementTests: XCTestCase {
    func testIntegerChainIsIdenticalOnCPUAndVulkan() throws {
        let vulkan = try SharedVulkan.get()
        let cpu = CPUBackend(threads: 2)
        var rng = TestRandom(seed: 21)
        // h_s-like: two stride-2 transposed convs with leaky ReLU, then a 3x3 conv, plus a
        // concatenated context as the entropy-parameter networks see it.
        let acts: [IntegerRequantization.IntActivation] = [.leakyReLU(slopeNumerator: 32), .leakyReLU(slopeNumerator: 32), .none]
        let specs: [(Bool, Int, Int, Int, Int)] = [(true, 8, 12, 5, 2), (true, 12, 12, 5, 2), (false, 12, 16, 3, 1)]
        var layers: [IntConv2dLayer] = []
        for (i, (tr, ci, co, k, s)) in specs.enumerated() {
            let w = (0..<ci * co * k * k).map { _ in Int16(rng.int(-40, 40)) }
            let q = IntegerRequantization(multiplier: (0..<co).map { _ in Int32(rng.int(1 << 20, 1 << 22)) },
                                          shift: (0..<co).map { _ in Int32(rng.int(28, 30)) },
                                          activation: acts[i], outputMin: -4096, outputMax: 4096)
            layers.append(try IntConv2dLayer(name: "h_s.\(i)", transposed: tr, inChannels: ci, outChannels: co,
                                             kernelSize: k, stride: s, weights: w,
                                             bias: (0..<co).map { _ in Int32(rng.int(-5000, 5000)) },
                                             inputBound: 4096, requantization: q))
        }
        var g = Graph()
        let z = g.addInput("z", shape: TensorShape(channels: 8, height: 3, width: 5), type: .int32)
        var v = g.whole(z)
        for l in layers { v = try g.append(.intConv2d(l), input: v) }
        g.markOutput(v.tensor)
        let input = Tensor(shape: g.shape(of: z), ints: (0..<120).map { _ in Int32(rng.int(-4096, 4096)) })
        let a = try vulkan.prepare(g).run(inputs: [z: input]).outputs[v.tensor]
        let b = try cpu.prepare(g).run(inputs: [z: input]).outputs[v.tensor]
        XCTAssertEqual(a, b)
        XCTAssertGreaterThan(Set(a?.ints ?? []).count, 100, "degenerate test data (everything clamped?)")
        XCTAssertEqual(a, ReferenceKernels.run(g, inputs: [z: input])[v.tensor])
    }

    func testAnalysisTransformAgrees() throws {
        let vulkan = try SharedVulkan.get()
        let cpu = CPUBackend(threads: 2)
        var rng = TestRandom(seed: 22)
        var g = Graph()
        let x = g.addInput("x", shape: TensorShape(channels: 3, height: 32, width: 48), type: .float32)
        var v = g.whole(x)
        for op in try VulkanTransformTests.analysis(n: 16, c: 12, rng: &rng) { v = try g.append(op, input: v) }
        g.markOutput(v.tensor)
        let input = Tensor(shape: g.shape(of: x), floats: rng.floats(3 * 32 * 48))
        let a = try vulkan.prepare(g).run(inputs: [x: input]).outputs[v.tensor]!.floats!
        let b = try cpu.prepare(g).run(inputs: [x: input]).outputs[v.tensor]!.floats!
        // Both are within ~1e-6 relative of the exact result (see VulkanTransformTests).
        let scale = b.map { abs($0) }.max()!
        for i in a.indices { XCTAssertEqual(a[i], b[i], accuracy: 1e-4 * scale) }
    }
}
