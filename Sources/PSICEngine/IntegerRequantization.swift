/// Fixed-point requantisation and activation that follow an integer convolution.
///
/// For output channel `c` with Int32 accumulator `acc` (bias included):
/// ```
/// v = (Int64(acc) * Int64(multiplier[c]) + (1 << (shift[c] - 1))) >> shift[c]   // arithmetic shift
/// relu:        v = max(v, 0)
/// leakyReLU:   v = v < 0 ? (v * slopeNumerator) >> 8 : v                        // arithmetic shift
/// out = Int32(clamp(v, outputMin, outputMax))
/// ```
/// Every backend implements exactly this sequence, which is what makes the entropy model
/// bit-exact everywhere (see docs/integer-entropy-model.md).
public struct IntegerRequantization: Sendable, Hashable {
    public enum IntActivation: Sendable, Hashable {
        case none
        case relu
        /// Negative slope `slopeNumerator / 256`, `slopeNumerator` in `0...256`.
        case leakyReLU(slopeNumerator: Int32)
    }

    /// Per output channel multiplier.
    public var multiplier: [Int32]
    /// Per output channel right shift, in `1...62`.
    public var shift: [Int32]
    public var activation: IntActivation
    public var outputMin: Int32
    public var outputMax: Int32

    public init(multiplier: [Int32], shift: [Int32], activation: IntActivation,
                outputMin: Int32, outputMax: Int32) {
        self.multiplier = multiplier
        self.shift = shift
        self.activation = activation
        self.outputMin = outputMin
        self.outputMax = outputMax
    }

    /// Applies the requantisation to one accumulator of channel `c` (the reference definition).
    @inlinable
    public func apply(_ acc: Int32, channel c: Int) -> Int32 {
        let s = Int64(shift[c])
        var v = (Int64(acc) * Int64(multiplier[c]) + (Int64(1) << (s - 1))) >> s
        switch activation {
        case .none: break
        case .relu: v = max(v, 0)
        case let .leakyReLU(k): if v < 0 { v = (v * Int64(k)) >> 8 }
        }
        return Int32(min(max(v, Int64(outputMin)), Int64(outputMax)))
    }

    /// Applies the requantisation in place to `count` accumulators of channel `c`: the same
    /// results as `apply(_:channel:)` element by element. The CPU backend calls this once per
    /// output plane; hoisting the channel's constants and the activation out of the loop lets
    /// the compiler vectorise it. Shifts are masking shifts, which agree with the reference
    /// for the validated range `1...62`; products wrap like the shaders' (they cannot overflow
    /// for accumulators and multipliers within Int32, except a leaky slope applied to a value
    /// beyond 2^55, where the reference would trap).
    @inlinable
    public func apply(_ values: UnsafeMutablePointer<Int32>, count: Int, channel c: Int) {
        let s = Int64(shift[c]), m = Int64(multiplier[c])
        let r = Int64(1) &<< (s &- 1)
        let lo = Int64(outputMin), hi = Int64(outputMax)
        switch activation {
        case .none:
            for i in 0..<count {
                let v = (Int64(values[i]) &* m &+ r) &>> s
                values[i] = Int32(truncatingIfNeeded: min(max(v, lo), hi))
            }
        case .relu:
            let lo = max(lo, 0)
            for i in 0..<count {
                let v = (Int64(values[i]) &* m &+ r) &>> s
                values[i] = Int32(truncatingIfNeeded: min(max(v, lo), hi))
            }
        case let .leakyReLU(k):
            let k = Int64(k)
            for i in 0..<count {
                let v = (Int64(values[i]) &* m &+ r) &>> s
                let a = v < 0 ? (v &* k) &>> 8 : v
                values[i] = Int32(truncatingIfNeeded: min(max(a, lo), hi))
            }
        }
    }

    func validate(name: String, channels: Int) throws {
        try LayerValidation.checkCount(name: name, what: "multiplier", multiplier.count, channels)
        try LayerValidation.checkCount(name: name, what: "shift", shift.count, channels)
        guard shift.allSatisfy({ (1...62).contains($0) }) else {
            throw EngineError.invalidLayer(name: name, reason: "shift must be in 1...62")
        }
        guard outputMin <= outputMax else {
            throw EngineError.invalidLayer(name: name, reason: "outputMin > outputMax")
        }
        if case let .leakyReLU(k) = activation, !(0...256).contains(k) {
            throw EngineError.invalidLayer(name: name, reason: "leaky slope numerator must be in 0...256")
        }
    }
}
