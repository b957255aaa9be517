/// How a value outside its table's regular range is coded after the escape symbol. All fields
/// are "bypass" fields: a k-bit field is one rANS step with start `field << (16−k)` and
/// frequency `2^(16−k)`, i.e. exactly k bits, in the same substream (docs/bitstream.md).
///
/// 1. sign, 1 bit: 0 = above the range, 1 = below it;
/// 2. `n − 1`, 5 bits, where `n` is the bit length of `d + 1` and `d ≥ 0` the distance past the
///    range's edge (`v − (last + 1)` above, `(first − 1) − v` below);
/// 3. the `n − 1` bits of `d + 1` below its leading one, high part first when more than 16.
///
/// Elias-gamma with a fixed-width length field: escapes are rare (tails of mass ≈ 2^−16), so the
/// few extra bits for small `d` do not matter, and the length field bounds every decode step.
public enum EscapeCode {
    /// Escaped values have magnitude below 2^20: far above any latent (±4095 after clamping)
    /// yet small enough that a hostile stream cannot produce absurd values.
    public static let magnitudeLimit = 1 << 20
    static let lengthFieldBits = 5
    /// `d + 1 < 2^21 + 2^16 < 2^22` given table values in ±2^16, so `n ≤ 22`.
    static let maxBitLength = 22
    static let chunkBits = 16
}
