import ArgumentParser
import Foundation
import Logging
import PSICCodec
import PSICCommandLine
import PSICServer

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the HTTP encoding server: PNG in, PSIC stream out, and back.",
        discussion: """
            Endpoints: POST /v1/encode (PNG body; query levels, seed, max_bytes, min_psnr, format_version, rd_lambda) \
            returns a PSIC stream; POST /v1/decode (stream body; query levels, seed, details=sampled|mean|calibrated, \
            detail_spread) returns a PNG; \
            GET /v1/info; GET /healthz; GET /metrics (Prometheus text format). Errors are JSON \
            {"error": code, "message": text}: 400 bad PNG, stream, query (unknown parameters too) or \
            broken upload; 404 unknown endpoint; 408 upload slower than --timeout; 413 body or image too large; 422 stream from another \
            model; 503 queue full (with Retry-After), shutting down or not enough memory free; \
            504 timeout; 500 engine failure. One model and one backend device serve every request; requests that arrive \
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
        let codec = try modelOptions.makeCodec(model: model, handle: backend)
        logger.info("model loaded", metadata: ["backend": "\(backend.name)", "gpu": "\(backend.isGPU)",
                                               "levels": "\(model.levels)"])
        let server = EncodingServer(codec: codec, backendName: backend.name, isGPU: backend.isGPU,
                                    configuration: serverOptions.configuration(host: host, port: port), logger: logger)
        try await server.run()   // graceful shutdown on SIGTERM and SIGINT
    }
}
