import Foundation

/// Progress of batch work on standard error: one line rewritten in place on a TTY (nothing
/// otherwise); errors of single items are printed as they happen, on a line of their own.
public final class ProgressLine: @unchecked Sendable {
    private let total: Int
    private var done = 0
    private let lock = NSLock()
    private let enabled: Bool
    private let start = Date()
    private var label = ""

    public init(total: Int, enabled: Bool = isatty(STDERR_FILENO) != 0) {
        self.total = total
        self.enabled = enabled && total > 1
    }

    /// One item done.
    public func advance(_ label: String) {
        lock.lock()
        defer { lock.unlock() }
        done += 1
        self.label = label
        draw()
    }

    /// One item failed: `message` goes on its own line (never mid-bar), then the bar again.
    public func fail(_ message: String) {
        lock.lock()
        defer { lock.unlock() }
        done += 1
        if enabled { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        FileHandle.standardError.write(Data("psic: \(message)\n".utf8))
        draw()
    }

    private func draw() {
        guard enabled else { return }
        let width = 30
        let filled = width * done / max(total, 1)
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let elapsed = Date().timeIntervalSince(start)
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
        let line = String(format: "\r[%@] %d/%d  %.1fs elapsed, ~%.0fs left  %@", bar, done, total, elapsed, eta,
                          String(label.suffix(40)))
        FileHandle.standardError.write(Data(line.utf8))
        if done == total { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
