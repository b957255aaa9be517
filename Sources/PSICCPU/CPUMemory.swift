import Foundation
import PSICEngine

/// The CPU backend's large allocations (every tensor of a graph, oneDNN's blocked copies): they
/// fail with `EngineError.outOfMemory` instead of trapping, so a photo too large for the
/// machine's memory is an error the caller can report, not a crash.
enum CPUMemory {
    /// The backend named in `EngineError.outOfMemory`: every CPU allocation reports the same
    /// name, whatever its thread count.
    static let backendName = "cpu"

    /// The process's claims on the free memory (`CPUMemoryClaims`): every graph checks its needs
    /// against the free memory less the claims of graphs still filling theirs.
    static let claims = CPUMemoryClaims()

    /// `bytes` of memory aligned to 64 bytes (free with `deallocate()`).
    static func allocate(bytes: Int) throws -> UnsafeMutableRawPointer {
        var pointer: UnsafeMutableRawPointer?
        guard posix_memalign(&pointer, 64, max(64, bytes)) == 0, let pointer else {
            // The system refused although it may report more free (a process or container limit).
            throw EngineError.outOfMemory(backend: backendName, bytes: bytes, available: nil)
        }
        return pointer
    }

    /// `bytes` of zeroed memory aligned to 64 bytes (free with `deallocate()`).
    static func allocateZeroed(bytes: Int) throws -> UnsafeMutableRawPointer {
        let pointer = try allocate(bytes: bytes)
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        return pointer
    }
}
