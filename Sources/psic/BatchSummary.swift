import Foundation
import PSICCodec
import PSICCommandLine

/// Totals for the closing summary line of batch commands.
final class BatchSummary: @unchecked Sendable {
    private let lock = NSLock()
    private var images = 0, pixels = 0, streamBytes = 0, otherBytes = 0
    private var identical = 0
    private var levelsKept: [Int] = []
    private var missedTarget = 0

    /// The levels a stream kept under a size limit or quality target (reported as a range), and
    /// whether it reached the target (a stream that keeps every level may stay under it).
    func noteLevels(_ levels: Int, reachedTarget: Bool = true) {
        lock.lock()
        levelsKept.append(levels)
        if !reachedTarget { missedTarget += 1 }
        lock.unlock()
    }

    /// A decode whose samples came out identical (nothing was left to sample).
    func noteIdenticalSamples() {
        lock.lock()
        identical += 1
        lock.unlock()
    }

    var identicalSamples: Int {
        lock.lock()
        defer { lock.unlock() }
        return identical
    }

    /// `otherBytes` are the PNG bytes read (encode) or written (decode).
    func add(pixels p: Int, streamBytes s: Int, otherBytes o: Int) {
        lock.lock()
        images += 1; pixels += p; streamBytes += s; otherBytes += o
        lock.unlock()
    }

    /// `limit` names the size limit or quality target in the levels line.
    func print(verb: String, seconds: Double, backend: String, limit: String = "the size limit") {
        let bpp = pixels > 0 ? Double(streamBytes * 8) / Double(pixels) : 0
        let line = "\(verb) \(images) image\(images == 1 ? "" : "s"): "
            + String(format: "%d stream bytes (%.4f bpp), %d PNG bytes, %.2f s (%.2f images/s)",
                     streamBytes, bpp, otherBytes, seconds, Double(images) / max(seconds, 1e-9))
            + " on \(backend)"
        Swift.print(line)
        if let low = levelsKept.min(), let high = levelsKept.max() {
            let mean = Double(levelsKept.reduce(0, +)) / Double(levelsKept.count)
            Swift.print(low == high ? "levels kept for \(limit): \(low)"
                                    : "levels kept for \(limit): \(low) to \(high) (mean \(String(format: "%.2f", mean)))")
        }
        if missedTarget > 0 {
            Swift.print("\(missedTarget) image\(missedTarget == 1 ? "" : "s") stayed under \(limit) with every level (kept them all)")
        }
    }
}

/// Says how many graph runs were too large for the chosen device and ran on the fallback, and
/// how many were tiles of large images.
func printFallbackNote(codec: ImageCodec, handle: BackendHandle) {
    if codec.fallbackRuns > 0, let fallback = handle.fallback {
        print("\(codec.fallbackRuns) graph run\(codec.fallbackRuns == 1 ? "" : "s") too large for \(handle.name) ran on \(fallback.name)")
    }
    if codec.tiledRuns > 0 {
        print("large images ran in \(codec.tiledRuns) tile\(codec.tiledRuns == 1 ? "" : "s")")
    }
}
