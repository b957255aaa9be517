/// Time spent in one node of a graph run.
public struct KernelTiming: Sendable {
    public let node: String
    public let seconds: Double
    public let flops: Double
    public var gflops: Double { seconds > 0 ? flops / seconds / 1e9 : 0 }

    public init(node: String, seconds: Double, flops: Double) {
        self.node = node
        self.seconds = seconds
        self.flops = flops
    }
}

/// The result of running a prepared graph.
public struct GraphResult: Sendable {
    /// Contents of the graph's output tensors.
    public let outputs: [TensorID: Tensor]
    /// Per-node timings (GPU timestamps on Vulkan, wall clock on the CPU), when requested.
    public let timings: [KernelTiming]

    public init(outputs: [TensorID: Tensor], timings: [KernelTiming]) {
        self.outputs = outputs
        self.timings = timings
    }
}

/// A graph made ready to run on one backend: weights uploaded, pipelines built, buffers allocated.
/// Running it again with new inputs reuses all of that.
public protocol PreparedGraph: AnyObject {
    var graph: Graph { get }
    /// Bytes of tensor memory the prepared graph holds (host or device): what keeping it
    /// around for reuse costs.
    var memoryBytes: Int { get }
    /// Runs every node. `inputs` must hold a tensor for each graph input, of its declared shape and type.
    func run(inputs: [TensorID: Tensor], collectTimings: Bool) throws -> GraphResult
    /// Gives the tensors' memory back to the system while the graph is idle, keeping what is
    /// costly to make again (kernels, converted weights); `memoryBytes` then counts what is
    /// left. Returns whether anything was released (the default, for backends that cannot,
    /// releases nothing).
    func releaseTensorMemory() -> Bool
    /// Takes back released tensor memory before a run, or throws `EngineError.outOfMemory` when
    /// the free memory cannot hold it. Runs do this themselves; callers that can make room
    /// (drop other idle graphs) call it first. Default: nothing to take back.
    func reserveTensorMemory() throws
    /// The kernel each node runs, by node index, where the backend picks one among several when
    /// it prepares the graph (oneDNN's implementation names on the CPU), so a benchmark can say
    /// what it measured. Default: none named.
    var kernelImplementations: [Int: String] { get }
}

/// One run of a batch: a prepared graph and the inputs to run it on.
public struct BatchRun {
    public let graph: PreparedGraph
    public let inputs: [TensorID: Tensor]

    public init(graph: PreparedGraph, inputs: [TensorID: Tensor]) {
        self.graph = graph
        self.inputs = inputs
    }
}

/// A compute backend: the CPU reference/fallback or a Vulkan device.
public protocol Backend: AnyObject, Sendable {
    /// Human-readable name, e.g. "cpu (2 threads)" or "vulkan: llvmpipe".
    var name: String { get }
    func prepare(_ graph: Graph) throws -> PreparedGraph
    /// Runs several prepared graphs (distinct instances; shapes may differ) as one unit of work
    /// and returns their results in order. Each result equals what `run` alone would give.
    /// Vulkan records them into one queue submission, so a batch pays one submit-and-wait
    /// round trip; the default runs them one after another.
    func runBatch(_ runs: [BatchRun]) throws -> [GraphResult]
    /// The largest tensor, in bytes, a graph prepared here may hold (a Vulkan device's storage
    /// buffer range); larger graphs fail to prepare. Default: no limit.
    var maxTensorBytes: Int { get }
}

extension Backend {
    public var maxTensorBytes: Int { Int.max }

    public func runBatch(_ runs: [BatchRun]) throws -> [GraphResult] {
        try runs.map { try $0.graph.run(inputs: $0.inputs) }
    }
}

extension PreparedGraph {
    /// Default: every tensor of the graph, 4 bytes an element (what both backends allocate).
    public var memoryBytes: Int { graph.tensors.reduce(0) { $0 + $1.shape.count * 4 } }

    public func releaseTensorMemory() -> Bool { false }

    public func reserveTensorMemory() throws {}

    public var kernelImplementations: [Int: String] { [:] }

    public func run(inputs: [TensorID: Tensor]) throws -> GraphResult {
        try run(inputs: inputs, collectTimings: false)
    }

    /// Checks `inputs` against the graph's declared inputs (shared by every backend).
    public func validateInputs(_ inputs: [TensorID: Tensor]) throws {
        for (i, decl) in graph.tensors.enumerated() where decl.isInput {
            guard let t = inputs[TensorID(index: i)] else {
                throw EngineError.badInput(name: decl.name, reason: "not supplied")
            }
            guard t.shape == decl.shape, t.scalarType == decl.scalarType else {
                throw EngineError.badInput(name: decl.name,
                                           reason: "expected \(decl.scalarType) \(decl.shape), got \(t.scalarType) \(t.shape)")
            }
        }
    }
}
