import Foundation
import Logging
import PSICCodec
import PSICImage
import ServiceLifecycle

/// What a job asks of the codec.
enum CodecJob: Sendable {
    case encode(EncodeRequest)
    /// An encode to a PSNR target (`ImageCodec.encodeBatch(targeting:)`).
    case encodeToQuality(QualityRequest)
    case decode(DecodeRequest)

    var kind: String {
        switch self {
        case .encode: return "encode"
        case .encodeToQuality: return "encode_quality"
        case .decode: return "decode"
        }
    }
}

/// What a job gives back.
enum CodecOutput: Sendable {
    case stream([UInt8])
    case targeted(QualityTargetedStream)
    case images([RGBImage])
}

/// Collects requests into batches and runs each batch through the codec's batch calls
/// (`ImageCodec.encodeBatch` / `decodeBatch`), where every network stage of the batch is one
/// `Backend.runBatch` — one queue submission on Vulkan.
///
/// A batch starts with the oldest waiting request and takes the waiting requests of the same
/// kind (encode or decode), up to `maxBatch`; it waits at most `maxWait` after the oldest
/// request arrived for more to come. Batches run one at a time on one engine thread: the
/// device is shared, and the CPU backend already uses every core. The queue is bounded:
/// `submit` fails fast with `queueFull` rather than letting latency grow without limit.
///
/// As a `Service`, `run` processes batches until graceful shutdown, then finishes every
/// queued request before returning.
public final class BatchScheduler: Service, @unchecked Sendable {
    public let maxBatch: Int
    public let maxWait: Duration
    public let maxQueue: Int
    /// Seconds a refused request is told to wait (Retry-After).
    public let retryAfterSeconds: Int
    private let codec: ImageCodec
    private let metrics: ServerMetrics
    private let logger: Logger
    /// The engine's thread: codec calls block, so they must not run on Swift's cooperative pool.
    private let engineQueue = DispatchQueue(label: "psic.engine")

    private let lock = NSLock()
    private var queue: [Job] = []
    private var stopping = false
    /// The service group was cancelled (another service failed, e.g. the HTTP server could not
    /// bind its port): queued requests are refused instead of run.
    private var cancelled = false
    private var wakeup: CheckedContinuation<Void, Never>?

    /// A queued request. Answered exactly once: by its batch, or by its timeout, whichever is
    /// first; an answer that comes before the caller is attached waits for it.
    final class Job: @unchecked Sendable {
        let work: CodecJob
        let enqueued = ContinuousClock.now
        private let lock = NSLock()
        private var continuation: CheckedContinuation<CodecOutput, Error>?
        private var answer: Result<CodecOutput, Error>?

        init(work: CodecJob) { self.work = work }

        /// Attaches the waiting caller; false (and the caller resumed) when already answered.
        func attach(_ c: CheckedContinuation<CodecOutput, Error>) -> Bool {
            lock.lock()
            if let answer {
                lock.unlock()
                c.resume(with: answer)
                return false
            }
            continuation = c
            lock.unlock()
            return true
        }

        /// False when the job was already answered (e.g. timed out).
        @discardableResult
        func finish(_ result: Result<CodecOutput, Error>) -> Bool {
            lock.lock()
            guard answer == nil else {
                lock.unlock()
                return false
            }
            answer = result
            let c = continuation
            continuation = nil
            lock.unlock()
            c?.resume(with: result)
            return true
        }

        var isAnswered: Bool {
            lock.lock()
            defer { lock.unlock() }
            return answer != nil
        }
    }

    public init(codec: ImageCodec, maxBatch: Int, maxWait: Duration, maxQueue: Int, retryAfterSeconds: Int = 1,
                metrics: ServerMetrics, logger: Logger) {
        self.retryAfterSeconds = max(1, retryAfterSeconds)
        self.codec = codec
        self.maxBatch = max(1, maxBatch)
        self.maxWait = maxWait
        self.maxQueue = max(1, maxQueue)
        self.metrics = metrics
        self.logger = logger
    }

    /// Requests waiting for a batch.
    public var queueDepth: Int {
        lock.lock()
        defer { lock.unlock() }
        return queue.count
    }

    /// Requests accepted into the queue since the scheduler started.
    public var acceptedCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return accepted
    }
    private var accepted = 0

    /// Queues `work` and waits for its result, at most until `timeout` has passed since the call.
    func submit(_ work: CodecJob, timeout: Duration) async throws -> CodecOutput {
        let job = Job(work: work)
        let timer = Task {
            try await Task.sleep(for: timeout)
            let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
            job.finish(.failure(ServerError.timeout(seconds: seconds)))
        }
        defer { timer.cancel() }
        return try await withCheckedThrowingContinuation { c in
            guard job.attach(c) else { return }
            lock.lock()
            if stopping {
                lock.unlock()
                job.finish(.failure(ServerError.shuttingDown))
                return
            }
            // Requests their timeout already answered hold no place (they would until the next batch).
            if queue.count >= maxQueue { queue.removeAll { $0.isAnswered } }
            if queue.count >= maxQueue {
                metrics.queueDepth(queue.count)
                lock.unlock()
                job.finish(.failure(ServerError.queueFull(retryAfter: retryAfterSeconds)))
                return
            }
            queue.append(job)
            accepted += 1
            // Set under the lock: gauge writes from submit and takeBatch must land in queue order.
            metrics.queueDepth(queue.count)
            let w = wakeup
            wakeup = nil
            lock.unlock()
            w?.resume()
        }
    }

    public func run() async throws {
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await self.loop()
            } onGracefulShutdown: {
                self.stop(cancelled: false)
            }
        } onCancel: {
            self.stop(cancelled: true)
        }
    }

    /// Ends the loop once the queue is done (graceful) or at once, refusing what is queued (cancelled).
    private func stop(cancelled: Bool) {
        lock.lock()
        stopping = true
        var refused: [Job] = []
        if cancelled {
            self.cancelled = true
            refused = queue
            queue = []
            metrics.queueDepth(0)
        }
        let w = wakeup
        wakeup = nil
        lock.unlock()
        for job in refused { job.finish(.failure(ServerError.shuttingDown)) }
        w?.resume()
    }

    private func loop() async {
        while true {
            // Sleep until there is work, or until shutdown with nothing left to do.
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                lock.lock()
                if !queue.isEmpty || stopping {
                    lock.unlock()
                    c.resume()
                } else {
                    wakeup = c
                    lock.unlock()
                }
            }
            let done = lock.withLock { (queue.isEmpty && stopping) || cancelled }
            if done {
                logger.info("batch scheduler stopped")
                return
            }
            await collectWindow()
            let batch = takeBatch()
            guard !batch.isEmpty else { continue }
            await execute(batch)
        }
    }

    /// Waits until the oldest request's window (`maxWait`) closes, the queue holds a full batch,
    /// or shutdown began. Polls at a fine grain: only while requests wait, and only for `maxWait`.
    private func collectWindow() async {
        guard maxBatch > 1 else { return }
        while true {
            let state = lock.withLock { () -> (oldest: Job, sameKind: Int)? in
                guard let oldest = queue.first, !stopping else { return nil }
                return (oldest, queue.lazy.filter { $0.work.kind == oldest.work.kind }.count)
            }
            guard let (oldest, sameKind) = state else { return }
            let deadline = oldest.enqueued + maxWait
            if sameKind >= maxBatch || ContinuousClock.now >= deadline { return }
            try? await Task.sleep(for: min(.microseconds(500), deadline - ContinuousClock.now))
        }
    }

    /// Removes the next batch from the queue: the oldest request and the following ones of its
    /// kind, skipping (and dropping) requests already answered by their timeout.
    private func takeBatch() -> [Job] {
        lock.lock()
        queue.removeAll { $0.isAnswered }
        guard let kind = queue.first?.work.kind else { lock.unlock(); return [] }
        var batch: [Job] = []
        var rest: [Job] = []
        for job in queue {
            if batch.count < maxBatch, job.work.kind == kind { batch.append(job) } else { rest.append(job) }
        }
        queue = rest
        metrics.queueDepth(queue.count)
        lock.unlock()
        return batch
    }

    private func execute(_ batch: [Job]) async {
        let kind = batch[0].work.kind
        let profile = CodecProfile()
        let codec = self.codec
        let results: [Result<CodecOutput, Error>] = await withCheckedContinuation { c in
            engineQueue.async {
                switch batch[0].work {
                case .encode:
                    let requests = batch.compactMap { job -> EncodeRequest? in
                        if case let .encode(r) = job.work { return r } else { return nil }
                    }
                    c.resume(returning: codec.encodeBatch(requests, profile: profile).map { $0.map(CodecOutput.stream) })
                case .encodeToQuality:
                    let requests = batch.compactMap { job -> QualityRequest? in
                        if case let .encodeToQuality(r) = job.work { return r } else { return nil }
                    }
                    c.resume(returning: codec.encodeBatch(targeting: requests, profile: profile).map { $0.map(CodecOutput.targeted) })
                case .decode:
                    let requests = batch.compactMap { job -> DecodeRequest? in
                        if case let .decode(r) = job.work { return r } else { return nil }
                    }
                    c.resume(returning: codec.decodeBatch(requests, profile: profile).map { $0.map(CodecOutput.images) })
                }
            }
        }
        metrics.batch(kind: kind, size: batch.count, computeSeconds: profile.computeSeconds, submissions: profile.submissions)
        logger.debug("batch done", metadata: ["kind": "\(kind)", "size": "\(batch.count)",
                                              "compute_ms": "\(Int(profile.computeSeconds * 1000))",
                                              "submissions": "\(profile.submissions)"])
        for (job, r) in zip(batch, results) { job.finish(r) }
    }
}
