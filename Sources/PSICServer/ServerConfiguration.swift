/// Options of the encoding server (`psic serve` exposes each one as a flag).
public struct ServerConfiguration: Sendable {
    /// Address to bind. The default serves loopback only; use 0.0.0.0 behind a proxy.
    public var host: String = "127.0.0.1"
    /// TCP port; 0 picks a free one (reported by `onRunning`).
    public var port: Int = 8080
    /// Most requests run together in one batch; 1 turns batching off.
    public var maxBatch: Int = 8
    /// Longest a request waits for others to share its batch.
    public var maxWait: Duration = .milliseconds(5)
    /// Most requests waiting for a batch; beyond it requests get 503 with Retry-After.
    public var maxQueue: Int = 64
    /// Largest accepted request body.
    public var maxBodyBytes: Int = 32 << 20
    /// Largest image, in pixels, accepted to encode or produced by a decode.
    public var maxPixels: Int = 16 << 20
    /// Longest a request may wait in the queue and run; beyond it the answer is 504.
    public var timeout: Duration = .seconds(60)
    /// Value of the Retry-After header (seconds) when the queue is full.
    public var retryAfterSeconds: Int = 1
    /// A connection that sends nothing for this long is closed, also mid-upload: a stalled client
    /// must not hold a connection (and graceful shutdown) forever.
    public var idleTimeout: Duration = .seconds(30)

    public init() {}
}
