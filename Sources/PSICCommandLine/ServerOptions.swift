import ArgumentParser
import Foundation
import PSICServer
import PSICCodec

/// Server options shared by `psic serve` and `psic-loadtest`.
public struct ServerOptions: ParsableArguments, Sendable {
    public init() {}

    @Option(name: .customLong("max-batch"),
            help: "Most requests run together in one batch (every network stage of a batch is one engine submission); 1 turns batching off.")
    public var maxBatch = 8

    @Option(name: .customLong("max-wait-ms"),
            help: "Longest a request waits, in milliseconds, for others to join its batch.")
    public var maxWaitMilliseconds = 5.0

    @Option(name: .customLong("max-queue"),
            help: "Most requests waiting for a batch; beyond it requests are answered 503 with Retry-After.")
    public var maxQueue = 64

    @Option(name: .customLong("retry-after"), help: "Seconds a client refused with 503 (queue full) is told to wait.")
    public var retryAfterSeconds = 1

    @Option(name: .customLong("max-body-bytes"), help: "Largest request body in bytes (413 beyond).")
    public var maxBodyBytes = 32 << 20

    @Option(name: .customLong("max-pixels"),
            help: "Largest image in pixels, to encode or decoded from a stream (413 beyond).")
    public var maxPixels = 16 << 20

    @Option(name: .customLong("timeout"),
            help: "Seconds a request may wait in the queue and run before it is answered 504.")
    public var timeoutSeconds = 60.0

    @Option(name: .customLong("idle-timeout"),
            help: "Seconds a connection may send nothing (also mid-upload) before it is closed.")
    public var idleTimeoutSeconds = 30.0

    public func validate() throws {
        guard (1...1024).contains(maxBatch) else { throw ValidationError("--max-batch must be in 1...1024") }
        guard maxWaitMilliseconds >= 0, maxWaitMilliseconds <= 10_000 else {
            throw ValidationError("--max-wait-ms must be in 0...10000")
        }
        guard (1...1_000_000).contains(maxQueue) else { throw ValidationError("--max-queue must be in 1...1000000") }
        guard retryAfterSeconds >= 1 else { throw ValidationError("--retry-after must be at least 1") }
        guard maxBodyBytes >= 1 else { throw ValidationError("--max-body-bytes must be at least 1") }
        guard maxPixels >= 1 else { throw ValidationError("--max-pixels must be at least 1") }
        // Bounded: the durations are built from integer milliseconds (an infinite value would trap).
        guard timeoutSeconds >= 0.001, timeoutSeconds <= 86_400 else {
            throw ValidationError("--timeout must be in 0.001...86400 seconds")
        }
        guard idleTimeoutSeconds >= 0.001, idleTimeoutSeconds <= 86_400 else {
            throw ValidationError("--idle-timeout must be in 0.001...86400 seconds")
        }
    }

    public func configuration(host: String, port: Int) -> ServerConfiguration {
        var c = ServerConfiguration()
        c.host = host
        c.port = port
        c.maxBatch = maxBatch
        c.maxWait = .microseconds(Int64(maxWaitMilliseconds * 1000))
        c.maxQueue = maxQueue
        c.retryAfterSeconds = retryAfterSeconds
        c.maxBodyBytes = maxBodyBytes
        c.maxPixels = maxPixels
        c.timeout = .milliseconds(Int64(timeoutSeconds * 1000))
        c.idleTimeout = .milliseconds(Int64(idleTimeoutSeconds * 1000))
        return c
    }
}
