import PSICEntropy

/// The encoder's rate-distortion choice of symbols: of the two integers around a latent's residual
/// `r = clamp(y) − mean/16`, the nearest `q0` (what `LatentQuantizer.symbol` gives) and the other
/// one, it keeps the one with the lower `bits(q) + λ·(r − q)²`, where bits is the symbol's price in
/// its coding table. Near a rounding boundary the two latents are about equally far from `y`, so
/// taking the cheaper one saves bits for almost no error; λ (bits per squared latent step, one per
/// level, from the model file or the caller) sets how far from the boundary that may go.
///
/// Only the encoder runs this: a stream means what its symbols say, so every decoder, old or new,
/// decodes it unchanged. The rule is the exporter's `rd_symbols` (Tools/train/psic_train/intmodel.py)
/// to the bit, which the golden vectors check, so the exporter's rate-quality figures are the
/// engine's. Each move takes a latent toward its mean, which the perceptual metric notices:
/// Tools/train/rd_probe.py and RESULTS.md (session 51) have what each λ buys and costs.
struct RateDistortionQuantizer: Sendable {
    let costs: SymbolCosts
    /// Bits per squared latent step at each level; a level at 0 rounds to the nearest symbol.
    let lambdas: [Double]

    /// The symbol for float latent `y` at mean `mean` (1/16 units) coded with table `codingTable`
    /// with weight `lambda` (> 0). Where either candidate would be escaped, the nearest symbol stands.
    @inline(__always)
    static func symbol(latent y: Float, mean: Int32, codingTable: Int, clamp: Float, lambda: Double, costs: SymbolCosts) -> Int32 {
        let r = LatentQuantizer.residual(latent: y, mean: mean, clamp: clamp)
        let q0 = Int32(r.rounded())
        let q1 = Float(q0) < r ? q0 + 1 : q0 - 1
        guard let b0 = costs.bits(table: codingTable, value: q0),
              let b1 = costs.bits(table: codingTable, value: q1) else { return q0 }
        let d0 = Double(r) - Double(q0), d1 = Double(r) - Double(q1)
        return b1 + lambda * (d1 * d1) < b0 + lambda * (d0 * d0) ? q1 : q0
    }
}
