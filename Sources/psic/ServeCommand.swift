import ArgumentParser
import Foundation
import Logging
import PSICCodec
import PSICServer

/// Server options shared by `psic serve` and `psic bench serve`.
struct ServerOptions: ParsableArguments {
    @Option(name: .customLong("max-batch"),
            help: "Most requests run together in one batch (every network stage of a batch is one engine submission); 1 turns batching off.")
    var maxBatch = 8

    @Option(name: .customLong("max-wait-ms"),
            help: "Longest a request waits, in milliseconds, for others to join its batch.")
    var maxWaitMilliseconds = 5.0

    @Option(name: .customLong("max-queue"),
            help: "Most requests waiting for a batch; beyond it requests are answered 503 with Retry-After.")
    var maxQueue = 64

    @Option(name: .customLong("retry-after"), help: "Seconds a client refused with 503 (queue full) is told to wait.")
    var retryAfterSeconds = 1

    @Option(name: .customLong("max-body-bytes"), help: "Largest request body in bytes (413 beyond).")
    var maxBodyBytes = 32 << 20

    @Option(name: .customLong("max-pixels"),
            help: "Largest image in pixels, to encode or decoded from a stream (413 beyond).")
    var maxPixels = 16 << 20

    @Option(name: .customLong("timeout"),
            help: "Seconds a request may wait in the queue and run before it is answered 504.")
    var timeoutSeconds = 60.0

    func validate() throws {
        guard maxBatch >= 1 else { throw ValidationError("--max-batch must be at least 1") }
        guard maxWaitMilliseconds >= 0, maxWaitMilliseconds <= 10_000 else {
            throw ValidationError("--max-wait-ms must be in 0...10000")
        }
        guard maxQueue >= 1 else { throw ValidationError("--max-queue must be at least 1") }
        guard retryAfterSeconds >= 1 else { throw ValidationError("--retry-after must be at least 1") }
        guard maxBodyBytes >= 1 else { throw ValidationError("--max-body-bytes must be at least 1") }
        guard maxPixels >= 1 else { throw ValidationError("--max-pixels must be at least 1") }
        guard timeoutSeconds > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func configuration(host: String, port: Int) -> ServerConfiguration {
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
        return c
    }
}

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the HTTP encoding server: PNG in, PSIC stream out, and back.",
        discussion: """
            Endpoints: POST /v1/encode (PNG body; query levels, seed) returns a PSIC stream; \
            POST /v1/decode (stream body; query levels, seed) returns a PNG; GET /v1/info; GET /healthz; \
            GET /metrics (Prometheus text format). Errors are JSON {"error": code, "message": text}: \
            400 bad PNG, stream or query; 404 unknown endpoint; 413 body or image too large; \
            422 stream from another model; 503 queue full (with Retry-After) or shutting down; \
            504 timeout. One model and one backend device serve every request; requests that arrive \
            together are batched. SIGTERM or SIGINT stop accepting connections, finish the requests \
            in flight, then exit. Logs go to stderr.
            """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var serverOptions: ServerOptions

    @Option(help: "Address to listen on (the default serves this machine only; 0.0.0.0 for every interface).")
    var host = "127.0.0.1"

    @Option(help: "TCP port (0: any free port, printed in the log).")
    var port = 8080

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level '\(logLevel)'") }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "psic.serve")
        let model = try modelOptions.loadModel()
        let backend = try modelOptions.makeBackend()
        let codec = try ImageCodec(model: model, backend: backend.backend)
        logger.info("model loaded", metadata: ["backend": "\(backend.name)", "gpu": "\(backend.isGPU)",
                                               "levels": "\(model.levels)"])
        let server = EncodingServer(codec: codec, backendName: backend.name, isGPU: backend.isGPU,
                                    configuration: serverOptions.configuration(host: host, port: port), logger: logger)
        try await server.run()   // graceful shutdown on SIGTERM and SIGINT
    }
}
