import Dispatch

/// Where encode/decode time goes, for benchmarks and server metrics, and how far a large image
/// has got: pass one to `ImageCodec.encode`/`decode` (or the batch calls) and read it after, or
/// watch `onTile`. Not thread-safe: use one per call.
public final class CodecProfile: @unchecked Sendable {
    /// Seconds spent in entropy decoding (z and every transmitted level).
    public var entropySeconds: Double = 0
    /// Seconds spent waiting for the backend to run graphs (GPU time plus submission overhead on
    /// Vulkan; compute time on the CPU backend).
    public var computeSeconds: Double = 0
    /// Backend batch runs issued: each is one queue submission on Vulkan, whatever the batch size.
    public var submissions: Int = 0
    /// Called after each tile of a network that an image too large for one graph runs in tiles
    /// (`ModelTransforms`), on the calling thread: a 35-megapixel encode takes tens of seconds
    /// in about 40 tiles per network, which a command line can show as it goes.
    public var onTile: ((TileProgress) -> Void)?

    public init() {}
}

/// One tile done of a network run in tiles.
public struct TileProgress: Sendable, Equatable {
    /// The network: "g_a", "h_a", "h_s", "ep1"… (the entropy parameters of level 1…) or "g_s".
    public let network: String
    /// Tiles of this run done so far, 1...total.
    public let done: Int
    public let total: Int
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
