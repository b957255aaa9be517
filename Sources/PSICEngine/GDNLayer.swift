/// Generalized divisive normalization (Ballé et al. 2016) or its inverse.
///
/// `y[i] = x[i] / sqrt(beta[i] + sum_j gamma[i][j] * x[j]^2)` (GDN), or `x[i] * sqrt(...)` (IGDN).
/// `beta` and `gamma` are the *effective* parameters (after the training tool's
/// reparameterisation), with `gamma` stored row-major `[i][j]`.
public final class GDNLayer: Sendable {
    public let name: String
    public let channels: Int
    public let inverse: Bool
    public let beta: [Float]
    public let gamma: [Float]

    public init(name: String, channels: Int, inverse: Bool, beta: [Float], gamma: [Float]) throws {
        self.name = name
        self.channels = channels
        self.inverse = inverse
        self.beta = beta
        self.gamma = gamma
        guard channels > 0 else { throw EngineError.invalidLayer(name: name, reason: "channels must be positive") }
        try LayerValidation.checkCount(name: name, what: "beta", beta.count, channels)
        try LayerValidation.checkCount(name: name, what: "gamma", gamma.count, channels * channels)
        guard beta.allSatisfy({ $0 > 0 }) else {
            throw EngineError.invalidLayer(name: name, reason: "beta must be positive")
        }
    }
}
