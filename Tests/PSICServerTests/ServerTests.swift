import AsyncHTTPClient
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import PSICCodec
import PSICEngine
@testable import PSICEntropy
import PSICImage
import PSICServer
import XCTest

/// The server over real HTTP on loopback (AsyncHTTPClient), CPU backend unless stated.
final class ServerTests: XCTestCase {
    private var client: HTTPClient!

    override func setUp() {
        var config = HTTPClient.Configuration()
        config.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 16)
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    override func tearDown() async throws {
        try await client.shutdown()
    }

    func testEncodeDecodeRoundTrip() async throws {
        let codec = try ServerFixtures.cpuCodec.get()
        let s = try await RunningServer.start()
        let png = try ServerFixtures.png("image_64x64.png")
        let encoded = try await client.send(s.url("/v1/encode?levels=2&seed=5"), body: png)
        XCTAssertEqual(encoded.status, 200, encoded.text)
        XCTAssertEqual(encoded.headers["content-type"], "application/x-psic")
        let image = try PNGCodec.decode(png)
        XCTAssertEqual(encoded.body, try codec.encode(image, levels: 2, seed: 5), "the server's stream differs from the library's")

        let decoded = try await client.send(s.url("/v1/decode?levels=1&seed=3"), body: encoded.body)
        XCTAssertEqual(decoded.status, 200, decoded.text)
        XCTAssertEqual(decoded.headers["content-type"], "image/png")
        let expected = try codec.decode(encoded.body, levels: 1, seeds: [3])[0]
        XCTAssertEqual(try PNGCodec.decode(decoded.body), expected)
        let mean = try await client.send(s.url("/v1/decode?levels=1&details=mean"), body: encoded.body)
        XCTAssertEqual(mean.status, 200, mean.text)
        XCTAssertEqual(try PNGCodec.decode(mean.body), try codec.decode(encoded.body, levels: 1, details: .mean)[0])
        let wide = try await client.send(s.url("/v1/decode?levels=1&seed=3&detail_spread=5"), body: encoded.body)
        XCTAssertEqual(wide.status, 200, wide.text)
        XCTAssertEqual(try PNGCodec.decode(wide.body), try codec.decode(encoded.body, levels: 1, seeds: [3], detailSpread: 5)[0])
        XCTAssertNotEqual(wide.body, decoded.body)
        let calibrated = try await client.send(s.url("/v1/decode?levels=1&seed=3&details=calibrated"), body: encoded.body)
        XCTAssertEqual(calibrated.status, 200, calibrated.text)
        XCTAssertEqual(try PNGCodec.decode(calibrated.body), try codec.decode(encoded.body, levels: 1, seeds: [3], details: .calibrated)[0])
        XCTAssertNotEqual(calibrated.body, decoded.body)

        // Without query parameters: all levels, the stream's seed.
        let full = try await client.send(s.url("/v1/encode"), body: png)
        XCTAssertEqual(full.status, 200)
        XCTAssertEqual(try PSICStream.peekHeader(full.body).levelsPresent, codec.model.levels)
        // A size limit: the library's stream under the same limit.
        let limit = full.body.count / 2
        let capped = try await client.send(s.url("/v1/encode?max_bytes=\(limit)"), body: png)
        XCTAssertEqual(capped.status, 200, capped.text)
        XCTAssertLessThanOrEqual(capped.body.count, limit)
        XCTAssertEqual(capped.body, try codec.encode(image, maxBytes: limit))
        // A PSNR target: the library's choice, with the levels and the measured PSNR in headers.
        let target = try await client.send(s.url("/v1/encode?min_psnr=22&seed=2"), body: png)
        XCTAssertEqual(target.status, 200, target.text)
        let chosen = try codec.encode(image, minimumPSNR: 22, seed: 2)
        XCTAssertEqual(target.body, chosen.stream)
        XCTAssertEqual(target.headers["psic-levels"], String(chosen.levels))
        XCTAssertEqual(target.headers["psic-psnr"], String(format: "%.3f", chosen.psnr))
        XCTAssertEqual(target.headers["psic-target-reached"], chosen.reached ? "true" : "false")
        // An older format on request, as `psic encode --format-version 1` writes it.
        let v1 = try await client.send(s.url("/v1/encode?levels=2&seed=5&format_version=1"), body: png)
        XCTAssertEqual(v1.status, 200, v1.text)
        XCTAssertEqual(try PSICStream.peekHeader(v1.body).formatVersion, 1)
        XCTAssertEqual(v1.body, try codec.encode(image, levels: 2, seed: 5, formatVersion: 1))
        XCTAssertEqual(try PSICStream.peekHeader(encoded.body).formatVersion, PSICStream.formatVersion)
        let v1Target = try await client.send(s.url("/v1/encode?min_psnr=22&seed=2&format_version=1"), body: png)
        XCTAssertEqual(v1Target.status, 200, v1Target.text)
        XCTAssertEqual(try PSICStream.peekHeader(v1Target.body).formatVersion, 1)
        XCTAssertEqual(v1Target.headers["psic-levels"], String(chosen.levels))
        // The encoder's rate-distortion weight, as `psic encode --rd-lambda` takes it (0: nearest).
        let rd = try await client.send(s.url("/v1/encode?rd_lambda=40"), body: png)
        XCTAssertEqual(rd.status, 200, rd.text)
        XCTAssertEqual(rd.body, try codec.encode(image, quantization: .rateDistortion(lambda: 40)))
        let rdNearest = try await client.send(s.url("/v1/encode?rd_lambda=0"), body: png)
        XCTAssertEqual(rdNearest.body, try codec.encode(image, quantization: .nearest))
        try await s.stop()
    }

    /// An engine that fails answers every request of the batch with a 500 (none hangs, none is
    /// blamed on the client), and the server goes on serving what does not need the engine.
    func testEngineFailureIsA500ForEveryRequestOfTheBatch() async throws {
        let codec = try ImageCodec(model: try ServerFixtures.model.get(), backend: FailingBackend())
        let s = try await RunningServer.start(codec: codec) {
            $0.maxBatch = 4
            $0.maxWait = .milliseconds(300)
        }
        let png = try ServerFixtures.png("image_64x64.png")
        let replies = try await client.sendTogether(s, Array(repeating: ("/v1/encode", png), count: 3))
        XCTAssertEqual(replies.map(\.status), [500, 500, 500], replies.map(\.text).joined(separator: "\n"))
        XCTAssertTrue(replies.allSatisfy { $0.errorCode == "internal" && $0.text.contains("device lost") })
        // They failed together: at least two of them in one batch.
        let metrics = try await client.send(s.url("/metrics")).text
        XCTAssertEqual(metricValue(metrics, "psic_batch_size_sum", kind: "encode"), 3, metrics)
        XCTAssertLessThan(metricValue(metrics, "psic_batch_size_count", kind: "encode") ?? 3, 3, metrics)
        let health = try await client.send(s.url("/healthz"))
        XCTAssertEqual(health.status, 200)
        try await s.stop()
    }

    func testInfoHealthAndMetrics() async throws {
        let s = try await RunningServer.start {
            $0.maxBatch = 3
            $0.idleTimeout = .milliseconds(2500)
        }
        let health = try await client.send(s.url("/healthz"))
        XCTAssertEqual(health.status, 200)
        XCTAssertEqual(health.text, "ok\n")

        let info = try await client.send(s.url("/v1/info"))
        XCTAssertEqual(info.status, 200)
        let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(info.body)) as? [String: Any])
        XCTAssertEqual(o["maxBatch"] as? Int, 3)
        XCTAssertEqual(o["levels"] as? Int, try ServerFixtures.model.get().levels)
        XCTAssertEqual(o["backend"] as? String, "cpu")
        XCTAssertEqual(o["idleTimeoutSeconds"] as? Double, 2.5)

        _ = try await client.send(s.url("/v1/encode"), body: try ServerFixtures.png("image_64x64.png"))
        _ = try await client.send(s.url("/v1/encode"), body: [1, 2, 3])
        let metrics = try await client.send(s.url("/metrics"))
        XCTAssertEqual(metrics.status, 200)
        XCTAssertTrue(metrics.headers["content-type"]?.hasPrefix("text/plain") ?? false)
        for name in ["psic_requests_total{endpoint=\"/v1/encode\",status=\"200\"} 1",
                     "psic_errors_total{endpoint=\"/v1/encode\",code=\"invalid_png\"} 1",
                     "psic_request_duration_seconds_bucket", "psic_batch_size_count{kind=\"encode\"} 1",
                     "psic_batch_size_bucket{kind=\"encode\",le=\"3.0\"}", "psic_batch_compute_seconds_bucket",
                     "psic_compute_seconds_total", "psic_engine_submissions_total", "psic_queue_depth 0"] {
            XCTAssertTrue(metrics.text.contains(name), "metrics lack \(name):\n\(metrics.text)")
        }
        try await s.stop()
    }

    /// Every bad input gets its 4xx and a JSON error body; the server keeps serving.
    func testBadInputsGetJSONErrors() async throws {
        let codec = try ServerFixtures.cpuCodec.get()
        let s = try await RunningServer.start { $0.maxBodyBytes = 1 << 20 }
        let png = try ServerFixtures.png("image_64x64.png")
        let stream = try codec.encode(try PNGCodec.decode(png), levels: 2)
        var other = try PSICStream.peekHeader(stream)
        other.modelFingerprint = [0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3]
        let otherModel = other.serialized() + stream[other.byteCount...]

        let cases: [(String, String, [UInt8]?, Int, String)] = [
            ("not a PNG", "/v1/encode", Array("hello".utf8), 400, "invalid_png"),
            ("empty body", "/v1/encode", [], 400, "empty_body"),
            ("levels 0", "/v1/encode?levels=0", png, 400, "invalid_query"),
            ("levels too high", "/v1/encode?levels=\(codec.model.levels + 1)", png, 400, "invalid_query"),
            ("levels not a number", "/v1/encode?levels=two", png, 400, "invalid_query"),
            ("negative seed", "/v1/encode?seed=-1", png, 400, "invalid_query"),
            ("max_bytes 0", "/v1/encode?max_bytes=0", png, 400, "invalid_query"),
            ("max_bytes under the first level", "/v1/encode?max_bytes=60", png, 400, "invalid_query"),
            ("max_bytes on decode", "/v1/decode?max_bytes=100", stream, 400, "invalid_query"),
            ("min_psnr not a number", "/v1/encode?min_psnr=high", png, 400, "invalid_query"),
            ("min_psnr with levels", "/v1/encode?min_psnr=30&levels=2", png, 400, "invalid_query"),
            ("format_version 0", "/v1/encode?format_version=0", png, 400, "invalid_query"),
            ("format_version not yet written", "/v1/encode?format_version=\(PSICStream.formatVersion + 1)", png, 400, "invalid_query"),
            ("format_version on decode", "/v1/decode?format_version=1", stream, 400, "invalid_query"),
            ("rd_lambda negative", "/v1/encode?rd_lambda=-1", png, 400, "invalid_query"),
            ("rd_lambda not a number", "/v1/encode?rd_lambda=nan", png, 400, "invalid_query"),
            ("rd_lambda on decode", "/v1/decode?rd_lambda=40", stream, 400, "invalid_query"),
            ("not a stream", "/v1/decode", Array("PSIC but not really".utf8), 400, "invalid_stream"),
            ("truncated stream", "/v1/decode", Array(stream.prefix(stream.count - 7)), 400, "invalid_stream"),
            ("damaged stream", "/v1/decode", stream.enumerated().map { $0.offset == stream.count - 3 ? $0.element ^ 0x55 : $0.element },
             400, "invalid_stream"),
            ("decode levels 0", "/v1/decode?levels=0", stream, 400, "invalid_query"),
            ("unknown details", "/v1/decode?details=median", stream, 400, "invalid_query"),
            ("detail_spread out of range", "/v1/decode?detail_spread=33", stream, 400, "invalid_query"),
            ("detail_spread not a number", "/v1/decode?detail_spread=wide", stream, 400, "invalid_query"),
            ("detail_spread with mean details", "/v1/decode?details=mean&detail_spread=2", stream, 400, "invalid_query"),
            ("detail_spread on encode", "/v1/encode?detail_spread=2", png, 400, "invalid_query"),
            ("misspelt parameter", "/v1/encode?level=2", png, 400, "invalid_query"),
            ("details on encode", "/v1/encode?details=mean", png, 400, "invalid_query"),
            ("stream without levels", "/v1/decode", try PSICStream(bytes: stream).truncated(toLevels: 0), 400, "invalid_stream"),
            ("image wider than the codec takes", "/v1/encode",
             try PNGCodec.encode(RGBImage(width: ImageCodec.maxSide + 1, height: 1,
                                          pixels: [UInt8](repeating: 9, count: 3 * (ImageCodec.maxSide + 1)))), 413, "image_too_large"),
            ("another model's stream", "/v1/decode", otherModel, 422, "model_mismatch"),
            ("body too large", "/v1/encode", [UInt8](repeating: 7, count: (1 << 20) + 1), 413, "body_too_large"),
            ("unknown endpoint", "/v1/transcode", png, 404, "not_found"),
            ("GET on a POST endpoint", "/v1/encode", nil, 404, "not_found"),
        ]
        for (what, path, body, status, code) in cases {
            let r = try await client.send(s.url(path), body: body)
            XCTAssertEqual(r.status, status, "\(what): \(r.text)")
            XCTAssertEqual(r.errorCode, code, "\(what): \(r.text)")
            XCTAssertEqual(r.headers["content-type"], "application/json", what)
        }
        // Still serving.
        let ok = try await client.send(s.url("/v1/encode?levels=1"), body: png)
        XCTAssertEqual(ok.status, 200)
        try await s.stop()
    }

    /// A server that cannot bind its port fails and returns (it used to wait for ever on its
    /// scheduler), so a supervisor sees the failure.
    func testPortInUseEndsTheServer() async throws {
        let first = try await RunningServer.start()
        var c = ServerConfiguration()
        c.host = "127.0.0.1"
        c.port = first.port
        let second = EncodingServer(codec: try ServerFixtures.cpuCodec.get(), backendName: "cpu", isGPU: false,
                                    configuration: c, logger: ServerFixtures.logger)
        let ended = expectation(description: "the second server returned")
        let failed = expectation(description: "the second server failed")
        let outcome = Task {
            do { try await second.run(gracefulShutdownSignals: []) } catch { failed.fulfill() }
            ended.fulfill()
        }
        // Fails (rather than hangs) if the server does not return.
        await fulfillment(of: [failed, ended], timeout: 20)
        outcome.cancel()
        try await first.stop()
    }

    /// A client that starts an upload and goes quiet is disconnected after the idle timeout,
    /// and the server still shuts down promptly.
    func testStalledUploadIsDisconnected() async throws {
        let s = try await RunningServer.start { $0.idleTimeout = .milliseconds(300) }
        let fd = try connectLoopback(port: s.port)
        defer { close(fd) }
        let head = "POST /v1/encode HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n0123456789"
        XCTAssertEqual(sendText(fd, head), head.utf8.count)
        let start = ContinuousClock.now
        _ = receiveText(fd)  // a response, if any, then the close
        let waited = ContinuousClock.now - start
        XCTAssertLessThan(waited, .seconds(5), "the connection was not closed")
        try await s.stop()
    }

    /// An upload trickled in past `--timeout` (each piece resetting the idle timer) is answered
    /// 408 instead of holding its place in the server.
    func testTrickledUploadTimesOut() async throws {
        let s = try await RunningServer.start {
            $0.timeout = .milliseconds(200)
            $0.idleTimeout = .seconds(10)
        }
        let fd = try connectLoopback(port: s.port)
        defer { close(fd) }
        _ = sendText(fd, "POST /v1/encode HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n0123456789")
        try await Task.sleep(for: .milliseconds(400))
        _ = sendText(fd, "0123456789")
        let reply = receiveText(fd, until: "}")  // the end of the JSON error body
        XCTAssertTrue(reply.hasPrefix("HTTP/1.1 408"), reply)
        XCTAssertTrue(reply.contains("upload_timeout"), reply)
        try await s.stop()
    }

    func testPixelLimitOnEncodeAndDecode() async throws {
        let codec = try ServerFixtures.cpuCodec.get()
        let s = try await RunningServer.start { $0.maxPixels = 64 * 63 }
        let png = try ServerFixtures.png("image_64x64.png")
        let r = try await client.send(s.url("/v1/encode"), body: png)
        XCTAssertEqual(r.status, 413, r.text)
        XCTAssertEqual(r.errorCode, "too_many_pixels")
        let stream = try codec.encode(try PNGCodec.decode(png), levels: 1)
        let d = try await client.send(s.url("/v1/decode"), body: stream)
        XCTAssertEqual(d.status, 413, d.text)
        XCTAssertEqual(d.errorCode, "too_many_pixels")
        try await s.stop()
    }

    /// Requests that arrive together share a batch, and each still gets exactly its own stream.
    func testConcurrentRequestsAreBatched() async throws {
        let codec = try ServerFixtures.cpuCodec.get()
        let s = try await RunningServer.start {
            $0.maxBatch = 4
            $0.maxWait = .milliseconds(500)
        }
        let png = try ServerFixtures.png("image_64x64.png")
        let image = try PNGCodec.decode(png)
        let replies = try await client.sendTogether(s, (0..<4).map { i in ("/v1/encode?levels=\(i + 1)&seed=\(i)", png) })
        for i in 0..<4 {
            XCTAssertEqual(replies[i].status, 200)
            XCTAssertEqual(replies[i].body, try codec.encode(image, levels: i + 1, seed: UInt64(i)), "request \(i)")
        }
        let metrics = try await client.send(s.url("/metrics")).text
        let count = metricValue(metrics, "psic_batch_size_count", kind: "encode") ?? 0
        XCTAssertGreaterThan(count, 0)
        XCTAssertLessThan(count, 4, "four requests sent together ran in \(count) batches:\n\(metrics)")
        try await s.stop()
    }

    /// Encodes and decodes that arrive together run in batches of their own kind, each answered
    /// with its own result.
    func testEncodesAndDecodesBatchApart() async throws {
        let codec = try ServerFixtures.cpuCodec.get()
        let s = try await RunningServer.start {
            $0.maxBatch = 4
            $0.maxWait = .milliseconds(300)
        }
        let png = try ServerFixtures.png("image_64x64.png")
        let image = try PNGCodec.decode(png)
        let stream = try codec.encode(image, levels: 3)
        let replies = try await client.sendTogether(s, (0..<4).map { i in
            i % 2 == 0 ? ("/v1/encode?levels=\(i + 1)", png) : ("/v1/decode?seed=\(i)", stream)
        })
        for i in [0, 2] { XCTAssertEqual(replies[i].body, try codec.encode(image, levels: i + 1), "encode \(i)") }
        for i in [1, 3] {
            XCTAssertEqual(replies[i].status, 200)
            XCTAssertEqual(try PNGCodec.decode(replies[i].body), try codec.decode(stream, seeds: [UInt64(i)])[0], "decode \(i)")
        }
        let metrics = try await client.send(s.url("/metrics")).text
        for kind in ["encode", "decode"] {
            XCTAssertEqual(metricValue(metrics, "psic_batch_size_sum", kind: kind), 2, "\(kind) batches held 2 requests in all:\n\(metrics)")
        }
        try await s.stop()
    }

    /// More requests than one running plus a queue of one: the rest get 503 with Retry-After.
    func testOverloadGets503WithRetryAfter() async throws {
        let s = try await RunningServer.start {
            $0.maxBatch = 1
            $0.maxQueue = 1
        }
        let png = try ServerFixtures.png("image_128x96.png")
        let client = self.client!
        let replies = try await withThrowingTaskGroup(of: Reply.self) { g in
            for _ in 0..<8 { g.addTask { try await client.send(s.url("/v1/encode"), body: png) } }
            var out: [Reply] = []
            for try await r in g { out.append(r) }
            return out
        }
        let rejected = replies.filter { $0.status == 503 }
        XCTAssertFalse(rejected.isEmpty, "no request was refused: \(replies.map(\.status))")
        XCTAssertTrue(replies.contains { $0.status == 200 })
        XCTAssertTrue(replies.allSatisfy { $0.status == 200 || $0.status == 503 }, "\(replies.map(\.status))")
        for r in rejected {
            XCTAssertEqual(r.errorCode, "queue_full")
            XCTAssertEqual(r.headers["retry-after"], "1")
        }
        try await s.stop()
    }

    func testTimeoutGets504() async throws {
        let s = try await RunningServer.start { $0.timeout = .milliseconds(1) }
        let r = try await client.send(s.url("/v1/encode"), body: try ServerFixtures.png("image_128x96.png"))
        XCTAssertEqual(r.status, 504, r.text)
        XCTAssertEqual(r.errorCode, "timeout")
        try await s.stop()
    }

    /// Graceful shutdown answers every request already accepted, then stops listening.
    func testShutdownDrainsInFlightRequests() async throws {
        let s = try await RunningServer.start { $0.maxBatch = 1 }
        let png = try ServerFixtures.png("image_64x64.png")
        let client = self.client!
        let pending = (0..<4).map { _ in Task { try await client.send(s.url("/v1/encode?levels=1"), body: png) } }
        // Wait until the server has accepted all four requests and still holds some of them
        // queued. A request whose bytes the server has not read when the shutdown begins is on
        // an idle connection, which a graceful shutdown closes (the client sees a reset).
        let start = ContinuousClock.now
        while s.server.scheduler.acceptedCount < 4, ContinuousClock.now - start < .seconds(10) {
            try await Task.sleep(for: .milliseconds(1))
        }
        XCTAssertEqual(s.server.scheduler.acceptedCount, 4)
        try await s.stop()
        for t in pending {
            let r = try await t.value
            XCTAssertEqual(r.status, 200, r.text)
        }
        do {
            // Bounded: the client retries refused connections until its deadline.
            _ = try await client.send(s.url("/healthz"), timeoutSeconds: 1)
            XCTFail("the server still answers after shutdown")
        } catch {
            // Connection refused: expected.
        }
    }

    /// The same through the Vulkan backend (lavapipe in CI), when there is a device.
    func testVulkanRoundTrip() async throws {
        let handle: BackendHandle
        do { handle = try BackendHandle(choice: .vulkan) } catch { throw XCTSkip("no Vulkan device: \(error)") }
        let codec = try ImageCodec(model: try ServerFixtures.model.get(), backend: handle.backend)
        let pngs = [try ServerFixtures.png("image_64x64.png"), try ServerFixtures.png("image_128x96.png")]
        // The expected streams first: the first use of a device builds its pipelines, slow on a CPU
        // device such as lavapipe, and that must not count against the requests' deadline below.
        let expected = try pngs.map { try codec.encode(try PNGCodec.decode($0), levels: 2) }
        let s = try await RunningServer.start(codec: codec, backendName: handle.name, isGPU: handle.isGPU) {
            $0.maxBatch = 4
            $0.maxWait = .milliseconds(200)
        }
        let client = self.client!
        let replies = try await withThrowingTaskGroup(of: (Int, Reply).self) { g in
            for (i, png) in pngs.enumerated() {
                g.addTask { (i, try await client.send(s.url("/v1/encode?levels=2"), body: png)) }
            }
            var out: [Int: Reply] = [:]
            for try await (i, r) in g { out[i] = r }
            return out
        }
        for i in pngs.indices {
            XCTAssertEqual(replies[i]?.status, 200)
            XCTAssertEqual(replies[i]?.body, expected[i])
        }
        let d = try await client.send(s.url("/v1/decode?seed=4"), body: replies[0]?.body ?? [])
        XCTAssertEqual(d.status, 200, d.text)
        XCTAssertEqual(try PNGCodec.decode(d.body), try codec.decode(replies[0]!.body, seeds: [4])[0])
        try await s.stop()
    }
}

/// A backend whose every run fails, as a lost GPU would.
private final class FailingBackend: Backend, @unchecked Sendable {
    let name = "failing"

    final class Prepared: PreparedGraph {
        let graph: Graph
        init(graph: Graph) { self.graph = graph }
        func run(inputs: [TensorID: Tensor], collectTimings: Bool) throws -> GraphResult {
            throw EngineError.backendFailure(backend: "failing", reason: "device lost")
        }
    }

    func prepare(_ graph: Graph) throws -> PreparedGraph { Prepared(graph: graph) }
}

/// A TCP connection to 127.0.0.1:`port` (a raw socket: the HTTP client cannot stall an upload).
private func connectLoopback(port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw XCTSkip("no socket") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { close(fd); throw XCTSkip("cannot connect to port \(port)") }
    var timeout = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    return fd
}

private func sendText(_ fd: Int32, _ text: String) -> Int {
    text.withCString { send(fd, $0, strlen($0), 0) }
}

/// What arrives until the peer closes, 10 s pass without data, or `until` has arrived.
private func receiveText(_ fd: Int32, until marker: String? = nil) -> String {
    var all: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n > 0 else { break }
        all += buffer[..<n]
        if let marker, String(decoding: all, as: UTF8.self).contains(marker) { break }
    }
    return String(decoding: all, as: UTF8.self)
}
