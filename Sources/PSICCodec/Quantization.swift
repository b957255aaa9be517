/// How an encoder turns each latent into a symbol. Every choice writes a stream that every
/// decoder reads the same way; they differ in how many bytes buy how much fidelity.
public enum Quantization: Sendable, Equatable {
    /// The model file's choice: `rateDistortion` with the λ the exporter tuned, or `nearest`
    /// when the file names none.
    case modelDefault
    /// The nearest symbol, as the model was trained.
    case nearest
    /// `RateDistortionQuantizer` with `lambda` bits per squared latent step (finite, > 0); larger
    /// is closer to `nearest`.
    case rateDistortion(lambda: Double)
}
