import Dispatch

/// Where decode time goes, for benchmarks: pass one to `ImageCodec.decode` and read it after.
public final class CodecProfile: @unchecked Sendable {
    /// Seconds spent in entropy decoding (z and every transmitted level).
    public var entropySeconds: Double = 0

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
