/// How an encoder turns each latent into a symbol. Every choice writes a stream that every
/// decoder reads the same way; they differ in how many bytes buy how much fidelity.
public enum Quantization: Sendable, Equatable {
    /// The model file's choice: `RateDistortionQuantizer` with the λ per level the exporter
    /// wrote, or `nearest` when the file names none (the shipped file names none).
    case modelDefault
    /// The nearest symbol, as the model was trained.
    case nearest
    /// `RateDistortionQuantizer` with `lambda` bits per squared latent step (finite, > 0) at
    /// every level; larger is closer to `nearest`.
    case rateDistortion(lambda: Double)
}
