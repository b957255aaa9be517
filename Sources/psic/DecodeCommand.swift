import ArgumentParser
import Foundation
import PSICCodec
import PSICCommandLine
import PSICImage

extension DetailMode: ExpressibleByArgument {}

struct DecodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Decode PSIC streams to PNG images.",
        discussion: """
            Levels the stream does not carry (or beyond --levels) are sampled from the model's prior: \
            --seed chooses the sample, --samples M writes M different decodes (NAME-s0.png, NAME-s1.png, ...).             --details mean fills them with the prior's mean instead: one deterministic image, higher PSNR, less detail.
            """)

    @Argument(help: "PSIC stream files or directories.")
    var inputs: [String]

    @Option(name: .shortAndLong, help: "Output PNG (one input, one sample) or directory (default: next to each input).")
    var output: String?

    @Option(name: .long, help: "Decode only the first N levels of the stream (default: all it carries).")
    var levels: Int?

    @Option(name: .long, help: "Sampling seed for untransmitted levels (default: the seed stored in the stream).")
    var seed: UInt64?

    @Option(name: .long, help: "Number of sampled decodes per stream, 1...64.")
    var samples: Int = 1

    @Option(name: .long, help: "How untransmitted levels are filled: sampled (sharp, one of many) or mean (deterministic, higher PSNR, softer).")
    var details: DetailMode = .sampled

    @Option(name: .shortAndLong, help: "Streams decoded at once (default: 1 on Vulkan, 2 on the CPU).")
    var jobs: Int?

    @OptionGroup var modelOptions: ModelOptions

    func validate() throws {
        guard (1...64).contains(samples) else { throw ValidationError("--samples must be in 1...64") }
        if let levels, levels < 1 { throw ValidationError("--levels must be at least 1") }
        if details == .mean && samples > 1 {
            throw ValidationError("--details mean decodes the same image for every seed; use --samples 1 (or --details sampled)")
        }
    }

    func run() async throws {
        let files = try gatherInputs(inputs, extensions: ["psic"])
        guard !files.isEmpty else { throw ValidationError("no .psic files among the inputs") }
        let model = try modelOptions.loadModel()
        let handle = try modelOptions.makeBackend()
        let codec = try ImageCodec(model: model, handle: handle, tileTensorBytes: modelOptions.tileTensorBytes)
        let samples = self.samples
        let outputs: [[URL]] = try (0..<samples).map { s in
            try OutputPaths(inputs: files, output: output, newExtension: "png", suffix: samples == 1 ? "" : "-s\(s)").urls
        }
        let progress = ProgressLine(total: files.count)
        let summary = BatchSummary()
        let start = Date()
        let levels = self.levels, seed = self.seed, details = self.details
        try await forEach(files.indices, jobs: jobs ?? (handle.isGPU ? 1 : 2)) { i in try withFile(files[i]) {
            let stream = try readBytes(files[i])
            let base = try seed ?? codec.streamSeed(stream)
            let seeds = (0..<samples).map { base &+ UInt64($0) }
            let images = try codec.decode(stream, levels: levels, seeds: seeds, details: details)
            var written = 0
            for (s, img) in images.enumerated() {
                let png = try PNGCodec.encode(img)
                try Data(png).write(to: outputs[s][i])
                written += png.count
            }
            summary.add(pixels: images[0].width * images[0].height, streamBytes: stream.count, otherBytes: written)
            progress.advance(files[i].lastPathComponent)
        } }
        summary.print(verb: "decoded", seconds: Date().timeIntervalSince(start), backend: handle.name)
        printFallbackNote(codec: codec, handle: handle)
    }
}
