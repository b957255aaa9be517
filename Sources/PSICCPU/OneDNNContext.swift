import COneDNN
import PSICEngine

/// A oneDNN call that did not succeed.
public struct OneDNNError: Error, CustomStringConvertible, Sendable {
    /// The oneDNN function that failed.
    public let call: String
    /// Its `dnnl_status_t` (e.g. 2 = invalid arguments, 3 = unimplemented).
    public let status: UInt32

    public var description: String {
        "oneDNN \(call) failed (dnnl_status_t \(status)); run with --backend vulkan, or with the im2col CPU convolutions, to avoid oneDNN"
    }
}

@inline(__always)
func check(_ status: dnnl_status_t, _ call: @autoclosure () -> String) throws {
    guard status == dnnl_success else { throw OneDNNError(call: call(), status: status.rawValue) }
}

/// The oneDNN engine and stream of one prepared graph. Executions on a CPU stream are
/// synchronous, run on oneDNN's OpenMP threads.
final class OneDNNContext {
    let engine: dnnl_engine_t
    let stream: dnnl_stream_t

    init() throws {
        var engine: dnnl_engine_t?
        try check(dnnl_engine_create(&engine, dnnl_cpu, 0), "dnnl_engine_create")
        var stream: dnnl_stream_t?
        do {
            try check(dnnl_stream_create(&stream, engine, UInt32(dnnl_stream_default_flags.rawValue)), "dnnl_stream_create")
        } catch {
            dnnl_engine_destroy(engine)
            throw error
        }
        self.engine = engine!
        self.stream = stream!
    }

    deinit {
        dnnl_stream_destroy(stream)
        dnnl_engine_destroy(engine)
    }
}
