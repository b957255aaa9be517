import AsyncHTTPClient
import Foundation
import Logging
import PSICCodec
import PSICImage
import PSICModel
import PSICServer
import XCTest

/// The shipped model, the test images and one CPU codec shared by every server test.
enum ServerFixtures {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let model: Result<CodecModel, Error> = Result {
        try CodecModel(contentsOf: repo.appendingPathComponent("Models/psic-conv.safetensors"))
    }
    static let cpuCodec: Result<ImageCodec, Error> = Result {
        try ImageCodec(model: try model.get(), backend: BackendHandle(choice: .cpu).backend)
    }

    static func png(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: repo.appendingPathComponent("Tests/Golden").appendingPathComponent(name)))
    }

    static var logger: Logger {
        var l = Logger(label: "psic.serve.test")
        l.logLevel = ProcessInfo.processInfo.environment["PSIC_TEST_LOG"] != nil ? .debug : .critical
        return l
    }
}

/// A server running in this process on an ephemeral loopback port.
final class RunningServer: @unchecked Sendable {
    let server: EncodingServer
    let port: Int
    private let task: Task<Void, Error>

    private init(server: EncodingServer, port: Int, task: Task<Void, Error>) {
        self.server = server
        self.port = port
        self.task = task
    }

    static func start(codec: ImageCodec? = nil, backendName: String = "cpu", isGPU: Bool = false,
                      _ configure: (inout ServerConfiguration) -> Void = { _ in }) async throws -> RunningServer {
        var c = ServerConfiguration()
        c.host = "127.0.0.1"
        c.port = 0
        configure(&c)
        let server = EncodingServer(codec: try codec ?? ServerFixtures.cpuCodec.get(), backendName: backendName,
                                    isGPU: isGPU, configuration: c, logger: ServerFixtures.logger)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let task = Task { try await server.run(gracefulShutdownSignals: [], onRunning: { continuation.yield($0) }) }
        var it = ports.makeAsyncIterator()
        guard let port = await it.next(), port > 0 else { throw XCTSkip("server did not start") }
        return RunningServer(server: server, port: port, task: task)
    }

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    /// Graceful shutdown; returns once the server has stopped.
    func stop() async throws {
        await server.shutdown()
        try await task.value
    }
}

/// A finished exchange: status, headers, body.
struct Reply {
    let status: Int
    let headers: [String: String]
    let body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }

    /// The `error` code of a JSON error body.
    var errorCode: String? {
        guard let o = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else { return nil }
        return o["error"] as? String
    }
}

extension HTTPClient {
    /// POSTs `body`, or GETs when it is nil.
    func send(_ url: String, body: [UInt8]? = nil, headers: [(String, String)] = [],
              timeoutSeconds: Int64 = 120) async throws -> Reply {
        var request = HTTPClientRequest(url: url)
        request.method = body == nil ? .GET : .POST
        for (k, v) in headers { request.headers.add(name: k, value: v) }
        if let body { request.body = .bytes(body) }
        let response = try await execute(request, timeout: .seconds(timeoutSeconds))
        let buffer = try await response.body.collect(upTo: 64 << 20)
        var h: [String: String] = [:]
        for f in response.headers { h[f.name.lowercased()] = f.value }
        return Reply(status: Int(response.status.code), headers: h, body: Array(buffer.readableBytesView))
    }
}

extension HTTPClient {
    /// Sends every `(path, body)` of `requests` at once (POST with a body, GET without) and
    /// returns the replies in request order.
    func sendTogether(_ server: RunningServer, _ requests: [(path: String, body: [UInt8]?)]) async throws -> [Reply] {
        try await withThrowingTaskGroup(of: (Int, Reply).self) { g in
            for (i, r) in requests.enumerated() { g.addTask { (i, try await self.send(server.url(r.path), body: r.body)) } }
            var out = [Reply?](repeating: nil, count: requests.count)
            for try await (i, r) in g { out[i] = r }
            return out.map { $0! }
        }
    }
}

/// The value of a Prometheus sample, e.g. `metricValue(text, "psic_batch_size_count", kind: "encode")`.
func metricValue(_ metrics: String, _ name: String, kind: String) -> Double? {
    metrics.split(separator: "\n").first { $0.hasPrefix(name + "{kind=\"\(kind)\"}") }.flatMap { Double($0.split(separator: " ").last ?? "") }
}
