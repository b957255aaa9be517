import Dispatch

/// Where encode/decode time goes, for benchmarks and server metrics: pass one to
/// `ImageCodec.decode` (or the batch calls) and read it after. Not thread-safe: use one per call.
public final class CodecProfile: @unchecked Sendable {
    /// Seconds spent in entropy decoding (z and every transmitted level).
    public var entropySeconds: Double = 0
    /// Seconds spent waiting for the backend to run graphs (GPU time plus submission overhead on
    /// Vulkan; compute time on the CPU backend).
    public var computeSeconds: Double = 0
    /// Backend batch runs issued: each is one queue submission on Vulkan, whatever the batch size.
    public var submissions: Int = 0

    public init() {}
}

extension Optional where Wrapped == CodecProfile {
    /// Runs `body`, adding its duration to `field` when profiling.
    func measure<T>(_ field: ReferenceWritableKeyPath<CodecProfile, Double>, _ body: () throws -> T) rethrows -> T {
        guard let profile = self else { return try body() }
        let t0 = DispatchTime.now().uptimeNanoseconds
        defer { profile[keyPath: field] += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }
        return try body()
    }
}
