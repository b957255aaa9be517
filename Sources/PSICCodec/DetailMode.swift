/// How a decoder fills the levels a stream does not carry.
///
/// Both are computed in the integer entropy model, so either decodes identically on every
/// backend; the stream is the same, the choice is the decoder's.
public enum DetailMode: String, Sendable, CaseIterable {
    /// Drawn from the model's conditional prior with a seed (the paper's synonymous sampling):
    /// a plausible image with sharp detail, one of many (each seed gives another).
    case sampled
    /// The prior's mean for every untransmitted latent (symbol 0): one deterministic image,
    /// closer to the original on average (higher PSNR), with less detail. Seeds do not matter.
    case mean
}
