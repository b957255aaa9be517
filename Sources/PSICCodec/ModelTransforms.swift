import Foundation
import PSICEngine
import PSICModel

/// The model's networks as engine graphs, run on one backend: the stages of the codec between
/// pixels and the integer latent grid. Encoder and decoder call these; the coder never sees floats.
///
/// Every stage takes a batch (one item per image, sizes may differ) and runs it with one
/// `Backend.runBatch`, i.e. one queue submission on Vulkan. A batch of one is the plain case.
///
/// A large image runs each network in tiles (`TilePlan`) when its graph's largest tensor would
/// exceed `tileTensorBytes`, or the backend's `maxTensorBytes` when there is no fallback: memory
/// stays bounded whatever the image size, and a GPU (or lavapipe) with a small storage buffer
/// range takes any image. g_a and g_s tile on the latent grid, h_a and h_s on z's grid, the
/// entropy-parameter networks (1×1 convolutions) on the latent grid without a halo. Otherwise a graph whose largest tensor exceeds `backend.maxTensorBytes`
/// runs on `fallback`; integer graphs give the same results on every backend, and float ones
/// agree within rounding, so the stream stays decodable everywhere.
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
    /// Bytes of each network's largest tensor per cell of the grid it tiles on: g_a, g_s and
    /// the entropy-parameter networks (one per level) per latent cell (16 × 16 pixels), h_a and
    /// h_s per cell of z (64 × 64 pixels). It scales with the area, so one small graph of each
    /// tells when an image needs tiles.
    private let analysisBytesPerCell: Double
    private let synthesisBytesPerCell: Double
    private let hyperAnalysisBytesPerCell: Double
    private let hyperSynthesisBytesPerCell: Double
    private let levelBytesPerCell: [Double]
    private var tiledItems = 0
    /// Largest tensor a g_a or g_s graph may hold before the image is tiled.
    let tileTensorBytes: Int

    /// Cells (16 × 16 pixels) a tile reaches past its core. g_a's receptive field (four 5×5
    /// stride-2 convolutions) spans 30 pixels each side of a cell; an output pixel of g_s depends
    /// on the latents from one cell before its own to two after. Tests check that one cell is
    /// too few for g_s.
    static let tileHalo = 2
    /// Tile halo in cells (internal: tests shrink it to show that the halo matters).
    var tileHalo = ModelTransforms.tileHalo

    /// Cells of z (64 × 64 pixels) an h_a or h_s tile reaches past its core. h_a's receptive
    /// field (a 3×3 convolution, then two 5×5 stride-2 ones) spans 1 + 2 + 2·2 = 7 latent cells
    /// each side of a z cell, under two z cells; an h_s output depends on z from one cell before
    /// its own to two after (two 5×5 stride-2 transposed convolutions, then a 3×3 one). Tests
    /// check that one cell is too few for h_s.
    static let hyperTileHalo = 2
    /// h_a and h_s tile halo in z cells (internal: tests shrink it).
    var hyperTileHalo = ModelTransforms.hyperTileHalo

    init(model: CodecModel, backend: Backend, fallback: Backend? = nil, idleGraphBytesLimit: Int,
         tileTensorBytes: Int = Int.max) throws {
        self.model = model
        self.backend = backend
        self.fallback = fallback
        self.tileTensorBytes = tileTensorBytes
        self.pool = PreparedGraphPool(backend: backend, idleBytesLimit: idleGraphBytesLimit)
        self.fallbackPool = fallback.map { PreparedGraphPool(backend: $0, idleBytesLimit: idleGraphBytesLimit) }
        // Graphs of 4 × 4 cells.
        analysisBytesPerCell = Double(try Self.analysisGraph(model, TensorShape(channels: 3, height: 64, width: 64),
                                                             hyper: false).largestTensorBytes) / 16
        synthesisBytesPerCell = Double(try Self.synthesisGraph(model, TensorShape(channels: model.latentChannels, height: 4, width: 4))
            .largestTensorBytes) / 16
        hyperAnalysisBytesPerCell = Double(try Self.floatGraph(input: "y", shape: TensorShape(channels: model.latentChannels, height: 16, width: 16),
                                                               stages: [model.hyperAnalysis]).largestTensorBytes) / 16
        hyperSynthesisBytesPerCell = Double(try Self.integerGraph(kind: "h_s", layers: model.hyperSynthesis,
                                                                  shape: TensorShape(channels: model.hyperSynthesis[0].inChannels,
                                                                                     height: 4, width: 4)).largestTensorBytes) / 16
        levelBytesPerCell = try model.entropyParameters.map { layers in
            Double(try Self.integerGraph(kind: "ep", layers: layers,
                                         shape: TensorShape(channels: layers[0].inChannels, height: 4, width: 4)).largestTensorBytes) / 16
        }
    }

    /// Graph runs (one per image and stage) that went to `fallback` so far.
    var fallbackRuns: Int {
        lock.lock()
        defer { lock.unlock() }
        return fallbackItems
    }

    /// Prepared graphs kept idle for reuse (internal: tests count them).
    var idleGraphCount: Int { pool.idleCount }

    /// Tensor memory idle graphs hold now (internal: tests).
    var idleGraphBytes: Int { pool.idleMemoryBytes + (fallbackPool?.idleMemoryBytes ?? 0) }

    /// Has every idle graph give its tensor memory back (see `PreparedGraphPool`).
    func releaseIdleMemory() {
        pool.releaseIdle()
        fallbackPool?.releaseIdle()
    }

    /// Graph runs that were tiles of a larger image so far.
    var tiledRuns: Int {
        lock.lock()
        defer { lock.unlock() }
        return tiledItems
    }

    /// g_a then h_a on padded planar images `[3][height][width]`: returns y and z of each.
    /// Images too large for one graph run g_a in tiles, then h_a on the joined y (itself in tiles
    /// of z cells when y is too large for one graph).
    func analyze(_ images: [(pixels: [Float], height: Int, width: Int)],
                 profile: CodecProfile? = nil) throws -> [(y: Tensor, z: Tensor)] {
        let shapes = images.map { TensorShape(channels: 3, height: $0.height, width: $0.width) }
        let plans = shapes.map { s in
            tilePlan(height: s.height / 16, width: s.width / 16, bytesPerCell: analysisBytesPerCell, halo: tileHalo)
        }
        let whole = shapes.indices.filter { plans[$0] == nil }
        let results = try run(kind: "analysis", shapes: whole.map { shapes[$0] }, inputs: whole.map { i in
            Tensor(shape: shapes[i], floats: images[i].pixels)
        }, profile: profile) { try Self.analysisGraph(self.model, $0, hyper: true) }
        var out = [(y: Tensor, z: Tensor)?](repeating: nil, count: images.count)
        for (i, outs) in zip(whole, results) {
            guard outs.count == 2 else {
                throw EngineError.backendFailure(backend: backend.name, reason: "analysis graph returned no output")
            }
            out[i] = (outs[0], outs[1])
        }
        for i in shapes.indices {
            guard let plan = plans[i] else { continue }
            let image = Tensor(shape: shapes[i], floats: images[i].pixels)
            let y = try runTiles(kind: "g_a", plan: plan, outputCells: (shapes[i].height / 16, shapes[i].width / 16),
                                 scale: 1, profile: profile, input: { r, c in
                image.crop(rows: r.start * 16..<r.end * 16, columns: c.start * 16..<c.end * 16)
            }, build: { try Self.analysisGraph(self.model, $0, hyper: false) })
            out[i] = (y, try hyperAnalyze(y, profile: profile))
        }
        return out.map { $0! }
    }

    /// h_a alone on a joined y (4 × 4 latent cells per z cell), in tiles of z cells when y is
    /// too large for one graph.
    func hyperAnalyze(_ y: Tensor, profile: CodecProfile? = nil) throws -> Tensor {
        let zCells = (height: y.shape.height / 4, width: y.shape.width / 4)
        let build = { (shape: TensorShape) in try Self.floatGraph(input: "y", shape: shape, stages: [self.model.hyperAnalysis]) }
        if let plan = tilePlan(height: zCells.height, width: zCells.width, bytesPerCell: hyperAnalysisBytesPerCell,
                               halo: hyperTileHalo) {
            return try runTiles(kind: "h_a", plan: plan, outputCells: zCells, scale: 1, profile: profile, input: { r, c in
                y.crop(rows: r.start * 4..<r.end * 4, columns: c.start * 4..<c.end * 4)
            }, build: build)
        }
        guard let z = try run(kind: "h_a", shapes: [y.shape], inputs: [y], profile: profile, build: build).first?.first else {
            throw EngineError.backendFailure(backend: backend.name, reason: "h_a graph returned no output")
        }
        return z
    }

    /// g_a, and h_a after it when `hyper` (outputs y, then z).
    private static func analysisGraph(_ model: CodecModel, _ shape: TensorShape, hyper: Bool) throws -> Graph {
        try Self.floatGraph(input: "image", shape: shape, stages: hyper ? [model.analysis, model.hyperAnalysis] : [model.analysis])
    }

    /// g_s on a latent tensor of floats.
    private static func synthesisGraph(_ model: CodecModel, _ shape: TensorShape) throws -> Graph {
        try Self.floatGraph(input: "latents", shape: shape, stages: [model.synthesis])
    }

    /// The layers of `stages` in a chain from one float input, each stage's last tensor an output.
    private static func floatGraph(input: String, shape: TensorShape, stages: [[LayerOp]]) throws -> Graph {
        var g = Graph()
        let x = g.addInput(input, shape: shape, type: .float32)
        var v = g.whole(x)
        for stage in stages {
            for op in stage { v = try g.append(op, input: v) }
            g.markOutput(v.tensor)
        }
        return g
    }

    /// The tiles for a grid of `height` × `width` cells, or nil when one graph takes it whole.
    private func tilePlan(height: Int, width: Int, bytesPerCell perCell: Double, halo: Int) -> TilePlan? {
        let bytes = Double(height * width) * perCell
        // With a fallback, a graph between the device's limit and the tile limit runs whole there.
        guard bytes > Double(tileTensorBytes) || (fallback == nil && bytes > Double(backend.maxTensorBytes)) else {
            return nil
        }
        // Tiles small enough for the device, so that they run on it.
        let limit = min(tileTensorBytes, backend.maxTensorBytes)
        return TilePlan(height: height, width: width,
                        maxSide: TilePlan.maxSide(bytesLimit: limit, bytesPerCell: perCell), halo: halo)
    }

    /// Runs the graph `build` makes on every tile of `plan` (`input` cuts a tile's input) and
    /// joins the cores: an output of `outputCells` cells, `scale` values per cell along each axis.
    private func runTiles(kind: String, plan: TilePlan, outputCells: (height: Int, width: Int), scale: Int,
                          profile: CodecProfile?, input: (TilePlan.Span, TilePlan.Span) -> Tensor,
                          build: (TensorShape) throws -> Graph) throws -> Tensor {
        var canvas: TileCanvas?
        let tiles = plan.tiles
        for (k, (rows, columns)) in tiles.enumerated() {
            let x = input(rows, columns)
            guard let out = try run(kind: kind, shapes: [x.shape], inputs: [x], profile: profile, build: build).first?.first else {
                throw EngineError.backendFailure(backend: backend.name, reason: "\(kind) graph returned no output")
            }
            if canvas == nil {
                canvas = TileCanvas(shape: TensorShape(channels: out.shape.channels, height: outputCells.height * scale,
                                                       width: outputCells.width * scale), scalarType: out.scalarType)
            }
            canvas!.paste(out, rows: rows, columns: columns, scale: scale)
            profile?.onTile?(TileProgress(network: kind, done: k + 1, total: tiles.count))
        }
        lock.lock()
        tiledItems += plan.rows.count * plan.columns.count
        lock.unlock()
        guard let canvas else {
            throw EngineError.backendFailure(backend: backend.name, reason: "\(kind): no tiles")
        }
        return canvas.tensor
    }

    /// h_s in integers: z_hat → hyper features (4 × 4 per z cell). Large grids run in tiles.
    func hyperSynthesize(_ zHats: [Tensor], profile: CodecProfile? = nil) throws -> [Tensor] {
        try runInteger(kind: "h_s", layers: model.hyperSynthesis, inputs: zHats, scale: 4, halo: hyperTileHalo,
                       bytesPerCell: hyperSynthesisBytesPerCell, profile: profile)
    }

    /// Entropy-parameter network of `level` on contexts `[hyper | levels < level]`. Its 1×1
    /// convolutions need no halo: large grids run in tiles that just partition the grid.
    func levelParameters(level: Int, contexts: [Tensor], profile: CodecProfile? = nil) throws -> [Tensor] {
        try runInteger(kind: "ep\(level)", layers: model.entropyParameters[level], inputs: contexts, scale: 1, halo: 0,
                       bytesPerCell: levelBytesPerCell[level], profile: profile)
    }

    /// g_s on decoded latent grids (integers in units of 1/16): returns planar `[3][16h][16w]` each.
    /// Grids too large for one graph run in tiles.
    func synthesize(_ latents: [Tensor], profile: CodecProfile? = nil) throws -> [Tensor] {
        let scale = 1 / Float(model.latentScale)
        let inputs = latents.map { t in Tensor(shape: t.shape, floats: (t.ints ?? []).map { Float($0) * scale }) }
        return try runWholeOrTiled(kinds: (whole: "synthesis", tile: "g_s"), inputs: inputs, scale: 16, halo: tileHalo,
                                   bytesPerCell: synthesisBytesPerCell, profile: profile) {
            try Self.synthesisGraph(self.model, $0)
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

    /// Runs the integer network `layers` on each input: the inputs that fit as one batch, each
    /// larger one in tiles of its grid (`scale` outputs per input cell along each axis, `halo`
    /// cells past each core). Integer results do not depend on the tiling.
    private func runInteger(kind: String, layers: [IntConv2dLayer], inputs: [Tensor], scale: Int, halo: Int,
                            bytesPerCell: Double, profile: CodecProfile?) throws -> [Tensor] {
        try runWholeOrTiled(kinds: (kind, kind), inputs: inputs, scale: scale, halo: halo, bytesPerCell: bytesPerCell,
                            profile: profile) { try Self.integerGraph(kind: kind, layers: layers, shape: $0) }
    }

    /// Runs the graph `build` makes on each input: those that fit as one batch (pool kind
    /// `kinds.whole`), each larger one in tiles of its grid (`kinds.tile`; `scale` outputs per
    /// input cell along each axis, `halo` cells past each core). Returns each input's output.
    private func runWholeOrTiled(kinds: (whole: String, tile: String), inputs: [Tensor], scale: Int, halo: Int,
                                 bytesPerCell: Double, profile: CodecProfile?,
                                 build: (TensorShape) throws -> Graph) throws -> [Tensor] {
        let plans = inputs.map { tilePlan(height: $0.shape.height, width: $0.shape.width, bytesPerCell: bytesPerCell, halo: halo) }
        let whole = inputs.indices.filter { plans[$0] == nil }
        var out = [Tensor?](repeating: nil, count: inputs.count)
        let results = try run(kind: kinds.whole, shapes: whole.map { inputs[$0].shape }, inputs: whole.map { inputs[$0] },
                              profile: profile, build: build)
        for (i, outs) in zip(whole, results) {
            guard let x = outs.first else {
                throw EngineError.backendFailure(backend: backend.name, reason: "\(kinds.whole) graph returned no output")
            }
            out[i] = x
        }
        for (i, plan) in zip(inputs.indices, plans) {
            guard let plan else { continue }
            out[i] = try runTiles(kind: kinds.tile, plan: plan, outputCells: (inputs[i].shape.height, inputs[i].shape.width),
                                  scale: scale, profile: profile, input: { r, c in
                inputs[i].crop(rows: r.start..<r.end, columns: c.start..<c.end)
            }, build: build)
        }
        return out.map { $0! }
    }

    /// The integer layers in a chain from one int32 input named `kind`.
    private static func integerGraph(kind: String, layers: [IntConv2dLayer], shape: TensorShape) throws -> Graph {
        var g = Graph()
        let x = g.addInput(kind, shape: shape, type: .int32)
        var v = g.whole(x)
        for l in layers { v = try g.append(.intConv2d(l), input: v) }
        g.markOutput(v.tensor)
        return g
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
