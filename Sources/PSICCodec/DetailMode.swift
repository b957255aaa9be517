/// How a decoder fills the levels a stream does not carry.
///
/// All three are computed in the integer entropy model, so each decodes identically on every
/// backend; the stream is the same, the choice is the decoder's.
public enum DetailMode: String, Sendable, CaseIterable {
    /// Drawn from the model's conditional prior with a seed (the paper's synonymous sampling):
    /// a plausible image with sharp detail, one of many (each seed gives another).
    case sampled
    /// The prior's mean for every untransmitted latent (symbol 0): one deterministic image,
    /// closer to the original on average (higher PSNR), with less detail. Seeds do not matter.
    case mean
    /// Drawn with a seed like `sampled`, but from the tables the coder codes each channel with:
    /// the prior widened per channel by the model's coding offsets, which the exporter fitted to
    /// the encoder's own latents. Training narrows the prior (its expected distortion over
    /// sampled details pulls the scale down); these tables are the model's measured spread of
    /// real latents, so the draw has the spread an encoded photo's latents have, with no knob
    /// to choose. A model without coding offsets (format version 1) draws as `sampled`.
    case calibrated

    /// Whether untransmitted levels are drawn with a seed (each seed its own image).
    public var isDrawn: Bool { self != .mean }
}
