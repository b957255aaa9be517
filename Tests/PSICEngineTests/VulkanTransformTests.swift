import Foundation
import XCTest
@testable import PSICEngine
@testable import PSICVulkan

/// Whole transforms of DESIGN.md's conv model with random weights, on Vulkan vs the reference.
final class VulkanTransformTests: XCTestCase {
    /// g_a: conv5x5/2 (3->N) GDN, conv5x5/2 (N->N) GDN, conv5x5/2 (N->N) GDN, conv5x5/2 (N->C).
    static func analysis(n: Int, c: Int, rng: inout TestRandom) throws -> [LayerOp] {
        var ops: [LayerOp] = []
        var ci = 3
        for i in 0..<4 {
            let co = i == 3 ? c : n
            // Weights scaled ~ 1/sqrt(fan-in) keep activations O(1) through the layers.
            let s = 1 / Float(ci * 25).squareRoot()
            ops.append(.conv2d(try Conv2dLayer(name: "g_a.conv\(i)", inChannels: ci, outChannels: co, kernelSize: 5,
                                               stride: 2, weights: rng.floats(co * ci * 25, -s, s), bias: rng.floats(co, -0.1, 0.1))))
            if i < 3 {
                ops.append(.gdn(try GDNLayer(name: "g_a.gdn\(i)", channels: n, inverse: false, beta: rng.floats(n, 0.5, 1.5),
                                             gamma: rng.floats(n * n, 0, 0.1))))
            }
            ci = co
        }
        return ops
    }

    /// g_s: deconv5x5/2 (C->N) IGDN, deconv (N->N) IGDN, deconv (N->N) IGDN, deconv (N->3).
    static func synthesis(n: Int, c: Int, rng: inout TestRandom) throws -> [LayerOp] {
        var ops: [LayerOp] = []
        var ci = c
        for i in 0..<4 {
            let co = i == 3 ? 3 : n
            let s = 1 / Float(ci * 25 / 4).squareRoot()
            ops.append(.convTranspose2d(try ConvTranspose2dLayer(
                name: "g_s.deconv\(i)", inChannels: ci, outChannels: co, kernelSize: 5, stride: 2,
                weights: rng.floats(ci * co * 25, -s, s), bias: rng.floats(co, -0.1, 0.1))))
            if i < 3 {
                ops.append(.gdn(try GDNLayer(name: "g_s.igdn\(i)", channels: n, inverse: true, beta: rng.floats(n, 0.5, 1.5),
                                             gamma: rng.floats(n * n, 0, 0.1))))
            }
            ci = co
        }
        return ops
    }

    func check(_ ops: [LayerOp], input shape: TensorShape, rng: inout TestRandom) throws {
        let backend = try SharedVulkan.get()
        var g = Graph()
        let x = g.addInput("x", shape: shape, type: .float32)
        var v = g.whole(x)
        for op in ops { v = try g.append(op, input: v) }
        g.markOutput(v.tensor)
        let input = Tensor(shape: shape, floats: rng.floats(shape.count))
        let got = try backend.prepare(g).run(inputs: [x: input]).outputs[v.tensor]!.floats!
        let ref = ReferenceKernels.run(g, inputs: [x: input])[v.tensor]!.floats!
        // Eight layers each contribute a relative error of a few hundred ulp at most (the
        // per-layer bound of assertFloatClose with n ~ 800 terms), and GDN and the
        // normalised weights keep every layer's gain near 1, so the output differs from the
        // reference by well under 1e-4 of its RMS; a wrong kernel is off by O(RMS).
        let rms = (ref.reduce(0) { $0 + Double($1) * Double($1) } / Double(ref.count)).squareRoot()
        XCTAssertGreaterThan(rms, 1e-3, "degenerate test data")
        let worst = zip(got, ref).map { abs(Double($0) - Double($1)) }.max()!
        XCTAssertLessThan(worst, 1e-4 * rms, "max error \(worst) vs rms \(rms)")
    }

    func testAnalysisTransform() throws {
        _ = try SharedVulkan.get()
        var rng = TestRandom(seed: 10)
        try check(Self.analysis(n: 32, c: 24, rng: &rng), input: TensorShape(channels: 3, height: 48, width: 40), rng: &rng)
    }

    func testSynthesisTransform() throws {
        _ = try SharedVulkan.get()
        var rng = TestRandom(seed: 11)
        try check(Self.synthesis(n: 32, c: 24, rng: &rng), input: TensorShape(channels: 24, height: 3, width: 2), rng: &rng)
    }
}

/// Throughput of the analysis and synthesis transforms from GPU timestamps (collectTimings).
/// By default a quick 192x128, N=64 run that checks the timing path; with
/// `PSIC_VULKAN_BENCH=1` the real case: a 768x512 image with N = C = 128 (analysis: 5x5/2
/// convs 3->128 at 768x512, then 128->128 at 384x256, 192x128 and 96x64, with GDN between;
/// synthesis: the mirror image with transposed convs and IGDN), best of 3 runs per layer.
final class VulkanBenchmarkTests: XCTestCase {
    func measure(_ ops: [LayerOp], input shape: TensorShape, runs: Int) throws -> [KernelTiming] {
        let backend = try SharedVulkan.get()
        var rng = TestRandom(seed: 12)
        var g = Graph()
        let x = g.addInput("x", shape: shape, type: .float32)
        var v = g.whole(x)
        for op in ops { v = try g.append(op, input: v) }
        g.markOutput(v.tensor)
        let prepared = try backend.prepare(g)
        let input = Tensor(shape: shape, floats: rng.floats(shape.count))
        _ = try prepared.run(inputs: [x: input], collectTimings: true)  // warm-up: pipelines, page faults
        var best: [KernelTiming] = []
        // lavapipe runs on this machine's cores, shared with whatever else runs here: report
        // how many cores the runs actually got, so GFLOP/s can be read per core.
        let cpu0 = Self.processCPUSeconds(), wall0 = Date()
        for _ in 0..<runs {
            let t = try prepared.run(inputs: [x: input], collectTimings: true).timings
            XCTAssertEqual(t.count, ops.count)
            best = best.isEmpty ? t : zip(best, t).map { $0.seconds <= $1.seconds ? $0 : $1 }
        }
        let cores = (Self.processCPUSeconds() - cpu0) / Date().timeIntervalSince(wall0)
        print(String(format: "  (the runs used %.2f CPU cores on average)", cores))
        for t in best {
            XCTAssertGreaterThan(t.seconds, 0)
            print("  " + t.node.padding(toLength: 22, withPad: " ", startingAt: 0) + String(format: " %9.2f ms  %6.1f GFLOP/s", t.seconds * 1e3, t.gflops))
        }
        return best
    }

    static func processCPUSeconds() -> Double {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
    }

    func summary(_ label: String, _ t: [KernelTiming]) {
        let s = t.reduce(0) { $0 + $1.seconds }, f = t.reduce(0) { $0 + $1.flops }
        print("  " + label.padding(toLength: 22, withPad: " ", startingAt: 0) + String(format: " %9.2f ms  %6.1f GFLOP/s", s * 1e3, f / s / 1e9))
    }

    var config: (h: Int, w: Int, n: Int, runs: Int) {
        ProcessInfo.processInfo.environment["PSIC_VULKAN_BENCH"] == "1" ? (512, 768, 128, 3) : (128, 192, 64, 1)
    }

    func testAnalysisThroughput() throws {
        let backend = try SharedVulkan.get()
        let (h, w, n, runs) = config
        var rng = TestRandom(seed: 13)
        print("analysis transform \(w)x\(h), N=\(n), \(backend.name):")
        let t = try measure(VulkanTransformTests.analysis(n: n, c: n, rng: &rng),
                            input: TensorShape(channels: 3, height: h, width: w), runs: runs)
        summary("5x5/2 convs", t.filter { $0.node.contains("conv") })
        summary("GDN", t.filter { $0.node.contains("gdn") })
        summary("whole transform", t)
    }

    func testSynthesisThroughput() throws {
        let backend = try SharedVulkan.get()
        let (h, w, n, runs) = config
        var rng = TestRandom(seed: 14)
        print("synthesis transform to \(w)x\(h), N=\(n), \(backend.name):")
        let t = try measure(VulkanTransformTests.synthesis(n: n, c: n, rng: &rng),
                            input: TensorShape(channels: n, height: h / 16, width: w / 16), runs: runs)
        summary("5x5/2 deconvs", t.filter { $0.node.contains("deconv") })
        summary("IGDN", t.filter { $0.node.contains("gdn") })
        summary("whole transform", t)
    }
}
