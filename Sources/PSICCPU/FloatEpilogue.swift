import PSICEngine

/// Adds the bias and applies the fused activation to `channels` planes of `plane` floats.
func applyBiasAndActivation(_ out: UnsafeMutablePointer<Float>, channels: Int, plane: Int,
                            bias: [Float], activation: Activation, threads: Int) {
    bias.withUnsafeBufferPointer { b in
        parallelFor(channels, threads: threads) { c in
            let p = out + c * plane
            let bc = b[c]
            switch activation {
            case .none:
                for i in 0..<plane { p[i] += bc }
            case .relu:
                for i in 0..<plane { p[i] = max(p[i] + bc, 0) }
            case let .leakyReLU(slope):
                for i in 0..<plane {
                    let v = p[i] + bc
                    p[i] = v < 0 ? v * slope : v
                }
            }
        }
    }
}

/// The range of output positions `o` whose input position `o * stride - padding + tap` lies in
/// `0..<inputSize`: everything outside reads zero padding.
@inline(__always)
func validOutputRange(outputSize: Int, inputSize: Int, stride: Int, padding: Int, tap: Int) -> Range<Int> {
    // o * stride >= padding - tap  and  o * stride <= inputSize - 1 + padding - tap
    let lowNum = padding - tap
    let low = lowNum <= 0 ? 0 : (lowNum + stride - 1) / stride
    let highNum = inputSize - 1 + padding - tap
    let high = highNum < 0 ? -1 : highNum / stride
    let lo = min(low, outputSize), hi = min(max(high + 1, lo), outputSize)
    return lo..<hi
}

/// `floor(a / b)` for positive `b` (Swift's `/` truncates toward zero).
@inline(__always)
func floorDivide(_ a: Int, _ b: Int) -> Int {
    a >= 0 ? a / b : -((-a + b - 1) / b)
}
