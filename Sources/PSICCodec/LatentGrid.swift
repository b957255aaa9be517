import PSICEngine
import PSICEntropy
import PSICModel

/// The integer latent grid a decoder builds level by level: one CHW buffer laid out as
/// `[hyper features | level 0 | level 1 | …]`, so the context of level `i`'s entropy-parameter
/// network is a prefix of it and no concatenation is ever copied together.
struct LatentGrid {
    let hyperChannels: Int
    let levelChannels: Int
    let levels: Int
    let height: Int
    let width: Int
    private(set) var buffer: [Int32]

    var plane: Int { height * width }

    init(hyper: Tensor, levelChannels: Int, levels: Int) {
        hyperChannels = hyper.shape.channels
        self.levelChannels = levelChannels
        self.levels = levels
        height = hyper.shape.height
        width = hyper.shape.width
        buffer = hyper.ints ?? []
        buffer.append(contentsOf: repeatElement(0, count: levels * levelChannels * height * width))
    }

    /// The input of level `i`'s entropy-parameter network.
    func context(forLevel i: Int) -> Tensor {
        let channels = hyperChannels + i * levelChannels
        return Tensor(shape: TensorShape(channels: channels, height: height, width: width),
                      ints: Array(buffer[0..<(channels * plane)]))
    }

    /// Stores level `i`'s decoded latents (`levelChannels * plane` values, CHW).
    mutating func store(level i: Int, _ values: [Int32]) {
        let start = (hyperChannels + i * levelChannels) * plane
        buffer.replaceSubrange(start..<(start + values.count), with: values)
    }

    /// All decoded latents `[C][h][w]` (levels in order), for the synthesis transform.
    var latents: Tensor {
        Tensor(shape: TensorShape(channels: levels * levelChannels, height: height, width: width),
               ints: Array(buffer[(hyperChannels * plane)...]))
    }
}

/// Means and table indexes of one level, split out of its entropy-parameter network's output.
struct LevelParameters {
    /// Means in units of 1/16, `[levelChannels][h][w]`.
    let means: [Int32]
    /// Gaussian table index per element, clamped to the table count (docs/integer-entropy-model.md):
    /// the table the sampler draws untransmitted levels from.
    let tableIndexes: [Int32]
    /// The level's channels' coding offsets (`CodecModel.codingOffsets`); empty for none.
    private let codingOffsets: ArraySlice<Int32>
    private let plane: Int
    private let top: Int32

    /// `codingOffsets`: the level's channels' offsets (empty: none, a format-version-1 model).
    init(networkOutput: Tensor, scaleCount: Int, codingOffsets: ArraySlice<Int32> = []) {
        let all = networkOutput.ints ?? []
        let half = all.count / 2
        means = Array(all[0..<half])
        top = Int32(scaleCount - 1)
        tableIndexes = all[half...].map { [top] in min(max($0, 0), top) }
        plane = networkOutput.shape.height * networkOutput.shape.width
        precondition(codingOffsets.isEmpty || codingOffsets.count * plane == tableIndexes.count,
                     "one coding offset per channel of the level")
        self.codingOffsets = codingOffsets
    }

    /// Level `level`'s parameters of `model` from its entropy-parameter network's output.
    init(networkOutput: Tensor, model: CodecModel, level: Int) {
        let lc = model.levelChannels
        self.init(networkOutput: networkOutput, scaleCount: model.info.constants.scaleCount,
                  codingOffsets: model.codingOffsets[(level * lc)..<((level + 1) * lc)])
    }

    /// The table the coder codes each element with: `tableIndexes` plus its channel's coding
    /// offset, clamped again. Computed where a level is coded and where a calibrated decode draws
    /// one (`DetailMode.calibrated`).
    var codingTableIndexes: [Int32] {
        guard codingOffsets.contains(where: { $0 != 0 }) else { return tableIndexes }
        var coding = tableIndexes
        for (c, offset) in codingOffsets.enumerated() {
            for e in (c * plane)..<((c + 1) * plane) {
                coding[e] = min(max(coding[e] + offset, 0), top)
            }
        }
        return coding
    }
}

/// The integer arithmetic that turns symbols into latents and back, shared by encoder and decoder.
enum LatentQuantizer {
    static let latentLimit: Int32 = 32767

    /// Decoded latent of symbol `q` at mean `mean`: `clamp(16q + mean)`.
    @inline(__always)
    static func latent(symbol q: Int32, mean: Int32) -> Int32 {
        let v = Int64(q) * 16 + Int64(mean)
        return Int32(min(max(v, -Int64(latentLimit)), Int64(latentLimit)))
    }

    /// The encoder's symbol for float latent `y`: `round(clamp(y) - mean/16)`, ties away from zero as the exporter.
    @inline(__always)
    static func symbol(latent y: Float, mean: Int32, clamp: Float) -> Int32 {
        Int32(residual(latent: y, mean: mean, clamp: clamp).rounded())
    }

    /// `clamp(y) − mean/16` in Float (NaN as 0): what every encoder rule rounds.
    @inline(__always)
    static func residual(latent y: Float, mean: Int32, clamp: Float) -> Float {
        let yc = y.isNaN ? 0 : min(max(y, -clamp), clamp)
        return yc - Float(mean) / 16
    }
}

extension LatentShape {
    init(_ shape: TensorShape) {
        self.init(channels: shape.channels, height: shape.height, width: shape.width)
    }
}

extension CDFTableSet {
    /// Validated tables from a model file's padded arrays.
    init(_ data: CDFTableData) throws {
        try self.init(rows: data.rows, stride: data.stride, cdf: data.cdf, lengths: data.lengths, offsets: data.offsets)
    }
}
