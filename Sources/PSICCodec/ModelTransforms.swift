import PSICEngine
import PSICModel

/// The model's networks as engine graphs, run on one backend: the stages of the codec between
/// pixels and the integer latent grid. Encoder and decoder call these; the coder never sees floats.
final class ModelTransforms: Sendable {
    let model: CodecModel
    let backend: Backend
    private let pool: PreparedGraphPool

    init(model: CodecModel, backend: Backend) {
        self.model = model
        self.backend = backend
        self.pool = PreparedGraphPool(backend: backend)
    }

    /// g_a then h_a on a padded planar image `[3][height][width]`: returns y and z.
    func analyze(_ pixels: [Float], height: Int, width: Int) throws -> (y: Tensor, z: Tensor) {
        let key = PreparedGraphPool.Key(kind: "analysis", height: height, width: width)
        return try pool.with(key, build: {
            var g = Graph()
            let x = g.addInput("image", shape: TensorShape(channels: 3, height: height, width: width), type: .float32)
            var v = g.whole(x)
            for op in model.analysis { v = try g.append(op, input: v) }
            g.markOutput(v.tensor)
            for op in model.hyperAnalysis { v = try g.append(op, input: v) }
            g.markOutput(v.tensor)
            return g
        }) { prepared in
            let g = prepared.graph
            let input = g.inputs[0]
            let outs = g.outputs
            let r = try prepared.run(inputs: [input: Tensor(shape: g.shape(of: input), floats: pixels)])
            guard let y = r.outputs[outs[0]], let z = r.outputs[outs[1]] else {
                throw EngineError.backendFailure(backend: backend.name, reason: "analysis graph returned no output")
            }
            return (y, z)
        }
    }

    /// h_s in integers: z_hat → hyper features.
    func hyperSynthesize(_ zHat: Tensor) throws -> Tensor {
        try runInteger(kind: "h_s", layers: model.hyperSynthesis, input: zHat)
    }

    /// Entropy-parameter network of `level` on the context `[hyper | levels < level]`.
    func levelParameters(level: Int, context: Tensor) throws -> Tensor {
        try runInteger(kind: "ep\(level)", layers: model.entropyParameters[level], input: context)
    }

    /// g_s on the decoded latent grid (integers in units of 1/16): returns planar `[3][16h][16w]`.
    func synthesize(_ latents: Tensor) throws -> Tensor {
        let shape = latents.shape
        let key = PreparedGraphPool.Key(kind: "synthesis", height: shape.height, width: shape.width)
        let scale = 1 / Float(model.latentScale)
        let floats = (latents.ints ?? []).map { Float($0) * scale }
        return try pool.with(key, build: {
            var g = Graph()
            let x = g.addInput("latents", shape: shape, type: .float32)
            var v = g.whole(x)
            for op in model.synthesis { v = try g.append(op, input: v) }
            g.markOutput(v.tensor)
            return g
        }) { prepared in
            let g = prepared.graph
            let input = g.inputs[0]
            let r = try prepared.run(inputs: [input: Tensor(shape: shape, floats: floats)])
            guard let out = r.outputs[g.outputs[0]] else {
                throw EngineError.backendFailure(backend: backend.name, reason: "synthesis graph returned no output")
            }
            return out
        }
    }

    private func runInteger(kind: String, layers: [IntConv2dLayer], input: Tensor) throws -> Tensor {
        let shape = input.shape
        let key = PreparedGraphPool.Key(kind: kind, height: shape.height, width: shape.width)
        return try pool.with(key, build: {
            var g = Graph()
            let x = g.addInput(kind, shape: shape, type: .int32)
            var v = g.whole(x)
            for l in layers { v = try g.append(.intConv2d(l), input: v) }
            g.markOutput(v.tensor)
            return g
        }) { prepared in
            let g = prepared.graph
            let r = try prepared.run(inputs: [g.inputs[0]: input])
            guard let out = r.outputs[g.outputs[0]] else {
                throw EngineError.backendFailure(backend: backend.name, reason: "\(kind) graph returned no output")
            }
            return out
        }
    }
}
