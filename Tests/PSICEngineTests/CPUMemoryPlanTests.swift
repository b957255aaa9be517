import XCTest
@testable import PSICCPU
@testable import PSICEngine

/// Tensors share memory only when their lifetimes do not overlap.
final class CPUMemoryPlanTests: XCTestCase {
    private func conv(_ name: String, _ ci: Int, _ co: Int) throws -> LayerOp {
        .conv2d(try Conv2dLayer(name: name, inChannels: ci, outChannels: co, kernelSize: 1, stride: 1,
                                weights: [Float](repeating: 0.5, count: ci * co), bias: [Float](repeating: 0, count: co)))
    }

    /// No node reads and writes the same memory, and no two live tensors overlap.
    private func assertSound(_ g: Graph, _ plan: CPUMemoryPlan, file: StaticString = #filePath, line: UInt = #line) {
        for node in g.nodes {
            XCTAssertNotEqual(plan.slabOfTensor[node.input.tensor.index], plan.slabOfTensor[node.output.tensor.index],
                              "\(node.op.name) reads and writes one slab", file: file, line: line)
        }
        for (t, decl) in g.tensors.enumerated() {
            XCTAssertGreaterThanOrEqual(plan.slabBytes[plan.slabOfTensor[t]], decl.shape.count * 4, file: file, line: line)
        }
    }

    func testChainReusesMemoryButKeepsOutputs() throws {
        var g = Graph()
        let x = g.addInput("x", shape: TensorShape(channels: 4, height: 8, width: 8), type: .float32)
        let a = try g.append(try conv("a", 4, 8), input: g.whole(x))
        let b = try g.append(try conv("b", 8, 8), input: a)
        let c = try g.append(try conv("c", 8, 8), input: b)
        let d = try g.append(try conv("d", 8, 2), input: c)
        g.markOutput(b.tensor)
        g.markOutput(d.tensor)
        let plan = CPUMemoryPlan(g)
        let slab = { (v: TensorView) in plan.slabOfTensor[v.tensor.index] }
        assertSound(g, plan)
        XCTAssertEqual(slab(a), slab(c), "a is dead once b ran: c takes its memory")
        XCTAssertEqual(slab(g.whole(x)), slab(b), "x is dead once a ran (inputs are copied in at every run)")
        XCTAssertEqual(Set([slab(a), slab(b), slab(d)]).count, 3, "outputs are kept to the end")
        XCTAssertEqual(plan.slabBytes.count, 3)
    }

    func testConcatenationTargetKeepsItsOwnMemory() throws {
        var g = Graph()
        let x = g.addInput("x", shape: TensorShape(channels: 4, height: 4, width: 4), type: .float32)
        let cat = g.addTensor("cat", shape: TensorShape(channels: 8, height: 4, width: 4), type: .float32)
        let a = try g.append(try conv("a", 4, 4), input: g.whole(x))
        try g.append(try conv("b", 4, 4), input: a, output: TensorView(tensor: cat, channelOffset: 0, channels: 4))
        let c = try g.append(try conv("c", 4, 4), input: g.whole(x))
        try g.append(try conv("d", 4, 4), input: c, output: TensorView(tensor: cat, channelOffset: 4, channels: 4))
        let e = try g.append(try conv("e", 8, 4), input: g.whole(cat))
        g.markOutput(e.tensor)
        let plan = CPUMemoryPlan(g)
        assertSound(g, plan)
        let catSlab = plan.slabOfTensor[cat.index]
        XCTAssertEqual(plan.slabOfTensor.filter { $0 == catSlab }.count, 1, "no other tensor in the concatenation's slab")
        XCTAssertEqual(plan.slabOfTensor[a.tensor.index], plan.slabOfTensor[c.tensor.index], "a is dead when c is written")
    }

    func testSharedMemoryGivesTheSameResults() throws {
        // A deeper chain through the real backend: results equal the reference with slabs shared.
        var rng = TestRandom(seed: 31)
        var g = Graph()
        let x = g.addInput("x", shape: TensorShape(channels: 3, height: 9, width: 11), type: .float32)
        var v = g.whole(x)
        for (i, (ci, co)) in [(3, 6), (6, 6), (6, 5), (5, 6), (6, 2)].enumerated() {
            v = try g.append(.conv2d(try Conv2dLayer(name: "l\(i)", inChannels: ci, outChannels: co, kernelSize: 3, stride: 1,
                                                     weights: rng.floats(co * ci * 9), bias: rng.floats(co), activation: .relu)),
                             input: v)
        }
        g.markOutput(v.tensor)
        XCTAssertLessThan(CPUMemoryPlan(g).slabBytes.count, g.tensors.count)
        let input = Tensor(shape: g.shape(of: x), floats: rng.floats(3 * 9 * 11))
        let ref = ReferenceKernels.run(g, inputs: [x: input])[v.tensor]!.floats!
        for method in CPUConvolutionMethod.allCases {
            let got = try CPUBackend(threads: 2, convolutions: method).prepare(g).run(inputs: [x: input]).outputs[v.tensor]!.floats!
            let worst = zip(got, ref).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThan(worst, 1e-3, "\(method)")
        }
    }
}
