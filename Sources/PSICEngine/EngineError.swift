import Foundation

/// Errors raised while describing, preparing or running a graph.
public enum EngineError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A layer's parameters are inconsistent (wrong array length, bad stride, ...).
    case invalidLayer(name: String, reason: String)
    /// A node's input does not have the shape or type its layer expects.
    case shapeMismatch(node: String, expected: String, got: String)
    /// An integer layer could overflow its Int32 accumulator for some admissible input.
    case accumulatorOverflow(layer: String, worstCase: Int64)
    /// A graph input was not supplied to `run`, or was supplied with the wrong shape/type.
    case badInput(name: String, reason: String)
    /// A tensor view reaches outside its tensor.
    case viewOutOfRange(tensor: String, reason: String)
    /// The backend failed for a reason outside the graph (driver, memory, ...).
    case backendFailure(backend: String, reason: String)
    /// The graph's tensors need `bytes` of host memory that the machine cannot give
    /// (`available`: what it reported free; nil when an allocation was refused).
    case outOfMemory(backend: String, bytes: Int, available: Int?)
    /// A GPU device could not allocate a buffer of `bytes` for the graph's tensors (its memory
    /// is held by other graphs or processes, or the image is too large for it), or, with
    /// `bytes` nil, ran out of memory in the driver call `call` (a descriptor pool, a command
    /// buffer, a pipeline: the objects a graph needs beside its buffers).
    case outOfDeviceMemory(backend: String, bytes: Int?, call: String? = nil)

    /// Whether this is `outOfMemory` or `outOfDeviceMemory`: the request may succeed once other
    /// graphs free their memory, or with a smaller image.
    public var isOutOfMemory: Bool {
        switch self {
        case .outOfMemory, .outOfDeviceMemory: return true
        default: return false
        }
    }

    public var description: String {
        switch self {
        case let .invalidLayer(name, reason): return "layer '\(name)': \(reason)"
        case let .shapeMismatch(node, expected, got): return "node '\(node)': expected input \(expected), got \(got)"
        case let .accumulatorOverflow(layer, worst):
            return "integer layer '\(layer)': worst-case accumulator \(worst) does not fit in Int32; re-export the model with smaller weights or input bound"
        case let .badInput(name, reason): return "graph input '\(name)': \(reason)"
        case let .viewOutOfRange(tensor, reason): return "view of tensor '\(tensor)': \(reason)"
        case let .backendFailure(backend, reason): return "\(backend) backend: \(reason)"
        case let .outOfMemory(backend, bytes, available):
            let gb = { (b: Int) in String(format: "%.1f GB", Double(b) / 1e9) }
            let what = available.map { "this image's tensors need \(gb(bytes)) of memory and \(gb($0)) is free" }
                ?? "an allocation of \(gb(bytes)) for this image's tensors was refused (a memory limit such as ulimit -v or a container's)"
            return "\(backend) backend: \(what); free memory, or use a smaller (downscaled or cropped) image"
        case let .outOfDeviceMemory(backend, bytes, call):
            let what = bytes.map { "could not allocate \(String(format: "%.2f GB", Double($0) / 1e9)) for this image's tensors" }
                ?? "ran out of memory in \(call ?? "a driver call")"
            return "\(backend) backend: the device \(what) (its memory is held by other graphs or processes); "
                + "free GPU memory, use a smaller (downscaled or cropped) image, or run on the CPU (--backend cpu)"
        }
    }
}
