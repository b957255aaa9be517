import Foundation

/// The JSON document in a model file's `__metadata__["psic"]` (docs/integer-entropy-model.md).
public struct ModelDescription: Codable, Sendable {
    public struct Architecture: Codable, Sendable {
        public let family: String
        public let N: Int
        public let C: Int
        public let L: Int
        public let hyper: Int
        public let epWidth: Int
        enum CodingKeys: String, CodingKey { case family, N, C, L, hyper, epWidth = "ep_width" }
    }

    public struct Constants: Codable, Sendable {
        public let meanFractionBits: Int
        public let scaleCount: Int
        public let scaleMin: Double
        public let scaleMax: Double
        public let cdfPrecision: Int
        public let latentClamp: Int
        public let zClamp: Int
        public let leakySlopeNumerator: Int32
        enum CodingKeys: String, CodingKey {
            case meanFractionBits = "mean_fraction_bits", scaleCount = "scale_count", scaleMin = "scale_min",
                 scaleMax = "scale_max", cdfPrecision = "cdf_precision", latentClamp = "latent_clamp",
                 zClamp = "z_clamp", leakySlopeNumerator = "leaky_slope_numerator"
        }
    }

    public struct IntLayer: Codable, Sendable {
        public let kind: String
        public let kernel: Int
        public let stride: Int
        public let `in`: Int
        public let out: Int
        public let inputBound: Int32
        public let activation: String
        public let outputMin: Int32
        public let outputMax: Int32
        enum CodingKeys: String, CodingKey {
            case kind, kernel, stride, `in`, out, activation
            case inputBound = "input_bound", outputMin = "output_min", outputMax = "output_max"
        }
    }

    /// Settings the exporter chose for this model's encoder (`export.py --rd-lambda`). They change
    /// which symbols an encoder chooses, never what a stream means, so a file without them decodes
    /// the same and encodes with nearest rounding.
    public struct EncoderSettings: Codable, Sendable {
        /// λ of the rate-distortion quantiser for each level, in bits per squared latent step
        /// (`ImageCodec`'s `Quantization`); absent, or 0 at a level: round to the nearest symbol.
        public let rateDistortionLambda: [Double]?
        enum CodingKeys: String, CodingKey { case rateDistortionLambda = "rate_distortion_lambda" }
    }

    public let format: String
    public let formatVersion: Int
    public let architecture: Architecture
    public let constants: Constants
    public let sampling: String
    public let intLayers: [String: IntLayer]
    public let fingerprint: String
    public let training: [String: JSONValue]?
    /// Optional: the shipped file names none (docs/integer-entropy-model.md says why).
    public let encoder: EncoderSettings?

    enum CodingKeys: String, CodingKey {
        case format, formatVersion = "format_version", architecture, constants, sampling,
             intLayers = "int_layers", fingerprint, training, encoder
    }

    /// The model format versions this build reads: version 2 added the coder's scale-index
    /// offsets (`gaussian_coding_offset`); a version-1 file codes with offsets of zero.
    public static let supportedFormatVersions = 1...2
    /// The sampling rule this build implements.
    public static let supportedSampling = "splitmix64-inverse-cdf-v1"
}

/// A loosely typed JSON value for informational metadata (training history).
public enum JSONValue: Codable, Sendable, CustomStringConvertible {
    case number(Double), string(String), bool(Bool), null

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else { self = .null }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case let .number(d): try c.encode(d)
        case let .string(s): try c.encode(s)
        case let .bool(b): try c.encode(b)
        case .null: try c.encodeNil()
        }
    }

    public var description: String {
        switch self {
        case let .number(d): return d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
        case let .string(s): return s
        case let .bool(b): return String(b)
        case .null: return "null"
        }
    }
}
