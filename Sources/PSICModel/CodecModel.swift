import Foundation
import PSICEngine

/// A loaded PSIC model: float transforms, the integer entropy model and its CDF tables.
///
/// Immutable and `Sendable`: one instance is shared by every encode/decode, on every thread.
public final class CodecModel: Sendable {
    public let info: ModelDescription
    /// The 8-byte model fingerprint that streams carry.
    public let fingerprint: [UInt8]

    /// g_a: conv5x5/2 · GDN · conv5x5/2 · GDN · conv5x5/2 · GDN · conv5x5/2.
    public let analysis: [LayerOp]
    /// h_a (encoder only): conv3x3 · LReLU · conv5x5/2 · LReLU · conv5x5/2.
    public let hyperAnalysis: [LayerOp]
    /// g_s: deconv5x5/2 · IGDN · deconv · IGDN · deconv · IGDN · deconv.
    public let synthesis: [LayerOp]
    /// h_s in integers: z_hat → hyper features.
    public let hyperSynthesis: [IntConv2dLayer]
    /// One integer network per level: `[hyper | levels < i]` → `[mean | scale index]`.
    public let entropyParameters: [[IntConv2dLayer]]
    /// z's factorised prior, one table per z channel.
    public let zTables: CDFTableData
    /// The Gaussian tables, one per scale index.
    public let gaussianTables: CDFTableData
    /// Per latent channel, what the coder adds to the scale index before clamping it to the
    /// tables (docs/integer-entropy-model.md): the trained scale is narrower than the residuals,
    /// because it also sets the spread of sampled details, so the coder reads a wider table while
    /// the sampler keeps the network's. Zeros for a format-version-1 file.
    public let codingOffsets: [Int32]

    public var levels: Int { info.architecture.L }
    public var latentChannels: Int { info.architecture.C }
    public var levelChannels: Int { info.architecture.C / info.architecture.L }
    public var hyperChannels: Int { info.architecture.hyper }
    public var zChannels: Int { info.architecture.N }
    /// Images are padded to a multiple of this (g_a and h_a downsample by 64 together).
    public static let sizeMultiple = 64
    /// Scale from y to the integer latent grid (`2^mean_fraction_bits`).
    public var latentScale: Int32 { 1 << Int32(info.constants.meanFractionBits) }

    /// Loads a model file from disk.
    public convenience init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ModelError.malformedFile(reason: "cannot read \(url.path): \(error.localizedDescription)")
        }
        try self.init(bytes: [UInt8](data))
    }

    public init(bytes: [UInt8]) throws {
        let file = try SafeTensorsFile(bytes: bytes)
        guard let json = file.metadata["psic"] else {
            throw ModelError.unsupportedModel(reason: "no 'psic' metadata: not a PSIC model file")
        }
        let info: ModelDescription
        do { info = try JSONDecoder().decode(ModelDescription.self, from: Data(json.utf8)) } catch {
            throw ModelError.unsupportedModel(reason: "model metadata does not parse: \(error)")
        }
        guard info.format == "psic-model" else { throw ModelError.unsupportedModel(reason: "format '\(info.format)'") }
        let versions = ModelDescription.supportedFormatVersions
        guard versions ~= info.formatVersion else {
            throw ModelError.unsupportedModel(reason: "model format version \(info.formatVersion); this build reads versions \(versions.lowerBound)...\(versions.upperBound) — use a matching psic release")
        }
        guard info.sampling == ModelDescription.supportedSampling else {
            throw ModelError.unsupportedModel(reason: "sampling rule '\(info.sampling)' is not implemented by this build")
        }
        let a = info.architecture
        let widths = 1...Self.maxChannels
        guard a.family == "conv", widths ~= a.N, widths ~= a.C, (1...Self.maxLevels) ~= a.L, a.C % a.L == 0,
              widths ~= a.hyper, widths ~= a.epWidth else {
            throw ModelError.unsupportedModel(reason: "architecture \(a.family) N=\(a.N) C=\(a.C) L=\(a.L) hyper=\(a.hyper) ep_width=\(a.epWidth) (channels 1...\(Self.maxChannels), levels 1...\(Self.maxLevels) dividing C)")
        }
        try Self.checkConstants(info.constants)
        guard let fp = Self.parseFingerprint(info.fingerprint) else {
            throw ModelError.unsupportedModel(reason: "fingerprint '\(info.fingerprint)' is not 16 hex digits")
        }
        self.info = info
        self.fingerprint = fp

        let slope = Float(info.constants.leakySlopeNumerator) / 256
        func conv(_ name: String, _ cin: Int, _ cout: Int, k: Int = 5, s: Int = 2, act: Activation = .none) throws -> LayerOp {
            let w = try file.floats("\(name).weight", shape: [cout, cin, k, k])
            let b = try file.floats("\(name).bias", shape: [cout])
            return .conv2d(try Conv2dLayer(name: name, inChannels: cin, outChannels: cout, kernelSize: k, stride: s,
                                           weights: w, bias: b, activation: act))
        }
        func deconv(_ name: String, _ cin: Int, _ cout: Int) throws -> LayerOp {
            let w = try file.floats("\(name).weight", shape: [cin, cout, 5, 5])
            let b = try file.floats("\(name).bias", shape: [cout])
            return .convTranspose2d(try ConvTranspose2dLayer(name: name, inChannels: cin, outChannels: cout,
                                                             kernelSize: 5, stride: 2, weights: w, bias: b))
        }
        func gdn(_ name: String, inverse: Bool) throws -> LayerOp {
            .gdn(try GDNLayer(name: name, channels: a.N, inverse: inverse,
                              beta: try file.floats("\(name).beta", shape: [a.N]),
                              gamma: try file.floats("\(name).gamma", shape: [a.N, a.N])))
        }
        analysis = [try conv("g_a.0", 3, a.N), try gdn("g_a.1", inverse: false),
                    try conv("g_a.2", a.N, a.N), try gdn("g_a.3", inverse: false),
                    try conv("g_a.4", a.N, a.N), try gdn("g_a.5", inverse: false),
                    try conv("g_a.6", a.N, a.C)]
        hyperAnalysis = [try conv("h_a.0", a.C, a.N, k: 3, s: 1, act: .leakyReLU(slope: slope)),
                         try conv("h_a.2", a.N, a.N, act: .leakyReLU(slope: slope)),
                         try conv("h_a.4", a.N, a.N)]
        synthesis = [try deconv("g_s.0", a.C, a.N), try gdn("g_s.1", inverse: true),
                     try deconv("g_s.2", a.N, a.N), try gdn("g_s.3", inverse: true),
                     try deconv("g_s.4", a.N, a.N), try gdn("g_s.5", inverse: true),
                     try deconv("g_s.6", a.N, 3)]

        func intLayer(_ name: String) throws -> IntConv2dLayer {
            guard let d = info.intLayers[name] else { throw ModelError.badTensor(name: name, reason: "no int_layers metadata") }
            let transposed: Bool
            switch d.kind {
            case "conv": transposed = false
            case "conv_transpose": transposed = true
            default: throw ModelError.badTensor(name: name, reason: "unknown layer kind '\(d.kind)'")
            }
            let shape = transposed ? [d.in, d.out, d.kernel, d.kernel] : [d.out, d.in, d.kernel, d.kernel]
            let w = try file.ints("\(name).weight", shape: shape)
            guard w.allSatisfy({ Int32(Int16.min)...Int32(Int16.max) ~= $0 }) else {
                throw ModelError.badTensor(name: "\(name).weight", reason: "values outside Int16 range")
            }
            let act: IntegerRequantization.IntActivation
            switch d.activation {
            case "none": act = .none
            case "relu": act = .relu
            case "leaky": act = .leakyReLU(slopeNumerator: info.constants.leakySlopeNumerator)
            default: throw ModelError.badTensor(name: name, reason: "unknown activation '\(d.activation)'")
            }
            let rq = IntegerRequantization(multiplier: try file.ints("\(name).multiplier", shape: [d.out]),
                                           shift: try file.ints("\(name).shift", shape: [d.out]),
                                           activation: act, outputMin: d.outputMin, outputMax: d.outputMax)
            do {
                return try IntConv2dLayer(name: name, transposed: transposed, inChannels: d.in, outChannels: d.out,
                                          kernelSize: d.kernel, stride: d.stride, weights: w.map { Int16($0) },
                                          bias: try file.ints("\(name).bias", shape: [d.out]),
                                          inputBound: d.inputBound, requantization: rq)
            } catch let e as EngineError {
                throw ModelError.badTensor(name: name, reason: e.description)
            }
        }
        hyperSynthesis = [try intLayer("h_s.0"), try intLayer("h_s.2"), try intLayer("h_s.4")]
        entropyParameters = try (0..<a.L).map { i in
            [try intLayer("ep.\(i).0"), try intLayer("ep.\(i).2"), try intLayer("ep.\(i).4")]
        }
        try Self.checkIntegerShapes(info: info, hyperSynthesis: hyperSynthesis, entropyParameters: entropyParameters)

        func tables(_ prefix: String, rows: Int) throws -> CDFTableData {
            guard let e = file.entries["\(prefix)_cdf"], e.shape.count == 2, e.shape[0] == rows, e.shape[1] >= 3 else {
                throw ModelError.badTensor(name: "\(prefix)_cdf", reason: "missing or not [\(rows), n]")
            }
            return CDFTableData(rows: rows, stride: e.shape[1], cdf: try file.ints("\(prefix)_cdf"),
                                lengths: try file.ints("\(prefix)_cdf_length", shape: [rows]),
                                offsets: try file.ints("\(prefix)_offset", shape: [rows]))
        }
        zTables = try tables("z", rows: a.N)
        gaussianTables = try tables("gaussian", rows: info.constants.scaleCount)
        if info.formatVersion >= 2 {
            let offsets = try file.ints("gaussian_coding_offset", shape: [a.C])
            let reach = Int32(clamping: info.constants.scaleCount)
            guard offsets.allSatisfy({ -reach < $0 && $0 < reach }) else {
                throw ModelError.badTensor(name: "gaussian_coding_offset", reason: "an offset reaches past the \(reach) Gaussian tables")
            }
            codingOffsets = offsets
        } else {
            codingOffsets = [Int32](repeating: 0, count: a.C)
        }
        if let lambdas = info.encoder?.rateDistortionLambda, lambdas.count != a.L || !lambdas.allSatisfy({ $0.isFinite && $0 >= 0 }) {
            throw ModelError.unsupportedModel(reason: "encoder.rate_distortion_lambda \(lambdas) is not \(a.L) finite numbers >= 0")
        }
    }

    /// λ of the encoder's rate-distortion quantiser at each level that the exporter chose (bits
    /// per squared latent step; 0 at a level rounds it to the nearest symbol), or nil when the file
    /// names none above 0: then the encoder rounds every level to the nearest symbol.
    public var rateDistortionLambdas: [Double]? {
        guard let l = info.encoder?.rateDistortionLambda, l.contains(where: { $0 > 0 }) else { return nil }
        return l
    }

    /// Widest channel count a model may declare (the shipped model's widest is 160).
    static let maxChannels = 1 << 14
    /// Most synonymous levels a model may declare.
    static let maxLevels = 64

    /// The integer model's constants (docs/integer-entropy-model.md): fixed ones must match this
    /// build, the others must lie where the codec's integer arithmetic stays exact — a latent
    /// clamp past 2047 would let `16q + mean` leave the Int16 range the networks read, a z clamp
    /// past 32767 would leave the h_s input range.
    private static func checkConstants(_ c: ModelDescription.Constants) throws {
        guard c.cdfPrecision == 16, c.meanFractionBits == 4 else {
            throw ModelError.unsupportedModel(reason: "constants differ from this build's integer model (cdf_precision \(c.cdfPrecision), mean_fraction_bits \(c.meanFractionBits); this build: 16 and 4)")
        }
        guard (1...2047).contains(c.latentClamp), (1...32767).contains(c.zClamp) else {
            throw ModelError.unsupportedModel(reason: "latent_clamp \(c.latentClamp) / z_clamp \(c.zClamp) outside 1...2047 / 1...32767")
        }
        // Its upper bound is the CDF table set's, checked when the codec builds the tables.
        guard c.scaleCount >= 1 else {
            throw ModelError.unsupportedModel(reason: "scale_count \(c.scaleCount) is not positive")
        }
        guard (0...256).contains(c.leakySlopeNumerator) else {
            throw ModelError.unsupportedModel(reason: "leaky_slope_numerator \(c.leakySlopeNumerator) outside 0...256")
        }
    }

    /// Checks that the integer networks chain: each layer's input bound covers what feeds it.
    private static func checkIntegerShapes(info: ModelDescription, hyperSynthesis: [IntConv2dLayer],
                                           entropyParameters: [[IntConv2dLayer]]) throws {
        let a = info.architecture
        let lc = a.C / a.L
        guard hyperSynthesis[0].inChannels == a.N, hyperSynthesis[2].outChannels == a.hyper,
              hyperSynthesis[0].inputBound >= Int32(info.constants.zClamp) else {
            throw ModelError.unsupportedModel(reason: "h_s does not match the architecture")
        }
        for (i, net) in entropyParameters.enumerated() {
            guard net[0].inChannels == a.hyper + i * lc, net[2].outChannels == 2 * lc,
                  net[0].inputBound >= 32767 else {
                throw ModelError.unsupportedModel(reason: "entropy-parameter net \(i) does not match the architecture")
            }
        }
        // The codec's tiling (ModelTransforms) relies on this geometry: h_s's two 5×5 stride-2
        // transposed convolutions and a 3×3 (4 outputs per z cell, a reach of two z cells), and
        // 1×1 entropy-parameter networks (no reach). Another geometry would decode differently
        // depending on whether an image was tiled, so it is refused here.
        let hsGeometry = hyperSynthesis.map { [$0.transposed ? 1 : 0, $0.kernelSize, $0.stride] }
        guard hsGeometry == [[1, 5, 2], [1, 5, 2], [0, 3, 1]] else {
            throw ModelError.unsupportedModel(reason: "h_s must be two 5×5 stride-2 transposed convolutions and a 3×3 convolution")
        }
        for (i, net) in entropyParameters.enumerated() where net.contains(where: { $0.transposed || $0.kernelSize != 1 || $0.stride != 1 }) {
            throw ModelError.unsupportedModel(reason: "entropy-parameter net \(i) must be 1×1 convolutions")
        }
        for net in [hyperSynthesis] + entropyParameters {
            for (prev, next) in zip(net, net.dropFirst()) {
                let r = prev.requantization
                guard max(abs(Int64(r.outputMin)), abs(Int64(r.outputMax))) <= Int64(next.inputBound) else {
                    throw ModelError.unsupportedModel(reason: "\(prev.name) can output values beyond \(next.name)'s input bound")
                }
            }
        }
    }

    static func parseFingerprint(_ hex: String) -> [UInt8]? {
        let chars = Array(hex.utf8)
        guard chars.count == 16 else { return nil }
        var out: [UInt8] = []
        for i in stride(from: 0, to: 16, by: 2) {
            guard let b = UInt8(String(decoding: chars[i..<(i + 2)], as: UTF8.self), radix: 16) else { return nil }
            out.append(b)
        }
        return out
    }
}
