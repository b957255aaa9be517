import CoreMetrics
import Foundation
import Metrics
import Prometheus

/// The server's metrics, recorded through swift-metrics into a registry of this server's own
/// (not the process-wide `MetricsSystem`, so that several servers, e.g. in tests, keep apart)
/// and served by `GET /metrics` in the Prometheus text format.
public final class ServerMetrics: Sendable {
    /// The registry `GET /metrics` emits.
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let queueDepth: CoreMetrics.Meter
    private let submissions: CoreMetrics.Counter
    private let computeSeconds: CoreMetrics.FloatingPointCounter

    static let requestDuration = "psic_request_duration_seconds"
    static let batchSize = "psic_batch_size"
    static let batchCompute = "psic_batch_compute_seconds"

    public init(maxBatch: Int) {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        let latencyBuckets: [Duration] = [.milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                                          .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
                                          .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60)]
        factory.durationHistogramBuckets = [Self.requestDuration: latencyBuckets, Self.batchCompute: latencyBuckets]
        // One bucket per batch size up to the configured maximum: sizes are small integers.
        factory.valueHistogramBuckets = [Self.batchSize: (1...max(1, maxBatch)).map(Double.init)]
        self.factory = factory
        queueDepth = CoreMetrics.Meter(label: "psic_queue_depth", factory: factory)
        submissions = CoreMetrics.Counter(label: "psic_engine_submissions_total", factory: factory)
        computeSeconds = CoreMetrics.FloatingPointCounter(label: "psic_compute_seconds_total", factory: factory)
        queueDepth.set(0)
    }

    /// A finished request: its endpoint, HTTP status and wall time from arrival to response.
    func request(endpoint: String, status: Int, seconds: Double, errorCode: String?) {
        CoreMetrics.Counter(label: "psic_requests_total", dimensions: [("endpoint", endpoint), ("status", String(status))],
                factory: factory).increment()
        if let errorCode {
            CoreMetrics.Counter(label: "psic_errors_total", dimensions: [("endpoint", endpoint), ("code", errorCode)],
                    factory: factory).increment()
        }
        CoreMetrics.Timer(label: Self.requestDuration, dimensions: [("endpoint", endpoint)], factory: factory)
            .recordNanoseconds(Int64(seconds * 1e9))
    }

    /// A batch the scheduler ran: how many requests it held, and the backend's time on it
    /// (GPU time plus submission overhead on Vulkan, compute time on the CPU backend).
    func batch(kind: String, size: Int, computeSeconds seconds: Double, submissions n: Int) {
        CoreMetrics.Recorder(label: Self.batchSize, dimensions: [("kind", kind)], aggregate: true, factory: factory).record(size)
        CoreMetrics.Timer(label: Self.batchCompute, dimensions: [("kind", kind)], factory: factory)
            .recordNanoseconds(Int64(seconds * 1e9))
        computeSeconds.increment(by: seconds)
        submissions.increment(by: n)
    }

    /// Requests waiting for a batch (not counting the batch being run).
    func queueDepth(_ n: Int) {
        queueDepth.set(n)
    }

    /// The Prometheus text exposition of every metric.
    public func exposition() -> String {
        registry.emitToString()
    }
}
