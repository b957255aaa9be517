import Dispatch
import Foundation
import PSICEngine

/// One layer measured on one backend.
public struct KernelMeasurement: Codable, Sendable {
    public let backend: String
    public let layer: String
    public let kind: String
    public let input: String
    public let output: String
    public let gflop: Double
    /// Median wall-clock seconds of a run of the one-layer graph (upload and read-back included).
    public let wallSeconds: Double
    /// Median seconds the backend reports for the kernel itself (GPU timestamps on Vulkan).
    public let kernelSeconds: Double
    /// How the output agrees with the first backend's for the same input and weights (nil on
    /// the first backend itself).
    public var agreement: OutputAgreement? = nil
    public var kernelGFLOPS: Double { kernelSeconds > 0 ? gflop / kernelSeconds : 0 }
    public var wallGFLOPS: Double { wallSeconds > 0 ? gflop / wallSeconds : 0 }
}

/// One backend's output against another's (the reference) for the same graph and input: what
/// a benchmark run on a new device shows about correctness, without the test suite. Integer
/// layers must agree exactly on every backend; float ones differ by summation order (and, on
/// the Vulkan route for 5x5/2 layers, Winograd's transforms), which the tests bound.
public struct OutputAgreement: Codable, Sendable, Equatable {
    /// The backend compared against.
    public let reference: String
    /// Whether the outputs are integers (then only `differing == 0` is correct).
    public let integer: Bool
    /// Elements that differ at all.
    public let differing: Int
    /// Largest absolute difference.
    public let maxAbsDifference: Double
    /// Largest absolute value of the reference output, the scale of the difference.
    public let maxAbsReference: Double

    /// `maxAbsDifference` relative to the reference's scale.
    public var relativeDifference: Double { maxAbsDifference / max(maxAbsReference, .leastNormalMagnitude) }

    /// Compares `output` with `reference`; nil when their types or sizes differ.
    public init?(_ output: Tensor, reference: Tensor, referenceName: String) {
        if let a = output.floats, let b = reference.floats, a.count == b.count {
            integer = false
            (differing, maxAbsDifference, maxAbsReference) = Self.compare(a, b, Double.init)
        } else if let a = output.ints, let b = reference.ints, a.count == b.count {
            integer = true
            (differing, maxAbsDifference, maxAbsReference) = Self.compare(a, b, Double.init)
        } else {
            return nil
        }
        self.reference = referenceName
    }

    /// Differing elements, largest |difference| and largest |reference value|, with the
    /// differences taken in Double (exact for Int32, and for Float to within one rounding).
    private static func compare<T: Equatable>(_ a: [T], _ b: [T], _ double: (T) -> Double) -> (Int, Double, Double) {
        var n = 0, d = 0.0, m = 0.0
        for (x, y) in zip(a, b) {
            if x != y { n += 1 }
            d = max(d, abs(double(x) - double(y)))
            m = max(m, abs(double(y)))
        }
        return (n, d, m)
    }

    /// "exact", "12 differ" (integers), or the relative difference (floats), for tables.
    public var summary: String {
        if differing == 0 { return "exact" }
        return integer ? "\(differing) differ" : String(format: "%.1e", relativeDifference)
    }
}

/// A whole transform (all its layers in one graph, one submission) measured on one backend.
public struct TransformMeasurement: Codable, Sendable {
    public let backend: String
    public let transform: String
    public let gflop: Double
    public let wallSeconds: Double
    public let kernelSeconds: Double
    /// The output against the first backend's (nil on the first backend).
    public var agreement: OutputAgreement? = nil
}

/// The analysis transform's 5x5 stride-2 convolutions taken together on one backend: the
/// layers that dominate encoding, and the engine's headline figure.
public struct AnalysisConvSummary: Codable, Sendable {
    public let backend: String
    public let layers: [String]
    public let gflop: Double
    /// Sum of the layers' median kernel times.
    public let kernelSeconds: Double
    public let kernelGFLOPS: Double
    /// kernelGFLOPS over the first backend's (the CPU's under `--backend all`), measured in the same run.
    public let relativeToFirst: Double
}

/// Results of `KernelBenchmark.run`.
public struct BenchmarkReport: Codable, Sendable, JSONReport {
    public let width: Int
    public let height: Int
    public let N: Int
    public let C: Int
    public let repeats: Int
    public var kernels: [KernelMeasurement] = []
    public var transforms: [TransformMeasurement] = []
    public var analysisConvs: [AnalysisConvSummary] = []

    /// Integer layers whose output differs from the first backend's: each one a bug, since the
    /// integer kernels are exact on every backend.
    public var integerDisagreements: [KernelMeasurement] {
        kernels.filter { ($0.agreement?.integer ?? false) && $0.agreement!.differing > 0 }
    }

    /// Fills `analysisConvs` from `kernels`.
    mutating func summarizeAnalysisConvs() {
        var backends: [String] = []
        for k in kernels where !backends.contains(k.backend) { backends.append(k.backend) }
        var first: Double?
        analysisConvs = backends.compactMap { b in
            let convs = kernels.filter { $0.backend == b && $0.layer.hasPrefix("g_a.") && $0.kind == "conv5x5/2" }
            guard !convs.isEmpty else { return nil }
            let gflop = convs.reduce(0) { $0 + $1.gflop }
            let seconds = convs.reduce(0) { $0 + $1.kernelSeconds }
            let rate = seconds > 0 ? gflop / seconds : 0
            if first == nil { first = rate }
            return AnalysisConvSummary(backend: b, layers: convs.map(\.layer), gflop: gflop, kernelSeconds: seconds,
                                       kernelGFLOPS: rate, relativeToFirst: first! > 0 ? rate / first! : 0)
        }
    }

    /// Aligned text table for people.
    public func table() -> String {
        let bw = max(10, (kernels.map(\.backend) + transforms.map(\.backend)).map(\.count).max() ?? 0) + 1
        var lines = ["Layer shapes of a \(width)x\(height) image (N=\(N), C=\(C)); median of \(repeats) runs.",
                     "kernel time: GPU timestamps on Vulkan, wall clock per layer on the CPU; wall: whole run incl. transfers.",
                     pad("backend", bw) + pad("layer", 12) + pad("input → output", 30) + lpad("GFLOP", 8)
                         + lpad("kernel ms", 11) + lpad("GFLOP/s", 9) + lpad("wall ms", 10) + lpad("GFLOP/s", 9)
                         + lpad("agreement", 11)]
        for k in kernels {
            lines.append(pad(k.backend, bw) + pad(k.layer, 12) + pad("\(k.input) → \(k.output)", 30)
                         + lpad(String(format: "%.3f", k.gflop), 8) + lpad(String(format: "%.2f", k.kernelSeconds * 1e3), 11)
                         + lpad(String(format: "%.1f", k.kernelGFLOPS), 9) + lpad(String(format: "%.2f", k.wallSeconds * 1e3), 10)
                         + lpad(String(format: "%.1f", k.wallGFLOPS), 9) + lpad(k.agreement?.summary ?? "-", 11))
        }
        if !transforms.isEmpty {
            lines.append("")
            lines.append(pad("backend", bw) + pad("transform (one submission)", 30) + lpad("GFLOP", 8) + lpad("kernel ms", 11)
                         + lpad("wall ms", 10) + lpad("agreement", 11))
            for t in transforms {
                lines.append(pad(t.backend, bw) + pad(t.transform, 30) + lpad(String(format: "%.2f", t.gflop), 8)
                             + lpad(String(format: "%.1f", t.kernelSeconds * 1e3), 11) + lpad(String(format: "%.1f", t.wallSeconds * 1e3), 10)
                             + lpad(t.agreement?.summary ?? "-", 11))
            }
        }
        if !analysisConvs.isEmpty {
            lines.append("")
            lines.append(pad("backend", bw) + pad("g_a 5x5/2 convs together", 30) + lpad("GFLOP", 8) + lpad("kernel ms", 11)
                         + lpad("GFLOP/s", 9) + lpad("vs first", 10))
            for a in analysisConvs {
                lines.append(pad(a.backend, bw) + pad(a.layers.joined(separator: " "), 30) + lpad(String(format: "%.2f", a.gflop), 8)
                             + lpad(String(format: "%.1f", a.kernelSeconds * 1e3), 11) + lpad(String(format: "%.1f", a.kernelGFLOPS), 9)
                             + lpad(String(format: "%.0f %%", a.relativeToFirst * 100), 10))
            }
        }
        lines.append("")
        lines.append("agreement: each output against the first backend's for the same input and weights: \"exact\", the count of")
        lines.append("differing integers (integer layers must be exact), or max |difference| / max |value| for float layers.")
        return lines.joined(separator: "\n")
    }
}

/// Which layers a benchmark measures: names such as `g_a.2`, or a transform's prefix such as
/// `g_a` (all its layers, and for g_a and g_s the whole transform in one graph too).
public struct LayerSelection: Sendable {
    public let names: [String]

    public init(_ names: [String]) { self.names = names }

    /// Parses a comma-separated list ("g_a.0,g_s").
    public init(list: String) {
        names = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func includes(_ layer: String) -> Bool { names.contains { Self.matches(layer: layer, name: $0) } }

    /// Whether `name` selects `layer`: the layer itself, or a prefix ending at one of its dots.
    static func matches(layer: String, name: String) -> Bool { layer == name || layer.hasPrefix(name + ".") }
}

/// Names in a `LayerSelection` that match no layer of the benchmark.
public struct UnknownLayers: Error, CustomStringConvertible, Equatable {
    public let names: [String]
    public let available: [String]
    public var description: String {
        "no layer named \(names.map { "'\($0)'" }.joined(separator: ", ")); layers: \(available.joined(separator: ", ")), "
            + "or a transform's prefix (g_a, h_a, h_s, ep.7, g_s)"
    }
}

/// Benchmarks the codec's layers at the shapes they have for one image size, with random weights.
public enum KernelBenchmark {
    /// Runs every layer of g_a, h_a, g_s, h_s and one entropy-parameter net as single-layer
    /// graphs, then g_a and g_s whole, on each backend. Each layer is measured on every backend
    /// before the next layer, so a change in machine load between layers affects all backends
    /// alike and the ratios between backends stay side by side. `only` restricts the run to some
    /// layers (throws `UnknownLayers` for a name that matches none). `progress` gets a line per
    /// measurement.
    public static func run(backends: [Backend], width: Int = 768, height: Int = 512, N: Int = 96, C: Int = 160,
                           hyper: Int = 128, levelChannels: Int = 20, repeats: Int = 5, only: LayerSelection? = nil,
                           progress: (String) -> Void = { _ in }) throws -> BenchmarkReport {
        var report = BenchmarkReport(width: width, height: height, N: N, C: C, repeats: repeats)
        let layers = try BenchmarkLayers(N: N, C: C, hyper: hyper, levelChannels: levelChannels)
        let image = TensorShape(channels: 3, height: height, width: width)
        // (layer, input shape) in the order the codec runs them.
        var plan: [(LayerOp, TensorShape)] = []
        var shape = image
        for op in layers.analysis { plan.append((op, shape)); shape = op.outputShape(for: shape)! }
        let latent = shape
        for op in layers.hyperAnalysis { plan.append((op, shape)); shape = op.outputShape(for: shape)! }
        for op in layers.hyperSynthesis { plan.append((op, shape)); shape = op.outputShape(for: shape)! }
        var ep = TensorShape(channels: hyper + (layers.levels - 1) * levelChannels, height: latent.height, width: latent.width)
        for op in layers.entropyParameters { plan.append((op, ep)); ep = op.outputShape(for: ep)! }
        shape = latent
        for op in layers.synthesis { plan.append((op, shape)); shape = op.outputShape(for: shape)! }
        var wholes: [(prefix: String, name: String, ops: [LayerOp], input: TensorShape)] = [
            ("g_a", "g_a (analysis)", layers.analysis, image), ("g_s", "g_s (synthesis)", layers.synthesis, latent),
        ]
        if let only {
            let names = plan.map(\.0.name)
            let unknown = only.names.filter { n in !names.contains { LayerSelection.matches(layer: $0, name: n) } }
            guard unknown.isEmpty else { throw UnknownLayers(names: unknown, available: names) }
            plan = plan.filter { only.includes($0.0.name) }
            wholes = wholes.filter { only.names.contains($0.prefix) }
        }

        var perBackend = [[KernelMeasurement]](repeating: [], count: backends.count)
        for (op, input) in plan {
            var first: Tensor?
            for (i, backend) in backends.enumerated() {
                var (m, output) = try measure(op, input: input, on: backend, repeats: repeats)
                if let first { m.agreement = OutputAgreement(output, reference: first, referenceName: backends[0].name) }
                first = first ?? output
                perBackend[i].append(m)
                progress("\(backend.name) \(op.name)")
            }
        }
        report.kernels = perBackend.flatMap { $0 }
        var firstWhole: [Tensor] = []
        for (i, backend) in backends.enumerated() {
            let measured = try wholes.map { try measureWhole($0.name, $0.ops, input: $0.input, on: backend, repeats: repeats) }
            for (j, (m, output)) in measured.enumerated() {
                var m = m
                if i == 0 { firstWhole.append(output) } else {
                    m.agreement = OutputAgreement(output, reference: firstWhole[j], referenceName: backends[0].name)
                }
                report.transforms.append(m)
            }
            progress("\(backend.name) done")
        }
        report.summarizeAnalysisConvs()
        return report
    }

    static func randomInput(_ shape: TensorShape, type: ScalarType) -> Tensor {
        var state: UInt32 = 12345
        func next() -> UInt32 { state = state &* 1_664_525 &+ 1_013_904_223; return state >> 8 }
        switch type {
        case .float32: return Tensor(shape: shape, floats: (0..<shape.count).map { _ in Float(next() % 2000) / 1000 - 1 })
        case .int32: return Tensor(shape: shape, ints: (0..<shape.count).map { _ in Int32(next() % 2001) - 1000 })
        }
    }

    /// One layer's measurement and its output (of the warm-up run).
    static func measure(_ op: LayerOp, input: TensorShape, on backend: Backend, repeats: Int) throws -> (KernelMeasurement, Tensor) {
        var g = Graph()
        let x = g.addInput("x", shape: input, type: op.scalarType)
        let y = try g.append(op, input: g.whole(x))
        g.markOutput(y.tensor)
        let out = op.outputShape(for: input)!
        let (wall, kernel, output) = try time(g, input: randomInput(input, type: op.scalarType), on: backend, repeats: repeats)
        let kind: String
        switch op {
        case .conv2d(let l): kind = "conv\(l.kernelSize)x\(l.kernelSize)/\(l.stride)"
        case .convTranspose2d(let l): kind = "deconv\(l.kernelSize)x\(l.kernelSize)/\(l.stride)"
        case .gdn(let l): kind = l.inverse ? "igdn" : "gdn"
        case .intConv2d(let l): kind = "int " + (l.transposed ? "deconv" : "conv") + "\(l.kernelSize)x\(l.kernelSize)/\(l.stride)"
        }
        return (KernelMeasurement(backend: backend.name, layer: op.name, kind: kind, input: input.description,
                                  output: out.description, gflop: op.flops(input: input, output: out) / 1e9,
                                  wallSeconds: wall, kernelSeconds: kernel), output)
    }

    static func measureWhole(_ name: String, _ ops: [LayerOp], input: TensorShape, on backend: Backend,
                             repeats: Int) throws -> (TransformMeasurement, Tensor) {
        var g = Graph()
        let x = g.addInput("x", shape: input, type: .float32)
        var v = g.whole(x)
        var shape = input
        var flops = 0.0
        for op in ops {
            let out = op.outputShape(for: shape)!
            flops += op.flops(input: shape, output: out)
            v = try g.append(op, input: v)
            shape = out
        }
        g.markOutput(v.tensor)
        let (wall, kernel, output) = try time(g, input: randomInput(input, type: .float32), on: backend, repeats: repeats)
        return (TransformMeasurement(backend: backend.name, transform: name, gflop: flops / 1e9, wallSeconds: wall,
                                     kernelSeconds: kernel), output)
    }

    /// Median wall-clock and median summed kernel time over `repeats` runs after one warm-up
    /// (which builds pipelines and uploads weights), and the warm-up's output.
    static func time(_ g: Graph, input: Tensor, on backend: Backend, repeats: Int) throws -> (Double, Double, Tensor) {
        let prepared = try backend.prepare(g)
        let inputs = [g.inputs[0]: input]
        let warmUp = try prepared.run(inputs: inputs, collectTimings: true)
        guard let output = warmUp.outputs[g.outputs[0]] else {
            throw EngineError.backendFailure(backend: backend.name, reason: "benchmark graph returned no output")
        }
        var walls: [Double] = [], kernels: [Double] = []
        for _ in 0..<max(1, repeats) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let r = try prepared.run(inputs: inputs, collectTimings: true)
            walls.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            kernels.append(r.timings.reduce(0) { $0 + $1.seconds })
        }
        return (median(walls), median(kernels), output)
    }

    static func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.isEmpty ? 0 : s[s.count / 2]
    }
}
