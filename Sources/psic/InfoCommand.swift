import ArgumentParser
import Foundation
import PSICCommandLine
import PSICEntropy

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Describe PSIC streams: image size, model, levels and their sizes.")

    @Argument(help: "PSIC stream files.")
    var inputs: [String]

    @Flag(name: .long, help: "Print JSON (one object per stream, in a list) instead of text.")
    var json = false

    struct Report: Codable {
        let file: String
        let width: Int
        let height: Int
        let modelFingerprint: String
        let formatVersion: Int
        let levelsPresent: Int
        let levelsTotal: Int
        let seed: UInt64
        let totalBytes: Int
        let bpp: Double
        let zBytes: Int
        let levelBytes: [Int]
        let substreamsPerLevel: [Int]
        /// Header and section containers (counts, lengths, checksums): the bytes that are not coded symbols.
        let containerBytes: Int
    }

    func run() throws {
        let files = try gatherInputs(inputs, extensions: ["psic"])
        guard !files.isEmpty else { throw ValidationError("no .psic files among the inputs") }
        var reports: [Report] = []
        for f in files { try withFile(f) {
            let bytes = try readBytes(f)
            let s = try PSICStream(bytes: bytes)
            let h = s.header
            reports.append(Report(file: f.path, width: h.width, height: h.height,
                                  modelFingerprint: h.modelFingerprint.map { String(format: "%02x", $0) }.joined(),
                                  formatVersion: Int(h.formatVersion), levelsPresent: h.levelsPresent,
                                  levelsTotal: h.levelsTotal, seed: h.seed, totalBytes: bytes.count,
                                  bpp: Double(bytes.count * 8) / Double(h.width * h.height),
                                  zBytes: s.zSection.byteCount, levelBytes: s.levelSections.map(\.byteCount),
                                  substreamsPerLevel: s.levelSections.map(\.substreamCount),
                                  containerBytes: h.byteCount + s.zSection.tableByteCount
                                      + s.levelSections.map(\.tableByteCount).reduce(0, +)))
        } }
        if json {
            try printJSON(reports)
            return
        }
        for r in reports {
            print("\(r.file): \(r.width)x\(r.height), \(r.totalBytes) bytes, \(String(format: "%.4f", r.bpp)) bpp")
            print("  model \(r.modelFingerprint), format v\(r.formatVersion), seed \(r.seed)")
            print("  levels \(r.levelsPresent) of \(r.levelsTotal); z \(r.zBytes) bytes")
            print("  container \(r.containerBytes) bytes (header, section counts, lengths and checksums), "
                  + String(format: "%.1f%% of the stream", 100 * Double(r.containerBytes) / Double(r.totalBytes)))
            var cumulative = r.totalBytes - r.levelBytes.reduce(0, +)
            for (i, b) in r.levelBytes.enumerated() {
                cumulative += b
                let k = r.substreamsPerLevel[i]
                print(String(format: "  level %d: %7d bytes in %2d substream", i + 1, b, k) + (k == 1 ? " " : "s")
                      + String(format: " (cut here: %.4f bpp)", Double(cumulative * 8) / Double(r.width * r.height)))
            }
        }
    }
}
