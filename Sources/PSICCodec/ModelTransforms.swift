import Foundation
import PSICEngine
import PSICModel

/// The model's networks as engine graphs, run on one backend: the stages of the codec between
/// pixels and the integer latent grid. Encoder and decoder call these; the coder never sees floats.
///
/// Every stage takes a batch (one item per image, sizes may differ) and runs it with one
/// `Backend.runBatch`, i.e. one queue submission on Vulkan. A batch of one is the plain case.
///
/// A graph whose largest tensor exceeds `backend.maxTensorBytes` (a large photo on a GPU with a
/// small storage buffer range) runs on `fallback` when there is one; integer graphs give the
/// same results on every backend, and float ones agree within rounding, so the stream stays
/// decodable everywhere.
final class ModelTransforms: @unchecked Sendable {
    let model: CodecModel
    let backend: Backend
    let fallback: Backend?
    private let pool: PreparedGraphPool
    private let fallbackPool: PreparedGraphPool?
    private let lock = NSLock()
    /// Whether each graph kind and size fits `backend` (decided once per key). A server sees
    /// endless image sizes, so the record is cleared whenever it reaches `fitsLimit` keys:
    /// forgetting costs one more graph build for a size seen again.
    private var fits: [PreparedGraphPool.Key: Bool] = [:]
    /// Keys `fits` holds at most (internal: tests lower it).
    var fitsLimit = 4096
    private var fallbackItems = 0

    init(model: CodecModel, backend: Backend, fallback: Backend? = nil, idleGraphBytesLimit: Int) {
        self.model = model
        self.backend = backend
        self.fallback = fallback
        self.pool = PreparedGraphPool(backend: backend, idleBytesLimit: idleGraphBytesLimit)
        self.fallbackPool = fallback.map { PreparedGraphPool(backend: $0, idleBytesLimit: idleGraphBytesLimit) }
    }

    /// Graph runs (one per image and stage) that went to `fallback` so far.
    var fallbackRuns: Int {
        lock.lock()
        defer { lock.unlock() }
        return fallbackItems
    }

    /// g_a then h_a on padded planar images `[3][height][width]`: returns y and z of each.
    func analyze(_ images: [(pixels: [Float], height: Int, width: Int)],
                 profile: CodecProfile? = nil) throws -> [(y: Tensor, z: Tensor)] {
        let shapes = images.map { TensorShape(channels: 3, height: $0.height, width: $0.width) }
        let results = try run(kind: "analysis", shapes: shapes, inputs: images.indices.map { i in
            Tensor(shape: shapes[i], floats: images[i].pixels)
        }, profile: profile) { shape in
            var g = Graph()
            let x = g.addInput("image", shape: shape, type: .float32)
            var v = g.whole(x)
            for op in model.analysis { v = try g.append(op, input: v) }
            g.markOutput(v.tensor)
            for op in model.hyperAnalysis { v = try g.append(op, input: v) }
            g.markOutput(v.tensor)
            return g
        }
        return try results.map { outs in
            guard outs.count == 2 else {
                throw EngineError.backendFailure(backend: backend.name, reason: "analysis graph returned no output")
            }
            return (outs[0], outs[1])
        }
    }

    /// h_s in integers: z_hat → hyper features.
    func hyperSynthesize(_ zHats: [Tensor], profile: CodecProfile? = nil) throws -> [Tensor] {
        try runInteger(kind: "h_s", layers: model.hyperSynthesis, inputs: zHats, profile: profile)
    }

    /// Entropy-parameter network of `level` on contexts `[hyper | levels < level]`.
    func levelParameters(level: Int, contexts: [Tensor], profile: CodecProfile? = nil) throws -> [Tensor] {
        try runInteger(kind: "ep\(level)", layers: model.entropyParameters[level], inputs: contexts, profile: profile)
    }

    /// g_s on decoded latent grids (integers in units of 1/16): returns planar `[3][16h][16w]` each.
    func synthesize(_ latents: [Tensor], profile: CodecProfile? = nil) throws -> [Tensor] {
        let scale = 1 / Float(model.latentScale)
        let inputs = latents.map { t in Tensor(shape: t.shape, floats: (t.ints ?? []).map { Float($0) * scale }) }
        return try run(kind: "synthesis", shapes: latents.map(\.shape), inputs: inputs, profile: profile) { shape in
            var g = Graph()
            let x = g.addInput("latents", shape: shape, type: .float32)
            var v = g.whole(x)
            for op in model.synthesis { v = try g.append(op, input: v) }
            g.markOutput(v.tensor)
            return g
        }.map { outs in
            guard let out = outs.first else {
                throw EngineError.backendFailure(backend: backend.name, reason: "synthesis graph returned no output")
            }
            return out
        }
    }

    // Single-image forms (batches of one), as tests and tools use them.

    func analyze(_ pixels: [Float], height: Int, width: Int) throws -> (y: Tensor, z: Tensor) {
        try analyze([(pixels, height, width)])[0]
    }

    func hyperSynthesize(_ zHat: Tensor) throws -> Tensor {
        try hyperSynthesize([zHat])[0]
    }

    func levelParameters(level: Int, context: Tensor) throws -> Tensor {
        try levelParameters(level: level, contexts: [context])[0]
    }

    func synthesize(_ latents: Tensor) throws -> Tensor {
        try synthesize([latents])[0]
    }

    private func runInteger(kind: String, layers: [IntConv2dLayer], inputs: [Tensor], profile: CodecProfile?) throws -> [Tensor] {
        try run(kind: kind, shapes: inputs.map(\.shape), inputs: inputs, profile: profile) { shape in
            var g = Graph()
            let x = g.addInput(kind, shape: shape, type: .int32)
            var v = g.whole(x)
            for l in layers { v = try g.append(.intConv2d(l), input: v) }
            g.markOutput(v.tensor)
            return g
        }.map { outs in
            guard let out = outs.first else {
                throw EngineError.backendFailure(backend: backend.name, reason: "\(kind) graph returned no output")
            }
            return out
        }
    }

    /// Runs the graph `build` makes for each shape (one prepared instance per item) as one
    /// backend batch per backend used; returns each item's outputs in the graph's output order.
    private func run(kind: String, shapes: [TensorShape], inputs: [Tensor], profile: CodecProfile?,
                     build: (TensorShape) throws -> Graph) throws -> [[Tensor]] {
        guard !shapes.isEmpty else { return [] }
        let keys = shapes.map { PreparedGraphPool.Key(kind: kind, height: $0.height, width: $0.width) }
        var onFallback: [Int] = [], onBackend: [Int] = []
        for (i, key) in keys.enumerated() {
            if fallback != nil, try !fitsBackend(key, build: { try build(shapes[i]) }) {
                onFallback.append(i)
            } else {
                onBackend.append(i)
            }
        }
        var outputs = [[Tensor]](repeating: [], count: keys.count)
        for (items, backend, pool) in [(onBackend, backend, pool), (onFallback, fallback, fallbackPool)] {
            guard !items.isEmpty, let backend, let pool else { continue }
            let results = try pool.withBatch(items.map { keys[$0] }, build: { try build(shapes[items[$0]]) }) { graphs in
                let runs = graphs.indices.map { j in
                    BatchRun(graph: graphs[j], inputs: [graphs[j].graph.inputs[0]: inputs[items[j]]])
                }
                let results = try profile.measure(\.computeSeconds) { try backend.runBatch(runs) }
                profile?.submissions += 1
                return zip(graphs, results).map { g, r in g.graph.outputs.compactMap { r.outputs[$0] } }
            }
            for (i, out) in zip(items, results) { outputs[i] = out }
        }
        if !onFallback.isEmpty {
            lock.lock()
            fallbackItems += onFallback.count
            lock.unlock()
        }
        return outputs
    }

    /// Whether the graph of `key` fits `backend`, building it once to see.
    private func fitsBackend(_ key: PreparedGraphPool.Key, build: () throws -> Graph) throws -> Bool {
        lock.lock()
        let known = fits[key]
        lock.unlock()
        if let known { return known }
        let fit = try build().largestTensorBytes <= backend.maxTensorBytes
        lock.lock()
        if fits.count >= fitsLimit { fits.removeAll(keepingCapacity: true) }
        fits[key] = fit
        lock.unlock()
        return fit
    }

    /// Graph kinds and sizes whose fit is on record (for tests).
    var fitsRecorded: Int {
        lock.lock()
        defer { lock.unlock() }
        return fits.count
    }
}
