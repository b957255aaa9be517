import PSICCPU
import PSICEngine
import PSICVulkan
import XCTest
@testable import PSICBenchmarks

/// The CPU backend with every integer output changed by one in its first element: what a
/// device whose integer kernels were wrong would return.
private final class TamperedBackend: Backend, @unchecked Sendable {
    let name = "tampered"
    private let inner = CPUBackend(threads: 2)

    func prepare(_ graph: Graph) throws -> PreparedGraph { Tampered(try inner.prepare(graph)) }

    private final class Tampered: PreparedGraph {
        let inner: PreparedGraph
        init(_ inner: PreparedGraph) { self.inner = inner }
        var graph: Graph { inner.graph }
        var memoryBytes: Int { inner.memoryBytes }
        func run(inputs: [TensorID: Tensor], collectTimings: Bool) throws -> GraphResult {
            let r = try inner.run(inputs: inputs, collectTimings: collectTimings)
            return GraphResult(outputs: r.outputs.mapValues { t in
                guard var v = t.ints, !v.isEmpty else { return t }
                v[0] &+= 1
                return Tensor(shape: t.shape, ints: v)
            }, timings: r.timings)
        }
    }
}

final class KernelBenchmarkAgreementTests: XCTestCase {
    func testAgreementOfTwoOutputs() throws {
        let shape = TensorShape(channels: 1, height: 2, width: 2)
        let f = Tensor(shape: shape, floats: [1, -4, 2, 0.5])
        let same = try XCTUnwrap(OutputAgreement(f, reference: f, referenceName: "cpu"))
        XCTAssertEqual(same.summary, "exact")
        XCTAssertFalse(same.integer)
        let off = try XCTUnwrap(OutputAgreement(Tensor(shape: shape, floats: [1, -4.004, 2, 0.5]), reference: f, referenceName: "cpu"))
        XCTAssertEqual(off.differing, 1)
        XCTAssertEqual(off.maxAbsReference, 4)
        XCTAssertEqual(off.relativeDifference, 0.001, accuracy: 1e-6)
        XCTAssertEqual(off.summary, "1.0e-03")
        let i = Tensor(shape: shape, ints: [3, -7, 0, 9])
        let intsOff = try XCTUnwrap(OutputAgreement(Tensor(shape: shape, ints: [3, -6, 0, 7]), reference: i, referenceName: "cpu"))
        XCTAssertTrue(intsOff.integer)
        XCTAssertEqual(intsOff.differing, 2)
        XCTAssertEqual(intsOff.maxAbsDifference, 2)
        XCTAssertEqual(intsOff.summary, "2 differ")
        XCTAssertNil(OutputAgreement(i, reference: f, referenceName: "cpu"), "an int output against a float one")
        XCTAssertNil(OutputAgreement(Tensor(shape: TensorShape(channels: 1, height: 1, width: 2), floats: [1, 2]),
                                     reference: f, referenceName: "cpu"), "different sizes")
    }

    /// Small shapes of the codec's architecture, so a run takes seconds.
    private func run(_ backends: [Backend]) throws -> BenchmarkReport {
        try KernelBenchmark.run(backends: backends, width: 64, height: 64, N: 8, C: 16, hyper: 8, levelChannels: 2, repeats: 1)
    }

    func testBenchmarkFlagsIntegerLayersThatDiffer() throws {
        let report = try run([CPUBackend(threads: 2), TamperedBackend()])
        let second = report.kernels.filter { $0.backend == "tampered" }
        XCTAssertFalse(second.isEmpty)
        XCTAssertTrue(second.allSatisfy { $0.agreement != nil }, "every layer compared on the second backend")
        XCTAssertTrue(report.kernels.filter { $0.backend != "tampered" }.allSatisfy { $0.agreement == nil })
        for k in second where !k.kind.hasPrefix("int") {
            XCTAssertEqual(k.agreement?.summary, "exact", "\(k.layer): the same CPU arithmetic")
        }
        let wrong = report.integerDisagreements.map(\.layer)
        XCTAssertEqual(wrong, second.filter { $0.kind.hasPrefix("int") }.map(\.layer))
        XCTAssertFalse(wrong.isEmpty)
        XCTAssertEqual(report.transforms.filter { $0.backend == "tampered" }.compactMap(\.agreement).count, 2)
        XCTAssertTrue(report.table().contains("1 differ"))
    }

    func testVulkanAgreesWithTheCPUInTheBenchmark() throws {
        let vulkan: VulkanBackend
        do { vulkan = try VulkanBackend() } catch let e as VulkanError {
            switch e {
            case .loaderNotFound, .noDriver, .noComputeDevice: throw XCTSkip("no Vulkan device: \(e)")
            default: throw e
            }
        }
        let report = try run([CPUBackend(threads: 2), vulkan])
        XCTAssertTrue(report.integerDisagreements.isEmpty, "integer kernels are exact on every backend")
        for k in report.kernels where k.backend == vulkan.name {
            let a = try XCTUnwrap(k.agreement, k.layer)
            // Unit-scale random layers: the kernel tests' bounds give ~1e-5 relative; a wrong
            // tap or channel gives O(0.1).
            if !a.integer { XCTAssertLessThan(a.relativeDifference, 1e-3, k.layer) }
        }
    }

    /// `--layers`: names and transform prefixes select layers (and g_a/g_s their whole runs);
    /// a name that matches nothing is an error that lists the layers.
    func testLayerSelection() throws {
        let cpu = CPUBackend(threads: 1)
        let report = try KernelBenchmark.run(backends: [cpu], width: 64, height: 64, N: 8, C: 16, hyper: 8, levelChannels: 2,
                                             repeats: 1, only: LayerSelection(list: "g_a.2, h_s"))
        XCTAssertEqual(report.kernels.map(\.layer), ["g_a.2", "h_s.0", "h_s.2", "h_s.4"])
        XCTAssertTrue(report.transforms.isEmpty)
        let whole = try KernelBenchmark.run(backends: [cpu], width: 64, height: 64, N: 8, C: 16, hyper: 8, levelChannels: 2,
                                            repeats: 1, only: LayerSelection(list: "g_s"))
        XCTAssertEqual(whole.kernels.map(\.layer), (0...6).map { "g_s.\($0)" })
        XCTAssertEqual(whole.transforms.map(\.transform), ["g_s (synthesis)"])
        XCTAssertThrowsError(try KernelBenchmark.run(backends: [cpu], width: 64, height: 64, N: 8, C: 16, hyper: 8,
                                                     levelChannels: 2, repeats: 1, only: LayerSelection(list: "g_a.2,g_a.20"))) { error in
            XCTAssertEqual((error as? UnknownLayers)?.names, ["g_a.20"])
        }
    }

    /// `psic bench gdn`: GDN and IGDN on one CPU backend per form of oneDNN's product, each form
    /// the one asked for, and all computing the same layer. CPUKernelTests bounds each form's
    /// error by 2(terms + 2)·u·|y| with terms = 4(c + 1 + 8); two forms then differ by at most
    /// twice that, a wrong product by O(1).
    func testGDNBenchmarkRunsEveryFormOfTheProductAndTheyAgree() throws {
        let c = 16
        let forms = CPUGDNProduct.allCases
        let backends = forms.map { CPUBackend(threads: 2, convolutions: .oneDNN, gdnProduct: $0) }
        XCTAssertEqual(Set(backends.map(\.name)).count, forms.count, "each form named apart")
        let report = try GDNBenchmark.run(backends: backends, N: c, sizes: [(width: 13, height: 5), (width: 8, height: 8)],
                                          repeats: 1)
        XCTAssertEqual(report.measurements.map(\.layer), ["gdn", "igdn"].flatMap { [String](repeating: $0, count: 2 * forms.count) })
        XCTAssertEqual(report.measurements.map(\.input), ["16x5x13", "16x8x8", "16x5x13", "16x8x8"].flatMap {
            [String](repeating: $0, count: forms.count)
        })
        let bound = 2 * 2 * Double(4 * (c + 1 + 8) + 2) * pow(2.0, -24)
        for (n, m) in report.measurements.enumerated() {
            let form = forms[n % forms.count]
            XCTAssertEqual(m.backend, backends[n % forms.count].name)
            XCTAssertGreaterThan(m.kernelSeconds, 0)
            let implementation = try XCTUnwrap(m.implementation, "\(form)")
            if form != .automatic {
                XCTAssertEqual(implementation.hasSuffix(" + binary_mul"), form == .unfused, "\(form): \(implementation)")
            }
            if form == forms[0] {
                XCTAssertNil(m.agreement)
                XCTAssertEqual(m.relativeToFirst, 1)
            } else {
                let a = try XCTUnwrap(m.agreement, "\(form)")
                XCTAssertLessThanOrEqual(a.relativeDifference, bound, "\(m.layer) \(m.input), \(form)")
            }
        }
        XCTAssertTrue(report.table().contains(backends[2].name))
    }

    func testGDNBenchmarkSizes() throws {
        let sizes = try GDNBenchmark.sizes(list: "128x64, 7X9")
        XCTAssertEqual(sizes.map(\.width), [128, 7])
        XCTAssertEqual(sizes.map(\.height), [64, 9])
        for bad in ["", "128", "0x5", "5x", "x5", "5x5x5", "65537x1", "axb", "8x8,,"] {
            XCTAssertThrowsError(try GDNBenchmark.sizes(list: bad), bad) { error in
                XCTAssertTrue(error is InvalidGDNSize, "\(bad): \(error)")
            }
        }
    }
}
