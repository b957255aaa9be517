import Foundation
import PSICEngine

/// Memory mapped from the system in whole pages, for a prepared graph's tensors and work
/// buffers: an idle graph can give the pages back (`release()`) and keep every pointer into
/// them, which oneDNN's memory objects and the tensor storage hold from prepare on. The next
/// touch maps fresh zeroed pages, so a released region reads as newly allocated.
///
/// Why not free and allocate again: the pointers are baked into the graph's prepared layers,
/// and re-preparing them costs more than taking the pages back (docs/design.md).
final class CPUPages {
    /// The first byte (page-aligned, so 64-byte aligned for the vector kernels).
    let pointer: UnsafeMutableRawPointer
    /// Bytes asked for.
    let bytes: Int
    /// Bytes mapped: `bytes` rounded up to whole pages.
    private let length: Int

    static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// Maps `bytes` (at least one page) of zeroed memory, untouched: pages count as used once
    /// written. Throws `EngineError.outOfMemory` when the system refuses the mapping.
    init(bytes: Int) throws {
        let page = Self.pageSize
        self.bytes = bytes
        length = (max(1, bytes) + page - 1) / page * page
        let mapped = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let mapped, mapped != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw EngineError.outOfMemory(backend: CPUMemory.backendName, bytes: bytes, available: nil)
        }
        pointer = mapped
    }

    deinit { munmap(pointer, length) }

    /// Gives the pages back to the system; the region reads as zeros afterwards.
    func release() {
        _ = madvise(pointer, length, MADV_DONTNEED)
    }

    /// Faults the region's pages in, so they count as used (what `CPUMemoryClaims` waits for).
    /// Only for a fresh or released region: its pages read as zeros either way.
    ///
    /// `MADV_POPULATE_WRITE` (Linux 5.14) maps zeroed pages in one call; writing zeros from
    /// here instead costs a fault per page and a second pass over memory the kernel has just
    /// zeroed (0.36 s against 0.21 s for 512 MiB on the 2-core development machine, training
    /// beside it). Older kernels answer EINVAL and get the writes.
    func populate() {
        if madvise(pointer, length, MADV_POPULATE_WRITE) != 0 {
            pointer.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        }
    }
}
