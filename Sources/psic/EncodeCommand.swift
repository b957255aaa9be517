import ArgumentParser
import Foundation
import PSICCodec
import PSICCommandLine
import PSICImage

struct EncodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode",
        abstract: "Compress PNG images into PSIC streams.",
        discussion: "Inputs are PNG files or directories of them. With several inputs, -o names a directory.")

    @Argument(help: "PNG files or directories.")
    var inputs: [String]

    @Option(name: .shortAndLong, help: "Output file (one input file) or folder (several inputs, a folder input, or a trailing /; default: next to each input, .psic).")
    var output: String?

    @Flag(name: .shortAndLong, help: "Replace output files that already exist (default: refuse before encoding anything).")
    var force = false

    @Option(name: .long, help: "Levels to transmit, 1...L (default: all). Lower is smaller and less faithful.")
    var levels: Int?

    @Option(name: .shortAndLong, help: "Images encoded at once (default: 1 on Vulkan, 2 on the CPU).")
    var jobs: Int?

    @OptionGroup var modelOptions: ModelOptions

    func validate() throws {
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1") }
    }

    func run() async throws {
        let files = try gatherInputs(inputs, extensions: ["png"])
        guard !files.isEmpty else { throw ValidationError("no PNG files among the inputs") }
        let model = try modelOptions.loadModel()
        if let levels, !(1...model.levels).contains(levels) {
            throw ValidationError("--levels must be in 1...\(model.levels) for this model")
        }
        let outputs = try OutputPaths(inputs: files, arguments: inputs, output: output, newExtension: "psic", overwrite: force)
        let handle = try modelOptions.makeBackend()
        let codec = try ImageCodec(model: model, handle: handle, tileTensorBytes: modelOptions.tileTensorBytes)
        let progress = ProgressLine(total: files.count)
        let start = Date()
        let summary = BatchSummary()
        let failed = await forEachItem(files.indices, jobs: jobs ?? (handle.isGPU ? 1 : 2), progress: progress) { i in
            let png = try readBytes(files[i])
            let image = try withFile(files[i]) { try PNGCodec.decode(png) }
            let stream = try withFile(files[i]) { try codec.encode(image, levels: levels) }
            try writeOutput(stream, to: outputs[i])
            summary.add(pixels: image.width * image.height, streamBytes: stream.count, otherBytes: png.count)
            progress.advance(files[i].lastPathComponent)
        }
        if failed < files.count { summary.print(verb: "encoded", seconds: Date().timeIntervalSince(start), backend: handle.name) }
        printFallbackNote(codec: codec, handle: handle)
        if failed > 0 { throw BatchFailure(failed: failed, total: files.count) }
    }
}
