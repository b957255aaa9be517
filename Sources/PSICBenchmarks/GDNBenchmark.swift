import Dispatch
import Foundation
import PSICEngine

/// One GDN or IGDN layer at one size measured on one backend.
public struct GDNMeasurement: Codable, Sendable {
    public let backend: String
    /// "gdn" or "igdn".
    public let layer: String
    /// Input (and output) shape, CxHxW.
    public let input: String
    /// The kernel the backend prepared for the layer (oneDNN's implementation name on the CPU,
    /// with " + binary_mul" when the product ran as its own primitive); nil where it does not say.
    public let implementation: String?
    public let gflop: Double
    /// Median wall-clock seconds of a run of the one-layer graph.
    public let wallSeconds: Double
    /// Median seconds the backend reports for the layer itself.
    public let kernelSeconds: Double
    /// `kernelSeconds` over the first backend's for the same layer and size.
    public let relativeToFirst: Double
    /// The output against the first backend's (nil on the first backend).
    public var agreement: OutputAgreement? = nil
    public var kernelGFLOPS: Double { kernelSeconds > 0 ? gflop / kernelSeconds : 0 }
}

/// Results of `GDNBenchmark.run`.
public struct GDNBenchmarkReport: Codable, Sendable, JSONReport {
    public let N: Int
    public let repeats: Int
    public var measurements: [GDNMeasurement] = []

    /// Aligned text table for people.
    public func table() -> String {
        let bw = max(10, measurements.map(\.backend.count).max() ?? 0) + 1
        var lines = ["GDN and IGDN with N=\(N) channels; median of \(repeats) runs, each run taken on every backend in turn.",
                     "kernel ms: the backend's time for the layer (wall clock on the CPU, reorders included);"
                         + " × first: against the first backend's.",
                     pad("backend", bw) + pad("layer", 6) + pad("input", 13) + lpad("kernel ms", 10) + lpad("GFLOP/s", 9)
                         + lpad("× first", 9) + lpad("agreement", 11) + "  implementation"]
        for m in measurements {
            lines.append(pad(m.backend, bw) + pad(m.layer, 6) + pad(m.input, 13)
                         + lpad(String(format: "%.2f", m.kernelSeconds * 1e3), 10) + lpad(String(format: "%.1f", m.kernelGFLOPS), 9)
                         + lpad(String(format: "%.2f", m.relativeToFirst), 9) + lpad(m.agreement?.summary ?? "-", 11)
                         + "  " + (m.implementation ?? "-"))
        }
        lines.append("")
        lines.append("implementation: the kernel oneDNN chose; \"+ binary_mul\": the product with the input ran as a primitive of")
        lines.append("its own after the convolution, otherwise it was fused into it (\"ref\": oneDNN's reference kernel).")
        lines.append("agreement: max |difference| / max |value| against the first backend's output for the same input and weights.")
        return lines.joined(separator: "\n")
    }
}

/// A GDN benchmark size that is not WIDTHxHEIGHT with both sides in 1...65536.
public struct InvalidGDNSize: Error, CustomStringConvertible, Equatable {
    public let text: String
    public var description: String { "'\(text)' is not a size: give WIDTHxHEIGHT, sides 1 to 65536, e.g. 256x256" }
}

/// GDN and IGDN alone, at chosen spatial sizes, on several backends side by side: what the form
/// of oneDNN's GDN (`CPUGDNProduct`, one CPU backend each) costs, without the rest of a transform.
public enum GDNBenchmark {
    /// The spatial sizes measured unless told (g_a.1's input at 256×256 and 512×512 images).
    public static let defaultSizes = [(width: 128, height: 128), (width: 256, height: 256)]

    /// Parses "128x128,256x256" (WIDTHxHEIGHT, comma-separated). Sides are bounded as an image's
    /// are, so no shape overflows before the backend weighs it against the free memory.
    public static func sizes(list: String) throws(InvalidGDNSize) -> [(width: Int, height: Int)] {
        var out: [(width: Int, height: Int)] = []
        for item in list.split(separator: ",", omittingEmptySubsequences: false) {
            let text = item.trimmingCharacters(in: .whitespaces)
            let sides = text.lowercased().split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
            guard sides.count == 2, let w = sides[0], let h = sides[1], (1...(1 << 16)).contains(w),
                  (1...(1 << 16)).contains(h) else { throw InvalidGDNSize(text: text) }
            out.append((w, h))
        }
        return out
    }

    /// Measures GDN, then IGDN, at each size with `N` channels and random weights. For each layer
    /// and size every backend prepares its graph, then each of the `repeats` timed runs (after a
    /// warm-up) goes through the backends in turn, so a change in machine load, such as a
    /// training run beside it, reaches all of them alike and their ratios stay comparable. Each
    /// round starts one backend further on, so that no backend always runs in the same place,
    /// after the same neighbour (and its use of the caches). `progress` gets a line per layer
    /// and size.
    public static func run(backends: [Backend], N: Int = 96, sizes: [(width: Int, height: Int)] = defaultSizes,
                           repeats: Int = 7, progress: (String) -> Void = { _ in }) throws -> GDNBenchmarkReport {
        var report = GDNBenchmarkReport(N: N, repeats: repeats)
        var seed: UInt32 = 11
        let layers = [try BenchmarkLayers.randomGDN("gdn", channels: N, inverse: false, seed: &seed),
                      try BenchmarkLayers.randomGDN("igdn", channels: N, inverse: true, seed: &seed)]
        for op in layers {
            for size in sizes {
                let shape = TensorShape(channels: N, height: size.height, width: size.width)
                report.measurements += try measure(op, shape: shape, on: backends, repeats: repeats)
                progress("\(op.name) \(shape)")
            }
        }
        return report
    }

    /// One layer at one shape on every backend, runs interleaved.
    static func measure(_ op: LayerOp, shape: TensorShape, on backends: [Backend], repeats: Int) throws -> [GDNMeasurement] {
        guard !backends.isEmpty else { return [] }
        var g = Graph()
        let x = g.addInput("x", shape: shape, type: .float32)
        let y = try g.append(op, input: g.whole(x))
        g.markOutput(y.tensor)
        let inputs = [g.inputs[0]: KernelBenchmark.randomInput(shape, type: .float32)]
        let prepared = try backends.map { try $0.prepare(g) }
        let outputs = try zip(backends, prepared).map { backend, p in
            guard let output = try p.run(inputs: inputs, collectTimings: true).outputs[g.outputs[0]] else {
                throw EngineError.backendFailure(backend: backend.name, reason: "benchmark graph returned no output")
            }
            return output
        }
        var walls = [[Double]](repeating: [], count: backends.count), kernels = walls
        for round in 0..<max(1, repeats) {
            for k in prepared.indices {
                let i = (round + k) % prepared.count, p = prepared[i]
                let t0 = DispatchTime.now().uptimeNanoseconds
                let r = try p.run(inputs: inputs, collectTimings: true)
                walls[i].append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                kernels[i].append(r.timings.reduce(0) { $0 + $1.seconds })
            }
        }
        let firstKernel = KernelBenchmark.median(kernels[0])
        let gflop = op.flops(input: shape, output: shape) / 1e9
        return backends.indices.map { i in
            let kernel = KernelBenchmark.median(kernels[i])
            return GDNMeasurement(backend: backends[i].name, layer: op.name, input: shape.description,
                                  implementation: prepared[i].kernelImplementations[0], gflop: gflop,
                                  wallSeconds: KernelBenchmark.median(walls[i]), kernelSeconds: kernel,
                                  relativeToFirst: firstKernel > 0 ? kernel / firstKernel : 0,
                                  agreement: i == 0 ? nil : OutputAgreement(outputs[i], reference: outputs[0],
                                                                            referenceName: backends[0].name))
        }
    }
}
