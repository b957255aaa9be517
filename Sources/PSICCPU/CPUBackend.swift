import Foundation
import PSICEngine

/// How the CPU backend runs float convolutions, transposed convolutions and GDN.
public enum CPUConvolutionMethod: String, CaseIterable, Sendable {
    /// oneDNN's JIT kernels on channel-blocked copies of the tensors (the default: the fastest
    /// measured here, docs/design.md). GDN runs as a 1×1 convolution with fused post-ops.
    case oneDNN = "onednn"
    /// im2col (or col2im) around OpenBLAS SGEMM, and GDN as SGEMM plus a loop, in PSIC's own threads.
    case im2col
}

/// Where oneDNN's GDN (`CPUConvolutionMethod.oneDNN`) multiplies the normaliser by the input:
/// fused into the 1×1 convolution as its last post-op, or as a separate `binary_mul` primitive
/// after it. oneDNN 2.6 has no JIT kernel for the fused form on avx512_core (an Intel Xeon), only
/// its reference convolution; `psic bench gdn` measures the forms side by side (docs/design.md).
public enum CPUGDNProduct: String, CaseIterable, Sendable {
    /// Fused where oneDNN has a JIT kernel for it, else separate (what the codec runs).
    case automatic = "auto"
    /// Fused whatever kernel oneDNN has for it, its reference convolution included.
    case fused
    /// Separate on every machine.
    case unfused
}

/// The CPU backend: every layer in Swift, OpenBLAS and oneDNN, multi-threaded.
///
/// It is the fallback where no Vulkan device exists and the reference the GPU is tested against.
/// Float convolutions and GDN run in oneDNN (or on SGEMM, see `CPUConvolutionMethod`), integer
/// layers as exact Double GEMMs.
public final class CPUBackend: Backend {
    public let name: String
    /// Threads the backend runs on; OpenBLAS runs single-threaded inside them.
    public let threads: Int
    /// How float convolutions run.
    public let convolutions: CPUConvolutionMethod
    /// Where oneDNN's GDN computes its product (with `CPUConvolutionMethod.oneDNN` only).
    public let gdnProduct: CPUGDNProduct
    /// Elements of one band of oneDNN's GDN (`OneDNNGDN`); tests make it small to get many bands.
    let gdnBandElements: Int
    /// Host memory free for a graph's tensors (`HostMemory.available`); tests substitute a limit.
    let availableMemory: @Sendable () -> Int?
    /// Claims on that memory by graphs still filling theirs: one per process (`CPUMemory.claims`),
    /// so every backend's graphs see each other's; tests give a backend its own.
    let claims: CPUMemoryClaims

    /// - Parameters:
    ///   - threads: threads to run on (default: every active core).
    ///   - convolutions: how float convolutions run (default: `$PSIC_CPU_CONVOLUTIONS` when it
    ///     names a method, else oneDNN).
    ///   - gdnProduct: where oneDNN's GDN computes its product (default: as the codec runs it);
    ///     benchmarks choose the others.
    public convenience init(threads: Int? = nil, convolutions: CPUConvolutionMethod? = nil,
                            gdnProduct: CPUGDNProduct = .automatic) {
        self.init(threads: threads, convolutions: convolutions, gdnBandElements: OneDNNGDN.defaultBandElements,
                  gdnProduct: gdnProduct)
    }

    init(threads: Int?, convolutions: CPUConvolutionMethod?, gdnBandElements: Int, gdnProduct: CPUGDNProduct = .automatic,
         availableMemory: @escaping @Sendable () -> Int? = HostMemory.available,
         claims: CPUMemoryClaims = CPUMemory.claims) {
        self.gdnBandElements = gdnBandElements
        self.gdnProduct = gdnProduct
        self.availableMemory = availableMemory
        self.claims = claims
        BLASThreading.singleThreaded
        let n = max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount)
        self.threads = n
        let method = convolutions
            ?? ProcessInfo.processInfo.environment["PSIC_CPU_CONVOLUTIONS"].flatMap(CPUConvolutionMethod.init(rawValue:))
            ?? .oneDNN
        self.convolutions = method
        // The product's form shows only where it applies and is not the codec's own.
        let variant = method != .oneDNN ? ", \(method.rawValue)" : gdnProduct != .automatic ? ", GDN product \(gdnProduct.rawValue)" : ""
        self.name = "cpu (\(n) thread\(n == 1 ? "" : "s")\(variant))"
    }

    public func prepare(_ graph: Graph) throws -> PreparedGraph {
        try CPUPreparedGraph(graph: graph, threads: threads, convolutions: convolutions, gdnBandElements: gdnBandElements,
                             gdnProduct: gdnProduct,
                             availableMemory: availableMemory, claims: claims)
    }
}
