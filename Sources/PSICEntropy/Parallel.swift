import Dispatch

/// `body(i)` for `i in 0..<n` on all cores, results in index order. Substreams are independent,
/// so this is the only synchronisation the coder needs.
func parallelMap<T>(_ n: Int, _ body: @Sendable (Int) -> T) -> [T] {
    if n == 1 { return [body(0)] }
    var results = [T?](repeating: nil, count: n)
    results.withUnsafeMutableBufferPointer { buffer in
        // Each iteration writes only its own slot.
        nonisolated(unsafe) let slots = buffer
        DispatchQueue.concurrentPerform(iterations: n) { i in slots[i] = body(i) }
    }
    return results.map { $0! }
}
