import PSICEngine
import Synchronization

/// Host memory that graphs have claimed for their tensors but may not have touched yet.
///
/// The free-memory figure (`HostMemory.available`) falls only as pages are touched, so a graph still
/// zeroing its slabs is invisible to the next graph's check. Counting claims keeps the checks
/// honest without holding a lock while the memory is filled: concurrent prepares (a batch's
/// lanes, a server's requests) check one at a time and zero their memory side by side.
final class CPUMemoryClaims: Sendable {
    private let claimed = Mutex(0)

    /// Claims `bytes` when the free memory, less what other graphs have claimed and not yet
    /// released, covers them; `available` is read with no other claim being made. An unknown
    /// free-memory figure (nil) admits every claim. Call `release(bytes:)` once the memory is
    /// touched (or was never allocated).
    func claim(bytes: Int, available: () -> Int?) throws(EngineError) {
        try claimed.withLock { (claimed: inout Int) throws(EngineError) in
            if let available = available() {
                let left = max(0, available - claimed)
                if bytes > left { throw EngineError.outOfMemory(backend: CPUMemory.backendName, bytes: bytes, available: left) }
            }
            claimed += bytes
        }
    }

    /// Returns bytes taken by `claim(bytes:available:)`.
    func release(bytes: Int) {
        claimed.withLock { $0 -= bytes }
    }

    /// Bytes claimed and not yet released.
    var outstanding: Int { claimed.withLock { $0 } }
}
