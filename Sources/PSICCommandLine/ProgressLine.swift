import Foundation
import PSICCodec

/// Progress of batch work on standard error. On a terminal: one line rewritten in place. Into a
/// log (not a terminal): a plain line at most every `logInterval` seconds and one at the end, so
/// a long batch under a service manager still shows it is moving. Errors of single items are
/// printed as they happen, on a line of their own. Within an item, `detail` shows how far a
/// large image has got (its tiles), also when the batch is one image.
public final class ProgressLine: @unchecked Sendable {
    public enum Style: Sendable {
        /// A bar rewritten in place.
        case terminal
        /// Plain lines, at most one per interval (seconds).
        case log(interval: Double)
    }

    private let total: Int
    /// One item: no bar, only details (a small image shows nothing; a large one its tiles).
    private let single: Bool
    private var done = 0
    /// The latest `detail`, shown after the bar; cleared when its item is done.
    private var detailText = ""
    private var lastDetailDrawn = Date.distantPast
    private let lock = NSLock()
    private let style: Style
    private let write: @Sendable (String) -> Void
    private let start = Date()
    private var lastLogged = Date.distantPast
    private var label = ""

    /// - Parameters:
    ///   - style: default: a bar on a terminal, else a line every 10 s; for one item, no bar,
    ///     only its details.
    ///   - write: where text goes (standard error; tests capture it).
    public init(total: Int, style: Style? = nil,
                write: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) }) {
        self.total = total
        self.write = write
        single = total <= 1
        self.style = style ?? (isatty(STDERR_FILENO) != 0 ? .terminal : .log(interval: 10))
    }

    /// Progress within the item `label` (e.g. "g_a tile 12/38"). Drawn at most 5 times a
    /// second on a terminal, and once per interval into a log.
    public func detail(_ label: String, _ text: String) {
        lock.lock()
        defer { lock.unlock() }
        detailText = "\(label): \(text)"
        let now = Date()
        switch style {
        case .terminal:
            guard now.timeIntervalSince(lastDetailDrawn) >= 0.2 else { return }
            lastDetailDrawn = now
            if single {
                write("\r\u{1B}[K" + detailText)
            } else {
                draw()
            }
        case let .log(interval):
            guard now.timeIntervalSince(lastLogged) >= interval else { return }
            lastLogged = now
            write("psic: \(detailText), " + String(format: "%.1f s elapsed\n", now.timeIntervalSince(start)))
        }
    }

    /// One item done.
    public func advance(_ label: String) {
        lock.lock()
        defer { lock.unlock() }
        done += 1
        self.label = label
        if detailText.hasPrefix(label + ":") { detailText = "" }
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
        if single {
            // No bar for one item; a detail line drawn on a terminal is cleared at the end.
            if case .terminal = style, lastDetailDrawn != .distantPast, done >= total { write("\r\u{1B}[K") }
            return
        }
        switch style {
        case .terminal:
            let width = 30
            let filled = width * done / max(total, 1)
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            let shown = detailText.isEmpty ? label : detailText
            write("\r\u{1B}[K[\(bar)] " + String(format: "%d/%d  %.1fs elapsed, ~%.0fs left  ", done, total, elapsed, eta)
                  + String(shown.suffix(40)))
            if done == total { write("\n") }
        case let .log(interval):
            guard done == total || Date().timeIntervalSince(lastLogged) >= interval else { return }
            lastLogged = Date()
            write(String(format: "psic: %d/%d files, %.1f s elapsed, ~%.0f s left\n", done, total, elapsed, eta))
        }
    }
}

extension ProgressLine {
    /// A profile for one codec call on the item `label` that shows its tiles as `detail`s.
    public func tileProfile(for label: String) -> CodecProfile {
        let profile = CodecProfile()
        profile.onTile = { [self] tile in detail(label, "\(tile.network) tile \(tile.done)/\(tile.total)") }
        return profile
    }
}
