import Foundation
import PSICEngine

/// The CPU backend: every layer in Swift and OpenBLAS, multi-threaded.
///
/// It is the fallback where no Vulkan device exists and the reference the GPU is tested against.
/// Float convolutions run as im2col + SGEMM (OpenBLAS), integer layers as exact Int32 loops.
public final class CPUBackend: Backend {
    public let name: String
    /// Threads the backend runs on; OpenBLAS runs single-threaded inside them.
    public let threads: Int

    public init(threads: Int? = nil) {
        BLASThreading.singleThreaded
        let n = max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount)
        self.threads = n
        self.name = "cpu (\(n) thread\(n == 1 ? "" : "s"))"
    }

    public func prepare(_ graph: Graph) throws -> PreparedGraph {
        CPUPreparedGraph(graph: graph, threads: threads)
    }
}
