import Foundation

/// Progress of batch work on standard error. On a terminal: one line rewritten in place. Into a
/// log (not a terminal): a plain line at most every `logInterval` seconds and one at the end, so
/// a long batch under a service manager still shows it is moving. Errors of single items are
/// printed as they happen, on a line of their own.
public final class ProgressLine: @unchecked Sendable {
    public enum Style: Sendable {
        /// A bar rewritten in place.
        case terminal
        /// Plain lines, at most one per interval (seconds).
        case log(interval: Double)
        /// Errors only.
        case silent
    }

    private let total: Int
    private var done = 0
    private let lock = NSLock()
    private let style: Style
    private let write: @Sendable (String) -> Void
    private let start = Date()
    private var lastLogged = Date.distantPast
    private var label = ""

    /// - Parameters:
    ///   - style: default: a bar on a terminal, else a line every 10 s; nothing for one item.
    ///   - write: where text goes (standard error; tests capture it).
    public init(total: Int, style: Style? = nil,
                write: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) }) {
        self.total = total
        self.write = write
        if total <= 1 {
            self.style = .silent
        } else {
            self.style = style ?? (isatty(STDERR_FILENO) != 0 ? .terminal : .log(interval: 10))
        }
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
        if case .terminal = style { write("\r\u{1B}[K") }
        write("psic: \(message)\n")
        draw()
    }

    private func draw() {
        let elapsed = Date().timeIntervalSince(start)
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
        switch style {
        case .silent:
            return
        case .terminal:
            let width = 30
            let filled = width * done / max(total, 1)
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            write(String(format: "\r[%@] %d/%d  %.1fs elapsed, ~%.0fs left  %@", bar, done, total, elapsed, eta,
                         String(label.suffix(40))))
            if done == total { write("\n") }
        case let .log(interval):
            guard done == total || Date().timeIntervalSince(lastLogged) >= interval else { return }
            lastLogged = Date()
            write(String(format: "psic: %d/%d files, %.1f s elapsed, ~%.0f s left\n", done, total, elapsed, eta))
        }
    }
}
