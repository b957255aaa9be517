import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import PSICCodec
import PSICCommandLine
import PSICImage
import PSICServer

/// Load test of the encoding server on loopback: the same bounded load with batching off
/// (max batch 1) and on, side by side in one run, one model and one backend shared by both.
@main
struct LoadTestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "psic-loadtest",
        abstract: "Load-test psic serve on 127.0.0.1: throughput and p50/p99 latency without and with batching.",
        discussion: """
            Starts the server in this process on a free loopback port (never another interface), \
            sends --requests requests with at most --concurrency in flight, first with --max-batch 1, \
            then with the given --max-batch, and prints both. The server takes the options of \
            `psic serve` (batching, queue, limits, timeout). The run is bounded by --requests and \
            --deadline.
            """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var serverOptions: ServerOptions

    @Option(help: "PNG image to send (default: a synthetic --width x --height image).") var image: String?
    @Option(help: "Width of the synthetic image.") var width = 128
    @Option(help: "Height of the synthetic image.") var height = 96
    @Option(help: "Endpoint to load: encode or decode.") var endpoint: Endpoint = .encode
    @Option(help: "Levels to encode (or to decode).") var levels: Int?
    @Option(help: "Timed requests per configuration (1...10000).") var requests = 64
    @Option(help: "Requests in flight at once (1...256).") var concurrency = 8
    @Option(help: "Seconds after which a configuration's run is cut short.") var deadline = 300.0
    @Flag(help: "Print JSON instead of a table.") var json = false

    enum Endpoint: String, ExpressibleByArgument { case encode, decode }

    struct Row: Codable {
        let maxBatch: Int
        let requests: Int
        let failed: Int
        let seconds: Double
        let throughput: Double
        let p50Milliseconds: Double
        let p99Milliseconds: Double
        let meanBatchSize: Double
        let computeSeconds: Double
    }

    func validate() throws {
        guard (1...10_000).contains(requests) else { throw ValidationError("--requests must be in 1...10000") }
        guard (1...256).contains(concurrency) else { throw ValidationError("--concurrency must be in 1...256") }
        guard serverOptions.maxQueue >= concurrency else {
            throw ValidationError("--max-queue (\(serverOptions.maxQueue)) must be at least --concurrency (\(concurrency)): "
                                  + "requests beyond the queue would be refused with 503")
        }
        guard deadline > 0 else { throw ValidationError("--deadline must be positive") }
        guard (1...8192).contains(width), (1...8192).contains(height) else {
            throw ValidationError("--width and --height must be in 1...8192 (give --image for another photo)")
        }
    }

    func run() async throws {
        var quiet = Logger(label: "psic.bench.serve")
        quiet.logLevel = .error
        let model = try modelOptions.loadModel()
        let backend = try modelOptions.makeBackend()
        let codec = try modelOptions.makeCodec(model: model, handle: backend)
        let img: RGBImage
        if let image { img = try PNGCodec.decode(try readBytes(URL(fileURLWithPath: image))) } else { img = SyntheticImage.make(width: width, height: height) }
        let body: [UInt8]
        switch endpoint {
        case .encode: body = try PNGCodec.encode(img)
        case .decode: body = try codec.encode(img, levels: levels)
        }
        FileHandle.standardError.write(Data("psic-loadtest: \(endpoint.rawValue) of \(img.width)x\(img.height), \(requests) requests, \(concurrency) in flight, backend \(backend.name)\n".utf8))

        var config = HTTPClient.Configuration()
        config.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: concurrency)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
        var rows: [Row] = []
        do {
            // Port 0: the system picks a free port on the loopback interface.
            let served = serverOptions.configuration(host: "127.0.0.1", port: 0)
            for batch in [1, served.maxBatch] {
                var c = served
                c.maxBatch = batch
                rows.append(try await measure(codec: codec, backend: backend, configuration: c, body: body,
                                              client: client, logger: quiet))
            }
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
        if json {
            try printJSON(rows)
            return
        }
        print("max batch  requests  failed  seconds  req/s   p50 ms   p99 ms  mean batch  compute s")
        for r in rows {
            print(String(format: "%9d  %8d  %6d  %7.2f  %5.2f  %7.1f  %7.1f  %10.2f  %9.2f", r.maxBatch, r.requests, r.failed,
                         r.seconds, r.throughput, r.p50Milliseconds, r.p99Milliseconds, r.meanBatchSize, r.computeSeconds))
        }
    }

    private func measure(codec: ImageCodec, backend: BackendHandle, configuration: ServerConfiguration, body: [UInt8],
                         client: HTTPClient, logger: Logger) async throws -> Row {
        let server = EncodingServer(codec: codec, backendName: backend.name, isGPU: backend.isGPU,
                                    configuration: configuration, logger: logger)
        let (portStream, portContinuation) = AsyncStream<Int>.makeStream()
        let serverTask = Task { try await server.run(gracefulShutdownSignals: [], onRunning: { portContinuation.yield($0) }) }
        var ports = portStream.makeAsyncIterator()
        guard let port = await ports.next() else { throw ValidationError("the server did not start") }
        var query: [String] = []
        if let levels { query.append("levels=\(levels)") }
        let url = "http://127.0.0.1:\(port)/v1/\(endpoint.rawValue)" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
        let timeoutSeconds = Int64(deadline)

        @Sendable func send() async -> (ok: Bool, seconds: Double) {
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.body = .bytes(body)
            let start = ContinuousClock.now
            do {
                let response = try await client.execute(request, timeout: .seconds(timeoutSeconds))
                _ = try await response.body.collect(upTo: 256 << 20)
                let d = ContinuousClock.now - start
                return (response.status.code == 200, Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
            } catch {
                return (false, 0)
            }
        }

        // Warm-up: prepared graphs for this size, connections.
        await withTaskGroup(of: Void.self) { g in
            for _ in 0..<concurrency { g.addTask { _ = await send() } }
        }
        let before = BatchStats(server.metrics.exposition())
        let stopAt = ContinuousClock.now + .seconds(deadline)
        let start = ContinuousClock.now
        var latencies: [Double] = []
        var failed = 0
        await withTaskGroup(of: (ok: Bool, seconds: Double).self) { g in
            var issued = 0
            for _ in 0..<min(concurrency, requests) {
                g.addTask { await send() }
                issued += 1
            }
            for await r in g {
                if r.ok { latencies.append(r.seconds) } else { failed += 1 }
                if issued < requests, ContinuousClock.now < stopAt {
                    g.addTask { await send() }
                    issued += 1
                }
            }
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let after = BatchStats(server.metrics.exposition())
        await server.shutdown()
        try await serverTask.value
        latencies.sort()
        func pct(_ p: Double) -> Double {
            latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int((p * Double(latencies.count)).rounded(.up)) - 1)] * 1000
        }
        let batches = after.count - before.count
        return Row(maxBatch: configuration.maxBatch, requests: latencies.count + failed, failed: failed, seconds: seconds,
                   throughput: Double(latencies.count) / seconds, p50Milliseconds: pct(0.5), p99Milliseconds: pct(0.99),
                   meanBatchSize: batches > 0 ? (after.sum - before.sum) / batches : 0,
                   computeSeconds: after.compute - before.compute)
    }
}

/// Batch totals read back from the server's own Prometheus exposition.
private struct BatchStats {
    var sum = 0.0
    var count = 0.0
    var compute = 0.0

    init(_ text: String) {
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let v = Double(parts[1]) else { continue }
            if parts[0].hasPrefix("psic_batch_size_sum") { sum += v }
            if parts[0].hasPrefix("psic_batch_size_count") { count += v }
            if parts[0].hasPrefix("psic_compute_seconds_total") { compute += v }
        }
    }
}
