import ArgumentParser
import Foundation
import PSICCommandLine
import PSICEntropy

struct TruncateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "truncate",
        abstract: "Cut a PSIC stream after a level: a valid, smaller stream of the same image.",
        discussion: "No decoding happens: the cut is a byte operation, so it is instant and loses nothing more than the dropped levels. With --format-version the stream is also rewritten in that format version (the same coded bytes in another container; give --format-version alone to convert every level).")

    @Argument(help: "Input stream.")
    var input: String

    @Option(name: .long, help: "Levels to keep (1 ... levels present; default with --format-version: all).")
    var levels: Int?

    @Option(name: .long, help: "Write the result in this stream format version (default: the input's own).")
    var formatVersion: UInt16?

    @Option(name: .shortAndLong, help: "Output stream (default: cut the input in place).")
    var output: String?

    @Flag(name: .shortAndLong, help: "Replace the -o file if it already exists.")
    var force = false

    func run() throws {
        let url = URL(fileURLWithPath: input)
        let bytes = try readBytes(url)
        let stream = try withFile(url) { try PSICStream(bytes: bytes) }
        let present = stream.header.levelsPresent
        guard present >= 1 else { throw ValidationError("'\(input)' carries no levels: there is nothing to keep") }
        guard levels != nil || formatVersion != nil else {
            throw ValidationError("give --levels (1...\(present) for this stream), --format-version, or both")
        }
        let levels = levels ?? present
        guard (1...present).contains(levels) else {
            throw ValidationError("--levels must be in 1...\(present) for this stream")
        }
        try validateFormatVersion(formatVersion)
        let target = URL(fileURLWithPath: output ?? input)
        if output != nil, !force, target.standardizedFileURL.path != url.standardizedFileURL.path,
           FileManager.default.fileExists(atPath: target.path) {
            throw ValidationError("'\(target.path)' already exists; pass --force to replace it")
        }
        let cut = try stream.truncated(toLevels: levels, format: formatVersion)
        // Whole or not at all: a failed write in place must not leave the input cut short.
        try writeOutput(cut, to: target)
        let format = formatVersion ?? stream.header.formatVersion
        print("\(bytes.count) → \(cut.count) bytes (\(levels) of \(stream.header.levelsTotal) levels, format v\(format))")
    }
}
