import Foundation
import PSICEngine

/// A graph ready to run on the CPU: every tensor allocated once, nodes run in order.
///
/// While idle it can give its tensors' pages back (`releaseTensorMemory`), keeping its
/// prepared layers; the next run claims the memory again like a prepare does.
final class CPUPreparedGraph: PreparedGraph {
    let graph: Graph
    private let storage: [CPUTensorStorage]
    private let threads: Int
    private let scratch = CPUScratch()
    /// The memory every tensor lives in (`CPUMemoryPlan`).
    private let slabs: [CPUPages]
    private let slabBytes: Int
    /// Whether the slabs and work buffers hold their pages (false after `releaseTensorMemory`).
    private var resident = true
    private let availableMemory: () -> Int?
    private let claims: CPUMemoryClaims
    /// oneDNN's prepared layers, by node index (empty with `CPUConvolutionMethod.im2col`).
    private var oneDNNLayers: [Int: OneDNNLayer] = [:]
    /// The integer layers, by node index.
    private var intConvLayers: [Int: CPUIntConvKernel] = [:]
    /// Kept alive for `oneDNNLayers`.
    private let oneDNNContext: OneDNNContext?

    /// - Parameters:
    ///   - availableMemory: the host memory free for tensors (`HostMemory.available`), read
    ///     while no other graph is claiming memory.
    ///   - claims: where the graph claims its tensors' memory until it has touched it.
    init(graph: Graph, threads: Int, convolutions: CPUConvolutionMethod,
         gdnBandElements: Int = OneDNNGDN.defaultBandElements, gdnProduct: CPUGDNProduct = .automatic,
         availableMemory: @escaping () -> Int? = { nil }, claims: CPUMemoryClaims = CPUMemory.claims) throws {
        self.graph = graph
        self.threads = threads
        self.availableMemory = availableMemory
        self.claims = claims
        let plan = CPUMemoryPlan(graph)
        let planBytes = plan.slabBytes.reduce(0, +)
        // A graph larger than the memory the machine has free would be killed mid-run (or trap
        // on the allocation): refuse it up front with the figures.
        try claims.claim(bytes: planBytes, available: availableMemory)
        // Fresh pages read as zeros, which concatenation targets rely on (see CPUMemoryPlan);
        // populated, they count as used in the free-memory figure, so the claim ends then.
        var slabs: [CPUPages] = []
        do {
            for bytes in plan.slabBytes {
                let slab = try CPUPages(bytes: bytes)
                slab.populate()
                slabs.append(slab)
            }
            claims.release(bytes: planBytes)
        } catch {
            claims.release(bytes: planBytes)
            throw error
        }
        self.slabs = slabs
        let storage = graph.tensors.enumerated().map { t, decl in
            CPUTensorStorage(shape: decl.shape, scalarType: decl.scalarType, raw: slabs[plan.slabOfTensor[t]].pointer)
        }
        self.storage = storage
        slabBytes = planBytes
        for (index, node) in graph.nodes.enumerated() {
            if case let .intConv2d(l) = node.op {
                intConvLayers[index] = try CPUIntConv.prepare(l, inputShape: node.inputShape, outputShape: node.outputShape)
            }
        }
        guard convolutions == .oneDNN else {
            oneDNNContext = nil
            return
        }
        let context = try OneDNNContext()
        oneDNNContext = context
        for (index, node) in graph.nodes.enumerated() {
            let input = storage[node.input.tensor.index].floats(channel: node.input.channelOffset)
            let output = storage[node.output.tensor.index].floats(channel: node.output.channelOffset)
            let spec: OneDNNConvolution.Spec
            switch node.op {
            case let .conv2d(l): spec = .init(l)
            case let .convTranspose2d(l): spec = .init(l)
            case let .gdn(l):
                oneDNNLayers[index] = try OneDNNGDN(l, input: input, output: output, shape: node.inputShape, context: context,
                                                     bandElements: gdnBandElements, product: gdnProduct)
                continue
            case .intConv2d: continue
            }
            if spec.runsInOneDNN(inputShape: node.inputShape, outputShape: node.outputShape) {
                oneDNNLayers[index] = try OneDNNConvolution(spec, input: input, inputShape: node.inputShape,
                                                            output: output, outputShape: node.outputShape, context: context)
            }
        }
        // The blocked copies' scratch now, so a graph too large for memory fails here, not mid-run.
        let scratchBytes = oneDNNLayers.values.map(\.scratchBytes).max() ?? 0
        _ = try scratch.floats((scratchBytes + 3) / 4)
    }

    deinit {
        oneDNNLayers.removeAll()  // their memory objects point into the slabs (unmapped after this)
    }

    /// The integer layers' work buffers.
    private var workPages: [CPUPages] { intConvLayers.values.flatMap(\.work) }

    /// Tensor slabs, the integer layers' buffers and the scratch grown so far; after
    /// `releaseTensorMemory`, only the integer layers' weights.
    var memoryBytes: Int {
        let weights = intConvLayers.values.reduce(0) { $0 + $1.weightBytes }
        guard resident else { return weights }
        return slabBytes + weights + workPages.reduce(0) { $0 + $1.bytes } + scratch.capacityBytes
    }

    /// Releases the slabs, the integer layers' work buffers and the scratch. Every tensor a run
    /// reads was written earlier in the run or is an input copied in, except concatenation
    /// targets' unwritten channels, which must read zeros: released pages come back zeroed.
    func releaseTensorMemory() -> Bool {
        guard resident else { return false }
        for pages in slabs + workPages { pages.release() }
        scratch.release()
        resident = false
        return true
    }

    /// Claims the released memory against the free memory (as a prepare does) and populates it.
    func reserveTensorMemory() throws {
        guard !resident else { return }
        let pages = slabs + workPages
        let bytes = pages.reduce(0) { $0 + $1.bytes }
        try claims.claim(bytes: bytes, available: availableMemory)
        defer { claims.release(bytes: bytes) }
        for p in pages { p.populate() }
        let scratchBytes = oneDNNLayers.values.map(\.scratchBytes).max() ?? 0
        _ = try scratch.floats((scratchBytes + 3) / 4)
        resident = true
    }

    /// oneDNN's implementation name per node index (tests and diagnostics).
    var oneDNNImplementations: [Int: String] { oneDNNLayers.mapValues(\.implementation) }

    /// oneDNN's implementation names: the only kernels here chosen at prepare time.
    var kernelImplementations: [Int: String] { oneDNNImplementations }

    func run(inputs: [TensorID: Tensor], collectTimings: Bool) throws -> GraphResult {
        try validateInputs(inputs)
        try reserveTensorMemory()
        for (id, tensor) in inputs {
            let dst = storage[id.index]
            switch tensor.storage {
            case let .float32(v): v.withUnsafeBufferPointer { dst.floats.update(from: $0.baseAddress!, count: v.count) }
            case let .int32(v): v.withUnsafeBufferPointer { dst.ints.update(from: $0.baseAddress!, count: v.count) }
            }
        }
        var timings: [KernelTiming] = []
        for (index, node) in graph.nodes.enumerated() {
            let start = collectTimings ? DispatchTime.now().uptimeNanoseconds : 0
            if let layer = oneDNNLayers[index] {
                // Every oneDNN layer's blocked tensors share the one grow-only scratch area.
                let bytes = layer.scratchBytes
                try layer.run(threads: threads, scratch: UnsafeMutableRawPointer(try scratch.floats((bytes + 3) / 4)))
            } else {
                try execute(node, index: index)
            }
            if collectTimings {
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                timings.append(KernelTiming(node: node.op.name, seconds: seconds,
                                            flops: node.op.flops(input: node.inputShape, output: node.outputShape)))
            }
        }
        var outputs: [TensorID: Tensor] = [:]
        for id in graph.outputs {
            let s = storage[id.index]
            switch s.scalarType {
            case .float32: outputs[id] = Tensor(shape: s.shape, floats: Array(UnsafeBufferPointer(start: s.floats, count: s.shape.count)))
            case .int32: outputs[id] = Tensor(shape: s.shape, ints: Array(UnsafeBufferPointer(start: s.ints, count: s.shape.count)))
            }
        }
        return GraphResult(outputs: outputs, timings: timings)
    }

    private func execute(_ node: GraphNode, index: Int) throws {
        let src = storage[node.input.tensor.index]
        let dst = storage[node.output.tensor.index]
        let inShape = node.inputShape, outShape = node.outputShape
        switch node.op {
        case let .conv2d(layer):
            try CPUConv2d.run(layer, input: src.floats(channel: node.input.channelOffset), inputShape: inShape,
                          output: dst.floats(channel: node.output.channelOffset), outputShape: outShape,
                          scratch: scratch, threads: threads)
        case let .convTranspose2d(layer):
            try CPUConvTranspose2d.run(layer, input: src.floats(channel: node.input.channelOffset), inputShape: inShape,
                                   output: dst.floats(channel: node.output.channelOffset), outputShape: outShape,
                                   scratch: scratch, threads: threads)
        case let .gdn(layer):
            try CPUGDN.run(layer, input: src.floats(channel: node.input.channelOffset),
                       output: dst.floats(channel: node.output.channelOffset), shape: inShape,
                       scratch: scratch, threads: threads)
        case .intConv2d:
            // Every integer node was prepared in init.
            intConvLayers[index]!.run(src.ints(channel: node.input.channelOffset),
                                      dst.ints(channel: node.output.channelOffset), threads)
        }
    }
}

/// Grow-only scratch memory (im2col columns, GDN norms, oneDNN's blocked tensors) reused across
/// nodes and runs; 64-byte aligned for the vector kernels.
final class CPUScratch {
    private var buffer = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
    private var capacity = 16

    func floats(_ count: Int) throws -> UnsafeMutablePointer<Float> {
        if count > capacity {
            let grown = try CPUMemory.allocate(bytes: count * 4)
            buffer.deallocate()
            buffer = grown
            capacity = count
        }
        return buffer.bindMemory(to: Float.self, capacity: capacity)
    }

    /// Bytes allocated now.
    var capacityBytes: Int { capacity * 4 }

    /// Frees the memory; the next request allocates again.
    func release() {
        buffer.deallocate()
        buffer = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
        capacity = 16
    }

    deinit { buffer.deallocate() }
}

/// Runs `body(i)` for `i` in `0..<count` on up to `threads` threads (interleaved, so uneven
/// per-index costs spread across workers). Returns when every call has finished.
func parallelFor(_ count: Int, threads: Int, _ body: (Int) -> Void) {
    let workers = min(threads, count)
    if workers <= 1 {
        for i in 0..<count { body(i) }
        return
    }
    // `body` does not escape: concurrentPerform returns after every iteration ran. The kernels
    // hand each index a disjoint part of the output, which is what makes sharing it sound.
    withoutActuallyEscaping(body) { escapable in
        let shared = UncheckedSendable(value: escapable)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var i = worker
            while i < count {
                shared.value(i)
                i += workers
            }
        }
    }
}

/// Carries a value across a `@Sendable` boundary whose safety the caller guarantees.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
}
