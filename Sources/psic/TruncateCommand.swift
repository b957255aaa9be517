import ArgumentParser
import Foundation
import PSICCommandLine
import PSICEntropy

struct TruncateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "truncate",
        abstract: "Cut a PSIC stream after a level: a valid, smaller stream of the same image.",
        discussion: "No decoding happens: the cut is a byte operation, so it is instant and loses nothing more than the dropped levels.")

    @Argument(help: "Input stream.")
    var input: String

    @Option(name: .long, help: "Levels to keep (1 ... levels present).")
    var levels: Int

    @Option(name: .shortAndLong, help: "Output stream (default: overwrite the input).")
    var output: String?

    func run() throws {
        let url = URL(fileURLWithPath: input)
        let bytes = try readBytes(url)
        let stream = try withFile(url) { try PSICStream(bytes: bytes) }
        guard (1...stream.header.levelsPresent).contains(levels) else {
            throw ValidationError("--levels must be in 1...\(stream.header.levelsPresent) for this stream")
        }
        let cut = try stream.truncated(toLevels: levels)
        try Data(cut).write(to: URL(fileURLWithPath: output ?? input))
        print("\(bytes.count) → \(cut.count) bytes (\(levels) of \(stream.header.levelsTotal) levels)")
    }
}
