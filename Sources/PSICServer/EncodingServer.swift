import Foundation
import Hummingbird
import Logging
import PSICCodec
import PSICEntropy
import PSICImage
import ServiceLifecycle
import Synchronization
import UnixSignals

/// The PSIC HTTP server: one codec (one model, one backend device) shared by every request,
/// requests batched by a `BatchScheduler`.
///
/// Endpoints: `POST /v1/encode` (PNG → stream; query `levels`, `seed`, `max_bytes`, `min_psnr`, `format_version`, `rd_lambda`), `POST /v1/decode`
/// (stream → PNG; query `levels`, `seed`, `details` = `sampled`, `mean` or `calibrated`, `detail_spread`), `GET /v1/info`, `GET /healthz`, `GET /metrics`.
/// Every failure is answered with a JSON body `{"error": code, "message": text}` and the status
/// of `ServerError`.
public final class EncodingServer: Sendable {
    public let configuration: ServerConfiguration
    public let metrics: ServerMetrics
    public let scheduler: BatchScheduler
    let codec: ImageCodec
    let backendName: String
    let isGPU: Bool
    let logger: Logger
    private let group = LockedGroup()
    /// Coding requests being read, decoded or waiting: bounded so that memory follows
    /// `--max-queue`, not the number of connections (each body and image is held until answered).
    let admission: RequestAdmission

    public init(codec: ImageCodec, backendName: String, isGPU: Bool,
                configuration: ServerConfiguration = ServerConfiguration(), logger: Logger) {
        self.codec = codec
        self.backendName = backendName
        self.isGPU = isGPU
        self.configuration = configuration
        self.logger = logger
        metrics = ServerMetrics(maxBatch: configuration.maxBatch)
        let (limit, overflow) = configuration.maxQueue.addingReportingOverflow(configuration.maxBatch)
        admission = RequestAdmission(limit: overflow ? Int.max : limit)
        scheduler = BatchScheduler(codec: codec, maxBatch: configuration.maxBatch, maxWait: configuration.maxWait,
                                   maxQueue: configuration.maxQueue, retryAfterSeconds: configuration.retryAfterSeconds,
                                   metrics: metrics, logger: logger)
    }

    /// Serves until graceful shutdown: one of `gracefulShutdownSignals`, or `shutdown()`.
    /// In-flight and queued requests are finished first; new connections are refused.
    /// `onRunning` is called with the bound port once the server accepts connections.
    public func run(gracefulShutdownSignals: [UnixSignal] = [.sigterm, .sigint],
                    onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let router = Router()
        router.middlewares.add(RequestMiddleware(server: self))
        router.post("/v1/encode") { request, _ in try await self.admitted { try await self.encode(request) } }
        router.post("/v1/decode") { request, _ in try await self.admitted { try await self.decode(request) } }
        router.get("/v1/info") { _, _ in try self.info() }
        router.get("/healthz") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: ResponseBody(byteBuffer: ByteBuffer(bytes: self.metrics.registry.emitToBuffer())))
        }
        let logger = self.logger
        let app = Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: .nanoseconds(Int64(configuration.idleTimeout.milliseconds * 1e6)))),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "psic"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                let c = self.configuration
                logger.info("listening", metadata: [
                    "host": "\(c.host)", "port": "\(port)", "backend": "\(self.backendName)",
                    "max_batch": "\(c.maxBatch)", "max_wait_ms": "\(c.maxWait.milliseconds)", "max_queue": "\(c.maxQueue)",
                    "max_body_bytes": "\(c.maxBodyBytes)", "max_pixels": "\(c.maxPixels)",
                    "timeout_s": "\(c.timeout.milliseconds / 1000)", "idle_timeout_s": "\(c.idleTimeout.milliseconds / 1000)"])
                await onRunning(port)
            },
            logger: logger)
        // Shut down in reverse order: the HTTP server first (it drains in-flight requests,
        // which wait on the scheduler), then the scheduler (which finishes what is queued).
        let serviceGroup = ServiceGroup(configuration: .init(services: [scheduler, app],
                                                             gracefulShutdownSignals: gracefulShutdownSignals,
                                                             logger: logger))
        group.set(serviceGroup)
        try await serviceGroup.run()
        logger.info("stopped")
    }

    /// Begins a graceful shutdown, as SIGTERM does.
    public func shutdown() async {
        await group.get()?.triggerGracefulShutdown()
    }

    // MARK: Handlers

    /// Runs a coding request if fewer than the admission limit are in hand, else refuses it as a
    /// full queue before its body is read.
    private func admitted(_ body: () async throws -> Response) async throws -> Response {
        guard admission.enter() else { throw ServerError.queueFull(retryAfter: configuration.retryAfterSeconds) }
        defer { admission.leave() }
        return try await body()
    }

    /// The body and the query fields both coding endpoints take (`levels`, `seed`), validated;
    /// a parameter not in `accepted` is refused (a misspelt `level=2` must not encode every level).
    private func codingRequest(_ request: Request, accepted: [String]) async throws -> (body: [UInt8], levels: Int?, seed: UInt64?) {
        let query = request.uri.queryParameters
        for (name, _) in query where !accepted.contains(String(name)) {
            throw ServerError.invalidQuery("unknown query parameter '\(name)'; \(request.uri.path) takes " + accepted.joined(separator: ", "))
        }
        let levels = try intParameter(query["levels"], "levels", range: 1...codec.model.levels)
        let seed = try seedParameter(query["seed"])
        return (try await collectBody(request), levels, seed)
    }

    private func encode(_ request: Request) async throws -> Response {
        let (body, levels, seed) = try await codingRequest(request, accepted: ["levels", "seed", "max_bytes", "min_psnr",
                                                                                "format_version", "rd_lambda"])
        let maxBytes = try intParameter(request.uri.queryParameters["max_bytes"], "max_bytes", range: 1...Int.max)
        let minPSNR = try psnrParameter(request.uri.queryParameters["min_psnr"])
        // Older decoders read only version 1; the newest is the default.
        let writable = PSICStream.readableFormatVersions
        let formatVersion = try intParameter(request.uri.queryParameters["format_version"], "format_version",
                                             range: Int(writable.lowerBound)...Int(writable.upperBound))
            .map { UInt16($0) } ?? PSICStream.formatVersion
        let quantization = try quantizationParameter(request.uri.queryParameters["rd_lambda"])
        if minPSNR != nil, levels != nil || maxBytes != nil {
            throw ServerError.invalidQuery("min_psnr chooses the levels itself: drop levels and max_bytes")
        }
        let image: RGBImage
        do {
            let maxPixels = configuration.maxPixels
            image = try await offload { try PNGCodec.decode(body, maxPixels: maxPixels) }
        } catch {
            throw ServerError.from(codecError: error, decoding: false)
        }
        if let minPSNR {
            let output = try await run(.encodeToQuality(QualityRequest(image: image, minimumPSNR: minPSNR, seed: seed ?? 0,
                                                                       formatVersion: formatVersion, quantization: quantization)),
                                     decoding: false)
            guard case let .targeted(t) = output else { throw ServerError.internalError("encode returned no stream") }
            var headers: HTTPFields = [.contentType: "application/x-psic"]
            headers[Self.levelsHeader] = String(t.levels)
            headers[Self.psnrHeader] = String(format: "%.3f", t.psnr)
            headers[Self.reachedHeader] = t.reached ? "true" : "false"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: t.stream)))
        }
        let output = try await run(.encode(EncodeRequest(image: image, levels: levels, seed: seed ?? 0, maxBytes: maxBytes,
                                                         formatVersion: formatVersion, quantization: quantization)),
                                   decoding: false)
        guard case let .stream(stream) = output else { throw ServerError.internalError("encode returned no stream") }
        return Response(status: .ok,
                        headers: [.contentType: "application/x-psic"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: stream)))
    }

    private func decode(_ request: Request) async throws -> Response {
        let (body, levels, seed) = try await codingRequest(request, accepted: ["levels", "seed", "details", "detail_spread"])
        // Refuse before queueing what can be judged from the header alone.
        let header: StreamHeader
        do {
            header = try PSICStream.peekHeader(body)
        } catch {
            throw ServerError.from(codecError: error, decoding: true)
        }
        guard header.modelFingerprint == codec.model.fingerprint else {
            throw ServerError.modelMismatch("the stream was encoded with model \(hex(header.modelFingerprint)); "
                                            + "this server runs \(hex(codec.model.fingerprint))")
        }
        guard header.width * header.height <= configuration.maxPixels else {
            throw ServerError.tooManyPixels(width: header.width, height: header.height, limit: configuration.maxPixels)
        }
        let details = try detailsParameter(request.uri.queryParameters["details"])
        // `detail_spread`: sampled details this many scale-table steps wider (`psic decode --detail-spread`)
        let spread = try intParameter(request.uri.queryParameters["detail_spread"], "detail_spread",
                                      range: DecodeRequest.detailSpreadRange) ?? 0
        // (with details=mean the codec refuses a spread: CodecError maps to invalid_query)
        let output = try await run(.decode(DecodeRequest(stream: body, levels: levels, seeds: seed.map { [$0] }, details: details,
                                                         detailSpread: spread)),
                                   decoding: true)
        guard case let .images(images) = output, let image = images.first else {
            throw ServerError.internalError("decode returned no image")
        }
        let png: [UInt8]
        do {
            png = try await offload { try PNGCodec.encode(image) }
        } catch {
            throw ServerError.internalError("\(error)")
        }
        return Response(status: .ok, headers: [.contentType: "image/png"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: png)))
    }

    private func info() throws -> Response {
        let info = ServerInfo(
            model: hex(codec.model.fingerprint), levels: codec.model.levels, backend: backendName, gpu: isGPU,
            maxBatch: configuration.maxBatch, maxWaitMilliseconds: configuration.maxWait.milliseconds,
            maxQueue: configuration.maxQueue, maxBodyBytes: configuration.maxBodyBytes,
            maxPixels: configuration.maxPixels, timeoutSeconds: configuration.timeout.milliseconds / 1000,
            idleTimeoutSeconds: configuration.idleTimeout.milliseconds / 1000)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Response(status: .ok, headers: [.contentType: "application/json"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: Array(try encoder.encode(info)))))
    }

    // MARK: Helpers

    private func run(_ job: CodecJob, decoding: Bool) async throws -> CodecOutput {
        do {
            return try await scheduler.submit(job, timeout: configuration.timeout)
        } catch {
            throw ServerError.from(codecError: error, decoding: decoding)
        }
    }

    private func collectBody(_ request: Request) async throws -> [UInt8] {
        // A declared length over the limit is refused before reading anything.
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > configuration.maxBodyBytes {
            throw ServerError.bodyTooLarge(limit: configuration.maxBodyBytes)
        }
        // Read by hand, with a deadline: a client trickling a byte now and then resets the idle
        // timer for ever, and would hold its admission place as long.
        let limit = configuration.maxBodyBytes
        let deadline = ContinuousClock.now + configuration.timeout
        var buffer = ByteBuffer()
        do {
            for try await chunk in request.body {
                guard buffer.readableBytes + chunk.readableBytes <= limit else { throw ServerError.bodyTooLarge(limit: limit) }
                var chunk = chunk
                buffer.writeBuffer(&chunk)
                if ContinuousClock.now > deadline { throw ServerError.uploadTimeout(seconds: configuration.timeout.milliseconds / 1000) }
            }
        } catch let e as ServerError {
            throw e
        } catch {
            // The connection closed or the upload broke off: the client's doing, not a 500.
            throw ServerError.incompleteBody("\(error)")
        }
        guard buffer.readableBytes > 0 else { throw ServerError.emptyBody }
        return Array(buffer.readableBytesView)
    }

    /// `rd_lambda`: the encoder's rate-distortion weight (`psic encode --rd-lambda`); absent, the
    /// model file's; 0, nearest rounding.
    private func quantizationParameter(_ raw: Substring?) throws -> Quantization {
        guard let raw else { return .modelDefault }
        guard let v = Double(raw), v.isFinite, v >= 0 else {
            throw ServerError.invalidQuery("rd_lambda=\(raw) must be a number >= 0 (0 rounds to the nearest symbol)")
        }
        return v == 0 ? .nearest : .rateDistortion(lambda: v)
    }

    private func intParameter(_ raw: Substring?, _ name: String, range: ClosedRange<Int>) throws -> Int? {
        guard let raw else { return nil }
        guard let v = Int(raw), range.contains(v) else {
            throw ServerError.invalidQuery("\(name)=\(raw) must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return v
    }

    /// Response headers of an encode to a PSNR target: levels kept, their decode's PSNR, and
    /// whether it reaches the target (when not, every level is kept).
    static let levelsHeader = HTTPFields.Element.Name("PSIC-Levels")!
    static let psnrHeader = HTTPFields.Element.Name("PSIC-PSNR")!
    static let reachedHeader = HTTPFields.Element.Name("PSIC-Target-Reached")!

    private func psnrParameter(_ raw: Substring?) throws -> Double? {
        guard let raw else { return nil }
        guard let v = Double(raw), v.isFinite else {
            throw ServerError.invalidQuery("min_psnr=\(raw) must be a number of dB, e.g. 32")
        }
        return v
    }

    private func detailsParameter(_ raw: Substring?) throws -> DetailMode {
        guard let raw else { return .sampled }
        guard let mode = DetailMode(rawValue: String(raw)) else {
            throw ServerError.invalidQuery("details=\(raw) must be one of " + DetailMode.allCases.map(\.rawValue).joined(separator: ", "))
        }
        return mode
    }

    private func seedParameter(_ raw: Substring?) throws -> UInt64? {
        guard let raw else { return nil }
        guard let v = UInt64(raw) else {
            throw ServerError.invalidQuery("seed=\(raw) must be an unsigned 64-bit integer")
        }
        return v
    }
}

/// Runs blocking work (PNG coding of up to `maxPixels` pixels) off Swift's cooperative thread
/// pool, which must stay free to serve connections.
private func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { c in
        DispatchQueue.global().async { c.resume(with: Result { try body() }) }
    }
}

private func hex(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

/// The body of `GET /v1/info`.
struct ServerInfo: Codable, Sendable {
    let model: String
    let levels: Int
    let backend: String
    let gpu: Bool
    let maxBatch: Int
    let maxWaitMilliseconds: Double
    let maxQueue: Int
    let maxBodyBytes: Int
    let maxPixels: Int
    let timeoutSeconds: Double
    let idleTimeoutSeconds: Double
}

/// The JSON body of every error response.
struct ErrorBody: Codable, Sendable {
    let error: String
    let message: String
}

extension Duration {
    var milliseconds: Double {
        Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
    }
}

/// Counts requests in hand against a limit (`EncodingServer.admission`).
final class RequestAdmission: Sendable {
    let limit: Int
    private let count = Mutex(0)

    init(limit: Int) { self.limit = max(1, limit) }

    /// Takes a place; false (nothing taken) when all `limit` are in use.
    func enter() -> Bool {
        count.withLock { n in
            guard n < limit else { return false }
            n += 1
            return true
        }
    }

    func leave() { count.withLock { $0 -= 1 } }

    var inUse: Int { count.withLock { $0 } }
}

/// The running service group, for `shutdown()`.
private final class LockedGroup: @unchecked Sendable {
    private let lock = NSLock()
    private var group: ServiceGroup?

    func set(_ g: ServiceGroup) {
        lock.lock()
        group = g
        lock.unlock()
    }

    func get() -> ServiceGroup? {
        lock.lock()
        defer { lock.unlock() }
        return group
    }
}

/// Around every request: turns any error into the JSON error response, records the
/// request's metrics and writes one structured log line.
struct RequestMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    let server: EncodingServer
    private static let endpoints: Set<String> = ["/v1/encode", "/v1/decode", "/v1/info", "/healthz", "/metrics"]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        // Unknown paths share one label so that scanners cannot blow up the metric's cardinality.
        let endpoint = Self.endpoints.contains(request.uri.path) ? request.uri.path : "other"
        var response: Response
        var failure: ServerError?
        do {
            response = try await next(request, context)
        } catch {
            let e: ServerError
            switch error {
            case let s as ServerError: e = s
            case let h as HTTPError where h.status == .notFound:
                e = .notFound("no endpoint \(request.method) \(request.uri.path)")
            case let h as HTTPResponseError:
                // Hummingbird's own refusals (e.g. a malformed request): keep the status, JSON body.
                let code = h.status == .badRequest ? "bad_request" : "http_\(h.status.code)"
                response = Self.json(status: h.status, code: code, message: "\(error)", headers: [:])
                return finish(response, request: request, endpoint: endpoint, start: start, code: code)
            default: e = .internalError("\(error)")
            }
            failure = e
            var headers: HTTPFields = [:]
            if case let .queueFull(s) = e { headers[.retryAfter] = "\(s)" }
            response = Self.json(status: e.status, code: e.code, message: e.description, headers: headers)
        }
        return finish(response, request: request, endpoint: endpoint, start: start, code: failure?.code)
    }

    private func finish(_ response: Response, request: Request, endpoint: String, start: ContinuousClock.Instant,
                        code: String?) -> Response {
        let seconds = (ContinuousClock.now - start).milliseconds / 1000
        server.metrics.request(endpoint: endpoint, status: response.status.code, seconds: seconds, errorCode: code)
        var metadata: Logger.Metadata = ["method": "\(request.method)", "path": "\(request.uri.path)",
                                         "status": "\(response.status.code)",
                                         "ms": "\(String(format: "%.1f", seconds * 1000))"]
        if let code { metadata["error"] = "\(code)" }
        if response.status.code >= 500 {
            server.logger.warning("request", metadata: metadata)
        } else {
            server.logger.info("request", metadata: metadata)
        }
        return response
    }

    static func json(status: HTTPResponse.Status, code: String, message: String, headers: HTTPFields) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        let data = (try? JSONEncoder().encode(ErrorBody(error: code, message: message))) ?? Data("{}".utf8)
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: Array(data))))
    }
}
